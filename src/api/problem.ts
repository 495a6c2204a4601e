/**
 * Every error leaves as application/problem+json (RFC 9457) with a stable `code` and, for
 * validation, every problem with its field path.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { ConnectionError, FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { ErrorCodes, isTributaryError, TributaryError, type ErrorCode } from '../core/errors.js';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export function sendProblem(reply: FastifyReply, error: TributaryError): FastifyReply {
  const body: Record<string, unknown> = {
    type: `urn:tributary:error:${error.code.toLowerCase().replaceAll('_', '-')}`,
    title: ErrorCodes[error.code].title,
    status: error.status,
    code: error.code,
    detail: error.message,
  };
  if (error.problems.length > 0) body.errors = error.problems;
  if (error.retryAfter !== undefined) void reply.header('retry-after', String(error.retryAfter));
  return reply.code(error.status).type(PROBLEM_CONTENT_TYPE).send(body);
}

/** Fastify's own errors (body too large, bad JSON...) mapped onto the catalog. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BAD_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BAD_REQUEST',
};

/** A route schema's validation failure (path parameters, query string): one problem per issue. */
function validationError(error: Partial<FastifyError>): TributaryError | undefined {
  if (!Array.isArray(error.validation)) return undefined;
  const problems = error.validation.map((issue) => {
    const segments = issue.instancePath
      .split('/')
      .slice(1)
      .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
    const missing = issue.params.missingProperty ?? issue.params.additionalProperty;
    if (typeof missing === 'string') segments.push(missing);
    const field = segments.reduce(
      (path, s) => (/^\d+$/.test(s) ? `${path}[${s}]` : path === '' ? s : `${path}.${s}`),
      '',
    );
    return { field: field || (error.validationContext ?? 'request'), message: issue.message ?? '' };
  });
  const summary = problems.map((p) => `${p.field}: ${p.message}`).join('; ');
  return new TributaryError('BAD_REQUEST', `The request is not valid: ${summary}`, {
    problems,
    cause: error,
  });
}

export function toTributaryError(error: unknown): TributaryError {
  if (isTributaryError(error)) return error;
  const fastifyError = error as Partial<FastifyError>;
  const invalid = validationError(fastifyError);
  if (invalid !== undefined) return invalid;
  const code = fastifyError.code === undefined ? undefined : FASTIFY_CODES[fastifyError.code];
  if (code !== undefined) return new TributaryError(code, fastifyError.message, { cause: error });
  if (
    fastifyError.statusCode !== undefined &&
    fastifyError.statusCode >= 400 &&
    fastifyError.statusCode < 500
  ) {
    const clientCode: ErrorCode =
      fastifyError.statusCode === 413
        ? 'PAYLOAD_TOO_LARGE'
        : fastifyError.statusCode === 415
          ? 'UNSUPPORTED_MEDIA_TYPE'
          : fastifyError.statusCode === 404
            ? 'NOT_FOUND'
            : 'BAD_REQUEST';
    return new TributaryError(clientCode, fastifyError.message, { cause: error });
  }
  return new TributaryError('INTERNAL', 'Internal error', { cause: error });
}

export function installProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => {
    const problem = toTributaryError(error);
    const fields = { code: problem.code, status: problem.status, method: request.method };
    // A refusal is the client's business (debug); a 5xx is ours (error, with the cause), except
    // load shedding, which is logged once per episode (server.ts) rather than per request.
    if (problem.status >= 500 && problem.code !== 'OVERLOADED')
      request.log.error({ ...fields, err: error }, 'request failed');
    else
      request.log.debug(
        { ...fields, url: request.url, detail: problem.message },
        'request refused',
      );
    // The rest of a body that is too large is not read: the connection is closed after the answer.
    if (problem.code === 'PAYLOAD_TOO_LARGE') void reply.header('connection', 'close');
    return sendProblem(reply, problem);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      new TributaryError('NOT_FOUND', `Nothing at ${request.method} ${request.url}`),
    ),
  );
}

/** Node's parser errors that are the client's fault, and the problem each is answered with. */
function clientProblem(error: ConnectionError): TributaryError {
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') return new TributaryError('REQUEST_TIMEOUT');
  if (error.code === 'HPE_HEADER_OVERFLOW') return new TributaryError('HEADERS_TOO_LARGE');
  return new TributaryError('BAD_REQUEST', 'The request is not valid HTTP/1.1');
}

/**
 * Fastify's `clientErrorHandler`: a request Node could not parse (bad syntax, headers over
 * --max-header-size, or not received within --request-timeout) is answered with a problem, written
 * straight to the socket, which is then closed. Nothing is written when the connection is already
 * gone or an answer has begun on it.
 */
export function answerClientError(
  this: FastifyInstance,
  error: ConnectionError,
  socket: Socket,
): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const problem = clientProblem(error);
  this.log.debug({ err: error, code: problem.code }, 'connection refused');
  const answering = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && answering?.headersSent !== true) {
    const body = JSON.stringify({
      type: `urn:tributary:error:${problem.code.toLowerCase().replaceAll('_', '-')}`,
      title: ErrorCodes[problem.code].title,
      status: problem.status,
      code: problem.code,
      detail: problem.message,
    });
    socket.write(
      `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status] ?? ''}\r\n` +
        `content-type: ${PROBLEM_CONTENT_TYPE}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
        `connection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}
