/**
 * The source contracts (DESIGN.md sections 1 and 4, docs/sources.md). A source adapter turns what
 * an upstream system sends into CloudEvents; the runtime (runtime.ts) owns everything else: the
 * resource's life, its secrets, the sink (a broker or a service), de-duplication and counters.
 *
 * Webhook adapters (GitHub, GitLab) are pushed to: the runtime hands each HTTP delivery to the
 * adapter's handler and answers the sender with what came of it. Pulling adapters (Kafka,
 * RocketMQ, MNS, the Kubernetes API) consume from their upstream themselves and hand each
 * message to `PullContext.deliver`, acknowledging it upstream only once that resolved.
 */
import type { CloudEvent } from '../core/event.js';
import type { Resource } from '../core/resources/types.js';

/** One HTTP delivery to `/webhooks/{namespace}/{source}`: the headers and the raw body. */
export interface WebhookRequest {
  /** Lower-case header names, as Node gives them. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
}

/**
 * What an adapter makes of a delivery that passed its checks: an event to forward, or an answer
 * that forwards nothing (a ping, an event type the source does not want).
 */
export type WebhookVerdict =
  | {
      readonly kind: 'event';
      readonly event: CloudEvent;
    }
  | {
      readonly kind: 'answer';
      readonly status: 200 | 202;
      /** Which counter the answer goes to. */
      readonly counter: 'pings' | 'ignored';
      readonly message: string;
    };

/**
 * A webhook source made ready for requests: secrets resolved, event types and overrides compiled.
 * `handle` throws TributaryError UNAUTHORIZED (signature or token), BAD_REQUEST (missing headers,
 * invalid JSON) or UNSUPPORTED_MEDIA_TYPE; it does no I/O.
 */
export interface WebhookHandler {
  handle(request: WebhookRequest, now: Date): WebhookVerdict;
}

/** The secrets of a source's spec (`secretToken`, ...), resolved to their values. */
export type ResolvedSecrets = Readonly<Partial<Record<string, string>>>;

export interface WebhookAdapter {
  /** The resource kind, e.g. `GitHubSource`. */
  readonly kind: string;
  /** Builds the handler of a validated source resource. */
  compile(source: Resource, secrets: ResolvedSecrets): WebhookHandler;
}

/**
 * What the runtime gives a running pulling source. One context per start: after the source is
 * stopped (`signal` aborted) every call is ignored and `deliver` rejects.
 */
export interface PullContext {
  /**
   * Takes one event to the source's sink: stored in the broker, or accepted by the service (or its
   * dead-letter sink) under the source's delivery spec. Resolves once accepted; while the sink
   * refuses, the runtime tries again with backoff and the promise waits, so that the caller's
   * consumption pauses instead of piling events up. Rejects only when the source stops, with the
   * signal's reason (or `options.signal`'s, which ends this one delivery early, e.g. when a
   * partition moved to another consumer); the message is then left unacknowledged upstream.
   */
  deliver(event: CloudEvent, options?: { readonly signal?: AbortSignal }): Promise<void>;
  /**
   * `deliver` for several events in their order, resolving once all were accepted: a broker sink
   * stores them in one write (all or, on a failure, tried again as a whole, so some may be stored
   * twice); a service gets them one after the other.
   */
  deliverAll(
    events: readonly CloudEvent[],
    options?: { readonly signal?: AbortSignal },
  ): Promise<void>;
  /**
   * Takes one event to the source's dead-letter sink (`spec.delivery.deadLetterSink`) instead of
   * its sink, marked as Knative marks dead letters (`knativeerrordest` = the sink); used for a
   * message the upstream handed out too often (MNS's `maxDequeueCount`). Resolves and retries as
   * `deliver` does; rejects at once when the source has no dead-letter sink.
   */
  deadLetter(event: CloudEvent, options?: { readonly signal?: AbortSignal }): Promise<void>;
  /** Counts messages taken from upstream. */
  received(count: number): void;
  /** The upstream answers (a consumer joined its group, a receive succeeded). */
  connected(): void;
  /**
   * The upstream failed (authentication, unreachable endpoint, missing topic): counted, and shown
   * in the source's `Connected` condition until `connected()` is called again. `reason` is a
   * CamelCase word such as `AuthenticationFailed` or `Unreachable`.
   */
  upstreamError(reason: string, message: string): void;
  /**
   * Aborted when the source is stopped (deleted, changed, the server shuts down, or, for an
   * exclusive source, this replica lost its lease).
   */
  readonly signal: AbortSignal;
  readonly log: SourceLog;
  /**
   * An exclusive source's checkpoint, kept with its lease in the backend: what the last run (on
   * any replica) saved, undefined the first time; `save` replaces it (small JSON: it is written
   * with the lease, so at most a few hundred kilobytes).
   */
  readonly checkpoint?: {
    readonly state: unknown;
    save(state: unknown): Promise<void>;
  };
}

export interface SourceLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

/** A running pulling source. */
export interface PullingSource {
  /** Stops consuming and leaves the upstream cleanly; what was not acknowledged comes again. */
  stop(): Promise<void>;
}

export interface PullingAdapter {
  /** The resource kind, e.g. `KafkaSource`. */
  readonly kind: string;
  /**
   * One replica at a time runs the source (it holds a lease, src/sources/lease.ts), for upstreams
   * with no consumer group to share the work (the Kubernetes API); the context then has a
   * checkpoint. Others (Kafka, RocketMQ, MNS) run on every replica.
   */
  readonly exclusive?: boolean;
  /** Starts consuming for a validated source resource; never throws for upstream problems. */
  start(source: Resource, secrets: ResolvedSecrets, context: PullContext): PullingSource;
}

/** One header's value: the first when it was sent several times, undefined when absent. */
export function header(request: WebhookRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
