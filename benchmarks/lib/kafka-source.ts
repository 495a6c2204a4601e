/**
 * The Kafka half of the sources scenario (issue 9): records per second through a KafkaSource
 * against a raw kafkajs consumer measured in the same run, on the local Kafka (KAFKA_BROKERS)
 * whatever backend the server under test runs on.
 *
 * Once per backend, N records (1,024-byte JSON values, no key, no headers: the records a KafkaSource
 * wraps as `dev.knative.kafka.event`) are produced to a fresh topic of KAFKA_PARTITIONS partitions
 * (spread round-robin), and a warm-up's records to a second topic. Every measurement then reads
 * the whole topic from the earliest offset with a fresh consumer group:
 *
 * - raw (lib/kafka-consumer-baseline.ts, a fresh process on the server core, in the server's place):
 *   a careful kafkajs consumer, offsets resolved after each record is processed and committed as
 *   it goes; records/s = N / (its creation until it has seen every record);
 * - KafkaSource (lib/kafka-source-load.ts on the generator core, also the subscriber): a fresh
 *   server with one trigger to the subscriber, and a KafkaSource PUT once the records are in the
 *   topic, with a broker sink (ordered, the default, and unordered) or the subscriber's URI as
 *   sink (ordered, unordered); records/s = N / (the PUT until the subscriber has every record).
 *
 * After each measurement the group's committed offsets are read (the server still running): a
 * KafkaSource commits a record's offset only after its sink accepted it, so they must reach the
 * end of every partition. Rounds interleave the configurations (rotating which goes first);
 * medians of the rounds. The topics and groups are deleted at the end (their names start with a
 * fresh prefix).
 */
import type { Admin } from 'kafkajs';
import { PARTITIONS_AT_ONCE, UNORDERED_IN_FLIGHT } from '../../src/adapters/kafka/index.js';
import { KAFKA_EVENT_TYPE } from '../../src/adapters/kafka/records.js';
import { fixture, log, percent, prewarmEvents, Servers, trigger, type Options } from './harness.js';
import type {
  ConsumerBaselineResult,
  ConsumerBaselineTask,
  ConsumeSpec,
} from './kafka-consumer-baseline.js';
import type {
  KafkaSourceResult,
  KafkaSourceTask,
  SourceOrdering,
  SourceSink,
} from './kafka-source-load.js';
import { KAFKA_BROKERS, KAFKA_PARTITIONS, kafkaClient, removeKafkaPrefix } from './kafka.js';
import { freshPrefix } from './nats.js';
import { benchScript } from './paths.js';
import { childResult, GENERATOR_CPU, SERVER_CPU, settle, sleep, spawnNode } from './proc.js';
import { fmt, median, ratio } from './stats.js';
import type { BarPanel } from './svg.js';

/** Bytes of each record's JSON value. */
export const RECORD_BYTES = 1024;

export type KafkaConfig =
  'raw' | 'broker-ordered' | 'broker-unordered' | 'uri-ordered' | 'uri-unordered';

const CONFIGS: readonly KafkaConfig[] = [
  'raw',
  'broker-ordered',
  'broker-unordered',
  'uri-ordered',
  'uri-unordered',
];

const LABELS: Readonly<Record<KafkaConfig, string>> = {
  raw: 'raw kafkajs consumer',
  'broker-ordered': 'KafkaSource, broker sink, `ordered` (default)',
  'broker-unordered': 'KafkaSource, broker sink, `unordered`',
  'uri-ordered': 'KafkaSource, URI sink, `ordered`',
  'uri-unordered': 'KafkaSource, URI sink, `unordered`',
};

const SHORT_LABELS: Readonly<Record<KafkaConfig, string>> = {
  raw: 'raw kafkajs',
  'broker-ordered': 'broker, ordered',
  'broker-unordered': 'broker, unordered',
  'uri-ordered': 'URI, ordered',
  'uri-unordered': 'URI, unordered',
};

function sinkOf(config: Exclude<KafkaConfig, 'raw'>): {
  sink: SourceSink;
  ordering: SourceOrdering;
} {
  const [sink, ordering] = config.split('-') as [SourceSink, SourceOrdering];
  return { sink, ordering };
}

/** Record `i`'s value: JSON of exactly RECORD_BYTES bytes. */
function recordValue(i: number): Buffer {
  const head = {
    order: i,
    customer: `customer-${i % 1000}`,
    amount: (i * 7919) % 100_000,
    currency: 'EUR',
    note: '',
  };
  const padding = RECORD_BYTES - Buffer.byteLength(JSON.stringify(head));
  return Buffer.from(JSON.stringify({ ...head, note: 'x'.repeat(Math.max(0, padding)) }), 'utf8');
}

/**
 * Creates `topic` (KAFKA_PARTITIONS partitions) and produces `records` records to it, `acks: -1`,
 * 1,000 per send and four sends at a time; each partition's end offset.
 */
async function produceTopic(admin: Admin, topic: string, records: number): Promise<number[]> {
  await admin.createTopics({
    waitForLeaders: true,
    topics: [{ topic, numPartitions: KAFKA_PARTITIONS, replicationFactor: 1 }],
  });
  const producer = kafkaClient('tributary-bench-records').producer({
    allowAutoTopicCreation: false,
    idempotent: false,
  });
  await producer.connect();
  try {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < records) {
        const first = next;
        const count = Math.min(1000, records - first);
        next += count;
        const messages = Array.from({ length: count }, (_, i) => ({
          key: null,
          value: recordValue(first + i),
        }));
        await producer.send({ topic, acks: -1, messages });
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
  } finally {
    await producer.disconnect();
  }
  const ends = new Array<number>(KAFKA_PARTITIONS).fill(0);
  for (const p of await admin.fetchTopicOffsets(topic)) ends[p.partition] = Number(p.high);
  const total = ends.reduce((a, b) => a + b, 0);
  if (total !== records) throw new Error(`${topic}: ${total} records produced, not ${records}`);
  return ends;
}

/** The offsets `groupId` committed in `topic`, summed over the partitions (records covered). */
async function committedRecords(admin: Admin, groupId: string, topic: string): Promise<number> {
  const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return (entry?.partitions ?? []).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
}

/** Waits (5 s at most) for the group's commits to cover `records`; what they cover. */
async function settledCommits(
  admin: Admin,
  groupId: string,
  topic: string,
  records: number,
): Promise<number> {
  const deadline = performance.now() + 5_000;
  for (;;) {
    const committed = await committedRecords(admin, groupId, topic);
    if (committed >= records || performance.now() > deadline) return committed;
    await sleep(100);
  }
}

/** The raw consumer (lib/kafka-consumer-baseline.ts) in a fresh process on the server core. */
function runConsumerBaseline(task: ConsumerBaselineTask): Promise<ConsumerBaselineResult> {
  settle();
  const child = spawnNode(SERVER_CPU, [
    benchScript('lib/kafka-consumer-baseline.js'),
    JSON.stringify(task),
  ]);
  return childResult(child, 'kafka consumer baseline');
}

/** The KafkaSource load (lib/kafka-source-load.ts) in a fresh process on the generator core. */
function runSourceLoad(task: KafkaSourceTask): Promise<KafkaSourceResult> {
  const child = spawnNode(GENERATOR_CPU, [
    benchScript('lib/kafka-source-load.js'),
    JSON.stringify(task),
  ]);
  return childResult(child, `kafka source load (${task.sink}, ${task.ordering})`);
}

/** One measurement, raw or through a KafkaSource, as the table needs it. */
export interface KafkaRun {
  readonly config: KafkaConfig;
  readonly round: number;
  readonly groupId: string;
  readonly records: number;
  readonly received: number;
  readonly complete: boolean;
  readonly duplicates: number;
  readonly seconds: number;
  readonly recordsPerSecond: number;
  readonly firstRecordMs: number;
  readonly afterFirstPerSecond: number;
  /** CPU of the process on the server core (the raw consumer, or the server): share, per record. */
  readonly cpu: number;
  readonly cpuPerRecordUs: number;
  /** Records covered by the group's committed offsets once the measurement ended. */
  readonly committed: number;
  /** The server still answered its management API after the run (raw: always true). */
  readonly serverAnswered: boolean;
  /** The child's whole result (warm-up, status, counters). */
  readonly result: ConsumerBaselineResult | KafkaSourceResult;
}

export interface KafkaRow {
  readonly config: KafkaConfig;
  readonly recordsPerSecond: number;
  readonly afterFirstPerSecond: number;
  readonly firstRecordMs: number;
  readonly cpu: number;
  readonly cpuPerRecordUs: number;
  /** The fewest records any run's commits covered. */
  readonly committedMin: number;
  readonly duplicates: number;
  readonly incomplete: number;
  /** Runs after which the server no longer answered, and measurements that failed. */
  readonly unanswered: number;
  readonly failed: number;
}

/** A measurement that produced no result (its error), reported beside the table. */
export interface KafkaFailure {
  readonly config: KafkaConfig;
  readonly round: number;
  readonly error: string;
}

function summarize(
  config: KafkaConfig,
  runs: readonly KafkaRun[],
  failures: readonly KafkaFailure[],
): KafkaRow {
  const m = (f: (r: KafkaRun) => number): number => median(runs.map(f));
  return {
    config,
    recordsPerSecond: m((r) => r.recordsPerSecond),
    afterFirstPerSecond: m((r) => r.afterFirstPerSecond),
    firstRecordMs: m((r) => r.firstRecordMs),
    cpu: m((r) => r.cpu),
    cpuPerRecordUs: m((r) => r.cpuPerRecordUs),
    committedMin: runs.length === 0 ? Number.NaN : Math.min(...runs.map((r) => r.committed)),
    duplicates: runs.reduce((n, r) => n + r.duplicates, 0),
    incomplete: runs.filter((r) => !r.complete).length,
    unanswered: runs.filter((r) => !r.serverAnswered).length,
    failed: failures.filter((f) => f.config === config).length,
  };
}

export interface KafkaSourceReport {
  readonly markdown: string;
  readonly panel: BarPanel;
  /** One line for the figure's caption. */
  readonly caption: string;
  readonly data: unknown;
}

/**
 * The Kafka half of the sources scenario on `backend` (the server's backend; the records are on
 * the local Kafka either way). `port` is the subscriber's port the trigger names.
 */
export async function measureKafkaSource(
  backend: string,
  opts: Options,
  port: number,
): Promise<KafkaSourceReport> {
  // Quick mode: one topic of 10,000 records, two rounds on embedded and one on NATS and Kafka.
  const rounds = opts.quick ? (backend === 'embedded' ? 2 : 1) : 3;
  const records = opts.quick ? 10_000 : 50_000;
  const warmupRecords = prewarmEvents(opts);
  const timeoutMs = opts.quick ? 60_000 : 300_000;
  const prefix = freshPrefix();
  const topic = `${prefix}.records`;
  const warmTopic = `${prefix}.warmup`;
  const admin = kafkaClient('tributary-bench-records').admin();
  await admin.connect();
  const runs: Record<KafkaConfig, KafkaRun[]> = {
    raw: [],
    'broker-ordered': [],
    'broker-unordered': [],
    'uri-ordered': [],
    'uri-unordered': [],
  };
  const failures: KafkaFailure[] = [];
  let ends: number[];
  try {
    const produceStart = performance.now();
    ends = await produceTopic(admin, topic, records);
    const warmEnds = await produceTopic(admin, warmTopic, warmupRecords);
    log(
      `kafka source: ${fmt(records)} + ${fmt(warmupRecords)} records produced in ${fmt((performance.now() - produceStart) / 1000)} s (${ends.join(', ')} per partition)`,
    );
    const sourceFixture = fixture('kafka-source', [
      trigger('kafka-source', [{ exact: { type: KAFKA_EVENT_TYPE } }], `http://127.0.0.1:${port}/`),
    ]);
    const servers = new Servers(backend, opts);
    let groups = 0;
    const groupId = (label: string): string => `${prefix}.${label}-${++groups}`;

    const once = async (config: KafkaConfig, round: number): Promise<void> => {
      let run: KafkaRun;
      if (config === 'raw') {
        const measured: ConsumeSpec = { topic, groupId: groupId('raw'), ends };
        const warmup: ConsumeSpec = {
          topic: warmTopic,
          groupId: groupId('raw-warm'),
          ends: warmEnds,
        };
        const result = await runConsumerBaseline({
          brokers: KAFKA_BROKERS,
          measured,
          warmup,
          timeoutMs,
          partitionsAtOnce: PARTITIONS_AT_ONCE,
        });
        run = {
          config,
          round,
          groupId: measured.groupId,
          ...pick(result),
          cpu: result.cpu,
          cpuPerRecordUs: result.cpuPerRecordUs,
          committed: await settledCommits(admin, measured.groupId, topic, records),
          serverAnswered: true,
          result,
        };
      } else {
        const { sink, ordering } = sinkOf(config);
        const prepared = await servers.start(
          sourceFixture,
          `sources-kafka-${backend}-${config}-${round}`,
        );
        try {
          const measured = {
            name: 'bench',
            topic,
            consumerGroup: groupId(config),
            records,
          };
          let result: KafkaSourceResult;
          try {
            result = await runSourceLoad({
              url: prepared.server.url,
              serverPid: prepared.server.pid,
              receiverPort: port,
              bootstrapServers: KAFKA_BROKERS,
              sink,
              ordering,
              measured,
              warmup: {
                name: 'warm',
                topic: warmTopic,
                consumerGroup: groupId(`${config}-warm`),
                records: warmupRecords,
              },
              timeoutMs,
            });
          } catch (error) {
            // A server that hung (or a source that never delivered) is reported, not fatal: the
            // other configurations are still measured.
            const message = (error as Error).message;
            failures.push({ config, round, error: message });
            log(`kafka ${config}: FAILED: ${message.split('\n').slice(0, 3).join(' ')}`);
            return;
          }
          prepared.markWindow(result.windowMonotonicUs);
          run = {
            config,
            round,
            groupId: measured.consumerGroup,
            ...pick(result),
            cpu: result.serverCpu,
            cpuPerRecordUs: result.serverCpuPerRecordUs,
            committed: await settledCommits(admin, measured.consumerGroup, topic, records),
            serverAnswered: result.serverAnswered,
            result,
          };
        } finally {
          await prepared.stop();
        }
      }
      runs[config].push(run);
      log(
        `kafka ${config}: ${fmt(run.recordsPerSecond)} records/s (${fmt(run.afterFirstPerSecond)}/s after the first record at ${fmt(run.firstRecordMs)} ms), CPU ${percent(run.cpu)}, ${fmt(run.committed)} committed${run.complete ? '' : `, INCOMPLETE (${fmt(run.received)} of ${fmt(run.records)})`}${run.serverAnswered ? '' : ', THE SERVER NO LONGER ANSWERS'}`,
      );
    };

    try {
      for (let round = 0; round < rounds; round++) {
        log(`kafka source round ${round + 1}/${rounds}`);
        // Rotating which goes first, so that a slow phase of the machine hits all alike.
        const order = CONFIGS.map((_, i) => CONFIGS[(i + round) % CONFIGS.length]!);
        for (const config of order) await once(config, round);
      }
    } finally {
      servers.dispose();
    }
  } finally {
    await admin.disconnect().catch(() => {});
    await removeKafkaPrefix(prefix);
  }

  const rows = CONFIGS.map((c) => summarize(c, runs[c], failures));
  const raw = rows[0]!;
  const table = [
    `**Kafka source** (issue 9): ${fmt(records)} records of ${fmt(RECORD_BYTES)}-byte JSON (no key, no headers) produced beforehand to one topic of ${KAFKA_PARTITIONS} partitions on the local Kafka, read from the earliest offset by a fresh consumer group each time, after a warm-up of ${fmt(warmupRecords)} records (another topic and group, discarded). Raw: a kafkajs consumer in its own process on the server core (eachBatch, each offset resolved after its record is processed, \`commitOffsetsIfNecessary\` and \`heartbeat\` after each record, kafkajs's autoCommit committing when each batch ends; the KafkaSource's consumer settings); records/s = records / (its creation until it has seen every record). KafkaSource: a fresh server with one trigger (exact \`type: ${KAFKA_EVENT_TYPE}\`) to a subscriber in the load process, and a KafkaSource (\`initialOffset: earliest\`) PUT once the records are in the topic, its sink the broker \`default\` or the subscriber's URI; records/s = records / (the PUT until the subscriber has every record). Median of ${rounds} round${rounds > 1 ? 's' : ''}, configurations interleaved.`,
    '',
    '| configuration | records/s | x raw | first record after | records/s after the first | x raw | CPU on the server core | CPU per record | committed at the end | duplicates |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${LABELS[r.config]} | ${fmt(r.recordsPerSecond)} | ${ratio(r.recordsPerSecond / raw.recordsPerSecond)} | ${fmt(r.firstRecordMs)} ms | ${fmt(r.afterFirstPerSecond)} | ${ratio(r.afterFirstPerSecond / raw.afterFirstPerSecond)} | ${percent(r.cpu)} | ${fmt(r.cpuPerRecordUs)} µs | ${fmt(r.committedMin)} | ${fmt(r.duplicates)} |`,
    ),
    '',
    `\`ordered\` (Knative's default) delivers one record of a partition at a time: with ${KAFKA_PARTITIONS} partitions, at most ${KAFKA_PARTITIONS} records are on their way to the sink at once, each a broker write (or an HTTP delivery) awaited before the next; \`unordered\` has up to ${UNORDERED_IN_FLIGHT} per partition on their way. Either way an offset is committed only once its record and every one before it in the partition were accepted by the sink. "First record after" includes the control plane telling the source runtime (NATS, Kafka: through its watch), the consumer joining its group and the first fetch; "after the first" is the rate from then on. CPU on the server core is the raw consumer's process or the server's (all threads), over the measurement; "committed at the end" is what the group's committed offsets cover a moment after the last record (the fewest of the rounds).`,
  ];
  const incomplete = rows.reduce((n, r) => n + r.incomplete, 0);
  if (incomplete > 0) {
    table.push(
      '',
      `**${incomplete} Kafka measurement(s) timed out before every record arrived** (their rate counts what arrived).`,
    );
  }
  const unanswered = rows.filter((r) => r.unanswered > 0 || r.failed > 0);
  if (unanswered.length > 0) {
    table.push(
      '',
      `**The server stopped answering** (its event loop stuck; it was stopped with SIGKILL): ${unanswered.map((r) => `${LABELS[r.config]}: ${[r.unanswered > 0 ? `${r.unanswered} run(s) once the measured records were delivered` : '', r.failed > 0 ? `${r.failed} measurement(s) without a result` : ''].filter((x) => x !== '').join(', ')}`).join('; ')}.${failures.map((f) => ` Round ${f.round + 1}, ${f.config}: ${reason(f.error)}.`).join('')}`,
    );
  }
  const uncommitted = rows.filter((r) => r.committedMin < records);
  if (uncommitted.length > 0) {
    table.push(
      '',
      `**Commits short of the end** (5 s after the last record): ${uncommitted.map((r) => `${LABELS[r.config]} ${fmt(r.committedMin)} of ${fmt(records)}`).join('; ')}.`,
    );
  }

  const best = rows
    .slice(1)
    .reduce((a, b) => (b.recordsPerSecond > a.recordsPerSecond ? b : a), rows[1]!);
  const ordered = rows.find((r) => r.config === 'broker-ordered')!;
  return {
    markdown: table.join('\n'),
    panel: {
      kind: 'bar',
      title: `Sources (${backend}): Kafka records`,
      yLabel: 'records per second',
      // Five series in the legend's row.
      width: 760,
      groups: ['from start', 'after the first record'],
      series: rows.map((r) => ({
        name: SHORT_LABELS[r.config],
        values: [r.recordsPerSecond, r.afterFirstPerSecond],
      })),
    },
    caption: `Kafka: ${fmt(records)} records of ${fmt(RECORD_BYTES)} B, ${KAFKA_PARTITIONS} partitions, median of ${rounds} round(s); KafkaSource with a broker sink ${ratio(ordered.recordsPerSecond / raw.recordsPerSecond)} (ordered) of the raw kafkajs consumer, best ${ratio(best.recordsPerSecond / raw.recordsPerSecond)} (${SHORT_LABELS[best.config]}).`,
    data: {
      rounds,
      records,
      warmup: warmupRecords,
      recordBytes: RECORD_BYTES,
      partitions: KAFKA_PARTITIONS,
      recordsPerPartition: ends,
      unorderedInFlight: UNORDERED_IN_FLIGHT,
      partitionsAtOnce: PARTITIONS_AT_ONCE,
      timeoutMs,
      rows,
      runs,
      failures,
    },
  };
}

/** The line of a child's error that says why (after "<child> exited with 1:"). */
function reason(error: string): string {
  const line = error
    .split('\n')
    .slice(1)
    .find((l) => l.trim() !== '');
  return (line ?? error).replace(/^\s*Error: /, '').trim();
}

/** The fields raw and KafkaSource results share. */
function pick(result: ConsumerBaselineResult | KafkaSourceResult) {
  return {
    records: result.records,
    received: result.received,
    complete: result.complete,
    duplicates: result.duplicates,
    seconds: result.seconds,
    recordsPerSecond: result.recordsPerSecond,
    firstRecordMs: result.firstRecordMs,
    afterFirstPerSecond: result.afterFirstPerSecond,
  };
}
