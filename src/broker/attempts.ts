/**
 * One delivery attempt as triggers and sources make it: the event encoded in the delivery's format
 * (binary or structured), POSTed with the sender, and its outcome classified as the delivery policy
 * sees it. `deliverDirect` is the whole policy in memory (attempts, backoff, dead-letter sink) for
 * a source whose sink is a service; a trigger runs the same policy through its event log instead
 * (dispatcher.ts), so that retries survive a restart.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeBinary, encodeStructured } from '../core/codec/index.js';
import {
  deadLetterEvent,
  ERROR_DATA_LIMIT,
  isSuccess,
  nextStep,
  type AttemptResult,
  type ResolvedDelivery,
} from '../core/delivery.js';
import type { CloudEvent } from '../core/event.js';
import { send, type SendOutcome } from './http-sender.js';

/** A delivery that failed, in the terms of the delivery policy, with a reason for people. */
export interface Failure {
  readonly result: AttemptResult;
  readonly reason: string;
  readonly response?: { readonly status: number; readonly body: Uint8Array };
}

export function failureOf(outcome: SendOutcome): Failure {
  switch (outcome.result.kind) {
    case 'timeout':
      return { result: outcome.result, reason: 'did not answer in time' };
    case 'network':
      return { result: outcome.result, reason: `request failed: ${outcome.result.message}` };
    case 'response': {
      const body = outcome.response?.body ?? Buffer.alloc(0);
      const text = body.subarray(0, ERROR_DATA_LIMIT).toString('utf8');
      return {
        result: outcome.result,
        reason: `answered ${outcome.result.status}${text === '' ? '' : `: ${text}`}`,
        response: { status: outcome.result.status, body },
      };
    }
  }
}

export interface PostOptions {
  readonly format: ResolvedDelivery['format'];
  readonly timeoutMs: number;
  readonly maxResponseBytes: number;
  /** Headers beyond the event's own (`prefer`, `kn-namespace`). */
  readonly headers?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
}

/** POSTs `event` to `url` in the delivery's format. */
export function postEvent(url: URL, event: CloudEvent, options: PostOptions): Promise<SendOutcome> {
  const encoded = options.format === 'json' ? encodeStructured(event) : encodeBinary(event);
  return send(url, { ...encoded.headers, ...options.headers }, encoded.body, {
    timeoutMs: options.timeoutMs,
    maxBodyBytes: options.maxResponseBytes,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
}

export type DirectOutcome =
  | {
      readonly delivered: 'sink' | 'dead-letter-sink';
      /** The status the accepting destination answered. */
      readonly status: number;
      readonly attempts: number;
    }
  | { readonly delivered: false; readonly reason: string; readonly attempts: number };

/**
 * Delivers `event` to `url` under `delivery`: retried with backoff while the failure is
 * retryable and retries remain, then sent to the dead-letter sink (with Knative's error
 * extensions, retried the same way). Resolves with who accepted it, or why nobody did.
 */
export async function deliverDirect(
  url: URL,
  event: CloudEvent,
  delivery: ResolvedDelivery,
  options: Omit<PostOptions, 'format' | 'timeoutMs'>,
): Promise<DirectOutcome> {
  const post = { ...options, format: delivery.format, timeoutMs: delivery.timeoutMs };
  const attempt = async (
    target: URL,
    body: CloudEvent,
  ): Promise<
    | { ok: true; status: number; attempts: number }
    | { ok: false; failure: Failure; attempts: number }
  > => {
    for (let n = 1; ; n++) {
      const outcome = await postEvent(target, body, post);
      if (isSuccess(outcome.result) && outcome.result.kind === 'response') {
        return { ok: true, status: outcome.result.status, attempts: n };
      }
      const failure = failureOf(outcome);
      const step = nextStep(delivery, n, failure.result, Date.now());
      if (step.action !== 'retry' || options.signal?.aborted === true) {
        return { ok: false, failure, attempts: n };
      }
      await sleep(step.delayMs, undefined, { ref: false });
    }
  };
  const first = await attempt(url, event);
  if (first.ok) return { delivered: 'sink', status: first.status, attempts: first.attempts };
  const reason = `${url.href} ${first.failure.reason}`;
  if (delivery.deadLetterSinkUri === undefined) {
    return { delivered: false, reason, attempts: first.attempts };
  }
  const sink = new URL(delivery.deadLetterSinkUri);
  const response = first.failure.response;
  const dead = deadLetterEvent(event, {
    destination: url.href,
    ...(response === undefined ? {} : { status: response.status, body: response.body }),
  });
  const second = await attempt(sink, dead);
  const attempts = first.attempts + second.attempts;
  if (second.ok) return { delivered: 'dead-letter-sink', status: second.status, attempts };
  return {
    delivered: false,
    reason: `${reason}; the dead-letter sink ${sink.href} ${second.failure.reason}`,
    attempts,
  };
}
