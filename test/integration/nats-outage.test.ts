/**
 * NATS goes away and comes back (issue 6, "Outages"): a nats-server of the test's own is stopped
 * under a running `tributary serve --backend nats`. Meanwhile the ingress answers 503 with
 * Retry-After, never 202; once the server is back, ingress and deliveries resume without a restart
 * of Tributary.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startNatsServer, skipWithoutNatsServer, type NatsServer } from '../support/nats-server.js';
import { Receiver } from '../support/receiver.js';
import {
  createTrigger,
  postEvent,
  putResource,
  startServer,
  type ServerProcess,
} from '../support/server-process.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

describe.skipIf(skipWithoutNatsServer)('NATS backend: outage', () => {
  let nats: NatsServer | undefined;
  let server: ServerProcess | undefined;
  let receiver: Receiver | undefined;

  afterAll(async () => {
    await server?.stop();
    await receiver?.stop();
    await nats?.close();
    removeTempDirs();
  });

  const send = (id: string): Promise<Response> => postEvent(server!.url, 'outage', id, '/outage');

  it('answers 503 with Retry-After while NATS is down, and resumes by itself when it is back', async () => {
    nats = await startNatsServer();
    receiver = await new Receiver().start();
    server = await startServer({
      dataDir: tempDir(),
      args: ['--backend', 'nats', '--nats-url', nats.url, '--nats-ack-wait', '2s'],
    });
    expect(
      (await putResource(server.url, 'brokers', 'default', 'outage', { spec: {} })).status,
    ).toBe(201);
    await createTrigger(server.url, 'outage-t', {
      broker: 'outage',
      subscriber: { uri: receiver.url },
      delivery: { retry: 50, backoffPolicy: 'linear', backoffDelay: 'PT0.1S' },
    });
    expect((await send('before')).status).toBe(202);
    expect((await receiver.waitFor(1))[0]!.headers['ce-id']).toBe('before');

    await nats.stop();
    await server.waitForOutput('NATS connection lost');
    for (const id of ['during-1', 'during-2', 'during-3']) {
      const response = await send(id);
      expect(response.status, id).toBe(503);
      expect(response.headers.get('retry-after'), id).toMatch(/^\d+$/);
      expect(response.headers.get('content-type')).toContain('application/problem+json');
    }
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(503);

    await nats.restart();
    await server.waitForOutput('NATS connection restored');
    // The same process: its ingress stores again, its trigger delivers again.
    expect((await send('after')).status).toBe(202);
    const requests = await receiver.waitFor(2);
    expect(requests.map((q) => q.headers['ce-id'])).toEqual(['before', 'after']);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    // Nothing sent during the outage was acknowledged, so nothing of it may arrive.
    await send('marker');
    await receiver.waitFor(3);
    expect(receiver.requests.map((q) => q.headers['ce-id'])).toEqual(['before', 'after', 'marker']);
  });
});
