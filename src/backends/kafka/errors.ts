/** kafkajs errors as Tributary's typed errors. */
import { isTributaryError, TributaryError } from '../../core/errors.js';

/** Seconds a client is asked to wait while Kafka cannot take a write. */
export const RETRY_AFTER_SECONDS = 1;

export interface KafkaLikeError {
  readonly name?: string;
  readonly type?: string;
  readonly message?: string;
  readonly cause?: unknown;
  readonly originalError?: unknown;
}

/** The error and the errors it wraps (kafkajs's originalError, cause), outermost first. */
export function errorChain(error: unknown): KafkaLikeError[] {
  const seen: KafkaLikeError[] = [];
  let current: unknown = error;
  while (current !== null && typeof current === 'object' && seen.length < 8) {
    const e = current as KafkaLikeError;
    seen.push(e);
    current = e.originalError ?? e.cause;
  }
  return seen;
}

/** True when Kafka says the topic (or partition) does not exist. */
export function isUnknownTopic(error: unknown): boolean {
  return errorChain(error).some(
    (e) =>
      e.type === 'UNKNOWN_TOPIC_OR_PARTITION' ||
      e.type === 'UNKNOWN_TOPIC_ID' ||
      /does not host this topic-partition|unknown topic/i.test(e.message ?? ''),
  );
}

/**
 * `error` as a TributaryError: NOT_FOUND for a missing topic, PAYLOAD_TOO_LARGE for a record over
 * the topic's max.message.bytes (no retry helps), else unavailable (503).
 */
export function kafkaError(error: unknown, what: string): TributaryError {
  if (isTributaryError(error)) return error;
  if (isUnknownTopic(error)) return new TributaryError('NOT_FOUND', `${what}: not found`);
  const message = (error as Error)?.message ?? String(error);
  if (errorChain(error).some((e) => e.type === 'MESSAGE_TOO_LARGE')) {
    return new TributaryError(
      'PAYLOAD_TOO_LARGE',
      `${what}: Kafka refuses records this large (the topic's max.message.bytes): ${message}`,
      { cause: error },
    );
  }
  return new TributaryError('BACKEND_UNAVAILABLE', `${what}: Kafka: ${message}`, {
    cause: error,
    retryAfter: RETRY_AFTER_SECONDS,
  });
}

/**
 * A kafkajs consumer that stopped on an error kafkajs does not retry, as a 503 naming it (a retry
 * can succeed once the cause is mended: the backend starts a new consumer, or joins again).
 */
export function consumerStopped(what: string, error: unknown): TributaryError {
  const message = (error as Error)?.message ?? String(error);
  return new TributaryError('BACKEND_UNAVAILABLE', `Kafka: ${what} stopped: ${message}`, {
    cause: error,
    retryAfter: RETRY_AFTER_SECONDS,
  });
}
