/**
 * The control plane of one replica: it follows the ResourceStore's change feed and makes the data
 * plane match it. A broker gets its event log; a trigger of an existing broker gets its
 * subscription and dispatcher; deleting either tears them down. Every replica runs one, and every
 * step is idempotent, so replicas converge without talking to each other.
 */
import type {
  Backend,
  BrokerRef,
  ResourceChange,
  ResourceWatch,
  StoredResource,
} from '../backends/contracts.js';
import { ingressAuthRequired } from '../core/auth.js';
import { resolveDelivery } from '../core/delivery.js';
import { compileTriggerFilter, type CompiledFilter } from '../core/filters.js';
import { canonicalJson } from '../core/resources/lifecycle.js';
import { redactSecrets } from '../core/resources/secrets.js';
import { brokerStatus, sourceStatus, triggerStatus } from '../core/resources/status.js';
import { parseDuration } from '../core/duration.js';
import { TributaryError } from '../core/errors.js';
import {
  DELIVERY_ORDER_ANNOTATION,
  type Broker,
  type ResourceKey,
  type Trigger,
} from '../core/resources/types.js';
import {
  REJOIN_MS,
  TriggerDispatcher,
  type DispatcherOptions,
  type TriggerTarget,
} from './dispatcher.js';
import type { ObserverHub } from './observer.js';

export interface ControlPlaneOptions {
  readonly backend: Backend;
  readonly triggerConcurrency: number;
  readonly defaultTimeoutMs: number;
  readonly maxResponseBytes: number;
  /** The most hops an event may have (knativebrokerttl). */
  readonly maxTtl: number;
  /** How long a broker keeps delivered events when its spec says nothing, in ms. */
  readonly retentionMs: number;
  /** Told of the replies the dispatchers store. */
  readonly observers?: ObserverHub;
  readonly log: {
    info(obj: object, msg: string): void;
    warn(obj: object, msg: string): void;
    error(obj: object, msg: string): void;
  };
}

/** What runs the sources (src/sources/runtime.ts); the control plane tells it every change. */
export interface SourceHost {
  put(stored: StoredResource): void;
  delete(key: ResourceKey): void;
  status(stored: StoredResource, baseUrl: string): Record<string, unknown>;
}

interface BrokerState {
  readonly stored: StoredResource;
  ready: boolean;
  /** Its ingress requires a token (the `tributary.dev/ingress-auth` annotation). */
  readonly ingressAuth: boolean;
  /** Events refused, or replies dropped, because their TTL ran out (since this replica started). */
  ttlExhausted: number;
}

interface TriggerState {
  stored: StoredResource;
  dispatcher?: TriggerDispatcher;
  /** Kept while the filter spec is unchanged, so the subscription keeps its compiled filter. */
  filter?: { readonly source: string; readonly compiled: CompiledFilter };
}

interface Waiter {
  readonly done: () => boolean;
  readonly resolve: (ok: boolean) => void;
}

const keyString = (k: ResourceKey): string => `${k.collection}/${k.namespace}/${k.name}`;
const brokerKey = (namespace: string, name: string): string => `${namespace}/${name}`;
const RETRY_DELAY_MS = 1000;
// Stored resources passed validation for their collection before they were written.
const triggerOf = (s: StoredResource): Trigger => s.resource as unknown as Trigger;
const brokerOf = (s: StoredResource): Broker => s.resource;

export class ControlPlane {
  private readonly brokers = new Map<string, BrokerState>();
  private readonly triggers = new Map<string, TriggerState>();
  private sourceRuntime: SourceHost | undefined;
  /** Highest revision processed per key, and whether the key's last change was a delete. */
  private readonly processed = new Map<string, { revision: number; deleted: boolean }>();
  private waiters: Waiter[] = [];
  private queue: Promise<void> = Promise.resolve();
  private watch: ResourceWatch | undefined;
  private stopping = false;
  private readonly retryTimers = new Set<NodeJS.Timeout>();

  /** Shared by every dispatcher (one object, not one set of closures per trigger). */
  private readonly dispatcherOptions: DispatcherOptions;

  constructor(private readonly options: ControlPlaneOptions) {
    this.dispatcherOptions = {
      eventLog: options.backend.eventLog,
      maxInFlight: options.triggerConcurrency,
      maxResponseBytes: options.maxResponseBytes,
      maxTtl: options.maxTtl,
      onTtlExhausted: (target) => this.countTtlExhausted(target.namespace, target.broker),
      onError: (error, context) =>
        options.log.warn({ err: error, ...context }, 'could not settle a delivery'),
      onLost: (target, error) =>
        options.log.error(
          { err: error, trigger: `${target.namespace}/${target.name}` },
          `the trigger lost its subscription to a backend error; it joins again in ${REJOIN_MS} ms`,
        ),
      ...(options.observers === undefined ? {} : { observers: options.observers }),
    };
  }

  /** Hands the `sources` collection to `runtime`; call before start(). */
  attachSources(runtime: SourceHost): void {
    this.sourceRuntime = runtime;
  }

  /** Starts following the store; resolves once the current resources are reconciled. */
  async start(): Promise<void> {
    const pending: ResourceChange[] = [];
    let live = false;
    this.watch = await this.options.backend.resources.watch((change) => {
      if (live) this.enqueue(change);
      else pending.push(change);
    });
    const snapshot = this.watch.snapshot;
    const byCollection = (c: string): StoredResource[] =>
      snapshot.filter((s) => s.key.collection === c);
    await Promise.all(byCollection('brokers').map((s) => this.apply({ type: 'put', stored: s })));
    await Promise.all(byCollection('sources').map((s) => this.apply({ type: 'put', stored: s })));
    await Promise.all(byCollection('triggers').map((s) => this.apply({ type: 'put', stored: s })));
    live = true;
    for (const change of pending) this.enqueue(change);
    await this.queue;
  }

  /** Stops every dispatcher, waiting for in-flight deliveries until `deadline` (epoch ms). */
  async stop(deadline: number): Promise<void> {
    this.stopping = true;
    this.watch?.stop();
    for (const timer of this.retryTimers) clearTimeout(timer);
    await this.queue;
    await Promise.all([...this.triggers.values()].map(async (t) => t.dispatcher?.stop(deadline)));
    for (const w of this.waiters) w.resolve(false);
    this.waiters = [];
  }

  /** The broker, if it exists and accepts events; answers the ingress without touching the store. */
  readyBroker(namespace: string, name: string): BrokerRef | undefined {
    const state = this.brokers.get(brokerKey(namespace, name));
    return state?.ready ? { namespace, name } : undefined;
  }

  /**
   * Whether the broker's ingress requires a token. False for a broker this replica does not know:
   * its ingress answers 404 without storing anything.
   */
  brokerRequiresToken(namespace: string, name: string): boolean {
    return this.brokers.get(brokerKey(namespace, name))?.ingressAuth ?? false;
  }

  /** Counts an event the broker refused, or a reply it dropped, because its TTL ran out. */
  countTtlExhausted(namespace: string, name: string): void {
    const state = this.brokers.get(brokerKey(namespace, name));
    if (state !== undefined) state.ttlExhausted++;
  }

  /**
   * The subscription behind a trigger of this replica, for the dead-letter and replay operations;
   * NOT_FOUND when the trigger does not exist, CONFLICT when it is not subscribed (no broker yet).
   */
  subscriptionOf(key: ResourceKey): { id: string; broker: BrokerRef } {
    const state = this.triggers.get(keyString(key));
    if (state === undefined) {
      throw new TributaryError(
        'NOT_FOUND',
        `No trigger "${key.name}" in namespace "${key.namespace}"`,
      );
    }
    const trigger = triggerOf(state.stored);
    if (state.dispatcher === undefined) {
      throw new TributaryError(
        'CONFLICT',
        `Trigger "${key.name}" is not Ready: broker "${trigger.spec.broker}" does not exist yet`,
      );
    }
    return {
      id: trigger.metadata.uid!,
      broker: { namespace: key.namespace, name: trigger.spec.broker },
    };
  }

  /** The triggers this replica delivers (Ready), with their subscription ids (the trigger uid). */
  subscribedTriggers(): { namespace: string; name: string; broker: string; id: string }[] {
    const found: { namespace: string; name: string; broker: string; id: string }[] = [];
    for (const state of this.triggers.values()) {
      if (state.dispatcher?.ready !== true) continue;
      const trigger = triggerOf(state.stored);
      const { namespace, name } = state.stored.key;
      found.push({ namespace, name, broker: trigger.spec.broker, id: trigger.metadata.uid! });
    }
    return found;
  }

  /** Resolves true once this replica has reconciled `key` at `revision` or later. */
  awaitReconciled(key: ResourceKey, revision: number, timeoutMs = 10_000): Promise<boolean> {
    return this.wait(
      () => (this.processed.get(keyString(key))?.revision ?? 0) >= revision,
      timeoutMs,
    );
  }

  /** Resolves true once this replica has reconciled the deletion of `key` (or a later write). */
  awaitDeleted(key: ResourceKey, lastRevision: number, timeoutMs = 10_000): Promise<boolean> {
    return this.wait(() => {
      const p = this.processed.get(keyString(key));
      return p !== undefined && (p.deleted || p.revision > lastRevision);
    }, timeoutMs);
  }

  /** The stored resource with its derived status. */
  async withStatus(stored: StoredResource, baseUrl: string): Promise<Record<string, unknown>> {
    const resource = stored.resource;
    const { namespace, name } = resource.metadata;
    let status: Record<string, unknown>;
    if (stored.key.collection === 'brokers') {
      const state = this.brokers.get(brokerKey(namespace, name));
      status = brokerStatus(brokerOf(stored), { ready: state?.ready ?? false, baseUrl });
      status.ttlExhausted = state?.ttlExhausted ?? 0;
    } else if (stored.key.collection === 'triggers') {
      const trigger = triggerOf(stored);
      const broker = this.brokers.get(brokerKey(namespace, trigger.spec.broker));
      const state = this.triggers.get(keyString(stored.key));
      const current = state?.stored.resource.metadata.uid === resource.metadata.uid;
      const dispatcher = current ? state?.dispatcher : undefined;
      const delivery = trigger.spec.delivery ?? (broker && brokerOf(broker.stored))?.spec.delivery;
      status = triggerStatus(trigger, {
        brokerExists: broker !== undefined,
        brokerReady: broker?.ready ?? false,
        subscribed: dispatcher?.ready ?? false,
        deadLetterSinkUri: delivery?.deadLetterSink?.uri,
      });
      if (dispatcher !== undefined) {
        const { lastError, ...counts } = dispatcher.counters;
        const kept = await this.options.backend.eventLog
          .countDeadLetters(resource.metadata.uid!, { namespace, name: trigger.spec.broker })
          .catch(() => undefined);
        status.deliveries = { ...counts, deadLettersKept: kept };
        if (lastError !== undefined) status.lastError = lastError;
      }
    } else {
      status =
        this.sourceRuntime?.status(stored, baseUrl) ??
        sourceStatus(resource, { adapter: false, sinkReady: false, hasSecrets: false });
      // The API never shows a secret's value.
      return { ...redactSecrets(resource), status };
    }
    return { ...resource, status };
  }

  private wait(done: () => boolean, timeoutMs: number): Promise<boolean> {
    if (done()) return Promise.resolve(true);
    if (this.stopping) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      const waiter: Waiter = {
        done,
        resolve: (ok) => {
          clearTimeout(timer);
          resolve(ok);
        },
      };
      this.waiters.push(waiter);
    });
  }

  private enqueue(change: ResourceChange): void {
    this.queue = this.queue.then(() => this.apply(change));
  }

  private notify(key: ResourceKey, change: ResourceChange): void {
    const k = keyString(key);
    const before = this.processed.get(k);
    this.processed.set(
      k,
      change.type === 'put'
        ? { revision: Math.max(before?.revision ?? 0, change.stored.revision), deleted: false }
        : { revision: before?.revision ?? 0, deleted: true },
    );
    const remaining: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.done()) w.resolve(true);
      else remaining.push(w);
    }
    this.waiters = remaining;
  }

  /** Applies one change; never throws (a failure is logged and retried later). */
  private async apply(change: ResourceChange): Promise<void> {
    if (this.stopping) return;
    const key = change.type === 'put' ? change.stored.key : change.key;
    try {
      switch (key.collection) {
        case 'brokers':
          await (change.type === 'put' ? this.putBroker(change.stored) : this.deleteBroker(key));
          break;
        case 'triggers':
          await (change.type === 'put' ? this.putTrigger(change.stored) : this.deleteTrigger(key));
          break;
        case 'sources':
          if (change.type === 'put') this.sourceRuntime?.put(change.stored);
          else this.sourceRuntime?.delete(key);
          break;
      }
    } catch (error) {
      this.options.log.error(
        { err: error, resource: keyString(key) },
        'reconcile failed; retrying',
      );
      this.retryLater(key);
    }
    this.notify(key, change);
  }

  /** Re-applies the current stored state of `key` after a delay (after a failed reconcile). */
  private retryLater(key: ResourceKey): void {
    const timer = setTimeout(() => {
      this.retryTimers.delete(timer);
      this.queue = this.queue.then(async () => {
        const stored = await this.options.backend.resources.get(key);
        await this.apply(stored === undefined ? { type: 'delete', key } : { type: 'put', stored });
      });
    }, RETRY_DELAY_MS);
    timer.unref();
    this.retryTimers.add(timer);
  }

  private async putBroker(stored: StoredResource): Promise<void> {
    const { namespace, name } = stored.key;
    const k = brokerKey(namespace, name);
    const before = this.brokers.get(k);
    const state: BrokerState = {
      stored,
      ready: before?.ready ?? false,
      ingressAuth: ingressAuthRequired(stored.resource.metadata.annotations),
      ttlExhausted: before?.ttlExhausted ?? 0,
    };
    this.brokers.set(k, state);
    const retention = brokerOf(stored).spec.retention;
    await this.options.backend.eventLog.ensureBroker(
      { namespace, name },
      {
        retentionMs:
          (retention === undefined ? undefined : parseDuration(retention)) ??
          this.options.retentionMs,
      },
    );
    state.ready = true;
    // The broker's delivery spec may have changed, and waiting triggers may now start.
    await Promise.all(
      [...this.triggers.values()]
        .filter(
          (t) => t.stored.key.namespace === namespace && triggerOf(t.stored).spec.broker === name,
        )
        .map((t) => this.putTrigger(t.stored)),
    );
  }

  private async deleteBroker(key: ResourceKey): Promise<void> {
    const { namespace, name } = key;
    this.brokers.delete(brokerKey(namespace, name));
    const now = Date.now();
    await Promise.all(
      [...this.triggers.values()]
        .filter(
          (t) => t.stored.key.namespace === namespace && triggerOf(t.stored).spec.broker === name,
        )
        .map(async (t) => {
          await t.dispatcher?.stop(now);
          t.dispatcher = undefined;
        }),
    );
    await this.options.backend.eventLog.deleteBroker({ namespace, name });
  }

  private async putTrigger(stored: StoredResource): Promise<void> {
    const k = keyString(stored.key);
    const trigger = triggerOf(stored);
    let state = this.triggers.get(k);
    if (state !== undefined && state.stored.resource.metadata.uid !== trigger.metadata.uid) {
      // The trigger was deleted and created again under the same name: a new subscription.
      await this.dropTrigger(state);
      state = undefined;
    }
    if (state === undefined) {
      state = { stored };
      this.triggers.set(k, state);
    }
    state.stored = stored;
    const broker = this.brokers.get(brokerKey(stored.key.namespace, trigger.spec.broker));
    if (broker === undefined || !broker.ready) {
      await state.dispatcher?.stop(Date.now());
      state.dispatcher = undefined;
      return;
    }
    const filterSource = canonicalJson([trigger.spec.filter ?? null, trigger.spec.filters ?? null]);
    if (state.filter?.source !== filterSource) {
      state.filter = { source: filterSource, compiled: compileTriggerFilter(trigger.spec) };
    }
    const delivery = resolveDelivery(
      trigger.spec.delivery,
      brokerOf(broker.stored).spec.delivery,
      this.options.defaultTimeoutMs,
    );
    // Knative's Kafka-broker annotation, an alias of the trigger's own delivery.ordering.
    const order = trigger.metadata.annotations?.[DELIVERY_ORDER_ANNOTATION];
    const target: TriggerTarget = {
      namespace: stored.key.namespace,
      name: stored.key.name,
      uid: trigger.metadata.uid!,
      broker: trigger.spec.broker,
      subscriber: new URL(trigger.spec.subscriber.uri!),
      filter: state.filter.compiled,
      delivery:
        trigger.spec.delivery?.ordering === undefined && order !== undefined
          ? { ...delivery, ordered: order === 'ordered' }
          : delivery,
    };
    if (state.dispatcher !== undefined) {
      await state.dispatcher.update(target);
    } else {
      const dispatcher = new TriggerDispatcher(target, this.dispatcherOptions);
      await dispatcher.start();
      state.dispatcher = dispatcher;
    }
    // With several replicas, each one logs when a change took effect in it.
    this.options.log.info(
      { trigger: `${stored.key.namespace}/${stored.key.name}`, revision: stored.revision },
      'trigger applied',
    );
  }

  private async deleteTrigger(key: ResourceKey): Promise<void> {
    const k = keyString(key);
    const state = this.triggers.get(k);
    if (state === undefined) return;
    this.triggers.delete(k);
    await this.dropTrigger(state);
  }

  private async dropTrigger(state: TriggerState): Promise<void> {
    const trigger = triggerOf(state.stored);
    await state.dispatcher?.stop(Date.now());
    state.dispatcher = undefined;
    await this.options.backend.eventLog.deleteSubscription(trigger.metadata.uid!, {
      namespace: state.stored.key.namespace,
      name: trigger.spec.broker,
    });
  }
}
