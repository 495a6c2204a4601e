/**
 * The Kafka test machinery itself: the shared cluster (KAFKA_BROKERS or the local broker of
 * `npm run services:up`) takes a topic with 3 partitions, keyed produce with acks=all and headers,
 * a consumer group with explicit commits, and topic deletion, all through kafkajs. Private brokers
 * with SASL PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, mutual TLS and SASL over TLS accept the right
 * credentials and refuse wrong ones; a private broker stops and starts again with its data.
 */
import { Kafka, type KafkaConfig, type KafkaMessage } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeCluster } from '../../scripts/kafka.js';
import { deferred } from '../support/deferred.js';
import {
  deleteGroupsByPrefix,
  deleteTopicsByPrefix,
  kafkaClient,
  kafkaRequired,
  privateKafkaRequired,
  saslCredentials,
  startPrivateKafka,
  uniqueTopic,
  uniqueTopicPrefix,
  type PrivateKafka,
  type PrivateKafkaOptions,
} from '../support/kafka.js';

const sharedAvailable = await kafkaRequired('the Kafka services tests (shared cluster)');
const privateAvailable = await privateKafkaRequired('the Kafka services tests (private brokers)');

interface Received {
  readonly partition: number;
  readonly message: KafkaMessage;
}

/** Consumes `count` messages of `topic` in group `groupId` from the start, committing each. */
async function consumeInGroup(
  kafka: Kafka,
  topic: string,
  groupId: string,
  count: number,
): Promise<Received[]> {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10_000, heartbeatInterval: 1_000 });
  const received: Received[] = [];
  const done = deferred();
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        received.push({ partition, message });
        await consumer.commitOffsets([
          { topic, partition, offset: (BigInt(message.offset) + 1n).toString() },
        ]);
        if (received.length === count) done.resolve();
      },
    });
    await done.promise;
  } finally {
    await consumer.disconnect();
  }
  return received;
}

describe.skipIf(!sharedAvailable)('the shared Kafka cluster', () => {
  const prefix = uniqueTopicPrefix();

  afterAll(async () => {
    await deleteGroupsByPrefix(prefix);
    await deleteTopicsByPrefix(prefix);
  });

  it('takes a 3-partition topic, keyed produce with acks=all, a consumer group and commits', async () => {
    const kafka = kafkaClient();
    const topic = uniqueTopic(prefix, 'orders');
    const groupId = `${prefix}-group`;
    const admin = kafka.admin();
    await admin.connect();
    try {
      expect(
        await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true }),
      ).toBe(true);
      const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
      expect(metadata.topics[0]?.partitions).toHaveLength(3);

      // Three keys, three events each: one key's events share a partition and keep their order.
      const producer = kafka.producer({ allowAutoTopicCreation: false });
      await producer.connect();
      const messages = Array.from({ length: 9 }, (_, i) => ({
        key: `key-${i % 3}`,
        value: JSON.stringify({ n: i }),
        headers: { ce_id: `id-${i}`, ce_type: 'com.example.test' },
      }));
      const results = await producer.send({ topic, acks: -1, messages });
      await producer.disconnect();
      expect(results.every((result) => result.errorCode === 0)).toBe(true);

      const received = await consumeInGroup(kafka, topic, groupId, messages.length);
      expect(received).toHaveLength(9);
      for (const key of ['key-0', 'key-1', 'key-2']) {
        const ofKey = received.filter((r) => r.message.key?.toString() === key);
        expect(new Set(ofKey.map((r) => r.partition)).size).toBe(1);
        expect(
          ofKey.map((r) => (JSON.parse(r.message.value!.toString()) as { n: number }).n),
        ).toEqual(messages.flatMap((m, i) => (m.key === key ? [i] : [])));
      }
      const first = received.find((r) => r.message.key?.toString() === 'key-0')!;
      expect(first.message.headers?.ce_id?.toString()).toBe('id-0');
      expect(first.message.headers?.ce_type?.toString()).toBe('com.example.test');

      // The group's committed offsets are the end of every partition.
      const ends = await admin.fetchTopicOffsets(topic);
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
      const byPartition = new Map(committed?.partitions.map((p) => [p.partition, p.offset]));
      for (const end of ends) expect(byPartition.get(end.partition)).toBe(end.high);

      await admin.deleteTopics({ topics: [topic] });
      expect(await admin.listTopics()).not.toContain(topic);
    } finally {
      await admin.disconnect();
    }
  });
});

describe.skipIf(!privateAvailable)('private Kafka brokers', () => {
  const started: PrivateKafka[] = [];

  async function privateKafka(options: PrivateKafkaOptions): Promise<PrivateKafka> {
    const kafka = await startPrivateKafka(options);
    started.push(kafka);
    return kafka;
  }

  afterAll(async () => {
    for (const kafka of started.splice(0)) await kafka.close();
  });

  /** Produces one message and reads it back in a group, with `config`. */
  async function roundTrip(config: KafkaConfig, prefix: string): Promise<void> {
    const kafka = new Kafka(config);
    const topic = uniqueTopic(prefix);
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic }], waitForLeaders: true });
    await admin.disconnect();
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, acks: -1, messages: [{ key: 'k', value: 'v' }] });
    await producer.disconnect();
    const [received] = await consumeInGroup(kafka, topic, `${prefix}-group`, 1);
    expect(received?.message.value?.toString()).toBe('v');
  }

  for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512'] as const) {
    describe(`SASL ${mechanism.toUpperCase()}`, () => {
      let kafka: PrivateKafka;
      beforeAll(async () => {
        kafka = await privateKafka({ sasl: mechanism, users: { alice: 'alice-secret' } });
      });

      it('serves the right credentials and refuses wrong ones', async () => {
        expect(kafka.protocol).toBe('SASL_PLAINTEXT');
        await roundTrip(kafka.clientConfig(), uniqueTopicPrefix());
        await expect(
          describeCluster(
            kafka.clientConfig({ sasl: saslCredentials(mechanism, 'alice', 'wrong') }),
          ),
        ).rejects.toMatchObject({ name: 'KafkaJSSASLAuthenticationError' });
        await expect(
          describeCluster(
            kafka.clientConfig({ sasl: saslCredentials(mechanism, 'mallory', 'alice-secret') }),
          ),
        ).rejects.toMatchObject({ name: 'KafkaJSSASLAuthenticationError' });
        // Without SASL the broker answers nothing on its SASL listener.
        await expect(describeCluster({ brokers: [kafka.bootstrap] })).rejects.toThrow();
      });

      if (mechanism === 'plain') {
        it('stops and starts again on the same port with its data', async () => {
          const prefix = uniqueTopicPrefix();
          const topic = uniqueTopic(prefix);
          const client = new Kafka(kafka.clientConfig());
          const admin = client.admin();
          await admin.connect();
          await admin.createTopics({ topics: [{ topic }], waitForLeaders: true });
          await admin.disconnect();
          const producer = client.producer();
          await producer.connect();
          await producer.send({ topic, acks: -1, messages: [{ value: 'before the stop' }] });
          await producer.disconnect();

          await kafka.stop();
          expect(kafka.running()).toBe(false);
          await expect(describeCluster(kafka.clientConfig())).rejects.toThrow();

          await kafka.restart();
          expect(kafka.running()).toBe(true);
          const [received] = await consumeInGroup(client, topic, `${prefix}-group`, 1);
          expect(received?.message.value?.toString()).toBe('before the stop');
        });
      }
    });
  }

  describe('TLS with client certificates', () => {
    let kafka: PrivateKafka;
    beforeAll(async () => {
      kafka = await privateKafka({ tls: { clientAuth: true } });
    });

    it('serves a client with the test CA and a client certificate, refuses others', async () => {
      expect(kafka.protocol).toBe('SSL');
      const tls = kafka.tls!;
      await roundTrip(kafka.clientConfig(), uniqueTopicPrefix());
      // No client certificate: the broker refuses the handshake (alert "bad certificate").
      await expect(describeCluster(kafka.clientConfig({ ssl: { ca: [tls.ca] } }))).rejects.toThrow(
        /certificate/i,
      );
      // The broker's certificate is not trusted without the test CA.
      await expect(
        describeCluster(kafka.clientConfig({ ssl: { cert: tls.cert, key: tls.key } })),
      ).rejects.toThrow(/certificate/i);
    });
  });

  describe('SASL SCRAM-SHA-512 over TLS', () => {
    let kafka: PrivateKafka;
    beforeAll(async () => {
      kafka = await privateKafka({ sasl: 'scram-sha-512', tls: true });
    });

    it('serves the right credentials over TLS and refuses wrong ones', async () => {
      expect(kafka.protocol).toBe('SASL_SSL');
      expect(kafka.tls?.clientAuth).toBe(false);
      await roundTrip(kafka.clientConfig(), uniqueTopicPrefix());
      await expect(
        describeCluster(
          kafka.clientConfig({
            sasl: { mechanism: 'scram-sha-512', username: 'tributary', password: 'wrong' },
          }),
        ),
      ).rejects.toMatchObject({ name: 'KafkaJSSASLAuthenticationError' });
      await expect(describeCluster(kafka.clientConfig({ ssl: true }))).rejects.toThrow(
        /certificate/i,
      );
    });
  });
});
