/**
 * The embedded backend's raw write, without Tributary: events inserted into a SQLite database with
 * the embedded backend's own schema and pragmas (src/backends/embedded/schema.ts: WAL,
 * synchronous=FULL, so every commit is an fsync), one row per event in the row shape the backend
 * uses (attributes as JSON text, data as bytes).
 *
 * - `throughput`, batch 1: the insert loop, one transaction (one fsync) per event;
 * - `throughput`, batch k: k events per transaction, as the group commit does when k requests wait;
 * - `rate`: events due at a fixed rate (open loop); each commit takes every event due by then (a
 *   group commit), then reads them back by seq (publish and consume); latency from the time an
 *   event was due to the time it was read back: the floor that durability puts under Tributary's
 *   end-to-end latency at that rate.
 *
 * Run as a child on the server core: `node sqlite-baseline.js '<task as JSON>'`; prints one JSON
 * line.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { prepareDatabase } from '../../src/backends/embedded/schema.js';
import { payload } from './http-client.js';
import { percentiles, Samples, type Percentiles } from './stats.js';

export interface SqliteThroughputTask {
  readonly mode: 'throughput';
  readonly dataDir: string;
  /** Events per transaction. */
  readonly batch: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly payloadBytes: number;
}

export interface SqliteRateTask {
  readonly mode: 'rate';
  readonly dataDir: string;
  readonly rate: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly payloadBytes: number;
}

export type SqliteTask = SqliteThroughputTask | SqliteRateTask;

export interface SqliteThroughputResult {
  readonly events: number;
  readonly commits: number;
  readonly seconds: number;
  readonly eventsPerSecond: number;
}

export interface SqliteRateResult {
  readonly rate: number;
  readonly events: number;
  readonly commits: number;
  /** From due to read back (ms), the window's events. */
  readonly latencyMs: Percentiles;
}

function open(task: SqliteTask) {
  const db = new Database(join(task.dataDir, 'baseline.db'));
  prepareDatabase(db);
  db.prepare("INSERT INTO brokers (namespace, name) VALUES ('default', 'default')").run();
  const insert = db.prepare(
    'INSERT INTO events (broker_id, appended_at, attrs, data_kind, data) VALUES (1, ?, ?, 3, ?)',
  );
  const data = payload(task.payloadBytes);
  let id = 0;
  /** Inserts `count` events in one transaction; resolves with the seq of the first. */
  const commit = db.transaction((count: number): number => {
    const now = Date.now();
    const arrival = new Date(now).toISOString();
    let first = 0;
    for (let i = 0; i < count; i++) {
      const attrs = JSON.stringify({
        specversion: '1.0',
        id: String(++id),
        source: '/bench',
        type: 'com.example.bench',
        datacontenttype: 'application/json',
        benchsent: (performance.now() + 0.5).toFixed(3),
        knativebrokerttl: '255',
        knativearrivaltime: arrival,
      });
      const seq = Number(insert.run(now, attrs, data).lastInsertRowid);
      if (i === 0) first = seq;
    }
    return first;
  });
  return { db, commit };
}

function throughput(task: SqliteThroughputTask): SqliteThroughputResult {
  const { db, commit } = open(task);
  const until = (deadline: number): { events: number; commits: number } => {
    let events = 0;
    let commits = 0;
    while (performance.now() < deadline) {
      commit(task.batch);
      events += task.batch;
      commits++;
    }
    return { events, commits };
  };
  const start = performance.now();
  until(start + task.warmupMs);
  const measured = performance.now();
  const { events, commits } = until(measured + task.durationMs);
  const seconds = (performance.now() - measured) / 1000;
  db.close();
  return { events, commits, seconds, eventsPerSecond: events / seconds };
}

const pause = new Int32Array(new SharedArrayBuffer(4));

function rate(task: SqliteRateTask): SqliteRateResult {
  const { db, commit } = open(task);
  const read = db.prepare<[number, number], { seq: number; attrs: string; data: Buffer }>(
    'SELECT seq, attrs, data FROM events WHERE broker_id = 1 AND seq >= ? AND seq < ?',
  );
  const interval = 1000 / task.rate;
  const warmN = Math.round((task.rate * task.warmupMs) / 1000);
  const total = warmN + Math.round((task.rate * task.durationMs) / 1000);
  const latency = new Samples();
  const t0 = performance.now();
  let next = 0;
  let commits = 0;
  while (next < total) {
    const wait = t0 + next * interval - performance.now();
    if (wait > 0) Atomics.wait(pause, 0, 0, wait);
    // Every event due by now goes into this commit.
    const due = Math.min(total, Math.floor((performance.now() - t0) / interval) + 1);
    const count = Math.max(1, due - next);
    const first = commit(count);
    commits++;
    const rows = read.all(first, first + count);
    const done = performance.now();
    if (rows.length !== count) throw new Error(`read back ${rows.length} of ${count} events`);
    for (let i = 0; i < count; i++) {
      const n = next + i;
      if (n >= warmN) latency.push(done - (t0 + n * interval));
    }
    next += count;
  }
  db.close();
  return {
    rate: task.rate,
    events: total - warmN,
    commits,
    latencyMs: percentiles(latency.values()),
  };
}

const task = JSON.parse(process.argv[2]!) as SqliteTask;
const result = task.mode === 'rate' ? rate(task) : throughput(task);
process.stdout.write(`${JSON.stringify(result)}\n`);
