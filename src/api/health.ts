/** `GET /healthz`: the process is alive. `GET /readyz`: it accepts events now. */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';

export interface HealthOptions {
  /** Undefined when ready; otherwise the reason it is not. */
  readonly notReadyReason: () => string | undefined;
}

export function healthPlugin(options: HealthOptions): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    app.get('/healthz', async () => ({ status: 'ok' }));
    app.get('/readyz', async (_request, reply) => {
      const reason = options.notReadyReason();
      return reason === undefined
        ? { status: 'ready' }
        : reply.code(503).header('retry-after', '1').send({ status: 'not ready', reason });
    });
  };
}
