/**
 * A broker's most recently appended events, decoded once and shared by all its subscriptions, so
 * that many subscriptions following the head of the log read no SQL and decode nothing. Bounded in
 * count and in bytes; a subscription that falls behind it reads from SQLite itself.
 */
import type { CloudEvent } from '../../core/event.js';

export interface LogEntry {
  readonly seq: number;
  readonly event: CloudEvent;
}

interface CachedEntry extends LogEntry {
  readonly size: number;
}

export interface CacheLimits {
  readonly maxEvents: number;
  readonly maxBytes: number;
}

export const DEFAULT_CACHE_LIMITS: CacheLimits = { maxEvents: 4096, maxBytes: 16 * 1024 * 1024 };

export class EventCache {
  private entries: CachedEntry[] = [];
  private head = 0;
  private bytes = 0;

  /**
   * @param coveredFrom the cache holds every event of the broker with a seq above this one (all
   *   later events are appended through it)
   */
  constructor(
    private coveredFrom: number,
    private readonly limits: CacheLimits = DEFAULT_CACHE_LIMITS,
  ) {}

  push(seq: number, event: CloudEvent, size: number): void {
    this.entries.push({ seq, event, size });
    this.bytes += size;
    while (
      this.entries.length - this.head > this.limits.maxEvents ||
      (this.bytes > this.limits.maxBytes && this.entries.length - this.head > 1)
    ) {
      this.evictOldest();
    }
  }

  private evictOldest(): void {
    const oldest = this.entries[this.head];
    if (oldest === undefined) return;
    this.entries[this.head] = undefined as unknown as CachedEntry;
    this.head++;
    this.bytes -= oldest.size;
    this.coveredFrom = oldest.seq;
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  /** Index of the first entry with a seq above `seq`. */
  private firstAfter(seq: number): number {
    let low = this.head;
    let high = this.entries.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.entries[mid]!.seq <= seq) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /**
   * The events with a seq above `after`, at most `limit` of them, or undefined when the cache does
   * not hold all of them (the caller reads SQLite).
   */
  readAfter(after: number, limit: number): LogEntry[] | undefined {
    if (after < this.coveredFrom) return undefined;
    const start = this.firstAfter(after);
    return this.entries.slice(start, Math.min(start + limit, this.entries.length));
  }

  get(seq: number): CloudEvent | undefined {
    if (seq <= this.coveredFrom) return undefined;
    const entry = this.entries[this.firstAfter(seq - 1)];
    return entry !== undefined && entry.seq === seq ? entry.event : undefined;
  }

  /** Forgets the events up to `seq` (retention deleted them). */
  dropThrough(seq: number): void {
    while (this.head < this.entries.length && this.entries[this.head]!.seq <= seq)
      this.evictOldest();
    if (seq > this.coveredFrom) this.coveredFrom = seq;
  }
}
