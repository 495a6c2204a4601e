/**
 * RocketMQSource against the real RocketMQ 5 (npm run services:up, or ROCKETMQ_ENDPOINTS),
 * through the real server on each backend (the nats and kafka vitest projects run this file
 * again): plain messages as EventBridge's `mq:Topic:SendMessage`, CloudEvent messages passed
 * through, broker and direct sinks, tag filters, a sink that refuses then recovers with nothing
 * acknowledged early, and upstream errors in the status.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { getJson, until } from '../support/delivery.js';
import { useServer } from '../support/e2e.js';
import {
  closeRocketmqClients,
  createConsumerGroup,
  createTopic,
  deleteConsumerGroupsByPrefix,
  deleteTopicsByPrefix,
  produce,
  ROCKETMQ_ENDPOINTS,
  rocketmqRequired,
  uniqueRocketmqName,
} from '../support/rocketmq.js';
import { putResource } from '../support/server-process.js';
import { condition, untilSourceCondition } from '../support/sources.js';

const available = await rocketmqRequired('the RocketMQSource tests');
const fixture = useServer();
const prefix = uniqueRocketmqName('src');
let names = 0;

async function newTopic(): Promise<string> {
  const topic = `${prefix}-topic-${++names}`;
  await createTopic(topic);
  return topic;
}

function sourceUrl(name: string): string {
  return `${fixture.url}/v1/namespaces/default/sources/${name}`;
}

/** PUTs a RocketMQSource; its consumer group is created first (RocketMQ 5 wants it to exist). */
async function putSource(
  name: string,
  spec: Record<string, unknown>,
  createGroup = true,
): Promise<void> {
  if (createGroup) await createConsumerGroup(`${prefix}-${name}`);
  const response = await putResource(fixture.url, 'sources', 'default', name, {
    kind: 'RocketMQSource',
    spec: { endpoints: ROCKETMQ_ENDPOINTS, consumerGroup: `${prefix}-${name}`, ...spec },
  });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
}

describe.skipIf(!available)('RocketMQSource', { timeout: 90_000 }, () => {
  afterAll(async () => {
    await closeRocketmqClients();
    await deleteTopicsByPrefix(prefix).catch(() => {});
    await deleteConsumerGroupsByPrefix(prefix).catch(() => {});
  });

  it('makes EventBridge events of plain messages and stores them in the broker', async () => {
    const broker = await fixture.broker();
    const receiver = await fixture.subscribe(broker, `rocketmq-plain-${broker}`);
    const topic = await newTopic();
    await putSource('plain', {
      topic,
      ceOverrides: { extensions: { team: 'payments' } },
      sink: { ref: { kind: 'Broker', name: broker } },
    });
    await untilSourceCondition(fixture.url, 'plain', 'Connected', 'True');
    const [receipt] = await produce(topic, [
      {
        body: '{"amount":12}',
        tag: 'paid',
        keys: ['order-7', 'customer-3'],
        properties: { region: 'eu' },
      },
    ]);
    const binary = Buffer.from([0xff, 0xfe, 0x00, 0x01]);
    await produce(topic, [{ body: binary }]);
    // Received together, the two may be stored in either order.
    const both = await receiver.waitFor(2, 45_000);
    const first = both.find((r) => r.headers['ce-id'] === receipt!.messageId);
    const second = both.find((r) => r.headers['ce-id'] !== receipt!.messageId);
    expect(first!.headers).toMatchObject({
      'ce-specversion': '1.0',
      'ce-id': receipt!.messageId,
      'ce-source': 'acs:mq',
      'ce-type': 'mq:Topic:SendMessage',
      'ce-subject': topic,
      'ce-rocketmqtag': 'paid',
      // Percent-encoded in the header, as HTTP's binary mode requires.
      'ce-rocketmqkeys': 'order-7%20customer-3',
      'ce-team': 'payments',
      'content-type': 'application/json',
    });
    expect(Date.parse(String(first!.headers['ce-time']))).toBeGreaterThan(Date.now() - 120_000);
    const data = JSON.parse(first!.body.toString('utf8'));
    expect(data).toMatchObject({
      topic,
      body: '{"amount":12}',
      userProperties: { region: 'eu' },
      systemProperties: {
        UNIQ_KEY: receipt!.messageId,
        TAGS: 'paid',
        KEYS: 'order-7 customer-3',
        RECONSUME_TIMES: '0',
      },
    });
    expect(data.systemProperties.BORN_TIMESTAMP).toBe(
      String(Date.parse(String(first!.headers['ce-time']))),
    );
    const binaryData = JSON.parse(second!.body.toString('utf8'));
    expect(binaryData.body).toBeUndefined();
    expect(Buffer.from(binaryData.bodyBase64, 'base64')).toEqual(binary);

    const status = await until(
      'the counters of source plain',
      async () => (await getJson(sourceUrl('plain'))).body.status,
      (s: any) => s?.events?.forwarded === 2,
    );
    expect(condition(status, 'Ready')?.status).toBe('True');
    expect(status.events).toMatchObject({ received: 2, forwarded: 2, failed: 0 });
    expect(status.webhookUrl).toBeUndefined();
  });

  it('passes CloudEvent messages through to a direct sink, and filters by tag', async () => {
    const receiver = await fixture.receiver();
    const topic = await newTopic();
    await putSource('cloudevents', { topic, tag: 'keep', sink: { uri: receiver.url } });
    await untilSourceCondition(fixture.url, 'cloudevents', 'Connected', 'True');
    await produce(topic, [
      { body: 'dropped by the tag filter', tag: 'skip' },
      {
        body: 'hello',
        tag: 'keep',
        properties: {
          ce_specversion: '1.0',
          ce_id: 'binary-1',
          ce_source: '/payments',
          ce_type: 'com.example.payment.made',
          ce_priority: 'high',
          'content-type': 'text/plain',
        },
      },
      {
        tag: 'keep',
        body: JSON.stringify({
          specversion: '1.0',
          id: 'structured-1',
          source: '/payments',
          type: 'com.example.payment.refunded',
          data: { refund: 3 },
        }),
        properties: { 'content-type': 'application/cloudevents+json' },
      },
    ]);
    const [binary, structured] = await receiver.waitFor(2, 45_000);
    const byId = new Map(
      [binary!, structured!].map((request) => [String(request.headers['ce-id']), request]),
    );
    expect(byId.get('binary-1')!.headers).toMatchObject({
      'ce-source': '/payments',
      'ce-type': 'com.example.payment.made',
      'ce-priority': 'high',
      'content-type': 'text/plain',
    });
    expect(byId.get('binary-1')!.body.toString()).toBe('hello');
    expect(byId.get('structured-1')!.headers['ce-type']).toBe('com.example.payment.refunded');
    expect(JSON.parse(byId.get('structured-1')!.body.toString())).toEqual({ refund: 3 });
    // The message tagged `skip` never comes (the one after it did).
    expect(receiver.requests.every((r) => !r.body.toString().includes('dropped'))).toBe(true);
  });

  it('holds a message unacknowledged while the sink refuses, and delivers it once it accepts', async () => {
    const receiver = await fixture.receiver();
    let refuse = true;
    receiver.responder = () => ({ status: refuse ? 503 : 200 });
    const topic = await newTopic();
    await putSource('refusing', {
      topic,
      delivery: { retry: 1, backoffDelay: 'PT0.05S' },
      sink: { uri: receiver.url },
    });
    await untilSourceCondition(fixture.url, 'refusing', 'Connected', 'True');
    const [receipt] = await produce(topic, [{ body: 'wanted' }]);
    await receiver.waitFor(4, 45_000);
    const refused = await untilSourceCondition(
      fixture.url,
      'refusing',
      'SinkAccepting',
      'False',
      'SinkRefused',
    );
    expect(condition(refused, 'Ready')?.status).toBe('False');
    expect(refused.events.failed).toBeGreaterThan(0);
    refuse = false;
    await untilSourceCondition(fixture.url, 'refusing', 'SinkAccepting', 'True');
    const accepted = receiver.requests.filter((r) => r.headers['ce-id'] === receipt!.messageId);
    expect(accepted.length).toBeGreaterThan(4);
    const status = (await getJson(sourceUrl('refusing'))).body.status;
    expect(status.events).toMatchObject({ received: 1, forwarded: 1 });
  });

  it('shows an unreachable endpoint, a missing group and a missing topic in the status', async () => {
    const receiver = await fixture.receiver();
    await putSource(
      'unreachable',
      { endpoints: '127.0.0.1:1', topic: 'nowhere', sink: { uri: receiver.url } },
      false,
    );
    const down = await untilSourceCondition(fixture.url, 'unreachable', 'Connected', 'False');
    expect(condition(down, 'Connected').reason).toBe('Unreachable');
    expect(down.events.upstreamErrors).toBeGreaterThan(0);

    const topic = await newTopic();
    await putSource('no-group', { topic, sink: { uri: receiver.url } }, false);
    const noGroup = await untilSourceCondition(fixture.url, 'no-group', 'Connected', 'False');
    expect(condition(noGroup, 'Connected').reason).toBe('GroupNotFound');
    expect(condition(noGroup, 'Connected').message).toMatch(/group not found/i);
    // Once the group exists, the source connects (it keeps trying).
    await createConsumerGroup(`${prefix}-no-group`);
    await untilSourceCondition(fixture.url, 'no-group', 'Connected', 'True');

    await putSource('missing', {
      topic: `${prefix}-never-created`,
      sink: { uri: receiver.url },
    });
    const missing = await untilSourceCondition(fixture.url, 'missing', 'Connected', 'False');
    expect(condition(missing, 'Connected').reason).toBe('TopicNotFound');
  });
});
