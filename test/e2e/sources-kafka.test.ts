/**
 * KafkaSource against the real Kafka (npm run services:up, or KAFKA_BROKERS), through the real
 * server on each backend (the nats and kafka vitest projects run this file again): plain records
 * wrapped as Knative's `dev.knative.kafka.event`, CloudEvent records (binary and structured)
 * passed through, broker and direct sinks, ordering, a sink that refuses then recovers with no
 * offset committed early, and upstream errors in the status.
 */
import { randomUUID } from 'node:crypto';
import type { Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, idOf, until } from '../support/delivery.js';
import { useServer } from '../support/e2e.js';
import {
  createKafkaTopic,
  removeKafkaPrefix,
  groupMembers,
  KAFKA_BROKERS,
  kafkaClient,
  kafkaRequired,
  uniqueTopicPrefix,
} from '../support/kafka.js';
import { putResource } from '../support/server-process.js';
import { condition, untilSourceCondition } from '../support/sources.js';

const available = await kafkaRequired('the KafkaSource tests');
const fixture = useServer();
const prefix = uniqueTopicPrefix();
let producer: Producer;
let topics = 0;

async function newTopic(partitions = 1): Promise<string> {
  const topic = `${prefix}-src-${++topics}`;
  await createKafkaTopic(topic, partitions);
  return topic;
}

function sourceUrl(name: string): string {
  return `${fixture.url}/v1/namespaces/default/sources/${name}`;
}

async function putSource(
  name: string,
  spec: Record<string, unknown>,
  labels = {},
  expected = 201,
): Promise<void> {
  const response = await putResource(fixture.url, 'sources', 'default', name, {
    kind: 'KafkaSource',
    metadata: { labels },
    spec: { bootstrapServers: [...KAFKA_BROKERS], consumerGroup: `${prefix}-${name}`, ...spec },
  });
  expect(response.status, JSON.stringify(response.body)).toBe(expected);
}

async function committedOffset(group: string, topic: string): Promise<number> {
  const admin = kafkaClient().admin();
  await admin.connect();
  try {
    const [entry] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return Number(entry?.partitions[0]?.offset ?? '-1');
  } finally {
    await admin.disconnect();
  }
}

describe.skipIf(!available)('KafkaSource', () => {
  beforeAll(async () => {
    producer = kafkaClient().producer();
    await producer.connect();
  });
  afterAll(async () => {
    await producer?.disconnect();
    await removeKafkaPrefix(prefix).catch(() => {});
  });

  it('wraps plain records as Knative does and stores them in the broker', async () => {
    const broker = await fixture.broker();
    const receiver = await fixture.subscribe(broker, `kafka-plain-${broker}`);
    const topic = await newTopic();
    await putSource(
      'plain',
      {
        topics: [topic],
        initialOffset: 'earliest',
        ceOverrides: { extensions: { team: 'payments' } },
        sink: { ref: { kind: 'Broker', name: broker } },
      },
      { 'kafkasources.sources.knative.dev/key-type': 'string' },
    );
    // A minute ago (Kafka refuses timestamps too far from its clock).
    const timestamp = Date.now() - 60_000;
    await producer.send({
      topic,
      messages: [
        {
          key: 'order-7',
          value: '{"amount":12}',
          timestamp: String(timestamp),
          headers: { 'content-type': 'application/json', 'X-Trace_Id': 'abc-1' },
        },
        { key: null, value: Buffer.from([0, 1, 2, 255]) },
      ],
    });
    const [first, second] = await receiver.waitFor(2, 30_000);
    expect(first!.headers).toMatchObject({
      'ce-specversion': '1.0',
      'ce-type': 'dev.knative.kafka.event',
      'ce-source': `/apis/v1/namespaces/default/kafkasources/plain#${topic}`,
      'ce-subject': 'partition:0#0',
      'ce-id': 'partition:0/offset:0',
      'ce-time': new Date(timestamp).toISOString(),
      'ce-key': 'order-7',
      'ce-partitionkey': 'order-7',
      'ce-kafkaheaderxtraceid': 'abc-1',
      'ce-team': 'payments',
      'content-type': 'application/json',
    });
    expect(first!.headers['ce-kafkaheadercontenttype']).toBeUndefined();
    expect(first!.body.toString('utf8')).toBe('{"amount":12}');
    expect(second!.headers['ce-id']).toBe('partition:0/offset:1');
    expect(second!.headers['ce-key']).toBeUndefined();
    expect([...second!.body]).toEqual([0, 1, 2, 255]);

    const status = (await untilSourceCondition(fixture.url, 'plain', 'Ready', 'True')).valueOf();
    expect(status.sinkUri).toBe(`${fixture.url}/default/${broker}`);
    expect(status.webhookUrl).toBeUndefined();
    expect(condition(status, 'Connected')?.status).toBe('True');
    const events = await until(
      'the counters of source plain',
      async () => (await getJson(sourceUrl('plain'))).body.status.events,
      (e: any) => e?.forwarded === 2,
    );
    expect(events).toMatchObject({ received: 2, forwarded: 2, failed: 0 });
  });

  it('passes CloudEvent records through unchanged, binary and structured, to a direct sink', async () => {
    const receiver = await fixture.receiver();
    const topic = await newTopic();
    await putSource('cloudevents', {
      topics: [topic],
      initialOffset: 'earliest',
      sink: { uri: receiver.url },
    });
    const structured = {
      specversion: '1.0',
      id: 'structured-1',
      source: '/orders',
      type: 'com.example.order.placed',
      datacontenttype: 'application/json',
      region: 'eu',
      data: { order: 7 },
    };
    await producer.send({
      topic,
      messages: [
        {
          key: 'k1',
          value: 'hello',
          headers: {
            ce_specversion: '1.0',
            ce_id: 'binary-1',
            ce_source: '/orders',
            ce_type: 'com.example.order.shipped',
            ce_subject: 'order/7',
            ce_priority: 'high',
            'content-type': 'text/plain',
          },
        },
        {
          value: JSON.stringify(structured),
          headers: { 'content-type': 'application/cloudevents+json; charset=utf-8' },
        },
        // Claims to be a CloudEvent but lacks ce_type: wrapped like any record.
        { value: 'broken', headers: { ce_specversion: '1.0', ce_id: 'x', ce_source: '/y' } },
      ],
    });
    const [binary, json, broken] = await receiver.waitFor(3, 30_000);
    expect(binary!.headers).toMatchObject({
      'ce-id': 'binary-1',
      'ce-source': '/orders',
      'ce-type': 'com.example.order.shipped',
      'ce-subject': 'order/7',
      'ce-priority': 'high',
      'content-type': 'text/plain',
    });
    expect(binary!.headers['ce-partitionkey']).toBeUndefined();
    expect(binary!.body.toString()).toBe('hello');
    expect(json!.headers).toMatchObject({
      'ce-id': 'structured-1',
      'ce-type': 'com.example.order.placed',
      'ce-region': 'eu',
    });
    expect(JSON.parse(json!.body.toString())).toEqual({ order: 7 });
    expect(broken!.headers).toMatchObject({
      'ce-type': 'dev.knative.kafka.event',
      'ce-id': 'partition:0/offset:2',
      'ce-kafkaheadercespecversion': '1.0',
    });
  });

  it('delivers one partition in order, and the next records wait while the sink refuses', async () => {
    const receiver = await fixture.receiver();
    let refuse = true;
    receiver.responder = () => ({ status: refuse ? 503 : 200 });
    const topic = await newTopic();
    await putSource('refusing', {
      topics: [topic],
      initialOffset: 'earliest',
      ordering: 'ordered',
      delivery: { retry: 1, backoffDelay: 'PT0.05S' },
      sink: { uri: receiver.url },
    });
    const values = Array.from({ length: 20 }, (_, i) => `record-${i}`);
    await producer.send({ topic, messages: values.map((value) => ({ value })) });
    // The first record is refused again and again: nothing after it is delivered or committed.
    await receiver.waitFor(6, 30_000);
    const refused = await untilSourceCondition(
      fixture.url,
      'refusing',
      'SinkAccepting',
      'False',
      'SinkRefused',
    );
    expect(condition(refused, 'Ready')?.status).toBe('False');
    expect(new Set(receiver.requests.map(idOf))).toEqual(new Set(['partition:0/offset:0']));
    expect(await committedOffset(`${prefix}-refusing`, topic)).toBeLessThanOrEqual(0);

    const before = receiver.requests.length;
    refuse = false;
    await until(
      'all 20 records at the receiver',
      async () => new Set(receiver.requests.slice(before).map(idOf)).size,
      (n) => n === 20,
      30_000,
    );
    const accepted = receiver.requests.slice(before).map((r) => r.body.toString());
    // In offset order, each once (the refused one may come once more when a retry was in flight).
    expect([...new Set(accepted)]).toEqual(values);
    await untilSourceCondition(fixture.url, 'refusing', 'SinkAccepting', 'True');
    await until(
      'the committed offset after the last record',
      () => committedOffset(`${prefix}-refusing`, topic),
      (offset) => offset === 20,
    );
  });

  it('shows an unreachable Kafka and a missing topic in the status, and recovers', async () => {
    const receiver = await fixture.receiver();
    await putSource('unreachable', {
      bootstrapServers: ['127.0.0.1:1'],
      topics: ['nowhere'],
      sink: { uri: receiver.url },
    });
    const down = await untilSourceCondition(
      fixture.url,
      'unreachable',
      'Connected',
      'False',
      'Unreachable',
    );
    expect(condition(down, 'Ready')).toMatchObject({ status: 'False', reason: 'Unreachable' });
    expect(down.events.upstreamErrors).toBeGreaterThan(0);
    expect(down.lastError.message).toMatch(/ECONNREFUSED|Connection/i);

    const topic = `${prefix}-later-${randomUUID().slice(0, 8)}`;
    await putSource('missing', {
      topics: [topic],
      initialOffset: 'earliest',
      sink: { uri: receiver.url },
    });
    await untilSourceCondition(fixture.url, 'missing', 'Connected', 'False', 'TopicNotFound');
    await createKafkaTopic(topic);
    await producer.send({ topic, messages: [{ value: 'late' }] });
    const [late] = await receiver.waitFor(1, 60_000);
    expect(late!.body.toString()).toBe('late');
    await untilSourceCondition(fixture.url, 'missing', 'Connected', 'True');
  });

  it('stops consuming when the source is deleted, and a changed spec takes effect', async () => {
    const receiver = await fixture.receiver();
    const topic = await newTopic();
    await putSource('changing', {
      topics: [topic],
      initialOffset: 'earliest',
      sink: { uri: receiver.url },
    });
    await producer.send({ topic, messages: [{ value: 'one' }] });
    await receiver.waitFor(1, 30_000);
    await putSource(
      'changing',
      {
        topics: [topic],
        ceOverrides: { extensions: { version: 'two' } },
        sink: { uri: receiver.url },
      },
      {},
      200,
    );
    await untilSourceCondition(fixture.url, 'changing', 'Connected', 'True');
    await producer.send({ topic, messages: [{ value: 'two' }] });
    const [, second] = await receiver.waitFor(2, 30_000);
    expect(second!.body.toString()).toBe('two');
    expect(second!.headers['ce-version']).toBe('two');
    // The first record was committed by the first consumer: it does not come again.
    expect(receiver.requests.map((r) => r.body.toString())).toEqual(['one', 'two']);

    const deleted = await fetch(sourceUrl('changing'), { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    // Once deleted, the group has no member any more (the consumer left it).
    await until(
      'the consumer group to be empty',
      () => groupMembers(`${prefix}-changing`),
      (members) => members.length === 0,
    );
  });
});
