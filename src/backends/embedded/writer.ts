/**
 * Group commit. Every write is queued; one flush, scheduled with setImmediate, runs all queued
 * operations in one transaction (one fsync), then settles their promises. Under load the batches
 * grow, so throughput does not pay one fsync per write.
 *
 * Each operation runs inside its own savepoint: an operation that throws (NOT_FOUND, CONFLICT...)
 * is rolled back and rejected alone. A storage failure (disk full, I/O error...) or a failed
 * COMMIT rolls the whole transaction back and rejects every operation of the batch with
 * BACKEND_UNAVAILABLE: nothing of it is applied.
 */
import type { Database, Statement } from 'better-sqlite3';
import { TributaryError } from '../../core/errors.js';

/** Work that piggybacks on every commit (for example the subscriptions' cursors). */
export interface CommitHook {
  /** True when the hook has something to write, so a flush is worth a transaction. */
  hasWork(): boolean;
  /** Runs inside the transaction, after the queued operations. */
  beforeCommit(): void;
  afterCommit(): void;
  afterRollback(): void;
  /** Runs once the batch's promises are settled (after a commit or a rollback). */
  afterFlush?(): void;
}

export interface WriterStats {
  /** Transactions committed. */
  readonly commits: number;
  /** Transactions rolled back because of a storage failure. */
  readonly failedCommits: number;
  /** Operations committed (one append of many events is one operation). */
  readonly operations: number;
  /** The most operations one transaction committed. */
  readonly largestBatch: number;
}

interface QueuedOperation {
  run(): unknown;
  onCommit: ((value: unknown) => void) | undefined;
  resolve(value: unknown): void;
  reject(error: unknown): void;
  ok: boolean;
  value: unknown;
  error: unknown;
}

/** While unhealthy, a small write is tried this often, so health comes back without traffic. */
const PROBE_INTERVAL_MS = 1000;

const STORAGE_FAILURE =
  /^SQLITE_(FULL|IOERR|CORRUPT|NOMEM|CANTOPEN|READONLY|BUSY|LOCKED|NOTADB|PROTOCOL|INTERRUPT|NOLFS|PERM|ABORT)/;

/** True for SQLite errors that mean the database cannot store anything right now. */
export function isStorageFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && STORAGE_FAILURE.test(code);
}

export function storageUnavailable(cause: unknown): TributaryError {
  const detail = cause instanceof Error ? `: ${cause.message}` : '';
  return new TributaryError('BACKEND_UNAVAILABLE', `The embedded store cannot write${detail}`, {
    cause,
    retryAfter: 1,
  });
}

export class Writer {
  private queue: QueuedOperation[] = [];
  private scheduled = false;
  private flushing = false;
  private closed = false;
  private readonly hooks: CommitHook[] = [];
  private healthy = true;
  private counters = { commits: 0, failedCommits: 0, operations: 0, largestBatch: 0 };
  private readonly begin: Statement;
  private readonly commit: Statement;
  private readonly rollback: Statement;
  private readonly savepoint: Statement;
  private readonly release: Statement;
  private readonly rollbackTo: Statement;
  private probeTimer: NodeJS.Timeout | undefined;

  /**
   * @param probe a small real write (it must touch a page) tried while unhealthy: an ingress that
   *   refuses events while the store is unhealthy would otherwise never see it recover
   */
  constructor(
    private readonly db: Database,
    private readonly probe?: () => void,
  ) {
    this.begin = db.prepare('BEGIN');
    this.commit = db.prepare('COMMIT');
    this.rollback = db.prepare('ROLLBACK');
    this.savepoint = db.prepare('SAVEPOINT op');
    this.release = db.prepare('RELEASE op');
    this.rollbackTo = db.prepare('ROLLBACK TO op');
  }

  addHook(hook: CommitHook): void {
    this.hooks.push(hook);
  }

  isHealthy(): boolean {
    return this.healthy;
  }

  stats(): WriterStats {
    return { ...this.counters };
  }

  /**
   * Queues `run` for the next transaction. The promise resolves with its result once the
   * transaction committed, after `onCommit` ran; it rejects with what `run` threw (nothing of that
   * operation is applied), or with BACKEND_UNAVAILABLE when the transaction failed.
   */
  enqueue<T>(run: () => T, onCommit?: (value: T) => void): Promise<T> {
    if (this.closed) return Promise.reject(shuttingDown());
    return new Promise<T>((resolve, reject) => {
      this.queue.push({
        run,
        onCommit: onCommit as ((value: unknown) => void) | undefined,
        resolve,
        reject,
        ok: false,
        value: undefined,
        error: undefined,
      });
      this.schedule();
    });
  }

  /** Schedules a flush even when nothing is queued (the hooks have work). */
  request(): void {
    if (!this.closed) this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (!this.closed || this.queue.length > 0) this.flush();
    });
  }

  /** Runs everything queued now, in one transaction. */
  flush(): void {
    if (this.flushing) {
      this.schedule();
      return;
    }
    const batch = this.queue;
    if (!this.db.open) {
      this.queue = [];
      for (const op of batch) op.reject(shuttingDown());
      return;
    }
    if (batch.length === 0 && !this.hooks.some((hook) => hook.hasWork())) return;
    this.queue = [];
    this.flushing = true;
    try {
      this.runBatch(batch);
    } finally {
      this.flushing = false;
    }
    for (const hook of this.hooks) {
      try {
        hook.afterFlush?.();
      } catch (error) {
        warn('a commit hook failed after a flush', error);
      }
    }
  }

  private runBatch(batch: QueuedOperation[]): void {
    try {
      this.begin.run();
      for (const op of batch) this.runOperation(op);
      for (const hook of this.hooks) hook.beforeCommit();
      this.commit.run();
    } catch (cause) {
      if (this.db.inTransaction) {
        try {
          this.rollback.run();
        } catch {
          // SQLite may already have rolled the transaction back on its own.
        }
      }
      this.healthy = false;
      this.counters.failedCommits++;
      this.startProbe();
      for (const hook of this.hooks) hook.afterRollback();
      const error = storageUnavailable(cause);
      for (const op of batch) op.reject(error);
      return;
    }
    this.healthy = true;
    this.stopProbe();
    this.counters.commits++;
    this.counters.largestBatch = Math.max(this.counters.largestBatch, batch.length);
    for (const hook of this.hooks) hook.afterCommit();
    for (const op of batch) {
      if (!op.ok) {
        op.reject(op.error);
        continue;
      }
      this.counters.operations++;
      try {
        op.onCommit?.(op.value);
      } catch (error) {
        warn('a post-commit step failed', error);
      }
      op.resolve(op.value);
    }
  }

  /** Runs one operation inside a savepoint; a storage failure is rethrown to fail the batch. */
  private runOperation(op: QueuedOperation): void {
    this.savepoint.run();
    try {
      op.value = op.run();
      op.ok = true;
    } catch (error) {
      if (isStorageFailure(error) || !this.db.inTransaction) throw error;
      op.error = error;
      this.rollbackTo.run();
    }
    this.release.run();
  }

  private startProbe(): void {
    const probe = this.probe;
    if (probe === undefined || this.probeTimer !== undefined || this.closed) return;
    this.probeTimer = setInterval(() => {
      if (this.healthy || this.closed) this.stopProbe();
      else this.enqueue(probe).catch(() => {});
    }, PROBE_INTERVAL_MS);
    this.probeTimer.unref();
  }

  private stopProbe(): void {
    if (this.probeTimer !== undefined) clearInterval(this.probeTimer);
    this.probeTimer = undefined;
  }

  /** Flushes what is queued and refuses later writes. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.stopProbe();
  }
}

export function shuttingDown(): TributaryError {
  return new TributaryError('SHUTTING_DOWN', 'The embedded backend is closed');
}

export function warn(what: string, error: unknown): void {
  const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.emitWarning(`${what}: ${detail}`, { code: 'TRIBUTARY_EMBEDDED' });
}

/** A rejected promise for something caught (always an Error). */
export function rejection(error: unknown): Promise<never> {
  return Promise.reject(error instanceof Error ? error : new Error(String(error)));
}
