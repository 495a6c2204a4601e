/**
 * `GET /metrics` (Prometheus text format), and the hooks that watch the broker ingress for metrics
 * and tracing without touching its plugin: every POST to `/:namespace/:broker` is timed and
 * traced from its arrival, and counted by its answer (events stored are counted through the
 * observer hub as they become durable; refusals here).
 *
 * Register it before the ingress plugin: its hooks apply to the routes registered after it.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { MeshMetrics } from '../telemetry/metrics.js';
import type { IngressSpan, MeshTracing } from '../telemetry/tracing.js';

export interface MetricsPluginOptions {
  readonly metrics: MeshMetrics;
  readonly tracing: MeshTracing;
}

/** The ingress route, as fastify names it. */
const INGRESS_ROUTE = '/:namespace/:broker';

type IngressParams = { namespace?: string; broker?: string };

function isIngress(request: FastifyRequest): boolean {
  return request.method === 'POST' && request.routeOptions.url === INGRESS_ROUTE;
}

export function metricsPlugin(options: MetricsPluginOptions): FastifyPluginAsync {
  const { metrics, tracing } = options;
  const spans = new WeakMap<FastifyRequest, IngressSpan>();

  const plugin: FastifyPluginAsync = async (app: FastifyInstance) => {
    if (tracing.enabled) {
      app.addHook('onRequest', (request, _reply, done) => {
        if (isIngress(request)) {
          const { namespace = '', broker = '' } = request.params as IngressParams;
          const span = tracing.ingressStarted(namespace, broker, request.headers);
          if (span !== undefined) spans.set(request, span);
        }
        done();
      });
      // After the body is read, before the handler stores the events.
      app.addHook('preHandler', (request, _reply, done) => {
        spans.get(request)?.received(request.body);
        done();
      });
    }

    app.addHook('onResponse', (request, reply, done) => {
      if (isIngress(request)) {
        const status = reply.statusCode;
        // 202: the events were counted when they became durable.
        if (status !== 202) {
          const { namespace = '', broker = '' } = request.params as IngressParams;
          const type = request.headers['ce-type'];
          metrics.ingressRefused(
            namespace,
            broker,
            typeof type === 'string' && type !== '' ? type : undefined,
            status,
          );
        }
        const span = spans.get(request);
        if (span !== undefined) {
          spans.delete(request);
          span.end(status);
        }
      }
      done();
    });

    app.get(
      '/metrics',
      {
        schema: {
          summary: 'Prometheus metrics',
          description:
            'Ingress, dispatch and delivery counters and latency histograms, trigger backlogs, source counters and Node.js process metrics, in the Prometheus text exposition format (docs/observability.md).',
          tags: ['operations'],
          response: {
            200: {
              description: 'The metrics in the Prometheus text format (version 0.0.4)',
              content: { 'text/plain': { schema: { type: 'string' } } },
            },
          },
        },
      },
      async (_request, reply) => {
        const { contentType, text } = await metrics.exposition();
        return reply.type(contentType).send(text);
      },
    );
  };
  // Not encapsulated: the hooks must see the ingress routes of the sibling plugin.
  (plugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
  return plugin;
}
