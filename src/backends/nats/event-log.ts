/**
 * The EventLog on JetStream (docs/nats-backend.md).
 *
 * - Each broker is a stream with one subject; events are encoded by codec.ts, de-duplicated on
 *   `Nats-Msg-Id` within the stream's duplicate window.
 * - Each subscription is a durable pull consumer on its broker's stream (the "main" consumer), plus
 *   a durable consumer on its own subject of the shared retry stream. A nak publishes a retry
 *   record (the event, the next attempt number, the note and when it is due) and then acks the
 *   original, so retries and notes are as durable as events and survive a seek, which replaces the
 *   main consumer. A record that is not due yet is held (and renewed) until it is.
 * - Ordered subscriptions keep their retries in the process instead (the message stays unacked,
 *   kept alive with `working()`), so that a crash hands everything that was not done over again
 *   in log order; their attempt numbers and notes are kept in a KV bucket. One process at a time
 *   delivers an ordered subscription: it holds a lease in another KV bucket.
 * - Dead letters are records in a shared stream, one subject per subscription; the stream sequence
 *   is the dead letter's id. A redrive publishes a retry record due now and deletes the dead one.
 */
import { randomUUID } from 'node:crypto';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type StreamConfig,
} from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { nanos } from '@nats-io/transport-node';
import { percentEncodeHeaderValue, tryDecodeHeaderValue } from '../../core/codec/percent.js';
import { TributaryError } from '../../core/errors.js';
import type { CloudEvent } from '../../core/event.js';
import type {
  BrokerLogOptions,
  BrokerRef,
  DeadLetterInfo,
  DeadLetterRecord,
  EventFilter,
  EventLog,
  LogMessage,
  StartPosition,
  SubscriptionHandle,
  SubscriptionOptions,
} from '../contracts.js';
import { decodeEvent, encodeEvent, messageId } from './codec.js';
import type { NatsLink } from './connection.js';
import { apiCode, isNoResponders, isNotFound, RETRY_AFTER_SECONDS, toTributary } from './errors.js';
import { guarded, Handout, orderingKey, sameBroker, settleOnce } from '../handout.js';
import { Names } from './names.js';

export interface StreamOptions {
  /** Stream replicas (1 on a single server). */
  readonly replicas?: number;
  /** Largest size of one broker's stream in bytes; absent or 0: unlimited. */
  readonly maxBytes?: number;
  /** De-duplication window of `Nats-Msg-Id`, in ms (default 2 minutes). */
  readonly duplicateWindowMs?: number;
  /** How long events are kept when a broker sets no retention, in ms (default 24 hours). */
  readonly maxAgeMs?: number;
  /**
   * How long a delivery may go without a sign of life before JetStream hands it to another
   * process (default 30 s). Live processes renew their deliveries well within it; after a crash,
   * this is how long its deliveries wait.
   */
  readonly ackWaitMs?: number;
}

const DEFAULT_MAX_AGE_MS = 24 * 60 * 60 * 1000;
const DEFAULT_DUPLICATE_WINDOW_MS = 2 * 60 * 1000;
const DEFAULT_ACK_WAIT_MS = 30_000;
/**
 * How long one pull request waits on the server for messages: well under the ack wait. A pull
 * request whose reader is gone (a closed member, a crashed process) lives on in nats-server 2.9
 * until it expires, and the first message redelivered meanwhile goes to it and is lost until
 * another ack wait has passed; expiring first keeps redeliveries prompt and in order.
 */
function pullExpiresMs(ackWaitMs: number): number {
  return Math.max(1_000, Math.floor(ackWaitMs / 3));
}
const PUBLISH_TIMEOUT_MS = 5_000;
/** Publishes of one append in flight at once. */
const PUBLISH_WINDOW = 256;
/** Unacked messages a consumer may have out (JetStream stops handing out beyond it). */
const MAX_ACK_PENDING = 20_000;
const RETRY_MAX_ACK_PENDING = 100_000;
/** After a failed pull, how long before the next one. */
const PULL_BACKOFF_MS = 250;
const MAX_PAGE = 1000;

/** Headers of retry and dead-letter records. */
const H = {
  origin: 'tributary-origin',
  attempt: 'tributary-attempt',
  due: 'tributary-due',
  note: 'tributary-note',
  reason: 'tributary-reason',
  attempts: 'tributary-attempts',
  destination: 'tributary-destination',
  status: 'tributary-status',
  deadAt: 'tributary-dead-at',
} as const;

interface NoteRecord {
  readonly attempt: number;
  readonly note?: string;
}

function header(
  msg: { headers?: { has(k: string): boolean; get(k: string): string } | undefined },
  name: string,
): string | undefined {
  const h = msg.headers;
  return h !== undefined && h.has(name) ? h.get(name) : undefined;
}

function decodedHeader(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const result = tryDecodeHeaderValue(value);
  return result.ok ? result.value : value;
}

function shuttingDown(): TributaryError {
  return new TributaryError('SHUTTING_DOWN', 'The NATS backend is closed');
}

function unavailable(): TributaryError {
  return new TributaryError('BACKEND_UNAVAILABLE', 'NATS is not reachable', {
    retryAfter: RETRY_AFTER_SECONDS,
  });
}

function deliverPolicy(start: StartPosition): Partial<ConsumerConfig> {
  switch (start.from) {
    case 'latest':
      return { deliver_policy: DeliverPolicy.New };
    case 'earliest':
      return { deliver_policy: DeliverPolicy.All };
    case 'time':
      return {
        deliver_policy: DeliverPolicy.StartTime,
        opt_start_time: start.time.toISOString(),
      };
  }
}

export class NatsEventLog implements EventLog {
  private readonly names: Names;
  private readonly members = new Set<Member>();
  private closed = false;
  private readonly heartbeat: NodeJS.Timeout;
  readonly ackWaitMs: number;
  readonly leaseTtlMs: number;
  /** Subscriptions deleted through this process: their members stop instead of retrying. */
  private readonly deleted = new Set<string>();

  private constructor(
    private readonly link: NatsLink,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    readonly notes: KV,
    readonly leases: KV,
    prefix: string,
    private readonly options: StreamOptions,
  ) {
    this.names = new Names(prefix);
    this.ackWaitMs = options.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;
    this.leaseTtlMs = NatsEventLog.leaseTtl(this.ackWaitMs);
    // Deliveries in progress stay ours: renew them well within the ack wait.
    this.heartbeat = setInterval(
      () => {
        for (const member of this.members) member.renew();
      },
      Math.max(200, Math.floor(this.ackWaitMs / 3)),
    );
    this.heartbeat.unref();
  }

  /**
   * A lease outlives the ack wait of the last deliveries its holder renewed, and the pull requests
   * it left, so that the next holder finds them all redelivered, in log order, before anything new.
   */
  private static leaseTtl(ackWaitMs: number): number {
    return 2 * ackWaitMs + 1_000;
  }

  static async open(link: NatsLink, prefix: string, options: StreamOptions): Promise<NatsEventLog> {
    const jsm = await jetstreamManager(link.nc, { timeout: PUBLISH_TIMEOUT_MS });
    await jsm.getAccountInfo();
    const js = jetstream(link.nc, { timeout: PUBLISH_TIMEOUT_MS });
    const names = new Names(prefix);
    const replicas = options.replicas ?? 1;
    await ensureStream(jsm, {
      name: names.retryStream,
      subjects: [names.retrySubjects()],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      num_replicas: replicas,
      discard: DiscardPolicy.New,
    });
    await ensureStream(jsm, {
      name: names.deadStream,
      subjects: [names.deadSubjects()],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: replicas,
      allow_direct: true,
      discard: DiscardPolicy.New,
    });
    const kvm = new Kvm(link.nc);
    const notes = await kvm.create(names.notesBucket, { history: 1, replicas });
    const ackWaitMs = options.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;
    const leases = await kvm.create(names.leasesBucket, {
      history: 1,
      replicas,
      ttl: NatsEventLog.leaseTtl(ackWaitMs),
    });
    return new NatsEventLog(link, js, jsm, notes, leases, prefix, options);
  }

  private check(): void {
    if (this.closed) throw shuttingDown();
    if (!this.link.connected()) throw unavailable();
  }

  /** Runs `fn`: refused when closed, its failures as TributaryErrors. */
  private guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return guarded(fn, {
      check: () => this.check(),
      closed: () => this.closed,
      shuttingDown,
      wrap: (error) => toTributary(error, what),
    });
  }

  async ensureBroker(broker: BrokerRef, options: BrokerLogOptions = {}): Promise<void> {
    const maxAge = options.retentionMs ?? this.options.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
    await this.guard(`broker ${broker.namespace}/${broker.name}`, () =>
      ensureStream(this.jsm, {
        name: this.names.stream(broker),
        subjects: [this.names.subject(broker)],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        num_replicas: this.options.replicas ?? 1,
        max_age: maxAge > 0 ? nanos(maxAge) : 0,
        max_bytes:
          this.options.maxBytes === undefined || this.options.maxBytes === 0
            ? -1
            : this.options.maxBytes,
        // Refuse new events rather than drop old ones that may not be delivered yet.
        discard: DiscardPolicy.New,
        // JetStream refuses a duplicate window longer than the stream keeps events.
        duplicate_window: nanos(
          Math.min(
            this.options.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS,
            maxAge > 0 ? maxAge : Number.MAX_SAFE_INTEGER,
          ),
        ),
      }),
    );
  }

  async deleteBroker(broker: BrokerRef): Promise<void> {
    await this.guard(`broker ${broker.namespace}/${broker.name}`, async () => {
      try {
        await this.jsm.streams.delete(this.names.stream(broker));
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
      await this.jsm.streams.purge(this.names.retryStream, {
        filter: this.names.brokerRetries(broker),
      });
      await this.jsm.streams.purge(this.names.deadStream, {
        filter: this.names.brokerDead(broker),
      });
      await this.purgeNotes(`${broker.namespace}.${broker.name}.>`);
      for (const member of this.members) {
        if (sameBroker(member.broker, broker)) member.stop(true);
      }
    });
  }

  private async purgeNotes(keys: string): Promise<void> {
    await this.jsm.streams.purge(`KV_${this.names.notesBucket}`, {
      filter: `$KV.${this.names.notesBucket}.${keys}`,
    });
  }

  async append(broker: BrokerRef, events: readonly CloudEvent[]): Promise<void> {
    this.check();
    const subject = this.names.subject(broker);
    const encoded = events.map((event) => ({ id: messageId(event), ...encodeEvent(event) }));
    try {
      for (let i = 0; i < encoded.length; i += PUBLISH_WINDOW) {
        await Promise.all(
          encoded.slice(i, i + PUBLISH_WINDOW).map((e) =>
            this.js.publish(subject, e.payload, {
              msgID: e.id,
              headers: e.headers,
              timeout: PUBLISH_TIMEOUT_MS,
            }),
          ),
        );
      }
    } catch (error) {
      if (this.closed) throw shuttingDown();
      if (isNoResponders(error)) {
        throw new TributaryError(
          'NOT_FOUND',
          `Broker ${broker.namespace}/${broker.name} has no event log`,
        );
      }
      throw toTributary(error, `append to ${broker.namespace}/${broker.name}`);
    }
  }

  async ensureSubscription(
    options: Pick<SubscriptionOptions, 'id' | 'broker' | 'start'>,
  ): Promise<void> {
    const { broker, id } = options;
    await this.guard(`subscription ${id} of ${broker.namespace}/${broker.name}`, async () => {
      const name = this.names.consumer(broker, id);
      await this.ensureConsumer(this.names.stream(broker), name, {
        ...deliverPolicy(options.start),
        max_ack_pending: MAX_ACK_PENDING,
      });
      await this.ensureConsumer(this.names.retryStream, name, {
        deliver_policy: DeliverPolicy.All,
        filter_subject: this.names.retrySubject(broker, id),
        max_ack_pending: RETRY_MAX_ACK_PENDING,
      });
      this.deleted.delete(this.subscriptionKey(broker, id));
    });
  }

  /** Creates the durable consumer unless it exists (an existing one keeps its position). */
  private async ensureConsumer(
    stream: string,
    name: string,
    config: Partial<ConsumerConfig>,
  ): Promise<void> {
    try {
      await this.jsm.consumers.info(stream, name);
      return;
    } catch (error) {
      if (apiCode(error) !== 10014) throw error;
    }
    await this.jsm.consumers.add(stream, {
      durable_name: name,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(this.ackWaitMs),
      max_deliver: -1,
      ...config,
    });
  }

  subscriptionKey(broker: BrokerRef, id: string): string {
    return this.names.key(broker, id);
  }

  async subscribe(
    options: SubscriptionOptions,
    handler: (message: LogMessage) => void,
  ): Promise<SubscriptionHandle> {
    await this.ensureSubscription(options);
    const member = new Member(this, this.names, options, handler, () => {
      this.members.delete(member);
    });
    this.members.add(member);
    member.start();
    return member;
  }

  async deleteSubscription(id: string, broker: BrokerRef): Promise<void> {
    await this.guard(`subscription ${id}`, async () => {
      this.deleted.add(this.subscriptionKey(broker, id));
      for (const member of this.members) {
        if (member.id === id && sameBroker(member.broker, broker)) member.stop(true);
      }
      const name = this.names.consumer(broker, id);
      for (const stream of [this.names.stream(broker), this.names.retryStream]) {
        try {
          await this.jsm.consumers.delete(stream, name);
        } catch (error) {
          if (!isNotFound(error)) throw error;
        }
      }
      await this.jsm.streams.purge(this.names.retryStream, {
        filter: this.names.retrySubject(broker, id),
      });
      await this.jsm.streams.purge(this.names.deadStream, {
        filter: this.names.deadSubject(broker, id),
      });
      await this.purgeNotes(`${this.names.key(broker, id)}.>`);
      await this.leases.purge(this.names.key(broker, id)).catch(() => {});
    });
  }

  isDeleted(broker: BrokerRef, id: string): boolean {
    return this.deleted.has(this.subscriptionKey(broker, id));
  }

  async seek(id: string, broker: BrokerRef, position: StartPosition): Promise<void> {
    await this.guard(`subscription ${id} of ${broker.namespace}/${broker.name}`, async () => {
      const stream = this.names.stream(broker);
      const name = this.names.consumer(broker, id);
      const info = await this.jsm.consumers.info(stream, name);
      // JetStream 2.9 cannot move a consumer: a new one replaces it. Retries live in the retry
      // stream (or, for ordered subscriptions, in the process), so they are kept.
      await this.jsm.consumers.delete(stream, name);
      await this.jsm.consumers.add(stream, {
        durable_name: name,
        ack_policy: AckPolicy.Explicit,
        ack_wait: info.config.ack_wait ?? nanos(this.ackWaitMs),
        max_deliver: -1,
        max_ack_pending: info.config.max_ack_pending ?? MAX_ACK_PENDING,
        ...deliverPolicy(position),
      });
      for (const member of this.members) {
        if (member.id === id && sameBroker(member.broker, broker)) member.restartMain();
      }
    });
  }

  async listDeadLetters(
    id: string,
    broker: BrokerRef,
    page: { readonly after?: string; readonly limit?: number } = {},
  ): Promise<DeadLetterRecord[]> {
    const limit = Math.min(Math.max(1, page.limit ?? 100), MAX_PAGE);
    const after = page.after === undefined ? 0 : Number(page.after);
    if (!Number.isSafeInteger(after) || after < 0) {
      throw new TributaryError('BAD_REQUEST', `"${page.after}" is not a dead letter id`);
    }
    return this.guard(`dead letters of ${id}`, async () => {
      const subject = this.names.deadSubject(broker, id);
      const records: DeadLetterRecord[] = [];
      if ((await this.countDead(subject)) === 0) return records;
      let seq = after + 1;
      while (records.length < limit) {
        const stored = await this.jsm.direct.getMessage(this.names.deadStream, {
          seq,
          next_by_subj: subject,
        });
        if (stored === null) break;
        records.push(deadRecord(id, stored.seq, stored.header, stored.data));
        seq = stored.seq + 1;
      }
      return records;
    });
  }

  private async countDead(subject: string): Promise<number> {
    const info = await this.jsm.streams.info(this.names.deadStream, { subjects_filter: subject });
    return info.state.subjects?.[subject] ?? 0;
  }

  countDeadLetters(id: string, broker: BrokerRef): Promise<number> {
    return this.guard(`dead letters of ${id}`, () =>
      this.countDead(this.names.deadSubject(broker, id)),
    );
  }

  /**
   * Pending plus ack-pending of the subscription's consumer on the broker's stream (ordered
   * subscriptions keep their retries there, unacked) and of its consumer on the retry stream
   * (retry records are acked, and so removed, once done).
   */
  backlog(id: string, broker: BrokerRef): Promise<number | undefined> {
    return this.guard(`backlog of ${id}`, async () => {
      const name = this.names.consumer(broker, id);
      const unfinished = async (stream: string): Promise<number | undefined> => {
        try {
          const info = await this.jsm.consumers.info(stream, name);
          return info.num_pending + info.num_ack_pending;
        } catch (error) {
          if (isNotFound(error)) return undefined;
          throw error;
        }
      };
      const [main, retries] = await Promise.all([
        unfinished(this.names.stream(broker)),
        unfinished(this.names.retryStream),
      ]);
      return main === undefined ? undefined : main + (retries ?? 0);
    });
  }

  async redriveDeadLetters(
    id: string,
    broker: BrokerRef,
    ids?: readonly string[],
  ): Promise<number> {
    return this.guard(`dead letters of ${id}`, async () => {
      const subject = this.names.deadSubject(broker, id);
      const seqs: number[] = [];
      if (ids === undefined) {
        let after = 0;
        for (;;) {
          const page = await this.listDeadLetters(id, broker, {
            after: String(after),
            limit: MAX_PAGE,
          });
          if (page.length === 0) break;
          for (const record of page) seqs.push(Number(record.id));
          after = Number(page[page.length - 1]!.id);
        }
      } else {
        for (const text of ids) {
          const seq = Number(text);
          if (Number.isSafeInteger(seq) && seq > 0) seqs.push(seq);
        }
      }
      let count = 0;
      for (const seq of [...new Set(seqs)].sort((a, b) => a - b)) {
        let stored;
        try {
          stored = await this.jsm.streams.getMessage(this.names.deadStream, { seq });
        } catch (error) {
          if (apiCode(error) === 10037) continue; // no message with that sequence
          throw error;
        }
        if (stored === null || stored.subject !== subject) continue;
        const event = decodeEvent(stored.header, stored.data);
        await this.publishRetry(broker, id, event, {
          origin: header({ headers: stored.header }, H.origin) ?? String(seq),
          attempt: 1,
          dueMs: 0,
        });
        await this.jsm.streams.deleteMessage(this.names.deadStream, seq, false);
        count++;
      }
      return count;
    });
  }

  /** Stores a retry record: the event, handed over again as `attempt` once `dueMs` has come. */
  async publishRetry(
    broker: BrokerRef,
    id: string,
    event: CloudEvent,
    record: { origin: string; attempt: number; dueMs: number; note?: string },
  ): Promise<void> {
    const extra: Record<string, string> = {
      [H.origin]: record.origin,
      [H.attempt]: String(record.attempt),
      [H.due]: String(record.dueMs),
    };
    if (record.note !== undefined) extra[H.note] = percentEncodeHeaderValue(record.note);
    const { headers, payload } = encodeEvent(event, extra);
    await this.js.publish(this.names.retrySubject(broker, id), payload, {
      headers,
      timeout: PUBLISH_TIMEOUT_MS,
    });
  }

  async publishDead(
    broker: BrokerRef,
    id: string,
    event: CloudEvent,
    origin: string,
    info: DeadLetterInfo,
  ): Promise<void> {
    const extra: Record<string, string> = {
      [H.origin]: origin,
      [H.reason]: percentEncodeHeaderValue(info.reason),
      [H.attempts]: String(info.attempts),
      [H.deadAt]: String(Date.now()),
    };
    if (info.destination !== undefined) {
      extra[H.destination] = percentEncodeHeaderValue(info.destination);
    }
    if (info.lastStatus !== undefined) extra[H.status] = String(info.lastStatus);
    const { headers, payload } = encodeEvent(event, extra);
    await this.js.publish(this.names.deadSubject(broker, id), payload, {
      headers,
      timeout: PUBLISH_TIMEOUT_MS,
    });
  }

  /** The note kept for an ordered subscription's message, if any. */
  async readNote(key: string): Promise<NoteRecord | undefined> {
    const entry = await this.notes.get(key);
    if (entry === null || entry.operation !== 'PUT') return undefined;
    return entry.json<NoteRecord>();
  }

  async writeNote(key: string, record: NoteRecord): Promise<void> {
    await this.notes.put(key, JSON.stringify(record));
  }

  async dropNote(key: string): Promise<void> {
    await this.notes.purge(key);
  }

  /** Settlements under way: the log's close waits for them. */
  private readonly settling = new Set<Promise<unknown>>();

  track<T>(work: Promise<T>): Promise<T> {
    this.settling.add(work);
    const forget = (): void => {
      this.settling.delete(work);
    };
    work.then(forget, forget);
    return work;
  }

  /** Resolves once the server has processed everything sent so far. */
  async flush(): Promise<void> {
    try {
      await this.link.nc.flush();
    } catch {
      // closed or disconnected
    }
  }

  isClosed(): boolean {
    return this.closed;
  }

  isHealthy(): boolean {
    return !this.closed && this.link.connected();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.heartbeat);
    const members = [...this.members];
    // Whatever is still out goes back now rather than after the ack wait.
    // Settlements under way finish first (an ack must not be given back as a nak).
    await Promise.allSettled([...this.settling]);
    for (const member of members) member.stop(true);
    for (const member of members) await member.stopped();
    this.closed = true;
    try {
      await this.link.nc.flush();
    } catch {
      // closed or disconnected: JetStream hands them over again after the ack wait
    }
  }
}

async function ensureStream(
  jsm: JetStreamManager,
  config: Partial<StreamConfig> & { name: string },
): Promise<void> {
  let existing;
  try {
    existing = await jsm.streams.info(config.name);
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  if (existing === undefined) {
    try {
      await jsm.streams.add(config);
      return;
    } catch (error) {
      // 10058: created meanwhile by another process; fall through to the comparison.
      if (apiCode(error) !== 10058) throw error;
      existing = await jsm.streams.info(config.name);
    }
  }
  const current = existing.config;
  const changed =
    (config.max_age !== undefined && current.max_age !== config.max_age) ||
    (config.max_bytes !== undefined && current.max_bytes !== config.max_bytes) ||
    (config.duplicate_window !== undefined && current.duplicate_window !== config.duplicate_window);
  if (changed) await jsm.streams.update(config.name, { ...current, ...config });
}

function deadRecord(
  id: string,
  seq: number,
  headers: StoredHeaders,
  data: Uint8Array,
): DeadLetterRecord {
  const holder = { headers };
  const destination = decodedHeader(header(holder, H.destination));
  const status = header(holder, H.status);
  return {
    id: String(seq),
    subscriptionId: id,
    event: decodeEvent(headers, data),
    reason: decodedHeader(header(holder, H.reason)) ?? '',
    attempts: Number(header(holder, H.attempts) ?? 0),
    ...(destination === undefined ? {} : { destination }),
    ...(status === undefined ? {} : { lastStatus: Number(status) }),
    deadLetteredAt: new Date(Number(header(holder, H.deadAt) ?? 0)),
  };
}

type StoredHeaders = Parameters<typeof decodeEvent>[0];

/** One message fetched by a member, from the main consumer or the retry consumer. */
interface Pending {
  readonly msg: JsMsg;
  readonly source: 'main' | 'retry';
  readonly event: CloudEvent;
  /** The event's sequence in the broker's stream (its position). */
  readonly origin: string;
  attempt: number;
  note: string | undefined;
  /** Ordering group (the partitionkey; '' for none). */
  readonly key: string;
  /** True once handed to the handler and not yet settled. */
  out: boolean;
  /** Whether a note may exist for it in the notes bucket (ordered subscriptions). */
  noted: boolean;
  timer?: NodeJS.Timeout;
}

interface Pull {
  stop(): void;
}

/** One member of a subscription in this process. */
class Member implements SubscriptionHandle {
  readonly id: string;
  readonly broker: BrokerRef;
  private filter: EventFilter | undefined;
  private readonly ordered: boolean;
  private readonly maxInFlight: number;
  private reserved = 0;
  private closed = false;
  /** Fetched and not settled or given back: renewed by the heartbeat. */
  private readonly outstanding = new Set<Pending>();
  private readonly handout: Handout<Pending>;
  private capacityWaiter: (() => void) | undefined;
  private readonly pulls = new Set<Pull>();
  private readonly loops: Promise<void>[] = [];
  private mainGeneration = 0;
  private lease: { revision: number; timer: NodeJS.Timeout } | undefined;
  private leaseWaiter: (() => void) | undefined;
  private readonly owner = randomUUID();
  /** Ordered: messages were left to their ack wait, so the lease must run out, not be dropped. */
  private keepLease = false;

  constructor(
    private readonly log: NatsEventLog,
    private readonly names: Names,
    options: SubscriptionOptions,
    private readonly handler: (message: LogMessage) => void,
    private readonly onStopped: () => void,
  ) {
    this.id = options.id;
    this.broker = { namespace: options.broker.namespace, name: options.broker.name };
    this.filter = options.filter;
    this.ordered = options.ordered === true;
    this.maxInFlight = Math.max(1, options.maxInFlight);
    this.handout = new Handout<Pending>(
      this.ordered,
      this.maxInFlight,
      (p) => this.handOver(p),
      () => this.closed,
    );
  }

  start(): void {
    this.loops.push(this.run());
  }

  private async run(): Promise<void> {
    if (this.ordered) {
      const held = await this.acquireLease();
      if (!held) return;
    }
    await Promise.all([this.pullLoop('main'), this.pullLoop('retry')]);
  }

  setFilter(filter: EventFilter | undefined): void {
    this.filter = filter;
  }

  async close(): Promise<void> {
    this.stop(false);
    await this.stopped();
  }

  /**
   * Stops fetching; what was fetched but not handed over goes back (with `everything`, also what
   * is handed over and not settled).
   *
   * A pull request stays open on the server until it is filled or expires, even when its reader
   * is gone, and nats-server 2.9 hands the first message redelivered meanwhile to it (where it
   * waits for another ack wait). So when messages go back, the pulls are left open to run out:
   * whatever comes to them is given back again, and the last give-back reaches the other members
   * in log order. With nothing to give back they end at once.
   */
  stop(everything = false): void {
    if (this.closed) return;
    this.closed = true;
    this.capacityWaiter?.();
    this.leaseWaiter?.();
    const gaveBack = everything ? this.releaseAll() : this.releaseWaiting();
    if (!gaveBack) for (const pull of this.pulls) pull.stop();
  }

  async stopped(): Promise<void> {
    await Promise.all(this.loops);
    if (this.lease !== undefined) {
      clearInterval(this.lease.timer);
      const key = this.leaseKey();
      this.lease = undefined;
      // With messages left to their ack wait, the lease runs out by itself after them.
      if (!this.keepLease && this.outstanding.size === 0) {
        await this.log.leases.delete(key).catch(() => {});
      }
    }
    // Deliveries still out keep being renewed until they are settled.
    if (this.outstanding.size === 0) this.onStopped();
  }

  /**
   * Gives back everything not handed over (held, ready, waiting for a retry). Unordered: at once,
   * with a nak. Ordered: by letting their ack wait run out, so that they come back in log order
   * (naks racing a pull request that is still open on the server would not), and the lease is
   * kept until then.
   */
  private releaseWaiting(): boolean {
    const waiting: Pending[] = [];
    for (const p of this.outstanding) if (!p.out) waiting.push(p);
    this.handout.clear();
    return this.giveBack(waiting);
  }

  /** At the log's close: everything still here goes back, handed over or not. */
  private releaseAll(): boolean {
    const waiting = this.releaseWaiting();
    return this.giveBack([...this.outstanding]) || waiting;
  }

  /** True when naks went out (unordered members). */
  private giveBack(list: Pending[]): boolean {
    let nakked = false;
    for (const p of list.sort((a, b) => a.msg.seq - b.msg.seq)) {
      if (p.timer !== undefined) clearTimeout(p.timer);
      this.outstanding.delete(p);
      if (this.ordered) {
        this.keepLease = true;
        continue;
      }
      try {
        p.msg.nak();
        nakked = true;
      } catch {
        // the connection is gone: the ack wait hands it over again
      }
    }
    return nakked;
  }

  renew(): void {
    for (const p of this.outstanding) {
      try {
        p.msg.working();
      } catch {
        // disconnected: nothing to renew now
      }
    }
  }

  /** The main consumer was replaced (seek): pull from the new one. */
  restartMain(): void {
    this.mainGeneration++;
    for (const pull of this.pulls) if ((pull as { source?: string }).source === 'main') pull.stop();
    // What came from the old consumer and is not out is dropped: the new one decides.
    const stale = (p: Pending): boolean => p.source === 'main' && !p.out && p.timer === undefined;
    for (const p of [...this.outstanding]) if (stale(p)) this.outstanding.delete(p);
    this.handout.drop(stale);
  }

  private leaseKey(): string {
    return this.names.key(this.broker, this.id);
  }

  /** Ordered subscriptions: wait until this member holds the lease; false when closed first. */
  private async acquireLease(): Promise<boolean> {
    const key = this.leaseKey();
    while (!this.closed) {
      try {
        const revision = await this.log.leases.create(key, this.owner);
        const timer = setInterval(
          () => void this.renewLease(),
          Math.floor(this.log.leaseTtlMs / 4),
        );
        timer.unref();
        this.lease = { revision, timer };
        return true;
      } catch {
        // held by another member (or NATS is away): try again shortly
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.floor(this.log.leaseTtlMs / 4));
        timer.unref();
        this.leaseWaiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.leaseWaiter = undefined;
    }
    return false;
  }

  private async renewLease(): Promise<void> {
    const lease = this.lease;
    if (lease === undefined || this.closed) return;
    try {
      lease.revision = await this.log.leases.update(this.leaseKey(), this.owner, lease.revision);
    } catch {
      if (!this.log.isHealthy()) return; // try again on the next tick
      // Lost it (expired while we were away): stop, so that only the new holder delivers.
      this.stop();
    }
  }

  private free(): number {
    return this.maxInFlight - this.handout.inFlight - this.reserved - this.handout.waiting;
  }

  private waitForCapacity(): Promise<void> {
    return new Promise((resolve) => {
      const previous = this.capacityWaiter;
      this.capacityWaiter = () => {
        this.capacityWaiter = undefined;
        previous?.();
        resolve();
      };
    });
  }

  private signal(): void {
    this.capacityWaiter?.();
  }

  private async pullLoop(source: 'main' | 'retry'): Promise<void> {
    const stream = source === 'main' ? this.names.stream(this.broker) : this.names.retryStream;
    const name = this.names.consumer(this.broker, this.id);
    while (!this.closed) {
      const room =
        source === 'main'
          ? this.free()
          : this.maxInFlight - this.handout.inFlight - this.handout.waiting;
      if (room <= 0) {
        await this.waitForCapacity();
        continue;
      }
      const generation = this.mainGeneration;
      let asked = 0;
      try {
        const consumer = await this.log.js.consumers.get(stream, name);
        if (this.closed) break;
        asked = room;
        if (source === 'main') this.reserved += asked;
        const messages = await consumer.fetch({
          max_messages: asked,
          expires: pullExpiresMs(this.log.ackWaitMs),
        });
        const pull = Object.assign({ stop: () => messages.stop(), source }, {});
        this.pulls.add(pull);
        try {
          for await (const msg of messages) {
            if (source === 'main' && asked > 0) {
              asked--;
              this.reserved--;
            }
            if (this.closed || (source === 'main' && generation !== this.mainGeneration)) {
              // Stopped meanwhile: give it back at once.
              if (this.closed) msg.nak();
              continue;
            }
            await this.receive(source, msg);
          }
        } finally {
          this.pulls.delete(pull);
        }
      } catch (error) {
        if (this.closed) break;
        if (isNotFound(error) && this.log.isDeleted(this.broker, this.id)) break;
        await pause(PULL_BACKOFF_MS);
      } finally {
        if (source === 'main') this.reserved -= asked;
      }
    }
  }

  private async receive(source: 'main' | 'retry', msg: JsMsg): Promise<void> {
    let event: CloudEvent;
    try {
      event = decodeEvent(msg.headers ?? emptyHeaders(), msg.data);
    } catch {
      msg.term('not an event Tributary wrote');
      return;
    }
    if (source === 'main' && this.filter !== undefined) {
      let wanted = false;
      try {
        wanted = this.filter(event);
      } catch {
        wanted = false;
      }
      if (!wanted) {
        msg.ack();
        this.signal();
        return;
      }
    }
    let attempt = 1;
    let note: string | undefined;
    let origin = String(msg.seq);
    let wait = 0;
    if (source === 'retry') {
      wait = Number(header(msg, H.due) ?? 0) - Date.now();
      attempt = Number(header(msg, H.attempt) ?? 1);
      note = decodedHeader(header(msg, H.note));
      origin = header(msg, H.origin) ?? origin;
    }
    const p: Pending = {
      msg,
      source,
      event,
      origin,
      attempt,
      note,
      key: this.ordered ? orderingKey(event) : '',
      out: false,
      noted: false,
    };
    if (this.ordered && msg.info.deliveryCount > 1) {
      try {
        const record = await this.log.readNote(this.noteKey(p));
        if (record !== undefined) {
          p.attempt = record.attempt;
          p.note = record.note;
          p.noted = true;
        }
      } catch {
        // unreadable now: hand it over as it is rather than hold it
      }
    }
    this.outstanding.add(p);
    if (wait <= 0) {
      this.handout.offer(p);
      return;
    }
    // Not due yet: held here (renewed like a delivery) rather than nak-ed with the delay, which
    // nats-server 2.9 may hand out late by up to an ack wait.
    p.timer = setTimeout(() => {
      p.timer = undefined;
      if (!this.closed && this.outstanding.has(p)) this.handout.offer(p);
    }, wait);
    p.timer.unref();
  }

  private noteKey(p: Pending): string {
    return `${this.names.key(this.broker, this.id)}.${p.source === 'main' ? 'm' : 'r'}${p.msg.seq}`;
  }

  private handOver(p: Pending): void {
    const once = settleOnce(
      () => this.log.isClosed(),
      shuttingDown,
      (error) => toTributary(error, 'settle'),
    );
    const settle = (how: () => Promise<void>): Promise<void> => once(() => this.log.track(how()));
    const message: LogMessage = {
      event: p.event,
      position: p.origin,
      attempt: p.attempt,
      note: p.note,
      ack: () =>
        settle(async () => {
          await this.ackMsg(p);
          this.done(p);
        }),
      nak: (delayMs, note) => settle(() => this.nak(p, delayMs, note)),
      deadLetter: (info) =>
        settle(async () => {
          await this.log.publishDead(this.broker, this.id, p.event, p.origin, info);
          await this.ackMsg(p);
          this.done(p);
        }),
    };
    try {
      this.handler(message);
    } catch {
      // the handler's own failure; the message stays out until it is settled or given back
    }
  }

  private async ackMsg(p: Pending): Promise<void> {
    await p.msg.ackAck({ timeout: PUBLISH_TIMEOUT_MS });
    if (p.noted) await this.log.dropNote(this.noteKey(p)).catch(() => {});
  }

  private async nak(p: Pending, delayMs: number, note: string | undefined): Promise<void> {
    const delay = Math.max(0, delayMs);
    if (!this.ordered) {
      await this.log.publishRetry(this.broker, this.id, p.event, {
        origin: p.origin,
        attempt: p.attempt + 1,
        dueMs: Date.now() + delay,
        ...(note === undefined ? {} : { note }),
      });
      await this.ackMsg(p);
      this.done(p);
      return;
    }
    // Ordered: the message stays unacked (renewed) and its key busy; the retry runs here.
    await this.log.writeNote(this.noteKey(p), {
      attempt: p.attempt + 1,
      ...(note === undefined ? {} : { note }),
    });
    p.noted = true;
    this.handout.release(p);
    this.signal();
    p.timer = setTimeout(() => {
      p.timer = undefined;
      if (this.closed || !this.outstanding.has(p)) return;
      p.attempt++;
      p.note = note;
      this.handout.offer(p, true);
    }, delay);
    p.timer.unref();
  }

  /** `p` is settled: free its slot and its key. */
  private done(p: Pending): void {
    this.outstanding.delete(p);
    this.handout.finish(p);
    this.signal();
    if (this.closed && this.outstanding.size === 0) this.onStopped();
  }
}

function emptyHeaders(): StoredHeaders {
  return {
    has: () => false,
    get: () => '',
    [Symbol.iterator]: [][Symbol.iterator],
  } as unknown as StoredHeaders;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => {
    setTimeout(resolve, ms).unref();
  });
}
