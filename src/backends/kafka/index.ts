/**
 * The Apache Kafka backend (docs/kafka-backend.md): a topic per broker, a consumer group per
 * trigger, resources in a compacted topic. Any number of processes on one Kafka cluster share the
 * work through the consumer groups.
 */
import { readFileSync } from 'node:fs';
import { Kafka, logLevel, type KafkaConfig, type SASLOptions } from 'kafkajs';
import { TributaryError } from '../../core/errors.js';
import type { Backend } from '../contracts.js';
import { kafkaError } from './errors.js';
import { KafkaEventLog, type TopicOptions } from './event-log.js';
import { KafkaLedger } from './ledger.js';
import { KafkaResourceStore } from './resource-store.js';
import type { ViewClients } from './topic-view.js';

export type { TopicOptions } from './event-log.js';

export type SaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';

export interface KafkaBackendOptions {
  /** Bootstrap servers, `host:port`. */
  readonly brokers: readonly string[];
  /**
   * Prefix of every topic and consumer group (default `tributary`): two deployments on one
   * cluster with different prefixes do not see each other.
   */
  readonly prefix?: string;
  readonly topics?: TopicOptions;
  readonly sasl?: {
    readonly mechanism: SaslMechanism;
    readonly username: string;
    readonly password: string;
  };
  /** TLS: true trusts the system CAs; PEM files for a private CA and a client certificate. */
  readonly tls?: boolean;
  readonly tlsCaFile?: string;
  readonly tlsCertFile?: string;
  readonly tlsKeyFile?: string;
  readonly clientId?: string;
  /** How long one request to Kafka may take before the ingress gives up with 503 (default 5 s). */
  readonly requestTimeoutMs?: number;
  /** Told when a write fails for want of Kafka (false) and when Kafka answers again (true). */
  readonly onConnection?: (up: boolean) => void;
  readonly onConsumerStopped?: ViewClients['onConsumerStopped'];
  /** How long the delivery ledger keeps a webhook delivery id (default 24 hours). */
  readonly deliveryWindowMs?: number;
}

export const DEFAULT_PREFIX = 'tributary';
const DAY_MS = 24 * 60 * 60 * 1000;
const PREFIX = /^[A-Za-z0-9_-]{1,64}$/;
/** While unhealthy, how often Kafka is asked whether it is back. */
const PROBE_INTERVAL_MS = 1_000;

function readPem(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new TributaryError('CONFIG_INVALID', `Cannot read the Kafka ${what} ${file}`, {
      cause: error,
    });
  }
}

/** TLS material as PEM text: a private CA, a client certificate and its key. */
export interface KafkaTlsMaterial {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

export interface KafkaClientSettings {
  readonly clientId: string;
  readonly brokers: readonly string[];
  readonly requestTimeoutMs: number;
  /** undefined: plain text; true: TLS trusting the system CAs; material: TLS with it. */
  readonly tls?: true | KafkaTlsMaterial;
  readonly sasl?: {
    readonly mechanism: SaslMechanism;
    readonly username: string;
    readonly password: string;
  };
}

/** The kafkajs client configuration the backend and the KafkaSource share. */
export function kafkaClientConfig(settings: KafkaClientSettings): KafkaConfig {
  const tls = settings.tls;
  const sasl: SASLOptions | undefined =
    settings.sasl === undefined
      ? undefined
      : {
          mechanism: settings.sasl.mechanism,
          username: settings.sasl.username,
          password: settings.sasl.password,
        };
  return {
    clientId: settings.clientId,
    brokers: [...settings.brokers],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3_000,
    requestTimeout: settings.requestTimeoutMs,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 2_000 },
    ...(tls === undefined
      ? {}
      : {
          ssl: {
            ...(tls === true || tls.ca === undefined ? {} : { ca: [tls.ca] }),
            ...(tls === true || tls.cert === undefined ? {} : { cert: tls.cert }),
            ...(tls === true || tls.key === undefined ? {} : { key: tls.key }),
          },
        }),
    ...(sasl === undefined ? {} : { sasl }),
  };
}

export function kafkaConfig(options: KafkaBackendOptions): KafkaConfig {
  const tlsWanted =
    options.tls === true ||
    options.tlsCaFile !== undefined ||
    options.tlsCertFile !== undefined ||
    options.tlsKeyFile !== undefined;
  return kafkaClientConfig({
    clientId: options.clientId ?? 'tributary',
    brokers: options.brokers,
    requestTimeoutMs: options.requestTimeoutMs ?? 5_000,
    ...(tlsWanted
      ? {
          tls: {
            ...(options.tlsCaFile === undefined ? {} : { ca: readPem(options.tlsCaFile, 'CA') }),
            ...(options.tlsCertFile === undefined
              ? {}
              : { cert: readPem(options.tlsCertFile, 'client certificate') }),
            ...(options.tlsKeyFile === undefined
              ? {}
              : { key: readPem(options.tlsKeyFile, 'client key') }),
          },
        }
      : {}),
    ...(options.sasl === undefined ? {} : { sasl: options.sasl }),
  });
}

export async function createKafkaBackend(options: KafkaBackendOptions): Promise<Backend> {
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  if (!PREFIX.test(prefix)) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `Kafka prefix "${prefix}": use 1 to 64 letters, digits, "-" or "_"`,
    );
  }
  if (options.brokers.length === 0) {
    throw new TributaryError('CONFIG_INVALID', 'Kafka needs at least one bootstrap server');
  }
  const kafka = new Kafka(kafkaConfig(options));
  const admin = kafka.admin();
  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: false });
  let eventLog: KafkaEventLog | undefined;
  let resources: KafkaResourceStore | undefined;
  let ledger: KafkaLedger | undefined;
  try {
    await admin.connect();
    await producer.connect();
    const clients: ViewClients = {
      kafka,
      admin,
      producer,
      replicationFactor: options.topics?.replicationFactor ?? 1,
      onConsumerStopped: options.onConsumerStopped,
    };
    eventLog = await KafkaEventLog.open(clients, prefix, options.topics ?? {});
    resources = await KafkaResourceStore.open(clients, prefix);
    ledger = await KafkaLedger.open(clients, prefix, options.deliveryWindowMs ?? DAY_MS);
  } catch (error) {
    await eventLog?.close().catch(() => {});
    await resources?.close().catch(() => {});
    await producer.disconnect().catch(() => {});
    await admin.disconnect().catch(() => {});
    if (error instanceof TributaryError) throw error;
    const reason = kafkaError(
      error,
      `Cannot open the Kafka backend at ${options.brokers.join(',')}`,
    );
    throw reason;
  }
  const log = eventLog;
  const store = resources;
  const deliveries = ledger;

  // Health: an append that fails marks the log unhealthy; a probe marks it healthy again.
  let probing: NodeJS.Timeout | undefined;
  const probe = (): void => {
    probing = setTimeout(() => {
      admin
        .describeCluster()
        .then(() => {
          log.setHealthy(true);
          probing = undefined;
          options.onConnection?.(true);
        })
        .catch(() => probe());
    }, PROBE_INTERVAL_MS);
    probing.unref();
  };
  log.onUnhealthy(() => {
    options.onConnection?.(false);
    if (probing === undefined) probe();
  });

  let closing: Promise<void> | undefined;
  return {
    name: 'kafka',
    eventLog: log,
    resources: store,
    ledger: deliveries,
    close: () => {
      closing ??= (async () => {
        if (probing !== undefined) clearTimeout(probing);
        try {
          await log.close();
          await store.close();
          await deliveries.close();
        } finally {
          await producer.disconnect().catch(() => {});
          await admin.disconnect().catch(() => {});
        }
      })();
      return closing;
    },
  };
}
