/**
 * The two backend contracts (DESIGN.md section 4). The embedded (SQLite), NATS JetStream and Kafka
 * backends implement them, and all of them pass the suites in test/conformance/. Nothing here
 * exposes a client library's types.
 */
import type { TributaryError } from '../core/errors.js';
import type { CloudEvent } from '../core/event.js';
import type { CompiledFilter } from '../core/filters.js';
import type { Collection, Resource, ResourceKey } from '../core/resources/types.js';

/** Identifies one broker's event log. */
export interface BrokerRef {
  readonly namespace: string;
  readonly name: string;
}

/** Where a subscription that does not exist yet starts reading. */
export type StartPosition =
  | { readonly from: 'latest' }
  | { readonly from: 'earliest' }
  | { readonly from: 'time'; readonly time: Date };

/**
 * Which events a subscription wants. `indexKey`, when present, is an exact `type` or `source` that
 * every wanted event has: a backend may use it to skip, without calling the filter, the events that
 * lack it (so matching does not cost one call per subscription per event).
 */
export type EventFilter = CompiledFilter;

export interface SubscriptionOptions {
  /** Stable id of the subscription (a trigger's uid). Members with the same id share its work. */
  readonly id: string;
  readonly broker: BrokerRef;
  /** Used only when the subscription does not exist yet; an existing one resumes where it was. */
  readonly start: StartPosition;
  /** At most this many messages are handed to this member and not yet settled. */
  readonly maxInFlight: number;
  /**
   * Only events for which the filter returns true are handed over; the others count as done for
   * this subscription. Absent: every event. Replace it with `SubscriptionHandle.setFilter`.
   */
  readonly filter?: EventFilter;
  /**
   * Ordered delivery: at most one event at a time per `partitionkey` extension (the events
   * without one form one group of their own), in log order, retries included: the next event of a
   * key is handed over only once the one before it is acked or dead-lettered, also across a
   * restart. Events of different keys still go out concurrently, up to maxInFlight. Absent or
   * false: unordered.
   */
  readonly ordered?: boolean;
  /**
   * Told when this member left the subscription for good on a backend error the backend does not
   * get over by itself (Kafka: a consumer kafkajs does not restart). Its handle hands out nothing
   * more: close it and subscribe again.
   */
  readonly onLost?: (error: TributaryError) => void;
}

export interface BrokerLogOptions {
  /**
   * How long an event is kept once every subscription is done with it (for replay). Absent: the
   * backend's default. Given again by a later ensureBroker, it replaces the earlier value.
   */
  readonly retentionMs?: number;
}

export interface DeadLetterInfo {
  /** Why the event could not be delivered, for a human. */
  readonly reason: string;
  /** How many delivery attempts were made. */
  readonly attempts: number;
  /** The URL of the destination that failed. */
  readonly destination?: string;
  /** HTTP status of the last attempt, when there was a response. */
  readonly lastStatus?: number;
}

export interface DeadLetterRecord extends DeadLetterInfo {
  /** Unique within the subscription. */
  readonly id: string;
  readonly subscriptionId: string;
  readonly event: CloudEvent;
  readonly deadLetteredAt: Date;
}

/** One event handed to a subscription member. Settle it exactly once: ack, nak or deadLetter. */
export interface LogMessage {
  readonly event: CloudEvent;
  /** Position in the broker's log: opaque, unique within the broker. */
  readonly position: string;
  /** 1 on the first hand-over, then one more for each nak. */
  readonly attempt: number;
  /** What the last nak wrote for the next attempt; undefined on a first hand-over. */
  readonly note: string | undefined;
  /** Done: never handed to this subscription again. */
  ack(): Promise<void>;
  /**
   * Hand the event over again (to any member) after `delayMs`, with `attempt + 1` and `note`
   * (kept as durably as the retry itself, so a dispatcher can resume where it was, e.g. in the
   * middle of trying a dead-letter sink).
   */
  nak(delayMs: number, note?: string): Promise<void>;
  /** Done for delivery, but kept: listed by `listDeadLetters` until removed. */
  deadLetter(info: DeadLetterInfo): Promise<void>;
}

export interface SubscriptionHandle {
  setFilter(filter: EventFilter | undefined): void;
  /**
   * Stops handing out messages to this member. Messages already handed out can still be settled
   * until the EventLog closes; those never settled stay pending and are handed over again later
   * (to another member, or after a restart).
   */
  close(): Promise<void>;
}

export interface EventLog {
  /** Creates the broker's log if it does not exist, and applies `options`. Idempotent. */
  ensureBroker(broker: BrokerRef, options?: BrokerLogOptions): Promise<void>;
  /** Deletes the broker's log, its events and its subscriptions. Idempotent. */
  deleteBroker(broker: BrokerRef): Promise<void>;
  /**
   * Appends events to the broker's log, in order. Resolves only once every one of them is durable;
   * rejects (and stores none of them) otherwise. Rejects with NOT_FOUND when the broker has no log.
   */
  append(broker: BrokerRef, events: readonly CloudEvent[]): Promise<void>;
  /**
   * Creates the subscription at `start` if it does not exist. Idempotent. Once this resolves, every
   * event appended afterwards will be seen by the subscription. Rejects with NOT_FOUND when the
   * broker has no log.
   */
  ensureSubscription(options: Pick<SubscriptionOptions, 'id' | 'broker' | 'start'>): Promise<void>;
  /** Joins the subscription as a member (creating it as ensureSubscription would). */
  subscribe(
    options: SubscriptionOptions,
    handler: (message: LogMessage) => void,
  ): Promise<SubscriptionHandle>;
  /** Deletes the subscription, its position, its pending retries and its dead letters. Idempotent. */
  deleteSubscription(id: string, broker: BrokerRef): Promise<void>;
  /**
   * Moves an existing subscription (replay): every event from `position` on is handed over again,
   * subject to the filter. Events pending a retry keep their retry. Rejects NOT_FOUND for an
   * unknown subscription or broker.
   */
  seek(id: string, broker: BrokerRef, position: StartPosition): Promise<void>;
  /** The subscription's dead letters, oldest first: at most `limit` (default 100, at most 1000), after the id `after`. */
  listDeadLetters(
    id: string,
    broker: BrokerRef,
    page?: { readonly after?: string; readonly limit?: number },
  ): Promise<DeadLetterRecord[]>;
  countDeadLetters(id: string, broker: BrokerRef): Promise<number>;
  /**
   * The subscription's backlog: how many events of the broker it has not finished yet. That is
   * the events appended after its position and not handed out yet, those handed out and not
   * settled, and those waiting for a retry (a redriven dead letter included). Dead letters kept
   * are not backlog (see countDeadLetters). Undefined for an unknown subscription or broker.
   *
   * Cheap enough to be read at every metrics scrape, per subscription, so it is not always exact.
   * It never misses work that is left; it may count more than is left, as follows:
   * - embedded: the events of the broker after the subscription's cursor (in memory while a
   *   member is joined: the cursor stops below the oldest first attempt not settled), plus the
   *   retries stored at or below it. Events after the cursor that are already done (settled out
   *   of order, or rejected by the filter) count until the cursor passes them. Counting costs an
   *   index range scan over the backlog itself.
   * - NATS: the pending and ack-pending messages of the subscription's consumer on the broker's
   *   stream, plus those of its consumer on the retry stream. Events the filter rejects count
   *   until a member passes over them; a nak counts twice for the moment between publishing the
   *   retry record and acking the original.
   * - Kafka: over every partition of the broker's topic and of its redrive topic, the end offset
   *   minus the group's committed offset (retries keep the offset uncommitted, so they are in
   *   it). Commits trail settlements a little, and the redrive topic is shared by the broker's
   *   subscriptions, so redrives of other subscriptions count until passed over.
   */
  backlog(id: string, broker: BrokerRef): Promise<number | undefined>;
  /**
   * Hands dead letters (all of them, or those with the given ids) over again as first attempts
   * (attempt 1, no note) and removes them from the list, in one durable step; resolves with how
   * many. Works also when retention has removed the event from the log.
   */
  redriveDeadLetters(id: string, broker: BrokerRef, ids?: readonly string[]): Promise<number>;
  /** False while the backend cannot store events (the ingress answers 503). */
  isHealthy(): boolean;
  /** Flushes pending writes and releases resources. Members must be closed first. */
  close(): Promise<void>;
}

export interface StoredResource {
  readonly key: ResourceKey;
  readonly resource: Resource;
  /** Changes on every write of this key; compare-and-set uses it. */
  readonly revision: number;
}

export type ResourceChange =
  | { readonly type: 'put'; readonly stored: StoredResource }
  | { readonly type: 'delete'; readonly key: ResourceKey };

export interface ResourceWatch {
  /** Every resource at the moment the watch started. */
  readonly snapshot: StoredResource[];
  stop(): void;
}

/** The control-plane store: a versioned key-value map with compare-and-set and a change feed. */
export interface ResourceStore {
  get(key: ResourceKey): Promise<StoredResource | undefined>;
  /** Sorted by namespace, then name. */
  list(collection: Collection, namespace?: string): Promise<StoredResource[]>;
  /** Rejects with CONFLICT when the key exists. */
  create(key: ResourceKey, resource: Resource): Promise<StoredResource>;
  /** Rejects with CONFLICT when the key is absent or its revision is not `expectedRevision`. */
  update(key: ResourceKey, resource: Resource, expectedRevision: number): Promise<StoredResource>;
  /** Resolves false when the key was absent; CONFLICT when `expectedRevision` is given and stale. */
  delete(key: ResourceKey, expectedRevision?: number): Promise<boolean>;
  /** The current contents, then every later change in order, with no gap in between. */
  watch(listener: (change: ResourceChange) => void): Promise<ResourceWatch>;
  close(): Promise<void>;
}

/**
 * Webhook deliveries already stored, shared by every replica and kept across restarts, so that a
 * redelivery (same source, same delivery id) is not stored twice (DESIGN.md section 5).
 */
export interface DeliveryLedger {
  /** True when `key` was added and has not expired. */
  has(key: string): Promise<boolean>;
  /** Remembers `key` for `ttlMs` (from now); adding it again extends it. */
  add(key: string, ttlMs: number): Promise<void>;
}

/** What a backend factory returns; the composition root picks the factory. */
export interface Backend {
  readonly name: string;
  readonly eventLog: EventLog;
  readonly resources: ResourceStore;
  readonly ledger: DeliveryLedger;
  close(): Promise<void>;
}
