/**
 * The source contracts (DESIGN.md sections 1 and 4, docs/sources.md). A source adapter turns what
 * an upstream system sends into CloudEvents; the runtime (runtime.ts) owns everything else: the
 * resource's life, its secrets, the sink (a broker or a service), de-duplication and counters.
 *
 * Webhook adapters (GitHub, GitLab) are pushed to: the runtime hands each HTTP delivery to the
 * adapter's handler and answers the sender with what came of it. Pulling adapters (Kafka,
 * RocketMQ, MNS, the Kubernetes API) arrive with their own contract in later issues.
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

/** One header's value: the first when it was sent several times, undefined when absent. */
export function header(request: WebhookRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
