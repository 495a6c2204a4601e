/**
 * The NATS JetStream backend (DESIGN.md section 4, docs/nats-backend.md): events in one stream per
 * broker, each trigger a durable pull consumer, resources in a KV bucket with a watch. Any number
 * of processes on one NATS share the work.
 */
import { TributaryError } from '../../core/errors.js';
import type { Backend } from '../contracts.js';
import { openNatsLink, type NatsConnectionOptions } from './connection.js';
import { NatsEventLog, type StreamOptions } from './event-log.js';
import { NatsLedger } from './ledger.js';
import { NatsResourceStore } from './resource-store.js';

export type { NatsConnectionOptions } from './connection.js';
export type { StreamOptions } from './event-log.js';

export interface NatsBackendOptions extends NatsConnectionOptions {
  /**
   * Prefix of every stream, subject, consumer and bucket name this backend creates (default
   * `tributary`): two deployments on one NATS with different prefixes do not see each other.
   * Letters, digits, `-` and `_`.
   */
  readonly prefix?: string;
  readonly streams?: StreamOptions;
  /** Told when the connection to NATS is lost (false) and when it is back (true). */
  readonly onConnection?: (up: boolean) => void;
  /** How long the delivery ledger keeps a webhook delivery id (default 24 hours). */
  readonly deliveryWindowMs?: number;
}

export const DEFAULT_PREFIX = 'tributary';
const DAY_MS = 24 * 60 * 60 * 1000;
const PREFIX = /^[A-Za-z0-9_-]{1,32}$/;

export async function createNatsBackend(options: NatsBackendOptions): Promise<Backend> {
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  if (!PREFIX.test(prefix)) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `NATS prefix "${prefix}": use 1 to 32 letters, digits, "-" or "_"`,
    );
  }
  const link = await openNatsLink(options);
  if (options.onConnection !== undefined) link.onStatus(options.onConnection);
  let eventLog: NatsEventLog | undefined;
  let resources: NatsResourceStore | undefined;
  let ledger: NatsLedger;
  try {
    eventLog = await NatsEventLog.open(link, prefix, options.streams ?? {});
    resources = await NatsResourceStore.open(link, prefix);
    ledger = await NatsLedger.open(link, prefix, options.deliveryWindowMs ?? DAY_MS);
  } catch (error) {
    await eventLog?.close().catch(() => {});
    await link.close();
    if (error instanceof TributaryError) throw error;
    throw new TributaryError(
      'BACKEND_UNAVAILABLE',
      `Cannot open the NATS backend at ${options.url}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const log = eventLog;
  const store = resources;
  let closing: Promise<void> | undefined;
  return {
    name: 'nats',
    eventLog: log,
    resources: store,
    ledger,
    close: () => {
      closing ??= (async () => {
        try {
          await log.close();
          await store.close();
        } finally {
          await link.close();
        }
      })();
      return closing;
    },
  };
}
