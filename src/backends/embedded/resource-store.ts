/**
 * The embedded ResourceStore: one table, revisions from a global counter (so a key never gets the
 * same revision twice, even across delete and re-create), writes through the group commit, and a
 * change feed whose listeners are called right after each commit, in commit order.
 */
import { copyKey, describeKey } from '../resource-key.js';
import type { Database, Statement } from 'better-sqlite3';
import { TributaryError } from '../../core/errors.js';
import type { Collection, Resource, ResourceKey } from '../../core/resources/types.js';
import type { ResourceChange, ResourceStore, ResourceWatch, StoredResource } from '../contracts.js';
import { rejection, shuttingDown, warn, type Writer } from './writer.js';

interface ResourceRow {
  collection: Collection;
  namespace: string;
  name: string;
  revision: number;
  body: string;
}

type Listener = (change: ResourceChange) => void;

function toStored(row: ResourceRow): StoredResource {
  return {
    key: { collection: row.collection, namespace: row.namespace, name: row.name },
    resource: JSON.parse(row.body) as Resource,
    revision: row.revision,
  };
}

export class EmbeddedResourceStore implements ResourceStore {
  private readonly listeners = new Set<Listener>();
  private revision: number;
  private closed = false;
  private readonly sql: {
    get: Statement<[string, string, string], ResourceRow>;
    listAll: Statement<[string], ResourceRow>;
    listNamespace: Statement<[string, string], ResourceRow>;
    everything: Statement<[], ResourceRow>;
    insert: Statement<[string, string, string, number, string]>;
    update: Statement<[number, string, string, string, string]>;
    delete: Statement<[string, string, string]>;
    setRevision: Statement<[number]>;
  };

  constructor(
    db: Database,
    private readonly writer: Writer,
  ) {
    const p = <P extends unknown[], R = unknown>(source: string) =>
      db.prepare<P, R>(source) as Statement<P, R>;
    const columns = 'collection, namespace, name, revision, body';
    this.sql = {
      get: p(
        `SELECT ${columns} FROM resources WHERE collection = ? AND namespace = ? AND name = ?`,
      ),
      listAll: p(`SELECT ${columns} FROM resources WHERE collection = ? ORDER BY namespace, name`),
      listNamespace: p(
        `SELECT ${columns} FROM resources WHERE collection = ? AND namespace = ? ORDER BY name`,
      ),
      everything: p(`SELECT ${columns} FROM resources ORDER BY collection, namespace, name`),
      insert: p(
        'INSERT INTO resources (collection, namespace, name, revision, body) VALUES (?, ?, ?, ?, ?)',
      ),
      update: p(
        'UPDATE resources SET revision = ?, body = ? WHERE collection = ? AND namespace = ? AND name = ?',
      ),
      delete: p('DELETE FROM resources WHERE collection = ? AND namespace = ? AND name = ?'),
      setRevision: p("UPDATE meta SET value = ? WHERE key = 'revision'"),
    };
    const row = db
      .prepare<[], { value: number }>("SELECT value FROM meta WHERE key = 'revision'")
      .get();
    this.revision = row?.value ?? 0;
  }

  private read<T>(fn: () => T): Promise<T> {
    if (this.closed) return Promise.reject(shuttingDown());
    try {
      return Promise.resolve(fn());
    } catch (error) {
      return rejection(error);
    }
  }

  get(key: ResourceKey): Promise<StoredResource | undefined> {
    return this.read(() => {
      const row = this.sql.get.get(key.collection, key.namespace, key.name);
      return row === undefined ? undefined : toStored(row);
    });
  }

  list(collection: Collection, namespace?: string): Promise<StoredResource[]> {
    return this.read(() =>
      (namespace === undefined
        ? this.sql.listAll.all(collection)
        : this.sql.listNamespace.all(collection, namespace)
      ).map(toStored),
    );
  }

  /** Queues a write that stores `body` at a new revision; `check` throws CONFLICT if it must not. */
  private put(
    key: ResourceKey,
    resource: Resource,
    check: (current: ResourceRow | undefined) => void,
  ): Promise<StoredResource> {
    if (this.closed) return Promise.reject(shuttingDown());
    let frozenKey: ResourceKey;
    let body: string;
    try {
      frozenKey = copyKey(key);
      body = JSON.stringify(resource);
      if (body === undefined)
        throw new TributaryError('BAD_REQUEST', 'A resource must be an object');
    } catch (error) {
      return rejection(error);
    }
    const { collection, namespace, name } = frozenKey;
    return this.writer.enqueue(
      () => {
        const current = this.sql.get.get(collection, namespace, name);
        check(current);
        const revision = ++this.revision;
        if (current === undefined) this.sql.insert.run(collection, namespace, name, revision, body);
        else this.sql.update.run(revision, body, collection, namespace, name);
        this.sql.setRevision.run(revision);
        const stored: StoredResource = {
          key: frozenKey,
          resource: JSON.parse(body) as Resource,
          revision,
        };
        return stored;
      },
      (stored) => this.emit({ type: 'put', stored }),
    );
  }

  create(key: ResourceKey, resource: Resource): Promise<StoredResource> {
    return this.put(key, resource, (current) => {
      if (current !== undefined) {
        throw new TributaryError('CONFLICT', `${describeKey(key)} already exists`);
      }
    });
  }

  update(key: ResourceKey, resource: Resource, expectedRevision: number): Promise<StoredResource> {
    return this.put(key, resource, (current) => {
      if (current === undefined) {
        throw new TributaryError('CONFLICT', `${describeKey(key)} does not exist`);
      }
      if (current.revision !== expectedRevision) {
        throw new TributaryError(
          'CONFLICT',
          `${describeKey(key)} is at revision ${current.revision}, not ${expectedRevision}`,
        );
      }
    });
  }

  delete(key: ResourceKey, expectedRevision?: number): Promise<boolean> {
    if (this.closed) return Promise.reject(shuttingDown());
    let frozenKey: ResourceKey;
    try {
      frozenKey = copyKey(key);
    } catch (error) {
      return rejection(error);
    }
    const { collection, namespace, name } = frozenKey;
    return this.writer.enqueue(
      () => {
        const current = this.sql.get.get(collection, namespace, name);
        if (current === undefined) return false;
        if (expectedRevision !== undefined && current.revision !== expectedRevision) {
          throw new TributaryError(
            'CONFLICT',
            `${describeKey(key)} is at revision ${current.revision}, not ${expectedRevision}`,
          );
        }
        this.sql.delete.run(collection, namespace, name);
        return true;
      },
      (deleted) => {
        if (deleted) this.emit({ type: 'delete', key: frozenKey });
      },
    );
  }

  watch(listener: (change: ResourceChange) => void): Promise<ResourceWatch> {
    // Commits notify synchronously right after they commit, so reading the table and adding the
    // listener in the same tick leaves no gap and no duplicate between snapshot and changes.
    return this.read(() => {
      const snapshot = this.sql.everything.all().map(toStored);
      const entry: Listener = (change) => listener(change);
      this.listeners.add(entry);
      return {
        snapshot,
        stop: () => {
          this.listeners.delete(entry);
        },
      };
    });
  }

  private emit(change: ResourceChange): void {
    for (const listener of [...this.listeners]) {
      if (!this.listeners.has(listener)) continue;
      try {
        listener(change);
      } catch (error) {
        warn('a resource watch listener threw', error);
      }
    }
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.listeners.clear();
    this.writer.flush();
    return Promise.resolve();
  }
}
