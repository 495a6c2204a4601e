/**
 * The error catalog: every error Tributary raises on purpose has a stable code, an HTTP status, and
 * says whether retrying the same request can help. Codes never change meaning once published; the
 * list is documented in docs/errors.md.
 */

export const ErrorCodes = {
  INVALID_EVENT: { status: 400, retryable: false, title: 'The request is not a valid CloudEvent' },
  VALIDATION_FAILED: { status: 400, retryable: false, title: 'The resource is not valid' },
  BAD_REQUEST: { status: 400, retryable: false, title: 'The request is malformed' },
  UNAUTHORIZED: {
    status: 401,
    retryable: false,
    title: 'The request does not carry a valid signature or token',
  },
  FORBIDDEN: {
    status: 403,
    retryable: false,
    title: 'The token does not allow this namespace or this access',
  },
  NOT_FOUND: { status: 404, retryable: false, title: 'Not found' },
  SOURCE_NOT_FOUND: { status: 404, retryable: false, title: 'No such webhook source' },
  BROKER_NOT_FOUND: { status: 404, retryable: false, title: 'No such broker' },
  METHOD_NOT_ALLOWED: { status: 405, retryable: false, title: 'Method not allowed' },
  CONFLICT: { status: 409, retryable: true, title: 'The resource changed concurrently' },
  PAYLOAD_TOO_LARGE: {
    status: 413,
    retryable: false,
    title: 'The request is larger than the limit',
  },
  REQUEST_TIMEOUT: {
    status: 408,
    retryable: true,
    title: 'The request was not received within the request timeout',
  },
  HEADERS_TOO_LARGE: {
    status: 431,
    retryable: false,
    title: 'The request line and headers are larger than the limit',
  },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    retryable: false,
    title: 'The content type is not a supported CloudEvents content mode',
  },
  BACKEND_UNAVAILABLE: {
    status: 503,
    retryable: true,
    title: 'The event store cannot accept events right now',
  },
  OVERLOADED: {
    status: 503,
    retryable: true,
    title: 'The event store is not keeping up; retry after Retry-After',
  },
  SINK_FAILED: {
    status: 502,
    retryable: true,
    title: 'The service the source delivers to did not accept the event',
  },
  SOURCE_NOT_READY: {
    status: 503,
    retryable: true,
    title: 'The source cannot take events right now',
  },
  SHUTTING_DOWN: { status: 503, retryable: true, title: 'The server is shutting down' },
  INTERNAL: { status: 500, retryable: true, title: 'Internal error' },
  CONFIG_INVALID: { status: 500, retryable: false, title: 'The configuration is not valid' },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

/** One problem with a request or resource, located by a field path such as `spec.filters[1].prefix`. */
export interface FieldProblem {
  readonly field: string;
  readonly message: string;
}

export interface TributaryErrorOptions {
  readonly problems?: readonly FieldProblem[];
  readonly cause?: unknown;
  /** Seconds a client should wait before retrying (503 responses). */
  readonly retryAfter?: number;
}

export class TributaryError extends Error {
  override readonly name = 'TributaryError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly problems: readonly FieldProblem[];
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, message?: string, options: TributaryErrorOptions = {}) {
    const entry = ErrorCodes[code];
    super(
      message ?? entry.title,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.code = code;
    this.status = entry.status;
    this.retryable = entry.retryable;
    this.problems = options.problems ?? [];
    this.retryAfter = options.retryAfter;
  }
}

export function isTributaryError(error: unknown): error is TributaryError {
  return error instanceof TributaryError;
}

/** Throws VALIDATION_FAILED listing every problem, or returns when there are none. */
export function assertNoProblems(problems: readonly FieldProblem[], what = 'resource'): void {
  if (problems.length === 0) return;
  const summary = problems.map((p) => `${p.field}: ${p.message}`).join('; ');
  throw new TributaryError('VALIDATION_FAILED', `The ${what} is not valid: ${summary}`, {
    problems,
  });
}
