/**
 * Crashes and outages under sustained load (issue 12, item 4), one suite for every backend, run by
 * crash-embedded.test.ts, crash-nats.test.ts and crash-kafka.test.ts against the real
 * `tributary serve` process.
 *
 * Every case keeps several senders posting events the whole time, also while the target is down
 * (a refused or failed send counts as sent, never as acknowledged; only a 202 is an
 * acknowledgement), and a subscriber that takes a few ms per request, so that deliveries are in
 * flight when the disruption comes:
 *
 * 1. `kill -9` of the service, and a restart on the same data directory and backend;
 * 2. the subscriber stops (its port refuses connections) and later starts again on the same port;
 * 3. the backend itself stops (NATS, Kafka) and is started again: meanwhile every answer that is not
 *    a 202 must be a 503 with Retry-After. The embedded backend has no such case: its store lives
 *    inside the service process, so the store going away is the service going away, which is
 *    case 1;
 * 4. the upstream of a KafkaSource (a private Kafka, with a producer producing the whole time)
 *    stops and is started again; the source's sink is a broker, whose trigger delivers to the
 *    subscriber.
 *
 * After each disruption every acknowledged event must reach the subscriber at least once. Each
 * case prints its counts in one line (sent, acknowledged, delivered, duplicates, refusals).
 * Duplicates are bounded where a bound follows from the design (each runner says why); case 4 has
 * none: the producer retries a send whose answer the outage cut off (the record may be stored
 * twice), and the source reads again what it had not committed upstream.
 */
import type { Producer } from 'kafkajs';
import { Kafka } from 'kafkajs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startPrivateKafka, type PrivateKafka } from '../support/kafka.js';
import { putWhileUnavailable, until } from '../support/delivery.js';
import { Receiver, type ReceivedRequest } from '../support/receiver.js';
import {
  createTrigger,
  postEvent,
  putResource,
  startServer,
  type ServerProcess,
} from '../support/server-process.js';
import { untilConnected } from '../support/sources.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

/** A backend service the tests can stop and start again (a private nats-server or Kafka). */
export interface StoppableService {
  stop(): Promise<void>;
  restart(): Promise<void>;
}

export interface CrashBackend {
  readonly name: string;
  readonly available: boolean;
  /** Starts what the backend needs (private servers) and resolves with the serve flags. */
  start(): Promise<readonly string[]>;
  /** The backend's own service, for case 3; undefined for the embedded backend (see above). */
  readonly service: StoppableService | undefined;
  /** Whether a private Kafka can run here, for case 4 (privateKafkaRequired). */
  readonly upstreamAvailable: boolean;
  /** The private Kafka a KafkaSource reads in case 4 (started on first use). */
  upstream(): Promise<PrivateKafka>;
  /** Stops and removes what start() and upstream() started. */
  cleanup(): Promise<void>;
  /**
   * Bounds on duplicates per case where one is sound (undefined: printed, not bounded), with the
   * reason next to each runner's numbers.
   */
  readonly maxDuplicates: {
    readonly kill?: number;
    readonly subscriber?: number;
    readonly backend?: number;
    readonly upstream?: number;
  };
}

/** Deliveries in flight at once per trigger: also what bounds most duplicate counts. */
export const CONCURRENCY = 16;
/** Concurrent senders of the load. */
const SENDERS = 4;
/** Events acknowledged and delivered before a disruption and after it (the load goes on). */
const FLOW = 120;
/** Concurrent producers of case 4 (each produces one record at a time). */
const PRODUCERS = 2;
/** Between two records, a producer pauses this long (a steady rate, not a flood to drain). */
const PRODUCE_PAUSE_MS = 10;
/** The subscriber's time per request: long enough that deliveries are in flight at any moment. */
const SUBSCRIBER_MS = 5;
/** After a refused or failed send, a sender waits this long (paces the load; no synchronization). */
const PAUSE_AFTER_FAILURE_MS = 20;

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Counts of one case's load. */
interface Counts {
  sent: number;
  readonly acknowledged: Set<string>;
  /** Refusals by kind: an HTTP status, `connection error`, or the producer's failure. */
  readonly refusals: Map<string, number>;
  /** What may not happen: a non-202 answer other than 503 with Retry-After, and the like. */
  readonly unexpected: string[];
}

function newCounts(): Counts {
  return { sent: 0, acknowledged: new Set(), refusals: new Map(), unexpected: [] };
}

function refuse(counts: Counts, kind: string): void {
  counts.refusals.set(kind, (counts.refusals.get(kind) ?? 0) + 1);
}

/**
 * SENDERS concurrent senders posting to `broker` of the current server (`target()`, which follows
 * a restart) until stop(). A connection error is expected only when the server it was sent to has
 * been marked down (`down`, set before it is killed); any other non-202 answer must be a 503 with
 * Retry-After.
 */
function startLoad(
  counts: Counts,
  target: () => ServerProcess,
  down: ReadonlySet<string>,
  broker: string,
): { stop(): Promise<void> } {
  let running = true;
  const sender = async (worker: number): Promise<void> => {
    for (let i = 0; running; i++) {
      const id = `${broker}-${worker}-${i}`;
      const url = target().url;
      counts.sent++;
      let response: Response;
      try {
        response = await postEvent(url, broker, id, '/crash');
      } catch (error) {
        refuse(counts, 'connection error');
        if (!down.has(url)) {
          counts.unexpected.push(`${id}: connection error with the server up (${String(error)})`);
        }
        await pause(PAUSE_AFTER_FAILURE_MS);
        continue;
      }
      if (response.status === 202) {
        counts.acknowledged.add(id);
        continue;
      }
      refuse(counts, String(response.status));
      if (response.status !== 503 || !/^\d+$/.test(response.headers.get('retry-after') ?? '')) {
        counts.unexpected.push(
          `${id}: ${response.status} retry-after ${response.headers.get('retry-after')}`,
        );
      }
      await pause(PAUSE_AFTER_FAILURE_MS);
    }
  };
  const senders = Array.from({ length: SENDERS }, (_, worker) => sender(worker));
  return {
    stop: async () => {
      running = false;
      await Promise.all(senders);
    },
  };
}

/** A subscriber that answers 200 after SUBSCRIBER_MS and knows how many requests it holds. */
async function slowSubscriber(): Promise<{ receiver: Receiver; inFlight: () => number }> {
  const receiver = await new Receiver().start();
  let inFlight = 0;
  receiver.responder = async () => {
    inFlight++;
    await pause(SUBSCRIBER_MS);
    inFlight--;
    return { status: 200 };
  };
  return { receiver, inFlight: () => inFlight };
}

const idOf = (request: ReceivedRequest): string => String(request.headers['ce-id']);
/** A record of case 4 reaches the subscriber as the event's data: the record's value. */
const valueOf = (request: ReceivedRequest): string => request.body.toString();

/** Resolves once every acknowledged id has reached `receiver` (read with `key`). */
function untilAllArrived(
  receiver: Receiver,
  acknowledged: ReadonlySet<string>,
  key: (request: ReceivedRequest) => string,
  timeoutMs = 90_000,
): Promise<string[]> {
  return until(
    `every one of ${acknowledged.size} acknowledged events at the subscriber`,
    async () => {
      const arrived = new Set(receiver.requests.map(key));
      return [...acknowledged].filter((id) => !arrived.has(id)).slice(0, 20);
    },
    (missing) => missing.length === 0,
    timeoutMs,
  );
}

/**
 * Prints the case's line and checks it: nothing acknowledged missing, nothing unexpected, and
 * duplicates within `maxDuplicates` when a bound is given.
 */
function report(
  backend: string,
  name: string,
  counts: Counts,
  receiver: Receiver,
  key: (request: ReceivedRequest) => string,
  maxDuplicates: number | undefined,
  extra = '',
): void {
  const received = receiver.requests.map(key);
  const unique = new Set(received);
  const duplicates = received.length - unique.size;
  const refusals = [...counts.refusals].map(([kind, n]) => `${kind} x${n}`).join(', ');
  console.log(
    `${backend} ${name}: sent ${counts.sent}, acknowledged ${counts.acknowledged.size}, ` +
      `delivered ${unique.size} (unique), duplicates ${duplicates}` +
      `${maxDuplicates === undefined ? '' : ` (bound ${maxDuplicates})`}; ` +
      `refused: ${refusals === '' ? 'none' : refusals}${extra}`,
  );
  const missing = [...counts.acknowledged].filter((id) => !unique.has(id));
  expect(missing).toEqual([]);
  expect(counts.unexpected).toEqual([]);
  if (maxDuplicates !== undefined) expect(duplicates).toBeLessThanOrEqual(maxDuplicates);
}

export function crashTests(backend: CrashBackend): void {
  describe.runIf(backend.available)(
    `${backend.name} backend: crashes and outages under load`,
    { timeout: 120_000 },
    () => {
      const dataDir = tempDir();
      let args: readonly string[] = [];
      let server: ServerProcess;
      /** URLs of servers killed or stopped: a connection error to one of them is expected. */
      const down = new Set<string>();
      const receivers: Receiver[] = [];
      /** The case's load, stopped after the case even when it failed. */
      const loads: { stop(): Promise<void> }[] = [];

      async function serve(): Promise<ServerProcess> {
        return startServer({
          dataDir,
          args: [...args, '--trigger-concurrency', String(CONCURRENCY), '--shutdown-timeout', '2s'],
          timeoutMs: 60_000,
        });
      }

      beforeAll(async () => {
        // Case 4's upstream starts meanwhile (a JVM takes a while); case 4 awaits it.
        if (backend.upstreamAvailable) void backend.upstream().catch(() => {});
        args = await backend.start();
        server = await serve();
      });

      afterEach(async () => {
        await Promise.all(loads.splice(0).map((load) => load.stop()));
      });

      afterAll(async () => {
        if (server !== undefined) {
          down.add(server.url);
          await server.stop();
        }
        await Promise.all(receivers.map((r) => r.stop()));
        await backend.cleanup();
        removeTempDirs();
      });

      /** A broker of the case's own and a trigger delivering it to a slow subscriber. */
      async function setUp(broker: string) {
        const subscriber = await slowSubscriber();
        receivers.push(subscriber.receiver);
        // Right after case 3 the Kafka backend's views may still be rejoining: a client retries a
        // 503 (the retried PUT replaces a broker the first try did store: 200).
        const { status } = await putWhileUnavailable(server.url, 'brokers', broker, { spec: {} });
        expect([200, 201]).toContain(status);
        await createTrigger(server.url, `${broker}-t`, {
          broker,
          subscriber: { uri: subscriber.receiver.url },
          // Many short retries: the subscriber (or the service) is away for a few seconds.
          delivery: { retry: 200, backoffPolicy: 'linear', backoffDelay: 'PT0.05S' },
        });
        return subscriber;
      }

      /** Resolves once `more` events beyond now have been acknowledged and delivered. */
      async function untilFlowing(counts: Counts, receiver: Receiver, more: number) {
        const acknowledged = counts.acknowledged.size;
        await until(
          `${more} more events acknowledged`,
          async () => counts.acknowledged.size,
          (n) => n >= acknowledged + more,
          60_000,
        );
        await receiver.waitFor(receiver.requests.length + more, 60_000);
      }

      /** Resolves once the subscriber holds requests: deliveries are in flight. */
      async function untilInFlight(inFlight: () => number): Promise<number> {
        return until(
          'deliveries in flight',
          async () => inFlight(),
          (n) => n > 0,
        );
      }

      it('1. kill -9 of the service mid-load, a restart: every acknowledged event arrives', async () => {
        const { receiver, inFlight } = await setUp('crash-kill');
        const counts = newCounts();
        const load = startLoad(counts, () => server, down, 'crash-kill');
        loads.push(load);
        await untilFlowing(counts, receiver, FLOW);
        const held = await untilInFlight(inFlight);
        down.add(server.url);
        await server.kill();
        const atKill = counts.acknowledged.size;
        server = await serve();
        await untilFlowing(counts, receiver, FLOW);
        await load.stop();
        await untilAllArrived(receiver, counts.acknowledged, idOf);
        expect(atKill).toBeGreaterThan(0);
        expect(counts.acknowledged.size).toBeGreaterThan(atKill);
        report(
          backend.name,
          'kill -9',
          counts,
          receiver,
          idOf,
          backend.maxDuplicates.kill,
          `; ${held} deliveries in flight at the kill`,
        );
      });

      it('2. the subscriber stops mid-stream and comes back: retries resume, nothing is lost', async () => {
        const { receiver, inFlight } = await setUp('crash-subscriber');
        const counts = newCounts();
        const load = startLoad(counts, () => server, down, 'crash-subscriber');
        loads.push(load);
        await untilFlowing(counts, receiver, FLOW);
        const held = await untilInFlight(inFlight);
        await receiver.stop();
        const atStop = receiver.requests.length;
        // Events keep coming in while nobody takes them.
        const acknowledged = counts.acknowledged.size;
        await until(
          `${FLOW} events acknowledged while the subscriber is away`,
          async () => counts.acknowledged.size,
          (n) => n >= acknowledged + FLOW,
          60_000,
        );
        await receiver.start();
        await untilFlowing(counts, receiver, FLOW);
        await load.stop();
        await untilAllArrived(receiver, counts.acknowledged, idOf);
        expect(receiver.requests.length).toBeGreaterThan(atStop);
        report(
          backend.name,
          'subscriber stopped',
          counts,
          receiver,
          idOf,
          backend.maxDuplicates.subscriber,
          `; ${held} deliveries in flight at the stop`,
        );
      });

      // The embedded backend's store is inside the service: its outage is case 1, so it has no
      // case 3 (not a skipped one: there is nothing to run).
      if (backend.service !== undefined)
        it('3. the backend stops mid-stream and comes back: 503 with Retry-After meanwhile, nothing is lost', async () => {
          const service = backend.service!;
          const { receiver, inFlight } = await setUp('crash-backend');
          const counts = newCounts();
          const load = startLoad(counts, () => server, down, 'crash-backend');
          loads.push(load);
          await untilFlowing(counts, receiver, FLOW);
          const held = await untilInFlight(inFlight);
          await service.stop();
          // The ingress refuses while the backend is away.
          await until(
            'the ingress answering 503',
            async () => counts.refusals.get('503') ?? 0,
            (n) => n >= 10,
            60_000,
          );
          await service.restart();
          await untilFlowing(counts, receiver, FLOW);
          await load.stop();
          await untilAllArrived(receiver, counts.acknowledged, idOf);
          report(
            backend.name,
            'backend stopped',
            counts,
            receiver,
            idOf,
            backend.maxDuplicates.backend,
            `; ${held} deliveries in flight at the stop`,
          );
        });

      it.runIf(backend.upstreamAvailable)(
        "4. a KafkaSource's upstream stops mid-stream and comes back: every produced record arrives",
        async () => {
          const upstream = await backend.upstream();
          const { receiver } = await setUp('crash-upstream');
          const topic = `crash-upstream-${Date.now().toString(36)}`;
          const client = new Kafka(
            upstream.clientConfig({
              // Fail a send soon while the broker is away (the loop tries the next record).
              retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 500 },
              connectionTimeout: 1_000,
              requestTimeout: 5_000,
            }),
          );
          const admin = client.admin();
          await admin.connect();
          await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
          await admin.disconnect();
          const { status, body } = await putResource(server.url, 'sources', 'default', 'upstream', {
            kind: 'KafkaSource',
            spec: {
              bootstrapServers: [upstream.bootstrap],
              topics: [topic],
              consumerGroup: `${topic}-group`,
              initialOffset: 'earliest',
              sink: { ref: { kind: 'Broker', name: 'crash-upstream' } },
            },
          });
          expect(status, JSON.stringify(body)).toBe(201);
          await untilConnected(server.url, 'upstream');

          // Producers: a record counts as acknowledged once its send resolved (acks from all).
          const counts = newCounts();
          const producer: Producer = client.producer();
          await producer.connect();
          let producing = true;
          const produce = async (worker: number): Promise<void> => {
            for (let i = 0; producing; i++) {
              const id = `upstream-${worker}-${i}`;
              counts.sent++;
              try {
                await producer.send({ topic, acks: -1, messages: [{ key: id, value: id }] });
                counts.acknowledged.add(id);
                await pause(PRODUCE_PAUSE_MS);
              } catch {
                refuse(counts, 'producer error');
                await pause(PAUSE_AFTER_FAILURE_MS);
              }
            }
          };
          const producers = Array.from({ length: PRODUCERS }, (_, worker) => produce(worker));
          try {
            await untilFlowing(counts, receiver, FLOW);
            await upstream.stop();
            await until(
              'sends failing while the upstream is away',
              async () => counts.refusals.get('producer error') ?? 0,
              (n) => n >= 1,
              60_000,
            );
            await upstream.restart();
            await untilFlowing(counts, receiver, FLOW);
          } finally {
            producing = false;
            await Promise.all(producers);
            await producer.disconnect();
          }
          await untilAllArrived(receiver, counts.acknowledged, valueOf);
          report(
            backend.name,
            'source upstream stopped',
            counts,
            receiver,
            valueOf,
            backend.maxDuplicates.upstream,
          );
        },
      );
    },
  );
}

/**
 * A private Kafka started on first use (case 4's upstream for the backends that need no Kafka of
 * their own), and its close.
 */
export function lazyPrivateKafka(): {
  get: () => Promise<PrivateKafka>;
  close: () => Promise<void>;
} {
  let started: Promise<PrivateKafka> | undefined;
  return {
    get: () => (started ??= startPrivateKafka()),
    close: async () => {
      if (started !== undefined) await (await started.catch(() => undefined))?.close();
    },
  };
}
