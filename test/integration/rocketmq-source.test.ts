/**
 * RocketMQSource under failure, against the real RocketMQ 5: `kill -9` of the service while
 * messages are being delivered (after a sink that refused first), a restart on the same data, and
 * every message arriving; two replicas on a shared NATS backend sharing the consumer group; and a
 * message whose delivery keeps failing for longer than its invisible duration staying with the
 * replica that delivers it (the duration is extended), never handed to the other. The counts are
 * printed.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { until } from '../support/delivery.js';
import { natsRequired, NATS_URL, removeStreams, uniquePrefix } from '../support/nats.js';
import type { ReceivedRequest } from '../support/receiver.js';
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
import { putResource, type ServerProcess } from '../support/server-process.js';
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

const rocketmq = await rocketmqRequired('the RocketMQSource crash and replica tests');
const nats = await natsRequired('the RocketMQSource replica tests');
const prefix = uniqueRocketmqName('rsrc');
const natsPrefix = uniquePrefix();
const { server, receiver, stopAll } = processes();

/** The sources' invisible duration here: the proxy's minimum, to keep the waits short. */
const INVISIBLE_MS = 10_000;

async function putRocketMQSource(
  url: string,
  name: string,
  spec: Record<string, unknown>,
): Promise<void> {
  const consumerGroup = `${prefix}-${name}`;
  await createConsumerGroup(consumerGroup);
  const response = await putResource(url, 'sources', 'default', name, {
    kind: 'RocketMQSource',
    spec: { endpoints: ROCKETMQ_ENDPOINTS, consumerGroup, invisibleDuration: 'PT10S', ...spec },
  });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
}

/** The RocketMQ message body in the EventBridge event the receiver got. */
const bodyOf = (request: ReceivedRequest): string =>
  (JSON.parse(request.body.toString('utf8')) as { body: string }).body;

describe.skipIf(!rocketmq)('RocketMQSource: kill -9 and replicas', { timeout: 240_000 }, () => {
  afterAll(async () => {
    await stopAll();
    await closeRocketmqClients();
    await deleteTopicsByPrefix(prefix).catch(() => {});
    await deleteConsumerGroupsByPrefix(prefix).catch(() => {});
    if (nats) await removeStreams(natsPrefix).catch(() => {});
    removeTempDirs();
  });

  it('refused, then kill -9 mid-stream and a restart: every message arrives', async () => {
    const dataDir = tempDir();
    let first = await server(dataDir);
    const target = await receiver();
    // Refuses first (the source pauses), then accepts 60 messages and holds the next ones, so
    // that the kill lands with deliveries in flight.
    const sink = crashSink(target, 60, bodyOf);
    const topic = `${prefix}-crash`;
    await createTopic(topic, { queues: 2 });
    await putRocketMQSource(first.url, 'crash', {
      topic,
      delivery: { retry: 0 },
      sink: { uri: target.url },
    });
    await untilConnected(first.url, 'crash');
    const messages = numbered('crash', 200);
    await produce(
      topic,
      messages.map((body) => ({ body })),
    );
    await untilSourceCondition(first.url, 'crash', 'SinkAccepting', 'False');
    sink.refusing = false;
    await until(
      '60 messages accepted',
      async () => sink.accepted.size,
      (n) => n >= 60,
    );
    await first.kill();
    sink.killed();
    first = await server(dataDir);
    // What the killed process held comes back once its invisible duration is over.
    await untilAccepted(sink, messages, INVISIBLE_MS + 90_000);
    const { duplicates } = arrivals(target, bodyOf);
    console.log(
      `RocketMQSource kill -9: ${messages.length} messages, ${sink.acceptedAtKill} accepted at ` +
        `the kill, all ${messages.length} after the restart, ${duplicates} duplicates`,
    );
  });

  it.runIf(nats)(
    'two replicas share the group; a message that keeps failing stays with its replica',
    async () => {
      const args = ['--backend', 'nats', '--nats-url', NATS_URL, '--nats-prefix', natsPrefix];
      const [a, b] = await Promise.all([server(tempDir(), args), server(tempDir(), args)]);
      const sink = await receiver();
      const topic = `${prefix}-shared`;
      await createTopic(topic, { queues: 4 });
      await putRocketMQSource(a.url, 'shared', { topic, sink: { uri: sink.url } });
      await Promise.all([untilConnected(a.url, 'shared'), untilConnected(b.url, 'shared')]);
      const messages = numbered('shared', 200);
      await produce(
        topic,
        messages.map((body) => ({ body })),
      );
      await untilArrived(sink, messages, bodyOf);
      const received = async (replica: ServerProcess, name: string): Promise<number> =>
        (await sourceStatus(replica.url, name))?.events?.received ?? 0;
      const [onA, onB] = [await received(a, 'shared'), await received(b, 'shared')];
      expect(onA).toBeGreaterThan(0);
      expect(onB).toBeGreaterThan(0);
      console.log(
        `RocketMQSource replicas: ${messages.length} messages shared (a took ${onA}, b took ` +
          `${onB}), ${arrivals(sink, bodyOf).duplicates} duplicates`,
      );

      // One message, refused for longer than its invisible duration: the replica that has it
      // keeps extending it, so the other never receives it; once accepted, it is acknowledged.
      const slow = await receiver();
      let refuse = true;
      slow.responder = () => ({ status: refuse ? 503 : 200 });
      const slowTopic = `${prefix}-slow`;
      await createTopic(slowTopic);
      await putRocketMQSource(a.url, 'slow', {
        topic: slowTopic,
        delivery: { retry: 0 },
        sink: { uri: slow.url },
      });
      await Promise.all([untilConnected(a.url, 'slow'), untilConnected(b.url, 'slow')]);
      await produce(slowTopic, [{ body: 'keeps failing' }]);
      await slow.waitFor(1, 30_000);
      const started = Date.now();
      // What is tested is that nothing happens for longer than the invisible duration: the other
      // replica does not get the message. No event marks that; the test waits it out.
      await new Promise((resolve) => setTimeout(resolve, 2 * INVISIBLE_MS + 5_000));
      const counts = [await received(a, 'slow'), await received(b, 'slow')];
      expect(counts.sort()).toEqual([0, 1]);
      refuse = false;
      const holder = (await received(a, 'slow')) === 1 ? a : b;
      await until(
        'the message accepted',
        () => sourceStatus(holder.url, 'slow'),
        (s) => s?.events?.forwarded === 1,
        30_000,
      );
      console.log(
        `RocketMQSource invisible duration: refused for ${Math.round((Date.now() - started) / 1000)} s ` +
          `(> ${INVISIBLE_MS / 1000} s), received by one replica only: ${JSON.stringify(counts)}`,
      );
    },
  );
});
