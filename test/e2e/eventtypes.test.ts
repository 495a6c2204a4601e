/**
 * The event type catalog through the real server, on the backend the project runs (embedded, or
 * NATS / Kafka via TRIBUTARY_TEST_BACKEND): types counted per broker and per source, counts that
 * rise as events flow, kept across a restart (written at shutdown), and shared by a second replica
 * on the shared backends.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, until } from '../support/delivery.js';
import { TEST_BACKEND } from '../support/e2e.js';
import {
  removeKafkaPrefix,
  KAFKA_BROKERS,
  kafkaRequired,
  uniqueTopicPrefix,
} from '../support/kafka.js';
import { natsRequired, NATS_URL, removeStreams, uniquePrefix } from '../support/nats.js';
import {
  binaryEvent,
  putResource,
  ROOT,
  startServer,
  type ServerProcess,
} from '../support/server-process.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

interface EventTypeItem {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string };
  spec: {
    type: string;
    source?: string;
    reference: { apiVersion?: string; kind: string; name: string };
  };
  status: { count: number; lastSeen: string };
}

/** Backend arguments the servers of this file share (one prefix: one store), and their cleanup. */
function backendOf(): { args: string[]; cleanup: () => Promise<void> } {
  if (TEST_BACKEND === 'nats') {
    const prefix = uniquePrefix();
    return {
      args: ['--backend', 'nats', '--nats-url', NATS_URL, '--nats-prefix', prefix],
      cleanup: async () => void (await removeStreams(prefix)),
    };
  }
  if (TEST_BACKEND === 'kafka') {
    const prefix = uniqueTopicPrefix();
    return {
      args: [
        '--backend',
        'kafka',
        '--kafka-brokers',
        KAFKA_BROKERS.join(','),
        '--kafka-prefix',
        prefix,
        '--kafka-partitions',
        '1',
      ],
      cleanup: () => removeKafkaPrefix(prefix),
    };
  }
  return { args: [], cleanup: async () => {} };
}

describe('event type catalog', () => {
  const backend = backendOf();
  const dataDir = tempDir();
  const servers: ServerProcess[] = [];

  /** A server on this file's store; `flush` is its --event-types-flush-interval. */
  async function server(flush: string): Promise<ServerProcess> {
    const started = await startServer({
      dataDir,
      args: [...backend.args, '--event-types-flush-interval', flush],
    });
    servers.push(started);
    return started;
  }

  beforeAll(async () => {
    if (TEST_BACKEND === 'nats' && !(await natsRequired('the event type catalog on NATS'))) {
      throw new Error(`NATS is not reachable at ${NATS_URL}`);
    }
    if (TEST_BACKEND === 'kafka' && !(await kafkaRequired('the event type catalog on Kafka'))) {
      throw new Error('Kafka is not reachable');
    }
  });

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await backend.cleanup();
    removeTempDirs();
  });

  async function send(
    url: string,
    broker: string,
    type: string,
    source = '/catalog',
  ): Promise<void> {
    const response = await fetch(
      `${url}/default/${broker}`,
      binaryEvent({ specversion: '1.0', id: randomUUID(), source, type }),
    );
    expect(response.status).toBe(202);
  }

  async function catalog(url: string, query = ''): Promise<EventTypeItem[]> {
    const { status, body } = await getJson(`${url}/v1/namespaces/default/eventtypes${query}`);
    expect(status).toBe(200);
    expect(body).toMatchObject({
      apiVersion: 'eventing.knative.dev/v1beta2',
      kind: 'EventTypeList',
    });
    return body.items as EventTypeItem[];
  }

  const counts = (items: EventTypeItem[]): Record<string, number> =>
    Object.fromEntries(
      items.map((i) => [
        `${i.spec.reference.kind}/${i.spec.reference.name}/${i.spec.type}`,
        i.status.count,
      ]),
    );

  it('counts types per broker and per source, keeps them across a restart, shares them', async () => {
    // A flush interval far longer than the test: what survives the restart was written at shutdown.
    let first = await server('1h');
    expect((await putResource(first.url, 'brokers', 'default', 'orders', {})).status).toBe(201);
    expect((await putResource(first.url, 'brokers', 'default', 'audit', {})).status).toBe(201);
    const started = Date.now();
    for (let i = 0; i < 3; i++) await send(first.url, 'orders', 'com.example.created');
    await send(first.url, 'orders', 'com.example.paid', '/elsewhere');
    await send(first.url, 'audit', 'com.example.created');

    // This replica's counts show at once, before they are written.
    let items = await until(
      'the catalog of the first server',
      () => catalog(first.url, '?broker=orders'),
      (found) => found.length === 2,
    );
    expect(counts(items)).toEqual({
      'Broker/orders/com.example.created': 3,
      'Broker/orders/com.example.paid': 1,
    });
    const created = items.find((i) => i.spec.type === 'com.example.created')!;
    expect(created).toMatchObject({
      apiVersion: 'eventing.knative.dev/v1beta2',
      kind: 'EventType',
      metadata: { namespace: 'default' },
      spec: {
        source: '/catalog',
        reference: { apiVersion: 'eventing.knative.dev/v1', kind: 'Broker', name: 'orders' },
      },
    });
    expect(created.metadata.name).toMatch(/^[a-z0-9-]{1,63}$/);
    expect(Date.parse(created.status.lastSeen)).toBeGreaterThanOrEqual(started - 1000);
    expect(counts(await catalog(first.url, '?broker=audit'))).toEqual({
      'Broker/audit/com.example.created': 1,
    });

    // Stopped and started again on the same store: the counts are still there.
    expect((await first.stop()).code).toBe(0);
    first = await server('100ms');
    items = await catalog(first.url);
    expect(counts(items)).toMatchObject({
      'Broker/orders/com.example.created': 3,
      'Broker/orders/com.example.paid': 1,
      'Broker/audit/com.example.created': 1,
    });

    // Counts rise as events flow (and are written every 100 ms now); a second source drops `source`.
    await send(first.url, 'orders', 'com.example.created');
    await send(first.url, 'orders', 'com.example.created', '/another');
    items = await until(
      'the count of com.example.created to reach 5',
      () => catalog(first.url, '?broker=orders'),
      (found) => counts(found)['Broker/orders/com.example.created'] === 5,
    );
    expect(items.find((i) => i.spec.type === 'com.example.created')!.spec.source).toBeUndefined();
    expect(items.find((i) => i.spec.type === 'com.example.paid')!.spec.source).toBe('/elsewhere');

    if (TEST_BACKEND !== 'embedded') {
      // A second replica on the same store reads what the first wrote.
      const second = await server('100ms');
      await until(
        'the second replica to see the counts of the first',
        () => catalog(second.url, '?broker=orders'),
        (found) => counts(found)['Broker/orders/com.example.created'] === 5,
      );
      await send(second.url, 'orders', 'com.example.created');
      await until(
        'the first replica to see the count of the second',
        () => catalog(first.url, '?broker=orders'),
        (found) => counts(found)['Broker/orders/com.example.created'] === 6,
      );
    }
  });

  it('counts the types a source emits under the source, and under the broker it delivers to', async () => {
    const current = servers[servers.length - 1]!;
    const token = 'catalog-token';
    const { status, body } = await putResource(current.url, 'sources', 'default', 'repo', {
      apiVersion: 'sources.knative.dev/v1alpha1',
      kind: 'GitLabSource',
      spec: {
        projectUrl: 'https://gitlab.example.com/acme/catalog',
        secretToken: { value: token },
        sink: { ref: { kind: 'Broker', name: 'audit' } },
      },
    });
    expect(status).toBe(201);
    const push = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/gitlab/push.json'), 'utf8')) as {
      payload: unknown;
    };
    const response = await fetch((body.status as { webhookUrl: string }).webhookUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-gitlab-event': 'Push Hook',
        'x-gitlab-token': token,
        'x-gitlab-event-uuid': randomUUID(),
      },
      body: JSON.stringify(push.payload),
    });
    expect(response.status).toBe(202);

    const fromSource = await until(
      'the source in the catalog',
      () => catalog(current.url, '?source=repo'),
      (found) => found.length === 1,
    );
    expect(fromSource[0]).toMatchObject({
      spec: {
        type: 'dev.knative.sources.gitlab.push',
        reference: {
          apiVersion: 'sources.knative.dev/v1alpha1',
          kind: 'GitLabSource',
          name: 'repo',
        },
      },
      status: { count: 1 },
    });
    await until(
      'the broker the source delivers to in the catalog',
      () => catalog(current.url, '?broker=audit'),
      (found) => counts(found)['Broker/audit/dev.knative.sources.gitlab.push'] === 1,
    );
    // A filter on a broker leaves the source's items out, and the other way round.
    expect((await catalog(current.url, '?broker=nothing')).length).toBe(0);
  });
});
