/**
 * The NATS ResourceStore beyond the conformance suite: two replicas on one bucket, keys that are
 * not KV tokens, an empty bucket, closing, and a watch that outlives a NATS restart.
 */
import { createServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type {
  Backend,
  ResourceChange,
  ResourceWatch,
  StoredResource,
} from '../../src/backends/contracts.js';
import { createNatsBackend } from '../../src/backends/nats/index.js';
import type { Resource, ResourceKey } from '../../src/core/resources/types.js';
import { uniqueName } from '../conformance/fixtures.js';
import { Collector } from '../support/collector.js';
import {
  dropConsumers,
  natsHarness,
  natsRequired,
  uniquePrefix,
  type NatsHarness,
} from '../support/nats.js';
import { skipWithoutNatsServer, startNatsServer } from '../support/nats-server.js';

const available = await natsRequired('the NATS resource store tests');
if (skipWithoutNatsServer) console.warn('Skipping the NATS restart test: no nats-server binary.');

const harnesses: NatsHarness[] = [];
const watches: ResourceWatch[] = [];

function harness(options: Parameters<typeof natsHarness>[0] = {}): NatsHarness {
  const h = natsHarness(options);
  harnesses.push(h);
  return h;
}

afterEach(async () => {
  for (const watch of watches.splice(0)) watch.stop();
  for (const h of harnesses.splice(0)) await h.cleanup();
});

function trigger(namespace: string, name: string, spec: Record<string, unknown> = {}) {
  const key: ResourceKey = { collection: 'triggers', namespace, name };
  const resource: Resource = {
    apiVersion: 'eventing.knative.dev/v1',
    kind: 'Trigger',
    metadata: { name, namespace },
    spec: { broker: 'default', ...spec },
  };
  return { key, resource };
}

/** A TCP port on 127.0.0.1 that nothing listens on (at the time of the call). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Watches `backend`, keeping the changes in `namespace`. */
async function watchNamespace(backend: Backend, namespace: string) {
  const changes = new Collector<ResourceChange>(`changes in ${namespace}`);
  const watch = await backend.resources.watch((change) => {
    const key = change.type === 'put' ? change.stored.key : change.key;
    if (key.namespace === namespace) changes.push(change);
  });
  watches.push(watch);
  const snapshot = watch.snapshot.filter((stored) => stored.key.namespace === namespace);
  return { changes, snapshot, watch };
}

describe.skipIf(!available)('NATS ResourceStore', () => {
  it('two replicas on one prefix see each other through their watches', async () => {
    const h = harness();
    const a = await h.open();
    const b = await h.open();
    const namespace = uniqueName('ns');
    const onA = await watchNamespace(a, namespace);
    const onB = await watchNamespace(b, namespace);
    expect(onB.snapshot).toEqual([]);

    const t = trigger(namespace, 't1');
    const created = await a.resources.create(t.key, t.resource);
    expect(await onB.changes.next()).toEqual({ type: 'put', stored: created });
    expect(await b.resources.get(t.key)).toEqual(created);

    const updated = await b.resources.update(
      t.key,
      trigger(namespace, 't1', { n: 2 }).resource,
      created.revision,
    );
    expect(await onA.changes.count(2)).toEqual([
      { type: 'put', stored: created },
      { type: 'put', stored: updated },
    ]);
    // A's copy is stale now: compare-and-set holds across the replicas.
    await expect(a.resources.update(t.key, t.resource, created.revision)).rejects.toMatchObject({
      code: 'CONFLICT',
    });
    await expect(a.resources.delete(t.key, created.revision)).rejects.toMatchObject({
      code: 'CONFLICT',
    });
    await expect(b.resources.create(t.key, t.resource)).rejects.toMatchObject({ code: 'CONFLICT' });

    expect(await a.resources.delete(t.key, updated.revision)).toBe(true);
    expect((await onB.changes.count(3))[2]).toEqual({ type: 'delete', key: t.key });
    expect(await b.resources.get(t.key)).toBeUndefined();
    expect(await b.resources.list('triggers', namespace)).toEqual([]);

    // A third replica starting now gets the state in its snapshot, not as changes.
    const again = await b.resources.create(t.key, t.resource);
    expect(again.revision).toBeGreaterThan(updated.revision);
    const c = await h.open();
    const onC = await watchNamespace(c, namespace);
    expect(onC.snapshot).toEqual([again]);
    expect(onC.changes.length).toBe(0);
  });

  it('a watch of an empty bucket resolves with an empty snapshot, then sees changes', async () => {
    const backend = await harness().open();
    const watch = await backend.resources.watch(() => {});
    watches.push(watch);
    expect(watch.snapshot).toEqual([]);
    const namespace = uniqueName('ns');
    const { changes } = await watchNamespace(backend, namespace);
    const t = trigger(namespace, 'first');
    const created = await backend.resources.create(t.key, t.resource);
    expect(await changes.next()).toEqual({ type: 'put', stored: created });
  });

  it('a watch of a bucket holding only deleted keys has an empty snapshot', async () => {
    const backend = await harness().open();
    const namespace = uniqueName('ns');
    const t = trigger(namespace, 'gone');
    await backend.resources.create(t.key, t.resource);
    expect(await backend.resources.delete(t.key)).toBe(true);
    const { changes, snapshot } = await watchNamespace(backend, namespace);
    expect(snapshot).toEqual([]);
    const created = await backend.resources.create(t.key, t.resource);
    expect(await changes.next()).toEqual({ type: 'put', stored: created });
  });

  it('stores keys that are not KV tokens under their own name', async () => {
    const backend = await harness().open();
    const namespace = uniqueName('ns');
    const names = ['a.b', 'a_b', 'a_2Eb', '*', '>', 'x y', 'Zürich', '_', ''];
    const { changes } = await watchNamespace(backend, namespace);
    const created: StoredResource[] = [];
    for (const name of names) {
      const t = trigger(namespace, name);
      created.push(await backend.resources.create(t.key, t.resource));
    }
    for (const stored of created) expect(await backend.resources.get(stored.key)).toEqual(stored);
    const listed = await backend.resources.list('triggers', namespace);
    expect(listed.map((stored) => stored.key.name)).toEqual([...names].sort());
    const seen = await changes.count(names.length);
    expect(seen.map((change) => (change.type === 'put' ? change.stored.key.name : '?'))).toEqual(
      names,
    );
    // A wildcard in the namespace is a name, not a pattern.
    expect(await backend.resources.list('triggers', '*')).toEqual([]);
    expect(await backend.resources.get(trigger('*', 'a.b').key)).toBeUndefined();
    expect(await backend.resources.delete(trigger(namespace, 'a.b').key)).toBe(true);
    expect(await backend.resources.get(trigger(namespace, 'a.b').key)).toBeUndefined();
    expect(await backend.resources.get(trigger(namespace, 'a_b').key)).toEqual(created[1]);
  });

  it('rejects a key it cannot store with BAD_REQUEST; reading it finds nothing', async () => {
    const backend = await harness().open();
    const t = trigger(uniqueName('ns'), 'x'.repeat(2_000));
    await expect(backend.resources.create(t.key, t.resource)).rejects.toMatchObject({
      code: 'BAD_REQUEST',
    });
    await expect(backend.resources.update(t.key, t.resource, 1)).rejects.toMatchObject({
      code: 'BAD_REQUEST',
    });
    expect(await backend.resources.get(t.key)).toBeUndefined();
    expect(await backend.resources.delete(t.key)).toBe(false);
    const broken = { collection: 'triggers', namespace: 'ns', name: 7 } as unknown as ResourceKey;
    await expect(backend.resources.get(broken)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('rejects a resource larger than NATS takes with PAYLOAD_TOO_LARGE', async () => {
    const backend = await harness().open();
    const t = trigger(uniqueName('ns'), 'big', { blob: 'x'.repeat(2 * 1024 * 1024) });
    await expect(backend.resources.create(t.key, t.resource)).rejects.toMatchObject({
      code: 'PAYLOAD_TOO_LARGE',
    });
    expect(await backend.resources.get(t.key)).toBeUndefined();
  });

  it('rejects with SHUTTING_DOWN once closed, and stops delivering changes', async () => {
    const h = harness();
    const a = await h.open();
    const b = await h.open();
    const namespace = uniqueName('ns');
    const onA = await watchNamespace(a, namespace);
    const onB = await watchNamespace(b, namespace);
    await a.resources.close();
    const t = trigger(namespace, 't');
    await expect(a.resources.get(t.key)).rejects.toMatchObject({ code: 'SHUTTING_DOWN' });
    await expect(a.resources.create(t.key, t.resource)).rejects.toMatchObject({
      code: 'SHUTTING_DOWN',
    });
    await expect(a.resources.watch(() => {})).rejects.toMatchObject({ code: 'SHUTTING_DOWN' });
    // B's watch sees this write; A's, stopped by close, must not.
    await b.resources.create(t.key, t.resource);
    await onB.changes.next();
    const marker = trigger(namespace, 'marker');
    await b.resources.create(marker.key, marker.resource);
    await onB.changes.count(2);
    expect(onA.changes.length).toBe(0);
  });

  it('fails to open with BACKEND_UNAVAILABLE when NATS does not answer', async () => {
    const url = `nats://127.0.0.1:${await freePort()}`;
    await expect(
      createNatsBackend({ url, prefix: uniquePrefix(), connectTimeoutMs: 2_000 }),
    ).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
  });

  it.skipIf(skipWithoutNatsServer)(
    'a watch resumes after a NATS restart with every change it missed; requests fail meanwhile',
    async () => {
      const server = await startNatsServer();
      try {
        const h = harness({ url: server.url });
        const a = await h.open();
        const namespace = uniqueName('ns');
        const onA = await watchNamespace(a, namespace);
        const before = trigger(namespace, 'before');
        const first = await a.resources.create(before.key, before.resource);
        expect(await onA.changes.next()).toEqual({ type: 'put', stored: first });

        // As if the server forgot the watch's consumer during a long outage: A must start a new one.
        expect(await dropConsumers(h.prefix, server.url)).toBeGreaterThan(0);
        // Writes A's watch misses for now; it must get every one of them after the restart, the
        // replaced values too (the bucket keeps them for a watch that is behind).
        const b = await h.open();
        const mid = trigger(namespace, 'mid');
        const midCreated = await b.resources.create(mid.key, mid.resource);
        const midUpdated = await b.resources.update(
          mid.key,
          trigger(namespace, 'mid', { n: 2 }).resource,
          midCreated.revision,
        );
        expect(await b.resources.delete(mid.key)).toBe(true);

        await server.stop();
        // Fails at once when the client has seen the disconnect, else when the request times out.
        await expect(a.resources.get(before.key)).rejects.toMatchObject({
          code: 'BACKEND_UNAVAILABLE',
        });
        await server.restart();

        // Another replica, connected afresh, writes; A's watch must report it once reconnected.
        const c = await h.open();
        const after = trigger(namespace, 'after');
        const second = await c.resources.create(after.key, after.resource);
        expect(await c.resources.delete(before.key)).toBe(true);
        expect(await onA.changes.count(6)).toEqual([
          { type: 'put', stored: first },
          { type: 'put', stored: midCreated },
          { type: 'put', stored: midUpdated },
          { type: 'delete', key: mid.key },
          { type: 'put', stored: second },
          { type: 'delete', key: before.key },
        ]);
      } finally {
        for (const watch of watches.splice(0)) watch.stop();
        for (const h of harnesses.splice(0)) await h.cleanup().catch(() => {});
        await server.close();
      }
    },
  );
});
