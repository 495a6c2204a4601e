/**
 * Finds the filters an event may pass without trying every one of them (DESIGN.md section 8,
 * after Knative's pkg/eventfilter): filters with an exact `type` or `source` condition are kept in
 * hash maps under that value; only those under the event's type and source, plus the filters with
 * no such condition, are candidates. With 10,000 triggers on distinct types, an event is checked
 * against one of them.
 */
import { attributeString, type CloudEvent } from './event.js';
import type { CompiledFilter } from './filters.js';

interface Entry<T> {
  readonly item: T;
  readonly filter: CompiledFilter;
  /** Being a candidate is enough to match (the filter is just its index key). */
  readonly sufficient: boolean;
}

/** Most values have one filter: a bucket holds it directly, a list only when there are several. */
type Bucket<T> = Entry<T> | Entry<T>[];

function remove<T>(bucket: Entry<T>[], entry: Entry<T>): void {
  const at = bucket.indexOf(entry);
  if (at >= 0) bucket.splice(at, 1);
}

export class FilterIndex<T> {
  private readonly byType = new Map<string, Bucket<T>>();
  private readonly bySource = new Map<string, Bucket<T>>();
  private readonly unindexed: Entry<T>[] = [];
  private readonly entries = new Map<T, Entry<T>>();

  get size(): number {
    return this.entries.size;
  }

  /** Adds `item` with its filter, or replaces what it had. */
  set(item: T, filter: CompiledFilter): void {
    this.delete(item);
    const key = filter.indexKey;
    const entry: Entry<T> = { item, filter, sufficient: key?.sufficient ?? false };
    this.entries.set(item, entry);
    if (key === undefined) {
      this.unindexed.push(entry);
      return;
    }
    const map = key.attribute === 'type' ? this.byType : this.bySource;
    const bucket = map.get(key.value);
    if (bucket === undefined) map.set(key.value, entry);
    else if (Array.isArray(bucket)) bucket.push(entry);
    else map.set(key.value, [bucket, entry]);
  }

  delete(item: T): void {
    const entry = this.entries.get(item);
    if (entry === undefined) return;
    this.entries.delete(item);
    const key = entry.filter.indexKey;
    if (key === undefined) {
      remove(this.unindexed, entry);
      return;
    }
    const map = key.attribute === 'type' ? this.byType : this.bySource;
    const bucket = map.get(key.value);
    if (bucket === entry) {
      map.delete(key.value);
    } else if (Array.isArray(bucket)) {
      remove(bucket, entry);
      if (bucket.length === 1) map.set(key.value, bucket[0]!);
    }
  }

  /** Calls `visit` for every item whose filter may pass the event (without evaluating it). */
  forEachCandidate(event: CloudEvent, visit: (item: T) => void): void {
    this.scan(event, (entry) => visit(entry.item));
  }

  /** Calls `visit` for every item whose filter passes the event. */
  forEachMatch(event: CloudEvent, visit: (item: T) => void): void {
    this.scan(event, (entry) => {
      if (entry.sufficient || entry.filter(event)) visit(entry.item);
    });
  }

  private scan(event: CloudEvent, visit: (entry: Entry<T>) => void): void {
    const type = attributeString(event, 'type');
    const source = attributeString(event, 'source');
    if (type !== undefined) visitBucket(this.byType.get(type), visit);
    if (source !== undefined) visitBucket(this.bySource.get(source), visit);
    for (const entry of this.unindexed) visit(entry);
  }
}

function visitBucket<T>(bucket: Bucket<T> | undefined, visit: (entry: Entry<T>) => void): void {
  if (bucket === undefined) return;
  if (!Array.isArray(bucket)) {
    visit(bucket);
    return;
  }
  for (const entry of bucket) visit(entry);
}
