/**
 * The ResourceStore conformance suite (DESIGN.md section 4). Written only against the contract in
 * src/backends/contracts.ts. Each test works in its own namespace, so backends that share data
 * between tests (one server) pass it too; changes from other namespaces are ignored. The test file
 * calls `harness.cleanup()`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type {
  Backend,
  ResourceChange,
  ResourceWatch,
  StoredResource,
} from '../../src/backends/contracts.js';
import type { Collection, Resource, ResourceKey } from '../../src/core/resources/types.js';
import { Collector } from '../support/collector.js';
import type { BackendHarness } from './harness.js';
import { uniqueName } from './fixtures.js';

function key(collection: Collection, namespace: string, name: string): ResourceKey {
  return { collection, namespace, name };
}

function resource(k: ResourceKey, spec: Record<string, unknown> = {}): Resource {
  const kind =
    k.collection === 'brokers'
      ? 'Broker'
      : k.collection === 'triggers'
        ? 'Trigger'
        : 'GitHubSource';
  return {
    apiVersion:
      k.collection === 'sources' ? 'sources.knative.dev/v1alpha1' : 'eventing.knative.dev/v1',
    kind,
    metadata: { name: k.name, namespace: k.namespace, labels: { team: 'a' }, generation: 1 },
    spec,
  };
}

function changeKey(change: ResourceChange): ResourceKey {
  return change.type === 'put' ? change.stored.key : change.key;
}

function sameKey(a: ResourceKey, b: ResourceKey): boolean {
  return a.collection === b.collection && a.namespace === b.namespace && a.name === b.name;
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  await expect(promise).rejects.toMatchObject({ code });
}

export function resourceStoreConformance(name: string, harness: BackendHarness): void {
  describe(`ResourceStore conformance: ${name}`, () => {
    const opened: Backend[] = [];
    const watches: ResourceWatch[] = [];

    async function open(): Promise<Backend> {
      const backend = await harness.open();
      opened.push(backend);
      return backend;
    }

    /** Watches the store, keeping only the changes in `namespace`. */
    async function watchNamespace(
      backend: Backend,
      namespace: string,
    ): Promise<{
      changes: Collector<ResourceChange>;
      snapshot: StoredResource[];
      watch: ResourceWatch;
    }> {
      const changes = new Collector<ResourceChange>(`changes in ${namespace}`);
      const watch = await backend.resources.watch((change) => {
        if (changeKey(change).namespace === namespace) changes.push(change);
      });
      watches.push(watch);
      const snapshot = watch.snapshot.filter((stored) => stored.key.namespace === namespace);
      return { changes, snapshot, watch };
    }

    afterEach(async () => {
      for (const watch of watches.splice(0)) watch.stop();
      for (const backend of opened.splice(0)) await backend.close().catch(() => {});
    });

    it('creates a resource and gets it back', async () => {
      const { resources } = await open();
      const k = key('brokers', uniqueName('ns'), 'default');
      const body = resource(k, { delivery: { retry: 3, backoffDelay: 'PT1S' } });
      const created = await resources.create(k, body);
      expect(created.key).toEqual(k);
      expect(created.resource).toEqual(body);
      expect(typeof created.revision).toBe('number');
      const got = await resources.get(k);
      expect(got).toEqual(created);
      expect(await resources.get(key('brokers', k.namespace, 'absent'))).toBeUndefined();
      expect(await resources.get(key('triggers', k.namespace, 'default'))).toBeUndefined();
    });

    it('rejects creating an existing key with CONFLICT and keeps the first', async () => {
      const { resources } = await open();
      const k = key('triggers', uniqueName('ns'), 't1');
      const first = await resources.create(k, resource(k, { broker: 'default', n: 1 }));
      await expectCode(resources.create(k, resource(k, { broker: 'default', n: 2 })), 'CONFLICT');
      expect(await resources.get(k)).toEqual(first);
    });

    it('updates with the current revision, giving a new revision', async () => {
      const { resources } = await open();
      const k = key('brokers', uniqueName('ns'), 'b');
      const created = await resources.create(k, resource(k));
      const next = resource(k, { delivery: { retry: 5 } });
      const updated = await resources.update(k, next, created.revision);
      expect(updated.revision).not.toBe(created.revision);
      expect(updated.resource).toEqual(next);
      expect(await resources.get(k)).toEqual(updated);
      const again = await resources.update(k, resource(k, { n: 3 }), updated.revision);
      expect(new Set([created.revision, updated.revision, again.revision]).size).toBe(3);
    });

    it('rejects an update with a stale revision, or of an absent key, with CONFLICT', async () => {
      const { resources } = await open();
      const k = key('brokers', uniqueName('ns'), 'b');
      const created = await resources.create(k, resource(k));
      const updated = await resources.update(k, resource(k, { n: 1 }), created.revision);
      await expectCode(resources.update(k, resource(k, { n: 2 }), created.revision), 'CONFLICT');
      expect(await resources.get(k)).toEqual(updated);
      const absent = key('brokers', k.namespace, 'absent');
      await expectCode(resources.update(absent, resource(absent), created.revision), 'CONFLICT');
      expect(await resources.get(absent)).toBeUndefined();
    });

    it('deletes, resolving false for an absent key and CONFLICT for a stale revision', async () => {
      const { resources } = await open();
      const namespace = uniqueName('ns');
      const a = key('sources', namespace, 'a');
      const b = key('sources', namespace, 'b');
      const storedA = await resources.create(a, resource(a));
      const storedB = await resources.create(b, resource(b));
      expect(await resources.delete(a)).toBe(true);
      expect(await resources.get(a)).toBeUndefined();
      expect(await resources.delete(a)).toBe(false);
      expect(await resources.delete(key('sources', namespace, 'never'))).toBe(false);
      const updatedB = await resources.update(b, resource(b, { n: 1 }), storedB.revision);
      await expectCode(resources.delete(b, storedB.revision), 'CONFLICT');
      expect(await resources.get(b)).toEqual(updatedB);
      expect(await resources.delete(b, updatedB.revision)).toBe(true);
      expect(await resources.get(b)).toBeUndefined();
      expect(storedA.revision).not.toBe(storedB.revision);
    });

    it('never gives a key the same revision twice, even after delete and create', async () => {
      const { resources } = await open();
      const k = key('triggers', uniqueName('ns'), 'again');
      const seen = new Set<number>();
      for (let round = 0; round < 3; round++) {
        const created = await resources.create(k, resource(k, { round }));
        const updated = await resources.update(k, resource(k, { round, n: 1 }), created.revision);
        seen.add(created.revision).add(updated.revision);
        expect(await resources.delete(k)).toBe(true);
      }
      expect(seen.size).toBe(6);
    });

    it('lists a collection, or one namespace of it, sorted by namespace then name', async () => {
      const { resources } = await open();
      const base = uniqueName('ns');
      const ns1 = `${base}-a`;
      const ns2 = `${base}-b`;
      const keys = [
        key('triggers', ns2, 'zeta'),
        key('triggers', ns1, 'mid'),
        key('triggers', ns2, 'alpha'),
        key('triggers', ns1, 'alpha'),
        key('triggers', ns1, 'zeta'),
        key('brokers', ns1, 'default'),
      ];
      for (const k of keys) await resources.create(k, resource(k));
      const names = (list: StoredResource[]) =>
        list.map((stored) => `${stored.key.namespace}/${stored.key.name}`);
      expect(names(await resources.list('triggers', ns1))).toEqual([
        `${ns1}/alpha`,
        `${ns1}/mid`,
        `${ns1}/zeta`,
      ]);
      expect(names(await resources.list('brokers', ns1))).toEqual([`${ns1}/default`]);
      expect(await resources.list('sources', ns1)).toEqual([]);
      const all = await resources.list('triggers');
      expect(all.every((stored) => stored.key.collection === 'triggers')).toBe(true);
      const sortKey = (stored: StoredResource) => [stored.key.namespace, stored.key.name] as const;
      for (let i = 1; i < all.length; i++) {
        const [ns, n] = sortKey(all[i - 1]!);
        const [ns2b, n2] = sortKey(all[i]!);
        expect(ns < ns2b || (ns === ns2b && n < n2), `list order at ${i}`).toBe(true);
      }
      expect(names(all.filter((stored) => stored.key.namespace.startsWith(base)))).toEqual([
        `${ns1}/alpha`,
        `${ns1}/mid`,
        `${ns1}/zeta`,
        `${ns2}/alpha`,
        `${ns2}/zeta`,
      ]);
      const listed = await resources.list('triggers', ns1);
      expect(listed[0]).toEqual(await resources.get(key('triggers', ns1, 'alpha')));
    });

    it('watches: the snapshot, then every change in order', async () => {
      const backend = await open();
      const { resources } = backend;
      const namespace = uniqueName('ns');
      const existing = key('brokers', namespace, 'existing');
      const storedExisting = await resources.create(existing, resource(existing));
      const { changes, snapshot } = await watchNamespace(backend, namespace);
      expect(snapshot).toEqual([storedExisting]);

      const t = key('triggers', namespace, 't');
      const created = await resources.create(t, resource(t, { n: 1 }));
      const updated = await resources.update(t, resource(t, { n: 2 }), created.revision);
      const other = key('sources', namespace, 'src');
      const createdOther = await resources.create(other, resource(other));
      expect(await resources.delete(t)).toBe(true);
      expect(await resources.delete(existing, storedExisting.revision)).toBe(true);

      const received = await changes.count(5);
      expect(received).toEqual([
        { type: 'put', stored: created },
        { type: 'put', stored: updated },
        { type: 'put', stored: createdOther },
        { type: 'delete', key: t },
        { type: 'delete', key: existing },
      ]);
    });

    it('watches without a gap: concurrent writes all show up once, in revision order', async () => {
      const backend = await open();
      const { resources } = backend;
      const namespace = uniqueName('ns');
      const keys = Array.from({ length: 20 }, (_, i) => key('triggers', namespace, `t${i}`));
      const early = Promise.all(keys.slice(0, 10).map((k) => resources.create(k, resource(k))));
      const { changes, snapshot } = await watchNamespace(backend, namespace);
      const late = Promise.all(keys.slice(10).map((k) => resources.create(k, resource(k))));
      await Promise.all([early, late]);
      const fromChanges = () =>
        changes.items.flatMap((change) => (change.type === 'put' ? [change.stored] : []));
      await changes.until(
        () => snapshot.length + fromChanges().length >= 20,
        'all 20 resources between the snapshot and the changes',
      );
      const seen = [...snapshot, ...fromChanges()].map((stored) => stored.key.name);
      expect(seen.sort()).toEqual(keys.map((k) => k.name).sort());
      const revisions = fromChanges().map((stored) => stored.revision);
      expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
    });

    it('stops delivering changes to a stopped watch', async () => {
      const backend = await open();
      const { resources } = backend;
      const namespace = uniqueName('ns');
      const first = await watchNamespace(backend, namespace);
      const k1 = key('brokers', namespace, 'one');
      await resources.create(k1, resource(k1));
      await first.changes.count(1);
      first.watch.stop();
      const second = await watchNamespace(backend, namespace);
      expect(second.snapshot.map((stored) => stored.key.name)).toEqual(['one']);
      const k2 = key('brokers', namespace, 'two');
      await resources.create(k2, resource(k2));
      const [change] = await second.changes.count(1);
      expect(sameKey(changeKey(change!), k2)).toBe(true);
      expect(first.changes.length).toBe(1);
    });

    it.skipIf(harness.reopen === undefined)(
      'keeps resources and revisions across a restart',
      async () => {
        const backend = await open();
        const namespace = uniqueName('ns');
        const k = key('brokers', namespace, 'durable');
        const gone = key('brokers', namespace, 'gone');
        const created = await backend.resources.create(k, resource(k));
        const updated = await backend.resources.update(k, resource(k, { n: 1 }), created.revision);
        const deleted = await backend.resources.create(gone, resource(gone));
        await backend.resources.delete(gone);
        await backend.close();
        const reopened = await harness.reopen!();
        opened.push(reopened);
        expect(await reopened.resources.get(k)).toEqual(updated);
        expect(await reopened.resources.get(gone)).toBeUndefined();
        expect(await reopened.resources.list('brokers', namespace)).toEqual([updated]);
        await expectCode(reopened.resources.update(k, resource(k), created.revision), 'CONFLICT');
        const next = await reopened.resources.update(k, resource(k, { n: 2 }), updated.revision);
        const recreated = await reopened.resources.create(gone, resource(gone));
        const revisions = [created, updated, deleted, next, recreated].map((s) => s.revision);
        expect(new Set(revisions).size).toBe(revisions.length);
      },
    );
  });
}
