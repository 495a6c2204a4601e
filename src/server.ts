/**
 * The composition root: the only place that picks implementations. It opens the backend, starts
 * the control plane, mounts the HTTP surface, and shuts all of it down in order.
 */
import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import type { Backend } from './backends/contracts.js';
import { createEmbeddedBackend } from './backends/embedded/index.js';
import { BrokerWriter } from './broker/broker-writer.js';
import { ControlPlane } from './broker/control-plane.js';
import { ObserverHub } from './broker/observer.js';
import { destroyAgents, setOutboundPolicy } from './broker/http-sender.js';
import { OutboundPolicy } from './core/outbound.js';
import { ResourceService } from './broker/resource-service.js';
import { healthPlugin } from './api/health.js';
import { ingressPlugin } from './api/ingress.js';
import { managementPlugin } from './api/management.js';
import { webhooksPlugin } from './api/webhooks.js';
import { eventStreamPlugin } from './api/event-stream.js';
import { eventTypesPlugin } from './api/eventtypes.js';
import { subscriptionsPlugin } from './api/subscriptions.js';
import { EventTypeCatalog } from './broker/event-types.js';
import { metricsPlugin } from './api/metrics.js';
import { MeshMetrics } from './telemetry/metrics.js';
import { createTracing } from './telemetry/tracing.js';
import { consolePlugin } from './api/console.js';
import { PULLING_ADAPTERS, WEBHOOK_ADAPTERS } from './adapters/index.js';
import { thisProcess } from './sources/lease.js';
import { SourceRuntime } from './sources/runtime.js';
import { answerClientError, installProblemHandlers } from './api/problem.js';
import { openApiPlugin } from './api/openapi.js';
import { createAuth, loadTokens } from './api/auth.js';
import { redactUrls, type Config } from './config.js';
import { DEFAULT_BROKER, DEFAULT_NAMESPACE } from './core/resources/types.js';

/** Webhook delivery ids remembered at most (with --webhook-dedup-window): about 10 MB. */
const WEBHOOK_DEDUP_CAPACITY = 100_000;

export interface RunningServer {
  /** Base URL the server listens on, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  readonly log: FastifyBaseLogger;
  /** Stops accepting, finishes in-flight deliveries up to the shutdown timeout, closes the store. */
  close(): Promise<void>;
}

async function openBackend(config: Config, log: FastifyBaseLogger): Promise<Backend> {
  switch (config.backend) {
    case 'embedded':
      return createEmbeddedBackend({
        dataDir: config.dataDir,
        retentionMs: config.retention,
        maxSizeBytes: config.maxStoreSize,
      });
    case 'nats': {
      // Loaded only when chosen: the embedded backend does not pay for the NATS client.
      const { createNatsBackend } = await import('./backends/nats/index.js');
      // Nothing is written to --data-dir: streams, consumers and resources all live in NATS.
      return createNatsBackend({
        url: config.natsUrl,
        user: config.natsUser,
        password: config.natsPassword,
        token: config.natsToken,
        nkeySeedFile: config.natsNkeyFile,
        credentialsFile: config.natsCredsFile,
        tls: config.natsTls,
        tlsCaFile: config.natsTlsCa,
        tlsCertFile: config.natsTlsCert,
        tlsKeyFile: config.natsTlsKey,
        prefix: config.natsPrefix,
        streams: {
          replicas: config.natsReplicas,
          maxBytes: config.natsMaxBytes === 0 ? undefined : config.natsMaxBytes,
          duplicateWindowMs: config.natsDuplicateWindow,
          ackWaitMs: config.natsAckWait,
          maxAgeMs: config.retention,
        },
        deliveryWindowMs: config.webhookDedupWindow,
        onConnection: (up) => {
          if (up) log.info('NATS connection restored');
          else log.warn('NATS connection lost: the ingress answers 503 until it is back');
        },
      });
    }
    case 'kafka': {
      const { createKafkaBackend } = await import('./backends/kafka/index.js');
      // Nothing is written to --data-dir: topics and consumer groups live in Kafka.
      return createKafkaBackend({
        brokers: config.kafkaBrokers.split(','),
        prefix: config.kafkaPrefix,
        topics: {
          partitions: config.kafkaPartitions,
          replicationFactor: config.kafkaReplicationFactor,
          retentionMs: config.retention,
          topicTemplate: config.kafkaTopicTemplate,
          ...(config.kafkaTopicConfig === undefined
            ? {}
            : {
                configs: Object.fromEntries(
                  config.kafkaTopicConfig.split(',').map((entry) => {
                    const at = entry.indexOf('=');
                    return [entry.slice(0, at), entry.slice(at + 1)];
                  }),
                ),
              }),
        },
        ...(config.kafkaSaslMechanism === undefined
          ? {}
          : {
              sasl: {
                mechanism: config.kafkaSaslMechanism,
                username: config.kafkaSaslUsername ?? '',
                password: config.kafkaSaslPassword ?? '',
              },
            }),
        tls: config.kafkaTls,
        tlsCaFile: config.kafkaTlsCa,
        tlsCertFile: config.kafkaTlsCert,
        tlsKeyFile: config.kafkaTlsKey,
        deliveryWindowMs: config.webhookDedupWindow,
        onConnection: (up) => {
          if (up) log.info('Kafka connection restored');
          else log.warn('Kafka cannot take writes: the ingress answers 503 until it can');
        },
        onConsumerStopped: (what, error, restartInMs) =>
          log.error(
            { err: error },
            `${what} stopped on an error kafkajs does not retry; another starts in ${restartInMs} ms`,
          ),
      });
    }
  }
}

/** Where the backend keeps its data, for the start-up log line (no credentials). */
function storeLocation(config: Config): Record<string, string> {
  switch (config.backend) {
    case 'embedded':
      return { dataDir: config.dataDir };
    case 'nats':
      return { nats: redactUrls(config.natsUrl), natsPrefix: config.natsPrefix };
    case 'kafka':
      return { kafka: config.kafkaBrokers, kafkaPrefix: config.kafkaPrefix };
  }
}

export async function startServer(config: Config): Promise<RunningServer> {
  const app = Fastify({
    logger: { level: config.logLevel },
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.maxEventSize,
    // A client gets --request-timeout for its whole request (headers and body), then a 408 and
    // the connection is closed; Node checks the deadlines every second at most.
    requestTimeout: config.requestTimeout,
    http: {
      maxHeaderSize: config.maxHeaderSize,
      headersTimeout: config.requestTimeout,
      requestTimeout: config.requestTimeout,
      connectionsCheckingInterval: Math.min(1000, config.requestTimeout),
    },
    clientErrorHandler: answerClientError,
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: true },
    return503OnClosing: true,
  });
  const log = app.log;
  let ready = false;
  let closing = false;

  // Bearer tokens (docs/security.md), checked before anything is opened; none: the API is open.
  const tokens = loadTokens(config, process.env);
  if (tokens.size === 0 && !['127.0.0.1', '::1', 'localhost'].includes(config.host)) {
    log.warn(
      { host: config.host },
      'no API tokens are configured: anyone who can reach this address can change and read every namespace (set --tokens-file or TRIBUTARY_ADMIN_TOKEN)',
    );
  }
  const backend = await openBackend(config, log);
  // Metrics, tracing, the event type catalog and live tails watch the mesh through this hub.
  const observers = new ObserverHub((error) => log.warn({ err: error }, 'an observer failed'));
  const metrics = new MeshMetrics();
  // Tracing is off unless --otel-endpoint or OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set.
  const tracing = createTracing({ endpoint: config.otelEndpoint, env: process.env });
  observers.add(metrics);
  observers.add(tracing.observer);
  const controlPlane = new ControlPlane({
    observers,
    backend,
    triggerConcurrency: config.triggerConcurrency,
    defaultTimeoutMs: config.deliveryTimeout,
    maxResponseBytes: config.maxEventSize,
    maxTtl: config.maxTtl,
    retentionMs: config.retention,
    log,
  });
  metrics.watchBacklog({
    triggers: () => controlPlane.subscribedTriggers(),
    backlog: (id, broker) => backend.eventLog.backlog(id, broker),
  });
  // Where deliveries may connect: checked when a resource is applied and at every connection.
  const rules = (list: string): string[] => (list === '' ? [] : list.split(','));
  const outbound = new OutboundPolicy({
    allowPrivate: config.outboundAllowPrivate,
    allowLinkLocal: config.outboundAllowLinkLocal,
    allow: rules(config.outboundAllow),
    deny: rules(config.outboundDeny),
  });
  setOutboundPolicy(outbound);
  const service = new ResourceService(backend.resources, controlPlane, outbound);
  const auth = createAuth({
    tokens,
    brokerRequiresToken: (namespace, name) => controlPlane.brokerRequiresToken(namespace, name),
  });
  const writer = new BrokerWriter({
    eventLog: backend.eventLog,
    controlPlane,
    maxTtl: config.maxTtl,
    onStoreError: (error) => log.error({ err: error }, 'could not store events'),
    observers,
    maxPendingBytes: config.maxPendingSize,
    onShedding: {
      started: () =>
        log.warn(
          { maxPendingSize: config.maxPendingSize },
          'the event store is not keeping up: shedding load with 503 OVERLOADED',
        ),
      ended: (refused) => log.info({ refused }, 'the event store caught up: load shedding ended'),
    },
  });
  metrics.watchPending(() => writer.pending());
  const sources = new SourceRuntime({
    writer,
    observers,
    adapters: WEBHOOK_ADAPTERS,
    pullingAdapters: PULLING_ADAPTERS,
    log,
    // Read when a source is applied, never per event.
    secrets: { env: process.env, dir: config.secretsDir },
    defaultTimeoutMs: config.deliveryTimeout,
    maxResponseBytes: config.maxEventSize,
    dedup: { windowMs: config.webhookDedupWindow, capacity: WEBHOOK_DEDUP_CAPACITY },
    ledger: backend.ledger,
    onLedgerError: (error) => log.warn({ err: error }, 'the delivery ledger failed'),
    brokerReady: (namespace, name) => controlPlane.readyBroker(namespace, name) !== undefined,
    leases: {
      store: backend.resources,
      holder: thisProcess(randomUUID()),
      ttlMs: config.sourceLeaseTtl,
    },
  });
  controlPlane.attachSources(sources);
  // The event types each broker stores and each source emits, counted and stored every few seconds.
  const eventTypes = new EventTypeCatalog({
    store: backend.resources,
    flushIntervalMs: config.eventTypesFlushInterval,
    onError: (error) => log.warn({ err: error }, 'could not store event type counts'),
    onLimit: (namespace, limit) =>
      log.warn({ namespace, limit }, 'too many event types; new ones are not counted'),
  });
  observers.add(eventTypes);

  try {
    await controlPlane.start();
    await eventTypes.start();
    // A new store gets the broker `default` in namespace `default`, as promised by the README.
    if (
      (await backend.resources.list('brokers')).length === 0 &&
      (await backend.resources.list('triggers')).length === 0
    ) {
      const checked = service.check(
        { metadata: { name: DEFAULT_BROKER } },
        'brokers',
        DEFAULT_NAMESPACE,
        DEFAULT_BROKER,
      );
      await service.put('brokers', checked.resource!);
    }

    installProblemHandlers(app);
    // First: the OpenAPI document learns every route registered after it.
    await app.register(openApiPlugin);
    // Right after: its onRequest hook guards every route registered after it.
    await app.register(auth.plugin);
    // Before the ingress: its hooks watch the ingress routes registered after it.
    await app.register(metricsPlugin({ metrics, tracing }));
    await app.register(
      healthPlugin({
        notReadyReason: () =>
          closing
            ? 'shutting down'
            : !ready
              ? 'starting'
              : backend.eventLog.isHealthy()
                ? undefined
                : 'the event store is failing',
      }),
    );
    await app.register(
      managementPlugin({
        service,
        controlPlane,
        eventLog: backend.eventLog,
        bodyLimit: config.maxEventSize,
        authorizeWrite: auth.authorizeWrite,
      }),
    );
    await app.register(
      ingressPlugin({
        writer,
        controlPlane,
        maxEventSize: config.maxEventSize,
        isClosing: () => closing,
      }),
    );
    await app.register(
      webhooksPlugin({
        runtime: sources,
        maxBody: config.webhookMaxBody,
        isClosing: () => closing,
      }),
    );
    await app.register(eventStreamPlugin({ observers, service }));
    await app.register(eventTypesPlugin({ catalog: eventTypes }));
    await app.register(subscriptionsPlugin({ service }));
    await app.register(consolePlugin());
    await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    await controlPlane.stop(Date.now());
    await app.close();
    await eventTypes.stop().catch(() => {});
    await backend.close();
    await tracing.shutdown();
    throw error;
  }

  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `http://${host}:${port}`;
  ready = true;
  log.info({ url, backend: backend.name, ...storeLocation(config) }, 'tributary ready');

  let closed: Promise<void> | undefined;
  return {
    url,
    log,
    close: () =>
      (closed ??= (async () => {
        closing = true;
        const deadline = Date.now() + config.shutdownTimeout;
        // Stop accepting first, so no event is acknowledged that the store will not keep.
        await app.close();
        await sources.stop();
        await controlPlane.stop(deadline);
        // After everything that stores events has stopped: the last counts are written.
        await eventTypes.stop();
        destroyAgents();
        await backend.close();
        await tracing.shutdown();
        log.info('tributary stopped');
      })()),
  };
}
