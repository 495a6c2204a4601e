/**
 * What the ingress and the webhook endpoints share: bodies read as raw bytes whatever their
 * content type (the CloudEvents codec, or a signature over the exact bytes, decides what they
 * mean), and the methods they refuse with 405.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { TributaryError } from '../core/errors.js';
import { problems, routeSchema, type RouteDoc } from './schemas.js';

/** Methods other than POST and OPTIONS, answered 405 with `Allow`. */
export const OTHER_METHODS = ['GET', 'HEAD', 'PUT', 'DELETE', 'PATCH'] as const;

/** In this plugin's scope, every body is a Buffer of at most `limit` bytes (413 above). */
export function rawBodies(app: FastifyInstance, limit: number): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: limit }, (_req, body, done) =>
    done(null, body),
  );
}

export interface RefusedMethods {
  readonly url: string;
  readonly tag: RouteDoc['tag'];
  /** `ingress` gives operation ids like `ingressGetNotAllowed`. */
  readonly operationPrefix: string;
  /** What is sent with POST, for the summary and the message: "events", "webhooks". */
  readonly what: string;
  readonly params: RouteDoc['params'];
  readonly statuses: readonly number[];
  readonly allow: string;
  /** Runs first; may throw its own error (e.g. NOT_FOUND for a reserved path). */
  readonly before?: (request: FastifyRequest) => void;
}

/**
 * Answers OTHER_METHODS with 405 and `Allow`, one route per method so that each has its own
 * operation in the OpenAPI document.
 */
export function refuseOtherMethods(app: FastifyInstance, spec: RefusedMethods): void {
  for (const method of OTHER_METHODS) {
    const name = method.charAt(0) + method.slice(1).toLowerCase();
    app.route({
      method,
      url: spec.url,
      schema: routeSchema({
        tag: spec.tag,
        operationId: `${spec.operationPrefix}${name}NotAllowed`,
        summary: `${method} is not allowed: ${spec.what} are sent with POST`,
        params: spec.params,
        response: problems(...spec.statuses),
      }),
      // HEAD is a route of its own here, not the one fastify derives from GET.
      exposeHeadRoute: false,
      ...(method === 'HEAD' ? { config: { swagger: { exposeHeadRoute: true } } } : {}),
      handler: async (request, reply) => {
        spec.before?.(request);
        void reply.header('allow', spec.allow);
        throw new TributaryError(
          'METHOD_NOT_ALLOWED',
          `${request.method} is not allowed here; ${spec.what} are sent with POST`,
        );
      },
    });
  }
}
