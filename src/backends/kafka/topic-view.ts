/**
 * A compacted single-partition topic read by every process from its beginning, as Kafka Connect
 * keeps its configuration: the backend's resources, notes and dead letters. Each process applies
 * every record in log order through `onRecord`; a write resolves once this process has applied
 * it (so a process reads its own writes), and its offset orders it among everyone's writes.
 */
import { randomUUID } from 'node:crypto';
import type { Admin, Consumer, Kafka, Producer } from 'kafkajs';
import { TributaryError } from '../../core/errors.js';

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
}

export class TopicView {
  private applied = -1;
  private readonly waiters = new Set<Waiter>();
  private closed = false;

  private constructor(
    private readonly options: TopicViewOptions,
    private readonly consumer: Consumer,
    private readonly groupId: string,
  ) {}

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
    // A group of this process's own that never commits: every start reads from the beginning.
    // It has one member, but after Kafka restarts the member kafkajs starts again is a new one,
    // and the group takes it once the old one's session has expired: a short session keeps the
    // view (and every write, which waits for it) from stalling long after an outage.
    const groupId = `${topic}.reader.${randomUUID()}`;
    const consumer = options.kafka.consumer({
      groupId,
      maxWaitTimeInMs: 50,
      sessionTimeout: 6_000,
      heartbeatInterval: 500,
      rebalanceTimeout: 3_000,
      allowAutoTopicCreation: false,
    });
    const view = new TopicView(options, consumer, groupId);
    const [end] = await admin.fetchTopicOffsets(topic);
    const high = Number(end?.high ?? 0);
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ message }) => {
        view.apply({
          key: message.key?.toString('utf8') ?? '',
          value: message.value,
          offset: Number(message.offset),
          timestamp: Number(message.timestamp),
        });
      },
    });
    if (high > 0) await view.reached(high - 1, options.catchUpTimeoutMs ?? 60_000);
    return view;
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
      };
      this.waiters.add(waiter);
    });
  }

  /** Writes `value` (null: a tombstone) under `key`; resolves with its offset once applied here. */
  async write(key: string, value: Buffer | null): Promise<number> {
    if (this.closed) throw new TributaryError('SHUTTING_DOWN', 'The Kafka backend is closed');
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
    await this.consumer.disconnect().catch(() => {});
    await this.options.admin.deleteGroups([this.groupId]).catch(() => {});
  }
}
