/**
 * The RocketMQ test machinery itself, through the real client (rocketmq-client-nodejs) against the
 * real service (ROCKETMQ_ENDPOINTS or the local RocketMQ of `npm run services:up`): what a message
 * looks like when a SimpleConsumer receives it (every field a source adapter maps), acks, a longer
 * invisibility, redelivery of an un-acked message with its delivery attempt counted, FIFO topics'
 * message groups and type checks, and how the client fails with a wrong endpoint, wrong credentials
 * or a consumer group that does not exist.
 */
import { hostname } from 'node:os';
import { FilterExpression, SimpleConsumer, type MessageView } from 'rocketmq-client-nodejs';
import definition from 'rocketmq-client-nodejs/proto/apache/rocketmq/v2/definition_pb.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeRocketmqClients,
  createTopic,
  deleteConsumerGroupsByPrefix,
  deleteTopicsByPrefix,
  produce,
  ROCKETMQ_ENDPOINTS,
  rocketmqRequired,
  silentLogger,
  startSimpleConsumer,
  uniqueRocketmqName,
  within,
} from '../support/rocketmq.js';

const available = await rocketmqRequired('the RocketMQ service tests');

/**
 * The receive long-poll. The client's deadline is this plus its requestTimeout (3 s), and the
 * proxy refuses a receive whose deadline leaves less than its minimum long-poll (5 s,
 * grpcClientConsumerMinLongPollingTimeoutMillis): "The deadline time remaining is not enough for
 * polling" (BadRequestException 40000) with 2 s. An empty receive takes 5 s either way.
 */
const AWAIT_MS = 5_000;

/** The shortest invisibility the proxy grants on receive (minInvisibleTimeMillsForRecv). */
const MIN_INVISIBLE_MS = 10_000;

/**
 * Receives until `done(all received so far)` holds or `timeoutMs` passes (then it fails), with
 * `invisibleMs` of invisibility per message. Each receive long-polls for the consumer's
 * awaitDuration at most, so this never waits blindly.
 */
async function receiveUntil(
  consumer: SimpleConsumer,
  done: (received: readonly MessageView[]) => boolean,
  options: { readonly invisibleMs?: number; readonly timeoutMs?: number } = {},
): Promise<MessageView[]> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  const received: MessageView[] = [];
  while (!done(received)) {
    if (Date.now() > deadline) {
      throw new Error(
        `gave up waiting; received ${received.length}: ` +
          received.map((m) => `${m.messageId}#${m.deliveryAttempt}`).join(', '),
      );
    }
    received.push(...(await consumer.receive(16, options.invisibleMs ?? MIN_INVISIBLE_MS)));
  }
  return received;
}

/** The causes of an error, outermost first. */
function causes(error: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e = error; e !== undefined && e !== null && chain.length < 5;) {
    chain.push(e);
    e = (e as { cause?: unknown }).cause;
  }
  return chain;
}

describe.skipIf(!available)('the RocketMQ service', () => {
  const prefix = uniqueRocketmqName('svc');

  afterAll(async () => {
    await closeRocketmqClients();
    await deleteConsumerGroupsByPrefix(prefix);
    await deleteTopicsByPrefix(prefix);
  });

  describe('a NORMAL topic and a SimpleConsumer', () => {
    const topic = `${prefix}-orders`;
    let consumer: SimpleConsumer;

    beforeAll(async () => {
      await createTopic(topic);
      consumer = await startSimpleConsumer({
        group: `${prefix}-group`,
        subscriptions: new Map([[topic, '*']]),
        awaitDuration: AWAIT_MS,
      });
    });

    it('delivers every field, acks, extends and redelivers an un-acked message', async () => {
      const before = Date.now();
      const receipts = await produce(
        topic,
        [0, 1, 2].map((index) => ({
          body: JSON.stringify({ index }),
          tag: 'OrderCreated',
          keys: [`order-${index}`, 'batch-7'],
          properties: { source: 'tributary-test', index: String(index), 'Trace-Id': `t${index}` },
        })),
      );
      const after = Date.now();
      expect(receipts).toHaveLength(3);
      for (const receipt of receipts) expect(receipt.messageId).toMatch(/^[0-9A-F]{34}$/);

      const first = await receiveUntil(consumer, (r) => r.length >= 3);
      expect(first.map((m) => m.messageId).sort()).toEqual(receipts.map((r) => r.messageId).sort());
      const byIndex = new Map(first.map((m) => [Number(m.properties.get('index')), m]));
      for (const [index, message] of byIndex) {
        expect(message.topic).toBe(topic);
        expect(message.tag).toBe('OrderCreated');
        expect(message.keys).toEqual([`order-${index}`, 'batch-7']);
        // Only the user properties: the system ones have fields of their own.
        expect(message.properties).toEqual(
          new Map([
            ['source', 'tributary-test'],
            ['index', String(index)],
            ['Trace-Id', `t${index}`],
          ]),
        );
        expect(JSON.parse(message.body.toString('utf8'))).toEqual({ index });
        expect(message.bornTimestamp).toBeInstanceOf(Date);
        expect(message.bornTimestamp?.getTime()).toBeGreaterThanOrEqual(before - 1_000);
        expect(message.bornTimestamp?.getTime()).toBeLessThanOrEqual(after + 1_000);
        // The producer's host name, not an address.
        expect(message.bornHost).toBe(hostname());
        expect(message.deliveryAttempt).toBe(1);
        // No message group on a NORMAL topic: an empty string, not undefined.
        expect(message.messageGroup).toBe('');
        expect(message.deliveryTimestamp).toBeUndefined();
        expect(message.receiptHandle).not.toBe('');
        expect(typeof message.offset).toBe('number');
        expect(message.endpoints.facade).toBe(ROCKETMQ_ENDPOINTS);
        expect(message.transportDeliveryTimestamp).toBeInstanceOf(Date);
      }
      const extended = byIndex.get(0) as MessageView;
      const acked = byIndex.get(1) as MessageView;
      const unacked = byIndex.get(2) as MessageView;

      // Still working on it: 30 s more, then done (the ack takes the renewed receipt handle).
      const handle = extended.receiptHandle;
      await consumer.changeInvisibleDuration(extended, 30_000);
      expect(extended.receiptHandle).not.toBe(handle);
      await consumer.ack(extended);
      await consumer.ack(acked);

      // The un-acked one comes back once its 10 s are over, counted as the second attempt; the
      // acked ones do not.
      const again = await receiveUntil(
        consumer,
        (r) => r.some((m) => m.messageId === unacked.messageId),
        { timeoutMs: MIN_INVISIBLE_MS + 20_000 },
      );
      expect(again.map((m) => m.messageId)).toEqual([unacked.messageId]);
      const second = again[0] as MessageView;
      expect(second.deliveryAttempt).toBe(2);
      expect(second.properties.get('Trace-Id')).toBe('t2');
      expect(second.bornTimestamp?.getTime()).toBe(unacked.bornTimestamp?.getTime());

      // A "negative ack": a short invisibility brings it back quickly, as the third attempt.
      const nacked = Date.now();
      await consumer.changeInvisibleDuration(second, 1_000);
      const third = await receiveUntil(
        consumer,
        (r) => r.some((m) => m.messageId === unacked.messageId),
        { timeoutMs: 15_000 },
      );
      expect(Date.now() - nacked).toBeLessThan(10_000);
      expect(third.map((m) => [m.messageId, m.deliveryAttempt])).toEqual([[unacked.messageId, 3]]);
      await consumer.ack(third[0] as MessageView);

      // Nothing left.
      expect(await consumer.receive(16, MIN_INVISIBLE_MS)).toEqual([]);
    }, 90_000);

    it('filters by tag expression and by SQL92 over properties', async () => {
      const filtered = `${prefix}-filtered`;
      await createTopic(filtered);
      const byTag = await startSimpleConsumer({
        group: `${prefix}-tags`,
        subscriptions: new Map([[filtered, 'b||c']]),
      });
      // FilterType is not among the package's exports: it lives in the generated protobuf module,
      // which only has a default export under ESM.
      const bySql = await startSimpleConsumer({
        group: `${prefix}-sql`,
        subscriptions: new Map([
          [filtered, new FilterExpression("n > 1 AND TAGS <> 'c'", definition.FilterType.SQL)],
        ]),
      });
      await produce(
        filtered,
        ['a', 'b', 'c'].map((tag, index) => ({
          body: tag,
          tag,
          properties: { n: String(index + 1) },
        })),
      );
      const tagged = await receiveUntil(byTag, (r) => r.length >= 2);
      expect(tagged.map((m) => m.tag).sort()).toEqual(['b', 'c']);
      const selected = await receiveUntil(bySql, (r) => r.length >= 1);
      expect(selected.map((m) => m.tag)).toEqual(['b']);
      for (const message of tagged) await byTag.ack(message);
      for (const message of selected) await bySql.ack(message);
    }, 60_000);
  });

  describe('a FIFO topic', () => {
    it('keeps the message group and refuses messages of the wrong type', async () => {
      const fifo = `${prefix}-fifo`;
      const normal = `${prefix}-normal`;
      await createTopic(fifo, { type: 'FIFO' });
      await createTopic(normal);
      const consumer = await startSimpleConsumer({
        group: `${prefix}-fifo-group`,
        subscriptions: new Map([[fifo, '*']]),
        createGroup: { fifo: true },
      });
      await produce(
        fifo,
        ['1', '2', '3'].map((body) => ({ body, messageGroup: 'customer-42' })),
      );
      const received: MessageView[] = [];
      // An ordered group hands out the next message of a group only after the previous one's ack.
      while (received.length < 3) {
        const batch = await receiveUntil(consumer, (r) => r.length > 0);
        for (const message of batch) {
          expect(message.messageGroup).toBe('customer-42');
          received.push(message);
          await consumer.ack(message);
        }
      }
      expect(received.map((m) => m.body.toString())).toEqual(['1', '2', '3']);

      // The proxy checks the topic's message type on send.
      await expect(produce(fifo, [{ body: 'no group' }])).rejects.toThrow(/message type/i);
      await expect(produce(normal, [{ body: 'x', messageGroup: 'g' }])).rejects.toThrow(
        /message type/i,
      );
    }, 60_000);
  });

  describe('client failures', () => {
    it('a consumer group that does not exist: startup never finishes', async () => {
      const topic = `${prefix}-nogroup`;
      await createTopic(topic);
      const attempt = startSimpleConsumer({
        group: `${prefix}-missing-group`,
        subscriptions: new Map([[topic, '*']]),
        createGroup: false,
        startTimeoutMs: 5_000,
      });
      await expect(attempt).rejects.toThrow(/did not finish within 5000 ms/);
    }, 30_000);

    it('a wrong endpoint: startup rejects after three route attempts (about 3 s)', async () => {
      const topic = `${prefix}-orders`;
      const consumer = new SimpleConsumer({
        endpoints: '127.0.0.1:1',
        namespace: '',
        logger: silentLogger,
        consumerGroup: `${prefix}-unreachable`,
        subscriptions: new Map([[topic, '*']]),
        awaitDuration: AWAIT_MS,
      });
      const started = Date.now();
      const error: unknown = await consumer.startup().then(
        () => undefined,
        (e: unknown) => e,
      );
      const elapsed = Date.now() - started;
      await within(consumer.shutdown(), 5_000, 'shutdown').catch(() => {});
      // A plain Error wrapping an Error wrapping the gRPC status (14 UNAVAILABLE).
      const chain = causes(error);
      expect(chain[0]).toBeInstanceOf(Error);
      expect((chain[0] as Error).message).toMatch(
        /^Startup the rocketmq client failed, clientId=.*Failed to fetch topic routes after 3 attempts/,
      );
      const status = chain.at(-1) as { code?: unknown; message?: unknown };
      expect(status.code).toBe(14);
      expect(String(status.message)).toMatch(/UNAVAILABLE.*ECONNREFUSED 127\.0\.0\.1:1/);
      expect(elapsed).toBeGreaterThan(2_500);
      expect(elapsed).toBeLessThan(15_000);
    }, 30_000);

    it('wrong credentials are ignored by a proxy without ACL', async () => {
      const topic = `${prefix}-creds`;
      await createTopic(topic);
      const group = `${prefix}-creds-group`;
      await startSimpleConsumer({ group, subscriptions: new Map([[topic, '*']]) });
      const consumer = new SimpleConsumer({
        endpoints: ROCKETMQ_ENDPOINTS,
        namespace: '',
        logger: silentLogger,
        sessionCredentials: { accessKey: 'nobody', accessSecret: 'wrong' },
        consumerGroup: group,
        subscriptions: new Map([[topic, '*']]),
        awaitDuration: AWAIT_MS,
      });
      try {
        await within(consumer.startup(), 15_000, 'startup');
        await produce(topic, [{ body: 'with wrong credentials' }]);
        const received = await receiveUntil(consumer, (r) => r.length > 0);
        expect(received[0]?.body.toString()).toBe('with wrong credentials');
        await consumer.ack(received[0] as MessageView);
      } finally {
        await within(consumer.shutdown(), 10_000, 'shutdown').catch(() => {});
      }
    }, 30_000);
  });
});
