/**
 * Broker ingress, Knative's path: `POST /{namespace}/{broker}` with CloudEvents in binary,
 * structured or batch mode. 202 only once the events are durable (DESIGN.md section 3).
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { EventLog } from '../backends/contracts.js';
import { decodeHttpMessage } from '../core/codec/index.js';
import { BrokerExtensions, withAttribute } from '../core/event.js';
import { admitTtl } from '../core/ttl.js';
import { isTributaryError, TributaryError } from '../core/errors.js';
import { RESERVED_NAMESPACES } from '../core/resources/validate.js';
import type { ControlPlane } from '../broker/control-plane.js';

export interface IngressOptions {
  readonly eventLog: EventLog;
  readonly controlPlane: ControlPlane;
  readonly maxEventSize: number;
  /** knativebrokerttl given to events that arrive without one. */
  readonly maxTtl: number;
  readonly isClosing: () => boolean;
}

const ALLOW = 'POST, OPTIONS';

const OTHER_METHODS = ['GET', 'HEAD', 'PUT', 'DELETE', 'PATCH'] as const;

export function ingressPlugin(options: IngressOptions): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    // The ingress reads every body as raw bytes: the codec decides what they mean.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser(
      '*',
      { parseAs: 'buffer', bodyLimit: options.maxEventSize },
      (_req, body, done) => done(null, body),
    );

    app.post<{ Params: { namespace: string; broker: string } }>(
      '/:namespace/:broker',
      async (request, reply) => {
        const { namespace, broker } = request.params;
        if (options.isClosing()) {
          throw new TributaryError('SHUTTING_DOWN', undefined, { retryAfter: 1 });
        }
        const ref = options.controlPlane.readyBroker(namespace, broker);
        if (ref === undefined) {
          throw new TributaryError(
            'BROKER_NOT_FOUND',
            `Broker "${broker}" does not exist in namespace "${namespace}"`,
          );
        }
        const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        const { events } = decodeHttpMessage(request.headers, body);
        if (events.length > 0) {
          const arrival = new Date().toISOString();
          const stamped = events.map((event, i) => {
            const admitted = admitTtl(event, options.maxTtl);
            if (!admitted.ok) {
              options.controlPlane.countTtlExhausted(namespace, broker);
              const field =
                events.length > 1 ? `[${i}].${BrokerExtensions.ttl}` : BrokerExtensions.ttl;
              throw new TributaryError('INVALID_EVENT', admitted.reason, {
                problems: [{ field, message: admitted.reason }],
              });
            }
            return withAttribute(admitted.event, BrokerExtensions.arrivalTime, arrival);
          });
          try {
            await options.eventLog.append(ref, stamped);
          } catch (error) {
            if (isTributaryError(error) && error.code === 'NOT_FOUND') {
              throw new TributaryError(
                'BROKER_NOT_FOUND',
                `Broker "${broker}" does not exist in namespace "${namespace}"`,
              );
            }
            request.log.error({ err: error }, 'could not store events');
            throw new TributaryError('BACKEND_UNAVAILABLE', undefined, {
              cause: error,
              retryAfter: 1,
            });
          }
        }
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
