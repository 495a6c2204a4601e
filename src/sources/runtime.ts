/**
 * The sources of one replica (DESIGN.md section 5, docs/sources.md): it follows the `sources`
 * collection through the control plane, compiles each webhook source with its resolved secrets,
 * starts (and restarts on change) each pulling source, and takes each event from check to sink.
 *
 * A webhook delivery:
 *
 * - the adapter checks the signature or token and makes the CloudEvent (or a ping's answer);
 * - a delivery id seen before (a redelivery) is answered 202 and not forwarded again;
 * - a broker sink stores the event as the ingress does, and the sender gets 202 once it is
 *   durable; a URI sink gets the event straight away, with the source's delivery spec (retries,
 *   backoff, dead-letter sink), and the sender gets the service's 2xx, or 502 if nobody took it.
 *
 * A pulling source (Kafka, RocketMQ) hands each upstream message to `PullContext.deliver`, which
 * resolves once the sink took the event as above; while the sink refuses, it tries again with a
 * growing pause (up to `maxSinkBackoffMs`) and the adapter waits, so consumption pauses and the
 * message is acknowledged upstream only after it is safe. Nothing is dropped: a poison message
 * needs a dead-letter sink to be stepped over (docs/sources.md).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { DeliveryLedger, ResourceStore, StoredResource } from '../backends/contracts.js';
import { deliverDirect } from '../broker/attempts.js';
import type { BrokerWriter } from '../broker/broker-writer.js';
import type { EventOrigin, ObserverHub, SourceProblem } from '../broker/observer.js';
import { backoffDelayMs } from '../core/backoff.js';
import { deadLetterEvent, resolveDelivery, type ResolvedDelivery } from '../core/delivery.js';
import type { CloudEvent } from '../core/event.js';
import { isTributaryError, TributaryError } from '../core/errors.js';
import { canonicalJson } from '../core/resources/lifecycle.js';
import { STANDBY, sourceStatus, type UpstreamFacts } from '../core/resources/status.js';
import { secretFieldsOf } from '../core/resources/secrets.js';
import type { DeliverySpec, Destination, ResourceKey } from '../core/resources/types.js';
import type {
  PullContext,
  PullingAdapter,
  PullingSource,
  ResolvedSecrets,
  SourceLog,
  WebhookAdapter,
  WebhookHandler,
  WebhookRequest,
} from './contracts.js';
import { SourceLease, type Holder } from './lease.js';
import { RecentIds, type RecentIdsOptions } from './recent-ids.js';
import { resolveSecrets, type SecretSources } from './secrets.js';

/**
 * Delivery of a source with a URI sink and no `spec.delivery`: Knative's source adapters retry 5
 * times, exponentially from 50 ms; each attempt gets at most 5 s, so that a webhook is answered
 * well within GitHub's 10 s when the first attempt hangs.
 */
export const SOURCE_DEFAULT_DELIVERY: Readonly<DeliverySpec> = Object.freeze({
  retry: 5,
  backoffPolicy: 'exponential',
  backoffDelay: 'PT0.05S',
  timeout: 'PT5S',
});

/** The first pause of a pulling source whose sink refused an event; it doubles up to the cap. */
export const SINK_RETRY_BASE_MS = 100;
export const DEFAULT_MAX_SINK_BACKOFF_MS = 30_000;

/** What the sources of this replica did since it started. */
export interface SourceCounters {
  /** Deliveries that reached the source's webhook URL, or messages taken from upstream. */
  received: number;
  /** Events stored in the broker or accepted by the service (or its dead-letter sink). */
  forwarded: number;
  /** Pings answered (GitHub's `ping`). */
  pings: number;
  /** Deliveries of event types the source does not want (spec.eventTypes). */
  ignored: number;
  /** Redeliveries of an id already forwarded. */
  duplicates: number;
  /** Refused: signature, token, headers or body wrong. */
  rejected: number;
  /** The sink did not take the event (the sender got a 5xx; a pulling source tries again). */
  failed: number;
  /** Errors of a pulling source's upstream (authentication, connection, missing topic). */
  upstreamErrors: number;
  lastError?: { message: string; time: string };
}

/** The counters `status.events` shows, per kind of source. */
const WEBHOOK_COUNTERS = [
  'received',
  'forwarded',
  'pings',
  'ignored',
  'duplicates',
  'rejected',
  'failed',
] as const;
const PULLING_COUNTERS = ['received', 'forwarded', 'failed', 'upstreamErrors'] as const;

export interface WebhookAnswer {
  readonly status: number;
  readonly message: string;
}

export interface SourceRuntimeOptions {
  readonly writer: BrokerWriter;
  /** Told of the events a direct sink accepted (the writer tells of those stored in a broker). */
  readonly observers?: ObserverHub;
  readonly adapters: readonly WebhookAdapter[];
  readonly pullingAdapters?: readonly PullingAdapter[];
  readonly log: SourceLog;
  /** The longest pause between two tries of an event a pulling source's sink refused. */
  readonly maxSinkBackoffMs?: number;
  readonly secrets: SecretSources;
  /** Per-attempt timeout of a URI sink whose delivery spec names none. */
  readonly defaultTimeoutMs: number;
  readonly maxResponseBytes: number;
  /** Delivery ids of this replica (in memory, first) and of every replica (the backend's ledger). */
  readonly dedup: RecentIdsOptions;
  readonly ledger: DeliveryLedger;
  readonly onLedgerError: (error: unknown) => void;
  /** Whether a broker exists and accepts events (for the status). */
  readonly brokerReady: (namespace: string, name: string) => boolean;
  /** Where exclusive sources take their lease; without it, they run on every replica. */
  readonly leases?: {
    readonly store: ResourceStore;
    readonly holder: Holder;
    readonly ttlMs: number;
  };
}

/** What a replica shows while another runs the exclusive source. */
const ON_STANDBY: UpstreamFacts = {
  connected: undefined,
  reason: STANDBY,
  message: 'Another replica runs this source (one at a time); this one takes over if it stops',
};

interface SourceState {
  readonly stored: StoredResource;
  readonly adapter: WebhookAdapter | undefined;
  readonly handler: WebhookHandler | undefined;
  readonly pulling: PullingAdapter | undefined;
  readonly secrets: ResolvedSecrets | undefined;
  readonly secretsProblem: string | undefined;
  readonly sink: { readonly broker: { namespace: string; name: string } } | { readonly uri: URL };
  readonly delivery: ResolvedDelivery;
  readonly counters: SourceCounters;
  /** What makes a pulling source restart when it changes: its spec and labels. */
  readonly identity: string;
  /** The running pulling source, its stop signal, and what it last said of its upstream. */
  run?: { readonly abort: AbortController; source?: PullingSource; stopped?: Promise<void> };
  upstream: UpstreamFacts;
  /** Why the sink refused the last event of a pulling source; cleared when one is accepted. */
  sinkRefusal: string | undefined;
}

const keyString = (namespace: string, name: string): string => `${namespace}/${name}`;

/** The source's signal, ended early too by a delivery's own signal when it has one. */
const combined = (source: AbortSignal, own: AbortSignal | undefined): AbortSignal =>
  own === undefined ? source : AbortSignal.any([source, own]);

function newCounters(): SourceCounters {
  return {
    received: 0,
    forwarded: 0,
    pings: 0,
    ignored: 0,
    duplicates: 0,
    rejected: 0,
    failed: 0,
    upstreamErrors: 0,
  };
}

function originOf(state: SourceState): EventOrigin {
  const { resource } = state.stored;
  return { kind: 'source', source: resource.metadata.name, sourceKind: resource.kind };
}

export class SourceRuntime {
  private readonly sources = new Map<string, SourceState>();
  private readonly adapters: ReadonlyMap<string, WebhookAdapter>;
  private readonly pullingAdapters: ReadonlyMap<string, PullingAdapter>;
  private readonly recent: RecentIds;
  private readonly abort = new AbortController();
  /** Pulling sources being stopped (changed or deleted), awaited by stop(). */
  private readonly stopping = new Set<Promise<void>>();

  constructor(private readonly options: SourceRuntimeOptions) {
    this.adapters = new Map(options.adapters.map((a) => [a.kind, a]));
    this.pullingAdapters = new Map((options.pullingAdapters ?? []).map((a) => [a.kind, a]));
    this.recent = new RecentIds(options.dedup);
  }

  /** Applies a created or changed source (its counters survive a change of spec). */
  put(stored: StoredResource): void {
    const resource = stored.resource;
    const { namespace, name } = stored.key;
    const k = keyString(namespace, name);
    const before = this.sources.get(k);
    const adapter = this.adapters.get(resource.kind);
    const pulling = this.pullingAdapters.get(resource.kind);
    const spec = resource.spec as { sink: Destination; delivery?: DeliverySpec };
    const secrets =
      adapter === undefined && pulling === undefined
        ? undefined
        : resolveSecrets(resource, this.options.secrets);
    const ref = spec.sink.ref;
    const sameSource =
      before !== undefined && before.stored.resource.metadata.uid === resource.metadata.uid;
    const identity = canonicalJson({ spec: resource.spec, labels: resource.metadata.labels });
    const state: SourceState = {
      stored,
      adapter,
      handler:
        adapter !== undefined && secrets?.ok === true
          ? adapter.compile(resource, secrets.secrets)
          : undefined,
      pulling,
      secrets: secrets?.ok === true ? secrets.secrets : undefined,
      secretsProblem: secrets?.ok === false ? secrets.message : undefined,
      sink:
        ref !== undefined
          ? { broker: { namespace: ref.namespace ?? namespace, name: ref.name } }
          : { uri: new URL(spec.sink.uri!) },
      delivery: resolveDelivery(
        spec.delivery,
        SOURCE_DEFAULT_DELIVERY,
        this.options.defaultTimeoutMs,
      ),
      counters: sameSource ? before.counters : newCounters(),
      identity,
      upstream: { connected: undefined },
      sinkRefusal: undefined,
    };
    if (before?.run !== undefined && sameSource && before.identity === identity) {
      // Unchanged for the consumer (a new resourceVersion only): it keeps running.
      state.run = before.run;
      state.upstream = before.upstream;
      state.sinkRefusal = before.sinkRefusal;
      this.sources.set(k, state);
      return;
    }
    const previous = before === undefined ? undefined : this.stopRun(before);
    this.sources.set(k, state);
    if (pulling !== undefined && state.secrets !== undefined && !this.abort.signal.aborted) {
      this.startRun(state, pulling, previous);
    }
  }

  delete(key: ResourceKey): void {
    const k = keyString(key.namespace, key.name);
    const state = this.sources.get(k);
    this.sources.delete(k);
    if (state === undefined) return;
    const stopped = this.stopRun(state);
    const leases = this.options.leases;
    if (state.pulling?.exclusive === true && leases !== undefined) {
      // The source is gone: so is its lease, with its checkpoint (every replica tries; one does).
      void Promise.resolve(stopped)
        .then(() => SourceLease.remove(leases.store, key.namespace, key.name))
        .catch(() => {});
    }
  }

  /** Stops every pulling source and the deliveries to URI sinks that wait for a retry. */
  async stop(): Promise<void> {
    this.abort.abort();
    for (const state of this.sources.values()) void this.stopRun(state);
    await Promise.all([...this.stopping]);
  }

  /**
   * Starts the pulling source of `state` once `previous` (the run it replaces) has stopped, so
   * that one replica never runs two consumers of one source.
   */
  private startRun(
    state: SourceState,
    adapter: PullingAdapter,
    previous: Promise<void> | undefined,
  ): void {
    const abort = new AbortController();
    const run: NonNullable<SourceState['run']> = { abort };
    state.run = run;
    const start = (signal: AbortSignal, checkpoint?: PullContext['checkpoint']) => {
      try {
        return adapter.start(
          state.stored.resource,
          state.secrets!,
          this.context(state, signal, checkpoint),
        );
      } catch (error) {
        this.noteUpstream(state, signal, 'StartFailed', (error as Error).message);
        return undefined;
      }
    };
    const begin = (): void => {
      if (abort.signal.aborted) return;
      const leases = this.options.leases;
      if (adapter.exclusive !== true || leases === undefined) {
        run.source = start(abort.signal);
        return;
      }
      // One replica at a time: the others wait on standby for the lease.
      const { namespace, name } = state.stored.key;
      const lease = new SourceLease(
        {
          ...leases,
          onError: (error) =>
            this.options.log.warn({ err: error, source: `${namespace}/${name}` }, 'lease failed'),
        },
        namespace,
        name,
        state.stored.resource.metadata.uid ?? '',
      );
      state.upstream = ON_STANDBY;
      const held = lease.hold(abort.signal, async (taken) => {
        state.upstream = { connected: undefined };
        const source = start(taken.signal, { state: taken.state, save: taken.save });
        await new Promise<void>((resolve) => {
          if (taken.signal.aborted) resolve();
          else taken.signal.addEventListener('abort', () => resolve(), { once: true });
        });
        await source?.stop();
        if (!abort.signal.aborted) state.upstream = ON_STANDBY;
      });
      run.source = { stop: () => held };
    };
    if (previous === undefined) begin();
    else void previous.then(begin);
  }

  /** Stops the pulling source of `state`, if it runs; resolves once it has. */
  private stopRun(state: SourceState): Promise<void> | undefined {
    const run = state.run;
    if (run === undefined) return undefined;
    if (run.stopped !== undefined) return run.stopped;
    run.abort.abort(new Error('the source stopped'));
    const { namespace, name } = state.stored.key;
    const stopped = (async () => {
      try {
        await run.source?.stop();
      } catch (error) {
        this.options.log.warn(
          { err: error, source: `${namespace}/${name}` },
          'a source did not stop cleanly',
        );
      }
    })();
    run.stopped = stopped;
    this.stopping.add(stopped);
    void stopped.then(() => this.stopping.delete(stopped));
    return stopped;
  }

  private context(
    state: SourceState,
    signal: AbortSignal,
    checkpoint: PullContext['checkpoint'],
  ): PullContext {
    const { namespace, name } = state.stored.key;
    const source = `${namespace}/${name}`;
    const live = (): boolean => !signal.aborted;
    const counters = state.counters;
    return {
      signal,
      ...(checkpoint === undefined ? {} : { checkpoint }),
      log: {
        info: (fields, message) => this.options.log.info({ source, ...fields }, message),
        warn: (fields, message) => this.options.log.warn({ source, ...fields }, message),
      },
      received: (count) => {
        if (live()) counters.received += count;
      },
      connected: () => {
        if (live()) state.upstream = { connected: true };
      },
      upstreamError: (reason, message) => this.noteUpstream(state, signal, reason, message),
      deliver: (event, options) => {
        const both = combined(signal, options?.signal);
        return this.deliverPulled(state, 1, () => this.forward(state, event, both), both);
      },
      deadLetter: (event, options) => {
        const uri = state.delivery.deadLetterSinkUri;
        if (uri === undefined) {
          return Promise.reject(
            new TributaryError('SINK_FAILED', `source ${source} has no dead-letter sink`),
          );
        }
        const both = combined(signal, options?.signal);
        const dead = deadLetterEvent(event, { destination: this.sinkUrl(state) });
        // The dead-letter sink alone, with the source's retries: nowhere further to go.
        const delivery = { ...state.delivery, deadLetterSinkUri: undefined };
        return this.deliverPulled(
          state,
          1,
          () => this.post(state, new URL(uri), dead, delivery, both),
          both,
        );
      },
      deliverAll: async (events, options) => {
        const both = combined(signal, options?.signal);
        const sink = state.sink;
        // A broker takes them in one write, in order; a service gets them one after the other.
        if ('broker' in sink) {
          const { namespace, name } = sink.broker;
          const write = () => this.options.writer.write(namespace, name, events, originOf(state));
          if (events.length > 0) await this.deliverPulled(state, events.length, write, both);
        } else {
          for (const event of events) {
            await this.deliverPulled(state, 1, () => this.forward(state, event, both), both);
          }
        }
      },
    };
  }

  private noteUpstream(
    state: SourceState,
    signal: AbortSignal,
    reason: string,
    message: string,
  ): void {
    if (signal.aborted) return;
    const changed = state.upstream.reason !== reason || state.upstream.message !== message;
    state.upstream = { connected: false, reason, message };
    state.counters.upstreamErrors++;
    this.tell(state, 'upstream');
    this.noteError(state.counters, message);
    if (changed) {
      const { namespace, name } = state.stored.key;
      this.options.log.warn({ source: `${namespace}/${name}`, reason }, message);
    }
  }

  /**
   * Takes `count` pulled events to the sink with `send`, pausing and trying again while the sink
   * refuses; resolves once it accepted them, rejects only when `signal` aborts.
   */
  private async deliverPulled(
    state: SourceState,
    count: number,
    send: () => Promise<unknown>,
    signal: AbortSignal,
  ): Promise<void> {
    const maxMs = this.options.maxSinkBackoffMs ?? DEFAULT_MAX_SINK_BACKOFF_MS;
    for (let attempt = 1; ; attempt++) {
      signal.throwIfAborted();
      try {
        await send();
        if (!signal.aborted) {
          state.counters.forwarded += count;
          state.sinkRefusal = undefined;
        }
        return;
      } catch (error) {
        signal.throwIfAborted();
        const message = (error as Error).message;
        state.counters.failed++;
        this.tell(state, 'sink_failed');
        state.sinkRefusal = message;
        this.noteError(state.counters, message);
      }
      await sleep(backoffDelayMs('exponential', SINK_RETRY_BASE_MS, attempt, maxMs), undefined, {
        signal,
      });
    }
  }

  /** The source's status as this replica sees it, with its counters. */
  status(stored: StoredResource, baseUrl: string): Record<string, unknown> {
    const { namespace, name } = stored.key;
    const state = this.sources.get(keyString(namespace, name));
    const current =
      state !== undefined && state.stored.resource.metadata.uid === stored.resource.metadata.uid
        ? state
        : undefined;
    const webhook = this.adapters.has(stored.resource.kind);
    const pulling = this.pullingAdapters.has(stored.resource.kind);
    const adapter = webhook || pulling;
    const sink = current?.sink;
    const brokerSink = sink !== undefined && 'broker' in sink ? sink.broker : undefined;
    const sinkReady =
      sink !== undefined &&
      (brokerSink === undefined || this.options.brokerReady(brokerSink.namespace, brokerSink.name));
    const spec = stored.resource.spec;
    const status = sourceStatus(stored.resource, {
      adapter,
      webhookUrl: webhook ? `${baseUrl}/webhooks/${namespace}/${name}` : undefined,
      sinkUri:
        sink === undefined
          ? undefined
          : brokerSink !== undefined
            ? `${baseUrl}/${brokerSink.namespace}/${brokerSink.name}`
            : (sink as { uri: URL }).uri.href,
      sinkReady,
      sinkMessage:
        sinkReady || brokerSink === undefined
          ? undefined
          : `Broker "${brokerSink.name}" does not exist in namespace "${brokerSink.namespace}"`,
      hasSecrets: secretFieldsOf(spec).length > 0,
      secretsProblem: current?.secretsProblem,
      ...(pulling
        ? {
            upstream: current?.upstream ?? { connected: undefined },
            sinkRefusal: current?.sinkRefusal,
          }
        : {}),
    });
    if (adapter && current !== undefined) {
      const { lastError } = current.counters;
      const names = pulling ? PULLING_COUNTERS : WEBHOOK_COUNTERS;
      status.events = Object.fromEntries(names.map((n) => [n, current.counters[n]]));
      if (lastError !== undefined) status.lastError = lastError;
    }
    return status;
  }

  /** Takes one webhook delivery for the source `namespace/name` from check to sink. */
  async receive(namespace: string, name: string, request: WebhookRequest): Promise<WebhookAnswer> {
    const state = this.sources.get(keyString(namespace, name));
    if (state?.adapter === undefined) {
      throw new TributaryError(
        'SOURCE_NOT_FOUND',
        state === undefined
          ? `No source "${name}" in namespace "${namespace}"`
          : `Source "${name}" is a ${state.stored.resource.kind}, which takes no webhooks`,
      );
    }
    const counters = state.counters;
    counters.received++;
    if (state.handler === undefined) {
      const message = `the source's secrets cannot be read: ${state.secretsProblem ?? 'unknown'}`;
      this.noteError(counters, message);
      throw new TributaryError('SOURCE_NOT_READY', message, { retryAfter: 10 });
    }
    let verdict;
    try {
      verdict = state.handler.handle(request, new Date());
    } catch (error) {
      counters.rejected++;
      this.tell(state, 'rejected');
      if (isTributaryError(error)) this.noteError(counters, `refused: ${error.message}`);
      throw error;
    }
    if (verdict.kind === 'answer') {
      counters[verdict.counter]++;
      return { status: verdict.status, message: verdict.message };
    }
    const event = verdict.event;
    // A redelivery: this replica has it in memory (or is forwarding it right now), or any
    // replica stored it within the window (the backend's ledger).
    const id = `${state.stored.resource.metadata.uid}/${String(event.attributes.id)}`;
    if (!this.recent.claim(id) || (await this.inLedger(id))) {
      counters.duplicates++;
      return {
        status: 202,
        message: `delivery ${String(event.attributes.id)} was received before`,
      };
    }
    let answer: WebhookAnswer;
    try {
      answer = await this.forward(state, event);
    } catch (error) {
      this.recent.release(id);
      counters.failed++;
      this.tell(state, 'sink_failed');
      this.noteError(counters, (error as Error).message);
      throw error;
    }
    counters.forwarded++;
    // Recorded once stored: a crash in between can let a redelivery through (twice is better than
    // never), never the other way round. Not awaited: the sender need not wait for a second
    // write, and this replica's window covers a redelivery that comes before the record lands.
    void this.options.ledger
      .add(id, this.options.dedup.windowMs)
      .catch((error: unknown) => this.options.onLedgerError(error));
    return answer;
  }

  /** Whether the ledger has `id`; when it cannot say, the delivery goes through (at least once). */
  private async inLedger(id: string): Promise<boolean> {
    try {
      return await this.options.ledger.has(id);
    } catch (error) {
      this.options.onLedgerError(error);
      return false;
    }
  }

  private async forward(
    state: SourceState,
    event: CloudEvent,
    signal: AbortSignal = this.abort.signal,
  ): Promise<WebhookAnswer> {
    if ('broker' in state.sink) {
      const { namespace, name } = state.sink.broker;
      await this.options.writer.write(namespace, name, [event], originOf(state));
      return { status: 202, message: 'stored' };
    }
    const answer = await this.post(state, state.sink.uri, event, state.delivery, signal);
    this.options.observers?.eventsStored({
      namespace: state.stored.key.namespace,
      origin: originOf(state),
      events: [event],
    });
    return answer;
  }

  /** Delivers `event` to a service under `delivery`; throws SINK_FAILED when nobody took it. */
  private async post(
    state: SourceState,
    url: URL,
    event: CloudEvent,
    delivery: ResolvedDelivery,
    signal: AbortSignal,
  ): Promise<WebhookAnswer> {
    const outcome = await deliverDirect(url, event, delivery, {
      maxResponseBytes: this.options.maxResponseBytes,
      headers: { 'kn-namespace': state.stored.key.namespace },
      signal,
    });
    if (outcome.delivered === false) {
      throw new TributaryError(
        'SINK_FAILED',
        `not delivered after ${outcome.attempts} attempts: ${outcome.reason}`,
      );
    }
    return outcome.delivered === 'sink'
      ? { status: outcome.status, message: 'delivered' }
      : { status: 202, message: 'the service failed; delivered to the dead-letter sink' };
  }

  /** Where the source's events go, as a dead letter names it: the service, or the broker's path. */
  private sinkUrl(state: SourceState): string {
    const sink = state.sink;
    return 'broker' in sink ? `/${sink.broker.namespace}/${sink.broker.name}` : sink.uri.href;
  }

  /** Tells the observers (metrics) of a problem of the source of `state`. */
  private tell(state: SourceState, reason: SourceProblem['reason']): void {
    this.options.observers?.sourceProblem({
      namespace: state.stored.key.namespace,
      source: state.stored.key.name,
      sourceKind: state.stored.resource.kind,
      reason,
    });
  }

  private noteError(counters: SourceCounters, message: string): void {
    counters.lastError = { message, time: new Date().toISOString() };
  }
}
