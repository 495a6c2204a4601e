/** The embedded backend's SQLite schema: one database holds the event logs and the resources. */
import type { Database } from 'better-sqlite3';

/**
 * 1: the first schema. 2: a broker's retention (`brokers.retention_ms`), a nak's note
 * (`retries.note`), redriven dead letters (`dead_letters.redriven`; their retries row has seq =
 * -id, see event-log.ts). 3: the delivery ledger of webhook sources (`delivery_ids`).
 */
export const SCHEMA_VERSION = 3;

/**
 * MIGRATIONS[v] turns a database at version v into one at version v + 1 (the DDL below then adds
 * what is missing). A new database gets the DDL alone.
 */
const MIGRATIONS: Readonly<Record<number, string>> = {
  1: `
ALTER TABLE brokers ADD COLUMN retention_ms INTEGER;
ALTER TABLE retries ADD COLUMN note TEXT;
ALTER TABLE dead_letters ADD COLUMN redriven INTEGER NOT NULL DEFAULT 0;
DROP INDEX IF EXISTS dead_letters_by_subscription;
`,
  // The DDL adds the table.
  2: '',
};

const DDL = `
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS brokers (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  namespace TEXT NOT NULL,
  name TEXT NOT NULL,
  retention_ms INTEGER, -- NULL: the backend's default
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

-- seq: the event's seq, or minus the id of a redriven dead letter (its copy of the event).
CREATE TABLE IF NOT EXISTS retries (
  sid INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  due_at INTEGER NOT NULL,
  note TEXT,
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
  dead_lettered_at INTEGER NOT NULL,
  -- 1: redriven, no longer listed; kept as the copy its retries row delivers until that is done.
  redriven INTEGER NOT NULL DEFAULT 0
);
-- Listing and counting a subscription's dead letters read only this index.
CREATE INDEX IF NOT EXISTS dead_letters_listed ON dead_letters (sid, redriven, id);

CREATE TABLE IF NOT EXISTS resources (
  collection TEXT NOT NULL,
  namespace TEXT NOT NULL,
  name TEXT NOT NULL,
  revision INTEGER NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY (collection, namespace, name)
) WITHOUT ROWID;

-- Webhook deliveries already stored (DeliveryLedger), until expires_at (epoch ms).
CREATE TABLE IF NOT EXISTS delivery_ids (
  key TEXT PRIMARY KEY,
  expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS delivery_ids_by_expiry ON delivery_ids (expires_at);

INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0);
`;

/** Sets the connection's pragmas and creates or checks the schema. */
export function prepareDatabase(db: Database): void {
  db.pragma('journal_mode = WAL');
  // One fsync per commit: a commit is durable once it returns.
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = OFF');
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new Error(
      `the database was written by a newer Tributary (schema ${version}, this one knows ${SCHEMA_VERSION})`,
    );
  }
  db.transaction(() => {
    // Version 0 is a new database: the DDL creates everything.
    if (version > 0) {
      for (let from = version; from < SCHEMA_VERSION; from++) {
        const migration = MIGRATIONS[from];
        if (migration === undefined) throw new Error(`no migration from schema ${from}`);
        db.exec(migration);
      }
    }
    db.exec(DDL);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
}
