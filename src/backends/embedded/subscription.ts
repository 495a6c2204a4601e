/**
 * One subscription's delivery state in memory, created when its first member joins.
 *
 * Positions: `readPos` is the highest seq of the broker read from the log (into `buffer`, or
 * already past it). The durable cursor means "every event of the broker with seq <= cursor is done,
 * except those with a retries row"; the in-memory cursor is just below the lowest seq that is read
 * but not done: the next one in `buffer`, or the lowest first-attempt seq taken from it and not
 * settled (`unsettled`, kept in seq order; `detached` after a seek). Redeliveries (retries) never
 * hold the cursor back: their retries row is durable before the seq counts as done. The cursor is
 * persisted lazily through the group commit (a lost cursor update only causes a redelivery, which
 * at-least-once allows).
 *
 * Routing and parking: a subscription whose members' filters all carry the same `indexKey` is kept
 * in its broker's FilterIndex under that key; one without such a key is "unindexed". A subscription
 * whose pump found nothing more to hand out (buffer empty, read up to the broker's last seq, no due
 * retry or orphan waiting) is *parked*: it leaves the broker's `active` set, so commits no longer
 * pump it, and its read position is implicitly the broker's last seq. The event log routes every
 * appended event, in the same step that raises the broker's last seq, through the index: a parked
 * candidate is woken with its read position just before the first new event it is a candidate for
 * (the events before it were not candidates, so no member's filter can pass them) and pumped. The
 * other events are skipped without any work for it. Whatever else gives a parked subscription work
 * (a due retry, orphans of a closed member, a key set free) pumps it, which unparks it at the
 * broker's last seq.
 *
 * Units: everything the subscription still has to deliver is named by a seq. A first attempt and a
 * retry use the event's log seq; a redriven dead letter uses minus its dead-letter id (its retries
 * row references the dead letter's copy of the event, see event-log.ts), so it never collides with
 * the log, and its `position` is the log seq it was dead-lettered from. At any time a seq is at most
 * one of: a first attempt (`unsettled` or `detached`), a scheduled retry, a due retry (`retrying`).
 *
 * Ordered mode (a member asked for `ordered`): see ordering.ts for the rule. A unit that may not go
 * out yet is *blocked* (kept in `blocked`, and its key's next unit is looked up again whenever a
 * unit of that key is settled or comes back from a closed member). Blocked first attempts stay in
 * `unsettled`, so they hold the cursor back and are read again after a restart. Only what passes
 * the filter is ordered: a filtered-out event (or one the index skipped while parked, which the
 * filter would reject) never holds a key. At most MAX_HELD first attempts are blocked: beyond that
 * the subscription stops reading the log until a key is set free, so a key that is stuck (its
 * subscriber keeps failing) and has many events in the read-ahead also stalls the other keys, but
 * memory stays bounded and nothing goes out of order.
 *
 * Seek: the cursor is moved in the same transaction that stores it (event-log.ts); in memory the
 * read-ahead, the blocked first attempts and the orphans are dropped (they are read again, or
 * skipped), the first attempts a member still holds are `detached` (their settlement still counts;
 * a replay skips their seq while they are out) and retries keep their retry.
 */
import type { CloudEvent } from '../../core/event.js';
import { TributaryError } from '../../core/errors.js';
import type { FilterIndex } from '../../core/filter-index.js';
import type { DeadLetterInfo, EventFilter, LogMessage, SubscriptionHandle } from '../contracts.js';
import type { EventCache, LogEntry } from './cache.js';
import { encodeEvent, type EncodedEvent } from './event-row.js';
import { LazyMap } from './lazy-map.js';
import { MinHeap } from './heap.js';
import { groupKeyOf, KeyOrder, type GroupKey } from './ordering.js';
import { rejection, shuttingDown, warn, type Writer } from './writer.js';

/** Events read from the log per batch, when members have capacity. */
export const READ_BATCH = 256;
/**
 * Ordered mode: first attempts read and blocked behind their key, at most (plus what is left of
 * one read batch). Beyond that the subscription stops reading until a key is set free.
 */
export const MAX_HELD = 4 * READ_BATCH;
/** Events one pump examines before it yields the event loop. */
const PUMP_BUDGET = 1024;
const MAX_TIMER_DELAY = 2 ** 31 - 1;

export interface BrokerState {
  readonly id: number;
  readonly namespace: string;
  readonly name: string;
  /** Highest committed seq of this broker (0 when it has none). */
  lastSeq: number;
  readonly cache: EventCache;
  readonly subscriptions: Map<string, Subscription>;
  /** Subscriptions with members that share an index key (see Subscription.reroute). */
  readonly index: FilterIndex<Subscription>;
  /** Subscriptions with members and no shared index key: candidates for every event. */
  readonly unindexed: Set<Subscription>;
  /** Subscriptions with members that are not parked: a commit with new events pumps them. */
  readonly active: Set<Subscription>;
  /** Retention of this broker (ensureBroker); undefined: the backend's default. */
  retentionMs: number | undefined;
}

/** What a subscription needs from the event log that owns it. */
export interface SubscriptionStore {
  readonly writer: Writer;
  isClosed(): boolean;
  readEvents(brokerId: number, after: number, limit: number): LogEntry[];
  readEvent(brokerId: number, seq: number): CloudEvent | undefined;
  /** The copy of the event a redriven dead letter holds. */
  readDeadLetterEvent(sid: number, id: number): CloudEvent | undefined;
  /** The subscription's cursor may have moved: persist it with a coming commit. */
  markDirty(subscription: Subscription): void;
  /** The following run inside a transaction. */
  writeRetry(
    sid: number,
    seq: number,
    attempt: number,
    dueAt: number,
    note: string | undefined,
  ): void;
  /** Deletes the retries row (and, for a redriven dead letter, the copy it references). */
  deleteRetry(sid: number, seq: number): void;
  writeDeadLetter(
    sid: number,
    seq: number,
    event: EncodedEvent,
    info: DeadLetterInfo,
    at: number,
  ): void;
}

export interface StoredRetry {
  /** The log seq, or minus the dead-letter id for a redriven dead letter (see the top). */
  readonly seq: number;
  readonly attempt: number;
  readonly dueAt: number;
  /** What the nak wrote for this attempt. */
  readonly note: string | undefined;
  /** The event's log seq (a redriven dead letter: the one it was dead-lettered from). */
  readonly position: number;
  readonly key: GroupKey;
}

/** A unit (see the top) that this subscription has to hand over (or has handed over). */
interface Pending {
  readonly seq: number;
  readonly position: number;
  readonly attempt: number;
  readonly note: string | undefined;
  event: CloudEvent | undefined;
  /** Ordered mode's group; computed from the event when first needed. */
  key: GroupKey | undefined;
  /** It has a retries row: it does not hold the cursor back. */
  readonly retry: boolean;
  /** The delivery that currently owns it; undefined while it waits for a member. */
  holder: Delivery | undefined;
  state: 'open' | 'settling' | 'done';
}

/** One hand-over of a pending seq to a member: what a LogMessage settles. */
interface Delivery {
  readonly pending: Pending;
  readonly member: Member;
  status: 'open' | 'settling' | 'settled';
}

class Member {
  inFlight = 0;
  closed = false;
  readonly deliveries = new Set<Delivery>();

  constructor(
    readonly handler: (message: LogMessage) => void,
    readonly maxInFlight: number,
    public filter: EventFilter | undefined,
    readonly ordered: boolean,
  ) {}
}

const done: Promise<void> = Promise.resolve();

/**
 * The filter whose `indexKey` every member's filter carries (same attribute and value), or undefined
 * when a member has none or they differ: then the subscription is a candidate for every event.
 */
function sharedKeyFilter(members: readonly Member[]): EventFilter | undefined {
  let shared: EventFilter | undefined;
  for (const member of members) {
    const key = member.filter?.indexKey;
    if (
      key === undefined ||
      typeof key.value !== 'string' ||
      (key.attribute !== 'type' && key.attribute !== 'source')
    ) {
      return undefined;
    }
    const sharedKey = shared?.indexKey;
    if (sharedKey === undefined) shared = member.filter;
    else if (sharedKey.attribute !== key.attribute || sharedKey.value !== key.value)
      return undefined;
  }
  return shared;
}

function matches(filter: EventFilter | undefined, event: CloudEvent): boolean {
  if (filter === undefined) return true;
  try {
    return filter(event);
  } catch (error) {
    warn('a subscription filter threw (the event counts as not matching)', error);
    return false;
  }
}

export class Subscription {
  /** The cursor as last committed. */
  persistedCursor: number;
  /** A seek of this subscription is being committed: its cursor is not written meanwhile. */
  seeking = false;
  private readPos: number;
  private buffer: LogEntry[] = [];
  private bufferIndex = 0;
  /**
   * First-attempt seqs read, passed by the filter and not settled (handed out, blocked, or waiting
   * after their member closed), in seq order.
   */
  private readonly unsettled = new LazyMap<number, Pending>();
  /** First attempts a member held when the subscription was sought (see the top). */
  private readonly detached = new LazyMap<number, Pending>();
  /** The cursor of the last seek: detached seqs at or below it do not hold the cursor back. */
  private seekFloor = 0;
  /** Due redeliveries, waiting for a member or handed out. */
  private readonly retrying = new LazyMap<number, Pending>();
  /** Redeliveries not due yet; the heap may hold stale entries, this map is the truth. */
  private readonly scheduled = new LazyMap<number, StoredRetry>();
  private readonly heap = new MinHeap<StoredRetry>((retry) => retry.dueAt);
  /** Due redeliveries, orphans of closed members, units set free: handed over before new events. */
  private ready: Pending[] = [];
  private readyIndex = 0;
  /** Ordered mode only (see ordering.ts). */
  private order: KeyOrder | undefined;
  /** Ordered mode: units that wait until their key lets them go. */
  private readonly blocked = new LazyMap<number, Pending>();
  /** How many of `blocked` are first attempts (bounded by MAX_HELD). */
  private held = 0;
  /** Ordered mode: due retries that wait until the log is read up to their position. */
  private awaiting: Pending[] = [];
  private members: Member[] = [];
  private nextMember = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerDue = Number.POSITIVE_INFINITY;
  private pumping = false;
  private pumpAgain = false;
  private pumpScheduled = false;
  private budget = 0;
  private stopped = false;
  /** Nothing to hand out, and read up to the broker's last seq, implicitly (see the top). */
  private parked = false;

  constructor(
    private readonly store: SubscriptionStore,
    readonly broker: BrokerState,
    readonly sid: number,
    readonly name: string,
    cursor: number,
    retries: readonly StoredRetry[],
  ) {
    this.persistedCursor = cursor;
    this.readPos = cursor;
    for (const retry of retries) this.schedule(retry);
  }

  /** Every event with a seq up to this one is done (or has a retries row). */
  cursor(): number {
    let cursor = this.parked ? this.broker.lastSeq : this.readPos;
    const next = this.buffer[this.bufferIndex];
    if (next !== undefined) cursor = Math.min(cursor, next.seq - 1);
    for (const seq of this.unsettled.keys()) {
      cursor = Math.min(cursor, seq - 1);
      break;
    }
    for (const seq of this.detached.keys()) {
      if (seq > this.seekFloor) cursor = Math.min(cursor, seq - 1);
    }
    return cursor;
  }

  /**
   * First attempts a member still holds from before a seek at or below `cursor` (the cursor does
   * not count them: the backlog adds them).
   */
  heldAtOrBelow(cursor: number): number {
    let count = 0;
    for (const seq of this.detached.keys()) if (seq <= cursor) count++;
    return count;
  }

  isStopped(): boolean {
    return this.stopped;
  }

  isParked(): boolean {
    return this.parked;
  }

  /**
   * The event with `seq`, just appended (the broker's last seq already counts it), may pass this
   * subscription's filter. A parked subscription resumes reading just before it: every event it has
   * not read before that one was routed while it was parked and was no candidate. The event log
   * pumps the active subscriptions once the commit is done.
   */
  wake(seq: number): void {
    if (this.parked) this.unpark(seq - 1);
  }

  private unpark(readPos: number): void {
    this.parked = false;
    this.readPos = readPos;
    this.broker.active.add(this);
  }

  /** Nothing to hand out and nothing left to read: only routing wakes it up (see the top). */
  private idle(): boolean {
    return (
      !this.stopped &&
      this.members.length > 0 &&
      this.bufferIndex >= this.buffer.length &&
      this.readPos >= this.broker.lastSeq &&
      this.awaiting.length === 0 &&
      !this.hasReady()
    );
  }

  /**
   * Puts the subscription where its members and their filters say, after a member joined or left
   * or a filter changed: in the index under the key its members share (else unindexed), parked when
   * it has nothing to do, active otherwise. A parked subscription may stay parked: its implicit read
   * position is the broker's last seq, and the events up to it were routed under the old key.
   */
  private reroute(): void {
    if (this.stopped) return;
    const broker = this.broker;
    if (this.members.length === 0) {
      // No member, no filter to route by: it keeps its read position until a member joins.
      if (this.parked) {
        this.parked = false;
        this.readPos = broker.lastSeq;
      }
      broker.active.delete(this);
      broker.index.delete(this);
      broker.unindexed.delete(this);
      return;
    }
    const keyed = sharedKeyFilter(this.members);
    if (keyed === undefined) {
      broker.index.delete(this);
      broker.unindexed.add(this);
    } else {
      broker.unindexed.delete(this);
      broker.index.set(this, keyed);
    }
    if (this.parked) {
      if (this.hasReady()) this.schedulePump();
      return;
    }
    // Inside a pump (a handler closed a member or changed a filter): the pump parks it at the end.
    if (this.pumping) return;
    if (this.idle()) {
      this.park();
    } else {
      broker.active.add(this);
      this.schedulePump();
    }
  }

  private park(): void {
    this.parked = true;
    this.buffer = [];
    this.bufferIndex = 0;
    this.broker.active.delete(this);
  }

  join(
    handler: (message: LogMessage) => void,
    maxInFlight: number,
    filter: EventFilter | undefined,
    ordered: boolean,
  ): SubscriptionHandle {
    const member = new Member(handler, maxInFlight, filter, ordered);
    this.members.push(member);
    this.updateMode();
    this.armTimer();
    this.reroute();
    return {
      setFilter: (next) => {
        member.filter = next;
        // The new filter applies to the events read from now on (the same as without the index).
        if (!member.closed) this.reroute();
      },
      close: () => {
        this.leave(member);
        return done;
      },
    };
  }

  /** Stops handing over to the member; what it holds unsettled goes to the other members. */
  private leave(member: Member): void {
    if (member.closed) return;
    member.closed = true;
    const index = this.members.indexOf(member);
    if (index >= 0) this.members.splice(index, 1);
    if (this.nextMember >= this.members.length) this.nextMember = 0;
    for (const delivery of member.deliveries) {
      const pending = delivery.pending;
      if (delivery.status === 'open' && pending.state === 'open' && pending.holder === delivery) {
        this.ready.push(pending);
        this.setHolder(pending, undefined);
      }
    }
    if (this.members.length === 0) this.clearTimer();
    this.updateMode();
    this.reroute();
  }

  /** The subscription was deleted, or the log closed: nothing is handed over any more. */
  stop(): void {
    if (this.parked) this.readPos = this.broker.lastSeq;
    this.parked = false;
    this.stopped = true;
    this.broker.active.delete(this);
    this.broker.index.delete(this);
    this.broker.unindexed.delete(this);
    this.clearTimer();
    for (const member of this.members) member.closed = true;
    this.members = [];
    this.buffer = [];
    this.bufferIndex = 0;
    this.ready = [];
    this.readyIndex = 0;
    this.heap.clear();
    this.scheduled.clear();
    this.order = undefined;
    this.blocked.clear();
    this.held = 0;
    this.awaiting = [];
  }

  // ---- ordered mode ----

  /**
   * Ordered while a member asks for it (the stronger promise wins when members differ). Switching
   * on rebuilds the bookkeeping from the units there are; switching off lets every blocked unit go.
   * Without members the mode stays as it was: nothing is handed over anyway.
   */
  private updateMode(): void {
    if (this.members.length === 0 || this.stopped) return;
    const ordered = this.members.some((member) => member.ordered);
    if (ordered === (this.order !== undefined)) return;
    if (ordered) {
      this.rebuildOrder();
      return;
    }
    this.order = undefined;
    this.releaseBlocked();
  }

  /** Tracks every unit there is, counting those a member holds (after a mode switch or a seek). */
  private rebuildOrder(): void {
    const order = new KeyOrder();
    this.order = order;
    for (const units of [this.unsettled, this.detached, this.retrying]) {
      for (const pending of units.values()) {
        if (pending.state === 'done') continue;
        const key = this.keyOf(pending);
        order.track(pending.seq, pending.position, key);
        if (pending.holder !== undefined) order.out(key);
      }
    }
    for (const retry of this.scheduled.values()) order.track(retry.seq, retry.position, retry.key);
    // Whatever waited is judged again when it is next taken.
    this.releaseBlocked();
  }

  private releaseBlocked(): void {
    for (const pending of this.blocked.values()) this.ready.push(pending);
    this.blocked.clear();
    this.held = 0;
    for (const pending of this.awaiting) this.ready.push(pending);
    this.awaiting = [];
  }

  private keyOf(pending: Pending): GroupKey {
    // A first attempt always has its event; a retry got its key from its StoredRetry.
    pending.key ??= groupKeyOf(pending.event!);
    return pending.key;
  }

  /** Where reading stands: every event of the log up to here was taken from the read-ahead. */
  private frontier(): number {
    if (this.parked) return this.broker.lastSeq;
    const next = this.buffer[this.bufferIndex];
    return next === undefined ? this.readPos : next.seq - 1;
  }

  /**
   * Ordered mode: whether the unit may go out now; if not, it waits (in `blocked`, or in
   * `awaiting` for a retry whose position is not read yet: an event of its key read again below
   * it, after a seek or a crash, goes first).
   */
  private mayGo(pending: Pending): boolean {
    const order = this.order!;
    order.track(pending.seq, pending.position, this.keyOf(pending));
    if (
      pending.retry &&
      pending.seq > 0 &&
      pending.position > this.frontier() &&
      pending.position <= this.broker.lastSeq &&
      this.held < MAX_HELD
    ) {
      this.awaiting.push(pending);
      return false;
    }
    if (order.mayGo(pending.seq)) return true;
    this.blocked.set(pending.seq, pending);
    if (!pending.retry) this.held++;
    return false;
  }

  /** Moves the awaiting retries whose position is read (all of them when reading is stalled). */
  private releaseAwaiting(): void {
    const all = this.held >= MAX_HELD;
    const frontier = this.frontier();
    const waiting: Pending[] = [];
    for (const pending of this.awaiting) {
      if (pending.state !== 'open' || pending.holder !== undefined) continue;
      if (all || pending.position <= frontier) this.ready.push(pending);
      else waiting.push(pending);
    }
    this.awaiting = waiting;
  }

  /** A unit of `key` settled or came back: its key's next unit, if blocked, may go now. */
  private kick(key: GroupKey | undefined): void {
    if (this.order === undefined || key === undefined) return;
    const seq = this.order.next(key);
    if (seq === undefined) return;
    const pending = this.blocked.get(seq);
    if (pending === undefined) return;
    this.blocked.delete(seq);
    if (!pending.retry) this.held--;
    this.ready.push(pending);
    this.schedulePump();
  }

  /** Who holds the unit; keeps ordered mode's count of units out with members. */
  private setHolder(pending: Pending, holder: Delivery | undefined): void {
    const wasOut = pending.holder !== undefined;
    pending.holder = holder;
    if (this.order === undefined || wasOut === (holder !== undefined)) return;
    const key = this.keyOf(pending);
    if (holder !== undefined) {
      this.order.out(key);
    } else {
      this.order.back(key);
      this.kick(key);
    }
  }

  /** The unit is done for good: its key's next unit may go. */
  private finishUnit(pending: Pending): void {
    // Only ordered mode blocks units (switching it off releases them all).
    if (this.order === undefined) return;
    if (this.blocked.get(pending.seq) === pending) {
      this.blocked.delete(pending.seq);
      if (!pending.retry) this.held--;
    }
    this.kick(this.order.untrack(pending.seq));
  }

  /** A first attempt is no longer unsettled. */
  private forgetFirst(pending: Pending): void {
    if (this.unsettled.get(pending.seq) === pending) this.unsettled.delete(pending.seq);
    else if (this.detached.get(pending.seq) === pending) this.detached.delete(pending.seq);
  }

  // ---- seek and redrive ----

  /**
   * The cursor was moved to `cursor` (committed): reads from there again. First attempts no member
   * holds are dropped (read again, or skipped); those a member holds stay out (`detached`); retries
   * keep their retry. Ordered mode starts over from the units that remain.
   */
  seekTo(cursor: number): void {
    this.seeking = false;
    if (this.stopped) return;
    this.persistedCursor = cursor;
    this.seekFloor = cursor;
    for (const pending of this.unsettled.values()) {
      if (pending.holder !== undefined) this.detached.set(pending.seq, pending);
      else pending.state = 'done';
    }
    this.unsettled.clear();
    for (const pending of this.blocked.values()) {
      if (pending.retry) this.ready.push(pending);
    }
    this.blocked.clear();
    this.held = 0;
    this.buffer = [];
    this.bufferIndex = 0;
    this.readPos = cursor;
    this.parked = false;
    if (this.order !== undefined) this.rebuildOrder();
    if (this.members.length > 0) {
      this.broker.active.add(this);
      this.schedulePump();
    }
    if (this.cursor() > this.persistedCursor) this.store.markDirty(this);
  }

  /** Redriven dead letters (committed): handed over like due retries. */
  redrive(retries: readonly StoredRetry[]): void {
    if (this.stopped) return;
    for (const retry of retries) this.schedule(retry);
  }

  // ---- hand-over ----

  schedulePump(): void {
    if (this.pumpScheduled || this.stopped) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Hands events to members with free capacity: due retries first, then new events. */
  pump(): void {
    if (this.stopped || this.members.length === 0 || this.store.isClosed()) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    // Something gave it work (a due retry, an orphan): it reads on from the implicit position.
    if (this.parked) this.unpark(this.broker.lastSeq);
    this.pumping = true;
    this.budget = PUMP_BUDGET;
    try {
      do {
        this.pumpAgain = false;
        for (;;) {
          const member = this.memberWithCapacity();
          if (member === undefined) break;
          const pending = this.nextFor(member);
          if (pending === undefined) break;
          this.handOver(member, pending);
        }
      } while (this.pumpAgain && this.budget > 0);
    } finally {
      this.pumping = false;
    }
    if (this.budget <= 0) this.schedulePump();
    else if (this.idle()) this.park();
    if (this.cursor() > this.persistedCursor) this.store.markDirty(this);
  }

  /** Round robin over the members that have room. */
  private memberWithCapacity(): Member | undefined {
    const count = this.members.length;
    for (let i = 0; i < count; i++) {
      const index = (this.nextMember + i) % count;
      const member = this.members[index]!;
      if (member.inFlight < member.maxInFlight) {
        this.nextMember = (index + 1) % count;
        return member;
      }
    }
    return undefined;
  }

  /**
   * The next pending unit for `member`, settling at once those its filter rejects (in ordered mode
   * before they can hold their key), and setting aside those their key holds back.
   */
  private nextFor(member: Member): Pending | undefined {
    while (this.budget > 0) {
      this.budget--;
      if (this.awaiting.length > 0) this.releaseAwaiting();
      let pending = this.takeReady();
      const fresh = pending === undefined;
      pending ??= this.takeNew();
      if (pending === undefined) {
        if (this.awaiting.length > 0 && this.frontier() >= this.broker.lastSeq) continue;
        return undefined;
      }
      if (pending.event === undefined) {
        pending.event = this.loadEvent(pending);
        if (pending.event === undefined) {
          // The event is gone (its broker was deleted under us): nothing to deliver.
          this.finishUndelivered(pending);
          continue;
        }
      }
      if (!matches(member.filter, pending.event)) {
        this.finishUndelivered(pending);
        continue;
      }
      // Read in seq order, so `unsettled` stays in seq order (see cursor()).
      if (fresh) this.unsettled.set(pending.seq, pending);
      if (this.order !== undefined && !this.mayGo(pending)) continue;
      return pending;
    }
    return undefined;
  }

  private loadEvent(pending: Pending): CloudEvent | undefined {
    if (pending.seq < 0) return this.store.readDeadLetterEvent(this.sid, -pending.seq);
    return this.broker.cache.get(pending.seq) ?? this.store.readEvent(this.broker.id, pending.seq);
  }

  /** Whether a due retry or an orphan waits for a member (drops the stale entries on the way). */
  private hasReady(): boolean {
    while (this.readyIndex < this.ready.length) {
      const pending = this.ready[this.readyIndex]!;
      if (pending.state === 'open' && pending.holder === undefined) return true;
      this.readyIndex++;
    }
    if (this.ready.length > 0) {
      this.ready = [];
      this.readyIndex = 0;
    }
    return false;
  }

  private takeReady(): Pending | undefined {
    while (this.readyIndex < this.ready.length) {
      const pending = this.ready[this.readyIndex]!;
      this.readyIndex++;
      if (pending.state === 'open' && pending.holder === undefined) {
        if (this.readyIndex > 1024 && this.readyIndex * 2 > this.ready.length) {
          this.ready = this.ready.slice(this.readyIndex);
          this.readyIndex = 0;
        }
        return pending;
      }
    }
    if (this.ready.length > 0) {
      this.ready = [];
      this.readyIndex = 0;
    }
    return undefined;
  }

  private takeNew(): Pending | undefined {
    for (;;) {
      if (this.bufferIndex >= this.buffer.length && (this.held >= MAX_HELD || !this.fill())) {
        return undefined;
      }
      const entry = this.buffer[this.bufferIndex]!;
      this.bufferIndex++;
      const { seq } = entry;
      // A seq with a retries row (left by an earlier run) is redelivered by its retry; one a member
      // still holds from before a seek is not handed over twice.
      if (this.scheduled.has(seq) || this.retrying.has(seq) || this.detached.has(seq)) continue;
      const pending: Pending = {
        seq,
        position: seq,
        attempt: 1,
        note: undefined,
        event: entry.event,
        key: undefined,
        retry: false,
        holder: undefined,
        state: 'open',
      };
      return pending;
    }
  }

  /** Reads the next batch: from the broker's shared cache when it has it, else from SQLite. */
  private fill(): boolean {
    this.buffer = [];
    this.bufferIndex = 0;
    const broker = this.broker;
    if (this.readPos >= broker.lastSeq) return false;
    const entries =
      broker.cache.readAfter(this.readPos, READ_BATCH) ??
      this.store.readEvents(broker.id, this.readPos, READ_BATCH);
    const last = entries[entries.length - 1];
    if (last === undefined) {
      this.readPos = broker.lastSeq;
      return false;
    }
    this.buffer = entries;
    this.readPos = last.seq;
    return true;
  }

  private handOver(member: Member, pending: Pending): void {
    const delivery: Delivery = { pending, member, status: 'open' };
    this.setHolder(pending, delivery);
    member.inFlight++;
    member.deliveries.add(delivery);
    const message: LogMessage = Object.freeze({
      event: pending.event!,
      position: String(pending.position),
      attempt: pending.attempt,
      note: pending.note,
      ack: () => this.ack(delivery),
      nak: (delayMs: number, note?: string) => this.nak(delivery, delayMs, note),
      deadLetter: (info: DeadLetterInfo) => this.deadLetter(delivery, info),
    });
    try {
      member.handler(message);
    } catch (error) {
      warn('a subscription handler threw (its message stays unsettled)', error);
    }
  }

  /** Done without a hand-over: filtered out, or its event is gone. */
  private finishUndelivered(pending: Pending): void {
    pending.state = 'done';
    this.finishUnit(pending);
    if (!pending.retry) {
      this.forgetFirst(pending);
      return;
    }
    this.retrying.delete(pending.seq);
    const { sid } = this;
    const { seq } = pending;
    this.store.writer
      .enqueue(() => this.store.deleteRetry(sid, seq))
      .catch((error: unknown) => warn('could not delete a retry', error));
  }

  // ---- settlement ----

  /** Frees the member's capacity; the delivery is over. */
  private release(delivery: Delivery): void {
    if (delivery.status === 'settled') return;
    delivery.status = 'settled';
    const { pending, member } = delivery;
    if (pending.holder === delivery) this.setHolder(pending, undefined);
    member.deliveries.delete(delivery);
    if (!member.closed) {
      member.inFlight--;
      // A parked subscription has nothing to hand to the freed slot.
      if (!this.parked) this.schedulePump();
    }
  }

  /**
   * Common checks: undefined when the call settles the pending seq, else the (resolved or
   * rejected) promise to return: a second settlement, or one for a seq another delivery settled.
   */
  private refuse(delivery: Delivery): Promise<void> | undefined {
    if (this.store.isClosed()) return Promise.reject(shuttingDown());
    if (delivery.status !== 'open') return done;
    if (this.stopped || delivery.pending.state !== 'open') {
      this.release(delivery);
      return done;
    }
    return undefined;
  }

  private ack(delivery: Delivery): Promise<void> {
    const refused = this.refuse(delivery);
    if (refused !== undefined) return refused;
    const pending = delivery.pending;
    this.release(delivery);
    pending.state = 'done';
    this.finishUnit(pending);
    if (!pending.retry) {
      this.forgetFirst(pending);
      this.store.markDirty(this);
      return done;
    }
    this.retrying.delete(pending.seq);
    const { sid } = this;
    const { seq } = pending;
    return this.store.writer.enqueue(() => this.store.deleteRetry(sid, seq));
  }

  private nak(delivery: Delivery, delayMs: number, note: string | undefined): Promise<void> {
    if (note !== undefined && typeof note !== 'string') {
      return rejection(new TributaryError('BAD_REQUEST', 'a nak note must be a string'));
    }
    const refused = this.refuse(delivery);
    if (refused !== undefined) return refused;
    const delay = Number.isFinite(delayMs) && delayMs > 0 ? delayMs : 0;
    const pending = delivery.pending;
    const retry: StoredRetry = {
      seq: pending.seq,
      attempt: pending.attempt + 1,
      dueAt: Date.now() + delay,
      note,
      position: pending.position,
      key: this.keyOf(pending),
    };
    const { sid } = this;
    return this.settleDurably(
      delivery,
      () => this.store.writeRetry(sid, retry.seq, retry.attempt, retry.dueAt, retry.note),
      // The unit stays tracked (it holds its key) while it waits for its retry.
      () => this.schedule(retry),
    );
  }

  private deadLetter(delivery: Delivery, info: DeadLetterInfo): Promise<void> {
    const refused = this.refuse(delivery);
    if (refused !== undefined) return refused;
    const pending = delivery.pending;
    let encoded: EncodedEvent;
    try {
      encoded = encodeEvent(pending.event!);
      if (typeof info.reason !== 'string' || !Number.isFinite(info.attempts)) {
        throw new TributaryError('BAD_REQUEST', 'a dead letter needs a reason and attempts');
      }
    } catch (error) {
      return rejection(error);
    }
    const at = Date.now();
    const { sid } = this;
    const { seq, retry, position } = pending;
    return this.settleDurably(
      delivery,
      () => {
        this.store.writeDeadLetter(sid, position, encoded, info, at);
        if (retry) this.store.deleteRetry(sid, seq);
      },
      () => this.finishUnit(pending),
    );
  }

  /** A settlement that is done only once `write` committed (nak, deadLetter). */
  private settleDurably(
    delivery: Delivery,
    write: () => void,
    afterCommit: () => void,
  ): Promise<void> {
    const pending = delivery.pending;
    delivery.status = 'settling';
    pending.state = 'settling';
    return this.store.writer
      .enqueue(write, () => {
        this.release(delivery);
        pending.state = 'done';
        if (this.stopped) return;
        if (pending.retry) this.retrying.delete(pending.seq);
        else this.forgetFirst(pending);
        afterCommit();
        this.store.markDirty(this);
      })
      .catch((error: unknown) => {
        // Not settled: the message can be settled again.
        delivery.status = 'open';
        if (pending.state === 'settling') pending.state = 'open';
        if (delivery.member.closed && pending.holder === delivery && !this.stopped) {
          this.ready.push(pending);
          this.setHolder(pending, undefined);
          this.schedulePump();
        }
        throw error;
      });
  }

  // ---- retries ----

  private schedule(retry: StoredRetry): void {
    this.scheduled.set(retry.seq, retry);
    this.heap.push(retry);
    this.order?.track(retry.seq, retry.position, retry.key);
    this.armTimer();
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = Number.POSITIVE_INFINITY;
  }

  /** One timer per subscription, for the earliest due retry, while it has members. */
  private armTimer(): void {
    let top = this.heap.peek();
    while (top !== undefined && this.scheduled.get(top.seq) !== top) {
      this.heap.pop();
      top = this.heap.peek();
    }
    if (top === undefined || this.members.length === 0 || this.stopped) {
      this.clearTimer();
      return;
    }
    if (this.timer !== undefined && this.timerDue <= top.dueAt) return;
    this.clearTimer();
    this.timerDue = top.dueAt;
    const delay = Math.min(Math.max(0, top.dueAt - Date.now()), MAX_TIMER_DELAY);
    this.timer = setTimeout(() => this.onTimer(), delay);
    this.timer.unref();
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerDue = Number.POSITIVE_INFINITY;
    if (this.stopped) return;
    const now = Date.now();
    for (
      let top = this.heap.peek();
      top !== undefined && top.dueAt <= now;
      top = this.heap.peek()
    ) {
      this.heap.pop();
      if (this.scheduled.get(top.seq) !== top) continue;
      this.scheduled.delete(top.seq);
      const pending: Pending = {
        seq: top.seq,
        position: top.position,
        attempt: top.attempt,
        note: top.note,
        event: undefined,
        key: top.key,
        retry: true,
        holder: undefined,
        state: 'open',
      };
      this.retrying.set(top.seq, pending);
      this.ready.push(pending);
    }
    this.armTimer();
    this.pump();
  }
}
