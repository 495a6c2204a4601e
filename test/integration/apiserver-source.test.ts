/**
 * ApiServerSource across restarts and replicas, against the in-test Kubernetes API server and the
 * real `@kubernetes/client-node`: a `kill -9` while changes are being delivered, then a restart,
 * with every change made before and during the downtime arriving (the checkpoint kept with the
 * source's lease); and two replicas on a shared NATS backend, where one watches, the other stands
 * by, and takes over with what changed in between when the first is killed. The counts are
 * printed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../support/delivery.js';
import { KubeServer, type KubeObject } from '../support/kube-server.js';
import { natsRequired, NATS_URL, removeStreams, uniquePrefix } from '../support/nats.js';
import type { ReceivedRequest } from '../support/receiver.js';
import { putResource } from '../support/server-process.js';
import {
  condition,
  crashSink,
  numbered,
  processes,
  sourceStatus,
  untilAccepted,
  untilSourceCondition,
} from '../support/sources.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

const nats = await natsRequired('the ApiServerSource replica tests');
const natsPrefix = uniquePrefix();
const { server, receiver, stopAll } = processes();
let kube: KubeServer;

/** A short lease, so that a standby replica takes over soon after the owner dies. */
const LEASE = ['--source-lease-ttl', '2s'];

async function putApiServerSource(url: string, name: string, namespace: string, sink: string) {
  const response = await putResource(url, 'sources', 'default', name, {
    apiVersion: 'sources.knative.dev/v1',
    kind: 'ApiServerSource',
    spec: {
      resources: [{ apiVersion: 'v1', kind: 'ConfigMap' }],
      namespaces: [namespace],
      cluster: { server: kube.url },
      delivery: { retry: 0 },
      sink: { uri: sink },
    },
  });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
}

function configMap(namespace: string, name: string): KubeObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data: {} };
}

const nameOf = (request: ReceivedRequest): string => String(request.headers['ce-name']);

/** A change as `<add|update|delete> <name>`. */
const changeOf = (request: ReceivedRequest): string =>
  `${String(request.headers['ce-type']).split('.').pop()} ${String(request.headers['ce-name'])}`;

describe('ApiServerSource: kill -9 and replicas', { timeout: 180_000 }, () => {
  beforeAll(async () => {
    kube = await KubeServer.start();
  });
  afterAll(async () => {
    await stopAll();
    await kube.close();
    if (nats) await removeStreams(natsPrefix).catch(() => {});
    removeTempDirs();
  });

  it('kill -9 mid-stream and a restart: every change arrives, also those made while it was down', async () => {
    const dataDir = tempDir();
    let first = await server(dataDir, LEASE);
    const target = await receiver();
    const sink = crashSink(target, 60, changeOf);
    const before = kube.openWatches;
    await putApiServerSource(first.url, 'crash', 'crash', target.url);
    await untilSourceCondition(first.url, 'crash', 'Connected', 'True');
    await kube.untilWatches(before + 1, 20_000);
    const names = numbered('cm', 150);
    for (const name of names) kube.create(configMap('crash', name));
    await untilSourceCondition(first.url, 'crash', 'SinkAccepting', 'False');
    sink.refusing = false;
    await until(
      '60 changes accepted',
      async () => sink.accepted.size,
      (n) => n >= 60,
    );
    await first.kill();
    sink.killed();
    const atKill = target.requests.length;
    // While no replica runs: more changes, an update and a delete of objects it reported.
    const later = numbered('later', 20);
    for (const name of later) kube.create(configMap('crash', name));
    kube.update({ ...configMap('crash', names[0]!), data: { changed: 'yes' } });
    kube.remove('v1', 'ConfigMap', names[1]!, 'crash');
    first = await server(dataDir, LEASE);
    const expected = [
      ...names.map((n) => `add ${n}`),
      ...later.map((n) => `add ${n}`),
      `delete ${names[1]!}`,
    ];
    await untilAccepted(sink, expected, 90_000);
    // The updated object comes again after the restart: as an update, or as an add when the
    // checkpoint did not yet say that its add had been reported.
    const again = target.requests.slice(atKill).filter((r) => nameOf(r) === names[0]);
    expect(again.map((r) => changeOf(r))).not.toHaveLength(0);
    const all = target.requests.filter((r) => r.headers['ce-name'] !== undefined).map(changeOf);
    console.log(
      `ApiServerSource kill -9: ${expected.length} changes, ${sink.acceptedAtKill} accepted at ` +
        `the kill, all ${expected.length} after the restart, ${all.length - new Set(all).size} ` +
        'sent more than once (refusals included)',
    );
  });

  it.runIf(nats)('two replicas: one watches, the other takes over when it is killed', async () => {
    const args = [
      '--backend',
      'nats',
      '--nats-url',
      NATS_URL,
      '--nats-prefix',
      natsPrefix,
      ...LEASE,
    ];
    const [a, b] = await Promise.all([server(tempDir(), args), server(tempDir(), args)]);
    const target = await receiver();
    const before = kube.openWatches;
    await putApiServerSource(a.url, 'shared', 'shared', target.url);
    // One of them watches; the other stands by.
    const statuses = await until(
      'one replica connected, the other on standby',
      async () => [await sourceStatus(a.url, 'shared'), await sourceStatus(b.url, 'shared')],
      (s) => {
        const reasons = s.map((x: any) => condition(x, 'Connected'));
        return (
          reasons.some((c: any) => c?.status === 'True') &&
          reasons.some((c: any) => c?.reason === 'Standby')
        );
      },
    );
    await kube.untilWatches(before + 1, 20_000);
    const [owner, standby] =
      condition(statuses[0], 'Connected')?.status === 'True' ? [a, b] : [b, a];
    expect(condition(await sourceStatus(standby.url, 'shared'), 'Ready')?.status).toBe('True');
    const first = numbered('one', 30);
    for (const name of first) kube.create(configMap('shared', name));
    await target.waitFor(first.length, 30_000);
    // Only the owner watched: one watch request for the namespace, each change once.
    const watchesOf = (): number =>
      kube.requests.filter((r) => r.path.includes('watch=true') && r.path.includes('/shared/'))
        .length;
    expect(watchesOf()).toBe(1);
    expect(new Set(target.requests.map(changeOf)).size).toBe(target.requests.length);
    await owner.kill();
    const second = numbered('two', 30);
    for (const name of second) kube.create(configMap('shared', name));
    await untilSourceCondition(standby.url, 'shared', 'Connected', 'True', undefined, 30_000);
    const all = [...first, ...second].map((n) => `add ${n}`);
    await until(
      'every change at the receiver',
      async () => new Set(target.requests.map(changeOf)),
      (seen) => all.every((c) => seen.has(c)),
      30_000,
    );
    // The new owner lists first and then watches: its watch request may come after the list.
    await until(
      'the new owner watching',
      async () => watchesOf(),
      (n) => n >= 2,
      30_000,
    );
    expect(watchesOf()).toBe(2);
    const delivered = target.requests.map(changeOf);
    console.log(
      `ApiServerSource replicas: ${all.length} changes, ${second.length} made after the owner's ` +
        `kill -9, all delivered, ${delivered.length - new Set(delivered).size} twice (reported ` +
        'by the owner, not yet in its checkpoint when it died)',
    );
  });
});
