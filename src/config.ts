/**
 * Server configuration: one table of options drives the CLI flags, the TRIBUTARY_* environment
 * variables, the YAML config file keys, `--help`, and validation. The result is validated once at
 * start and frozen; nothing reads process.env after that (DESIGN.md section 8).
 *
 * Precedence, highest first: command-line flag, environment variable, config file, default.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { TributaryError, type FieldProblem } from './core/errors.js';
import { parseDuration } from './core/duration.js';
import { outboundRuleProblem } from './core/outbound.js';

export const BACKENDS = ['embedded', 'nats', 'kafka'] as const;
export const SASL_MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;
export type SaslMechanismName = (typeof SASL_MECHANISMS)[number];
export type BackendName = (typeof BACKENDS)[number];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly backend: BackendName;
  /** Largest request body the ingress accepts, in bytes. */
  readonly maxEventSize: number;
  /** How long a client may take to send a whole request (headers and body), in ms; then 408. */
  readonly requestTimeout: number;
  /** Largest request line and header block accepted, in bytes; larger gets 431. */
  readonly maxHeaderSize: number;
  /** Largest size of the embedded database in bytes; 0: no limit. */
  readonly maxStoreSize: number;
  readonly maxPendingSize: number;
  /** How long a shutdown waits for in-flight deliveries, in ms. */
  readonly shutdownTimeout: number;
  /** Deliveries in flight per trigger. */
  readonly triggerConcurrency: number;
  /** Hops an event may take (knativebrokerttl given to events that arrive without one). */
  readonly maxTtl: number;
  /** Per-attempt delivery timeout when a delivery spec sets none, in ms. */
  readonly deliveryTimeout: number;
  /** How long delivered events are kept for replay, in ms. */
  readonly retention: number;
  /** Largest webhook body (GitHub, GitLab) accepted, in bytes. */
  readonly webhookMaxBody: number;
  /** How long a webhook delivery id is remembered so that a redelivery is not stored twice, in ms. */
  readonly webhookDedupWindow: number;
  /** How long an exclusive source's lease lasts without a renewal (failover time), in ms. */
  readonly sourceLeaseTtl: number;
  /** How often the event type catalog writes its counts, in ms. */
  readonly eventTypesFlushInterval: number;
  /** Directory of the files `secretKeyRef: {name, key}` names (`<dir>/<name>/<key>`). */
  readonly secretsDir: string;
  readonly logLevel: LogLevel;
  /** NATS server URLs, comma separated (nats backend). */
  readonly natsUrl: string;
  readonly natsUser?: string;
  readonly natsPassword?: string;
  readonly natsToken?: string;
  /** File holding a user NKey seed (`SU...`). */
  readonly natsNkeyFile?: string;
  /** A `.creds` file (user JWT and NKey seed). */
  readonly natsCredsFile?: string;
  /** Use TLS, trusting the system's CAs unless natsTlsCa is set. */
  readonly natsTls: boolean;
  readonly natsTlsCa?: string;
  readonly natsTlsCert?: string;
  readonly natsTlsKey?: string;
  /** Prefix of every stream, subject, consumer and bucket of the nats backend. */
  readonly natsPrefix: string;
  /** Replicas of each stream the nats backend creates. */
  readonly natsReplicas: number;
  /** Largest size of one broker's stream in bytes; 0: no limit. */
  readonly natsMaxBytes: number;
  /** JetStream de-duplication window of published events, in ms. */
  readonly natsDuplicateWindow: number;
  /** How long JetStream waits for a sign of life of a delivery before handing it out again, in ms. */
  readonly natsAckWait: number;
  /** Bootstrap servers of the kafka backend, comma separated `host:port`. */
  readonly kafkaBrokers: string;
  readonly kafkaPrefix: string;
  /** Partitions of a new broker topic. */
  readonly kafkaPartitions: number;
  readonly kafkaReplicationFactor: number;
  /** Name of a broker's topic: `{prefix}`, `{namespace}`, `{broker}`. */
  readonly kafkaTopicTemplate: string;
  /** More configs of new broker topics, `name=value,name=value`. */
  readonly kafkaTopicConfig?: string;
  readonly kafkaSaslMechanism?: SaslMechanismName;
  readonly kafkaSaslUsername?: string;
  readonly kafkaSaslPassword?: string;
  readonly kafkaTls: boolean;
  readonly kafkaTlsCa?: string;
  readonly kafkaTlsCert?: string;
  readonly kafkaTlsKey?: string;
  /** OTLP/HTTP endpoint that turns tracing on (else OTEL_EXPORTER_OTLP_*); absent: tracing off. */
  readonly otelEndpoint?: string;
  /** YAML file of the API's bearer tokens (docs/security.md); absent: no tokens from a file. */
  readonly tokensFile?: string;
  /** One token with write access to every namespace (docs/security.md). */
  readonly adminToken?: string;
  /** Deliveries may go to loopback and private addresses (docs/outbound.md). */
  readonly outboundAllowPrivate: boolean;
  /** Deliveries may go to link-local addresses (169.254/16, fe80::/10; metadata excepted). */
  readonly outboundAllowLinkLocal: boolean;
  /** CIDRs, IPs and host names deliveries may always reach, comma separated ('' for none). */
  readonly outboundAllow: string;
  /** CIDRs, IPs and host names deliveries never reach, comma separated ('' for none). */
  readonly outboundDeny: string;
}

type Kind =
  | 'port'
  | 'string'
  | 'backend'
  | 'size'
  | 'duration'
  | 'count'
  | 'logLevel'
  | 'boolean'
  | 'urlList'
  | 'hostList'
  | 'saslMechanism'
  | 'topicTemplate'
  | 'topicConfig'
  | 'prefix'
  | 'httpUrl'
  | 'outboundRules';

export interface OptionSpec {
  readonly key: keyof Config;
  readonly flag: string;
  readonly kind: Kind;
  /** Smallest value of a size option (default 1KiB); 0 allows 0 to mean "no limit". */
  readonly min?: number;
  /** Largest value of a count option (default 100000). */
  readonly max?: number;
  /** The value when no source sets one; none: the option is absent from the Config. */
  readonly default?: string;
  readonly help: string;
}

export const OPTIONS: readonly OptionSpec[] = [
  {
    key: 'port',
    flag: 'port',
    kind: 'port',
    default: '8080',
    help: 'TCP port to listen on (0 picks a free one).',
  },
  {
    key: 'host',
    flag: 'host',
    kind: 'string',
    default: '127.0.0.1',
    help: 'Address to listen on. Use 0.0.0.0 to accept connections from other machines.',
  },
  {
    key: 'dataDir',
    flag: 'data-dir',
    kind: 'string',
    default: './data',
    help: 'Directory of the embedded backend (its SQLite database and lock file); not used by the nats backend.',
  },
  {
    key: 'backend',
    flag: 'backend',
    kind: 'backend',
    default: 'embedded',
    help: `Where events and resources are kept: ${BACKENDS.join(', ')}.`,
  },
  {
    key: 'maxEventSize',
    flag: 'max-event-size',
    kind: 'size',
    default: '1MiB',
    help: 'Largest request the ingress accepts (bytes, or with KiB/MiB); larger ones get 413.',
  },
  {
    key: 'requestTimeout',
    flag: 'request-timeout',
    kind: 'duration',
    default: '30s',
    help: 'How long a client may take to send a whole request (headers and body); slower ones get 408 and are disconnected.',
  },
  {
    key: 'maxHeaderSize',
    flag: 'max-header-size',
    kind: 'size',
    default: '16KiB',
    help: 'Largest request line plus headers accepted (bytes, or with KiB); larger ones get 431.',
  },
  {
    key: 'maxStoreSize',
    flag: 'max-store-size',
    kind: 'size',
    min: 0,
    default: '0',
    help: 'Largest size of the embedded database (0: no limit); when full, the ingress answers 503.',
  },
  {
    key: 'maxPendingSize',
    flag: 'max-pending-size',
    kind: 'size',
    min: 0,
    default: '64MiB',
    help: 'Largest total size of events waiting for the event store to acknowledge them (0: no limit); beyond it the ingress sheds load with 503 and Retry-After.',
  },
  {
    key: 'shutdownTimeout',
    flag: 'shutdown-timeout',
    kind: 'duration',
    default: '30s',
    help: 'On SIGTERM/SIGINT, how long to wait for in-flight deliveries (e.g. 30s, PT30S).',
  },
  {
    key: 'triggerConcurrency',
    flag: 'trigger-concurrency',
    kind: 'count',
    default: '100',
    help: 'Deliveries in flight at once per trigger.',
  },
  {
    key: 'maxTtl',
    flag: 'max-ttl',
    kind: 'count',
    default: '255',
    help: 'Hops an event may take through replies (knativebrokerttl); an event with none left gets 400.',
  },
  {
    key: 'deliveryTimeout',
    flag: 'delivery-timeout',
    kind: 'duration',
    default: '30s',
    help: 'Timeout of one delivery attempt when the delivery spec sets none.',
  },
  {
    key: 'retention',
    flag: 'retention',
    kind: 'duration',
    default: '24h',
    help: 'How long events are kept after every trigger is done with them (for replay).',
  },
  {
    key: 'webhookMaxBody',
    flag: 'webhook-max-body',
    kind: 'size',
    default: '25MiB',
    help: 'Largest GitHub or GitLab webhook body accepted (GitHub sends at most 25 MB); larger ones get 413.',
  },
  {
    key: 'webhookDedupWindow',
    flag: 'webhook-dedup-window',
    kind: 'duration',
    default: '24h',
    help: 'How long a webhook delivery id is remembered, so that a redelivery is not forwarded twice.',
  },
  {
    key: 'sourceLeaseTtl',
    flag: 'source-lease-ttl',
    kind: 'duration',
    default: '15s',
    help: 'How long a replica holds an ApiServerSource without renewing its lease; another takes over after that.',
  },
  {
    key: 'eventTypesFlushInterval',
    flag: 'event-types-flush-interval',
    kind: 'duration',
    default: '5s',
    help: 'How often the event type catalog adds the counts of this replica to the store.',
  },
  {
    key: 'secretsDir',
    flag: 'secrets-dir',
    kind: 'string',
    default: './secrets',
    help: "Where a source's secretKeyRef {name, key} is read: the file <dir>/<name>/<key>, as Kubernetes mounts secrets.",
  },
  {
    key: 'logLevel',
    flag: 'log-level',
    kind: 'logLevel',
    default: 'info',
    help: `Log level: ${LOG_LEVELS.join(', ')}.`,
  },
  {
    key: 'natsUrl',
    flag: 'nats-url',
    kind: 'urlList',
    default: 'nats://127.0.0.1:4222',
    help: 'NATS server(s) of the nats backend, comma separated (nats://host:port, tls://host:port).',
  },
  {
    key: 'natsUser',
    flag: 'nats-user',
    kind: 'string',
    help: 'NATS user name; needs --nats-password.',
  },
  {
    key: 'natsPassword',
    flag: 'nats-password',
    kind: 'string',
    help: 'NATS password of --nats-user (prefer the environment or the config file to a flag).',
  },
  {
    key: 'natsToken',
    flag: 'nats-token',
    kind: 'string',
    help: 'NATS authentication token (prefer the environment or the config file to a flag).',
  },
  {
    key: 'natsNkeyFile',
    flag: 'nats-nkey-file',
    kind: 'string',
    help: 'File holding a NATS user NKey seed (SU...).',
  },
  {
    key: 'natsCredsFile',
    flag: 'nats-creds-file',
    kind: 'string',
    help: 'NATS credentials file (.creds: a user JWT and its NKey seed).',
  },
  {
    key: 'natsTls',
    flag: 'nats-tls',
    kind: 'boolean',
    default: 'false',
    help: 'Connect to NATS over TLS, trusting the system CAs (implied by the --nats-tls-* files).',
  },
  {
    key: 'natsTlsCa',
    flag: 'nats-tls-ca',
    kind: 'string',
    help: 'PEM file of the CA(s) that signed the NATS server certificate.',
  },
  {
    key: 'natsTlsCert',
    flag: 'nats-tls-cert',
    kind: 'string',
    help: 'PEM client certificate for NATS (TLS client authentication); needs --nats-tls-key.',
  },
  {
    key: 'natsTlsKey',
    flag: 'nats-tls-key',
    kind: 'string',
    help: 'PEM private key of --nats-tls-cert.',
  },
  {
    key: 'natsPrefix',
    flag: 'nats-prefix',
    kind: 'prefix',
    default: 'tributary',
    help: 'Prefix of the NATS streams, subjects, consumers and buckets (letters, digits, - and _).',
  },
  {
    key: 'natsReplicas',
    flag: 'nats-replicas',
    kind: 'count',
    max: 5,
    default: '1',
    help: 'Replicas of each JetStream stream (1 to 5; at most the servers of the cluster).',
  },
  {
    key: 'natsMaxBytes',
    flag: 'nats-max-bytes',
    kind: 'size',
    min: 0,
    default: '0',
    help: "Largest size of one broker's JetStream stream (bytes, or with KiB/MiB/GiB; 0: no limit).",
  },
  {
    key: 'natsDuplicateWindow',
    flag: 'nats-duplicate-window',
    kind: 'duration',
    default: '2m',
    help: 'How long JetStream drops a repeated event (same source and id); at most --retention.',
  },
  {
    key: 'natsAckWait',
    flag: 'nats-ack-wait',
    kind: 'duration',
    default: '30s',
    help: 'How long a delivery of a crashed replica waits before another replica takes it over.',
  },
  {
    key: 'kafkaBrokers',
    flag: 'kafka-brokers',
    kind: 'hostList',
    default: '127.0.0.1:9092',
    help: 'Bootstrap servers of the kafka backend, comma separated host:port.',
  },
  {
    key: 'kafkaPrefix',
    flag: 'kafka-prefix',
    kind: 'prefix',
    default: 'tributary',
    help: 'Prefix of the Kafka topics and consumer groups (letters, digits, - and _).',
  },
  {
    key: 'kafkaPartitions',
    flag: 'kafka-partitions',
    kind: 'count',
    max: 10_000,
    default: '10',
    help: 'Partitions of a new broker topic (events of one partitionkey stay in one partition).',
  },
  {
    key: 'kafkaReplicationFactor',
    flag: 'kafka-replication-factor',
    kind: 'count',
    max: 32,
    default: '1',
    help: 'Replication factor of the topics Tributary creates (at most the brokers of the cluster).',
  },
  {
    key: 'kafkaTopicTemplate',
    flag: 'kafka-topic-template',
    kind: 'topicTemplate',
    default: '{prefix}.{namespace}.{broker}',
    help: "Name of a broker's topic, with {prefix}, {namespace} and {broker} (both of the last two).",
  },
  {
    key: 'kafkaTopicConfig',
    flag: 'kafka-topic-config',
    kind: 'topicConfig',
    help: 'More configs of new broker topics, name=value,name=value (e.g. compression.type=lz4).',
  },
  {
    key: 'kafkaSaslMechanism',
    flag: 'kafka-sasl-mechanism',
    kind: 'saslMechanism',
    help: `SASL mechanism: ${SASL_MECHANISMS.join(', ')}; needs --kafka-sasl-username and --kafka-sasl-password.`,
  },
  {
    key: 'kafkaSaslUsername',
    flag: 'kafka-sasl-username',
    kind: 'string',
    help: 'SASL user name.',
  },
  {
    key: 'kafkaSaslPassword',
    flag: 'kafka-sasl-password',
    kind: 'string',
    help: 'SASL password (prefer the environment or the config file to a flag).',
  },
  {
    key: 'kafkaTls',
    flag: 'kafka-tls',
    kind: 'boolean',
    default: 'false',
    help: 'Connect to Kafka with TLS, trusting the system CAs (implied by the three below).',
  },
  {
    key: 'kafkaTlsCa',
    flag: 'kafka-tls-ca',
    kind: 'string',
    help: "PEM file of the CA that signed the Kafka brokers' certificates.",
  },
  {
    key: 'kafkaTlsCert',
    flag: 'kafka-tls-cert',
    kind: 'string',
    help: 'PEM client certificate for Kafka; needs --kafka-tls-key.',
  },
  {
    key: 'kafkaTlsKey',
    flag: 'kafka-tls-key',
    kind: 'string',
    help: 'PEM key of the Kafka client certificate.',
  },
  {
    key: 'otelEndpoint',
    flag: 'otel-endpoint',
    kind: 'httpUrl',
    help: 'OTLP/HTTP collector URL (e.g. http://127.0.0.1:4318; /v1/traces is added) that turns tracing on; else OTEL_EXPORTER_OTLP_ENDPOINT. Off by default.',
  },
  {
    key: 'tokensFile',
    flag: 'tokens-file',
    kind: 'string',
    help: 'YAML file of API bearer tokens, each {name, token | tokenEnv | tokenSha256, namespaces, access: read|write}; without tokens the API is open (docs/security.md).',
  },
  {
    key: 'adminToken',
    flag: 'admin-token',
    kind: 'string',
    help: 'A bearer token with write access to every namespace (at least 16 characters; prefer the environment to a flag).',
  },
  {
    key: 'outboundAllowPrivate',
    flag: 'outbound-allow-private',
    kind: 'boolean',
    default: 'true',
    help: 'Deliver to loopback and private addresses (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7).',
  },
  {
    key: 'outboundAllowLinkLocal',
    flag: 'outbound-allow-link-local',
    kind: 'boolean',
    default: 'false',
    help: 'Deliver to link-local addresses (169.254/16, fe80::/10); cloud metadata addresses stay refused.',
  },
  {
    key: 'outboundAllow',
    flag: 'outbound-allow',
    kind: 'outboundRules',
    default: '',
    help: 'CIDRs, IPs and host names (*.example.com) deliveries may always reach, comma separated.',
  },
  {
    key: 'outboundDeny',
    flag: 'outbound-deny',
    kind: 'outboundRules',
    default: '',
    help: 'CIDRs, IPs and host names deliveries never reach, comma separated (the most specific rule wins).',
  },
];

/** Environment variable of an option: --data-dir -> TRIBUTARY_DATA_DIR. */
export function envName(flag: string): string {
  return `TRIBUTARY_${flag.toUpperCase().replaceAll('-', '_')}`;
}

const DECIMAL = /^\d+$/;
const SIZE = /^(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?$/i;
const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
};
const SHORT_DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const SHORT_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Parses durations as `500ms`, `30s`, `5m`, `24h`, `7d`, or ISO-8601 (`PT30S`). */
export function parseHumanDuration(text: string): number | undefined {
  const short = SHORT_DURATION.exec(text.trim());
  if (short) return Math.round(Number(short[1]) * (SHORT_UNITS[short[2]!] ?? 1));
  return parseDuration(text.trim());
}

const TRUE_WORDS = ['true', 'yes', 'on', '1'];
const FALSE_WORDS = ['false', 'no', 'off', '0'];
const PREFIX = /^[A-Za-z0-9_-]{1,32}$/;
const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/;

/** `text` with any `user:password@` taken out of URLs, for messages. */
export function redactUrls(text: string): string {
  return text.replace(/([a-z]+:\/\/)[^/@,\s]*@/gi, '$1***@');
}

/** Why one entry of a NATS server list is not usable, or undefined when it is. */
function natsServerProblem(entry: string): string | undefined {
  if (entry === '') return 'has an empty entry';
  if (entry.includes('://')) {
    let url: URL;
    try {
      url = new URL(entry);
    } catch {
      return `"${redactUrls(entry)}" is not a URL`;
    }
    if (url.protocol !== 'nats:' && url.protocol !== 'tls:') {
      return `"${redactUrls(entry)}": use nats:// or tls://`;
    }
    if (url.hostname === '') return `"${redactUrls(entry)}" has no host`;
    return undefined;
  }
  const m = HOST_PORT.exec(entry);
  if (m === null || (m[1] !== undefined && Number(m[1]) > 65535)) {
    return `"${redactUrls(entry)}" is neither a nats:// URL nor host:port`;
  }
  return undefined;
}

function convert(spec: OptionSpec, raw: unknown): { value?: unknown; problem?: string } {
  if (spec.kind === 'boolean' && typeof raw === 'boolean') return { value: raw };
  const text = typeof raw === 'number' ? String(raw) : raw;
  if (typeof text !== 'string') {
    return {
      problem: spec.kind === 'boolean' ? 'must be true or false' : 'must be a string or a number',
    };
  }
  switch (spec.kind) {
    case 'port': {
      const n = DECIMAL.test(text.trim()) ? Number(text) : NaN;
      return Number.isInteger(n) && n >= 0 && n <= 65535
        ? { value: n }
        : { problem: `"${text}" is not a port number (0-65535)` };
    }
    case 'count': {
      const n = DECIMAL.test(text.trim()) ? Number(text) : NaN;
      const max = spec.max ?? 100_000;
      return Number.isInteger(n) && n >= 1 && n <= max
        ? { value: n }
        : { problem: `"${text}" is not a whole number between 1 and ${max}` };
    }
    case 'size': {
      const m = SIZE.exec(text.trim());
      const n = m ? Number(m[1]) * (SIZE_UNITS[(m[2] ?? 'b').toLowerCase()] ?? 1) : NaN;
      const min = spec.min ?? 1024;
      return Number.isSafeInteger(n) && (n >= 1024 || (min === 0 && n === 0))
        ? { value: n }
        : {
            problem: `"${text}" is not a size of at least 1KiB${min === 0 ? ' (or 0)' : ''} (e.g. 1048576, 512KiB, 1MiB)`,
          };
    }
    case 'duration': {
      const ms = parseHumanDuration(text);
      return ms !== undefined && ms > 0
        ? { value: ms }
        : { problem: `"${text}" is not a positive duration (e.g. 500ms, 30s, 5m, PT30S)` };
    }
    case 'backend':
      return (BACKENDS as readonly string[]).includes(text)
        ? { value: text }
        : { problem: `"${text}" is not a backend; choose one of ${BACKENDS.join(', ')}` };
    case 'logLevel':
      return (LOG_LEVELS as readonly string[]).includes(text)
        ? { value: text }
        : { problem: `"${text}" is not a log level; choose one of ${LOG_LEVELS.join(', ')}` };
    case 'string':
      return text.trim() === '' ? { problem: 'must not be empty' } : { value: text };
    case 'boolean': {
      const word = text.trim().toLowerCase();
      if (TRUE_WORDS.includes(word)) return { value: true };
      if (FALSE_WORDS.includes(word)) return { value: false };
      return { problem: `"${text}" is not true or false (also yes/no, on/off, 1/0)` };
    }
    case 'urlList': {
      if (text.trim() === '') return { problem: 'must not be empty' };
      const entries = text.split(',').map((s) => s.trim());
      for (const entry of entries) {
        const problem = natsServerProblem(entry);
        if (problem !== undefined) return { problem: `server list ${problem}` };
      }
      return { value: entries.join(',') };
    }
    case 'hostList': {
      const entries = text.split(',').map((entry) => entry.trim());
      for (const entry of entries) {
        const m = /^([^\s:/]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(entry);
        if (m === null || Number(m[2]) < 1 || Number(m[2]) > 65535) {
          return { problem: `"${entry}" is not host:port` };
        }
      }
      return { value: entries.join(',') };
    }
    case 'topicTemplate': {
      const t = text.trim();
      if (!t.includes('{namespace}') || !t.includes('{broker}')) {
        return { problem: `"${text}" must contain {namespace} and {broker}` };
      }
      const sample = t.replaceAll(/\{(prefix|namespace|broker)\}/g, 'x');
      return /^[A-Za-z0-9._-]+$/.test(sample)
        ? { value: t }
        : {
            problem: `"${text}" may hold only letters, digits, ".", "_", "-" and the placeholders`,
          };
    }
    case 'topicConfig': {
      const entries = text
        .split(',')
        .map((e) => e.trim())
        .filter((e) => e !== '');
      for (const entry of entries) {
        if (!/^[a-z0-9.]+=[^=]+$/.test(entry)) return { problem: `"${entry}" is not name=value` };
      }
      return entries.length > 0 ? { value: entries.join(',') } : { problem: 'must not be empty' };
    }
    case 'saslMechanism': {
      const lower = text.trim().toLowerCase();
      return (SASL_MECHANISMS as readonly string[]).includes(lower)
        ? { value: lower }
        : {
            problem: `"${text}" is not a SASL mechanism; choose one of ${SASL_MECHANISMS.join(', ')}`,
          };
    }
    case 'prefix':
      return PREFIX.test(text)
        ? { value: text }
        : { problem: `"${text}" is not 1 to 32 letters, digits, "-" or "_"` };
    case 'outboundRules': {
      if (text.trim() === '') return { value: '' };
      const entries = text.split(',').map((entry) => entry.trim());
      for (const entry of entries) {
        const problem = outboundRuleProblem(entry);
        if (problem !== undefined) return { problem };
      }
      return { value: entries.join(',') };
    }
    case 'httpUrl': {
      let url: URL | undefined;
      try {
        url = new URL(text.trim());
      } catch {
        url = undefined;
      }
      return url !== undefined && (url.protocol === 'http:' || url.protocol === 'https:')
        ? { value: text.trim() }
        : { problem: `"${redactUrls(text)}" is not an http:// or https:// URL` };
    }
  }
}

export interface ConfigSources {
  /** Parsed command-line values by flag name (strings). */
  readonly flags: Readonly<Record<string, string | undefined>>;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Path of a YAML config file, from --config or TRIBUTARY_CONFIG. */
  readonly configFile?: string;
}

/**
 * Reads and parses a YAML file the configuration names (`what`: "config file", "the tokens
 * file"); CONFIG_INVALID when it cannot be read or is not YAML.
 */
export function readYamlFile(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `Cannot read ${what} ${path}: ${(error as Error).message}`,
    );
  }
  try {
    return parseYaml(text) as unknown;
  } catch (error) {
    const first = (error as Error).message.split('\n')[0];
    throw new TributaryError(
      'CONFIG_INVALID',
      `${what[0]!.toUpperCase()}${what.slice(1)} ${path} is not valid YAML: ${first}`,
    );
  }
}

function readConfigFile(path: string): Record<string, unknown> {
  const parsed = readYamlFile(path, 'config file');
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `Config file ${path} must hold a mapping of option names to values`,
    );
  }
  return parsed as Record<string, unknown>;
}

/** Builds the frozen configuration; throws CONFIG_INVALID listing every problem. */
export function loadConfig(sources: ConfigSources): Config {
  const file = sources.configFile === undefined ? {} : readConfigFile(sources.configFile);
  const problems: FieldProblem[] = [];
  const known = new Set(OPTIONS.map((o) => o.key as string));
  for (const key of Object.keys(file)) {
    if (!known.has(key)) problems.push({ field: `config file: ${key}`, message: 'unknown option' });
  }
  const result: Record<string, unknown> = {};
  /** The field each value came from (`--port`, `TRIBUTARY_PORT`, `config file: port`, `default`). */
  const origin = new Map<keyof Config, string>();
  for (const spec of OPTIONS) {
    const env = envName(spec.flag);
    const candidates: [string, unknown][] = [
      [`--${spec.flag}`, sources.flags[spec.flag]],
      // An empty variable (TRIBUTARY_PORT=) counts as not set, as shells and compose files use it.
      [env, sources.env[env] === '' ? undefined : sources.env[env]],
      [`config file: ${spec.key}`, file[spec.key]],
      ['default', spec.default],
    ];
    const found = candidates.find(([, value]) => value !== undefined && value !== null);
    // An option without a default that no source sets stays absent.
    if (found === undefined) continue;
    const [field, raw] = found;
    origin.set(spec.key, field);
    const { value, problem } = convert(spec, raw);
    if (problem !== undefined) problems.push({ field, message: problem });
    else result[spec.key] = value;
  }
  problems.push(...crossCheck(result, origin));
  if (problems.length > 0) {
    const detail = problems.map((p) => `${p.field}: ${p.message}`).join('\n  ');
    throw new TributaryError('CONFIG_INVALID', `Invalid configuration:\n  ${detail}`, { problems });
  }
  return Object.freeze(result as unknown as Config);
}

/** How an option is named in messages: `--nats-user (TRIBUTARY_NATS_USER, natsUser)`. */
function allNames(key: keyof Config): string {
  const spec = OPTIONS.find((o) => o.key === key)!;
  return `--${spec.flag} (${envName(spec.flag)}, ${spec.key})`;
}

/** Problems of options that are valid alone but not together. */
function crossCheck(
  config: Partial<Config>,
  origin: ReadonlyMap<keyof Config, string>,
): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const given = (key: keyof Config): boolean => config[key] !== undefined;
  const pairs: [keyof Config, keyof Config, string][] = [
    ['natsUser', 'natsPassword', 'a NATS user needs a password'],
    ['natsPassword', 'natsUser', 'a NATS password needs a user'],
    ['natsTlsCert', 'natsTlsKey', 'a TLS client certificate needs its key'],
    ['natsTlsKey', 'natsTlsCert', 'a TLS client key needs its certificate'],
    ['kafkaSaslMechanism', 'kafkaSaslUsername', 'a SASL mechanism needs a user name'],
    ['kafkaSaslMechanism', 'kafkaSaslPassword', 'a SASL mechanism needs a password'],
    ['kafkaSaslUsername', 'kafkaSaslMechanism', 'a SASL user name needs a mechanism'],
    ['kafkaSaslPassword', 'kafkaSaslMechanism', 'a SASL password needs a mechanism'],
    ['kafkaTlsCert', 'kafkaTlsKey', 'a TLS client certificate needs its key'],
    ['kafkaTlsKey', 'kafkaTlsCert', 'a TLS client key needs its certificate'],
  ];
  for (const [key, needed, message] of pairs) {
    if (given(key) && !given(needed)) {
      problems.push({ field: origin.get(key)!, message: `${message}: set ${allNames(needed)}` });
    }
  }
  const auth = (['natsUser', 'natsToken', 'natsNkeyFile', 'natsCredsFile'] as const).filter(given);
  if (auth.length > 1) {
    problems.push({
      field: auth.map((key) => origin.get(key)!).join(', '),
      message:
        'choose one NATS authentication: a user and password, a token, an NKey seed file or a credentials file',
    });
  }
  if (
    config.backend === 'nats' &&
    config.natsDuplicateWindow !== undefined &&
    config.retention !== undefined &&
    config.natsDuplicateWindow > config.retention
  ) {
    // JetStream refuses a stream whose duplicate window is longer than its maximum age.
    problems.push({
      field: (['natsDuplicateWindow', 'retention'] as const)
        .map((key) => {
          const field = origin.get(key)!;
          return field === 'default'
            ? `--${OPTIONS.find((o) => o.key === key)!.flag} (default)`
            : field;
        })
        .join(', '),
      message: 'the NATS duplicate window must not be longer than the retention',
    });
  }
  return problems;
}
