/**
 * KafkaSource under failure, against the real Kafka: `kill -9` of the service while records are
 * being delivered (a sink that refused first, then a direct sink and a broker sink), a restart on
 * the same data, and every record arriving; and two replicas on a shared NATS backend sharing the
 * source's consumer group, one of them killed mid-stream. The counts (records, arrivals,
 * duplicates) are printed.
 */
import type { Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../support/delivery.js';
import {
  createKafkaTopic,
  removeKafkaPrefix,
  groupMembers,
  KAFKA_BROKERS,
  kafkaClient,
  kafkaRequired,
  uniqueTopicPrefix,
} from '../support/kafka.js';
import { natsRequired, NATS_URL, removeStreams, uniquePrefix } from '../support/nats.js';
import type { ReceivedRequest } from '../support/receiver.js';
import { createTrigger, putResource, type ServerProcess } from '../support/server-process.js';
import {
  arrivals,
  crashSink,
  numbered,
  processes,
  sourceStatus,
  untilAccepted,
  untilArrived,
  untilConnected,
  untilSourceCondition,
} from '../support/sources.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

const kafka = await kafkaRequired('the KafkaSource crash and replica tests');
const nats = await natsRequired('the KafkaSource replica test');
const prefix = uniqueTopicPrefix();
const natsPrefix = uniquePrefix();
const { server, receiver, stopAll } = processes();
let producer: Producer;

async function newTopic(name: string, partitions: number): Promise<string> {
  const topic = `${prefix}-${name}`;
  await createKafkaTopic(topic, partitions);
  return topic;
}

async function putKafkaSource(
  url: string,
  name: string,
  spec: Record<string, unknown>,
): Promise<void> {
  const response = await putResource(url, 'sources', 'default', name, {
    kind: 'KafkaSource',
    spec: {
      bootstrapServers: [...KAFKA_BROKERS],
      consumerGroup: `${prefix}-${name}`,
      initialOffset: 'earliest',
      ...spec,
    },
  });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
}

async function produce(topic: string, ids: readonly string[]): Promise<void> {
  // In chunks, with the id as key and value (keys spread records over the partitions).
  for (let i = 0; i < ids.length; i += 100) {
    const chunk = ids.slice(i, i + 100);
    await producer.send({ topic, messages: chunk.map((id) => ({ key: id, value: id })) });
  }
}

/** A record's value, as the receiver got it (plain records: the data is the value). */
const valueOf = (request: ReceivedRequest): string => request.body.toString();

describe.skipIf(!kafka)('KafkaSource: kill -9 and replicas', { timeout: 180_000 }, () => {
  beforeAll(async () => {
    producer = kafkaClient().producer();
    await producer.connect();
  });
  afterAll(async () => {
    await stopAll();
    await producer?.disconnect();
    await removeKafkaPrefix(prefix).catch(() => {});
    if (nats) await removeStreams(natsPrefix).catch(() => {});
    removeTempDirs();
  });

  it('direct sink: refused, then kill -9 mid-stream and a restart: every record arrives', async () => {
    const dataDir = tempDir();
    let first = await server(dataDir);
    const target = await receiver();
    // Refuses first (the source pauses), then accepts 100 records and holds the next ones, so
    // that the kill lands with deliveries in flight.
    const sink = crashSink(target, 100, valueOf);
    const topic = await newTopic('direct', 2);
    await putKafkaSource(first.url, 'direct', {
      topics: [topic],
      ordering: 'ordered',
      delivery: { retry: 0 },
      sink: { uri: target.url },
    });
    const records = numbered('direct', 400);
    await produce(topic, records);
    await untilSourceCondition(first.url, 'direct', 'SinkAccepting', 'False');
    sink.refusing = false;
    await until(
      '100 records accepted',
      async () => sink.accepted.size,
      (n) => n >= 100,
    );
    await first.kill();
    sink.killed();
    first = await server(dataDir);
    await untilAccepted(sink, records);
    const { duplicates } = arrivals(target, valueOf);
    console.log(
      `KafkaSource kill -9 (direct sink): ${records.length} records, ${sink.acceptedAtKill} ` +
        `accepted at the kill, all ${records.length} after the restart, ${duplicates} duplicates`,
    );
  });

  it('broker sink: kill -9 while records are stored and delivered, a restart: every record arrives', async () => {
    const dataDir = tempDir();
    let first = await server(dataDir);
    const subscriber = await receiver();
    await putResource(first.url, 'brokers', 'default', 'orders', {});
    await createTrigger(first.url, 'all-orders', {
      broker: 'orders',
      subscriber: { uri: subscriber.url },
    });
    const topic = await newTopic('broker', 3);
    await putKafkaSource(first.url, 'to-broker', {
      topics: [topic],
      sink: { ref: { kind: 'Broker', name: 'orders' } },
    });
    const records = numbered('broker', 3000);
    await produce(topic, records);
    await until(
      'some records delivered',
      async () => arrivals(subscriber, valueOf).unique.size,
      (n) => n >= 30,
    );
    const stored = (await sourceStatus(first.url, 'to-broker'))?.events?.forwarded;
    await first.kill();
    const before = arrivals(subscriber, valueOf).unique.size;
    first = await server(dataDir);
    await untilArrived(subscriber, records, valueOf);
    const { duplicates } = arrivals(subscriber, valueOf);
    console.log(
      `KafkaSource kill -9 (broker sink): ${records.length} records, about ${stored} stored ` +
        `and ${before} delivered at the kill, all ${records.length} after the restart, ` +
        `${duplicates} duplicates`,
    );
  });

  it.runIf(nats)(
    'two replicas share the consumer group; one is killed, the other takes over',
    async () => {
      const args = ['--backend', 'nats', '--nats-url', NATS_URL, '--nats-prefix', natsPrefix];
      const [a, b] = await Promise.all([server(tempDir(), args), server(tempDir(), args)]);
      const sink = await receiver();
      const topic = await newTopic('shared', 4);
      await putKafkaSource(a.url, 'shared', { topics: [topic], sink: { uri: sink.url } });
      // Both replicas run a member of the group (the resource reached b through the backend).
      await Promise.all([untilConnected(a.url, 'shared'), untilConnected(b.url, 'shared')]);
      await until(
        'two members in the consumer group',
        () => groupMembers(`${prefix}-shared`),
        (members) => members.length === 2,
        60_000,
      );
      const firstBatch = numbered('shared-a', 200);
      await produce(topic, firstBatch);
      await untilArrived(sink, firstBatch, valueOf);
      const received = async (replica: ServerProcess) =>
        (await sourceStatus(replica.url, 'shared'))?.events?.received ?? 0;
      const [onA, onB] = [await received(a), await received(b)];
      expect(onA).toBeGreaterThan(0);
      expect(onB).toBeGreaterThan(0);
      expect(onA + onB).toBeGreaterThanOrEqual(firstBatch.length);

      await b.kill();
      const secondBatch = numbered('shared-b', 200);
      await produce(topic, secondBatch);
      await untilArrived(sink, secondBatch, valueOf, 120_000);
      const { duplicates } = arrivals(sink, valueOf);
      console.log(
        `KafkaSource replicas: ${firstBatch.length} records shared (a took ${onA}, b took ${onB}); ` +
          `b killed, a delivered all ${secondBatch.length} of the next batch; ${duplicates} duplicates`,
      );
    },
  );
});
