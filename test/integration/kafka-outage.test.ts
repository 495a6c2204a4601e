/**
 * Kafka goes away during load and comes back (issue 7, "Replicas" and the tests it asks for): a
 * Kafka of the test's own is stopped under a running `tributary serve --backend kafka`. Meanwhile
 * the ingress answers 503 with Retry-After, never 202 for an event it could not store; once Kafka
 * is back, ingress and deliveries resume without a restart, and every acknowledged event arrives.
 *
 * Then Kafka consumers of the backend that kafkajs gives up on: an error it does not retry (here
 * the broker refuses the consumers' 6 s session: its group.min.session.timeout.ms is 7 s; a group
 * the ACLs do not allow is the same case). The service will not start on such a cluster, naming
 * the cause. When it happens to a running service, the service logs it, a resource write answers
 * 503 naming the cause at once instead of waiting for a reader that will never come, and once the
 * cluster is mended the readers and the triggers' consumers start again by themselves: writes and
 * deliveries work again without restarting the service.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createReadyTrigger, putWhileUnavailable, until } from '../support/delivery.js';
import { privateKafkaRequired, startPrivateKafka, type PrivateKafka } from '../support/kafka.js';
import { Receiver } from '../support/receiver.js';
import {
  postEvent,
  putResource,
  startServer,
  type ServerProcess,
} from '../support/server-process.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

const available = await privateKafkaRequired('the Kafka outage test');
const MIN_SESSION = 'group.min.session.timeout.ms';

describe.runIf(available)('Kafka backend: outage', () => {
  let kafka: PrivateKafka | undefined;
  let server: ServerProcess | undefined;
  let receiver: Receiver | undefined;

  /** Stops what a test started: the service, the subscriber and the private Kafka. */
  async function stopAll(): Promise<void> {
    await server?.stop();
    await receiver?.stop();
    await kafka?.close();
    server = undefined;
    receiver = undefined;
    kafka = undefined;
  }

  afterAll(async () => {
    await stopAll();
    removeTempDirs();
  });

  const send = (id: string): Promise<Response> => postEvent(server!.url, 'outage', id, '/outage');

  it('answers 503 with Retry-After while Kafka is down, and resumes by itself when it is back', async () => {
    kafka = await startPrivateKafka();
    receiver = await new Receiver().start();
    server = await startServer({
      dataDir: tempDir(),
      args: ['--backend', 'kafka', '--kafka-brokers', kafka.bootstrap, '--kafka-partitions', '2'],
    });
    expect(
      (await putResource(server.url, 'brokers', 'default', 'outage', { spec: {} })).status,
    ).toBe(201);
    await createReadyTrigger(server.url, 'outage-t', {
      broker: 'outage',
      subscriber: { uri: receiver.url },
      delivery: { retry: 100, backoffPolicy: 'linear', backoffDelay: 'PT0.1S' },
    });

    // Load before, during and after the outage; only 202s count as acknowledged.
    const acknowledged = new Set<string>();
    const refused: number[] = [];
    let sending = true;
    const load = (async () => {
      for (let i = 0; sending; i++) {
        const response = await send(`load-${i}`).catch(() => undefined);
        if (response?.status === 202) acknowledged.add(`load-${i}`);
        else if (response !== undefined) {
          refused.push(response.status);
          expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
        }
      }
    })();
    await receiver.waitFor(20, 30_000);

    await kafka.stop();
    const during = await send('during');
    expect(during.status).toBe(503);
    expect(during.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(during.headers.get('content-type')).toContain('application/problem+json');

    await server.waitForOutput('Kafka cannot take writes');
    await kafka.restart();
    await server.waitForOutput('Kafka connection restored', 60_000);
    // Back by itself: the same process stores and delivers again.
    const after = await send('after');
    expect(after.status).toBe(202);
    acknowledged.add('after');
    sending = false;
    await load;
    const ids = (): Set<string> =>
      new Set(receiver!.requests.map((q) => String(q.headers['ce-id'])));
    while ([...acknowledged].some((id) => !ids().has(id))) {
      await receiver.waitFor(receiver.requests.length + 1, 60_000);
    }
    console.log(
      `Kafka outage: acknowledged ${acknowledged.size}, refused ${refused.length} ` +
        `(${[...new Set(refused)].join(', ')}), delivered ${ids().size}`,
    );
    expect(refused.every((status) => status === 503)).toBe(true);
    expect(ids().has('during')).toBe(false);
  }, 120_000);

  /** Sets or removes the broker's lower bound on sessions, then restarts it. */
  async function restartKafka(minSession: string | undefined): Promise<void> {
    const file = path.join(kafka!.dir, 'server.properties');
    const lines = readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => !line.startsWith(`${MIN_SESSION}=`));
    if (minSession !== undefined) lines.push(`${MIN_SESSION}=${minSession}`);
    writeFileSync(file, lines.join('\n'), 'utf8');
    await kafka!.restart();
  }

  it('will not start on a cluster whose refusal kafkajs does not retry, and names the cause', async () => {
    await stopAll();
    kafka = await startPrivateKafka({ properties: { [MIN_SESSION]: '7000' } });
    await expect(
      startServer({
        dataDir: tempDir(),
        args: ['--backend', 'kafka', '--kafka-brokers', kafka.bootstrap],
      }),
    ).rejects.toThrow(/the reader of tributary\.\w+ stopped: The session timeout is not within/);
  }, 90_000);

  it('answers 503 with the cause while it cannot read, and recovers by itself once Kafka is mended', async () => {
    await stopAll();
    kafka = await startPrivateKafka();
    server = await startServer({
      dataDir: tempDir(),
      args: ['--backend', 'kafka', '--kafka-brokers', kafka.bootstrap],
    });
    expect((await putWhileUnavailable(server.url, 'brokers', 'mended', { spec: {} })).status).toBe(
      201,
    );
    receiver = await new Receiver().start();
    await createReadyTrigger(server.url, 'mended-t', {
      broker: 'mended',
      subscriber: { uri: receiver.url },
    });
    expect((await postEvent(server.url, 'mended', 'before', '/mended')).status).toBe(202);
    await receiver.waitFor(1, 30_000);

    // The cluster now refuses the consumers' sessions: they stop when they join again.
    await restartKafka('7000');
    await server.waitForOutput(
      'the reader of tributary.resources stopped on an error kafkajs does not retry',
      60_000,
    );
    await server.waitForOutput('the trigger lost its subscription to a backend error', 60_000);
    // While Kafka restarts, kafkajs may also give up on a reader for "Failed to find group
    // coordinator" (an error it does not retry either); the cause named is the reader's latest.
    const refused = await until(
      'a refusal naming the refused session',
      () => putResource(server!.url, 'brokers', 'default', 'later', { spec: {} }),
      (answer) => answer.status !== 503 || /session timeout/.test(String(answer.body.detail)),
      60_000,
    );
    expect(refused.status).toBe(503);
    expect(refused.body.code).toBe('BACKEND_UNAVAILABLE');
    expect(String(refused.body.detail)).toMatch(
      /the reader of tributary\.resources stopped: The session timeout is not within/,
    );

    // Mended: the same service process stores and delivers again.
    await restartKafka(undefined);
    expect((await putWhileUnavailable(server.url, 'brokers', 'later', { spec: {} })).status).toBe(
      201,
    );
    const sent = await until(
      'an event accepted',
      () => postEvent(server!.url, 'mended', 'after', '/mended'),
      (response) => response.status !== 503,
      30_000,
    );
    expect(sent.status).toBe(202);
    await until(
      'the event sent after mending delivered',
      async () => receiver!.requests.map((r) => String(r.headers['ce-id'])),
      (ids) => ids.includes('after'),
      60_000,
    );
  }, 240_000);
});
