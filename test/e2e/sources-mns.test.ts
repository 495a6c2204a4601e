/**
 * MnsSource through the real server (on each backend: the nats and kafka vitest projects run this
 * file again) against the in-test MNS server that the real `@alicloud/mns` client talks to
 * (test/support/mns-server.ts): EventBridge's `mns:Queue:SendMessage` into a broker, a direct sink
 * that refuses and then recovers with nothing deleted before it accepted (the visibility extended
 * meanwhile), concurrency bounding what is received, the dead-letter sink after too many dequeues,
 * and bad signatures, a wrong STS token and a missing queue in the status.
 */
import MNSClient from '@alicloud/mns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, idOf, until } from '../support/delivery.js';
import { useServer } from '../support/e2e.js';
import { MnsServer } from '../support/mns-server.js';
import { Gate } from '../support/receiver.js';
import { putResource } from '../support/server-process.js';
import { condition, untilSourceCondition } from '../support/sources.js';

const fixture = useServer();
let mns: MnsServer;
let queues = 0;

beforeAll(async () => {
  mns = await MnsServer.start({ securityToken: 'sts-token' });
});
afterAll(async () => {
  await mns.close();
});

function newQueue(attributes: { visibilityTimeout?: number } = {}): string {
  const queue = `q-${++queues}`;
  mns.createQueue(queue, attributes);
  return queue;
}

function sourceUrl(name: string): string {
  return `${fixture.url}/v1/namespaces/default/sources/${name}`;
}

/** The source's credentials: the server's own unless a test gives others. */
function credentials(secretKey = mns.accessKeySecret, securityToken = 'sts-token') {
  return {
    accessKey: { value: mns.accessKeyId },
    secretKey: { value: secretKey },
    securityToken: { value: securityToken },
  };
}

async function putSource(name: string, spec: Record<string, unknown>): Promise<void> {
  const response = await putResource(fixture.url, 'sources', 'default', name, {
    kind: 'MnsSource',
    spec: {
      endpoint: mns.endpoint,
      accountId: mns.accountId,
      credentials: credentials(),
      waitSeconds: 1,
      ...spec,
    },
  });
  expect([200, 201], JSON.stringify(response.body)).toContain(response.status);
}

/** The `messageBody` of the EventBridge event a receiver got. */
const bodyOf = (request: { body: Buffer }): string =>
  (JSON.parse(request.body.toString('utf8')) as { messageBody: string }).messageBody;

describe('MnsSource', { timeout: 60_000 }, () => {
  it('makes EventBridge events of queue messages, stores them, then deletes them', async () => {
    const broker = await fixture.broker();
    const receiver = await fixture.subscribe(broker, `mns-plain-${broker}`);
    const queue = newQueue();
    const id = mns.send(queue, 'order 7 paid');
    await putSource('plain', {
      queue,
      ceOverrides: { extensions: { team: 'orders' } },
      sink: { ref: { kind: 'Broker', name: broker } },
    });
    const [request] = await receiver.waitFor(1, 30_000);
    expect(request!.headers).toMatchObject({
      'ce-specversion': '1.0',
      'ce-id': id,
      'ce-source': 'acs:mns',
      'ce-type': 'mns:Queue:SendMessage',
      'ce-subject': `acs:mns::${mns.accountId}:queues/${queue}`,
      'ce-mnsdequeuecount': '1',
      'ce-team': 'orders',
      'content-type': 'application/json',
    });
    expect(Date.parse(String(request!.headers['ce-time']))).toBeGreaterThan(Date.now() - 60_000);
    const data = JSON.parse(request!.body.toString('utf8'));
    expect(data).toEqual({
      requestId: expect.stringMatching(/^[0-9A-F]{24}$/),
      messageId: id,
      messageBody: 'order 7 paid',
    });
    await mns.untilEmpty(queue);
    const status = await until(
      'the counters of source plain',
      async () => (await getJson(sourceUrl('plain'))).body.status,
      (s: any) => s?.events?.forwarded === 1,
    );
    expect(condition(status, 'Ready')?.status).toBe('True');
    expect(condition(status, 'Connected')?.status).toBe('True');
    expect(status.events).toMatchObject({ received: 1, forwarded: 1, failed: 0 });
  });

  it('keeps a message while the sink refuses, extending its visibility, and deletes it once accepted', async () => {
    const receiver = await fixture.receiver();
    const accept = new Gate();
    receiver.responder = async (_request, index) => {
      if (index < 3) return { status: 503 };
      await accept.opened;
      return { status: 200 };
    };
    // A queue visibility of 2 s: the delivery outlives it several times over.
    const queue = newQueue({ visibilityTimeout: 2 });
    const id = mns.send(queue, 'slow');
    await putSource('refusing', {
      queue,
      visibilityTimeout: 'PT2S',
      delivery: { retry: 0 },
      sink: { uri: receiver.url },
    });
    await untilSourceCondition(fixture.url, 'refusing', 'SinkAccepting', 'False');
    await receiver.waitFor(4, 30_000);
    // Held at the service: the visibility is extended with each new receipt handle.
    await until(
      'two visibility extensions',
      async () => mns.requests.filter((r) => r.method === 'PUT' && r.path.includes(queue)),
      (puts) => puts.length >= 2 && puts.every((r) => r.status === 200),
    );
    const [held] = mns.messages(queue);
    expect(held).toMatchObject({ messageId: id, deleted: false, visible: false, dequeueCount: 1 });
    accept.open();
    await mns.untilEmpty(queue);
    expect(receiver.requests.map(idOf)).toEqual([id, id, id, id]);
    await untilSourceCondition(fixture.url, 'refusing', 'SinkAccepting', 'True');
    // Deleted with the latest handle, never handed to anyone else.
    expect(mns.messages(queue)).toEqual([]);
    expect(
      mns.requests.filter((r) => r.method === 'DELETE' && r.path.includes(queue)),
    ).toHaveLength(1);
  });

  it('delivers each message once with batches bounded by the concurrency', async () => {
    const receiver = await fixture.receiver();
    const queue = newQueue();
    const bodies = Array.from({ length: 40 }, (_, i) => `m-${i}`);
    const client = new MNSClient(mns.accountId, {
      endpoint: mns.endpoint,
      accessKeyId: mns.accessKeyId,
      accessKeySecret: mns.accessKeySecret,
      securityToken: 'sts-token',
    });
    for (let i = 0; i < bodies.length; i += 16) {
      await client.batchSendMessage(
        queue,
        bodies.slice(i, i + 16).map((MessageBody) => ({ MessageBody })),
      );
    }
    await putSource('batches', {
      queue,
      batchSize: 16,
      concurrency: 5,
      sink: { uri: receiver.url },
    });
    await receiver.waitFor(40, 30_000);
    await mns.untilEmpty(queue);
    expect(receiver.requests.map(bodyOf).sort()).toEqual([...bodies].sort());
    const receives = mns.requests.filter((r) => r.method === 'GET' && r.path.includes(queue));
    const asked = receives.map((r) => Number(/numOfMessages=(\d+)/.exec(r.path)?.[1]));
    expect(Math.max(...asked)).toBeLessThanOrEqual(5);
  });

  it('sends a message dequeued more than maxDequeueCount times to the dead-letter sink', async () => {
    const service = await fixture.receiver();
    const dls = await fixture.receiver();
    const queue = newQueue({ visibilityTimeout: 1 });
    const id = mns.send(queue, 'poison');
    // Two consumers took it before and died: it is visible again with DequeueCount 2.
    const client = new MNSClient(mns.accountId, {
      endpoint: mns.endpoint,
      accessKeyId: mns.accessKeyId,
      accessKeySecret: mns.accessKeySecret,
      securityToken: 'sts-token',
    });
    for (let i = 0; i < 2; i++) {
      await client.receiveMessage(queue, 1);
      await mns.untilVisible(queue, id);
    }
    await putSource('poison', {
      queue,
      maxDequeueCount: 2,
      delivery: { deadLetterSink: { uri: dls.url } },
      sink: { uri: service.url },
    });
    const [dead] = await dls.waitFor(1, 30_000);
    expect(dead!.headers).toMatchObject({
      'ce-id': id,
      'ce-mnsdequeuecount': '3',
      'ce-knativeerrordest': service.url,
    });
    await mns.untilEmpty(queue);
    expect(service.requests).toHaveLength(0);
  });

  it('shows a bad signature, a wrong STS token and a missing queue in the status, and recovers', async () => {
    const receiver = await fixture.receiver();
    const queue = newQueue();
    mns.send(queue, 'after the fix');
    await putSource('auth', {
      queue,
      credentials: credentials('wrong-secret'),
      sink: { uri: receiver.url },
    });
    const bad = await untilSourceCondition(
      fixture.url,
      'auth',
      'Connected',
      'False',
      'AuthenticationFailed',
    );
    expect(condition(bad, 'Connected').message).toMatch(/SignatureDoesNotMatch/);
    expect(condition(bad, 'Ready')?.status).toBe('False');
    await putSource('auth', {
      queue,
      credentials: credentials(mns.accessKeySecret, 'stale-token'),
      sink: { uri: receiver.url },
    });
    await until(
      'the wrong STS token in the status',
      async () => condition((await getJson(sourceUrl('auth'))).body.status, 'Connected'),
      (c: any) => c?.reason === 'AuthenticationFailed' && /SecurityToken/.test(c.message),
    );
    await putSource('auth', { queue: 'no-such-queue', sink: { uri: receiver.url } });
    await untilSourceCondition(fixture.url, 'auth', 'Connected', 'False', 'QueueNotFound');
    expect(mns.messages(queue)).toHaveLength(1);
    await putSource('auth', { queue, sink: { uri: receiver.url } });
    const [request] = await receiver.waitFor(1, 30_000);
    expect(bodyOf(request!)).toBe('after the fix');
    await untilSourceCondition(fixture.url, 'auth', 'Connected', 'True');
    await mns.untilEmpty(queue);
  });
});
