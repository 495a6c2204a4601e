/**
 * The embedded EventLog: every broker's events in one SQLite table, appended through the group
 * commit, and the subscriptions' delivery state (see subscription.ts).
 *
 * Matching cost: each appended event is routed through its broker's FilterIndex, which wakes only
 * the parked subscriptions that are candidates for it (plus the unindexed ones); after the commit
 * only the active (not parked) subscriptions are pumped. So an append costs O(new events x matching
 * candidates + unindexed subscriptions + busy subscriptions), not O(subscriptions x new events).
 */
import type { Database, Statement } from 'better-sqlite3';
import type { CloudEvent } from '../../core/event.js';
import { TributaryError } from '../../core/errors.js';
import { FilterIndex } from '../../core/filter-index.js';
import type {
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

interface EventRow {
  seq: number;
  attrs: string;
  kind: number;
  data: Buffer | null;
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
    selectRetries: Statement<[number], StoredRetry>;
    upsertRetry: Statement<[number, number, number, number, number]>;
    deleteRetry: Statement<[number, number]>;
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
    listDeadLetters: Statement<[string, string, string], DeadLetterRow>;
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
      selectRetries: p(
        'SELECT seq, attempt, due_at AS dueAt FROM retries WHERE sid = ? ORDER BY due_at',
      ),
      upsertRetry: p(
        `INSERT INTO retries (sid, seq, attempt, due_at)
         SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM subscriptions WHERE sid = ?)
         ON CONFLICT (sid, seq) DO UPDATE SET attempt = excluded.attempt, due_at = excluded.due_at`,
      ),
      deleteRetry: p('DELETE FROM retries WHERE sid = ? AND seq = ?'),
      insertDeadLetter: p(
        `INSERT INTO dead_letters (sid, seq, attrs, data_kind, data, reason, attempts, destination,
           last_status, dead_lettered_at)
         SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM subscriptions WHERE sid = ?)`,
      ),
      listDeadLetters: p(
        `SELECT d.id, d.attrs, d.data_kind AS kind, d.data, d.reason, d.attempts, d.destination,
           d.last_status, d.dead_lettered_at
         FROM dead_letters d
         JOIN subscriptions s ON s.sid = d.sid
         JOIN brokers b ON b.id = s.broker_id
         WHERE b.namespace = ? AND b.name = ? AND s.name = ?
         ORDER BY d.id`,
      ),
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
      .prepare<[], { id: number; namespace: string; name: string; lastSeq: number | null }>(
        `SELECT id, namespace, name, (SELECT MAX(seq) FROM events e WHERE e.broker_id = b.id) AS lastSeq
         FROM brokers b`,
      )
      .all();
    for (const row of rows)
      this.addBroker(row.id, row.namespace, row.name, row.lastSeq ?? 0, covered);
  }

  private addBroker(
    id: number,
    namespace: string,
    name: string,
    lastSeq: number,
    covered: number,
  ): void {
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
    };
    this.brokersById.set(id, state);
    this.brokersByKey.set(brokerKey(namespace, name), state);
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

  ensureBroker(broker: BrokerRef): Promise<void> {
    if (this.closed) return Promise.reject(shuttingDown());
    const invalid = rejectWith(() => checkBroker(broker));
    if (invalid) return invalid;
    const { namespace, name } = broker;
    let id = 0;
    return this.writer.enqueue(
      () => {
        this.sql.insertBroker.run(namespace, name);
        id = this.brokerId(broker);
      },
      () => {
        // A new broker has no events yet, so its cache holds all of them.
        if (!this.brokersById.has(id)) this.addBroker(id, namespace, name, 0, 0);
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
      if (typeof options.id !== 'string' || options.id === '') {
        throw new TributaryError('BAD_REQUEST', 'A subscription needs an id');
      }
    });
    if (invalid) return invalid;
    const { id, broker, start } = options;
    const startTime = start.from === 'time' ? start.time.getTime() : 0;
    return this.writer.enqueue(() => {
      const brokerId = this.brokerId(broker);
      if (this.sql.selectSubscription.get(brokerId, id) !== undefined) return;
      let cursor: number;
      if (start.from === 'earliest') cursor = 0;
      else if (start.from === 'latest') cursor = this.sql.lastSeq.get(brokerId)?.seq ?? 0;
      // Just before the first event appended at or after the time.
      else cursor = this.lastSeqAppendedBy(brokerId, startTime - 1);
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
      const retries = this.sql.selectRetries.all(row.sid);
      subscription = new Subscription(this, broker, row.sid, options.id, row.cursor, retries);
      broker.subscriptions.set(options.id, subscription);
    }
    return subscription.join(handler, maxInFlight, options.filter);
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

  listDeadLetters(id: string, broker: BrokerRef): Promise<DeadLetterRecord[]> {
    if (this.closed) return Promise.reject(shuttingDown());
    try {
      const rows = this.sql.listDeadLetters.all(broker.namespace, broker.name, id);
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
   * Retention: deletes the events appended at or before `cutoff` (ms since the epoch) that every
   * subscription of their broker is done with. Resolves with how many were deleted.
   */
  async sweep(cutoff: number): Promise<number> {
    let total = 0;
    for (const broker of [...this.brokersById.values()]) {
      for (;;) {
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

  writeRetry(sid: number, seq: number, attempt: number, dueAt: number): void {
    this.sql.upsertRetry.run(sid, seq, attempt, dueAt, sid);
  }

  deleteRetry(sid: number, seq: number): void {
    this.sql.deleteRetry.run(sid, seq);
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
      if (subscription.isStopped()) continue;
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
