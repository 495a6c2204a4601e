/** `GET /healthz`: the process is alive. `GET /readyz`: it accepts events now. */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { TributaryError } from '../core/errors.js';
import { sendProblem } from './problem.js';
import { documentOnlyResponses, json, problems, routeSchema } from './schemas.js';

/** The reason `notReadyReason` gives while the server stops. */
export const SHUTTING_DOWN = 'shutting down';

export interface HealthOptions {
  /** Undefined when ready; otherwise the reason it is not. */
  readonly notReadyReason: () => string | undefined;
}

const statusBody = (values: string[]) => ({
  type: 'object',
  required: ['status'],
  properties: { status: { type: 'string', enum: values } },
});

export function healthPlugin(options: HealthOptions): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    documentOnlyResponses(app);

    app.get(
      '/healthz',
      {
        schema: routeSchema({
          tag: 'operations',
          operationId: 'getLiveness',
          summary: 'Liveness: the process is alive',
          response: { 200: json('Alive', statusBody(['ok'])) },
        }),
      },
      async () => ({ status: 'ok' }),
    );

    app.get(
      '/readyz',
      {
        schema: routeSchema({
          tag: 'operations',
          operationId: 'getReadiness',
          summary: 'Readiness: events are accepted now',
          response: {
            200: json('Ready', statusBody(['ready'])),
            ...problems(503),
          },
        }),
      },
      async (_request, reply) => {
        const reason = options.notReadyReason();
        if (reason === undefined) return { status: 'ready' };
        // A problem like every other error, with Retry-After: 1; sent here rather than thrown, so
        // that a probe of a starting or stopping server is not logged as a failed request.
        const code = reason === SHUTTING_DOWN ? 'SHUTTING_DOWN' : 'BACKEND_UNAVAILABLE';
        return sendProblem(
          reply,
          new TributaryError(code, `Not ready: ${reason}`, { retryAfter: 1 }),
        );
      },
    );
  };
}
