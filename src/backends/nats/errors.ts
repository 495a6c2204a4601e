/** NATS client errors as Tributary's typed errors. */
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { NoRespondersError, RequestError } from '@nats-io/transport-node';
import { isTributaryError, TributaryError } from '../../core/errors.js';

/** Seconds a client is asked to wait while NATS is unreachable. */
export const RETRY_AFTER_SECONDS = 1;

export function apiCode(error: unknown): number | undefined {
  return error instanceof JetStreamApiError ? error.code : undefined;
}

export function isNotFound(error: unknown): boolean {
  const code = apiCode(error);
  return code === JetStreamApiCodes.StreamNotFound || code === JetStreamApiCodes.ConsumerNotFound;
}

/** True for "nobody answers this subject": a publish to a subject no stream holds. */
export function isNoResponders(error: unknown): boolean {
  if (error instanceof NoRespondersError) return true;
  if (error instanceof RequestError && error.isNoResponders()) return true;
  return error instanceof Error && error.cause !== undefined && isNoResponders(error.cause);
}

/** `error` as a TributaryError: NOT_FOUND for a missing stream or consumer, else unavailable. */
export function toTributary(error: unknown, what: string): TributaryError {
  if (isTributaryError(error)) return error;
  if (isNotFound(error)) return new TributaryError('NOT_FOUND', `${what}: not found`);
  const message = (error as Error)?.message ?? String(error);
  if (/max_payload/i.test(message)) {
    return new TributaryError(
      'PAYLOAD_TOO_LARGE',
      `${what}: NATS refuses messages this large (the server's max_payload): ${message}`,
      { cause: error },
    );
  }
  return new TributaryError(
    'BACKEND_UNAVAILABLE',
    `${what}: NATS: ${(error as Error)?.message ?? String(error)}`,
    { cause: error, retryAfter: RETRY_AFTER_SECONDS },
  );
}
