/**
 * Webhook endpoints of the GitHub and GitLab sources: `POST /webhooks/{namespace}/{source}`
 * (DESIGN.md section 3). The body is kept as raw bytes, since signatures are computed over them
 * and the event's data is the body byte for byte; the source's runtime does the rest.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { TributaryError } from '../core/errors.js';
import type { SourceRuntime } from '../sources/runtime.js';
import { OTHER_METHODS, rawBodies } from './raw-body.js';

export interface WebhooksOptions {
  readonly runtime: SourceRuntime;
  /** Largest body accepted; larger ones get 413 (GitHub sends at most 25 MB). */
  readonly maxBody: number;
  readonly isClosing: () => boolean;
}

const ROUTE = '/webhooks/:namespace/:source';

export function webhooksPlugin(options: WebhooksOptions): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    rawBodies(app, options.maxBody);

    app.post<{ Params: { namespace: string; source: string } }>(
      ROUTE,
      { bodyLimit: options.maxBody },
      async (request, reply) => {
        if (options.isClosing()) {
          throw new TributaryError('SHUTTING_DOWN', undefined, { retryAfter: 1 });
        }
        const { namespace, source } = request.params;
        const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        const answer = await options.runtime.receive(namespace, source, {
          headers: request.headers,
          body,
        });
        return reply.code(answer.status).send({ message: answer.message });
      },
    );

    app.route<{ Params: { namespace: string; source: string } }>({
      method: [...OTHER_METHODS],
      url: ROUTE,
      handler: async (request, reply) => {
        void reply.header('allow', 'POST');
        throw new TributaryError(
          'METHOD_NOT_ALLOWED',
          `${request.method} is not allowed here; webhooks are sent with POST`,
        );
      },
    });
  };
}
