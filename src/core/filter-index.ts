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
    this.scan(event, undefined, visit);
  }

  /** Calls `visit` for every item whose filter passes the event. */
  forEachMatch(event: CloudEvent, visit: (item: T) => void): void {
    this.scan(event, event, visit);
  }

  /** Visits the candidates; evaluates their filters on `evaluate` when it is given. */
  private scan(
    event: CloudEvent,
    evaluate: CloudEvent | undefined,
    visit: (item: T) => void,
  ): void {
    const type = attributeString(event, 'type');
    if (type !== undefined) visitBucket(this.byType.get(type), evaluate, visit);
    const source = attributeString(event, 'source');
    if (source !== undefined) visitBucket(this.bySource.get(source), evaluate, visit);
    const unindexed = this.unindexed;
    for (let i = 0; i < unindexed.length; i++) visitEntry(unindexed[i]!, evaluate, visit);
  }
}

function visitEntry<T>(
  entry: Entry<T>,
  evaluate: CloudEvent | undefined,
  visit: (item: T) => void,
): void {
  if (evaluate === undefined || entry.sufficient || entry.filter(evaluate)) visit(entry.item);
}

function visitBucket<T>(
  bucket: Bucket<T> | undefined,
  evaluate: CloudEvent | undefined,
  visit: (item: T) => void,
): void {
  if (bucket === undefined) return;
  if (!Array.isArray(bucket)) {
    visitEntry(bucket, evaluate, visit);
    return;
  }
  for (let i = 0; i < bucket.length; i++) visitEntry(bucket[i]!, evaluate, visit);
}
