/**
 * What the ingress and the webhook endpoints share: bodies read as raw bytes whatever their
 * content type (the CloudEvents codec, or a signature over the exact bytes, decides what they
 * mean), and the methods they refuse with 405.
 */
import type { FastifyInstance } from 'fastify';

/** Methods other than POST and OPTIONS, answered 405 with `Allow`. */
export const OTHER_METHODS = ['GET', 'HEAD', 'PUT', 'DELETE', 'PATCH'] as const;

/** In this plugin's scope, every body is a Buffer of at most `limit` bytes (413 above). */
export function rawBodies(app: FastifyInstance, limit: number): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: limit }, (_req, body, done) =>
    done(null, body),
  );
}
