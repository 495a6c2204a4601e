/**
 * Broker ingress, Knative's path: `POST /{namespace}/{broker}` with CloudEvents in binary,
 * structured or batch mode. 202 only once the events are durable (DESIGN.md section 3).
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { decodeHttpMessage } from '../core/codec/index.js';
import { TributaryError } from '../core/errors.js';
import type { BrokerWriter } from '../broker/broker-writer.js';
import { rawBodies, refuseOtherMethods } from './raw-body.js';
import { RESERVED_NAMESPACES } from '../core/resources/validate.js';
import type { ControlPlane } from '../broker/control-plane.js';
import {
  documentOnlyResponses,
  empty,
  IngressBody,
  IngressHeaders,
  IngressParams,
  problems,
  routeSchema,
} from './schemas.js';

export interface IngressOptions {
  readonly writer: BrokerWriter;
  readonly controlPlane: ControlPlane;
  readonly maxEventSize: number;
  readonly isClosing: () => boolean;
}

const ALLOW = 'POST, OPTIONS';
const ROUTE = '/:namespace/:broker';

export function ingressPlugin(options: IngressOptions): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    rawBodies(app, options.maxEventSize);
    documentOnlyResponses(app);

    app.post<{ Params: { namespace: string; broker: string } }>(
      ROUTE,
      {
        schema: routeSchema({
          tag: 'ingress',
          operationId: 'sendEvents',
          summary: 'Send CloudEvents to a broker',
          description:
            'Binary mode (the attributes as ce- headers, the data as the body), structured mode (application/cloudevents+json) or batch mode (application/cloudevents-batch+json). Answers 202 once every event is durably stored.',
          params: IngressParams,
          request: { body: IngressBody, headers: IngressHeaders, optionalBody: true },
          response: {
            202: empty('Stored durably'),
            ...problems(400, 404, 413, 415, 503),
          },
        }),
      },
      async (request, reply) => {
        const { namespace, broker } = request.params;
        if (options.isClosing()) {
          throw new TributaryError('SHUTTING_DOWN', undefined, { retryAfter: 1 });
        }
        const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        // An unknown broker is answered before the body is decoded.
        options.writer.requireBroker(namespace, broker);
        const { events } = decodeHttpMessage(request.headers, body);
        await options.writer.write(namespace, broker, events);
        return reply.code(202).send();
      },
    );

    app.options(
      ROUTE,
      {
        schema: routeSchema({
          tag: 'ingress',
          operationId: 'ingressOptions',
          summary: 'The allowed methods, and the CloudEvents webhook validation headers',
          params: IngressParams,
          response: {
            200: {
              ...empty('Allowed: POST, OPTIONS'),
              headers: {
                allow: { type: 'string' },
                'webhook-allowed-origin': { type: 'string' },
                'webhook-allowed-rate': { type: 'string' },
              },
            },
            ...problems(400),
          },
        }),
      },
      async (_request, reply) =>
        reply
          .code(200)
          .header('allow', ALLOW)
          .header('webhook-allowed-origin', '*')
          .header('webhook-allowed-rate', '*')
          .send(),
    );

    refuseOtherMethods(app, {
      url: ROUTE,
      tag: 'ingress',
      operationPrefix: 'ingress',
      what: 'events',
      params: IngressParams,
      statuses: [400, 404, 405],
      allow: ALLOW,
      before: (request) => {
        const { namespace } = request.params as { namespace: string };
        if (RESERVED_NAMESPACES.has(namespace)) {
          throw new TributaryError('NOT_FOUND', `Nothing at ${request.method} ${request.url}`);
        }
      },
    });
  };
}
