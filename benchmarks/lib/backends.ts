/**
 * Which backends a run measures, and what each needs. The harness takes a list (`--backends
 * embedded,nats,kafka`, all by default), runs those the CLI implements and this file supports
 * whose server is reachable, and records the others as skipped with the reason.
 */
import { BACKENDS } from '../../src/config.js';
import { KAFKA_BROKERS, KAFKA_PARTITIONS, kafkaProblem, removeKafkaPrefix } from './kafka.js';
import {
  freshPrefix,
  NATS_URL,
  natsProblem,
  natsUsage,
  removeStreams,
  type NatsUsage,
} from './nats.js';

export const ALL_BACKENDS = ['embedded', 'nats', 'kafka'] as const;

/** Where each backend is planned, for backends the CLI does not offer yet. */
const PLANNED: Readonly<Record<string, string>> = {};

/**
 * The backends this harness knows how to run (server flags, cleanup, raw baseline). A backend the
 * CLI offers but that is not listed here is recorded as skipped, not run with missing pieces.
 */
const HARNESS_SUPPORTS: readonly string[] = ['embedded', 'nats', 'kafka'];

/**
 * Why a backend's server cannot be used right now (undefined: it can), checked before a run (none
 * for embedded). NATS must answer at NATS_URL with JetStream enabled; Kafka must answer an admin
 * describeCluster at KAFKA_BROKERS within a few seconds.
 */
const SERVICES: Readonly<Record<string, () => Promise<string | undefined>>> = {
  nats: () => natsProblem(NATS_URL),
  kafka: () => kafkaProblem(KAFKA_BROKERS),
};

/** What one `tributary serve` of a backend needs: its flags, and the removal of its state. */
export interface ServerInstance {
  readonly args: readonly string[];
  /** Removes what the server kept outside its data directory, once it has stopped. */
  readonly cleanup: () => Promise<void>;
  /** What the server holds in the backend's own server (NATS: consumers, pull requests). */
  readonly usage?: () => Promise<NatsUsage>;
}

/**
 * A fresh instance of a backend for one server. The embedded backend's state is its data
 * directory (removed by the harness). A NATS server gets a prefix of its own, so that it starts
 * with no resources and no events, and its streams and KV buckets are deleted after it stopped.
 * A Kafka server likewise gets a prefix of its own (and KAFKA_PARTITIONS partitions per broker
 * topic); its topics and consumer groups are deleted after it stopped.
 */
export function serverInstance(backend: string): ServerInstance {
  if (backend === 'nats') {
    const prefix = freshPrefix();
    return {
      args: ['--nats-url', NATS_URL, '--nats-prefix', prefix],
      cleanup: async () => {
        await removeStreams(prefix, NATS_URL);
      },
      usage: () => natsUsage(prefix, NATS_URL),
    };
  }
  if (backend === 'kafka') {
    const prefix = freshPrefix();
    return {
      args: [
        '--kafka-brokers',
        KAFKA_BROKERS.join(','),
        '--kafka-prefix',
        prefix,
        '--kafka-partitions',
        String(KAFKA_PARTITIONS),
      ],
      cleanup: async () => {
        await removeKafkaPrefix(prefix);
      },
    };
  }
  return { args: [], cleanup: async () => {} };
}

/** The raw backend client each backend's ingress and end-to-end results are a ratio of. */
export interface RawBaseline {
  readonly description: string;
  readonly implemented: boolean;
  /** One event at a time (ingress table and goal). */
  readonly serial: string;
  /** As many events at once as the ingress has in flight. */
  readonly concurrent: string;
  /**
   * Unit of the concurrency: SQLite's events per transaction, JetStream's publishes in flight,
   * Kafka's sends in flight (each of as many records as an ingress request has events).
   */
  readonly concurrencyUnit: string;
  /** The end-to-end baseline at the same rate. */
  readonly rate: string;
}

/**
 * The raw backend client each backend's ingress and end-to-end results are a ratio of: the same
 * durability without Tributary, run on the server core in the server's place.
 */
export const RAW_BASELINES: Readonly<Record<string, RawBaseline>> = {
  embedded: {
    description: 'SQLite insert with the backend schema and pragmas (lib/sqlite-baseline.ts)',
    implemented: true,
    serial: 'SQLite loop',
    concurrent: 'SQLite batched',
    concurrencyUnit: 'events/tx',
    rate: 'raw SQLite',
  },
  nats: {
    description:
      'JetStream publish to a stream configured as a broker stream, every PubAck awaited, and a durable pull consumer (lib/nats-baseline.ts)',
    implemented: true,
    serial: 'JetStream serial',
    concurrent: 'JetStream in flight',
    concurrencyUnit: 'in flight',
    rate: 'raw JetStream',
  },
  kafka: {
    description:
      'kafkajs producer sends with acks=all of the records the backend writes, to a topic of as many partitions, and a consumer group (autoCommit, eachMessage) (lib/kafka-baseline.ts)',
    implemented: true,
    serial: 'kafkajs serial',
    concurrent: 'kafkajs in flight',
    concurrencyUnit: 'in flight',
    rate: 'raw kafkajs',
  },
};

/**
 * Whether a fresh copy of a prepared data directory gives a server with the same state, so that
 * fixtures (10,000 triggers) are created once and every measurement starts a fresh server on a
 * copy. True for the embedded backend, whose whole state is its data directory; a NATS or Kafka
 * server's state is in NATS or Kafka under its prefix, so fixtures are applied to every fresh
 * server.
 */
export function copiesDataDir(backend: string): boolean {
  return backend === 'embedded';
}

/**
 * The most triggers a load puts on one server of a backend. On Kafka every trigger is a kafkajs
 * consumer with its own connections and group membership (about 0.12 s each to apply, and joining
 * takes from 100 ms to seconds), so sets of 1,000 or 10,000 are not measured there.
 */
export function maxTriggers(backend: string): number {
  return backend === 'kafka' ? 100 : Number.POSITIVE_INFINITY;
}

/**
 * Times each event is read from the backend with `triggers` triggers on its broker. On NATS every
 * trigger is a durable pull consumer of the broker's whole stream (its filter runs in Tributary,
 * on every event), so an event is read, decoded, filtered and acked once per trigger; likewise on
 * Kafka, where every trigger is a consumer group of the broker's topic. The embedded backend reads
 * it once for all of them.
 */
export function readsPerEvent(backend: string, triggers: number): number {
  return backend === 'nats' || backend === 'kafka' ? Math.max(1, triggers) : 1;
}

/**
 * At most this many event reads per second are offered to a backend whose triggers each read every
 * event, in the loads with many triggers (fan-out, memory), so that the per-event cost is measured
 * below saturation and a prewarm leaves no backlog of reads behind. (Measured on NATS: about 80 µs
 * of Tributary's CPU per read of an event that does not match, so 5,000 reads/s are 40 % of a core,
 * plus NATS's own work.)
 */
export const MAX_READS_PER_SECOND = 5_000;

/**
 * The rate a load with `triggers` triggers is offered: `rate`, or lower where every trigger reads
 * every event (at least one event every two seconds: 10,000 triggers on NATS).
 */
export function loadRate(backend: string, rate: number, triggers: number): number {
  const reads = readsPerEvent(backend, triggers);
  return reads === 1 ? rate : Math.max(0.5, Math.min(rate, MAX_READS_PER_SECOND / reads));
}

/** Prewarm events for a load with `triggers` triggers: at most two seconds of reads at the above. */
export function loadPrewarm(backend: string, events: number, triggers: number): number {
  const reads = readsPerEvent(backend, triggers);
  return reads === 1
    ? events
    : Math.min(events, Math.max(5, Math.floor((2 * MAX_READS_PER_SECOND) / reads)));
}

/**
 * A load's measured window: `durationMs`, or longer when the rate is so low that it would hold
 * fewer than `minEvents` events.
 */
export function loadWindowMs(durationMs: number, rate: number, minEvents: number): number {
  return Math.max(durationMs, Math.ceil((1000 * minEvents) / rate));
}

/**
 * How long a load waits for the server to be idle again after its prewarm and after its last
 * delivery (generator's `quietMs`): on NATS and Kafka the other triggers' consumers may still be reading.
 */
export function quietMs(backend: string): number {
  return backend === 'nats' || backend === 'kafka' ? 30_000 : 0;
}

export type Availability =
  { readonly run: true } | { readonly run: false; readonly reason: string };

export async function availability(backend: string): Promise<Availability> {
  if (!(BACKENDS as readonly string[]).includes(backend)) {
    const planned = PLANNED[backend];
    return {
      run: false,
      reason:
        planned === undefined
          ? `unknown backend (the CLI offers ${BACKENDS.join(', ')})`
          : `backend not implemented yet (${planned})`,
    };
  }
  if (!HARNESS_SUPPORTS.includes(backend)) {
    const planned = PLANNED[backend];
    return {
      run: false,
      reason: `the benchmarks do not run the ${backend} backend yet${planned === undefined ? '' : ` (${planned})`}: its server flags, cleanup and raw baseline are still to be written in benchmarks/lib/backends.ts`,
    };
  }
  const problem = await SERVICES[backend]?.();
  return problem === undefined ? { run: true } : { run: false, reason: problem };
}

/** Parses `--backends a,b` (or `--backends=a,b`); all known backends by default. */
export function requestedBackends(argv: readonly string[]): string[] {
  const at = argv.findIndex((a) => a === '--backends' || a.startsWith('--backends='));
  if (at < 0) return [...ALL_BACKENDS];
  const value = argv[at]!.includes('=') ? argv[at]!.split('=')[1]! : (argv[at + 1] ?? '');
  return value
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b !== '');
}
