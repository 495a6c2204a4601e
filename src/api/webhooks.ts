/**
 * Webhook endpoints of the GitHub and GitLab sources: `POST /webhooks/{namespace}/{source}`
 * (DESIGN.md section 3). The body is kept as raw bytes, since signatures are computed over them
 * and the event's data is the body byte for byte; the source's runtime does the rest.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { TributaryError } from '../core/errors.js';
import type { SourceRuntime } from '../sources/runtime.js';
import { rawBodies, refuseOtherMethods } from './raw-body.js';
import {
  documentOnlyResponses,
  json,
  problems,
  routeSchema,
  WebhookBody,
  WebhookHeaders,
  WebhookParams,
} from './schemas.js';

export interface WebhooksOptions {
  readonly runtime: SourceRuntime;
  /** Largest body accepted; larger ones get 413 (GitHub sends at most 25 MB). */
  readonly maxBody: number;
  readonly isClosing: () => boolean;
}

const ROUTE = '/webhooks/:namespace/:source';

const Answer = {
  type: 'object',
  properties: { message: { type: 'string' } },
};

export function webhooksPlugin(options: WebhooksOptions): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    rawBodies(app, options.maxBody);
    documentOnlyResponses(app);

    app.post<{ Params: { namespace: string; source: string } }>(
      ROUTE,
      {
        bodyLimit: options.maxBody,
        schema: routeSchema({
          tag: 'webhooks',
          operationId: 'receiveWebhook',
          summary: 'A GitHub or GitLab webhook delivery for a source',
          description:
            "Point the repository's webhook here. The body is kept byte for byte (signatures are checked over it) and becomes the event's data; the source's sink gets the event.",
          params: WebhookParams,
          request: { body: WebhookBody, headers: WebhookHeaders },
          response: {
            '2XX': json(
              'Accepted: stored in the broker, delivered to the direct sink, or a duplicate or ping answered',
              Answer,
            ),
            ...problems(400, 401, 404, 413, 502, 503),
          },
        }),
      },
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

    refuseOtherMethods(app, {
      url: ROUTE,
      tag: 'webhooks',
      operationPrefix: 'webhook',
      what: 'webhooks',
      params: WebhookParams,
      statuses: [400, 405],
      allow: 'POST',
    });
  };
}
