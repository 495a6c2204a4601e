/**
 * Kafka goes away during load and comes back (issue 7, "Replicas" and the tests it asks for): a
 * Kafka of the test's own is stopped under a running `tributary serve --backend kafka`. Meanwhile
 * the ingress answers 503 with Retry-After, never 202 for an event it could not store; once Kafka
 * is back, ingress and deliveries resume without a restart, and every acknowledged event arrives.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { privateKafkaRequired, startPrivateKafka, type PrivateKafka } from '../support/kafka.js';
import { Receiver } from '../support/receiver.js';
import {
  createTrigger,
  postEvent,
  putResource,
  startServer,
  type ServerProcess,
} from '../support/server-process.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

const available = await privateKafkaRequired('the Kafka outage test');

describe.runIf(available)('Kafka backend: outage', () => {
  let kafka: PrivateKafka | undefined;
  let server: ServerProcess | undefined;
  let receiver: Receiver | undefined;

  afterAll(async () => {
    await server?.stop();
    await receiver?.stop();
    await kafka?.close();
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
    await createTrigger(server.url, 'outage-t', {
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
  });
});
