/**
 * ApiServerSource through the real server (on each backend: the nats and kafka vitest projects run
 * this file again) against the in-test Kubernetes API server that the real `@kubernetes/client-node`
 * talks to (test/support/kube-server.ts): Knative's event types, source, subject, extensions and
 * data in both modes, label and owner filters, namespaces, a kubeconfig file, the relist after 410
 * Gone emitting only what changed, a sink that refuses and then recovers with nothing lost (more
 * changes than a stream holds, so the watch pauses and resumes), and errors in the status.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_QUEUED } from '../../src/adapters/kubernetes/index.js';
import { getJson, until } from '../support/delivery.js';
import { useServer } from '../support/e2e.js';
import { KubeServer, type KubeObject } from '../support/kube-server.js';
import type { ReceivedRequest } from '../support/receiver.js';
import { putResource } from '../support/server-process.js';
import { condition, untilSourceCondition } from '../support/sources.js';

const TOKEN = 'kube-token';
const fixture = useServer();
let kube: KubeServer;
let namespaces = 0;
const dir = mkdtempSync(path.join(tmpdir(), 'tributary-kube-'));

beforeAll(async () => {
  kube = await KubeServer.start({ token: TOKEN });
});
afterAll(async () => {
  await kube.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A namespace of its own for each test. */
function newNamespace(): string {
  return `ns-${++namespaces}`;
}

const cluster = (token = TOKEN) => ({ server: kube.url, token: { value: token } });

async function putSource(name: string, spec: Record<string, unknown>): Promise<void> {
  const response = await putResource(fixture.url, 'sources', 'default', name, {
    apiVersion: 'sources.knative.dev/v1',
    kind: 'ApiServerSource',
    spec: { cluster: cluster(), ...spec },
  });
  expect([200, 201], JSON.stringify(response.body)).toContain(response.status);
}

function configMap(namespace: string, name: string, data: Record<string, string> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data };
}

const typeOf = (r: ReceivedRequest): string => String(r.headers['ce-type']);
const nameOf = (r: ReceivedRequest): string => String(r.headers['ce-name']);
const changes = (requests: readonly ReceivedRequest[]): string[] =>
  requests.map((r) => `${typeOf(r).split('.').pop()} ${nameOf(r)}`);

/** Resolves once the source's streams are watching (after their first list). */
async function untilWatching(name: string, watches: number): Promise<void> {
  await untilSourceCondition(fixture.url, name, 'Connected', 'True');
  await kube.untilWatches(watches, 20_000);
}

describe('ApiServerSource', { timeout: 60_000 }, () => {
  it("Reference mode: Knative's events for pods matching a selector, into a broker", async () => {
    const broker = await fixture.broker();
    const receiver = await fixture.subscribe(broker, `kube-ref-${broker}`);
    const ns = newNamespace();
    const other = newNamespace();
    // There before the source: the first list is the baseline and emits nothing.
    kube.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'old', namespace: ns, labels: { app: 'web' } },
    });
    const before = kube.openWatches;
    await putSource('refs', {
      resources: [{ apiVersion: 'v1', kind: 'Pod', selector: { matchLabels: { app: 'web' } } }],
      namespaces: [ns],
      ceOverrides: { extensions: { team: 'web' } },
      sink: { ref: { kind: 'Broker', name: broker } },
    });
    await untilWatching('refs', before + 1);
    const pod: KubeObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web-1', namespace: ns, labels: { app: 'web' } },
      spec: { containers: [{ name: 'c', image: 'nginx' }] },
    };
    kube.create({ ...pod, metadata: { ...pod.metadata, name: 'db-1', labels: { app: 'db' } } });
    kube.create({ ...pod, metadata: { ...pod.metadata, namespace: other } });
    const created = kube.create(pod);
    const updated = kube.update({ ...created, spec: { containers: [] } });
    const deleted = kube.remove('v1', 'Pod', 'web-1', ns);
    const got = await receiver.waitFor(3, 30_000);
    expect(changes(got)).toEqual(['add web-1', 'update web-1', 'delete web-1']);
    const uid = created.metadata.uid;
    expect(got.map((r) => r.headers['ce-id'])).toEqual([
      `${uid}/${created.metadata.resourceVersion}/add`,
      `${uid}/${updated.metadata.resourceVersion}/update`,
      `${uid}/${deleted.metadata.resourceVersion}/delete`,
    ]);
    expect(got[0]!.headers).toMatchObject({
      'ce-specversion': '1.0',
      'ce-type': 'dev.knative.apiserver.ref.add',
      'ce-source': kube.url,
      'ce-subject': `/apis/v1/namespaces/${ns}/pods/web-1`,
      'ce-kind': 'Pod',
      'ce-apiversion': 'v1',
      'ce-name': 'web-1',
      'ce-namespace': ns,
      'ce-team': 'web',
      'content-type': 'application/json',
    });
    expect(typeOf(got[2]!)).toBe('dev.knative.apiserver.ref.delete');
    expect(got[1]!.body.toString('utf8')).toBe(
      `{"kind":"Pod","namespace":"${ns}","name":"web-1","apiVersion":"v1"}`,
    );
    const status = await until(
      'the counters of source refs',
      async () => (await getJson(`${fixture.url}/v1/namespaces/default/sources/refs`)).body.status,
      (s: any) => s?.events?.forwarded === 3,
    );
    expect(condition(status, 'Ready')?.status).toBe('True');
    expect(status.events).toMatchObject({ received: 3, forwarded: 3, failed: 0 });
    // Nothing else came: not the old pod, not the db pod, not the other namespace's.
    expect(receiver.requests).toHaveLength(3);
  });

  it('Resource mode: whole objects of every namespace, filtered by owner, from a kubeconfig file', async () => {
    const receiver = await fixture.receiver();
    const ns = newNamespace();
    const kubeconfig = path.join(dir, 'config');
    writeFileSync(kubeconfig, kube.kubeconfigText());
    const before = kube.openWatches;
    await putSource('resources', {
      mode: 'Resource',
      resources: [{ apiVersion: 'apps/v1', kind: 'Deployment' }],
      namespaceSelector: {},
      owner: { apiVersion: 'example.dev/v1', kind: 'Shop' },
      cluster: { kubeconfig },
      sink: { uri: receiver.url },
    });
    await untilWatching('resources', before + 1);
    const owner = (kind: string) => [
      { apiVersion: 'example.dev/v1', kind, name: 'main', uid: 'owner-uid', controller: true },
    ];
    kube.create({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'not-ours', namespace: ns, ownerReferences: owner('Other') },
      spec: { replicas: 1 },
    });
    const ours = kube.create({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'shop', namespace: ns, ownerReferences: owner('Shop') },
      spec: { replicas: 2 },
    });
    const [request] = await receiver.waitFor(1, 30_000);
    expect(request!.headers).toMatchObject({
      'ce-type': 'dev.knative.apiserver.resource.add',
      'ce-subject': `/apis/apps/v1/namespaces/${ns}/deployments/shop`,
      'ce-apiversion': 'apps/v1',
      'ce-kind': 'Deployment',
    });
    expect(JSON.parse(request!.body.toString('utf8'))).toEqual(ours);
    const scaled = kube.update({ ...ours, spec: { replicas: 3 } });
    kube.remove('apps/v1', 'Deployment', 'not-ours', ns);
    const removed = kube.remove('apps/v1', 'Deployment', 'shop', ns);
    const all = await receiver.waitFor(3, 30_000);
    expect(changes(all)).toEqual(['add shop', 'update shop', 'delete shop']);
    expect(all.map((r) => r.headers['ce-type'])).toEqual([
      'dev.knative.apiserver.resource.add',
      'dev.knative.apiserver.resource.update',
      'dev.knative.apiserver.resource.delete',
    ]);
    expect(JSON.parse(all[1]!.body.toString('utf8'))).toEqual(scaled);
    expect(JSON.parse(all[2]!.body.toString('utf8'))).toEqual(removed);
  });

  it("applies Knative's filters (Subscriptions API dialects) to the events", async () => {
    const receiver = await fixture.receiver();
    const ns = newNamespace();
    const before = kube.openWatches;
    await putSource('filtered', {
      resources: [{ apiVersion: 'v1', kind: 'ConfigMap' }],
      namespaces: [ns],
      filters: [
        { any: [{ suffix: { type: '.delete' } }, { prefix: { name: 'keep-' } }] },
        { not: { exact: { name: 'keep-not-this' } } },
      ],
      sink: { uri: receiver.url },
    });
    await untilWatching('filtered', before + 1);
    for (const name of ['drop', 'keep-1', 'keep-not-this']) kube.create(configMap(ns, name));
    kube.remove('v1', 'ConfigMap', 'drop', ns);
    const got = await receiver.waitFor(2, 30_000);
    expect(changes(got)).toEqual(['add keep-1', 'delete drop']);
    // The next change that passes comes after them: nothing filtered out was sent in between.
    kube.remove('v1', 'ConfigMap', 'keep-1', ns);
    expect(changes(await receiver.waitFor(3, 30_000))).toEqual([
      'add keep-1',
      'delete drop',
      'delete keep-1',
    ]);
  });

  it('after 410 Gone lists again and emits only what changed meanwhile', async () => {
    const receiver = await fixture.receiver();
    const ns = newNamespace();
    const before = kube.openWatches;
    await putSource('relist', {
      resources: [{ apiVersion: 'v1', kind: 'ConfigMap' }],
      namespaces: [ns],
      sink: { uri: receiver.url },
    });
    await untilWatching('relist', before + 1);
    for (const name of ['a', 'b', 'c']) kube.create(configMap(ns, name));
    await receiver.waitFor(3, 30_000);
    // The watch breaks; while the source is away the objects change and the history is compacted,
    // so its position has expired when it comes back.
    const since = kube.requests.length;
    kube.failNext(
      1,
      500,
      (method, p) => method === 'GET' && p.includes('watch=true') && p.includes(ns),
    );
    kube.endWatches();
    await kube.untilRequest((r) => r.status === 500, { since, timeoutMs: 20_000 });
    kube.update(configMap(ns, 'a', { changed: 'yes' }));
    kube.remove('v1', 'ConfigMap', 'b', ns);
    kube.create(configMap(ns, 'd'));
    kube.compact();
    const all = await receiver.waitFor(6, 30_000);
    // In the list's order, then what is gone.
    expect(changes(all)).toEqual(['add a', 'add b', 'add c', 'update a', 'add d', 'delete b']);
    // It watches again, and a later change comes once.
    await kube.untilWatches(before + 1, 20_000);
    kube.update(configMap(ns, 'c', { later: 'yes' }));
    const last = await receiver.waitFor(7, 30_000);
    expect(changes(last.slice(6))).toEqual(['update c']);
    expect(receiver.requests).toHaveLength(7);
    // Again, with the expiry answered as an HTTP 410 instead of an ERROR event.
    kube.expiredAs = 'status';
    try {
      const again = kube.requests.length;
      kube.failNext(
        1,
        500,
        (method, p) => method === 'GET' && p.includes('watch=true') && p.includes(ns),
      );
      kube.endWatches();
      await kube.untilRequest((r) => r.status === 500, { since: again, timeoutMs: 20_000 });
      kube.remove('v1', 'ConfigMap', 'c', ns);
      kube.compact();
      const gone = await receiver.waitFor(8, 30_000);
      expect(changes(gone.slice(7))).toEqual(['delete c']);
      await kube.untilRequest((r) => r.status === 410 && r.path.includes(ns), {
        since: again,
        timeoutMs: 20_000,
      });
    } finally {
      kube.expiredAs = 'event';
    }
  });

  it('holds changes while the sink refuses (pausing the watch) and then delivers every one in order', async () => {
    const receiver = await fixture.receiver();
    let refusing = true;
    const accepted: string[] = [];
    receiver.responder = (request) => {
      if (refusing) return { status: 503 };
      accepted.push(nameOf(request));
      return { status: 200 };
    };
    const ns = newNamespace();
    const before = kube.openWatches;
    await putSource('refusing', {
      resources: [{ apiVersion: 'v1', kind: 'ConfigMap' }],
      namespaces: [ns],
      delivery: { retry: 0 },
      sink: { uri: receiver.url },
    });
    await untilWatching('refusing', before + 1);
    const names = Array.from(
      { length: MAX_QUEUED + 200 },
      (_, i) => `cm-${String(i).padStart(4, '0')}`,
    );
    for (const name of names) kube.create(configMap(ns, name));
    await untilSourceCondition(fixture.url, 'refusing', 'SinkAccepting', 'False');
    refusing = false;
    await until(
      `${names.length} changes accepted`,
      async () => accepted.length,
      (n) => n >= names.length,
      45_000,
    );
    // In order, each once.
    expect(accepted).toEqual(names);
    // More changes than a stream holds: it closed its watch and opened it again from its position.
    const watches = kube.requests.filter(
      (r) => r.path.includes('watch=true') && r.path.includes(`/${ns}/`),
    );
    expect(watches.length).toBeGreaterThanOrEqual(2);
    expect(new URL(watches[1]!.path, kube.url).searchParams.get('resourceVersion')).not.toBe(
      new URL(watches[0]!.path, kube.url).searchParams.get('resourceVersion'),
    );
  });

  it('shows a wrong token, a forbidden resource and an unknown kind in the status, and recovers', async () => {
    const receiver = await fixture.receiver();
    const ns = newNamespace();
    await putSource('errors', {
      resources: [{ apiVersion: 'v1', kind: 'Service' }],
      namespaces: [ns],
      cluster: cluster('wrong-token'),
      sink: { uri: receiver.url },
    });
    await untilSourceCondition(fixture.url, 'errors', 'Connected', 'False', 'AuthenticationFailed');
    await putSource('errors', {
      resources: [{ apiVersion: 'v1', kind: 'Gadget' }],
      namespaces: [ns],
      sink: { uri: receiver.url },
    });
    await untilSourceCondition(fixture.url, 'errors', 'Connected', 'False', 'ResourceNotFound');
    kube.forbid('services', ns);
    await putSource('errors', {
      resources: [{ apiVersion: 'v1', kind: 'Service' }],
      namespaces: [ns],
      sink: { uri: receiver.url },
    });
    const forbidden = await untilSourceCondition(
      fixture.url,
      'errors',
      'Connected',
      'False',
      'NotAuthorized',
    );
    expect(condition(forbidden, 'Connected').message).toMatch(/services is forbidden/);
    const before = kube.openWatches;
    kube.allow('services', ns);
    await untilWatching('errors', before + 1);
    kube.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'api', namespace: ns } });
    const [request] = await receiver.waitFor(1, 30_000);
    expect(changes([request!])).toEqual(['add api']);
  });
});
