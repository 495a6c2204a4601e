/**
 * Broker ingress, Knative's path: `POST /{namespace}/{broker}` with CloudEvents in binary,
 * structured or batch mode. 202 only once the events are durable (DESIGN.md section 3).
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { decodeHttpMessage } from '../core/codec/index.js';
import { TributaryError } from '../core/errors.js';
import type { BrokerWriter } from '../broker/broker-writer.js';
import { OTHER_METHODS, rawBodies } from './raw-body.js';
import { RESERVED_NAMESPACES } from '../core/resources/validate.js';
import type { ControlPlane } from '../broker/control-plane.js';

export interface IngressOptions {
  readonly writer: BrokerWriter;
  readonly controlPlane: ControlPlane;
  readonly maxEventSize: number;
  readonly isClosing: () => boolean;
}

const ALLOW = 'POST, OPTIONS';

export function ingressPlugin(options: IngressOptions): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    rawBodies(app, options.maxEventSize);

    app.post<{ Params: { namespace: string; broker: string } }>(
      '/:namespace/:broker',
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

    app.options('/:namespace/:broker', async (_request, reply) =>
      reply
        .code(200)
        .header('allow', ALLOW)
        .header('webhook-allowed-origin', '*')
        .header('webhook-allowed-rate', '*')
        .send(),
    );

    app.route<{ Params: { namespace: string; broker: string } }>({
      method: [...OTHER_METHODS],
      url: '/:namespace/:broker',
      handler: async (request, reply) => {
        if (RESERVED_NAMESPACES.has(request.params.namespace)) {
          throw new TributaryError('NOT_FOUND', `Nothing at ${request.method} ${request.url}`);
        }
        void reply.header('allow', ALLOW);
        throw new TributaryError(
          'METHOD_NOT_ALLOWED',
          `${request.method} is not allowed here; events are sent with POST`,
        );
      },
    });
  };
}
