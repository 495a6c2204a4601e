/**
 * Delivery policy: which delivery spec applies to a trigger, and what to do after an attempt
 * (DESIGN.md section 5, reference/knative.md 1.5 and 1.6).
 */
import { backoffDelayMs } from './backoff.js';
import { parseDuration } from './duration.js';
import { withAttribute, type CloudEvent } from './event.js';
import {
  DEFAULT_BROKER_DELIVERY,
  type BackoffPolicy,
  type DeliveryFormat,
  type DeliverySpec,
} from './resources/types.js';

export interface ResolvedDelivery {
  /** Retries after the first attempt; attempts = retry + 1. */
  readonly retry: number;
  readonly backoffPolicy: BackoffPolicy;
  readonly backoffDelayMs: number;
  readonly timeoutMs: number;
  /** Upper bound for a Retry-After wait on 429/503; undefined: Retry-After is ignored. */
  readonly retryAfterMaxMs: number | undefined;
  readonly format: DeliveryFormat;
  readonly deadLetterSinkUri: string | undefined;
  /** One event at a time per `partitionkey` (retries included). */
  readonly ordered: boolean;
}

/**
 * A trigger's delivery spec replaces the broker's as a whole (Knative's MT broker); a broker
 * without one has Knative's default. Fields a spec leaves out mean what they mean in Knative: no
 * retries, no backoff delay. Assumes the specs passed validation.
 */
export function resolveDelivery(
  trigger: DeliverySpec | undefined,
  broker: DeliverySpec | undefined,
  defaultTimeoutMs: number,
): ResolvedDelivery {
  const spec = trigger ?? broker ?? DEFAULT_BROKER_DELIVERY;
  const duration = (text: string | undefined): number | undefined =>
    text === undefined ? undefined : parseDuration(text);
  return {
    retry: spec.retry ?? 0,
    backoffPolicy: spec.backoffPolicy ?? 'exponential',
    backoffDelayMs: duration(spec.backoffDelay) ?? 0,
    timeoutMs: duration(spec.timeout) ?? defaultTimeoutMs,
    retryAfterMaxMs: duration(spec.retryAfterMax),
    format: spec.format ?? 'binary',
    deadLetterSinkUri: spec.deadLetterSink?.uri,
    ordered: spec.ordering === 'ordered',
  };
}

/** How an attempt ended, as the dispatcher saw it. */
export type AttemptResult =
  | { readonly kind: 'response'; readonly status: number; readonly retryAfter?: string }
  | {
      readonly kind: 'network';
      readonly message: string;
      /** No retry can help: the outbound policy refused the connection (docs/outbound.md). */
      readonly permanent?: boolean;
    }
  | { readonly kind: 'timeout' };

/**
 * Knative's data-plane table: 404, 408, 409, 429, 5xx, network errors and timeouts are retried;
 * a connection the outbound policy refused is not.
 */
export function isRetryable(result: AttemptResult): boolean {
  if (result.kind === 'network') return result.permanent !== true;
  if (result.kind !== 'response') return true;
  const s = result.status;
  return s === 404 || s === 408 || s === 409 || s === 429 || (s >= 500 && s <= 599);
}

export function isSuccess(result: AttemptResult): boolean {
  return result.kind === 'response' && result.status >= 200 && result.status <= 299;
}

/** RFC 9110's preferred HTTP date, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`. */
const IMF_FIXDATE =
  /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

/** Seconds or an HTTP date, as in RFC 9110 10.2.3; undefined when unparsable. */
export function parseRetryAfterMs(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  if (!IMF_FIXDATE.test(trimmed)) return undefined;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export type NextStep =
  | { readonly action: 'done' }
  | { readonly action: 'retry'; readonly delayMs: number }
  | { readonly action: 'dead-letter' };

/**
 * What follows attempt number `attempt` (1-based). The k-th retry waits the policy's backoff; a
 * Retry-After on 429 or 503 is honoured up to retryAfterMax: wait = max(backoff, min(header, max)).
 */
export function nextStep(
  delivery: ResolvedDelivery,
  attempt: number,
  result: AttemptResult,
  now: number,
): NextStep {
  if (isSuccess(result)) return { action: 'done' };
  if (!isRetryable(result) || attempt > delivery.retry) return { action: 'dead-letter' };
  let delayMs = backoffDelayMs(delivery.backoffPolicy, delivery.backoffDelayMs, attempt);
  if (
    delivery.retryAfterMaxMs !== undefined &&
    result.kind === 'response' &&
    (result.status === 429 || result.status === 503)
  ) {
    const header = parseRetryAfterMs(result.retryAfter, now);
    if (header !== undefined)
      delayMs = Math.max(delayMs, Math.min(header, delivery.retryAfterMaxMs));
  }
  return { action: 'retry', delayMs };
}

/** Bytes of a failed response carried in `knativeerrordata` (Knative's limit). */
export const ERROR_DATA_LIMIT = 1024;

export interface FailedAttempt {
  /** URL of the destination that failed. */
  readonly destination: string;
  /** HTTP status of the last attempt; absent when there was no response. */
  readonly status?: number;
  /** Its body, or the start of it. */
  readonly body?: Uint8Array;
}

/**
 * The event a dead-letter sink receives: the original, unchanged, plus `knativeerrordest`,
 * `knativeerrorcode` (when there was a response) and `knativeerrordata` (base64 of at most 1024
 * bytes of the response body, when it had one), as Knative's brokers send it.
 */
export function deadLetterEvent(event: CloudEvent, failure: FailedAttempt): CloudEvent {
  let result = withAttribute(event, 'knativeerrordest', failure.destination);
  if (failure.status !== undefined)
    result = withAttribute(result, 'knativeerrorcode', failure.status);
  if (failure.body !== undefined && failure.body.byteLength > 0) {
    const data = failure.body.subarray(0, ERROR_DATA_LIMIT);
    result = withAttribute(
      result,
      'knativeerrordata',
      Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64'),
    );
  }
  return result;
}
