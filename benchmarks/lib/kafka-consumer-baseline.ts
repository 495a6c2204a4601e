/**
 * The raw counterpart of a KafkaSource (issue 9): a kafkajs consumer, without Tributary, in a fresh
 * consumer group reading a topic of pre-produced records from the earliest offset, as a careful
 * consumer does: `eachBatch` with `eachBatchAutoResolve: false`, each record's offset resolved
 * once it is processed (here: counted by partition and offset), `commitOffsetsIfNecessary` and
 * `heartbeat` after each record, and kafkajs's `autoCommit` committing the resolved offsets when a
 * batch ends (kafkajs's defaults: no interval, no threshold). The consumer's settings are the
 * KafkaSource's (src/adapters/kafka/index.ts: session, rebalance and heartbeat times, fetch wait,
 * partitions consumed at once).
 *
 * A warm-up of the same kind (another group, another topic) runs first and is discarded. Records/s
 * = records / (time from the consumer's creation until every record was seen).
 *
 * Run as a child on the server core, in the server's place: `node kafka-consumer-baseline.js
 * '<task as JSON>'`; prints one JSON line. The orchestrator owns (and deletes) the topics and
 * groups.
 */
import { kafkaClient } from './kafka.js';
import { now, runTask } from './proc.js';

/** One topic to read: its name, the group to read it with, and each partition's end offset. */
export interface ConsumeSpec {
  readonly topic: string;
  readonly groupId: string;
  /** End offset (high watermark) of each partition; the topic is fresh, so they start at 0. */
  readonly ends: readonly number[];
}

export interface ConsumerBaselineTask {
  readonly brokers: readonly string[];
  readonly measured: ConsumeSpec;
  readonly warmup?: ConsumeSpec;
  /** How long a phase may take, from the consumer's creation until its last record. */
  readonly timeoutMs: number;
  /** Partitions processed at once (the KafkaSource's PARTITIONS_AT_ONCE). */
  readonly partitionsAtOnce: number;
}

export interface ConsumePhase {
  readonly records: number;
  /** Distinct records seen. */
  readonly received: number;
  readonly complete: boolean;
  /** A record seen again (a rebalance replays what was not committed). */
  readonly duplicates: number;
  readonly batches: number;
  /** From the consumer's creation until the last record was seen (or the timeout). */
  readonly seconds: number;
  readonly recordsPerSecond: number;
  /** From the consumer's creation until it joined its group, and until the first record. */
  readonly joinMs: number;
  readonly firstRecordMs: number;
  /** Records after the first over the time after the first: the rate once consuming. */
  readonly afterFirstPerSecond: number;
  /** This process's CPU over `seconds`, as a share of one core, and per record. */
  readonly cpu: number;
  readonly cpuPerRecordUs: number;
}

export interface ConsumerBaselineResult extends ConsumePhase {
  readonly warmup?: ConsumePhase;
}

const SESSION_TIMEOUT_MS = 10_000;

async function consume(task: ConsumerBaselineTask, spec: ConsumeSpec): Promise<ConsumePhase> {
  const kafka = kafkaClient('tributary-bench-consumer', task.brokers);
  const seen = spec.ends.map((end) => new Uint8Array(end));
  const records = spec.ends.reduce((a, b) => a + b, 0);
  let received = 0;
  let duplicates = 0;
  let batches = 0;
  let joinAt = Number.NaN;
  let firstAt = Number.NaN;
  let lastAt = Number.NaN;
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => (finish = resolve));

  const cpu0 = process.cpuUsage();
  const start = now();
  const consumer = kafka.consumer({
    groupId: spec.groupId,
    sessionTimeout: SESSION_TIMEOUT_MS,
    rebalanceTimeout: SESSION_TIMEOUT_MS,
    heartbeatInterval: 1_000,
    maxWaitTimeInMs: 500,
    allowAutoTopicCreation: false,
  });
  consumer.on(consumer.events.GROUP_JOIN, () => {
    if (Number.isNaN(joinAt)) joinAt = now();
  });
  const timer = setTimeout(finish, task.timeoutMs);
  await consumer.connect();
  await consumer.subscribe({ topics: [spec.topic], fromBeginning: true });
  await consumer.run({
    autoCommit: true,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: task.partitionsAtOnce,
    eachBatch: async (payload) => {
      const { batch } = payload;
      batches++;
      const marks = seen[batch.partition];
      for (const message of batch.messages) {
        if (!payload.isRunning() || payload.isStale()) break;
        const offset = Number(message.offset);
        if (marks === undefined || offset >= marks.length) {
          // Not one of the pre-produced records: nothing else writes to the topic.
        } else if (marks[offset] === 1) {
          duplicates++;
        } else {
          marks[offset] = 1;
          lastAt = now();
          if (received++ === 0) firstAt = lastAt;
          if (received === records) finish();
        }
        payload.resolveOffset(message.offset);
        await payload.commitOffsetsIfNecessary();
        await payload.heartbeat();
      }
    },
  });
  await finished;
  clearTimeout(timer);
  const complete = received === records;
  const end = complete ? lastAt : now();
  const used = process.cpuUsage(cpu0);
  await consumer.disconnect();
  const ms = Math.max(1e-3, end - start);
  const cpuMs = (used.user + used.system) / 1000;
  return {
    records,
    received,
    complete,
    duplicates,
    batches,
    seconds: ms / 1000,
    recordsPerSecond: received / (ms / 1000),
    joinMs: joinAt - start,
    firstRecordMs: firstAt - start,
    afterFirstPerSecond: received > 1 ? (received - 1) / ((lastAt - firstAt) / 1000) : Number.NaN,
    cpu: cpuMs / ms,
    cpuPerRecordUs: (cpuMs * 1000) / Math.max(1, received),
  };
}

async function main(task: ConsumerBaselineTask): Promise<ConsumerBaselineResult> {
  const warmup = task.warmup === undefined ? undefined : await consume(task, task.warmup);
  if (warmup !== undefined && !warmup.complete) {
    throw new Error(`warm-up: ${warmup.received} of ${warmup.records} records consumed`);
  }
  const measured = await consume(task, task.measured);
  return { ...measured, ...(warmup === undefined ? {} : { warmup }) };
}

runTask<ConsumerBaselineTask>(main);
