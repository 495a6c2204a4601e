/**
 * One owner per source among replicas, for the pulling sources whose upstream has no consumer
 * group to share work by (the Kubernetes API: every replica watching would report every change
 * once per replica). The owner holds a lease, a record in the ResourceStore's `leases` collection
 * under the source's namespace and name, written with compare-and-set, so every backend (SQLite,
 * NATS KV, Kafka) gives the same guarantee.
 *
 * - The holder renews the record every third of the lease's time to live. A replica that finds the
 *   record unchanged (same revision) for a whole time to live, by its own clock, takes it over: no
 *   clock is compared with another replica's. A record left by a process of this host that is no
 *   longer running (a crash, then a restart) is taken over at once.
 * - A holder that fails to renew for a whole time to live, or finds the record taken (CONFLICT),
 *   stops its run before another can have started one (it stops at the time to live by its own
 *   clock, another starts only after that by its own).
 * - The record also carries the source's checkpoint (`state`), saved by the holder with the same
 *   compare-and-set: a new holder continues from what the last one saved.
 */
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ResourceStore, StoredResource } from '../backends/contracts.js';
import { isTributaryError } from '../core/errors.js';
import type { Resource, ResourceKey } from '../core/resources/types.js';

/** Who holds a lease: this process, and where it runs. */
export interface Holder {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
}

export function thisProcess(id: string): Holder {
  return { id, host: hostname(), pid: process.pid };
}

interface LeaseSpec {
  readonly holder: Holder;
  /** The source's uid: a record of an earlier source with the same name is not continued. */
  readonly sourceUid: string;
  readonly state?: unknown;
}

/** What a run gets while it holds the lease. */
export interface LeaseRun {
  /** Aborted when the lease is lost (or the source stops). */
  readonly signal: AbortSignal;
  /** What the last holder saved, or undefined. */
  readonly state: unknown;
  /** Saves a checkpoint with the lease (rejects when the lease was lost meanwhile). */
  readonly save: (state: unknown) => Promise<void>;
}

export interface LeaseOptions {
  readonly store: ResourceStore;
  readonly holder: Holder;
  readonly ttlMs: number;
  readonly onError: (error: unknown) => void;
}

const isConflict = (error: unknown): boolean =>
  isTributaryError(error) && error.code === 'CONFLICT';

/** Whether a process of this host with that pid is gone (so its lease can be taken at once). */
function deadHere(holder: Holder): boolean {
  if (holder.host !== hostname() || holder.pid === process.pid) return false;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export class SourceLease {
  private readonly key: ResourceKey;
  /** The record as last written or read, for compare-and-set. */
  private current: StoredResource | undefined;
  /** The lease was lost (taken, or not renewed in time): no more writes until taken again. */
  private gone = false;
  /** The other holder's record as first seen at this revision, by this replica's clock. */
  private observed: { revision: number; since: number } | undefined;

  constructor(
    private readonly options: LeaseOptions,
    namespace: string,
    name: string,
    private readonly sourceUid: string,
  ) {
    this.key = { collection: 'leases', namespace, name };
  }

  /**
   * Runs `run` each time this replica takes the lease, until `signal` aborts; `run` must resolve
   * once its signal aborted and it stopped. Releases the lease at the end.
   */
  async hold(signal: AbortSignal, run: (lease: LeaseRun) => Promise<void>): Promise<void> {
    const retryMs = Math.max(50, Math.floor(this.options.ttlMs / 3));
    while (!signal.aborted) {
      let state: unknown;
      try {
        const taken = await this.tryTake();
        if (taken === undefined) {
          await sleep(retryMs, undefined, { signal }).catch(() => {});
          continue;
        }
        state = taken.state;
      } catch (error) {
        this.options.onError(error);
        await sleep(retryMs, undefined, { signal }).catch(() => {});
        continue;
      }
      this.gone = false;
      const lost = new AbortController();
      const stop = (): void => lost.abort(signal.reason);
      signal.addEventListener('abort', stop, { once: true });
      const renewing = this.renew(lost, retryMs);
      try {
        await run({
          signal: lost.signal,
          state,
          save: (next) => this.write(next, lost),
        });
      } finally {
        lost.abort();
        signal.removeEventListener('abort', stop);
        await renewing;
      }
    }
    await this.release();
  }

  private spec(state: unknown): LeaseSpec {
    return {
      holder: this.options.holder,
      sourceUid: this.sourceUid,
      ...(state === undefined ? {} : { state }),
    };
  }

  private record(state: unknown): Resource {
    return {
      apiVersion: 'tributary.dev/v1alpha1',
      kind: 'SourceLease',
      metadata: { name: this.key.name, namespace: this.key.namespace },
      spec: this.spec(state) as unknown as Record<string, unknown>,
    };
  }

  /** Takes the lease if it is free, ours, stale or left by a dead process here; else undefined. */
  private async tryTake(): Promise<{ state: unknown } | undefined> {
    const { store, holder, ttlMs } = this.options;
    const stored = await store.get(this.key);
    if (stored === undefined) {
      try {
        this.current = await store.create(this.key, this.record(undefined));
        return { state: undefined };
      } catch (error) {
        if (isConflict(error)) return undefined;
        throw error;
      }
    }
    const spec = stored.resource.spec as unknown as LeaseSpec;
    const sameSource = spec.sourceUid === this.sourceUid;
    const other = spec.holder;
    let free = other.id === holder.id || other.id === '' || deadHere(other) || !sameSource;
    if (!free) {
      const now = Date.now();
      if (this.observed?.revision !== stored.revision) {
        this.observed = { revision: stored.revision, since: now };
      }
      free = now - this.observed.since >= ttlMs;
    }
    if (!free) return undefined;
    const state = sameSource ? spec.state : undefined;
    try {
      this.current = await store.update(this.key, this.record(state), stored.revision);
    } catch (error) {
      if (isConflict(error)) return undefined;
      throw error;
    }
    this.observed = undefined;
    return { state };
  }

  /** Writes the record again (a renewal, or a checkpoint); the lease is lost on CONFLICT. */
  private writes: Promise<unknown> = Promise.resolve();
  private write(state: unknown, lost: AbortController): Promise<void> {
    const next = this.writes.then(async () => {
      // After the run's stop (not a loss) its last checkpoint may still be written.
      const current = this.current;
      if (this.gone || current === undefined) throw new Error('the lease was lost');
      const spec = current.resource.spec as unknown as LeaseSpec;
      const record = this.record(state === KEEP ? spec.state : state);
      try {
        this.current = await this.options.store.update(this.key, record, current.revision);
      } catch (error) {
        if (isConflict(error)) this.lose(lost, 'another replica took the lease');
        throw error;
      }
    });
    this.writes = next.catch(() => {});
    return next;
  }

  /** Ends the run: the lease is no longer this replica's to write. */
  private lose(lost: AbortController, why: string): void {
    this.gone = true;
    lost.abort(new Error(why));
  }

  /** Renews every `everyMs` while held; gives the lease up when it could not for a whole TTL. */
  private async renew(lost: AbortController, everyMs: number): Promise<void> {
    let renewed = Date.now();
    while (!lost.signal.aborted) {
      try {
        await sleep(everyMs, undefined, { signal: lost.signal });
      } catch {
        return;
      }
      try {
        await this.write(KEEP, lost);
        renewed = Date.now();
      } catch (error) {
        if (lost.signal.aborted) return;
        this.options.onError(error);
        // Another replica may take it once a TTL passed without a renewal: stop before that.
        if (Date.now() - renewed >= this.options.ttlMs - everyMs) {
          this.lose(lost, 'the lease could not be renewed');
        }
      }
    }
  }

  /**
   * Gives the lease up at once: the record stays, with its checkpoint, under nobody, so that
   * another replica takes it without waiting for a time to live.
   */
  private async release(): Promise<void> {
    await this.writes;
    const current = this.current;
    if (current === undefined || this.gone) return;
    this.current = undefined;
    const spec = current.resource.spec as unknown as LeaseSpec;
    const released: Resource = {
      ...current.resource,
      spec: { ...spec, holder: NOBODY },
    };
    await this.options.store.update(this.key, released, current.revision).catch(() => {});
  }

  /** Removes the lease of a deleted source (whoever holds it: the source is gone). */
  static async remove(store: ResourceStore, namespace: string, name: string): Promise<void> {
    await store.delete({ collection: 'leases', namespace, name });
  }
}

/** A write that keeps the checkpoint as it is (a renewal). */
const KEEP = Symbol('keep');

/** The holder of a released lease. */
const NOBODY: Holder = { id: '', host: '', pid: 0 };
