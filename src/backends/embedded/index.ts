/**
 * The embedded backend (DESIGN.md section 4): one SQLite database in a data dir holds the event
 * logs and the resources. One process per data dir (a lock file). Writes go through one group
 * commit queue (writer.ts): one transaction and one fsync per batch of queued writes.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { isTributaryError, TributaryError } from '../../core/errors.js';
import type { Backend, BrokerRef } from '../contracts.js';
import type { CacheLimits } from './cache.js';
import { EmbeddedEventLog } from './event-log.js';
import { acquireDataDirLock } from './lock.js';
import { EmbeddedLedger } from './ledger.js';
import { EmbeddedResourceStore } from './resource-store.js';
import { prepareDatabase } from './schema.js';
import { rejection, warn, Writer, type WriterStats } from './writer.js';

export const DATABASE_FILE = 'tributary.db';
export { LOCK_FILE } from './lock.js';

export interface EmbeddedBackendOptions {
  /** Created if missing; the database is `${dataDir}/tributary.db`. */
  readonly dataDir: string;
  /**
   * An event is deleted once every subscription of its broker is done with it and it is older than
   * this (or than its broker's own retention, `ensureBroker(broker, { retentionMs })`). Default 24
   * hours.
   */
  readonly retentionMs?: number;
  /** How often retention runs. Default 60 seconds. */
  readonly sweepIntervalMs?: number;
  /**
   * Largest size of the database file in bytes; beyond it writes fail as on a full disk and the
   * ingress answers 503 until retention frees room. Absent or 0: no limit.
   */
  readonly maxSizeBytes?: number;
  /** Bounds of each broker's cache of recently appended events (tuning and tests). */
  readonly cacheLimits?: CacheLimits;
}

export type EmbeddedStats = WriterStats;

export interface EmbeddedBackend extends Backend {
  /** Group-commit counters: how many transactions committed how many operations. */
  stats(): EmbeddedStats;
  /** Runs retention now; resolves with how many events it deleted. */
  sweep(): Promise<number>;
  /** Runs a PRAGMA on the database (operations and tests, e.g. `max_page_count`). */
  pragma(source: string): unknown;
  /**
   * The subscription's cursor as committed: every event of the broker up to this seq is done for it,
   * except those waiting for a retry (operations and tests). Undefined when there is no such
   * subscription.
   */
  durableCursor(broker: BrokerRef, id: string): number | undefined;
}

export const DEFAULT_RETENTION_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_SWEEP_INTERVAL_MS = 60_000;

function checkOptions(options: EmbeddedBackendOptions): void {
  const problems: string[] = [];
  if (typeof options.dataDir !== 'string' || options.dataDir === '')
    problems.push('dataDir is required');
  if (options.retentionMs !== undefined && !(options.retentionMs >= 0)) {
    problems.push('retentionMs must be >= 0');
  }
  if (options.maxSizeBytes !== undefined && !(options.maxSizeBytes >= 0)) {
    problems.push('maxSizeBytes must be >= 0');
  }
  if (options.sweepIntervalMs !== undefined && !(options.sweepIntervalMs > 0)) {
    problems.push('sweepIntervalMs must be > 0');
  }
  if (problems.length > 0) {
    throw new TributaryError('CONFIG_INVALID', `Embedded backend: ${problems.join('; ')}`);
  }
}

export function createEmbeddedBackend(options: EmbeddedBackendOptions): Promise<EmbeddedBackend> {
  try {
    return Promise.resolve(open(options));
  } catch (error) {
    return rejection(error);
  }
}

function open(options: EmbeddedBackendOptions): EmbeddedBackend {
  checkOptions(options);
  const retentionMs = options.retentionMs ?? DEFAULT_RETENTION_MS;
  const sweepIntervalMs = options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
  mkdirSync(options.dataDir, { recursive: true });
  const lock = acquireDataDirLock(options.dataDir);
  let db: Database.Database | undefined;
  let writer: Writer;
  let eventLog: EmbeddedEventLog;
  let resources: EmbeddedResourceStore;
  let ledger: EmbeddedLedger;
  try {
    db = new Database(join(options.dataDir, DATABASE_FILE));
    prepareDatabase(db);
    if (options.maxSizeBytes !== undefined && options.maxSizeBytes > 0) {
      const pageSize = db.pragma('page_size', { simple: true }) as number;
      db.pragma(`max_page_count = ${Math.max(1, Math.floor(options.maxSizeBytes / pageSize))}`);
    }
    const probe = db.prepare("UPDATE meta SET value = value WHERE key = 'revision'");
    writer = new Writer(db, () => {
      probe.run();
    });
    eventLog = new EmbeddedEventLog(db, writer, { cacheLimits: options.cacheLimits });
    resources = new EmbeddedResourceStore(db, writer);
    ledger = new EmbeddedLedger(db, writer);
  } catch (error) {
    db?.close();
    lock.release();
    if (error instanceof TributaryError) throw error;
    throw new TributaryError(
      'BACKEND_UNAVAILABLE',
      `Cannot open the embedded store in ${options.dataDir}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const database = db;

  let sweeping: Promise<number> | undefined;
  const sweep = (): Promise<number> => {
    sweeping ??= eventLog.sweep(Date.now(), retentionMs).finally(() => {
      sweeping = undefined;
    });
    return sweeping;
  };
  const sweepTimer = setInterval(() => {
    sweep().catch((error: unknown) => {
      if (!isTributaryError(error) || error.code !== 'SHUTTING_DOWN') {
        warn('retention sweep failed', error);
      }
    });
  }, sweepIntervalMs);
  sweepTimer.unref();

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      clearInterval(sweepTimer);
      try {
        await eventLog.close();
        await resources.close();
        writer.close();
      } finally {
        database.close();
        lock.release();
      }
    })();
    return closing;
  };

  return {
    name: 'embedded',
    eventLog,
    resources,
    ledger,
    close,
    stats: () => writer.stats(),
    sweep,
    pragma: (source) => database.pragma(source),
    durableCursor: (broker, id) => eventLog.durableCursor(broker, id),
  };
}
