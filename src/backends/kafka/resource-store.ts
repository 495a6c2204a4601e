/**
 * The ResourceStore in a compacted topic (`<prefix>.resources`), read by every process from the
 * beginning, as Kafka Connect keeps its configuration.
 *
 * Kafka has no compare-and-set, so the log decides: each write names what it expects (the key to
 * be absent, or to be at a revision), and every process applies the writes in log order with the
 * same rule, so they all accept and refuse the same ones. A writer learns whether its write won
 * once it has read it back. The revision of a stored value is its record's offset plus one: it
 * grows with every write and is never given twice. A delete is kept as a marker (not a
 * tombstone), so that compaction never loses a refusal's reason.
 */
import { randomUUID } from 'node:crypto';
import { TributaryError } from '../../core/errors.js';
import type { Collection, Resource, ResourceKey } from '../../core/resources/types.js';
import type { ResourceChange, ResourceStore, ResourceWatch, StoredResource } from '../contracts.js';
import { compareKeys, copyKey, describeKey } from '../resource-key.js';
import { kafkaError } from './errors.js';
import { TopicView, type ViewClients, type ViewRecord } from './topic-view.js';

interface WriteValue {
  readonly writer: string;
  readonly op: 'create' | 'update' | 'delete';
  /** update and delete: the revision the key must have (delete: absent means any). */
  readonly expected?: number;
  readonly resource?: Resource;
}

type Listener = (change: ResourceChange) => void;

function keyString(key: ResourceKey): string {
  return `${key.collection}/${key.namespace}/${key.name}`;
}

export class KafkaResourceStore implements ResourceStore {
  private readonly current = new Map<string, StoredResource>();
  private readonly listeners = new Set<Listener>();
  /** Outcomes of this process's own writes, by offset, until the writer reads them. */
  private readonly outcomes = new Map<number, boolean>();
  private readonly writer = randomUUID();
  private view!: TopicView;
  private closed = false;

  private constructor() {}

  static async open(clients: ViewClients, prefix: string): Promise<KafkaResourceStore> {
    const store = new KafkaResourceStore();
    store.view = await TopicView.open({
      ...clients,
      topic: `${prefix}.resources`,
      onRecord: (record) => store.apply(record),
    });
    return store;
  }

  private apply(record: ViewRecord): void {
    if (record.value === null) return;
    let write: WriteValue;
    try {
      write = JSON.parse(record.value.toString('utf8')) as WriteValue;
    } catch {
      return; // not ours
    }
    const existing = this.current.get(record.key);
    let accepted = false;
    const [collection, namespace, ...rest] = record.key.split('/');
    const key: ResourceKey = Object.freeze({
      collection: collection as Collection,
      namespace: namespace ?? '',
      name: rest.join('/'),
    });
    let change: ResourceChange | undefined;
    if (write.op === 'create' && existing === undefined && write.resource !== undefined) {
      accepted = true;
    } else if (
      write.op === 'update' &&
      existing !== undefined &&
      existing.revision === write.expected &&
      write.resource !== undefined
    ) {
      accepted = true;
    } else if (
      write.op === 'delete' &&
      existing !== undefined &&
      (write.expected === undefined || existing.revision === write.expected)
    ) {
      accepted = true;
    }
    if (accepted) {
      if (write.op === 'delete') {
        this.current.delete(record.key);
        change = { type: 'delete', key };
      } else {
        const stored: StoredResource = Object.freeze({
          key,
          resource: write.resource!,
          revision: record.offset + 1,
        });
        this.current.set(record.key, stored);
        change = { type: 'put', stored };
      }
    }
    if (write.writer === this.writer) this.outcomes.set(record.offset, accepted);
    if (change !== undefined) {
      for (const listener of this.listeners) {
        try {
          listener(change);
        } catch {
          // a listener's failure is its own
        }
      }
    }
  }

  private check(): void {
    if (this.closed) throw new TributaryError('SHUTTING_DOWN', 'The Kafka backend is closed');
  }

  /** Writes and reads back: true when the log accepted the write. */
  private async write(key: string, value: Omit<WriteValue, 'writer'>): Promise<[boolean, number]> {
    this.check();
    let offset: number;
    try {
      offset = await this.view.write(
        key,
        Buffer.from(JSON.stringify({ writer: this.writer, ...value })),
      );
    } catch (error) {
      if (this.closed) throw new TributaryError('SHUTTING_DOWN', 'The Kafka backend is closed');
      throw kafkaError(error, `resource ${key}`);
    }
    const accepted = this.outcomes.get(offset) ?? false;
    this.outcomes.delete(offset);
    return [accepted, offset];
  }

  get(key: ResourceKey): Promise<StoredResource | undefined> {
    this.check();
    return Promise.resolve(this.current.get(keyString(copyKey(key))));
  }

  list(collection: Collection, namespace?: string): Promise<StoredResource[]> {
    this.check();
    const found = [...this.current.values()].filter(
      (s) =>
        s.key.collection === collection &&
        (namespace === undefined || s.key.namespace === namespace),
    );
    return Promise.resolve(found.sort(compareKeys));
  }

  async create(key: ResourceKey, resource: Resource): Promise<StoredResource> {
    const k = copyKey(key);
    const [accepted] = await this.write(keyString(k), { op: 'create', resource });
    const stored = this.current.get(keyString(k));
    if (!accepted || stored === undefined) {
      throw new TributaryError('CONFLICT', `${describeKey(k)} already exists`);
    }
    return stored;
  }

  async update(
    key: ResourceKey,
    resource: Resource,
    expectedRevision: number,
  ): Promise<StoredResource> {
    const k = copyKey(key);
    const [accepted, offset] = await this.write(keyString(k), {
      op: 'update',
      expected: expectedRevision,
      resource,
    });
    const stored = this.current.get(keyString(k));
    if (!accepted || stored === undefined || stored.revision < offset + 1) {
      throw new TributaryError(
        'CONFLICT',
        `${describeKey(k)} is not at revision ${expectedRevision} (changed or deleted meanwhile)`,
      );
    }
    // A later write may already have replaced it; the caller gets what it wrote.
    return stored.revision === offset + 1
      ? stored
      : Object.freeze({ key: k, resource, revision: offset + 1 });
  }

  async delete(key: ResourceKey, expectedRevision?: number): Promise<boolean> {
    const k = copyKey(key);
    const existing = this.current.get(keyString(k));
    if (existing === undefined) return false;
    if (expectedRevision !== undefined && existing.revision !== expectedRevision) {
      throw new TributaryError(
        'CONFLICT',
        `${describeKey(k)} is not at revision ${expectedRevision}`,
      );
    }
    const [accepted] = await this.write(keyString(k), {
      op: 'delete',
      ...(expectedRevision === undefined ? {} : { expected: expectedRevision }),
    });
    if (accepted) return true;
    if (expectedRevision !== undefined) {
      throw new TributaryError('CONFLICT', `${describeKey(k)} changed meanwhile`);
    }
    return false;
  }

  watch(listener: (change: ResourceChange) => void): Promise<ResourceWatch> {
    this.check();
    // Synchronous: no record can be applied between the snapshot and the listener's start.
    const snapshot = [...this.current.values()];
    this.listeners.add(listener);
    return Promise.resolve({
      snapshot,
      stop: () => {
        this.listeners.delete(listener);
      },
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    await this.view.close();
  }
}
