/**
 * A Map that allocates its storage on the first write. A subscription keeps several maps that stay
 * empty while it is idle (unsettled, retrying, blocked...); with 10,000 triggers, empty Maps alone
 * would cost over a kilobyte per trigger.
 */
export class LazyMap<K, V> implements Iterable<[K, V]> {
  private map: Map<K, V> | undefined;

  get size(): number {
    return this.map?.size ?? 0;
  }

  get(key: K): V | undefined {
    return this.map?.get(key);
  }

  has(key: K): boolean {
    return this.map?.has(key) ?? false;
  }

  set(key: K, value: V): this {
    (this.map ??= new Map()).set(key, value);
    return this;
  }

  delete(key: K): boolean {
    return this.map?.delete(key) ?? false;
  }

  clear(): void {
    this.map = undefined;
  }

  keys(): IterableIterator<K> {
    return (this.map ?? EMPTY).keys() as IterableIterator<K>;
  }

  values(): IterableIterator<V> {
    return (this.map ?? EMPTY).values() as IterableIterator<V>;
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return (this.map ?? EMPTY)[Symbol.iterator]() as IterableIterator<[K, V]>;
  }
}

const EMPTY: ReadonlyMap<unknown, unknown> = new Map();
