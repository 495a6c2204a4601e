/**
 * MnsSource under failure, against the in-test MNS server and the real `@alicloud/mns` client:
 * `kill -9` of the service while messages are being delivered (after a sink that refused first),
 * a restart on the same data, and every message arriving, with no message deleted before the sink
 * accepted it; and two replicas on a shared NATS backend long-polling one queue. The counts are
 * printed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../support/delivery.js';
import { MnsServer } from '../support/mns-server.js';
import { natsRequired, NATS_URL, removeStreams, uniquePrefix } from '../support/nats.js';
import type { ReceivedRequest } from '../support/receiver.js';
import { putResource } from '../support/server-process.js';
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

const nats = await natsRequired('the MnsSource replica tests');
const natsPrefix = uniquePrefix();
const { server, receiver, stopAll } = processes();
let mns: MnsServer;

/** The queues' visibility timeout: what a killed process held comes back after it. */
const VISIBILITY_S = 3;

async function putMnsSource(url: string, name: string, spec: Record<string, unknown>) {
  const response = await putResource(url, 'sources', 'default', name, {
    kind: 'MnsSource',
    spec: {
      endpoint: mns.endpoint,
      accountId: mns.accountId,
      credentials: {
        accessKey: { value: mns.accessKeyId },
        secretKey: { value: mns.accessKeySecret },
      },
      waitSeconds: 2,
      visibilityTimeout: `PT${VISIBILITY_S}S`,
      ...spec,
    },
  });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
}

const bodyOf = (request: ReceivedRequest): string =>
  (JSON.parse(request.body.toString('utf8')) as { messageBody: string }).messageBody;

describe('MnsSource: kill -9 and replicas', { timeout: 180_000 }, () => {
  beforeAll(async () => {
    mns = await MnsServer.start();
  });
  afterAll(async () => {
    await stopAll();
    await mns.close();
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
    const queue = 'crash';
    mns.createQueue(queue, { visibilityTimeout: VISIBILITY_S });
    const messages = numbered('crash', 200);
    for (const body of messages) mns.send(queue, body);
    await putMnsSource(first.url, 'crash', {
      queue,
      concurrency: 8,
      delivery: { retry: 0 },
      sink: { uri: target.url },
    });
    await untilSourceCondition(first.url, 'crash', 'SinkAccepting', 'False');
    expect(mns.deletedCount(queue)).toBe(0);
    sink.refusing = false;
    await until(
      '60 messages accepted',
      async () => sink.accepted.size,
      (n) => n >= 60,
    );
    await first.kill();
    sink.killed();
    // Nothing was deleted that the sink had not accepted.
    const deletedAtKill = mns.deletedCount(queue);
    expect(deletedAtKill).toBeLessThanOrEqual(sink.acceptedAtKill);
    first = await server(dataDir);
    await untilAccepted(sink, messages, 90_000);
    await mns.untilEmpty(queue, 30_000);
    const { duplicates } = arrivals(target, bodyOf);
    console.log(
      `MnsSource kill -9: ${messages.length} messages, ${sink.acceptedAtKill} accepted and ` +
        `${deletedAtKill} deleted at the kill, all ${messages.length} after the restart, ` +
        `${duplicates} duplicates`,
    );
  });

  it.runIf(nats)('two replicas long-poll one queue and share its messages', async () => {
    const args = ['--backend', 'nats', '--nats-url', NATS_URL, '--nats-prefix', natsPrefix];
    const [a, b] = await Promise.all([server(tempDir(), args), server(tempDir(), args)]);
    const sink = await receiver();
    const queue = 'shared';
    mns.createQueue(queue, { visibilityTimeout: 30 });
    await putMnsSource(a.url, 'shared', { queue, batchSize: 4, sink: { uri: sink.url } });
    await Promise.all([untilConnected(a.url, 'shared'), untilConnected(b.url, 'shared')]);
    await mns.untilPolling(queue, 2);
    const messages = numbered('shared', 200);
    for (const body of messages) mns.send(queue, body);
    await untilArrived(sink, messages, bodyOf);
    await mns.untilEmpty(queue);
    const received = async (url: string): Promise<number> =>
      (await sourceStatus(url, 'shared'))?.events?.received ?? 0;
    const [onA, onB] = [await received(a.url), await received(b.url)];
    expect(onA).toBeGreaterThan(0);
    expect(onB).toBeGreaterThan(0);
    expect(onA + onB).toBe(messages.length);
    console.log(
      `MnsSource replicas: ${messages.length} messages shared (a took ${onA}, b took ${onB}), ` +
        `${arrivals(sink, bodyOf).duplicates} duplicates`,
    );
  });
});
