/**
 * The fake Kubernetes API server (test/support/kube-server.ts) driven by the real
 * @kubernetes/client-node 1.4.0: generated CoreV1Api calls, KubernetesObjectApi (discovery),
 * Watch and makeInformer. Besides checking the server, these tests pin down what the client does
 * on 410, errors and stream ends, so code built on it can rely on that behaviour.
 */
import {
  ApiException,
  type ListWatch,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  Watch,
  makeInformer,
  type V1Pod,
} from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KubeServer, type KubeObject } from '../support/kube-server.js';

const TOKEN = 'test-token';

/** Items pushed by callbacks, taken in order by awaiting `next()`. */
class Queue<T> {
  private readonly items: T[] = [];
  private readonly waiters: ((item: T) => void)[] = [];

  push = (item: T): void => {
    const waiter = this.waiters.shift();
    if (waiter) waiter(item);
    else this.items.push(item);
  };

  next(timeoutMs = 5000): Promise<T> {
    const item = this.items.shift();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no item within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (value: T) => {
        clearTimeout(timer);
        resolve(value);
      };
      this.waiters.push(waiter);
    });
  }

  async take(count: number): Promise<T[]> {
    const taken: T[] = [];
    for (let i = 0; i < count; i++) taken.push(await this.next());
    return taken;
  }

  /** Items pushed but not taken yet. */
  get pending(): readonly T[] {
    return this.items;
  }
}

interface WatchEvent {
  type: string;
  object: any;
}

interface InformerEvent {
  verb: 'add' | 'update' | 'delete' | 'connect' | 'error';
  name?: string;
  object?: any;
  error?: any;
}

function pod(name: string, labels?: Record<string, string>, namespace = 'ns'): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, ...(labels ? { labels } : {}) },
    spec: { containers: [{ name: 'main', image: 'busybox' }] },
  };
}

let server: KubeServer;
let kc: KubeConfig;
let api: CoreV1Api;
const cleanups: (() => unknown)[] = [];

beforeEach(async () => {
  server = await KubeServer.start({ token: TOKEN });
  kc = configFor(server);
  api = kc.makeApiClient(CoreV1Api);
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await server.close();
});

function configFor(kube: KubeServer, token?: string | null): KubeConfig {
  const config = new KubeConfig();
  config.loadFromOptions(kube.kubeconfigOptions(token));
  return config;
}

/** Starts a raw watch; its events and its `done` error (null for a normal end) are queued. */
async function watch(
  path: string,
  query: Record<string, string | number | boolean | undefined>,
  config = kc,
) {
  const events = new Queue<WatchEvent>();
  const done = new Queue<{ error: any }>();
  const controller = await new Watch(config).watch(
    path,
    query,
    (type, object) => events.push({ type, object }),
    (error) => done.push({ error: error ?? null }),
  );
  cleanups.push(() => controller.abort());
  return { events, done };
}

function podInformer(namespace = 'ns') {
  // makeInformer returns a ListWatch (informer.js); its type just leaves out latestResourceVersion.
  const informer = makeInformer<V1Pod>(kc, `/api/v1/namespaces/${namespace}/pods`, () =>
    api.listNamespacedPod({ namespace }),
  ) as ListWatch<V1Pod>;
  const events = new Queue<InformerEvent>();
  for (const verb of ['add', 'update', 'delete'] as const) {
    informer.on(verb, (object) => events.push({ verb, name: object.metadata?.name, object }));
  }
  informer.on('connect', () => events.push({ verb: 'connect' }));
  informer.on('error', (error) => events.push({ verb: 'error', error }));
  cleanups.push(() => informer.stop());
  return { informer, events };
}

function names(items: readonly { metadata?: { name?: string; namespace?: string } }[]) {
  return items.map((o) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name}`).sort();
}

/**
 * The error a client call rejects with. For an ApiException, `status` is its body parsed:
 * client-node 1.4.0 keeps the Status body of an error answer as the raw JSON text.
 */
async function rejection(promise: Promise<unknown>): Promise<any> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ApiException && typeof error.body === 'string') {
      return Object.assign(error, { status: JSON.parse(error.body) });
    }
    return error;
  }
  throw new Error('expected a rejection');
}

/** The requests since index `since`, as `METHOD path status` lines. */
function requestsSince(since: number): string[] {
  return server.requests.slice(since).map((r) => `${r.method} ${r.path} ${r.status}`);
}

describe('lists and gets through CoreV1Api', () => {
  beforeEach(() => {
    server.create(pod('a', { app: 'web', tier: 'fe' }));
    server.create(pod('b', { app: 'web', tier: 'be' }));
    server.create(pod('c', { app: 'db' }));
    server.create(pod('d', { app: 'web' }, 'other'));
  });

  it('lists a namespace with the global resourceVersion and items without kind', async () => {
    const list = await api.listNamespacedPod({ namespace: 'ns' });
    expect(names(list.items)).toEqual(['ns/a', 'ns/b', 'ns/c']);
    expect(list.metadata?.resourceVersion).toBe(server.resourceVersion);
    expect(server.resourceVersion).toBe('4');
    // As from the real server: list items carry no kind/apiVersion; the client fills in nothing.
    expect(list.items[0]!.kind).toBeUndefined();
    expect(list.items[0]!.apiVersion).toBeUndefined();
    expect(list.items[0]!.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(list.items[0]!.metadata?.creationTimestamp).toBeInstanceOf(Date);
    expect(list.items[0]!.metadata?.generation).toBe(1);
  });

  it.each([
    ['app=web', ['ns/a', 'ns/b']],
    ['app==web,tier!=fe', ['ns/b']],
    ['app in (web,db),tier notin (be)', ['ns/a', 'ns/c']],
    ['tier', ['ns/a', 'ns/b']],
    ['!tier', ['ns/c']],
    ['app!=web', ['ns/c']],
  ])('selects labels %s', async (labelSelector, expected) => {
    const list = await api.listNamespacedPod({ namespace: 'ns', labelSelector });
    expect(names(list.items)).toEqual(expected);
  });

  it('lists all namespaces with label and field selectors', async () => {
    const web = await api.listPodForAllNamespaces({ labelSelector: 'app=web' });
    expect(names(web.items)).toEqual(['ns/a', 'ns/b', 'other/d']);
    const byName = await api.listPodForAllNamespaces({ fieldSelector: 'metadata.name=b' });
    expect(names(byName.items)).toEqual(['ns/b']);
    const elsewhere = await api.listPodForAllNamespaces({
      fieldSelector: 'metadata.namespace!=ns',
    });
    expect(names(elsewhere.items)).toEqual(['other/d']);
    const both = await api.listPodForAllNamespaces({
      labelSelector: 'app=web',
      fieldSelector: 'metadata.namespace==ns,metadata.name!=a',
    });
    expect(names(both.items)).toEqual(['ns/b']);
  });

  it('rejects a malformed selector with 400', async () => {
    const error = await rejection(api.listNamespacedPod({ namespace: 'ns', labelSelector: 'a b' }));
    expect(error).toBeInstanceOf(ApiException);
    expect(error.code).toBe(400);
    const field = await rejection(
      api.listNamespacedPod({ namespace: 'ns', fieldSelector: 'spec.bogus=1' }),
    );
    expect(field.code).toBe(400);
    expect(field.status).toMatchObject({ reason: 'BadRequest' });
  });

  it('gets one object with kind, or a 404 Status', async () => {
    const a = await api.readNamespacedPod({ namespace: 'ns', name: 'a' });
    expect(a.kind).toBe('Pod');
    expect(a.apiVersion).toBe('v1');
    expect(a.metadata?.labels).toEqual({ app: 'web', tier: 'fe' });
    const error = await rejection(api.readNamespacedPod({ namespace: 'ns', name: 'zz' }));
    expect(error).toBeInstanceOf(ApiException);
    expect(error.code).toBe(404);
    expect(error.status).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'pods "zz" not found',
      reason: 'NotFound',
      details: { name: 'zz', group: '', kind: 'pods' },
      code: 404,
    });
  });
});

describe('writes over HTTP', () => {
  it('creates, replaces with optimistic concurrency, and deletes', async () => {
    const created = await api.createNamespacedPod({ namespace: 'ns', body: pod('p') });
    expect(created.metadata?.uid).toBeTruthy();
    expect(created.metadata?.resourceVersion).toBe('1');
    expect(server.get('v1', 'Pod', 'p', 'ns')?.metadata.uid).toBe(created.metadata?.uid);

    const again = await rejection(api.createNamespacedPod({ namespace: 'ns', body: pod('p') }));
    expect(again.code).toBe(409);
    expect(again.status).toMatchObject({
      reason: 'AlreadyExists',
      message: 'pods "p" already exists',
    });

    const changed = { ...created, metadata: { ...created.metadata, labels: { v: '2' } } };
    const replaced = await api.replaceNamespacedPod({ namespace: 'ns', name: 'p', body: changed });
    expect(replaced.metadata?.resourceVersion).toBe('2');
    expect(replaced.metadata?.uid).toBe(created.metadata?.uid);
    expect(replaced.metadata?.generation).toBe(1); // metadata only: generation stays

    const stale = await rejection(
      api.replaceNamespacedPod({ namespace: 'ns', name: 'p', body: changed }),
    );
    expect(stale.code).toBe(409);
    expect(stale.status).toMatchObject({ reason: 'Conflict' });
    expect(stale.status.message).toContain('the object has been modified');

    const spec = { ...replaced, spec: { containers: [{ name: 'main', image: 'alpine' }] } };
    const respecced = await api.replaceNamespacedPod({ namespace: 'ns', name: 'p', body: spec });
    expect(respecced.metadata?.generation).toBe(2);

    const events = (await watch('/api/v1/namespaces/ns/pods', { resourceVersion: '3' })).events;
    await server.untilWatches(1);
    const deleted = await api.deleteNamespacedPod({ namespace: 'ns', name: 'p' });
    expect(deleted.metadata?.resourceVersion).toBe('4');
    expect(server.get('v1', 'Pod', 'p', 'ns')).toBeUndefined();
    const event = await events.next();
    expect(event.type).toBe('DELETED');
    expect(event.object.metadata.resourceVersion).toBe('4');
    expect(event.object.kind).toBe('Pod');
  });

  it('serves cluster-scoped and custom kinds, and rejects misdirected writes', async () => {
    const ns = await api.createNamespace({ body: { metadata: { name: 'team' } } });
    expect(ns.metadata?.namespace).toBeUndefined();
    expect(names((await api.listNamespace()).items)).toEqual(['/team']);
    const generated = await api.createNamespacedConfigMap({
      namespace: 'team',
      body: { metadata: { generateName: 'cm-' }, data: { k: 'v' } },
    });
    expect(generated.metadata?.name).toMatch(/^cm-[a-z0-9]{5}$/);

    server.registerResource({
      group: 'example.com',
      version: 'v1alpha1',
      kind: 'Widget',
      plural: 'widgets',
      namespaced: true,
    });
    const widgets = await watch('/apis/example.com/v1alpha1/namespaces/team/widgets', {});
    await server.untilWatches(1);
    const widget = { apiVersion: 'example.com/v1alpha1', kind: 'Widget', metadata: { name: 'w' } };
    const res = await fetch(`${server.url}/apis/example.com/v1alpha1/namespaces/team/widgets`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(widget),
    });
    expect(res.status).toBe(201);
    const event = await widgets.events.next();
    expect(event).toMatchObject({
      type: 'ADDED',
      object: { kind: 'Widget', metadata: { namespace: 'team' } },
    });

    const wrongNamespace = await rejection(
      api.createNamespacedPod({ namespace: 'team', body: pod('p', {}, 'elsewhere') }),
    );
    expect(wrongNamespace.code).toBe(400);
    const post = (path: string) =>
      fetch(server.url + path, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify(pod('p')),
      });
    expect((await post('/api/v1/pods')).status).toBe(405);
    expect((await post('/api/v1/namespaces/ns/gizmos')).status).toBe(404);
  });

  it('treats an update that changes nothing as a no-op, as the real server does', () => {
    const created = server.create(pod('p'));
    expect(server.update(created)).toEqual(created);
    expect(server.resourceVersion).toBe('1');
  });
});

describe('discovery', () => {
  it('serves APIVersions, APIGroupList and APIResourceLists', async () => {
    const get = async (path: string) => {
      const res = await fetch(server.url + path, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(res.status).toBe(200);
      return (await res.json()) as any;
    };
    expect((await get('/api')).versions).toEqual(['v1']);
    const core = await get('/api/v1');
    expect(core.groupVersion).toBe('v1');
    expect(core.resources).toContainEqual(
      expect.objectContaining({ name: 'pods', singularName: 'pod', kind: 'Pod', namespaced: true }),
    );
    expect(core.resources).toContainEqual(
      expect.objectContaining({ name: 'namespaces', kind: 'Namespace', namespaced: false }),
    );
    expect(core.resources.map((r: any) => r.kind).sort()).toEqual([
      'ConfigMap',
      'Event',
      'Namespace',
      'Pod',
      'Service',
    ]);
    server.registerResource({
      group: 'example.com',
      version: 'v1alpha1',
      kind: 'Widget',
      plural: 'widgets',
      namespaced: true,
    });
    const groups = await get('/apis');
    expect(groups.kind).toBe('APIGroupList');
    expect(groups.groups.map((g: any) => g.preferredVersion.groupVersion)).toEqual([
      'apps/v1',
      'example.com/v1alpha1',
    ]);
    const apps = await get('/apis/apps/v1');
    expect(apps.resources).toEqual([
      expect.objectContaining({
        name: 'deployments',
        kind: 'Deployment',
        verbs: expect.any(Array),
      }),
    ]);
  });

  it('lets KubernetesObjectApi map kinds to plurals and scopes', async () => {
    server.registerResource({
      group: 'example.com',
      version: 'v1alpha1',
      kind: 'Widget',
      plural: 'widgets',
      namespaced: true,
    });
    server.create({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'd', namespace: 'ns' },
    });
    server.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ns' } });
    server.create({
      apiVersion: 'example.com/v1alpha1',
      kind: 'Widget',
      metadata: { name: 'w', namespace: 'ns' },
    });
    const objects = KubernetesObjectApi.makeApiClient(kc);

    const deployments = await objects.list('apps/v1', 'Deployment', 'ns');
    expect(names(deployments.items)).toEqual(['ns/d']);
    expect(deployments.items[0]!.kind).toBeUndefined(); // built-in list item, as from a real server
    const namespace = await objects.read({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'ns' },
    });
    expect(namespace.metadata?.uid).toBeTruthy();
    const widgets = await objects.list('example.com/v1alpha1', 'Widget', 'ns');
    expect(widgets.items[0]!.kind).toBe('Widget'); // custom resources keep kind on list items

    expect(requestsSince(0)).toEqual([
      'GET /apis/apps/v1 200',
      'GET /apis/apps/v1/namespaces/ns/deployments 200',
      'GET /api/v1 200',
      'GET /api/v1/namespaces/ns 200',
      'GET /apis/example.com/v1alpha1 200',
      'GET /apis/example.com/v1alpha1/namespaces/ns/widgets 200',
    ]);
  });
});

describe('Watch', () => {
  it('replays changes after a resourceVersion, or sends the current objects without one', async () => {
    const a = server.create(pod('a'));
    server.create(pod('b'));
    server.create(pod('c', {}, 'other'));
    server.update({ ...server.get('v1', 'Pod', 'b', 'ns')!, spec: { containers: [] } });

    const after = await watch('/api/v1/namespaces/ns/pods', {
      resourceVersion: a.metadata.resourceVersion,
    });
    expect((await after.events.take(2)).map((e) => [e.type, e.object.metadata.name])).toEqual([
      ['ADDED', 'b'],
      ['MODIFIED', 'b'],
    ]);
    const fresh = await watch('/api/v1/pods', {});
    expect((await fresh.events.take(3)).map((e) => [e.type, e.object.metadata.name])).toEqual([
      ['ADDED', 'a'],
      ['ADDED', 'b'],
      ['ADDED', 'c'],
    ]);
    await server.untilWatches(2);
    server.create(pod('d'));
    expect((await after.events.next()).object.metadata.name).toBe('d');
    expect((await fresh.events.next()).object.metadata.name).toBe('d');
  });

  it('sends BOOKMARK only to watches that allowed bookmarks', async () => {
    server.create(pod('a'));
    const resourceVersion = server.resourceVersion;
    const withMarks = await watch('/api/v1/namespaces/ns/pods', {
      allowWatchBookmarks: true,
      resourceVersion,
    });
    const without = await watch('/api/v1/namespaces/ns/pods', { resourceVersion });
    await server.untilWatches(2);
    server.bookmark();
    server.create(pod('b'));
    const bookmark = await withMarks.events.next();
    expect(bookmark).toEqual({
      type: 'BOOKMARK',
      object: { kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion } },
    });
    expect((await withMarks.events.next()).type).toBe('ADDED');
    expect((await without.events.next()).type).toBe('ADDED');
  });

  it('turns a label change into DELETED and ADDED on a selector watch', async () => {
    const selected = await watch('/api/v1/namespaces/ns/pods', {
      labelSelector: 'app=web',
      resourceVersion: server.resourceVersion,
    });
    await server.untilWatches(1);
    const a = server.create(pod('a', { app: 'web' }));
    const moved = server.update({ ...a, metadata: { ...a.metadata, labels: { app: 'db' } } });
    server.update({ ...moved, metadata: { ...moved.metadata, labels: { app: 'web' } } });
    server.create(pod('b', { app: 'db' }));
    const current = server.get('v1', 'Pod', 'a', 'ns')!;
    server.update({ ...current, metadata: { ...current.metadata, annotations: { x: '1' } } });
    server.remove('v1', 'Pod', 'a', 'ns');

    const events = await selected.events.take(5);
    expect(
      events.map((e) => [e.type, e.object.metadata.labels, e.object.metadata.resourceVersion]),
    ).toEqual([
      ['ADDED', { app: 'web' }, '1'],
      // The previous content (still matching) with the new resourceVersion.
      ['DELETED', { app: 'web' }, '2'],
      ['ADDED', { app: 'web' }, '3'],
      ['MODIFIED', { app: 'web' }, '5'],
      ['DELETED', { app: 'web' }, '6'],
    ]);
  });

  it('ends the stream normally after timeoutSeconds', async () => {
    const started = Date.now();
    const { done } = await watch('/api/v1/namespaces/ns/pods', { timeoutSeconds: 1 });
    expect(await done.next(5000)).toEqual({ error: null });
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(server.openWatches).toBe(0);
  });

  it('answers a compacted resourceVersion with an ERROR event, then ends the stream', async () => {
    server.create(pod('a'));
    server.create(pod('b'));
    server.compact();
    const { events, done } = await watch('/api/v1/namespaces/ns/pods', { resourceVersion: '1' });
    expect(await events.next()).toEqual({
      type: 'ERROR',
      object: {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: 'too old resource version: 1 (2)',
        reason: 'Expired',
        code: 410,
      },
    });
    expect(await done.next()).toEqual({ error: null });
    // From the compaction point on the history is complete.
    const current = await watch('/api/v1/namespaces/ns/pods', { resourceVersion: '2' });
    await server.untilWatches(1);
    server.create(pod('c'));
    expect((await current.events.next()).type).toBe('ADDED');
  });

  it("answers a compacted resourceVersion with HTTP 410 when expiredAs is 'status'", async () => {
    server.expiredAs = 'status';
    server.create(pod('a'));
    server.create(pod('b'));
    server.compact();
    const { events, done } = await watch('/api/v1/namespaces/ns/pods', { resourceVersion: '1' });
    const { error } = await done.next();
    expect(error).toBeInstanceOf(Error);
    expect(error.statusCode).toBe(410);
    expect(error.message).toBe('Gone');
    expect(events.pending).toEqual([]);
  });
});

describe('informer (makeInformer)', () => {
  it('lists, then sees add, update and delete from the watch', async () => {
    server.create(pod('a'));
    const { informer, events } = podInformer();
    await informer.start();
    expect(await events.take(2)).toMatchObject([{ verb: 'connect' }, { verb: 'add', name: 'a' }]);
    await server.untilWatches(1);

    const b = server.create(pod('b'));
    server.create(pod('x', {}, 'other'));
    server.update({ ...b, metadata: { ...b.metadata, labels: { v: '2' } } });
    server.remove('v1', 'Pod', 'a', 'ns');
    const [added, updated, deleted] = await events.take(3);
    expect(added).toMatchObject({ verb: 'add', name: 'b' });
    // Watch objects are raw JSON with kind; list items were deserialized and have none.
    expect(added!.object.kind).toBe('Pod');
    expect(typeof added!.object.metadata.creationTimestamp).toBe('string');
    expect(updated).toMatchObject({
      verb: 'update',
      name: 'b',
      object: { metadata: { labels: { v: '2' } } },
    });
    expect(deleted).toMatchObject({
      verb: 'delete',
      name: 'a',
      object: { metadata: { resourceVersion: '5' } },
    });
    expect(names(informer.list('ns'))).toEqual(['ns/b']);
    expect(informer.latestResourceVersion()).toBe(server.resourceVersion);
  });

  it('reconnects from its last resourceVersion without re-listing when the stream ends', async () => {
    server.create(pod('a'));
    const { informer, events } = podInformer();
    await informer.start();
    await events.take(2);
    await server.untilWatches(1);
    const since = server.requests.length;
    const rv = informer.latestResourceVersion();

    server.endWatches();
    expect(await events.next()).toEqual({ verb: 'connect' });
    await server.untilWatches(1);
    expect(requestsSince(since)).toEqual([
      `GET /api/v1/namespaces/ns/pods?watch=true&resourceVersion=${rv} 200`,
    ]);
    server.create(pod('b'));
    expect(await events.next()).toMatchObject({ verb: 'add', name: 'b' });
    expect(events.pending).toEqual([]);
  });

  describe.each(['event', 'status'] as const)('after compact() (expired as %s)', (expiredAs) => {
    it('re-lists, emitting add/delete for the difference, without an error event', async () => {
      server.expiredAs = expiredAs;
      server.create(pod('a'));
      server.create(pod('b'));
      const { informer, events } = podInformer();
      await informer.start();
      await events.take(3);
      await server.untilWatches(1);
      const stale = informer.latestResourceVersion();

      await informer.stop();
      // Stopping aborts the watch request, and client-node reports the abort as an error.
      const stopped = await events.next();
      expect(stopped.verb).toBe('error');
      expect(stopped.error.name).toBe('AbortError');
      server.create(pod('c'));
      server.remove('v1', 'Pod', 'b', 'ns');
      server.compact();
      const since = server.requests.length;
      await informer.start();
      await server.untilWatches(1);

      const list = `GET /api/v1/namespaces/ns/pods 200`;
      const watchFrom = (rv: string, status: number) =>
        `GET /api/v1/namespaces/ns/pods?watch=true&resourceVersion=${rv} ${status}`;
      expect(requestsSince(since)).toEqual([
        watchFrom(stale, expiredAs === 'event' ? 200 : 410),
        list,
        watchFrom(server.resourceVersion, 200),
      ]);
      expect(await events.take(4)).toMatchObject([
        { verb: 'connect' },
        { verb: 'connect' },
        { verb: 'delete', name: 'b' },
        { verb: 'add', name: 'c' },
      ]);
      expect(events.pending).toEqual([]);
      expect(informer.latestResourceVersion()).toBe(server.resourceVersion);
    });
  });

  it('emits error and stays stopped when the watch fails otherwise; start() resumes', async () => {
    server.create(pod('a'));
    const { informer, events } = podInformer();
    server.failNext(1, 500, (_method, path) => path.includes('watch=true'));
    await informer.start();
    const [connect, added, failed] = await events.take(3);
    expect(connect).toEqual({ verb: 'connect' });
    expect(added).toMatchObject({ verb: 'add', name: 'a' });
    expect(failed!.verb).toBe('error');
    expect(failed!.error).toBeInstanceOf(Error);
    expect(failed!.error.statusCode).toBe(500);
    expect(failed!.error.message).toBe('Internal Server Error');
    expect(server.openWatches).toBe(0);
    // It does not reconnect by itself. start() again resumes the watch from the last
    // resourceVersion, without a re-list (only 410 clears the resourceVersion).
    const since = server.requests.length;
    server.create(pod('b'));
    await informer.start();
    await server.untilWatches(1);
    expect(requestsSince(since)).toEqual([
      'GET /api/v1/namespaces/ns/pods?watch=true&resourceVersion=1 200',
    ]);
    expect(await events.take(2)).toMatchObject([{ verb: 'connect' }, { verb: 'add', name: 'b' }]);
  });
});

describe('authentication and authorization', () => {
  it('answers 401 without the bearer token', async () => {
    for (const token of ['wrong', null]) {
      const config = configFor(server, token);
      const error = await rejection(
        config.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: 'ns' }),
      );
      expect(error).toBeInstanceOf(ApiException);
      expect(error.code).toBe(401);
      const { done } = await watch('/api/v1/namespaces/ns/pods', {}, config);
      expect((await done.next()).error.statusCode).toBe(401);
    }
    expect(server.requests.map((r) => r.status)).toEqual([401, 401, 401, 401]);
    const fromFile = new KubeConfig();
    fromFile.loadFromString(server.kubeconfigText());
    const list = await fromFile.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: 'ns' });
    expect(list.items).toEqual([]);
  });

  it('answers 403 with the RBAC message for a forbidden resource', async () => {
    server.forbid('pods', 'ns');
    const error = await rejection(api.listNamespacedPod({ namespace: 'ns' }));
    expect(error.code).toBe(403);
    expect(error.status.message).toBe(
      'pods is forbidden: User "system:serviceaccount:default:test" cannot list resource "pods" in API group "" in the namespace "ns"',
    );
    const all = await rejection(api.listPodForAllNamespaces());
    expect(all.status.message).toBe(
      'pods is forbidden: User "system:serviceaccount:default:test" cannot list resource "pods" in API group "" at the cluster scope',
    );
    expect((await api.listNamespacedPod({ namespace: 'other' })).items).toEqual([]);
    expect((await api.listNamespacedConfigMap({ namespace: 'ns' })).items).toEqual([]);
    const { done } = await watch('/api/v1/namespaces/ns/pods', {});
    expect((await done.next()).error.statusCode).toBe(403);

    // The informer reports the failed list as an error and does not retry by itself.
    const { informer, events } = podInformer();
    await informer.start();
    const [connect, failed] = await events.take(2);
    expect(connect).toEqual({ verb: 'connect' });
    expect(failed!.error).toBeInstanceOf(ApiException);
    expect(failed!.error.code).toBe(403);
    server.allow('pods', 'ns');
    await informer.start();
    await server.untilWatches(1);
    expect(server.requests.filter((r) => r.path === '/api/v1/namespaces/ns/pods')).toHaveLength(3);
  });
});

describe('scripted failures', () => {
  it('fails the next matching requests with a Status body', async () => {
    server.failNext(2, 503, (method) => method === 'GET');
    for (let i = 0; i < 2; i++) {
      const error = await rejection(api.listNamespacedPod({ namespace: 'ns' }));
      expect(error.code).toBe(503);
      expect(error.status).toMatchObject({
        kind: 'Status',
        reason: 'ServiceUnavailable',
        code: 503,
      });
    }
    expect((await api.listNamespacedPod({ namespace: 'ns' })).items).toEqual([]);
  });
});
