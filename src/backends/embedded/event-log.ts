/**
 * The embedded EventLog: every broker's events in one SQLite table, appended through the group
 * commit, and the subscriptions' delivery state (see subscription.ts).
 *
 * Matching cost: each appended event is routed through its broker's FilterIndex, which wakes only
 * the parked subscriptions that are candidates for it (plus the unindexed ones); after the commit
 * only the active (not parked) subscriptions are pumped. So an append costs O(new events x matching
 * candidates + unindexed subscriptions + busy subscriptions), not O(subscriptions x new events).
 *
 * Dead letters hold a copy of their event. Redriving one keeps its row, marked `redriven` (no
 * longer listed or counted), and adds a retries row with seq = -id (log seqs are positive, so the
 * two never collide) that delivers that copy: it needs no log row, so retention may have deleted
 * the event, and it never holds a log row back from retention. The dead-letter row goes when the
 * redriven delivery is acked, dead-lettered again (a new row) or filtered out.
 */
import type { Database, Statement } from 'better-sqlite3';
import type { CloudEvent } from '../../core/event.js';
import { TributaryError } from '../../core/errors.js';
import { FilterIndex } from '../../core/filter-index.js';
import type {
  BrokerLogOptions,
  BrokerRef,
  DeadLetterInfo,
  DeadLetterRecord,
  EventLog,
  LogMessage,
  StartPosition,
  SubscriptionHandle,
  SubscriptionOptions,
} from '../contracts.js';
import { DEFAULT_CACHE_LIMITS, EventCache, type CacheLimits, type LogEntry } from './cache.js';
import { copyEvent, decodeEvent, encodeEvent, type EncodedEvent } from './event-row.js';
import { groupKeyOfJson } from './ordering.js';
import {
  Subscription,
  type BrokerState,
  type StoredRetry,
  type SubscriptionStore,
} from './subscription.js';
import { rejection, shuttingDown, type CommitHook, type Writer } from './writer.js';

/** A cursor that moved is written with the next commit, or after this long at the latest. */
const CURSOR_FLUSH_MS = 100;
/**
 * A parked subscription's cursor follows its broker's last seq without any pump; while the broker
 * gets events, the parked cursors are marked dirty this often (one pass over its subscriptions).
 */
const PARKED_CURSOR_FLUSH_MS = 1000;
/** Events one retention step deletes (one transaction each). */
const SWEEP_CHUNK = 5000;
/** Dead letters listed per page: by default, and at most. */
export const DEAD_LETTER_PAGE = 100;
export const MAX_DEAD_LETTER_PAGE = 1000;

interface EventRow {
  seq: number;
  attrs: string;
  kind: number;
  data: Buffer | null;
}

interface RetryRow {
  seq: number;
  attempt: number;
  dueAt: number;
  note: string | null;
  position: number | null;
  pkey: string | null;
}

interface RedrivableRow {
  id: number;
  seq: number;
  pkey: string | null;
}

interface DeadLetterRow {
  id: number;
  attrs: string;
  kind: number;
  data: Buffer | null;
  reason: string;
  attempts: number;
  destination: string | null;
  last_status: number | null;
  dead_lettered_at: number;
}

function brokerKey(namespace: string, name: string): string {
  return `${namespace}\u0000${name}`;
}

function brokerNotFound(broker: BrokerRef): TributaryError {
  return new TributaryError(
    'NOT_FOUND',
    `Broker ${broker.namespace}/${broker.name} has no event log`,
  );
}

function checkBroker(broker: BrokerRef): void {
  if (
    typeof broker?.namespace !== 'string' ||
    typeof broker.name !== 'string' ||
    broker.namespace === '' ||
    broker.name === ''
  ) {
    throw new TributaryError('BAD_REQUEST', 'A broker needs a namespace and a name');
  }
}

function checkStart(start: StartPosition): void {
  const valid =
    start?.from === 'latest' ||
    start?.from === 'earliest' ||
    (start?.from === 'time' && start.time instanceof Date && !Number.isNaN(start.time.getTime()));
  if (!valid) throw new TributaryError('BAD_REQUEST', 'Invalid subscription start position');
}

function checkId(id: string): void {
  if (typeof id !== 'string' || id === '') {
    throw new TributaryError('BAD_REQUEST', 'A subscription needs an id');
  }
}

function subscriptionNotFound(id: string, broker: BrokerRef): TributaryError {
  return new TributaryError(
    'NOT_FOUND',
    `Broker ${broker.namespace}/${broker.name} has no subscription ${id}`,
  );
}

/** A dead-letter id as the API gives it (a decimal string), or undefined when it cannot be one. */
function parseDeadLetterId(id: unknown): number | undefined {
  if (typeof id !== 'string' || !/^[1-9][0-9]{0,15}$/.test(id)) return undefined;
  const value = Number(id);
  return Number.isSafeInteger(value) ? value : undefined;
}

function toStoredRetry(row: RetryRow): StoredRetry {
  return {
    seq: row.seq,
    attempt: row.attempt,
    dueAt: row.dueAt,
    note: row.note ?? undefined,
    // A redriven dead letter whose copy is gone (it cannot be, but): its delivery finds no event.
    position: row.position ?? Math.abs(row.seq),
    key: groupKeyOfJson(row.pkey),
  };
}

function rejectWith(fn: () => void): Promise<never> | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    return rejection(error);
  }
}

export interface EventLogOptions {
  readonly cacheLimits?: CacheLimits;
}

export class EmbeddedEventLog implements EventLog, SubscriptionStore, CommitHook {
  private readonly brokersByKey = new Map<string, BrokerState>();
  private readonly brokersById = new Map<number, BrokerState>();
  private readonly dirty = new Set<Subscription>();
  private writing: [Subscription, number][] = [];
  private readonly notify = new Set<BrokerState>();
  private cursorTimer: NodeJS.Timeout | undefined;
  /** Brokers that got events since their parked subscriptions' cursors were last marked dirty. */
  private readonly moved = new Set<BrokerState>();
  private parkedTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly cacheLimits: CacheLimits;
  /** appended_at never decreases along seq (see lastSeqAppendedBy). */
  private lastAppendedAt: number;

  private readonly sql: {
    selectBroker: Statement<[string, string], { id: number }>;
    insertBroker: Statement<[string, string]>;
    updateRetention: Statement<[number | null, number]>;
    deleteBrokerEvents: Statement<[number]>;
    deleteBrokerRetries: Statement<[number]>;
    deleteBrokerDeadLetters: Statement<[number]>;
    deleteBrokerSubscriptions: Statement<[number]>;
    deleteBrokerRow: Statement<[number]>;
    insertEvent: Statement<[number, number, string, number, Buffer | null]>;
    lastSeq: Statement<[number], { seq: number | null }>;
    firstFrom: Statement<[number, number], { seq: number; appendedAt: number }>;
    readEvents: Statement<[number, number, number], EventRow>;
    readEvent: Statement<[number, number], EventRow>;
    selectSubscription: Statement<[number, string], { sid: number; cursor: number }>;
    insertSubscription: Statement<[number, string, number, number]>;
    deleteSubscriptionRetries: Statement<[number]>;
    deleteSubscriptionDeadLetters: Statement<[number]>;
    deleteSubscriptionRow: Statement<[number]>;
    updateCursor: Statement<[number, number]>;
    selectRetries: Statement<[number], RetryRow>;
    upsertRetry: Statement<[number, number, number, number, string | null, number]>;
    deleteRetry: Statement<[number, number]>;
    deleteRedrivenCopy: Statement<[number, number]>;
    readDeadLetterEvent: Statement<[number, number], Omit<EventRow, 'seq'>>;
    insertDeadLetter: Statement<
      [
        number,
        number,
        string,
        number,
        Buffer | null,
        string,
        number,
        string | null,
        number | null,
        number,
        number,
      ]
    >;
    listDeadLetters: Statement<[number, number, number], DeadLetterRow>;
    countDeadLetters: Statement<[number], { count: number }>;
    countAfter: Statement<[number, number], { count: number }>;
    countRetriesThrough: Statement<[number, number], { count: number }>;
    redrivableAll: Statement<[number], RedrivableRow>;
    redrivableOne: Statement<[number, number], RedrivableRow>;
    markRedriven: Statement<[number]>;
    minCursor: Statement<[number], { cursor: number | null }>;
    expired: Statement<[number, number, number, number], { seq: number }>;
    deleteEvent: Statement<[number]>;
  };

  constructor(
    private readonly db: Database,
    readonly writer: Writer,
    options: EventLogOptions = {},
  ) {
    this.cacheLimits = options.cacheLimits ?? DEFAULT_CACHE_LIMITS;
    const p = <P extends unknown[], R = unknown>(source: string) =>
      db.prepare<P, R>(source) as Statement<P, R>;
    this.sql = {
      selectBroker: p('SELECT id FROM brokers WHERE namespace = ? AND name = ?'),
      insertBroker: p('INSERT OR IGNORE INTO brokers (namespace, name) VALUES (?, ?)'),
      updateRetention: p('UPDATE brokers SET retention_ms = ? WHERE id = ?'),
      deleteBrokerEvents: p('DELETE FROM events WHERE broker_id = ?'),
      deleteBrokerRetries: p(
        'DELETE FROM retries WHERE sid IN (SELECT sid FROM subscriptions WHERE broker_id = ?)',
      ),
      deleteBrokerDeadLetters: p(
        'DELETE FROM dead_letters WHERE sid IN (SELECT sid FROM subscriptions WHERE broker_id = ?)',
      ),
      deleteBrokerSubscriptions: p('DELETE FROM subscriptions WHERE broker_id = ?'),
      deleteBrokerRow: p('DELETE FROM brokers WHERE id = ?'),
      insertEvent: p(
        'INSERT INTO events (broker_id, appended_at, attrs, data_kind, data) VALUES (?, ?, ?, ?, ?)',
      ),
      lastSeq: p('SELECT MAX(seq) AS seq FROM events WHERE broker_id = ?'),
      firstFrom: p(
        'SELECT seq, appended_at AS appendedAt FROM events WHERE broker_id = ? AND seq >= ? ORDER BY seq LIMIT 1',
      ),
      readEvents: p(
        'SELECT seq, attrs, data_kind AS kind, data FROM events WHERE broker_id = ? AND seq > ? ORDER BY seq LIMIT ?',
      ),
      readEvent: p(
        'SELECT seq, attrs, data_kind AS kind, data FROM events WHERE broker_id = ? AND seq = ?',
      ),
      selectSubscription: p(
        'SELECT sid, cursor FROM subscriptions WHERE broker_id = ? AND name = ?',
      ),
      insertSubscription: p(
        'INSERT INTO subscriptions (broker_id, name, cursor, created_at) VALUES (?, ?, ?, ?)',
      ),
      deleteSubscriptionRetries: p('DELETE FROM retries WHERE sid = ?'),
      deleteSubscriptionDeadLetters: p('DELETE FROM dead_letters WHERE sid = ?'),
      deleteSubscriptionRow: p('DELETE FROM subscriptions WHERE sid = ?'),
      updateCursor: p('UPDATE subscriptions SET cursor = ? WHERE sid = ?'),
      // The partition key as JSON text (see groupKeyOfJson), from the log or from the dead letter.
      selectRetries: p(
        `SELECT r.seq, r.attempt, r.due_at AS dueAt, r.note,
           CASE WHEN r.seq < 0 THEN d.seq ELSE r.seq END AS position,
           CASE WHEN r.seq < 0 THEN d.attrs -> '$.partitionkey'
             ELSE e.attrs -> '$.partitionkey' END AS pkey
         FROM retries r
         LEFT JOIN events e ON r.seq > 0 AND e.seq = r.seq
         LEFT JOIN dead_letters d ON r.seq < 0 AND d.id = -r.seq
         WHERE r.sid = ? ORDER BY r.due_at`,
      ),
      upsertRetry: p(
        `INSERT INTO retries (sid, seq, attempt, due_at, note)
         SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM subscriptions WHERE sid = ?)
         ON CONFLICT (sid, seq) DO UPDATE
           SET attempt = excluded.attempt, due_at = excluded.due_at, note = excluded.note`,
      ),
      deleteRetry: p('DELETE FROM retries WHERE sid = ? AND seq = ?'),
      deleteRedrivenCopy: p('DELETE FROM dead_letters WHERE id = ? AND sid = ? AND redriven = 1'),
      readDeadLetterEvent: p(
        'SELECT attrs, data_kind AS kind, data FROM dead_letters WHERE id = ? AND sid = ?',
      ),
      insertDeadLetter: p(
        `INSERT INTO dead_letters (sid, seq, attrs, data_kind, data, reason, attempts, destination,
           last_status, dead_lettered_at)
         SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM subscriptions WHERE sid = ?)`,
      ),
      listDeadLetters: p(
        `SELECT id, attrs, data_kind AS kind, data, reason, attempts, destination, last_status,
           dead_lettered_at
         FROM dead_letters
         WHERE sid = ? AND redriven = 0 AND id > ?
         ORDER BY id LIMIT ?`,
      ),
      countDeadLetters: p(
        'SELECT COUNT(*) AS count FROM dead_letters WHERE sid = ? AND redriven = 0',
      ),
      countAfter: p('SELECT COUNT(*) AS count FROM events WHERE broker_id = ? AND seq > ?'),
      // Redriven dead letters have negative seqs: always at or below a cursor.
      countRetriesThrough: p('SELECT COUNT(*) AS count FROM retries WHERE sid = ? AND seq <= ?'),
      redrivableAll: p(
        `SELECT id, seq, attrs -> '$.partitionkey' AS pkey FROM dead_letters
         WHERE sid = ? AND redriven = 0 ORDER BY id`,
      ),
      redrivableOne: p(
        `SELECT id, seq, attrs -> '$.partitionkey' AS pkey FROM dead_letters
         WHERE sid = ? AND id = ? AND redriven = 0`,
      ),
      markRedriven: p('UPDATE dead_letters SET redriven = 1 WHERE id = ?'),
      minCursor: p('SELECT MIN(cursor) AS cursor FROM subscriptions WHERE broker_id = ?'),
      expired: p(
        `SELECT seq FROM events
         WHERE broker_id = ? AND seq <= ? AND appended_at <= ?
           AND NOT EXISTS (SELECT 1 FROM retries r WHERE r.seq = events.seq)
         ORDER BY seq LIMIT ?`,
      ),
      deleteEvent: p('DELETE FROM events WHERE seq = ?'),
    };
    this.lastAppendedAt =
      db
        .prepare<[], { at: number }>(
          'SELECT appended_at AS at FROM events ORDER BY seq DESC LIMIT 1',
        )
        .get()?.at ?? 0;
    this.loadBrokers();
    writer.addHook(this);
  }

  private loadBrokers(): void {
    // Every later event is appended through a cache, so the caches hold all events above this.
    const sequence = this.db
      .prepare<[], { seq: number }>("SELECT seq FROM sqlite_sequence WHERE name = 'events'")
      .get();
    const covered = sequence?.seq ?? 0;
    const rows = this.db
      .prepare<
        [],
        {
          id: number;
          namespace: string;
          name: string;
          lastSeq: number | null;
          retentionMs: number | null;
        }
      >(
        `SELECT id, namespace, name, retention_ms AS retentionMs,
           (SELECT MAX(seq) FROM events e WHERE e.broker_id = b.id) AS lastSeq
         FROM brokers b`,
      )
      .all();
    for (const row of rows) {
      const state = this.addBroker(row.id, row.namespace, row.name, row.lastSeq ?? 0, covered);
      state.retentionMs = row.retentionMs ?? undefined;
    }
  }

  private addBroker(
    id: number,
    namespace: string,
    name: string,
    lastSeq: number,
    covered: number,
  ): BrokerState {
    const state: BrokerState = {
      id,
      namespace,
      name,
      lastSeq,
      cache: new EventCache(covered, this.cacheLimits),
      subscriptions: new Map(),
      index: new FilterIndex(),
      unindexed: new Set(),
      active: new Set(),
      retentionMs: undefined,
    };
    this.brokersById.set(id, state);
    this.brokersByKey.set(brokerKey(namespace, name), state);
    return state;
  }

  private dropBroker(id: number): void {
    const state = this.brokersById.get(id);
    if (state === undefined) return;
    for (const subscription of state.subscriptions.values()) {
      subscription.stop();
      this.dirty.delete(subscription);
    }
    state.subscriptions.clear();
    this.brokersById.delete(id);
    const key = brokerKey(state.namespace, state.name);
    if (this.brokersByKey.get(key) === state) this.brokersByKey.delete(key);
    this.notify.delete(state);
    this.moved.delete(state);
  }

  /**
   * Wakes the parked subscriptions that may want one of the events just appended (seqs from
   * `firstSeq`), each at the first event it is a candidate for. Runs in the same step that raised
   * the broker's last seq, so a parked subscription's implicit read position never skips an event
   * that was not routed. The other parked subscriptions skip these events without any work.
   */
  private route(state: BrokerState, firstSeq: number, events: readonly CloudEvent[]): void {
    for (const subscription of state.unindexed) subscription.wake(firstSeq);
    if (state.index.size === 0) return;
    for (let i = 0; i < events.length; i++) {
      const seq = firstSeq + i;
      state.index.forEachCandidate(events[i]!, (subscription) => subscription.wake(seq));
    }
  }

  /** The broker's parked cursors moved: mark them dirty within PARKED_CURSOR_FLUSH_MS. */
  private parkedMoved(state: BrokerState): void {
    this.moved.add(state);
    if (this.parkedTimer !== undefined || this.closed) return;
    this.parkedTimer = setTimeout(() => {
      this.parkedTimer = undefined;
      const brokers = [...this.moved];
      this.moved.clear();
      for (const broker of brokers) {
        for (const subscription of broker.subscriptions.values()) {
          if (subscription.isParked() && subscription.cursor() > subscription.persistedCursor) {
            this.markDirty(subscription);
          }
        }
      }
    }, PARKED_CURSOR_FLUSH_MS);
    this.parkedTimer.unref();
  }

  private brokerId(broker: BrokerRef): number {
    const row = this.sql.selectBroker.get(broker.namespace, broker.name);
    if (row === undefined) throw brokerNotFound(broker);
    return row.id;
  }

  // ---- EventLog ----

  /**
   * Without `options` the broker keeps the options it has; with them, they replace what it had (a
   * `retentionMs` left out means the backend's default again).
   */
  ensureBroker(broker: BrokerRef, options?: BrokerLogOptions): Promise<void> {
    if (this.closed) return Promise.reject(shuttingDown());
    const invalid = rejectWith(() => {
      checkBroker(broker);
      const retention = options?.retentionMs;
      if (retention !== undefined && !(Number.isFinite(retention) && retention >= 0)) {
        throw new TributaryError('BAD_REQUEST', 'retentionMs must be a number >= 0');
      }
    });
    if (invalid) return invalid;
    const { namespace, name } = broker;
    const retentionMs = options?.retentionMs;
    let id = 0;
    return this.writer.enqueue(
      () => {
        this.sql.insertBroker.run(namespace, name);
        id = this.brokerId(broker);
        if (options !== undefined) this.sql.updateRetention.run(retentionMs ?? null, id);
      },
      () => {
        // A new broker has no events yet, so its cache holds all of them.
        const state = this.brokersById.get(id) ?? this.addBroker(id, namespace, name, 0, 0);
        if (options !== undefined) state.retentionMs = retentionMs;
      },
    );
  }

  deleteBroker(broker: BrokerRef): Promise<void> {
    if (this.closed) return Promise.reject(shuttingDown());
    const invalid = rejectWith(() => checkBroker(broker));
    if (invalid) return invalid;
    let deleted: number | undefined;
    return this.writer.enqueue(
      () => {
        const row = this.sql.selectBroker.get(broker.namespace, broker.name);
        if (row === undefined) return;
        const sql = this.sql;
        sql.deleteBrokerRetries.run(row.id);
        sql.deleteBrokerDeadLetters.run(row.id);
        sql.deleteBrokerSubscriptions.run(row.id);
        sql.deleteBrokerEvents.run(row.id);
        sql.deleteBrokerRow.run(row.id);
        deleted = row.id;
      },
      () => {
        if (deleted !== undefined) this.dropBroker(deleted);
      },
    );
  }

  append(broker: BrokerRef, events: readonly CloudEvent[]): Promise<void> {
    if (this.closed) return Promise.reject(shuttingDown());
    let encoded: EncodedEvent[];
    let copies: CloudEvent[];
    try {
      checkBroker(broker);
      encoded = events.map(encodeEvent);
      copies = events.map(copyEvent);
    } catch (error) {
      return rejection(error);
    }
    let brokerId = 0;
    let firstSeq = 0;
    return this.writer.enqueue(
      () => {
        brokerId = this.brokerId(broker);
        // Never decreasing, even if the wall clock steps back: lastSeqAppendedBy relies on it.
        const now = Math.max(Date.now(), this.lastAppendedAt);
        this.lastAppendedAt = now;
        const insert = this.sql.insertEvent;
        for (let i = 0; i < encoded.length; i++) {
          const event = encoded[i]!;
          const seq = Number(
            insert.run(brokerId, now, event.attrs, event.kind, event.data).lastInsertRowid,
          );
          if (i === 0) firstSeq = seq;
        }
      },
      () => {
        const state = this.brokersById.get(brokerId);
        if (state === undefined || encoded.length === 0) return;
        // One insert after another in one transaction: consecutive seqs.
        for (let i = 0; i < copies.length; i++) {
          state.cache.push(firstSeq + i, copies[i]!, encoded[i]!.size);
        }
        state.lastSeq = firstSeq + copies.length - 1;
        this.route(state, firstSeq, copies);
        this.notify.add(state);
        this.parkedMoved(state);
      },
    );
  }

  ensureSubscription(options: Pick<SubscriptionOptions, 'id' | 'broker' | 'start'>): Promise<void> {
    if (this.closed) return Promise.reject(shuttingDown());
    const invalid = rejectWith(() => {
      checkBroker(options.broker);
      checkStart(options.start);
      checkId(options.id);
    });
    if (invalid) return invalid;
    const { id, broker, start } = options;
    const startTime = start.from === 'time' ? start.time.getTime() : 0;
    return this.writer.enqueue(() => {
      const brokerId = this.brokerId(broker);
      if (this.sql.selectSubscription.get(brokerId, id) !== undefined) return;
      const cursor = this.startCursor(brokerId, start.from, startTime);
      this.sql.insertSubscription.run(brokerId, id, cursor, Date.now());
    });
  }

  async subscribe(
    options: SubscriptionOptions,
    handler: (message: LogMessage) => void,
  ): Promise<SubscriptionHandle> {
    const { maxInFlight } = options;
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
      throw new TributaryError('BAD_REQUEST', 'maxInFlight must be a positive integer');
    }
    if (typeof handler !== 'function') {
      throw new TributaryError('BAD_REQUEST', 'subscribe needs a handler');
    }
    if (options.ordered !== undefined && typeof options.ordered !== 'boolean') {
      throw new TributaryError('BAD_REQUEST', 'ordered must be a boolean');
    }
    await this.ensureSubscription(options);
    if (this.closed) throw shuttingDown();
    const broker = this.brokersByKey.get(brokerKey(options.broker.namespace, options.broker.name));
    if (broker === undefined) throw brokerNotFound(options.broker);
    let subscription = broker.subscriptions.get(options.id);
    if (subscription === undefined) {
      const row = this.sql.selectSubscription.get(broker.id, options.id);
      if (row === undefined) {
        throw new TributaryError('NOT_FOUND', `Subscription ${options.id} was deleted`);
      }
      const retries = this.sql.selectRetries.all(row.sid).map(toStoredRetry);
      subscription = new Subscription(this, broker, row.sid, options.id, row.cursor, retries);
      broker.subscriptions.set(options.id, subscription);
    }
    return subscription.join(handler, maxInFlight, options.filter, options.ordered === true);
  }

  deleteSubscription(id: string, broker: BrokerRef): Promise<void> {
    if (this.closed) return Promise.reject(shuttingDown());
    const invalid = rejectWith(() => checkBroker(broker));
    if (invalid) return invalid;
    let deletedSid: number | undefined;
    return this.writer.enqueue(
      () => {
        const brokerRow = this.sql.selectBroker.get(broker.namespace, broker.name);
        if (brokerRow === undefined) return;
        const row = this.sql.selectSubscription.get(brokerRow.id, id);
        if (row === undefined) return;
        this.sql.deleteSubscriptionRetries.run(row.sid);
        this.sql.deleteSubscriptionDeadLetters.run(row.sid);
        this.sql.deleteSubscriptionRow.run(row.sid);
        deletedSid = row.sid;
      },
      () => {
        if (deletedSid === undefined) return;
        const state = this.brokersByKey.get(brokerKey(broker.namespace, broker.name));
        const subscription = state?.subscriptions.get(id);
        if (state === undefined || subscription?.sid !== deletedSid) return;
        subscription.stop();
        this.dirty.delete(subscription);
        state.subscriptions.delete(id);
      },
    );
  }

  seek(id: string, broker: BrokerRef, position: StartPosition): Promise<void> {
    if (this.closed) return Promise.reject(shuttingDown());
    const invalid = rejectWith(() => {
      checkBroker(broker);
      checkId(id);
      checkStart(position);
    });
    if (invalid) return invalid;
    const time = position.from === 'time' ? position.time.getTime() : 0;
    let cursor = 0;
    let moving: Subscription | undefined;
    return this.writer
      .enqueue(
        () => {
          const brokerId = this.brokerId(broker);
          const row = this.sql.selectSubscription.get(brokerId, id);
          if (row === undefined) throw subscriptionNotFound(id, broker);
          cursor = this.startCursor(brokerId, position.from, time);
          this.sql.updateCursor.run(cursor, row.sid);
          const subscription = this.brokersById.get(brokerId)?.subscriptions.get(id);
          if (subscription?.sid === row.sid && !subscription.isStopped()) {
            // Its in-memory cursor must not overwrite this one in the same commit (beforeCommit).
            subscription.seeking = true;
            moving = subscription;
          }
        },
        () => moving?.seekTo(cursor),
      )
      .catch((error: unknown) => {
        if (moving !== undefined) {
          moving.seeking = false;
          this.markDirty(moving);
        }
        throw error;
      });
  }

  /**
   * The cursor a start position means: "latest" after the last event, "earliest" before the first,
   * a time just before the first event appended at or after it.
   */
  private startCursor(brokerId: number, from: StartPosition['from'], time: number): number {
    if (from === 'earliest') return 0;
    if (from === 'latest') return this.sql.lastSeq.get(brokerId)?.seq ?? 0;
    return this.lastSeqAppendedBy(brokerId, time - 1);
  }

  /** The subscription's sid, undefined when it or its broker does not exist. */
  private findSid(id: string, broker: BrokerRef): number | undefined {
    const brokerRow = this.sql.selectBroker.get(broker.namespace, broker.name);
    if (brokerRow === undefined) return undefined;
    return this.sql.selectSubscription.get(brokerRow.id, id)?.sid;
  }

  /** An unknown broker or subscription has none. */
  listDeadLetters(
    id: string,
    broker: BrokerRef,
    page: { readonly after?: string; readonly limit?: number } = {},
  ): Promise<DeadLetterRecord[]> {
    if (this.closed) return Promise.reject(shuttingDown());
    try {
      checkBroker(broker);
      const limit = page.limit ?? DEAD_LETTER_PAGE;
      if (!Number.isInteger(limit) || limit < 1) {
        throw new TributaryError('BAD_REQUEST', 'limit must be a positive integer');
      }
      let after = 0;
      if (page.after !== undefined) {
        const parsed = parseDeadLetterId(page.after);
        if (parsed === undefined) {
          throw new TributaryError('BAD_REQUEST', `${String(page.after)} is not a dead-letter id`);
        }
        after = parsed;
      }
      const sid = this.findSid(id, broker);
      if (sid === undefined) return Promise.resolve([]);
      const rows = this.sql.listDeadLetters.all(sid, after, Math.min(limit, MAX_DEAD_LETTER_PAGE));
      return Promise.resolve(
        rows.map((row) => {
          const record: DeadLetterRecord = {
            id: String(row.id),
            subscriptionId: id,
            event: decodeEvent(row.attrs, row.kind, row.data),
            reason: row.reason,
            attempts: row.attempts,
            deadLetteredAt: new Date(row.dead_lettered_at),
            ...(row.destination === null ? {} : { destination: row.destination }),
            ...(row.last_status === null ? {} : { lastStatus: row.last_status }),
          };
          return record;
        }),
      );
    } catch (error) {
      return rejection(error);
    }
  }

  /** An unknown broker or subscription has none. */
  countDeadLetters(id: string, broker: BrokerRef): Promise<number> {
    if (this.closed) return Promise.reject(shuttingDown());
    try {
      checkBroker(broker);
      const sid = this.findSid(id, broker);
      if (sid === undefined) return Promise.resolve(0);
      return Promise.resolve(this.sql.countDeadLetters.get(sid)?.count ?? 0);
    } catch (error) {
      return rejection(error);
    }
  }

  /**
   * The events of the broker after the cursor (a joined subscription's cursor in memory, which
   * stops below its oldest unsettled first attempt and follows the broker's last seq while it is
   * parked; else the committed one), plus the retries at or below it (those above are among the
   * events counted already), plus first attempts a member still holds from before a forward seek.
   */
  backlog(id: string, broker: BrokerRef): Promise<number | undefined> {
    if (this.closed) return Promise.reject(shuttingDown());
    try {
      checkBroker(broker);
      const brokerRow = this.sql.selectBroker.get(broker.namespace, broker.name);
      if (brokerRow === undefined) return Promise.resolve(undefined);
      const row = this.sql.selectSubscription.get(brokerRow.id, id);
      if (row === undefined) return Promise.resolve(undefined);
      const loaded = this.brokersById.get(brokerRow.id)?.subscriptions.get(id);
      const live = loaded !== undefined && loaded.sid === row.sid && !loaded.isStopped();
      const cursor = live ? loaded.cursor() : row.cursor;
      const after = this.sql.countAfter.get(brokerRow.id, cursor)?.count ?? 0;
      const retries = this.sql.countRetriesThrough.get(row.sid, cursor)?.count ?? 0;
      const held = live ? loaded.heldAtOrBelow(cursor) : 0;
      return Promise.resolve(after + retries + held);
    } catch (error) {
      return rejection(error);
    }
  }

  /**
   * Rejects NOT_FOUND for an unknown broker or subscription (it is a write, like seek). A redriven
   * dead letter becomes a retries row due now, attempt 1, without a note, that references the
   * dead letter's copy of the event (see the top).
   */
  redriveDeadLetters(id: string, broker: BrokerRef, ids?: readonly string[]): Promise<number> {
    if (this.closed) return Promise.reject(shuttingDown());
    const invalid = rejectWith(() => {
      checkBroker(broker);
      checkId(id);
      if (ids !== undefined && !Array.isArray(ids)) {
        throw new TributaryError('BAD_REQUEST', 'ids must be a list of dead-letter ids');
      }
    });
    if (invalid) return invalid;
    let sid = 0;
    let brokerId = 0;
    const redriven: StoredRetry[] = [];
    return this.writer.enqueue(
      () => {
        brokerId = this.brokerId(broker);
        const row = this.sql.selectSubscription.get(brokerId, id);
        if (row === undefined) throw subscriptionNotFound(id, broker);
        sid = row.sid;
        let rows: RedrivableRow[];
        if (ids === undefined) {
          rows = this.sql.redrivableAll.all(sid);
        } else {
          rows = [];
          for (const given of new Set(ids)) {
            const deadLetterId = parseDeadLetterId(given);
            if (deadLetterId === undefined) continue;
            const found = this.sql.redrivableOne.get(sid, deadLetterId);
            if (found !== undefined) rows.push(found);
          }
        }
        const now = Date.now();
        for (const found of rows) {
          this.sql.markRedriven.run(found.id);
          this.sql.upsertRetry.run(sid, -found.id, 1, now, null, sid);
          redriven.push({
            seq: -found.id,
            attempt: 1,
            dueAt: now,
            note: undefined,
            position: found.seq,
            key: groupKeyOfJson(found.pkey),
          });
        }
        return rows.length;
      },
      () => {
        const subscription = this.brokersById.get(brokerId)?.subscriptions.get(id);
        if (subscription?.sid === sid) subscription.redrive(redriven);
      },
    );
  }

  isHealthy(): boolean {
    return !this.closed && this.writer.isHealthy();
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    for (const broker of this.brokersById.values()) {
      for (const subscription of broker.subscriptions.values()) {
        if (subscription.cursor() > subscription.persistedCursor) this.dirty.add(subscription);
      }
    }
    // Writes queued before close (settlements, appends) and the cursors are committed now.
    try {
      this.writer.flush();
    } finally {
      if (this.cursorTimer !== undefined) clearTimeout(this.cursorTimer);
      this.cursorTimer = undefined;
      if (this.parkedTimer !== undefined) clearTimeout(this.parkedTimer);
      this.parkedTimer = undefined;
      this.moved.clear();
      for (const broker of this.brokersById.values()) {
        for (const subscription of broker.subscriptions.values()) subscription.stop();
      }
    }
    return Promise.resolve();
  }

  /**
   * Retention: deletes the events that every subscription of their broker is done with and that
   * were appended at or before `now` minus the broker's retention (`defaultRetentionMs` for a broker
   * without one). Resolves with how many were deleted.
   */
  async sweep(now: number, defaultRetentionMs: number): Promise<number> {
    let total = 0;
    for (const broker of [...this.brokersById.values()]) {
      for (;;) {
        const cutoff = now - (broker.retentionMs ?? defaultRetentionMs);
        if (this.closed || !this.brokersById.has(broker.id)) break;
        let through = 0;
        const deleted = await this.writer.enqueue(
          () => {
            const done = this.sql.minCursor.get(broker.id)?.cursor ?? Number.MAX_SAFE_INTEGER;
            const limit = Math.min(done, this.lastSeqAppendedBy(broker.id, cutoff));
            if (limit <= 0) return 0;
            const rows = this.sql.expired.all(broker.id, limit, cutoff, SWEEP_CHUNK);
            for (const row of rows) this.sql.deleteEvent.run(row.seq);
            through = rows[rows.length - 1]?.seq ?? 0;
            return rows.length;
          },
          () => {
            if (through > 0) broker.cache.dropThrough(through);
          },
        );
        total += deleted;
        if (deleted < SWEEP_CHUNK) break;
      }
    }
    return total;
  }

  /**
   * The highest seq of the broker appended at or before `time` (0 if none), by binary search over
   * the (broker_id, seq) index: appended_at never decreases along seq. Avoids scanning the log.
   */
  private lastSeqAppendedBy(brokerId: number, time: number): number {
    const first = this.sql.firstFrom.get(brokerId, 0);
    if (first === undefined || first.appendedAt > time) return 0;
    let low = first.seq; // appended at or before `time`
    let high = this.sql.lastSeq.get(brokerId)?.seq ?? low; // the answer is at most this
    while (low < high) {
      const mid = low + Math.ceil((high - low) / 2);
      const row = this.sql.firstFrom.get(brokerId, mid);
      if (row !== undefined && row.appendedAt <= time) low = row.seq;
      else high = mid - 1;
    }
    return low;
  }

  /** The subscription's cursor as committed (tests and operations), undefined if it has none. */
  durableCursor(broker: BrokerRef, id: string): number | undefined {
    if (this.closed) throw shuttingDown();
    const row = this.sql.selectBroker.get(broker.namespace, broker.name);
    return row === undefined ? undefined : this.sql.selectSubscription.get(row.id, id)?.cursor;
  }

  // ---- SubscriptionStore ----

  isClosed(): boolean {
    return this.closed;
  }

  readEvents(brokerId: number, after: number, limit: number): LogEntry[] {
    return this.sql.readEvents
      .all(brokerId, after, limit)
      .map((row) => ({ seq: row.seq, event: decodeEvent(row.attrs, row.kind, row.data) }));
  }

  readEvent(brokerId: number, seq: number): CloudEvent | undefined {
    const row = this.sql.readEvent.get(brokerId, seq);
    return row === undefined ? undefined : decodeEvent(row.attrs, row.kind, row.data);
  }

  readDeadLetterEvent(sid: number, id: number): CloudEvent | undefined {
    const row = this.sql.readDeadLetterEvent.get(id, sid);
    return row === undefined ? undefined : decodeEvent(row.attrs, row.kind, row.data);
  }

  markDirty(subscription: Subscription): void {
    if (this.closed || subscription.isStopped()) return;
    this.dirty.add(subscription);
    if (this.cursorTimer === undefined) {
      this.cursorTimer = setTimeout(() => {
        this.cursorTimer = undefined;
        this.writer.request();
      }, CURSOR_FLUSH_MS);
      this.cursorTimer.unref();
    }
  }

  writeRetry(
    sid: number,
    seq: number,
    attempt: number,
    dueAt: number,
    note: string | undefined,
  ): void {
    this.sql.upsertRetry.run(sid, seq, attempt, dueAt, note ?? null, sid);
  }

  deleteRetry(sid: number, seq: number): void {
    this.sql.deleteRetry.run(sid, seq);
    if (seq < 0) this.sql.deleteRedrivenCopy.run(-seq, sid);
  }

  writeDeadLetter(
    sid: number,
    seq: number,
    event: EncodedEvent,
    info: DeadLetterInfo,
    at: number,
  ): void {
    this.sql.insertDeadLetter.run(
      sid,
      seq,
      event.attrs,
      event.kind,
      event.data,
      info.reason,
      info.attempts,
      info.destination ?? null,
      info.lastStatus ?? null,
      at,
      sid,
    );
  }

  // ---- CommitHook: cursors ride along with every commit ----

  hasWork(): boolean {
    return this.dirty.size > 0;
  }

  beforeCommit(): void {
    for (const subscription of this.dirty) {
      if (subscription.isStopped() || subscription.seeking) continue;
      const cursor = subscription.cursor();
      if (cursor <= subscription.persistedCursor) continue;
      this.sql.updateCursor.run(cursor, subscription.sid);
      this.writing.push([subscription, cursor]);
    }
    this.dirty.clear();
  }

  afterCommit(): void {
    for (const [subscription, cursor] of this.writing) {
      if (cursor > subscription.persistedCursor) subscription.persistedCursor = cursor;
    }
    this.writing = [];
  }

  afterRollback(): void {
    const failed = this.writing;
    this.writing = [];
    for (const [subscription] of failed) this.markDirty(subscription);
  }

  afterFlush(): void {
    if (this.notify.size === 0) return;
    const brokers = [...this.notify];
    this.notify.clear();
    // The parked subscriptions that are candidates for the new events were woken by route().
    for (const broker of brokers) {
      for (const subscription of [...broker.active]) subscription.pump();
    }
  }
}
