/**
 * What every scenario script shares: its options, the child processes it measures with, the
 * triggers it creates, the fixtures it reuses, and where its results go.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  availability,
  copiesDataDir,
  requestedBackends,
  serverInstance,
  type ServerInstance,
} from './backends.js';
import type {
  BurstResult,
  BurstTask,
  ClosedResult,
  ClosedTask,
  OpenResult,
  OpenTask,
} from './generator.js';
import type {
  NatsRateResult,
  NatsRateTask,
  NatsTask,
  NatsThroughputResult,
  NatsThroughputTask,
} from './nats-baseline.js';
import type {
  KafkaRateResult,
  KafkaRateTask,
  KafkaTask,
  KafkaThroughputResult,
  KafkaThroughputTask,
} from './kafka-baseline.js';
import { KAFKA_BROKERS, KAFKA_PARTITIONS, removeKafkaPrefix } from './kafka.js';
import { freshPrefix, NATS_URL, removeStreams } from './nats.js';
import { benchScript, PROFILES_DIR, RESULTS_DIR } from './paths.js';
import {
  childResult,
  GENERATOR_CPU,
  machine,
  pinSelf,
  SERVER_CPU,
  settle,
  spawnNode,
} from './proc.js';
import { freshDataDir, removeDir, startTributary, type ServerUnderTest } from './server.js';
import type { Percentiles } from './stats.js';
import type {
  SqliteRateResult,
  SqliteRateTask,
  SqliteTask,
  SqliteThroughputResult,
  SqliteThroughputTask,
} from './sqlite-baseline.js';

export interface Options {
  readonly quick: boolean;
  readonly backends: string[];
  /** Run the server under a CPU profiler (profiles in benchmarks/results/profiles/). */
  readonly cpuProf: boolean;
  /** Only these parts of a scenario (comma list after --only), for profiling one. */
  readonly only: string[] | undefined;
}

export function options(argv: readonly string[] = process.argv.slice(2)): Options {
  const onlyAt = argv.indexOf('--only');
  return {
    quick: argv.includes('--quick'),
    backends: requestedBackends(argv),
    cpuProf: argv.includes('--cpu-prof'),
    only: onlyAt >= 0 ? (argv[onlyAt + 1] ?? '').split(',') : undefined,
  };
}

/** Pins this orchestrating process to the generator core: it only waits while servers run. */
export function setUp(): void {
  pinSelf(GENERATOR_CPU);
}

/** Ingress path of the broker the benchmarks use: the default broker every new server has. */
export const INGRESS_PATH = '/default/default';
/** Size of each event's JSON data. */
export const PAYLOAD_BYTES = 256;
/** Events sent (and delivered) before an open-loop measurement, so the server's code is optimized. */
export function prewarmEvents(opts: Options): number {
  return opts.quick ? 2000 : 5000;
}

export function runGenerator(task: ClosedTask): Promise<ClosedResult>;
export function runGenerator(task: OpenTask): Promise<OpenResult>;
export function runGenerator(task: BurstTask): Promise<BurstResult>;
export function runGenerator(task: ClosedTask | OpenTask | BurstTask): Promise<unknown> {
  const child = spawnNode(GENERATOR_CPU, [benchScript('lib/generator.js'), JSON.stringify(task)]);
  return childResult(child, `generator (${task.kind})`);
}

/** The raw SQLite write (lib/sqlite-baseline.ts) in a fresh process on the server core. */
export function runSqliteBaseline(
  task: Omit<SqliteThroughputTask, 'dataDir'>,
): Promise<SqliteThroughputResult>;
export function runSqliteBaseline(task: Omit<SqliteRateTask, 'dataDir'>): Promise<SqliteRateResult>;
export async function runSqliteBaseline(task: Omit<SqliteTask, 'dataDir'>): Promise<unknown> {
  const dataDir = freshDataDir();
  settle();
  try {
    const child = spawnNode(SERVER_CPU, [
      benchScript('lib/sqlite-baseline.js'),
      JSON.stringify({ ...task, dataDir }),
    ]);
    return await childResult<unknown>(child, 'sqlite baseline');
  } finally {
    removeDir(dataDir);
  }
}

/** The raw JetStream client (lib/nats-baseline.ts) in a fresh process on the server core. */
export function runNatsBaseline(
  task: Omit<NatsThroughputTask, 'url' | 'prefix'>,
): Promise<NatsThroughputResult>;
export function runNatsBaseline(
  task: Omit<NatsRateTask, 'url' | 'prefix'>,
): Promise<NatsRateResult>;
export async function runNatsBaseline(task: Omit<NatsTask, 'url' | 'prefix'>): Promise<unknown> {
  const prefix = freshPrefix();
  try {
    const child = spawnNode(SERVER_CPU, [
      benchScript('lib/nats-baseline.js'),
      JSON.stringify({ ...task, url: NATS_URL, prefix }),
    ]);
    return await childResult<unknown>(child, 'nats baseline');
  } finally {
    await removeStreams(prefix, NATS_URL);
  }
}

type KafkaOwn = 'brokers' | 'prefix' | 'partitions';

/** The raw kafkajs client (lib/kafka-baseline.ts) in a fresh process on the server core. */
export function runKafkaBaseline(
  task: Omit<KafkaThroughputTask, KafkaOwn>,
): Promise<KafkaThroughputResult>;
export function runKafkaBaseline(task: Omit<KafkaRateTask, KafkaOwn>): Promise<KafkaRateResult>;
export async function runKafkaBaseline(task: Omit<KafkaTask, KafkaOwn>): Promise<unknown> {
  const prefix = freshPrefix();
  settle();
  try {
    const child = spawnNode(SERVER_CPU, [
      benchScript('lib/kafka-baseline.js'),
      JSON.stringify({ ...task, brokers: KAFKA_BROKERS, prefix, partitions: KAFKA_PARTITIONS }),
    ]);
    return await childResult<unknown>(child, 'kafka baseline');
  } finally {
    await removeKafkaPrefix(prefix);
  }
}

/** What the ingress is a ratio of: the raw backend's write with `inFlight` events at once. */
export interface RawThroughput {
  readonly eventsPerSecond: number;
  readonly result: SqliteThroughputResult | NatsThroughputResult | KafkaThroughputResult;
}

/**
 * The raw backend write with the same durability, `inFlight` events at once (1: one at a time):
 * SQLite with that many events per transaction, JetStream with that many publishes awaiting
 * their ack, or Kafka with inFlight / batch sends of `batch` records each awaiting their acks (an
 * ingress request's events go in one send). Undefined for a backend without a raw baseline.
 */
export async function runRawThroughput(
  backend: string,
  task: {
    inFlight: number;
    /** Events per ingress request (1: binary mode); only Kafka sends them together. */
    batch: number;
    warmupMs: number;
    durationMs: number;
    payloadBytes: number;
  },
): Promise<RawThroughput | undefined> {
  const { inFlight, batch, ...rest } = task;
  if (backend === 'embedded') {
    const result = await runSqliteBaseline({ mode: 'throughput', batch: inFlight, ...rest });
    return { eventsPerSecond: result.eventsPerSecond, result };
  }
  if (backend === 'nats') {
    const result = await runNatsBaseline({ mode: 'throughput', inFlight, ...rest });
    return { eventsPerSecond: result.eventsPerSecond, result };
  }
  if (backend === 'kafka') {
    const sends = Math.max(1, Math.round(inFlight / batch));
    const result = await runKafkaBaseline({ mode: 'throughput', inFlight: sends, batch, ...rest });
    return { eventsPerSecond: result.eventsPerSecond, result };
  }
  return undefined;
}

/** The raw backend at a fixed rate: written, then read back or consumed; latency of that. */
export interface RawRate {
  readonly latencyMs: Percentiles;
  readonly result: SqliteRateResult | NatsRateResult | KafkaRateResult;
}

export async function runRawRate(
  backend: string,
  task: { rate: number; warmupMs: number; durationMs: number; payloadBytes: number },
): Promise<RawRate | undefined> {
  if (backend === 'embedded') {
    const result = await runSqliteBaseline({ mode: 'rate', ...task });
    return { latencyMs: result.latencyMs, result };
  }
  if (backend === 'nats') {
    const result = await runNatsBaseline({ mode: 'rate', drainMs: 10_000, ...task });
    if (result.consumed < result.events || result.errors > 0) {
      log(
        `raw JetStream at ${task.rate}/s: only ${result.consumed} of ${result.events} events consumed, ${result.errors} publishes failed`,
      );
    }
    return { latencyMs: result.latencyMs, result };
  }
  if (backend === 'kafka') {
    const result = await runKafkaBaseline({ mode: 'rate', drainMs: 10_000, ...task });
    if (result.consumed < result.events || result.errors > 0) {
      log(
        `raw kafkajs at ${task.rate}/s: only ${result.consumed} of ${result.events} events consumed, ${result.errors} sends failed`,
      );
    }
    return { latencyMs: result.latencyMs, result };
  }
  return undefined;
}

/**
 * The subscriber's port, which triggers name before it listens: BENCH_RECEIVER_PORT when run.ts
 * runs the scenarios (one port for all, so they can share fixtures), else a port free right now.
 */
export function receiverPort(): Promise<number> {
  const given = Number(process.env.BENCH_RECEIVER_PORT);
  return given > 0 ? Promise.resolve(given) : freePort();
}

/** A TCP port free right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address() as net.AddressInfo;
      server.close(() => resolve(address.port));
    });
  });
}

export interface TriggerDoc {
  readonly apiVersion: 'eventing.knative.dev/v1';
  readonly kind: 'Trigger';
  readonly metadata: { readonly name: string; readonly namespace: string };
  readonly spec: Record<string, unknown>;
}

export function trigger(name: string, filters: unknown[], subscriber: string): TriggerDoc {
  return {
    apiVersion: 'eventing.knative.dev/v1',
    kind: 'Trigger',
    metadata: { name, namespace: 'default' },
    spec: { broker: 'default', filters, subscriber: { uri: subscriber } },
  };
}

/**
 * Creates triggers through `POST /v1/apply`, as users do: 500 per request, 4 requests at a time.
 * Resolves with the seconds it took.
 */
export async function applyTriggers(url: string, triggers: readonly TriggerDoc[]): Promise<number> {
  const start = performance.now();
  const chunks: TriggerDoc[][] = [];
  for (let i = 0; i < triggers.length; i += 500) chunks.push(triggers.slice(i, i + 500));
  const worker = async (): Promise<void> => {
    for (let chunk = chunks.shift(); chunk !== undefined; chunk = chunks.shift()) {
      const response = await fetch(`${url}/v1/apply`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(chunk),
      });
      const text = await response.text();
      if (response.status !== 200) throw new Error(`apply: ${response.status} ${text}`);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return (performance.now() - start) / 1000;
}

/** A server state worth preparing once: triggers on the default broker. */
export interface Fixture {
  readonly name: string;
  readonly triggers: readonly TriggerDoc[];
}

/** A fixture named by its content, so that scenarios given the same triggers share a template. */
export function fixture(label: string, triggers: readonly TriggerDoc[]): Fixture {
  const hash = createHash('sha256').update(JSON.stringify(triggers)).digest('hex').slice(0, 12);
  return { name: `${label}-${hash}`, triggers };
}

export interface PreparedServer {
  readonly server: ServerUnderTest;
  /** Where its CPU profile goes, when the run profiles. */
  readonly profileDir?: string;
  /**
   * Notes the measured window (CLOCK_MONOTONIC µs) beside the profile, so that profile-summary
   * counts only the samples taken under the measured load.
   */
  markWindow(window: readonly [number, number]): void;
  /** Seconds the fixture's triggers took to apply (when this call applied them). */
  readonly applySeconds?: number;
  /** What the server holds in the backend's server (NATS), when the backend has one. */
  readonly usage?: ServerInstance['usage'];
  stop(): Promise<void>;
}

/**
 * Fresh servers with a fixture's triggers. On a backend whose state is its data directory, the
 * triggers are applied once into a template directory, and every server starts on a copy of it
 * (a server with 10,000 triggers in about a second instead of applying them again); elsewhere
 * (NATS, Kafka: each server has a prefix of its own) they are applied to each new server, and what
 * the server kept in NATS or Kafka is deleted once it has stopped.
 */
export class Servers {
  private readonly templates = new Map<string, { dir: string; applySeconds: number }>();
  /** BENCH_FIXTURES_DIR: templates shared by the scenario scripts of one run.ts (kept by it). */
  private readonly shared = process.env.BENCH_FIXTURES_DIR;

  constructor(
    readonly backend: string,
    private readonly opts: Options,
  ) {}

  /** Whether fixtures are applied once and copied (else applied to every server). */
  get copies(): boolean {
    return copiesDataDir(this.backend);
  }

  private profiles = 0;

  private profileDir(profileLabel: string | undefined): string | undefined {
    return this.opts.cpuProf && profileLabel !== undefined
      ? path.join(PROFILES_DIR, `${profileLabel}-${String(++this.profiles).padStart(3, '0')}`)
      : undefined;
  }

  /** A server on `dataDir`, with a fresh instance of the backend; `stop` also cleans it up. */
  private async launch(
    dataDir: string,
    cpuProfDir?: string,
    extra: readonly string[] = [],
  ): Promise<ServerUnderTest & { usage?: ServerInstance['usage'] }> {
    const instance = serverInstance(this.backend);
    let server: ServerUnderTest;
    try {
      server = await startTributary({
        backend: this.backend,
        dataDir,
        args: [...instance.args, ...extra],
        ...(cpuProfDir === undefined ? {} : { cpuProfDir }),
      });
    } catch (error) {
      await instance.cleanup().catch(() => {});
      throw error;
    }
    return {
      ...server,
      ...(instance.usage === undefined ? {} : { usage: instance.usage }),
      stop: async () => {
        try {
          await server.stop();
        } finally {
          await instance.cleanup();
        }
      },
    };
  }

  /**
   * Applies a fixture's triggers into its template once; the seconds that took. A backend that
   * does not copy data directories has nothing to prepare (NaN): its servers are given the
   * triggers when they start, and report the time that took (`PreparedServer.applySeconds`).
   */
  async prepare(fixture: Fixture): Promise<number> {
    if (!this.copies) return Number.NaN;
    const known = this.templates.get(fixture.name);
    if (known !== undefined) return known.applySeconds;
    const sharedDir =
      this.shared === undefined
        ? undefined
        : path.join(this.shared, `${this.backend}-${fixture.name}`);
    if (sharedDir !== undefined && existsSync(path.join(sharedDir, 'apply.json'))) {
      const { applySeconds } = JSON.parse(
        readFileSync(path.join(sharedDir, 'apply.json'), 'utf8'),
      ) as {
        applySeconds: number;
      };
      this.templates.set(fixture.name, { dir: path.join(sharedDir, 'data'), applySeconds });
      return applySeconds;
    }
    const dir = freshDataDir();
    const server = await this.launch(dir);
    let applySeconds: number;
    try {
      applySeconds = await applyTriggers(server.url, fixture.triggers);
    } finally {
      await server.stop();
    }
    if (sharedDir !== undefined) {
      mkdirSync(sharedDir, { recursive: true });
      renameSync(dir, path.join(sharedDir, 'data'));
      writeFileSync(path.join(sharedDir, 'apply.json'), JSON.stringify({ applySeconds }));
      this.templates.set(fixture.name, { dir: path.join(sharedDir, 'data'), applySeconds });
    } else {
      this.templates.set(fixture.name, { dir, applySeconds });
    }
    return applySeconds;
  }

  /**
   * A fresh server with the fixture's triggers. `profileLabel` names the CPU profile's directory
   * when the run profiles.
   */
  async start(
    fixture?: Fixture,
    profileLabel?: string,
    extra: readonly string[] = [],
  ): Promise<PreparedServer> {
    const dataDir = freshDataDir();
    const withTriggers = fixture !== undefined && fixture.triggers.length > 0;
    if (withTriggers && this.copies) {
      await this.prepare(fixture);
      cpSync(this.templates.get(fixture.name)!.dir, dataDir, { recursive: true });
    }
    settle();
    const profileDir = this.profileDir(profileLabel);
    let server: ServerUnderTest & { usage?: ServerInstance['usage'] };
    try {
      server = await this.launch(dataDir, profileDir, extra);
    } catch (error) {
      removeDir(dataDir);
      throw error;
    }
    const stop = async (): Promise<void> => {
      try {
        await server.stop();
      } finally {
        removeDir(dataDir);
      }
    };
    let applySeconds: number | undefined;
    if (withTriggers && !this.copies) {
      try {
        applySeconds = await applyTriggers(server.url, fixture.triggers);
      } catch (error) {
        await stop();
        throw error;
      }
    }
    return {
      server,
      ...(applySeconds === undefined ? {} : { applySeconds }),
      ...(server.usage === undefined ? {} : { usage: server.usage }),
      ...(profileDir === undefined ? {} : { profileDir }),
      markWindow: (window) => {
        if (profileDir === undefined) return;
        writeFileSync(
          path.join(profileDir, 'window.json'),
          JSON.stringify({ startUs: window[0], endUs: window[1] }),
        );
      },
      stop,
    };
  }

  dispose(): void {
    for (const { dir } of this.templates.values()) {
      if (this.shared === undefined || !dir.startsWith(this.shared)) removeDir(dir);
    }
    this.templates.clear();
  }
}

/** A goal of the issue, and how this run did against it. */
export interface GoalResult {
  readonly goal: string;
  /** The measured ratio (or value) the goal is about, e.g. 0.84 for 84 % of a baseline. */
  readonly measured: string;
  readonly target: string;
  readonly met: boolean;
  /** By how much it is met or missed, in words and ratios. */
  readonly margin: string;
}

export interface ScenarioReport {
  readonly scenario: string;
  readonly backend: string;
  readonly skipped?: string;
  readonly markdown: string;
  readonly svg?: string;
  readonly goals: readonly GoalResult[];
  readonly data: unknown;
}

export function goalTable(goals: readonly GoalResult[]): string {
  if (goals.length === 0) return '';
  return [
    '| goal | target | measured | verdict |',
    '|---|---|---|---|',
    ...goals.map(
      (g) =>
        `| ${g.goal} | ${g.target} | ${g.measured} | ${g.met ? 'met' : '**missed**'}: ${g.margin} |`,
    ),
  ].join('\n');
}

/** Writes benchmarks/results/<scenario>-<backend>.{json,md,svg} and prints the table. */
export function writeReport(report: ScenarioReport, opts: Options, started: number): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const base = path.join(RESULTS_DIR, `${report.scenario}-${report.backend}`);
  const seconds = (performance.now() - started) / 1000;
  const json = {
    scenario: report.scenario,
    backend: report.backend,
    date: new Date().toISOString(),
    quick: opts.quick,
    seconds,
    machine: machine(),
    ...(report.skipped === undefined ? {} : { skipped: report.skipped }),
    goals: report.goals,
    data: report.data,
  };
  writeFileSync(`${base}.json`, `${JSON.stringify(json, null, 2)}\n`);
  const heading = `### ${report.scenario} (${report.backend})`;
  const body =
    report.skipped === undefined
      ? `${report.markdown}${report.goals.length > 0 ? `\n\n${goalTable(report.goals)}` : ''}`
      : `Skipped: ${report.skipped}.`;
  writeFileSync(`${base}.md`, `${heading}\n\n${body}\n`);
  if (report.svg !== undefined) writeFileSync(`${base}.svg`, report.svg);
  process.stdout.write(`\n${heading} [${seconds.toFixed(0)} s]\n\n${body}\n`);
}

/**
 * Runs a scenario for each requested backend: the available ones through `measure`, the others
 * recorded as skipped with the reason.
 */
export async function forEachBackend(
  scenario: string,
  measure: (
    backend: string,
    opts: Options,
  ) => Promise<Omit<ScenarioReport, 'scenario' | 'backend'>>,
): Promise<void> {
  const opts = options();
  setUp();
  for (const backend of opts.backends) {
    const started = performance.now();
    const available = await availability(backend);
    if (!available.run) {
      writeReport(
        { scenario, backend, skipped: available.reason, markdown: '', goals: [], data: {} },
        opts,
        started,
      );
      continue;
    }
    const report = await measure(backend, opts);
    writeReport({ scenario, backend, ...report }, opts, started);
  }
}

export function log(message: string): void {
  process.stderr.write(`  ${message}\n`);
}

export const percent = (value: number): string =>
  Number.isFinite(value) ? `${(value * 100).toFixed(0)} %` : 'n/a';
