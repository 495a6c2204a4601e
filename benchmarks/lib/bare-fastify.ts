/**
 * The ingress baseline "a fastify route that answers 202 without doing anything": the same fastify
 * version and server options as Tributary's (src/server.ts), the same raw-body parsing as its
 * ingress (src/api/ingress.ts), and nothing else. Run on the server core; prints its URL.
 */
import Fastify, { LogController } from 'fastify';

const app = Fastify({
  logger: { level: 'info' },
  logController: new LogController({ disableRequestLogging: true }),
  bodyLimit: 1024 * 1024,
  forceCloseConnections: 'idle',
  routerOptions: { ignoreTrailingSlash: true },
  return503OnClosing: true,
});
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
app.post('/:namespace/:broker', async (_request, reply) => reply.code(202).send());

await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address();
const port = typeof address === 'object' && address !== null ? address.port : 0;
process.stdout.write(`${JSON.stringify({ bareReady: `http://127.0.0.1:${port}` })}\n`);
process.on('SIGTERM', () => {
  void app.close().then(() => process.exit(0));
});
