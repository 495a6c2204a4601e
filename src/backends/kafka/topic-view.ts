/**
 * A compacted single-partition topic read by every process from its beginning, as Kafka Connect
 * keeps its configuration: the backend's resources, notes and dead letters. Each process applies
 * every record in log order through `onRecord`; a write resolves once this process has applied
 * it (so a process reads its own writes), and its offset orders it among everyone's writes.
 */
import { randomUUID } from 'node:crypto';
import type { Admin, Consumer, Kafka, Producer } from 'kafkajs';
import { TributaryError } from '../../core/errors.js';
import { consumerStopped } from './errors.js';

export interface ViewRecord {
  readonly key: string;
  /** null: a tombstone. */
  readonly value: Buffer | null;
  readonly offset: number;
  readonly timestamp: number;
}

/** The clients a view works through, and the replication of the topic it makes. */
export interface ViewClients {
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly producer: Producer;
  readonly replicationFactor: number;
  /**
   * Told when a kafkajs consumer of the backend stopped for good on an error kafkajs does not
   * retry (a group Kafka refuses to authorize, a session timeout outside the broker's range):
   * `what` names it; the backend starts another one by itself in `restartInMs`.
   */
  readonly onConsumerStopped?: (what: string, error: TributaryError, restartInMs: number) => void;
}

export interface TopicViewOptions extends ViewClients {
  readonly topic: string;
  /** Called for every record, in log order, exactly once per offset. */
  readonly onRecord: (record: ViewRecord) => void;
  /** Records older than this are deleted too (compact and delete); absent: compaction only. */
  readonly retentionMs?: number;
  /** How long opening may take to read what the topic holds (default 60 s). */
  readonly catchUpTimeoutMs?: number;
}

interface Waiter {
  readonly offset: number;
  readonly resolve: () => void;
  readonly reject: (error: TributaryError) => void;
}

/** How long after a reader stopped for good a new one is started. */
export const READER_RESTART_MS = 5_000;

export class TopicView {
  private applied = -1;
  private readonly waiters = new Set<Waiter>();
  private closed = false;
  /** The reader now, and its consumer group (deleted when the reader is replaced or closed). */
  private consumer: Consumer | undefined;
  private groupId = '';
  /** Why the reader stopped, until a new one has joined its group. */
  private failure: TributaryError | undefined;
  private restartTimer: NodeJS.Timeout | undefined;

  private constructor(private readonly options: TopicViewOptions) {}

  /** Creates the topic when missing, and resolves once everything it held at the start is read. */
  static async open(options: TopicViewOptions): Promise<TopicView> {
    const { admin, topic } = options;
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic,
          numPartitions: 1,
          replicationFactor: options.replicationFactor,
          configEntries: [
            ...(options.retentionMs === undefined
              ? [{ name: 'cleanup.policy', value: 'compact' }]
              : [
                  { name: 'cleanup.policy', value: 'compact,delete' },
                  { name: 'retention.ms', value: String(options.retentionMs) },
                ]),
            { name: 'min.insync.replicas', value: '1' },
          ],
        },
      ],
    });
    const view = new TopicView(options);
    try {
      const [end] = await admin.fetchTopicOffsets(topic);
      const high = Number(end?.high ?? 0);
      await view.startReader();
      if (high > 0) await view.reached(high - 1, options.catchUpTimeoutMs ?? 60_000);
    } catch (error) {
      await view.close();
      throw error;
    }
    return view;
  }

  /** Starts a kafkajs consumer that reads the topic from its beginning. */
  private async startReader(): Promise<void> {
    const { topic } = this.options;
    // A group of this reader's own that never commits: every start reads from the beginning.
    // It has one member, but after Kafka restarts the member kafkajs starts again is a new one,
    // and the group takes it once the old one's session has expired: a short session keeps the
    // view (and every write, which waits for it) from stalling long after an outage.
    const groupId = `${topic}.reader.${randomUUID()}`;
    this.groupId = groupId;
    const consumer = this.options.kafka.consumer({
      groupId,
      maxWaitTimeInMs: 50,
      sessionTimeout: 6_000,
      heartbeatInterval: 500,
      rebalanceTimeout: 3_000,
      allowAutoTopicCreation: false,
    });
    this.consumer = consumer;
    consumer.on(consumer.events.GROUP_JOIN, () => {
      if (consumer === this.consumer) this.failure = undefined;
    });
    // kafkajs starts a crashed consumer again by itself unless the error is one it does not retry.
    consumer.on(consumer.events.CRASH, (event) => {
      if (!event.payload.restart) this.readerStopped(consumer, event.payload.error);
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ message }) => {
        this.apply({
          key: message.key?.toString('utf8') ?? '',
          value: message.value,
          offset: Number(message.offset),
          timestamp: Number(message.timestamp),
        });
      },
    });
  }

  /**
   * The reader stopped for good: what waits for it fails at once (so does every write until a new
   * reader has joined), and a new reader starts after READER_RESTART_MS, reading from the
   * beginning (what this view applied already is skipped).
   */
  private readerStopped(consumer: Consumer, error: unknown): void {
    if (this.closed || consumer !== this.consumer || this.restartTimer !== undefined) return;
    const what = `the reader of ${this.options.topic}`;
    const failure = consumerStopped(what, error);
    this.failure = failure;
    for (const waiter of this.waiters) waiter.reject(failure);
    this.waiters.clear();
    this.options.onConsumerStopped?.(what, failure, READER_RESTART_MS);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.closed) return;
      const stale = this.groupId;
      void consumer
        .disconnect()
        .then(() => this.options.admin.deleteGroups([stale]))
        .catch(() => {});
      this.startReader().catch((startError: unknown) => {
        this.readerStopped(this.consumer!, startError);
      });
    }, READER_RESTART_MS);
    this.restartTimer.unref();
  }

  private apply(record: ViewRecord): void {
    if (record.offset <= this.applied) return;
    this.applied = record.offset;
    try {
      this.options.onRecord(record);
    } finally {
      for (const waiter of this.waiters) {
        if (waiter.offset <= this.applied) {
          this.waiters.delete(waiter);
          waiter.resolve();
        }
      }
    }
  }

  /** Resolves once the record at `offset` (or a later one) has been applied here. */
  reached(offset: number, timeoutMs = 30_000): Promise<void> {
    if (offset <= this.applied) return Promise.resolve();
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(
          new TributaryError(
            'BACKEND_UNAVAILABLE',
            `Kafka: ${this.options.topic} was not read up to offset ${offset} in ${timeoutMs} ms`,
            { retryAfter: 1 },
          ),
        );
      }, timeoutMs);
      const waiter: Waiter = {
        offset,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.waiters.add(waiter);
    });
  }

  /** Writes `value` (null: a tombstone) under `key`; resolves with its offset once applied here. */
  async write(key: string, value: Buffer | null): Promise<number> {
    if (this.closed) throw new TributaryError('SHUTTING_DOWN', 'The Kafka backend is closed');
    // Nothing is written while it could not be read back: the caller could not learn its outcome.
    if (this.failure !== undefined) throw this.failure;
    const [metadata] = await this.options.producer.send({
      topic: this.options.topic,
      acks: -1,
      messages: [{ key, value }],
    });
    const offset = Number(metadata?.baseOffset ?? metadata?.offset ?? -1);
    if (offset < 0) throw new TributaryError('BACKEND_UNAVAILABLE', 'Kafka gave no offset');
    await this.reached(offset);
    return offset;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.restartTimer);
    await this.consumer?.disconnect().catch(() => {});
    await this.options.admin.deleteGroups([this.groupId]).catch(() => {});
  }
}
