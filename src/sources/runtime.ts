/**
 * The sources of one replica (DESIGN.md section 5, docs/sources.md): it follows the `sources`
 * collection through the control plane, compiles each webhook source with its resolved secrets,
 * and takes each webhook delivery from check to sink:
 *
 * - the adapter checks the signature or token and makes the CloudEvent (or a ping's answer);
 * - a delivery id seen before (a redelivery) is answered 202 and not forwarded again;
 * - a broker sink stores the event as the ingress does, and the sender gets 202 once it is
 *   durable; a URI sink gets the event straight away, with the source's delivery spec (retries,
 *   backoff, dead-letter sink), and the sender gets the service's 2xx, or 502 if nobody took it.
 */
import type { DeliveryLedger, StoredResource } from '../backends/contracts.js';
import { deliverDirect } from '../broker/attempts.js';
import type { BrokerWriter } from '../broker/broker-writer.js';
import { resolveDelivery, type ResolvedDelivery } from '../core/delivery.js';
import { isTributaryError, TributaryError } from '../core/errors.js';
import { sourceStatus } from '../core/resources/status.js';
import { SECRET_SPEC_FIELDS } from '../core/resources/secrets.js';
import type { DeliverySpec, Destination, ResourceKey } from '../core/resources/types.js';
import type { WebhookAdapter, WebhookHandler, WebhookRequest } from './contracts.js';
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

/** What the sources of this replica did since it started. */
export interface SourceCounters {
  /** Deliveries that reached the source's webhook URL. */
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
  /** The sink did not take the event (the sender got a 5xx). */
  failed: number;
  lastError?: { message: string; time: string };
}

export interface WebhookAnswer {
  readonly status: number;
  readonly message: string;
}

export interface SourceRuntimeOptions {
  readonly writer: BrokerWriter;
  readonly adapters: readonly WebhookAdapter[];
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
}

interface SourceState {
  readonly stored: StoredResource;
  readonly adapter: WebhookAdapter | undefined;
  readonly handler: WebhookHandler | undefined;
  readonly secretsProblem: string | undefined;
  readonly sink: { readonly broker: { namespace: string; name: string } } | { readonly uri: URL };
  readonly delivery: ResolvedDelivery;
  readonly counters: SourceCounters;
}

const keyString = (namespace: string, name: string): string => `${namespace}/${name}`;

function newCounters(): SourceCounters {
  return {
    received: 0,
    forwarded: 0,
    pings: 0,
    ignored: 0,
    duplicates: 0,
    rejected: 0,
    failed: 0,
  };
}

export class SourceRuntime {
  private readonly sources = new Map<string, SourceState>();
  private readonly adapters: ReadonlyMap<string, WebhookAdapter>;
  private readonly recent: RecentIds;
  private readonly abort = new AbortController();

  constructor(private readonly options: SourceRuntimeOptions) {
    this.adapters = new Map(options.adapters.map((a) => [a.kind, a]));
    this.recent = new RecentIds(options.dedup);
  }

  /** Applies a created or changed source (its counters survive a change of spec). */
  put(stored: StoredResource): void {
    const resource = stored.resource;
    const { namespace, name } = stored.key;
    const k = keyString(namespace, name);
    const before = this.sources.get(k);
    const adapter = this.adapters.get(resource.kind);
    const spec = resource.spec as { sink: Destination; delivery?: DeliverySpec };
    const secrets =
      adapter === undefined ? undefined : resolveSecrets(resource, this.options.secrets);
    const ref = spec.sink.ref;
    this.sources.set(k, {
      stored,
      adapter,
      handler:
        adapter !== undefined && secrets?.ok === true
          ? adapter.compile(resource, secrets.secrets)
          : undefined,
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
      counters:
        before !== undefined && before.stored.resource.metadata.uid === resource.metadata.uid
          ? before.counters
          : newCounters(),
    });
  }

  delete(key: ResourceKey): void {
    this.sources.delete(keyString(key.namespace, key.name));
  }

  /** Stops deliveries to URI sinks that are waiting for a retry. */
  stop(): void {
    this.abort.abort();
  }

  /** The source's status as this replica sees it, with its counters. */
  status(stored: StoredResource, baseUrl: string): Record<string, unknown> {
    const { namespace, name } = stored.key;
    const state = this.sources.get(keyString(namespace, name));
    const current =
      state !== undefined && state.stored.resource.metadata.uid === stored.resource.metadata.uid
        ? state
        : undefined;
    const adapter = this.adapters.has(stored.resource.kind);
    const sink = current?.sink;
    const brokerSink = sink !== undefined && 'broker' in sink ? sink.broker : undefined;
    const sinkReady =
      sink !== undefined &&
      (brokerSink === undefined || this.options.brokerReady(brokerSink.namespace, brokerSink.name));
    const spec = stored.resource.spec;
    const status = sourceStatus(stored.resource, {
      adapter,
      webhookUrl: adapter ? `${baseUrl}/webhooks/${namespace}/${name}` : undefined,
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
      hasSecrets: SECRET_SPEC_FIELDS.some((f) => spec[f] !== undefined),
      secretsProblem: current?.secretsProblem,
    });
    if (adapter && current !== undefined) {
      const { lastError, ...counts } = current.counters;
      status.events = counts;
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
    event: Parameters<BrokerWriter['write']>[2][number],
  ): Promise<WebhookAnswer> {
    if ('broker' in state.sink) {
      const { namespace, name } = state.sink.broker;
      await this.options.writer.write(namespace, name, [event]);
      return { status: 202, message: 'stored' };
    }
    const outcome = await deliverDirect(state.sink.uri, event, state.delivery, {
      maxResponseBytes: this.options.maxResponseBytes,
      headers: { 'kn-namespace': state.stored.key.namespace },
      signal: this.abort.signal,
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

  private noteError(counters: SourceCounters, message: string): void {
    counters.lastError = { message, time: new Date().toISOString() };
  }
}
