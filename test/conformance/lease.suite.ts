/**
 * The source lease (src/sources/lease.ts) on a backend's ResourceStore: one holder at a time, a
 * released lease passed on at once with its checkpoint, a holder that stopped renewing replaced
 * after the time to live, a holder whose record was taken stopping its run, and a record of an
 * earlier source of the same name not continued. Each test has its own namespace.
 */
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import type { Backend, ResourceStore } from '../../src/backends/contracts.js';
import type { Resource, ResourceKey } from '../../src/core/resources/types.js';
import { SourceLease, type Holder, type LeaseRun } from '../../src/sources/lease.js';
import { deferred, type Deferred } from '../support/deferred.js';
import type { BackendHarness } from './harness.js';
import { uniqueName } from './fixtures.js';

/** Long enough that a loaded machine renews in time (every third of it). */
const TTL_MS = 1_500;

const holder = (id: string, host = hostname(), pid = process.pid): Holder => ({ id, host, pid });

/** A record as a holder elsewhere (or gone) left it. */
function leaseRecord(key: ResourceKey, spec: Record<string, unknown>): Resource {
  return {
    apiVersion: 'tributary.dev/v1alpha1',
    kind: 'SourceLease',
    metadata: { name: key.name, namespace: key.namespace },
    spec,
  };
}

/** A lease contender: its runs, each resolving once aborted. */
function contender(
  store: ResourceStore,
  id: string,
  namespace: string,
  uid = 'uid-1',
  ttlMs = TTL_MS,
) {
  const lease = new SourceLease(
    { store, holder: holder(id), ttlMs, onError: () => {} },
    namespace,
    'source',
    uid,
  );
  const stop = new AbortController();
  const runs: LeaseRun[] = [];
  let next: Deferred<LeaseRun> = deferred<LeaseRun>();
  const held = lease.hold(stop.signal, async (run) => {
    runs.push(run);
    next.resolve(run);
    next = deferred<LeaseRun>();
    await new Promise<void>((resolve) => {
      if (run.signal.aborted) resolve();
      else run.signal.addEventListener('abort', () => resolve(), { once: true });
    });
  });
  return {
    runs,
    /** The next run (or the current one, if it started and nobody awaited it yet). */
    nextRun: (): Promise<LeaseRun> => next.promise,
    stop: async (): Promise<void> => {
      stop.abort();
      await held;
    },
  };
}

/** Resolves after `count` more writes of the lease record. */
async function writesOf(store: ResourceStore, key: ResourceKey, count: number): Promise<void> {
  const done = deferred();
  let seen = 0;
  const watch = await store.watch((change) => {
    const k = change.type === 'put' ? change.stored.key : change.key;
    if (k.collection === key.collection && k.namespace === key.namespace && k.name === key.name) {
      if (++seen >= count) done.resolve();
    }
  });
  try {
    await done.promise;
  } finally {
    watch.stop();
  }
}

export function leaseConformance(name: string, harness: BackendHarness): void {
  describe(`source leases (${name})`, { timeout: 30_000 }, () => {
    let backend: Backend | undefined;
    afterEach(async () => {
      await backend?.close();
      backend = undefined;
    });

    async function setup() {
      backend = await harness.open();
      const namespace = uniqueName('lease');
      const key: ResourceKey = { collection: 'leases', namespace, name: 'source' };
      return { store: backend.resources, namespace, key };
    }

    it('has one holder at a time, and passes a released lease on at once with its checkpoint', async () => {
      const { store, namespace, key } = await setup();
      const a = contender(store, 'a', namespace);
      const runA = await a.nextRun();
      expect(runA.state).toBeUndefined();
      await runA.save({ position: 7 });
      const b = contender(store, 'b', namespace);
      // Several renewals by a, more than a time to live in all: b never ran meanwhile.
      await writesOf(store, key, 4);
      expect(b.runs).toHaveLength(0);
      expect(runA.signal.aborted).toBe(false);
      const runB = b.nextRun();
      await a.stop();
      expect((await runB).state).toEqual({ position: 7 });
      expect(a.runs).toHaveLength(1);
      await b.stop();
    });

    it('takes over from a holder that stopped renewing, after the time to live, keeping its checkpoint', async () => {
      const { store, namespace, key } = await setup();
      await store.create(
        key,
        leaseRecord(key, {
          holder: holder('gone', 'another-host', 1),
          sourceUid: 'uid-1',
          state: { position: 3 },
        }),
      );
      const b = contender(store, 'b', namespace);
      expect((await b.nextRun()).state).toEqual({ position: 3 });
      const stored = await store.get(key);
      expect((stored?.resource.spec as { holder: Holder }).holder.id).toBe('b');
      await b.stop();
    });

    it('takes a lease left by a dead process of this host at once', async () => {
      const { store, namespace, key } = await setup();
      const dead = spawnSync(process.execPath, ['-e', '0']).pid;
      await store.create(
        key,
        leaseRecord(key, { holder: holder('crashed', hostname(), dead), sourceUid: 'uid-1' }),
      );
      // A time to live longer than the test's timeout: b does not wait for the record to go stale.
      const b = contender(store, 'b', namespace, 'uid-1', 600_000);
      await b.nextRun();
      await b.stop();
    });

    it('stops the run of a holder whose record another took', async () => {
      const { store, namespace, key } = await setup();
      const a = contender(store, 'a', namespace);
      const runA = await a.nextRun();
      const stored = await store.get(key);
      await store.update(
        key,
        leaseRecord(key, { holder: holder('thief', 'another-host', 1), sourceUid: 'uid-1' }),
        stored!.revision,
      );
      await new Promise<void>((resolve) =>
        runA.signal.addEventListener('abort', () => resolve(), { once: true }),
      );
      await expect(runA.save({ position: 1 })).rejects.toThrow(/lost/);
      await a.stop();
    });

    it('does not continue the record of an earlier source of the same name, and removes it', async () => {
      const { store, namespace, key } = await setup();
      await store.create(
        key,
        leaseRecord(key, {
          holder: holder('old', 'another-host', 1),
          sourceUid: 'uid-old',
          state: { position: 9 },
        }),
      );
      const b = contender(store, 'b', namespace, 'uid-new');
      expect((await b.nextRun()).state).toBeUndefined();
      await b.stop();
      await SourceLease.remove(store, namespace, 'source');
      expect(await store.get(key)).toBeUndefined();
    });
  });
}
