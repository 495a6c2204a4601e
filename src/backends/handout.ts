/**
 * How a member of a subscription hands fetched events to its handler, for the backends that fetch
 * from a server (NATS, Kafka): at most `maxInFlight` out at once, and in an ordered subscription
 * at most one per ordering key (`partitionkey`), the others of the key held back in arrival order.
 * An event that is not handed over at once waits in `ready` (for capacity) or behind its key.
 * Also the small helpers both backends' event logs share.
 */
import type { CloudEvent } from '../core/event.js';
import type { BrokerRef } from './contracts.js';

export interface Handed {
  /** The ordering group ('' when the subscription is unordered or the event has no key). */
  readonly key: string;
  /** True while handed to the handler and not settled. */
  out: boolean;
}

export class Handout<P extends Handed> {
  private inFlightCount = 0;
  private readonly ready: P[] = [];
  /** Ordered: the event each key waits on (out, or waiting for its retry). */
  private readonly busy = new Map<string, P>();
  private readonly held = new Map<string, P[]>();

  constructor(
    private readonly ordered: boolean,
    private readonly maxInFlight: number,
    private readonly handOver: (p: P) => void,
    private readonly stopped: () => boolean,
  ) {}

  get inFlight(): number {
    return this.inFlightCount;
  }

  /** Events waiting for capacity. */
  get waiting(): number {
    return this.ready.length;
  }

  /** Hands `p` over now, or queues it behind its key or for capacity (`first`: ahead of all). */
  offer(p: P, first = false): void {
    if (this.ordered) {
      const blocker = this.busy.get(p.key);
      if (blocker !== undefined && blocker !== p) {
        const queue = this.held.get(p.key);
        if (queue === undefined) this.held.set(p.key, [p]);
        else queue.push(p);
        return;
      }
      this.busy.set(p.key, p);
    }
    if (this.inFlightCount >= this.maxInFlight) {
      if (first) this.ready.unshift(p);
      else this.ready.push(p);
      return;
    }
    this.give(p);
  }

  private give(p: P): void {
    this.inFlightCount++;
    p.out = true;
    this.handOver(p);
  }

  /** `p` is no longer out (settled, or waiting for a retry); its key stays busy. */
  release(p: P): void {
    if (!p.out) return;
    p.out = false;
    this.inFlightCount--;
    this.pump();
  }

  /** `p` is done: its slot and its key are free. */
  finish(p: P): void {
    this.release(p);
    if (this.ordered && this.busy.get(p.key) === p) this.freeKey(p.key);
    this.pump();
  }

  private freeKey(key: string): void {
    this.busy.delete(key);
    const queue = this.held.get(key);
    const next = queue?.shift();
    if (queue !== undefined && queue.length === 0) this.held.delete(key);
    if (next !== undefined && !this.stopped()) this.offer(next);
  }

  private pump(): void {
    while (!this.stopped() && this.ready.length > 0 && this.inFlightCount < this.maxInFlight) {
      this.give(this.ready.shift()!);
    }
  }

  /**
   * Forgets the events that are not out and match (a revoked partition, a replaced consumer): they
   * leave the queues, and a key they kept busy is free again.
   */
  drop(matches: (p: P) => boolean): void {
    for (let i = this.ready.length - 1; i >= 0; i--) {
      if (matches(this.ready[i]!)) this.ready.splice(i, 1);
    }
    for (const [key, queue] of [...this.held]) {
      const kept = queue.filter((p) => !matches(p));
      if (kept.length === 0) this.held.delete(key);
      else this.held.set(key, kept);
    }
    for (const [key, p] of [...this.busy]) if (!p.out && matches(p)) this.freeKey(key);
  }

  /** Forgets every event that is not out (a stopping member). */
  clear(): void {
    this.ready.length = 0;
    this.held.clear();
  }
}

/**
 * A settlement that runs at most once (a failed one may be tried again), refused after the log
 * closed, with the backend's own errors turned into TributaryErrors.
 */
export function settleOnce(
  closed: () => boolean,
  shuttingDown: () => Error,
  wrap: (error: unknown) => Error,
): (how: () => Promise<void>) => Promise<void> {
  let settled = false;
  return async (how) => {
    if (settled) return;
    if (closed()) throw shuttingDown();
    settled = true;
    try {
      await how();
    } catch (error) {
      settled = false;
      throw wrap(error);
    }
  };
}

export function sameBroker(a: BrokerRef, b: BrokerRef): boolean {
  return a.namespace === b.namespace && a.name === b.name;
}

/** An event's ordering group: its `partitionkey` as a string, '' without one. */
export function orderingKey(event: CloudEvent): string {
  const key = event.attributes.partitionkey;
  return key === undefined ? '' : String(key);
}

/**
 * Runs a backend operation: refused at once when `check` throws (closed, disconnected), and with
 * a failure turned into a TributaryError by `wrap` (SHUTTING_DOWN when the log closed meanwhile).
 */
export async function guarded<T>(
  fn: () => Promise<T>,
  how: {
    readonly check: () => void;
    readonly closed: () => boolean;
    readonly shuttingDown: () => Error;
    readonly wrap: (error: unknown) => Error;
  },
): Promise<T> {
  how.check();
  try {
    return await fn();
  } catch (error) {
    if (how.closed()) throw how.shuttingDown();
    throw how.wrap(error);
  }
}
