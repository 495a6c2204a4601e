/**
 * No acknowledged event is lost: stop the subscriber, send events, kill -9 the server, restart it,
 * start the subscriber, and every event that got a 202 arrives.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Receiver } from '../support/receiver.js';
import { binaryEvent, createTrigger, startServer } from '../support/server-process.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

describe('durability', () => {
  afterAll(removeTempDirs);

  it('delivers every 202-acknowledged event after kill -9 and a restart', async () => {
    const dir = tempDir();
    const receiver = await new Receiver().start();
    let server = await startServer({ dataDir: dir });
    try {
      await createTrigger(server.url, 'durable', {
        broker: 'default',
        subscriber: { uri: receiver.url },
        // Short linear backoff, many retries: the subscriber is away for a while.
        delivery: { retry: 1000, backoffPolicy: 'linear', backoffDelay: 'PT0.05S' },
      });
      await receiver.stop();

      // Concurrent senders, as a real load would be; some requests may still be in flight at the kill.
      const acknowledged = new Set<string>();
      const send = async (id: string): Promise<void> => {
        const response = await fetch(
          `${server.url}/default/default`,
          binaryEvent(
            { specversion: '1.0', id, source: '/durability', type: 'com.example.durable' },
            `{"id":"${id}"}`,
            'application/json',
          ),
        );
        if (response.status === 202) acknowledged.add(id);
      };
      await Promise.all(
        Array.from({ length: 8 }, async (_, worker) => {
          for (let i = 0; i < 25; i++) await send(`w${worker}-${i}`);
        }),
      );
      // And one more burst that is cut off by the kill.
      const burst = Array.from({ length: 50 }, (_, i) => send(`burst-${i}`).catch(() => undefined));
      await server.kill();
      await Promise.all(burst);
      expect(acknowledged.size).toBeGreaterThanOrEqual(200);

      server = await startServer({ dataDir: dir });
      await receiver.start();
      await receiver.waitFor(acknowledged.size, 60_000);
      const received = new Set(receiver.requests.map((r) => String(r.headers['ce-id'])));
      const missing = [...acknowledged].filter((id) => !received.has(id));
      expect(missing).toEqual([]);
    } finally {
      await server.stop();
      await receiver.stop();
    }
  });

  it('keeps resources across restarts and applies them without one', async () => {
    const dir = tempDir();
    const first = await new Receiver().start();
    const second = await new Receiver().start();
    let server = await startServer({ dataDir: dir });
    try {
      await createTrigger(server.url, 'moving', {
        broker: 'default',
        subscriber: { uri: first.url },
      });
      const send = (id: string): Promise<Response> =>
        fetch(
          `${server.url}/default/default`,
          binaryEvent({ specversion: '1.0', id, source: '/s', type: 't' }),
        );
      expect((await send('one')).status).toBe(202);
      await first.waitFor(1);

      // Changing the subscriber takes effect at once, without a restart.
      await createTrigger(server.url, 'moving', {
        broker: 'default',
        subscriber: { uri: second.url },
      });
      expect((await send('two')).status).toBe(202);
      expect((await second.waitFor(1))[0]!.headers['ce-id']).toBe('two');

      await server.stop();
      server = await startServer({ dataDir: dir });
      const trigger = (await (
        await fetch(`${server.url}/v1/namespaces/default/triggers/moving`)
      ).json()) as {
        spec: { subscriber: { uri: string } };
        metadata: { generation: number };
      };
      expect(trigger.spec.subscriber.uri).toBe(second.url);
      expect(trigger.metadata.generation).toBe(2);
      expect((await send('three')).status).toBe(202);
      expect((await second.waitFor(2))[1]!.headers['ce-id']).toBe('three');
      expect(first.requests.map((r) => r.headers['ce-id'])).toEqual(['one']);
    } finally {
      await server.stop();
      await first.stop();
      await second.stop();
    }
  });
});
