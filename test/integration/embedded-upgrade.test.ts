/**
 * Opening a data dir written by an earlier Tributary: the database is migrated in place to the
 * current schema, and what it held (events, cursors, retries, dead letters) keeps working.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { BrokerRef, LogMessage } from '../../src/backends/contracts.js';
import { encodeEvent } from '../../src/backends/embedded/event-row.js';
import { createEmbeddedBackend, DATABASE_FILE } from '../../src/backends/embedded/index.js';
import { SCHEMA_VERSION } from '../../src/backends/embedded/schema.js';
import type { CloudEvent } from '../../src/core/event.js';
import { Collector } from '../support/collector.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

afterEach(() => removeTempDirs());

/** The DDL of schema version 1, exactly as src/backends/embedded/schema.ts had it. */
const SCHEMA_V1 = `
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS brokers (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  namespace TEXT NOT NULL,
  name TEXT NOT NULL,
  UNIQUE (namespace, name)
);

CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  broker_id INTEGER NOT NULL,
  appended_at INTEGER NOT NULL,
  attrs TEXT NOT NULL,
  data_kind INTEGER NOT NULL,
  data BLOB
);
CREATE INDEX IF NOT EXISTS events_by_broker ON events (broker_id, seq);

-- cursor: every event of the broker with seq <= cursor is done for the subscription, except the
-- ones that have a row in retries.
CREATE TABLE IF NOT EXISTS subscriptions (
  sid INTEGER PRIMARY KEY AUTOINCREMENT,
  broker_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  cursor INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (broker_id, name)
);

CREATE TABLE IF NOT EXISTS retries (
  sid INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  due_at INTEGER NOT NULL,
  PRIMARY KEY (sid, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS retries_by_seq ON retries (seq);

CREATE TABLE IF NOT EXISTS dead_letters (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  sid INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  attrs TEXT NOT NULL,
  data_kind INTEGER NOT NULL,
  data BLOB,
  reason TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  destination TEXT,
  last_status INTEGER,
  dead_lettered_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_by_subscription ON dead_letters (sid, id);

CREATE TABLE IF NOT EXISTS resources (
  collection TEXT NOT NULL,
  namespace TEXT NOT NULL,
  name TEXT NOT NULL,
  revision INTEGER NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY (collection, namespace, name)
) WITHOUT ROWID;

INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0);
`;

const broker: BrokerRef = { namespace: 'default', name: 'old' };

function event(id: string, extra: Record<string, string> = {}, bytes?: number[]): CloudEvent {
  const attributes = { specversion: '1.0', id, source: '/old', type: 'old.event', ...extra };
  return bytes === undefined
    ? { attributes }
    : { attributes, data: { kind: 'bytes', bytes: Uint8Array.from(bytes) } };
}

/**
 * A version-1 data dir, as version 1 of the embedded backend left it: four events of which the
 * subscription `worker` is done with the first two, except `e-1` that waits for its third attempt;
 * `e-0` is a dead letter; an ordered subscription's retry holds key `k`.
 */
function versionOneDataDir(): string {
  const dir = tempDir('tributary-v1-');
  const db = new Database(join(dir, DATABASE_FILE));
  db.pragma('journal_mode = WAL');
  db.transaction(() => {
    db.exec(SCHEMA_V1);
    db.pragma('user_version = 1');
  })();
  const now = Date.now();
  db.prepare("INSERT INTO brokers (namespace, name) VALUES ('default', 'old')").run();
  const insert = db.prepare(
    'INSERT INTO events (broker_id, appended_at, attrs, data_kind, data) VALUES (1, ?, ?, ?, ?)',
  );
  const events = [
    event('e-0', {}, [0, 1, 254, 255]),
    event('e-1'),
    event('e-2'),
    event('e-3'),
    event('k-0', { partitionkey: 'k' }),
    event('k-1', { partitionkey: 'k' }),
  ];
  for (const e of events) {
    const encoded = encodeEvent(e);
    insert.run(now, encoded.attrs, encoded.kind, encoded.data);
  }
  db.prepare(
    "INSERT INTO subscriptions (broker_id, name, cursor, created_at) VALUES (1, 'worker', 2, ?)",
  ).run(now);
  db.prepare(
    "INSERT INTO subscriptions (broker_id, name, cursor, created_at) VALUES (1, 'ordered', 6, ?)",
  ).run(now);
  db.prepare('INSERT INTO retries (sid, seq, attempt, due_at) VALUES (1, 2, 3, 0)').run();
  // k-0 waits for a retry far away; k-1 was never handed over (the cursor was not persisted).
  db.prepare('UPDATE subscriptions SET cursor = 4 WHERE sid = 2').run();
  db.prepare('INSERT INTO retries (sid, seq, attempt, due_at) VALUES (2, 5, 2, ?)').run(
    now + 3_600_000,
  );
  const dead = encodeEvent(events[0]!);
  db.prepare(
    `INSERT INTO dead_letters (sid, seq, attrs, data_kind, data, reason, attempts, destination,
       last_status, dead_lettered_at) VALUES (1, 1, ?, ?, ?, 'answered 400', 1, 'http://x/', 400, ?)`,
  ).run(dead.attrs, dead.kind, dead.data, now);
  db.close();
  return dir;
}

function userVersion(dataDir: string): number {
  const db = new Database(join(dataDir, DATABASE_FILE), { readonly: true });
  try {
    return db.pragma('user_version', { simple: true }) as number;
  } finally {
    db.close();
  }
}

describe('embedded backend: schema upgrade', () => {
  it('migrates a version-1 database in place, and everything it held keeps working', async () => {
    const dataDir = versionOneDataDir();
    const backend = await createEmbeddedBackend({ dataDir, retentionMs: 3_600_000 });
    try {
      const messages = new Collector<LogMessage>('worker');
      const handle = await backend.eventLog.subscribe(
        { id: 'worker', broker, start: { from: 'latest' }, maxInFlight: 10 },
        messages.push,
      );
      const received = await messages.count(5);
      const byId = new Map(received.map((m) => [String(m.event.attributes.id), m]));
      // The old retry: its attempt, and no note (the column did not exist).
      expect([byId.get('e-1')?.attempt, byId.get('e-1')?.note]).toEqual([3, undefined]);
      expect([...byId.keys()].sort()).toEqual(['e-1', 'e-2', 'e-3', 'k-0', 'k-1']);
      for (const id of ['e-2', 'e-3', 'k-0', 'k-1']) await byId.get(id)!.ack();
      await byId.get('e-1')!.nak(0, 'written by version 2');
      const again = await messages.next();
      expect([again.attempt, again.note]).toEqual([4, 'written by version 2']);
      await again.ack();

      // The old dead letter: listed, counted, redriven with its bytes.
      const records = await backend.eventLog.listDeadLetters('worker', broker, { limit: 10 });
      expect(records.map((r) => [r.event.attributes.id, r.reason, r.lastStatus])).toEqual([
        ['e-0', 'answered 400', 400],
      ]);
      expect(await backend.eventLog.countDeadLetters('worker', broker)).toBe(1);
      expect(await backend.eventLog.redriveDeadLetters('worker', broker)).toBe(1);
      const redriven = await messages.next();
      expect([redriven.event.attributes.id, redriven.attempt, redriven.position]).toEqual([
        'e-0',
        1,
        '1',
      ]);
      expect(redriven.event.data).toMatchObject({ kind: 'bytes' });
      expect([...(redriven.event.data as { bytes: Uint8Array }).bytes]).toEqual([0, 1, 254, 255]);
      await redriven.ack();

      // The old ordered subscription: its retry on k-0 holds k-1 back.
      const ordered = new Collector<LogMessage>('ordered');
      const orderedHandle = await backend.eventLog.subscribe(
        { id: 'ordered', broker, start: { from: 'latest' }, maxInFlight: 10, ordered: true },
        (message) => {
          ordered.push(message);
          void message.ack();
        },
      );
      await backend.eventLog.append(broker, [event('marker')]);
      expect((await ordered.count(1)).map((m) => m.event.attributes.id)).toEqual(['marker']);

      await backend.eventLog.ensureBroker(broker, { retentionMs: 1000 });
      await handle.close();
      await orderedHandle.close();
    } finally {
      await backend.close();
    }
    expect(userVersion(dataDir)).toBe(SCHEMA_VERSION);

    // Opened again at the current version: nothing to migrate, nothing lost.
    const reopened = await createEmbeddedBackend({ dataDir });
    try {
      expect(await reopened.eventLog.countDeadLetters('worker', broker)).toBe(0);
      const messages = new Collector<LogMessage>('worker again');
      await reopened.eventLog.subscribe(
        { id: 'worker', broker, start: { from: 'latest' }, maxInFlight: 10 },
        (message) => {
          messages.push(message);
          void message.ack();
        },
      );
      await reopened.eventLog.append(broker, [event('after')]);
      await messages.until(
        (items) => items.some((m) => m.event.attributes.id === 'after'),
        'the new event',
      );
      // The marker may come again (its ack's cursor was persisted lazily), nothing older does.
      expect(messages.items.map((m) => m.event.attributes.id)).not.toContain('e-1');
      expect(messages.items.map((m) => m.event.attributes.id)).not.toContain('e-0');
    } finally {
      await reopened.close();
    }
  });

  it('refuses a database written by a newer schema', async () => {
    const dataDir = tempDir('tributary-future-');
    const db = new Database(join(dataDir, DATABASE_FILE));
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    await expect(createEmbeddedBackend({ dataDir })).rejects.toMatchObject({
      code: 'BACKEND_UNAVAILABLE',
      message: expect.stringContaining('newer') as unknown,
    });
  });
});
