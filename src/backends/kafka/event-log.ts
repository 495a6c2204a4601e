/**
 * The EventLog on Apache Kafka (docs/kafka-backend.md), the way Knative's Kafka broker works:
 *
 * - Each broker is a topic (`<prefix>.<namespace>.<broker>`); events are records in binary mode
 *   (codec.ts) keyed by their `partitionkey`, produced with `acks=all`.
 * - Each subscription is a consumer group. Its offsets are set when it is created (latest,
 *   earliest or a time) and afterwards committed in order, only up to the first event that is
 *   not done: a crash hands everything after it over again (at least once).
 * - Retries wait in the process that has the event (the offset is not committed meanwhile); the
 *   attempt number and the note are kept in a compacted topic, so a restart resumes them.
 * - Ordered subscriptions keep one event per `partitionkey` out at a time; a partition belongs to
 *   one member of the group, so this holds across processes.
 * - Dead letters are kept in a compacted topic (removed by a tombstone); a redrive writes the
 *   event to the broker's redrive topic, which the subscription's group reads too.
 */
import { randomUUID } from 'node:crypto';
import type { Admin, Consumer, EachBatchPayload, Kafka, KafkaMessage, Producer } from 'kafkajs';
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
import { decodeRecord, encodeRecord, headerText, type RecordHeadersIn } from './codec.js';
import { consumerStopped, kafkaError, isUnknownTopic } from './errors.js';
import { TopicView, type ViewClients, type ViewRecord } from './topic-view.js';
import { guarded, Handout, orderingKey, sameBroker, settleOnce } from '../handout.js';

export interface TopicOptions {
  /** Partitions of a new broker topic (default 10, as Knative's). */
  readonly partitions?: number;
  readonly replicationFactor?: number;
  /** More topic configs of a new broker topic (`compression.type`, ...). */
  readonly configs?: Readonly<Record<string, string>>;
  /**
   * Name of a broker's topic, with `{prefix}`, `{namespace}` and `{broker}` (default
   * `{prefix}.{namespace}.{broker}`; Knative's is `knative-broker-{namespace}-{broker}`).
   */
  readonly topicTemplate?: string;
  /** How long events are kept when a broker sets no retention, in ms (default 24 hours). */
  readonly retentionMs?: number;
}

const DEFAULT_PARTITIONS = 10;
/** Tries of a topic step while Kafka's metadata has not caught up with a new topic. */
const UNKNOWN_TOPIC_ATTEMPTS = 5;
export const DEFAULT_TOPIC_TEMPLATE = '{prefix}.{namespace}.{broker}';
const DEFAULT_RETENTION_MS = 24 * 60 * 60 * 1000;
/** Events waiting for a retry in one member beyond which it stops taking new ones. */
const WAITING_PER_IN_FLIGHT = 10;
const MAX_PAGE = 1000;

const H = {
  subscription: 'tributary-subscription',
  origin: 'tributary-origin',
} as const;

interface NoteRecord {
  readonly attempt: number;
  readonly note?: string;
  /** Settled already (written when a member closes with a gap before it). */
  readonly done?: boolean;
}

interface DeadValue {
  readonly subscriptionId: string;
  readonly reason: string;
  readonly attempts: number;
  readonly destination?: string;
  readonly lastStatus?: number;
  readonly deadLetteredAt: number;
  readonly origin: string;
  /** The event's record: headers as text, value as base64. */
  readonly headers: Record<string, string>;
  readonly value: string | null;
}

function shuttingDown(): TributaryError {
  return new TributaryError('SHUTTING_DOWN', 'The Kafka backend is closed');
}

export class KafkaEventLog implements EventLog {
  private readonly members = new Set<Member>();
  private closed = false;
  private healthy = true;
  /** Notes of events waiting for a retry: `<sub>/<topic>/<partition>/<offset>`. */
  private readonly notes = new Map<string, NoteRecord>();
  /** Dead letters by subscription key, then id. */
  private readonly dead = new Map<string, Map<string, DeadLetterRecord>>();
  private notesView!: TopicView;
  private deadView!: TopicView;
  private readonly knownTopics = new Set<string>();
  private deadCounter = 0;

  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly producer: Producer;
  private readonly options: TopicOptions & { readonly replicationFactor: number };

  private constructor(
    clients: ViewClients,
    readonly prefix: string,
    options: TopicOptions,
  ) {
    this.kafka = clients.kafka;
    this.admin = clients.admin;
    this.producer = clients.producer;
    this.options = { ...options, replicationFactor: clients.replicationFactor };
  }

  static async open(
    clients: ViewClients,
    prefix: string,
    options: TopicOptions,
  ): Promise<KafkaEventLog> {
    const log = new KafkaEventLog(clients, prefix, options);
    log.notesView = await TopicView.open({
      ...clients,
      topic: `${prefix}.notes`,
      onRecord: (record) => log.applyNote(record),
    });
    try {
      log.deadView = await TopicView.open({
        ...clients,
        topic: `${prefix}.dead`,
        onRecord: (record) => log.applyDead(record),
      });
    } catch (error) {
      await log.notesView.close();
      throw error;
    }
    return log;
  }

  // ---- names

  topic(broker: BrokerRef): string {
    return (this.options.topicTemplate ?? DEFAULT_TOPIC_TEMPLATE)
      .replaceAll('{prefix}', this.prefix)
      .replaceAll('{namespace}', broker.namespace)
      .replaceAll('{broker}', broker.name);
  }

  redriveTopic(broker: BrokerRef): string {
    return `${this.topic(broker)}.redrive`;
  }

  groupId(broker: BrokerRef, id: string): string {
    return `${this.topic(broker)}.${id}`;
  }

  subscriptionKey(broker: BrokerRef, id: string): string {
    return `${broker.namespace}/${broker.name}/${id}`;
  }

  // ---- health

  private unhealthyListener: (() => void) | undefined;

  /** Called when a write fails for want of Kafka (the backend then probes until it is back). */
  onUnhealthy(listener: () => void): void {
    this.unhealthyListener = listener;
  }

  setHealthy(healthy: boolean): void {
    const was = this.healthy;
    this.healthy = healthy;
    if (was && !healthy) this.unhealthyListener?.();
  }

  isHealthy(): boolean {
    return !this.closed && this.healthy;
  }

  isClosed(): boolean {
    return this.closed;
  }

  private check(): void {
    if (this.closed) throw shuttingDown();
  }

  /** Runs `fn`: refused when closed, its failures as TributaryErrors. */
  private guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return guarded(fn, {
      check: () => this.check(),
      closed: () => this.closed,
      shuttingDown,
      wrap: (error) => kafkaError(error, what),
    });
  }

  // ---- brokers

  async ensureBroker(broker: BrokerRef, options: BrokerLogOptions = {}): Promise<void> {
    const retention = options.retentionMs ?? this.options.retentionMs ?? DEFAULT_RETENTION_MS;
    await this.guard(`broker ${broker.namespace}/${broker.name}`, async () => {
      const configs = [
        { name: 'retention.ms', value: String(retention > 0 ? retention : -1) },
        ...Object.entries(this.options.configs ?? {}).map(([name, value]) => ({ name, value })),
      ];
      for (const topic of [this.topic(broker), this.redriveTopic(broker)]) {
        await this.untilKnown(() => this.createOrConfigure(topic, configs));
        this.knownTopics.add(topic);
      }
    });
  }

  /**
   * Runs `step` again while Kafka says the topic is unknown: right after a topic is created, a
   * broker whose metadata has not caught up yet can still say so (seen with SASL listeners under
   * load), for a moment.
   */
  private async untilKnown(step: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await step();
        return;
      } catch (error) {
        if (!isUnknownTopic(error) || attempt >= UNKNOWN_TOPIC_ATTEMPTS || this.closed) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
      }
    }
  }

  private async createOrConfigure(
    topic: string,
    configs: readonly { name: string; value: string }[],
  ): Promise<void> {
    const created = await this.admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic,
          numPartitions: this.options.partitions ?? DEFAULT_PARTITIONS,
          replicationFactor: this.options.replicationFactor,
          configEntries: [...configs],
        },
      ],
    });
    if (!created) {
      await this.admin.alterConfigs({
        validateOnly: false,
        resources: [{ type: 2 /* TOPIC */, name: topic, configEntries: configs.slice(0, 1) }],
      });
    }
  }

  async deleteBroker(broker: BrokerRef): Promise<void> {
    await this.guard(`broker ${broker.namespace}/${broker.name}`, async () => {
      for (const member of this.members) {
        if (sameBroker(member.broker, broker)) await member.close();
      }
      const topics = [this.topic(broker), this.redriveTopic(broker)];
      for (const topic of topics) this.knownTopics.delete(topic);
      const existing = new Set(await this.admin.listTopics());
      const doomed = topics.filter((t) => existing.has(t));
      if (doomed.length > 0) await this.admin.deleteTopics({ topics: doomed });
      const prefix = `${broker.namespace}/${broker.name}/`;
      await this.forgetNotes(prefix);
      for (const [key, records] of this.dead) {
        if (key.startsWith(prefix)) {
          for (const id of records.keys()) await this.deadView.write(`${key}/${id}`, null);
        }
      }
    });
  }

  private async topicExists(topic: string): Promise<boolean> {
    if (this.knownTopics.has(topic)) return true;
    const topics = await this.admin.listTopics();
    if (!topics.includes(topic)) return false;
    this.knownTopics.add(topic);
    return true;
  }

  private notFound(broker: BrokerRef): TributaryError {
    return new TributaryError(
      'NOT_FOUND',
      `Broker ${broker.namespace}/${broker.name} has no event log`,
    );
  }

  async append(broker: BrokerRef, events: readonly CloudEvent[]): Promise<void> {
    this.check();
    const topic = this.topic(broker);
    try {
      if (!(await this.topicExists(topic))) throw this.notFound(broker);
      await this.producer.send({
        topic,
        acks: -1,
        messages: events.map((event) => encodeRecord(event)),
      });
      this.setHealthy(true);
    } catch (error) {
      if (this.closed) throw shuttingDown();
      if (isUnknownTopic(error)) {
        this.knownTopics.delete(topic);
        throw this.notFound(broker);
      }
      const failure = kafkaError(error, `append to ${broker.namespace}/${broker.name}`);
      if (failure.code === 'BACKEND_UNAVAILABLE') this.setHealthy(false);
      throw failure;
    }
  }

  // ---- subscriptions

  /** Committed offsets of the group per topic, or undefined when it has none (no subscription). */
  private async committed(
    broker: BrokerRef,
    id: string,
  ): Promise<Map<string, { partition: number; offset: string }[]> | undefined> {
    const groupId = this.groupId(broker, id);
    const result = await this.admin.fetchOffsets({
      groupId,
      topics: [this.topic(broker), this.redriveTopic(broker)],
    });
    const map = new Map<string, { partition: number; offset: string }[]>();
    let any = false;
    for (const entry of result) {
      map.set(entry.topic, entry.partitions);
      if (entry.partitions.some((p) => Number(p.offset) >= 0)) any = true;
    }
    return any ? map : undefined;
  }

  /** Offsets of every partition of the broker's topics at `position`. */
  private async positions(
    broker: BrokerRef,
    position: StartPosition,
  ): Promise<Map<string, { partition: number; offset: string }[]>> {
    const map = new Map<string, { partition: number; offset: string }[]>();
    for (const topic of [this.topic(broker), this.redriveTopic(broker)]) {
      const redrive = topic !== this.topic(broker);
      // Redriven events are never replayed: the redrive topic always starts at its end.
      const at: StartPosition = redrive ? { from: 'latest' } : position;
      if (at.from === 'time') {
        const offsets = await this.admin.fetchTopicOffsetsByTimestamp(topic, at.time.getTime());
        map.set(
          topic,
          offsets.map((o) => ({ partition: o.partition, offset: o.offset })),
        );
      } else {
        const offsets = await this.admin.fetchTopicOffsets(topic);
        map.set(
          topic,
          offsets.map((o) => ({
            partition: o.partition,
            offset: at.from === 'latest' ? o.high : o.low,
          })),
        );
      }
    }
    return map;
  }

  async ensureSubscription(
    options: Pick<SubscriptionOptions, 'id' | 'broker' | 'start'>,
  ): Promise<void> {
    const { broker, id } = options;
    await this.guard(`subscription ${id}`, async () => {
      if (!(await this.topicExists(this.topic(broker)))) throw this.notFound(broker);
      if ((await this.committed(broker, id)) !== undefined) return;
      await this.commitGroup(broker, id, await this.positions(broker, options.start));
    });
  }

  /**
   * Commits offsets for the subscription's group from outside its members: a short-lived member
   * joins, commits and leaves (kafkajs's admin `setOffsets` waits for a whole fetch, 5 s). Members
   * in other processes, if any, resume from these offsets after the rebalance it causes.
   */
  private async commitGroup(
    broker: BrokerRef,
    id: string,
    targets: Map<string, { partition: number; offset: string }[]>,
  ): Promise<void> {
    const topics = [...targets.keys()];
    const consumer = this.kafka.consumer({
      groupId: this.groupId(broker, id),
      maxWaitTimeInMs: 100,
      sessionTimeout: 6_000,
      heartbeatInterval: 500,
      rebalanceTimeout: 3_000,
      allowAutoTopicCreation: false,
    });
    try {
      await consumer.connect();
      await consumer.subscribe({ topics, fromBeginning: true });
      const joined = new Promise<void>((resolve) => {
        consumer.on(consumer.events.GROUP_JOIN, () => resolve());
      });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        // Nothing is consumed: the topics are paused before the first fetch.
        eachBatch: async () => {},
      });
      consumer.pause(topics.map((topic) => ({ topic })));
      await joined;
      await consumer.commitOffsets(
        [...targets].flatMap(([topic, partitions]) =>
          partitions.map(({ partition, offset }) => ({ topic, partition, offset })),
        ),
      );
    } finally {
      await consumer.disconnect().catch(() => {});
    }
  }

  /** Commits `offset` for one partition unless the group is already at or past it. */
  async commitIfBehind(
    broker: BrokerRef,
    id: string,
    topic: string,
    partition: number,
    offset: string,
  ): Promise<void> {
    const [entry] = await this.admin.fetchOffsets({
      groupId: this.groupId(broker, id),
      topics: [topic],
    });
    const current = entry?.partitions.find((p) => p.partition === partition)?.offset ?? '-1';
    if (BigInt(current) >= BigInt(offset)) return;
    await this.commitGroup(broker, id, new Map([[topic, [{ partition, offset }]]]));
  }

  async subscribe(
    options: SubscriptionOptions,
    handler: (message: LogMessage) => void,
  ): Promise<SubscriptionHandle> {
    await this.ensureSubscription(options);
    const member = new Member(this, options, handler);
    this.members.add(member);
    try {
      await member.start();
    } catch (error) {
      this.members.delete(member);
      await member.close().catch(() => {});
      throw kafkaError(error, `subscription ${options.id}`);
    }
    return member;
  }

  forget(member: Member): void {
    this.members.delete(member);
  }

  async deleteSubscription(id: string, broker: BrokerRef): Promise<void> {
    await this.guard(`subscription ${id}`, async () => {
      for (const member of [...this.members]) {
        if (member.id === id && sameBroker(member.broker, broker)) await member.close();
      }
      await this.admin.deleteGroups([this.groupId(broker, id)]).catch(() => {});
      const key = this.subscriptionKey(broker, id);
      await this.forgetNotes(`${key}/`);
      for (const deadId of [...(this.dead.get(key)?.keys() ?? [])]) {
        await this.deadView.write(`${key}/${deadId}`, null);
      }
    });
  }

  async seek(id: string, broker: BrokerRef, position: StartPosition): Promise<void> {
    await this.guard(`subscription ${id}`, async () => {
      if (!(await this.topicExists(this.topic(broker)))) throw this.notFound(broker);
      if ((await this.committed(broker, id)) === undefined) {
        throw new TributaryError('NOT_FOUND', `Subscription ${id} does not exist`);
      }
      const targets = await this.positions(broker, position);
      const events = targets.get(this.topic(broker)) ?? [];
      const local = [...this.members].filter((m) => m.id === id && sameBroker(m.broker, broker));
      if (local.length === 0) {
        await this.commitGroup(broker, id, new Map([[this.topic(broker), events]]));
        return;
      }
      for (const member of local) await member.seek(events);
    });
  }

  /**
   * Over every partition of the broker's topic and of its redrive topic: the end offset minus the
   * group's committed offset (none committed, or below the first offset kept: from the first one
   * kept). Retries wait with their offset uncommitted, so they are part of it.
   */
  backlog(id: string, broker: BrokerRef): Promise<number | undefined> {
    return this.guard(`backlog of ${id}`, async () => {
      if (!(await this.topicExists(this.topic(broker)))) return undefined;
      const committed = await this.committed(broker, id);
      if (committed === undefined) return undefined;
      let total = 0;
      for (const topic of [this.topic(broker), this.redriveTopic(broker)]) {
        let ends: { partition: number; high: string; low: string }[];
        try {
          ends = await this.admin.fetchTopicOffsets(topic);
        } catch (error) {
          // A broker made before redrive topics existed has none: nothing waits there.
          if (isUnknownTopic(error) && topic !== this.topic(broker)) continue;
          throw error;
        }
        const at = new Map(
          (committed.get(topic) ?? []).map((p) => [p.partition, BigInt(p.offset)]),
        );
        for (const { partition, high, low } of ends) {
          const end = BigInt(high);
          const first = BigInt(low);
          const from = at.get(partition) ?? -1n;
          const start = from < first ? first : from;
          if (end > start) total += Number(end - start);
        }
      }
      return total;
    });
  }

  // ---- notes

  noteKey(subscription: string, topic: string, partition: number, offset: string): string {
    return `${subscription}/${topic}/${partition}/${offset}`;
  }

  readNote(key: string): NoteRecord | undefined {
    return this.notes.get(key);
  }

  async writeNote(key: string, record: NoteRecord): Promise<void> {
    await this.notesView.write(key, Buffer.from(JSON.stringify(record)));
  }

  async dropNote(key: string): Promise<void> {
    if (this.notes.has(key)) await this.notesView.write(key, null);
  }

  private async forgetNotes(prefix: string): Promise<void> {
    for (const key of [...this.notes.keys()]) {
      if (key.startsWith(prefix)) await this.notesView.write(key, null);
    }
  }

  private applyNote(record: ViewRecord): void {
    if (record.value === null) this.notes.delete(record.key);
    else {
      try {
        this.notes.set(record.key, JSON.parse(record.value.toString('utf8')) as NoteRecord);
      } catch {
        // not ours: ignored
      }
    }
  }

  // ---- dead letters

  private applyDead(record: ViewRecord): void {
    const at = record.key.lastIndexOf('/');
    if (at <= 0) return;
    const subscription = record.key.slice(0, at);
    const id = record.key.slice(at + 1);
    if (record.value === null) {
      const records = this.dead.get(subscription);
      records?.delete(id);
      if (records?.size === 0) this.dead.delete(subscription);
      return;
    }
    try {
      const value = JSON.parse(record.value.toString('utf8')) as DeadValue;
      const headers: RecordHeadersIn = {};
      for (const [name, text] of Object.entries(value.headers)) headers[name] = text;
      const event = decodeRecord(
        headers,
        value.value === null ? null : Buffer.from(value.value, 'base64'),
      );
      let records = this.dead.get(subscription);
      if (records === undefined) {
        records = new Map();
        this.dead.set(subscription, records);
      }
      records.set(id, {
        id,
        subscriptionId: value.subscriptionId,
        event,
        reason: value.reason,
        attempts: value.attempts,
        ...(value.destination === undefined ? {} : { destination: value.destination }),
        ...(value.lastStatus === undefined ? {} : { lastStatus: value.lastStatus }),
        deadLetteredAt: new Date(value.deadLetteredAt),
      });
    } catch {
      // not ours: ignored
    }
  }

  /** A dead-letter id: sorts in the order they were made (time, then a counter). */
  private nextDeadId(): string {
    this.deadCounter = (this.deadCounter + 1) % 1_000_000;
    return `${Date.now().toString().padStart(15, '0')}-${this.deadCounter
      .toString()
      .padStart(6, '0')}-${randomUUID().slice(0, 8)}`;
  }

  async keepDeadLetter(
    broker: BrokerRef,
    id: string,
    event: CloudEvent,
    origin: string,
    info: DeadLetterInfo,
  ): Promise<void> {
    const record = encodeRecord(event);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(record.headers)) headers[name] = value.toString();
    const value: DeadValue = {
      subscriptionId: id,
      reason: info.reason,
      attempts: info.attempts,
      ...(info.destination === undefined ? {} : { destination: info.destination }),
      ...(info.lastStatus === undefined ? {} : { lastStatus: info.lastStatus }),
      deadLetteredAt: Date.now(),
      origin,
      headers,
      value: record.value === null ? null : record.value.toString('base64'),
    };
    const key = `${this.subscriptionKey(broker, id)}/${this.nextDeadId()}`;
    await this.deadView.write(key, Buffer.from(JSON.stringify(value)));
  }

  private sortedDead(broker: BrokerRef, id: string): DeadLetterRecord[] {
    const records = this.dead.get(this.subscriptionKey(broker, id));
    if (records === undefined) return [];
    return [...records.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async listDeadLetters(
    id: string,
    broker: BrokerRef,
    page: { readonly after?: string; readonly limit?: number } = {},
  ): Promise<DeadLetterRecord[]> {
    this.check();
    const limit = Math.min(Math.max(1, page.limit ?? 100), MAX_PAGE);
    const after = page.after;
    return Promise.resolve(
      this.sortedDead(broker, id)
        .filter((r) => after === undefined || r.id > after)
        .slice(0, limit),
    );
  }

  countDeadLetters(id: string, broker: BrokerRef): Promise<number> {
    this.check();
    return Promise.resolve(this.dead.get(this.subscriptionKey(broker, id))?.size ?? 0);
  }

  async redriveDeadLetters(
    id: string,
    broker: BrokerRef,
    ids?: readonly string[],
  ): Promise<number> {
    return this.guard(`dead letters of ${id}`, async () => {
      const key = this.subscriptionKey(broker, id);
      const wanted = ids === undefined ? undefined : new Set(ids);
      const chosen = this.sortedDead(broker, id).filter(
        (r) => wanted === undefined || wanted.has(r.id),
      );
      if (chosen.length === 0) return 0;
      if (!(await this.topicExists(this.redriveTopic(broker)))) throw this.notFound(broker);
      await this.producer.send({
        topic: this.redriveTopic(broker),
        acks: -1,
        messages: chosen.map((r) => encodeRecord(r.event, { [H.subscription]: id })),
      });
      for (const r of chosen) await this.deadView.write(`${key}/${r.id}`, null);
      return chosen.length;
    });
  }

  // ---- close

  async close(): Promise<void> {
    if (this.closed) return;
    for (const member of [...this.members]) await member.close().catch(() => {});
    this.closed = true;
    await this.notesView.close();
    await this.deadView.close();
  }
}

/** Offsets of one partition handed to this member, in order, until they are done. */
class PartitionTrack {
  private readonly entries: { offset: bigint; done: boolean }[] = [];
  /** The next offset to commit, once everything before it is done. */
  private next: bigint | undefined;
  committed: bigint | undefined;

  add(offset: bigint): { offset: bigint; done: boolean } {
    const entry = { offset, done: false };
    this.entries.push(entry);
    if (this.next === undefined || offset + 1n > this.next) this.next = offset + 1n;
    return entry;
  }

  /** Offsets that are done although something before them is not. */
  doneBeyondCommit(): bigint[] {
    const first = this.entries.findIndex((e) => !e.done);
    if (first < 0) return [];
    return this.entries
      .slice(first)
      .filter((e) => e.done)
      .map((e) => e.offset);
  }

  /** The offset everything before which is done, if it moved past the last commit. */
  commitPoint(): bigint | undefined {
    while (this.entries.length > 0 && this.entries[0]!.done) this.entries.shift();
    const point = this.entries.length > 0 ? this.entries[0]!.offset : this.next;
    if (point === undefined || (this.committed !== undefined && point <= this.committed)) {
      return undefined;
    }
    return point;
  }
}

/** One event fetched by a member. */
interface Pending {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly entry: { offset: bigint; done: boolean };
  readonly track: PartitionTrack;
  readonly event: CloudEvent;
  readonly key: string;
  readonly noteKey: string;
  attempt: number;
  note: string | undefined;
  noted: boolean;
  out: boolean;
  timer?: NodeJS.Timeout;
}

/** One member of a subscription in this process: a kafkajs consumer in the subscription's group. */
class Member implements SubscriptionHandle {
  readonly id: string;
  readonly broker: BrokerRef;
  private filter: EventFilter | undefined;
  private readonly ordered: boolean;
  private readonly onLost: SubscriptionOptions['onLost'];
  private readonly maxInFlight: number;
  private readonly consumer: Consumer;
  private readonly subscription: string;
  private waiting = 0;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** The kafkajs consumer has left the group: later settlements commit from outside. */
  private closedConsumer = false;
  /** Tracks by `topic/partition`; replaced on a seek and dropped when the partition is revoked. */
  private readonly tracks = new Map<string, PartitionTrack>();
  private readonly handout: Handout<Pending>;
  private readonly capacityWaiters = new Set<() => void>();
  private readonly commits = new Map<string, Promise<void>>();

  constructor(
    private readonly log: KafkaEventLog,
    options: SubscriptionOptions,
    private readonly handler: (message: LogMessage) => void,
  ) {
    this.id = options.id;
    this.broker = { namespace: options.broker.namespace, name: options.broker.name };
    this.filter = options.filter;
    this.ordered = options.ordered === true;
    this.onLost = options.onLost;
    this.maxInFlight = Math.max(1, options.maxInFlight);
    this.subscription = log.subscriptionKey(this.broker, this.id);
    this.handout = new Handout<Pending>(
      this.ordered,
      this.maxInFlight,
      (p) => this.handOver(p),
      () => this.closed,
    );
    this.consumer = log.kafka.consumer({
      groupId: log.groupId(this.broker, this.id),
      sessionTimeout: 6_000,
      heartbeatInterval: 500,
      rebalanceTimeout: 3_000,
      maxWaitTimeInMs: 100,
      allowAutoTopicCreation: false,
      retry: { retries: 10 },
    });
  }

  async start(): Promise<void> {
    const topics = [this.log.topic(this.broker), this.log.redriveTopic(this.broker)];
    // A member is a member once the group has it (and its partitions are assigned).
    let joined: () => void = () => {};
    let failed: (error: unknown) => void = () => {};
    const firstJoin = new Promise<void>((resolve, reject) => {
      joined = resolve;
      failed = reject;
    });
    firstJoin.catch(() => {}); // awaited below, once the consumer runs
    // kafkajs starts a crashed consumer again by itself unless the error is one it does not retry.
    this.consumer.on(this.consumer.events.CRASH, (event) => {
      if (event.payload.restart || this.closed) return;
      const failure = consumerStopped(
        `the consumer of subscription ${this.id}`,
        event.payload.error,
      );
      // Before the first join: subscribe() fails with it. After: the member is gone from its
      // group (other replicas take its partitions), and its owner subscribes again.
      failed(failure);
      this.onLost?.(failure);
    });
    this.consumer.on(this.consumer.events.GROUP_JOIN, (event) => {
      joined();
      const assigned = new Set<string>();
      for (const [topic, partitions] of Object.entries(event.payload.memberAssignment)) {
        for (const partition of partitions) assigned.add(`${topic}/${partition}`);
      }
      // What this member held of partitions it lost is the new owner's now (from the commit).
      for (const key of [...this.tracks.keys()]) if (!assigned.has(key)) this.dropPartition(key);
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topics, fromBeginning: false });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 64,
      eachBatch: (payload) => this.eachBatch(payload),
    });
    const timer = setTimeout(
      () => failed(new Error('the consumer group did not take this member in 30 s')),
      30_000,
    );
    await firstJoin.finally(() => clearTimeout(timer));
  }

  setFilter(filter: EventFilter | undefined): void {
    this.filter = filter;
  }

  private trackOf(topic: string, partition: number, first: string): PartitionTrack {
    const key = `${topic}/${partition}`;
    let track = this.tracks.get(key);
    if (track === undefined) {
      track = new PartitionTrack();
      // Everything before the first fetched offset was done before this member had it.
      track.committed = BigInt(first) - 1n;
      this.tracks.set(key, track);
    }
    return track;
  }

  private dropPartition(key: string): void {
    this.tracks.delete(key);
    const slash = key.lastIndexOf('/');
    const topic = key.slice(0, slash);
    const partition = Number(key.slice(slash + 1));
    // What waits for a retry keeps its timer (and its key); the rest is the new owner's.
    this.handout.drop(
      (p) => p.topic === topic && p.partition === partition && !p.out && p.timer === undefined,
    );
  }

  private async eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const stopped = (): boolean => this.closed || !payload.isRunning() || payload.isStale();
    const redrive = batch.topic === this.log.redriveTopic(this.broker);
    for (const message of batch.messages) {
      if (stopped()) return;
      while (
        this.handout.inFlight + this.handout.waiting >= this.maxInFlight ||
        this.waiting >= this.waitingLimit()
      ) {
        await this.capacity();
        if (stopped()) return;
        await payload.heartbeat().catch(() => {});
      }
      const track = this.trackOf(batch.topic, batch.partition, message.offset);
      this.receive(batch.topic, batch.partition, message, track, redrive);
      // Taken: kafkajs fetches on from the next one (what is committed is decided by `track`).
      payload.resolveOffset(message.offset);
    }
    await this.flushCommit(batch.topic, batch.partition);
  }

  private waitingLimit(): number {
    return this.maxInFlight * WAITING_PER_IN_FLIGHT;
  }

  /** Resolves when a slot may have freed, or after a second (to heartbeat while waiting). */
  private capacity(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, 1_000);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.capacityWaiters.add(done);
    });
  }

  private wake(): void {
    const waiters = [...this.capacityWaiters];
    this.capacityWaiters.clear();
    for (const resolve of waiters) resolve();
  }

  private receive(
    topic: string,
    partition: number,
    message: KafkaMessage,
    track: PartitionTrack,
    redrive: boolean,
  ): void {
    const entry = track.add(BigInt(message.offset));
    const headers: RecordHeadersIn = message.headers ?? {};
    const finish = (): void => {
      entry.done = true;
      this.scheduleCommit(topic, partition);
    };
    if (redrive && headerText(headers, H.subscription) !== this.id) {
      finish();
      return;
    }
    let event: CloudEvent;
    try {
      event = decodeRecord(headers, message.value);
    } catch {
      finish();
      return;
    }
    if (!redrive && this.filter !== undefined) {
      let wanted = false;
      try {
        wanted = this.filter(event);
      } catch {
        wanted = false;
      }
      if (!wanted) {
        finish();
        return;
      }
    }
    const noteKey = this.log.noteKey(this.subscription, topic, partition, message.offset);
    const note = this.log.readNote(noteKey);
    if (note?.done === true) {
      // Settled before a member closed, behind an event that was not: done already.
      finish();
      void this.log.dropNote(noteKey).catch(() => {});
      return;
    }
    const p: Pending = {
      topic,
      partition,
      offset: message.offset,
      entry,
      track,
      event,
      key: this.ordered ? orderingKey(event) : '',
      noteKey,
      attempt: note?.attempt ?? 1,
      note: note?.note,
      noted: note !== undefined,
      out: false,
    };
    this.handout.offer(p);
  }

  private handOver(p: Pending): void {
    const settle = settleOnce(
      () => this.log.isClosed(),
      shuttingDown,
      (error) => kafkaError(error, 'settle'),
    );
    const message: LogMessage = {
      event: p.event,
      position: `${p.partition}:${p.offset}`,
      attempt: p.attempt,
      note: p.note,
      ack: () => settle(() => this.done(p)),
      nak: (delayMs, note) => settle(() => this.nak(p, delayMs, note)),
      deadLetter: (info) =>
        settle(async () => {
          await this.log.keepDeadLetter(this.broker, this.id, p.event, message.position, info);
          await this.done(p);
        }),
    };
    try {
      this.handler(message);
    } catch {
      // the handler's own failure: the message stays out until settled
    }
  }

  private async nak(p: Pending, delayMs: number, note: string | undefined): Promise<void> {
    await this.log.writeNote(p.noteKey, {
      attempt: p.attempt + 1,
      ...(note === undefined ? {} : { note }),
    });
    p.noted = true;
    this.waiting++;
    this.handout.release(p);
    this.wake();
    p.timer = setTimeout(
      () => {
        p.timer = undefined;
        this.waiting--;
        if (this.closed) return;
        p.attempt++;
        p.note = note;
        this.handout.offer(p, true);
      },
      Math.max(0, delayMs),
    );
    p.timer.unref();
  }

  private async done(p: Pending): Promise<void> {
    p.entry.done = true;
    this.handout.finish(p);
    this.wake();
    if (p.noted) await this.log.dropNote(p.noteKey).catch(() => {});
    // The track is still this member's (not revoked, not replaced by a seek): commit.
    if (this.tracks.get(`${p.topic}/${p.partition}`) === p.track) {
      await this.flushCommit(p.topic, p.partition);
    }
  }

  private scheduleCommit(topic: string, partition: number): void {
    void this.flushCommit(topic, partition).catch(() => {});
  }

  /** Commits the partition's offset up to the first event not done, one commit at a time. */
  private async flushCommit(topic: string, partition: number): Promise<void> {
    const key = `${topic}/${partition}`;
    const previous = this.commits.get(key) ?? Promise.resolve();
    const next = previous.then(async () => {
      const track = this.tracks.get(key);
      if (track === undefined) return;
      const point = track.commitPoint();
      if (point === undefined) return;
      try {
        if (this.closedConsumer) {
          // Settled after the member closed (the contract allows it): committed from outside.
          await this.log.commitIfBehind(this.broker, this.id, topic, partition, point.toString());
        } else {
          await this.consumer.commitOffsets([{ topic, partition, offset: point.toString() }]);
        }
        track.committed = point;
      } catch {
        // revoked meanwhile, or Kafka away: the next commit (or the new owner) covers it
      }
    });
    this.commits.set(key, next);
    await next;
  }

  async seek(partitions: { partition: number; offset: string }[]): Promise<void> {
    const topic = this.log.topic(this.broker);
    for (const { partition, offset } of partitions) {
      const key = `${topic}/${partition}`;
      if (!this.tracks.has(key)) continue;
      // What is out keeps its key busy (ordered) but commits nothing any more.
      this.dropPartition(key);
      // Committed first: a restart before the next commit starts from here too.
      await this.consumer.commitOffsets([{ topic, partition, offset }]).catch(() => {});
      this.consumer.seek({ topic, partition, offset });
    }
    this.wake();
  }

  async close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      this.wake();
      for (const [key, track] of [...this.tracks]) {
        const slash = key.lastIndexOf('/');
        const topic = key.slice(0, slash);
        const partition = Number(key.slice(slash + 1));
        await this.flushCommit(topic, partition);
        // Done, but behind something that is not: the next member must not hand them out again.
        for (const offset of track.doneBeyondCommit()) {
          const noteKey = this.log.noteKey(this.subscription, topic, partition, offset.toString());
          await this.log.writeNote(noteKey, { attempt: 0, done: true }).catch(() => {});
        }
      }
      this.closedConsumer = true;
      await this.consumer.disconnect().catch(() => {});
      this.log.forget(this);
    })();
    return this.closing;
  }
}
