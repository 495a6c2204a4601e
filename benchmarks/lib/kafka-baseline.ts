/**
 * The Kafka backend's raw write, without Tributary: kafkajs producer sends with `acks: -1` (all
 * in-sync replicas), with the producer options the backend uses (not idempotent), to a topic of
 * KAFKA_PARTITIONS partitions created as a broker's topic is, each record shaped as the backend
 * writes an event received in binary mode (src/backends/kafka/codec.ts: the attributes as `ce_*`
 * headers, `content-type`, the `tributary-*` headers, no key since the events have no
 * `partitionkey`, the 256-byte JSON data as value).
 *
 * - `throughput`, 1 in flight: send, await it, send the next (the serial loop);
 * - `throughput`, k in flight: k sends outstanding at all times, each of `batch` records, as when
 *   k ingress requests of `batch` events each are being appended at once (the ingress sends one
 *   request's events in one `send`);
 * - `rate`: events sent at a fixed rate (open loop, acks awaited without holding up the schedule)
 *   and consumed by a consumer group (autoCommit, eachMessage) in the same process; latency from
 *   the send to the consumer's receipt: what Kafka and kafkajs alone cost at that rate.
 *
 * Run as a child on the server core: `node kafka-baseline.js '<task as JSON>'`; prints one JSON
 * line. The topic and group are named with the task's prefix; the harness deletes them afterwards.
 */
import type { IHeaders, Message, Producer } from 'kafkajs';
import { payload } from './http-client.js';
import { kafkaClient } from './kafka.js';
import { percentiles, Samples, type Percentiles } from './stats.js';
import { drained, openLoop } from './open-loop.js';

interface Common {
  readonly brokers: readonly string[];
  /** Prefix of the topic and group this baseline creates (a fresh one per run). */
  readonly prefix: string;
  readonly partitions: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly payloadBytes: number;
}

export interface KafkaThroughputTask extends Common {
  readonly mode: 'throughput';
  /** Sends awaiting their acks at any time. */
  readonly inFlight: number;
  /** Records per send (1: binary mode; 100: a batch-mode request). */
  readonly batch: number;
}

export interface KafkaRateTask extends Common {
  readonly mode: 'rate';
  readonly rate: number;
  /** How long to wait after the last send for the last message to be consumed. */
  readonly drainMs: number;
}

export type KafkaTask = KafkaThroughputTask | KafkaRateTask;

export interface KafkaThroughputResult {
  readonly inFlight: number;
  readonly batch: number;
  /** Events (records) acknowledged in the window. */
  readonly events: number;
  readonly seconds: number;
  readonly eventsPerSecond: number;
  /** Send to ack (ms), the window's sends. */
  readonly ackMs: Percentiles;
}

export interface KafkaRateResult {
  readonly rate: number;
  readonly events: number;
  readonly consumed: number;
  readonly errors: number;
  /** Milliseconds from the consumer's start to its group join (before the first send). */
  readonly joinMs: number;
  /** From send to the consumer's receipt (ms), the window's events. */
  readonly latencyMs: Percentiles;
  /** From send to its ack (ms). */
  readonly ackMs: Percentiles;
}

/** The backend's default `retention.ms` of a broker topic (one day). */
const RETENTION_MS = 24 * 60 * 60 * 1000;

/** The record the backend writes for a binary-mode event received by the ingress. */
function record(id: string, sentAt: number, data: Buffer): Message {
  const headers: IHeaders = {
    ce_specversion: '1.0',
    ce_id: id,
    ce_source: '/bench',
    ce_type: 'com.example.bench',
    'content-type': 'application/json',
    ce_benchsent: sentAt.toFixed(3),
    ce_knativebrokerttl: '255',
    ce_knativearrivaltime: new Date().toISOString(),
    'tributary-types': 'knativebrokerttl=n',
    'tributary-data': 'json',
  };
  return { key: null, value: data, headers };
}

async function open(task: KafkaTask) {
  const kafka = kafkaClient('tributary-bench-baseline', task.brokers);
  const topic = `${task.prefix}.raw`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    waitForLeaders: true,
    topics: [
      {
        topic,
        numPartitions: task.partitions,
        replicationFactor: 1,
        configEntries: [{ name: 'retention.ms', value: String(RETENTION_MS) }],
      },
    ],
  });
  await admin.disconnect();
  const producer: Producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: false });
  await producer.connect();
  const data = Buffer.from(payload(task.payloadBytes));
  let next = 0;
  /** Sends the next `count` events in one send; resolves at its ack. */
  const send = (count: number): { first: number; sentAt: number; acked: Promise<unknown> } => {
    const first = next;
    next += count;
    const sentAt = performance.now();
    const messages = Array.from({ length: count }, (_, i) =>
      record(String(first + i), sentAt, data),
    );
    return { first, sentAt, acked: producer.send({ topic, acks: -1, messages }) };
  };
  return { kafka, producer, topic, send };
}

async function throughput(task: KafkaThroughputTask): Promise<KafkaThroughputResult> {
  const { producer, send } = await open(task);
  const measuredFrom = performance.now() + task.warmupMs;
  const until = measuredFrom + task.durationMs;
  let events = 0;
  const ack = new Samples();
  // Each worker keeps one send outstanding; the window counts the records acked in it.
  const worker = async (): Promise<void> => {
    while (performance.now() < until) {
      const s = send(task.batch);
      await s.acked;
      const done = performance.now();
      if (done >= measuredFrom && done < until) {
        events += task.batch;
        ack.push(done - s.sentAt);
      }
    }
  };
  await Promise.all(Array.from({ length: task.inFlight }, worker));
  await producer.disconnect();
  const seconds = task.durationMs / 1000;
  return {
    inFlight: task.inFlight,
    batch: task.batch,
    events,
    seconds,
    eventsPerSecond: events / seconds,
    ackMs: percentiles(ack.values()),
  };
}

async function rate(task: KafkaRateTask): Promise<KafkaRateResult> {
  const { kafka, producer, topic, send } = await open(task);
  // A consumer group as the backend makes one per trigger (its session and fetch settings), with
  // kafkajs's own offset handling: autoCommit and eachMessage.
  const consumer = kafka.consumer({
    groupId: `${task.prefix}.raw.group`,
    sessionTimeout: 6_000,
    heartbeatInterval: 500,
    rebalanceTimeout: 3_000,
    maxWaitTimeInMs: 100,
    allowAutoTopicCreation: false,
  });
  const interval = 1000 / task.rate;
  const warmN = Math.round((task.rate * task.warmupMs) / 1000);
  const total = warmN + Math.round((task.rate * task.durationMs) / 1000);
  const sentAt = new Float64Array(total);
  const received = new Uint8Array(total);
  const latency = new Samples();
  const ack = new Samples();
  let consumed = 0;
  let errors = 0;
  let allConsumed: () => void = () => {};
  const finished = new Promise<void>((resolve) => (allConsumed = resolve));
  let joined: () => void = () => {};
  const join = new Promise<void>((resolve) => (joined = resolve));
  consumer.on(consumer.events.GROUP_JOIN, () => joined());

  const joinStart = performance.now();
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    autoCommit: true,
    eachMessage: async ({ message }) => {
      const now = performance.now();
      const id = Number(message.headers?.ce_id?.toString());
      if (!(id >= 0 && id < total) || received[id] === 1) return;
      received[id] = 1;
      if (id >= warmN) latency.push(now - sentAt[id]!);
      if (++consumed === total) allConsumed();
    },
  });
  await join;
  const joinMs = performance.now() - joinStart;

  await openLoop({
    total,
    intervalMs: interval,
    send: (i) => {
      const sent = send(1);
      sentAt[i] = sent.sentAt;
      return sent;
    },
    onAck: (i, ms) => {
      if (i >= warmN) ack.push(ms);
    },
    onError: () => errors++,
  });
  const isDrained = await drained(finished, task.drainMs);
  await consumer.disconnect();
  await producer.disconnect();
  let windowConsumed = 0;
  for (let i = warmN; i < total; i++) windowConsumed += received[i]!;
  if (!isDrained)
    process.stderr.write(`consumed ${consumed} of ${total} before the drain ran out\n`);
  return {
    rate: task.rate,
    events: total - warmN,
    consumed: windowConsumed,
    errors,
    joinMs,
    latencyMs: percentiles(latency.values()),
    ackMs: percentiles(ack.values()),
  };
}

const task = JSON.parse(process.argv[2]!) as KafkaTask;
const result = task.mode === 'rate' ? await rate(task) : await throughput(task);
process.stdout.write(`${JSON.stringify(result)}\n`);
