/**
 * The event type catalog: which event types each broker stored and each source emitted, with a
 * count and the time last seen, in the shape of Knative's EventType (eventing.knative.dev/v1beta2)
 * so that what Knative's `eventtype-auto-create` gives on Kubernetes is here without it.
 *
 * - Fed by the ObserverHub: counting on the event path is one Map update per event and scope; no
 *   I/O, no hashing.
 * - Kept in the ResourceStore's internal `eventtypes` collection, so counts survive restarts and are
 *   shared by replicas: every few seconds (and on shutdown) each replica adds what it counted since
 *   its last flush to the stored record with compare-and-set (create on first sight, retry on
 *   CONFLICT). A failed flush keeps its counts for the next one.
 * - Bounded: at most `maxPerNamespace` distinct (scope, type) records per namespace (the limit is
 *   checked against what this replica knows is stored, so replicas racing may pass it slightly);
 *   events of types beyond it are not catalogued, and a warning says so once per namespace.
 */
import { createHash } from 'node:crypto';
import type { ResourceStore, StoredResource } from '../backends/contracts.js';
import { isTributaryError } from '../core/errors.js';
import { defaultApiVersion } from '../core/resources/manifest.js';
import type { Collection, Resource, ResourceKey } from '../core/resources/types.js';
import type { EventsStored, MeshObserver } from './observer.js';

/** The internal collection of the catalog (not served by the management API). */
export const EVENT_TYPES_COLLECTION = 'eventtypes' satisfies Collection;
export const EVENT_TYPE_API_VERSION = 'eventing.knative.dev/v1beta2';
export const DEFAULT_MAX_EVENT_TYPES = 1000;

/** What an EventType is counted for: a broker that stored the events or a source that emitted them. */
export interface EventTypeReference {
  apiVersion?: string;
  /** `Broker`, or the source's kind (`GitHubSource`...). */
  kind: string;
  name: string;
}

export interface EventTypeSpec {
  type: string;
  /** The events' CloudEvents `source`, while every event counted had the same one. */
  source?: string;
  reference: EventTypeReference;
}

export interface EventTypeStatus {
  count: number;
  /** RFC 3339. */
  lastSeen: string;
}

export type EventType = Resource<EventTypeSpec, EventTypeStatus>;

export interface EventTypeCatalogOptions {
  readonly store: ResourceStore;
  /** How often counts are written to the store, in ms. */
  readonly flushIntervalMs: number;
  readonly maxPerNamespace?: number;
  readonly onError: (error: unknown) => void;
  /** Told once per namespace when its limit first keeps a type out. */
  readonly onLimit?: (namespace: string, limit: number) => void;
}

/** Counted since the last flush, for one (namespace, scope, type). */
interface Delta {
  readonly namespace: string;
  readonly type: string;
  readonly reference: EventTypeReference;
  count: number;
  lastSeen: number;
  /** The one CloudEvents source seen, or null once two differed. */
  source: string | null;
}

const BROKER_REFERENCE_VERSION = 'eventing.knative.dev/v1';
const CAS_ATTEMPTS = 10;
const WRITE_CONCURRENCY = 8;

/** The record name of a (scope, type): a hash, since types are free text (DNS-1123-safe, short). */
export function eventTypeName(reference: EventTypeReference, type: string): string {
  const digest = createHash('sha256')
    .update(`${reference.kind}\u0000${reference.name}\u0000${type}`)
    .digest('hex');
  return `et-${digest.slice(0, 32)}`;
}

const deltaKey = (namespace: string, kind: string, name: string, type: string): string =>
  `${namespace}\u0000${kind}\u0000${name}\u0000${type}`;

/** What a record says, with the counts not yet flushed added: the view a reader of this replica gets. */
function merged(stored: EventType | undefined, delta: Delta | undefined, name: string): EventType {
  const base = stored;
  const count = (base?.status?.count ?? 0) + (delta?.count ?? 0);
  const lastSeenMs = Math.max(
    base?.status?.lastSeen === undefined ? 0 : Date.parse(base.status.lastSeen) || 0,
    delta?.lastSeen ?? 0,
  );
  // A source stays only while every event counted (stored and new) had that one.
  let source: string | undefined;
  if (base === undefined) source = delta?.source ?? undefined;
  else if (delta === undefined) source = base.spec.source;
  else
    source =
      base.spec.source !== undefined && base.spec.source === delta.source
        ? delta.source
        : undefined;
  const spec = base?.spec ?? { type: delta!.type, reference: delta!.reference };
  return {
    apiVersion: EVENT_TYPE_API_VERSION,
    kind: 'EventType',
    metadata: { name, namespace: base?.metadata.namespace ?? delta!.namespace },
    spec: {
      type: spec.type,
      ...(source === undefined ? {} : { source }),
      reference: spec.reference,
    },
    status: { count, lastSeen: new Date(lastSeenMs).toISOString() },
  };
}

export class EventTypeCatalog implements MeshObserver {
  private pending = new Map<string, Delta>();
  /** Pending entries per namespace (with `known`, what the limit counts). */
  private pendingIn = new Map<string, number>();
  /** Record names known to be stored, per namespace (for the limit). */
  private readonly known = new Map<string, Set<string>>();
  /** Namespaces whose limit was reported. */
  private readonly limited = new Set<string>();
  private readonly max: number;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: EventTypeCatalogOptions) {
    this.max = options.maxPerNamespace ?? DEFAULT_MAX_EVENT_TYPES;
  }

  /** Learns what is stored (for the limit) and starts flushing every interval. */
  async start(): Promise<void> {
    for (const stored of await this.options.store.list(EVENT_TYPES_COLLECTION)) {
      this.knownIn(stored.key.namespace).add(stored.key.name);
    }
    this.timer = setInterval(() => void this.flush(), this.options.flushIntervalMs);
    this.timer.unref();
  }

  /** Stops the timer and writes what is left. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.flush();
  }

  eventsStored(stored: EventsStored): void {
    const now = Date.now();
    const { namespace, broker, origin } = stored;
    const sourceReference =
      origin.kind === 'source'
        ? {
            kind: origin.sourceKind,
            name: origin.source,
            apiVersion: defaultApiVersion(origin.sourceKind),
          }
        : undefined;
    for (const event of stored.events) {
      const type = String(event.attributes.type);
      const source = String(event.attributes.source);
      if (broker !== undefined) {
        this.count(namespace, 'Broker', broker, BROKER_REFERENCE_VERSION, type, source, now);
      }
      if (sourceReference !== undefined) {
        const { kind, name, apiVersion } = sourceReference;
        this.count(namespace, kind, name, apiVersion, type, source, now);
      }
    }
  }

  private count(
    namespace: string,
    kind: string,
    name: string,
    apiVersion: string | undefined,
    type: string,
    source: string,
    now: number,
  ): void {
    const key = deltaKey(namespace, kind, name, type);
    const delta = this.pending.get(key);
    if (delta !== undefined) {
      delta.count++;
      delta.lastSeen = now;
      if (delta.source !== source) delta.source = null;
      return;
    }
    // A new pending entry: keep the namespace within its limit (stored plus pending ones).
    const reference: EventTypeReference = {
      ...(apiVersion === undefined ? {} : { apiVersion }),
      kind,
      name,
    };
    const pendingHere = this.pendingIn.get(namespace) ?? 0;
    if ((this.known.get(namespace)?.size ?? 0) + pendingHere >= this.max) {
      // At the limit only a record already stored may still count (hashing only here).
      if (this.known.get(namespace)?.has(eventTypeName(reference, type)) !== true) {
        this.reportLimit(namespace);
        return;
      }
    }
    this.pending.set(key, { namespace, type, reference, count: 1, lastSeen: now, source });
    this.pendingIn.set(namespace, pendingHere + 1);
  }

  private reportLimit(namespace: string): void {
    if (this.limited.has(namespace)) return;
    this.limited.add(namespace);
    this.options.onLimit?.(namespace, this.max);
  }

  private knownIn(namespace: string): Set<string> {
    let set = this.known.get(namespace);
    if (set === undefined) this.known.set(namespace, (set = new Set()));
    return set;
  }

  /**
   * The catalog of `namespace` as this replica sees it: the stored records plus its own counts not
   * yet flushed. Sorted by reference kind, reference name, then type.
   */
  async list(namespace: string): Promise<EventType[]> {
    const stored = await this.options.store.list(EVENT_TYPES_COLLECTION, namespace);
    const byName = new Map<string, EventType>();
    for (const s of stored) byName.set(s.key.name, s.resource as unknown as EventType);
    const deltas = new Map<string, Delta>();
    for (const delta of this.pending.values()) {
      if (delta.namespace === namespace) {
        deltas.set(eventTypeName(delta.reference, delta.type), delta);
      }
    }
    const names = new Set([...byName.keys(), ...deltas.keys()]);
    const items = [...names].map((name) => merged(byName.get(name), deltas.get(name), name));
    return items.sort(
      (a, b) =>
        compare(a.spec.reference.kind, b.spec.reference.kind) ||
        compare(a.spec.reference.name, b.spec.reference.name) ||
        compare(a.spec.type, b.spec.type),
    );
  }

  /** Writes the counts gathered since the last flush; one flush at a time. */
  flush(): Promise<void> {
    if (this.flushing !== undefined) {
      // After the running one, once more for what arrived meanwhile (shutdown wants everything).
      return this.flushing.then(() => (this.stopped ? this.flush() : undefined));
    }
    if (this.pending.size === 0) return Promise.resolve();
    const batch = [...this.pending.values()];
    this.pending = new Map();
    this.pendingIn = new Map();
    this.flushing = this.writeAll(batch).finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async writeAll(batch: Delta[]): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < batch.length) {
        const delta = batch[next++]!;
        try {
          await this.write(delta);
        } catch (error) {
          this.options.onError(error);
          if (!this.stopped) this.restore(delta);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(WRITE_CONCURRENCY, batch.length) }, worker));
  }

  /** Puts back counts a failed write did not store, for the next flush. */
  private restore(delta: Delta): void {
    const key = deltaKey(delta.namespace, delta.reference.kind, delta.reference.name, delta.type);
    const later = this.pending.get(key);
    if (later === undefined) {
      this.pending.set(key, delta);
      this.pendingIn.set(delta.namespace, (this.pendingIn.get(delta.namespace) ?? 0) + 1);
      return;
    }
    later.count += delta.count;
    later.lastSeen = Math.max(later.lastSeen, delta.lastSeen);
    if (later.source !== delta.source) later.source = null;
  }

  /** Adds one delta to its record with compare-and-set. */
  private async write(delta: Delta): Promise<void> {
    const name = eventTypeName(delta.reference, delta.type);
    const key: ResourceKey = {
      collection: EVENT_TYPES_COLLECTION,
      namespace: delta.namespace,
      name,
    };
    const known = this.knownIn(delta.namespace);
    for (let attempt = 1; ; attempt++) {
      const existing: StoredResource | undefined = await this.options.store.get(key);
      try {
        if (existing === undefined) {
          if (known.size >= this.max && !known.has(name)) {
            this.reportLimit(delta.namespace);
            return;
          }
          await this.options.store.create(key, asResource(merged(undefined, delta, name)));
        } else {
          const next = merged(existing.resource as unknown as EventType, delta, name);
          await this.options.store.update(key, asResource(next), existing.revision);
        }
        known.add(name);
        return;
      } catch (error) {
        const conflict = isTributaryError(error) && error.code === 'CONFLICT';
        if (!conflict || attempt >= CAS_ATTEMPTS) throw error;
      }
    }
  }
}

const asResource = (eventType: EventType): Resource => eventType as unknown as Resource;

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
