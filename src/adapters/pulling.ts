/**
 * What the pulling adapters (Kafka, RocketMQ, MNS, Kubernetes) share: the pause before they try
 * their upstream again after a failure, and waiting on upstream work that the source's stop must
 * not wait for.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffDelayMs } from '../core/backoff.js';

/** The pause after the first failure of an upstream; it doubles with each further one. */
export const RESTART_BASE_MS = 500;
export const RESTART_MAX_MS = 30_000;

/**
 * Waits before trying the upstream again after `failures` failures in a row (at least one);
 * resolves false, at once, when `signal` aborts (the source stopped), true otherwise.
 */
export async function pauseAfterFailure(signal: AbortSignal, failures: number): Promise<boolean> {
  const delay = backoffDelayMs(
    'exponential',
    RESTART_BASE_MS,
    Math.max(1, failures),
    RESTART_MAX_MS,
  );
  try {
    await sleep(delay, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}

/**
 * Resolves with `work`'s value, or undefined as soon as `signal` aborts: a long poll or a client's
 * startup is left to finish by itself (what it then hands out is not acknowledged, and comes
 * again).
 */
export function untilStopped<T>(signal: AbortSignal, work: Promise<T>): Promise<T | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = (): void => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
