/**
 * Load shedding (issue 12, "Backpressure"): when the event store cannot keep up, the ingress
 * answers 503 OVERLOADED with Retry-After at once instead of queueing requests in memory, and
 * nothing it acknowledged is lost.
 *
 * NATS: a private nats-server is stalled with SIGSTOP under a running `tributary serve` (its
 * connection stays open, it answers nothing): the writes admitted up to --max-pending-size wait,
 * every further request is refused at once; after SIGCONT the waiting ones are answered, every
 * 202 is delivered, and the ingress takes events again. The embedded store lives in the server's
 * own process, so it cannot be stalled from outside: there a tiny limit under concurrent load shows
 * the same refusals and the same "nothing acknowledged is lost".
 */
import { afterAll, describe, expect, it } from 'vitest';
import { privateKafkaRequired, startPrivateKafka } from '../support/kafka.js';
import { startNatsServer, skipWithoutNatsServer } from '../support/nats-server.js';
import { until } from '../support/delivery.js';
import { Receiver } from '../support/receiver.js';
import {
  binaryEvent,
  createTrigger,
  putResource,
  startServer,
  type ServerProcess,
} from '../support/server-process.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

interface Answer {
  readonly id: string;
  readonly status: number;
  readonly code: string | undefined;
  readonly retryAfter: string | null;
}

/** Posts a binary-mode event with `bytes` of data; resolves with what the ingress answered. */
async function send(server: ServerProcess, broker: string, id: string, bytes: number) {
  const response = await fetch(
    `${server.url}/default/${broker}`,
    binaryEvent(
      { specversion: '1.0', id, source: '/overload', type: 'com.example.overload' },
      'x'.repeat(bytes),
      'text/plain',
    ),
  );
  const text = await response.text();
  const code = response.status === 202 ? undefined : (JSON.parse(text) as { code?: string }).code;
  return {
    id,
    status: response.status,
    code,
    retryAfter: response.headers.get('retry-after'),
  } satisfies Answer;
}

/** Reads the server's /metrics once; the function gives an unlabelled sample's value. */
async function scrape(server: ServerProcess): Promise<(name: string) => number> {
  const lines = (await (await fetch(`${server.url}/metrics`)).text()).split('\n');
  return (name) => {
    const line = lines.find((l) => l.startsWith(`${name} `));
    if (line === undefined) throw new Error(`${name} is not in /metrics`);
    return Number(line.slice(name.length + 1));
  };
}

/** Every acknowledged id reached the receiver. */
async function allDelivered(receiver: Receiver, acknowledged: readonly string[]): Promise<void> {
  const seen = (): Set<string> => new Set(receiver.requests.map((r) => String(r.headers['ce-id'])));
  while (acknowledged.some((id) => !seen().has(id))) {
    await receiver.waitFor(receiver.requests.length + 1, 60_000);
  }
}

function expectRefusalsShed(answers: readonly Answer[]): void {
  for (const answer of answers.filter((a) => a.status !== 202)) {
    expect(answer.status, answer.id).toBe(503);
    expect(answer.retryAfter, answer.id).toMatch(/^\d+$/);
  }
}

const EVENT_BYTES = 2048;
const LIMIT = '64KiB';

/** A backend of the test's own that can be stalled (SIGSTOP) and resumed. */
interface Stallable {
  /** `tributary serve` flags that use it. */
  readonly args: readonly string[];
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

/**
 * The stalled-store case on one backend: the writes admitted up to the limit wait, every further
 * request is refused at once; after the stall the waiting ones are answered, every 202 delivered.
 */
function stalledBackend(name: string, available: boolean, open: () => Promise<Stallable>): void {
  describe.runIf(available)(`load shedding: ${name} stalled`, { timeout: 120_000 }, () => {
    let backend: Stallable | undefined;
    let server: ServerProcess | undefined;
    let receiver: Receiver | undefined;

    afterAll(async () => {
      await server?.stop();
      await receiver?.stop();
      await backend?.close();
      removeTempDirs();
    });

    it(`refuses with 503 OVERLOADED and Retry-After at once while ${name} is stalled; the waiting writes and delivery resume after`, async () => {
      backend = await open();
      receiver = await new Receiver().start();
      server = await startServer({
        dataDir: tempDir(),
        args: [...backend.args, '--max-pending-size', LIMIT],
      });
      expect(
        (await putResource(server.url, 'brokers', 'default', 'stalled', { spec: {} })).status,
      ).toBe(201);
      await createTrigger(server.url, 'stalled-t', {
        broker: 'stalled',
        subscriber: { uri: receiver.url },
        delivery: { retry: 50, backoffPolicy: 'linear', backoffDelay: 'PT0.1S' },
      });
      expect((await send(server, 'stalled', 'before', EVENT_BYTES)).status).toBe(202);
      await receiver.waitFor(1, 60_000);

      backend.pause();
      const answers: Answer[] = [];
      const requests = Array.from({ length: 300 }, (_, i) =>
        send(server!, 'stalled', `during-${i}`, EVENT_BYTES).then((a) => {
          answers.push(a);
          return a;
        }),
      );
      // While the store answers nothing, what fits in the limit waits and the rest is refused at
      // once: the first 200 answers arrive with it still stopped.
      await until(
        `the first 200 answers while ${name} is stalled`,
        async () => answers.length,
        (n) => n >= 200,
      );
      const early = answers.slice(0, 200);
      expect(early.every((a) => a.status === 503 && a.code === 'OVERLOADED')).toBe(true);
      expectRefusalsShed(early);
      const stalled = await scrape(server);
      const pending = stalled('tributary_store_pending_bytes');
      expect(pending).toBeGreaterThan(0);
      expect(pending).toBeLessThanOrEqual(64 * 1024 + EVENT_BYTES + 512);
      expect(stalled('tributary_store_shed_writes_total')).toBeGreaterThanOrEqual(200);
      await server.waitForOutput('shedding load with 503 OVERLOADED');

      backend.resume();
      const all = await Promise.all(requests);
      // The waiting ones get their answer: 202, or 503 if the store's timeout passed first.
      expectRefusalsShed(all);
      const acknowledged = all.filter((a) => a.status === 202).map((a) => a.id);
      const overloaded = all.filter((a) => a.code === 'OVERLOADED').length;
      console.log(
        `${name} stalled: sent ${all.length}, acknowledged ${acknowledged.length}, ` +
          `refused OVERLOADED ${overloaded}, other 503 ${all.length - acknowledged.length - overloaded}`,
      );
      // Nothing beyond the limit was queued: at most what fits in 64 KiB waited.
      expect(all.length - overloaded).toBeLessThanOrEqual(Math.ceil((64 * 1024) / EVENT_BYTES) + 1);

      // Back to normal by itself: stored, delivered, and the episode logged as ended.
      const after = await until(
        `a 202 once ${name} is back`,
        () => send(server!, 'stalled', `after-${Date.now()}`, EVENT_BYTES),
        (a) => a.status === 202,
        60_000,
      );
      await allDelivered(receiver, ['before', ...acknowledged, after.id]);
      await server.waitForOutput('load shedding ended');
      expect((await scrape(server))('tributary_store_pending_bytes')).toBe(0);
    });
  });
}

stalledBackend('NATS', !skipWithoutNatsServer, async () => {
  const nats = await startNatsServer();
  return { ...nats, args: ['--backend', 'nats', '--nats-url', nats.url] };
});

stalledBackend('Kafka', await privateKafkaRequired('the Kafka load shedding test'), async () => {
  const kafka = await startPrivateKafka();
  return {
    ...kafka,
    args: ['--backend', 'kafka', '--kafka-brokers', kafka.bootstrap, '--kafka-partitions', '1'],
  };
});

describe('load shedding: embedded', () => {
  let server: ServerProcess | undefined;
  let receiver: Receiver | undefined;

  afterAll(async () => {
    await server?.stop();
    await receiver?.stop();
    removeTempDirs();
  });

  it('refuses concurrent writes past a tiny limit with 503 OVERLOADED, and delivers every 202', async () => {
    receiver = await new Receiver().start();
    server = await startServer({ dataDir: tempDir(), args: ['--max-pending-size', '1KiB'] });
    await createTrigger(server.url, 'tiny-t', {
      broker: 'default',
      subscriber: { uri: receiver.url },
    });
    // 8 senders at once: each write is larger than the limit, so only one waits for a commit at
    // a time and those arriving meanwhile are refused.
    const answers = (
      await Promise.all(
        Array.from({ length: 8 }, async (_, worker) => {
          const mine: Answer[] = [];
          for (let i = 0; i < 25; i++) {
            mine.push(await send(server!, 'default', `w${worker}-${i}`, EVENT_BYTES));
          }
          return mine;
        }),
      )
    ).flat();
    expectRefusalsShed(answers);
    const acknowledged = answers.filter((a) => a.status === 202).map((a) => a.id);
    const overloaded = answers.filter((a) => a.code === 'OVERLOADED').length;
    console.log(
      `embedded, 1 KiB limit: sent ${answers.length}, acknowledged ${acknowledged.length}, ` +
        `refused OVERLOADED ${overloaded}`,
    );
    expect(overloaded).toBeGreaterThan(0);
    expect(overloaded).toBe(answers.length - acknowledged.length);
    expect(acknowledged.length).toBeGreaterThan(0);
    await allDelivered(receiver, acknowledged);
    // Nothing refused was stored.
    const refusedIds = new Set(answers.filter((a) => a.status !== 202).map((a) => a.id));
    expect(receiver.requests.filter((r) => refusedIds.has(String(r.headers['ce-id'])))).toEqual([]);
  });
});
