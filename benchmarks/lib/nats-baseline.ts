/**
 * The NATS backend's raw write, without Tributary: JetStream publishes to a stream configured as
 * the backend configures a broker's stream (src/backends/nats/event-log.ts: file storage, one
 * replica, limits retention, discard new, a 2-minute duplicate window), each message shaped as the
 * backend writes an event (the attributes as `ce-*` headers, the `tributary-*` headers, a
 * `Nats-Msg-Id` for de-duplication, the 256-byte JSON data as payload), every PubAck awaited.
 *
 * - `throughput`, 1 in flight: publish, await the ack, publish the next (the serial loop);
 * - `throughput`, k in flight: k publishes outstanding at all times, as when k ingress requests
 *   (or events of batch requests) are being appended at once (the counterpart of SQLite batched
 *   like the group commit);
 * - `rate`: events published at a fixed rate (open loop, acks awaited without holding up the
 *   schedule) and consumed by a durable pull consumer with explicit acks, as the backend's triggers
 *   consume; latency from the publish to the consumer's receipt: what JetStream alone costs at
 *   that rate.
 *
 * Run as a child on the server core: `node nats-baseline.js '<task as JSON>'`; prints one JSON
 * line. The stream is named with the task's prefix; the harness deletes it afterwards.
 */
import { createHash } from 'node:crypto';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { headers as natsHeaders, nanos, type MsgHdrs } from '@nats-io/transport-node';
import { payload } from './http-client.js';
import { connectNats } from './nats.js';
import { percentiles, Samples, type Percentiles } from './stats.js';
import { drained, openLoop } from './open-loop.js';

interface Common {
  readonly url: string;
  /** Prefix of the stream this baseline creates (a fresh one per run). */
  readonly prefix: string;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly payloadBytes: number;
}

export interface NatsThroughputTask extends Common {
  readonly mode: 'throughput';
  /** Publishes awaiting their ack at any time. */
  readonly inFlight: number;
}

export interface NatsRateTask extends Common {
  readonly mode: 'rate';
  readonly rate: number;
  /** How long to wait after the last publish for the last message to be consumed. */
  readonly drainMs: number;
}

export type NatsTask = NatsThroughputTask | NatsRateTask;

export interface NatsThroughputResult {
  readonly inFlight: number;
  readonly events: number;
  readonly seconds: number;
  readonly eventsPerSecond: number;
  /** Publish to PubAck (ms), the window's publishes. */
  readonly ackMs: Percentiles;
}

export interface NatsRateResult {
  readonly rate: number;
  /** Events of the measured window. */
  readonly events: number;
  /** Of those, consumed before the drain ran out. */
  readonly consumed: number;
  readonly errors: number;
  /** From publish to the consumer's receipt (ms), the window's events. */
  readonly latencyMs: Percentiles;
  /** From publish to its PubAck (ms). */
  readonly ackMs: Percentiles;
}

const STREAM_TIMEOUT_MS = 5_000;
const MAX_AGE_MS = 24 * 60 * 60 * 1000;
const DUPLICATE_WINDOW_MS = 2 * 60 * 1000;

/** The `Nats-Msg-Id` the backend gives an event: a hash of its source and id. */
function messageId(source: string, id: string): string {
  return createHash('sha256').update(source).update('\0').update(id).digest('base64url');
}

/** The headers the backend writes for a binary-mode event received by the ingress. */
function eventHeaders(id: string, sentAt: number): MsgHdrs {
  const h = natsHeaders();
  h.append('ce-specversion', '1.0');
  h.append('ce-id', id);
  h.append('ce-source', '/bench');
  h.append('ce-type', 'com.example.bench');
  h.append('ce-datacontenttype', 'application/json');
  h.append('ce-benchsent', sentAt.toFixed(3));
  h.append('ce-knativebrokerttl', '255');
  h.append('ce-knativearrivaltime', new Date().toISOString());
  h.append('tributary-types', 'knativebrokerttl=n');
  h.append('tributary-data', 'json');
  return h;
}

async function open(task: NatsTask) {
  const nc = await connectNats(task.url, 'tributary-bench-baseline');
  const jsm = await jetstreamManager(nc, { timeout: STREAM_TIMEOUT_MS });
  const stream = `${task.prefix}_RAW`;
  const subject = `${task.prefix}.raw`;
  await jsm.streams.add({
    name: stream,
    subjects: [subject],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: 1,
    max_age: nanos(MAX_AGE_MS),
    max_bytes: -1,
    discard: DiscardPolicy.New,
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
  });
  const js = jetstream(nc, { timeout: STREAM_TIMEOUT_MS });
  const data = payload(task.payloadBytes);
  let next = 0;
  /** Publishes the next event; resolves at its PubAck. */
  const publish = (): { id: number; sentAt: number; acked: Promise<unknown> } => {
    const id = next++;
    const sentAt = performance.now();
    const text = String(id);
    const acked = js.publish(subject, data, {
      msgID: messageId('/bench', text),
      headers: eventHeaders(text, sentAt),
      timeout: STREAM_TIMEOUT_MS,
    });
    return { id, sentAt, acked };
  };
  return { nc, jsm, js, stream, publish };
}

async function throughput(task: NatsThroughputTask): Promise<NatsThroughputResult> {
  const { nc, publish } = await open(task);
  const measuredFrom = performance.now() + task.warmupMs;
  const until = measuredFrom + task.durationMs;
  let events = 0;
  const ack = new Samples();
  // Each worker keeps one publish outstanding; the window counts the acks that arrive in it.
  const worker = async (): Promise<void> => {
    while (performance.now() < until) {
      const p = publish();
      await p.acked;
      const done = performance.now();
      if (done >= measuredFrom && done < until) {
        events++;
        ack.push(done - p.sentAt);
      }
    }
  };
  await Promise.all(Array.from({ length: task.inFlight }, worker));
  await nc.close();
  const seconds = task.durationMs / 1000;
  return {
    inFlight: task.inFlight,
    events,
    seconds,
    eventsPerSecond: events / seconds,
    ackMs: percentiles(ack.values()),
  };
}

async function rate(task: NatsRateTask): Promise<NatsRateResult> {
  const { nc, jsm, js, stream, publish } = await open(task);
  // A durable pull consumer with explicit acks, as the backend makes for each trigger.
  await jsm.consumers.add(stream, {
    durable_name: 'raw',
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(30_000),
    deliver_policy: DeliverPolicy.All,
    max_deliver: -1,
    max_ack_pending: 20_000,
  });
  const consumer = await js.consumers.get(stream, 'raw');
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

  const messages = await consumer.consume({
    callback: (m) => {
      const now = performance.now();
      const id = Number(m.headers?.get('ce-id'));
      m.ack();
      if (!(id >= 0 && id < total) || received[id] === 1) return;
      received[id] = 1;
      if (id >= warmN) latency.push(now - sentAt[id]!);
      if (++consumed === total) allConsumed();
    },
  });

  await openLoop({
    total,
    intervalMs: interval,
    send: (i) => {
      const sent = publish();
      sentAt[i] = sent.sentAt;
      return sent;
    },
    onAck: (i, ms) => {
      if (i >= warmN) ack.push(ms);
    },
    onError: () => errors++,
  });
  const isDrained = await drained(finished, task.drainMs);
  await messages.close();
  await nc.close();
  let windowConsumed = 0;
  for (let i = warmN; i < total; i++) windowConsumed += received[i]!;
  if (!isDrained)
    process.stderr.write(`consumed ${consumed} of ${total} before the drain ran out\n`);
  return {
    rate: task.rate,
    events: total - warmN,
    consumed: windowConsumed,
    errors,
    latencyMs: percentiles(latency.values()),
    ackMs: percentiles(ack.values()),
  };
}

const task = JSON.parse(process.argv[2]!) as NatsTask;
const result = task.mode === 'rate' ? await rate(task) : await throughput(task);
process.stdout.write(`${JSON.stringify(result)}\n`);
