/**
 * Embedded-only behaviour of the delivery features beyond the conformance suite: per-broker
 * retention, redriving a dead letter whose event retention deleted, the bounded read-ahead of an
 * ordered subscription, ordering after a lost cursor update, and input checks.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { BrokerRef, LogMessage, SubscriptionOptions } from '../../src/backends/contracts.js';
import {
  createEmbeddedBackend,
  DATABASE_FILE,
  type EmbeddedBackend,
  type EmbeddedBackendOptions,
} from '../../src/backends/embedded/index.js';
import { MAX_HELD, READ_BATCH } from '../../src/backends/embedded/subscription.js';
import type { CloudEvent } from '../../src/core/event.js';
import { Collector } from '../support/collector.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

const open = new Set<EmbeddedBackend>();

async function start(
  dataDir: string,
  options: Omit<EmbeddedBackendOptions, 'dataDir'> = {},
): Promise<EmbeddedBackend> {
  const backend = await createEmbeddedBackend({ dataDir, ...options });
  open.add(backend);
  return backend;
}

async function stop(backend: EmbeddedBackend): Promise<void> {
  open.delete(backend);
  await backend.close();
}

const settleErrors: unknown[] = [];

/**
 * Settles in the background. A settlement that comes after its test closed the backend is refused
 * with SHUTTING_DOWN, which is fine; any other failure fails the test.
 */
function quietly(settlement: Promise<void>): void {
  settlement.catch((error: unknown) => {
    if ((error as { code?: unknown }).code !== 'SHUTTING_DOWN') settleErrors.push(error);
  });
}

afterEach(async () => {
  for (const backend of open) await backend.close();
  open.clear();
  removeTempDirs();
  expect(settleErrors.splice(0), 'settlements made by the tests must succeed').toEqual([]);
});

const broker: BrokerRef = { namespace: 'default', name: 'b' };

function event(id: string, extra: Record<string, string> = {}): CloudEvent {
  return { attributes: { specversion: '1.0', id, source: '/test', type: 'test', ...extra } };
}

function idOf(message: LogMessage): string {
  return String(message.event.attributes.id);
}

function keyOf(message: LogMessage): string {
  return String(message.event.attributes.partitionkey ?? '');
}

/** The ids, dropping each repetition that follows itself (a redelivery). */
function withoutRepeats(messages: readonly LogMessage[]): string[] {
  const ids: string[] = [];
  for (const message of messages) {
    const id = idOf(message);
    if (ids[ids.length - 1] !== id) ids.push(id);
  }
  return ids;
}

/** Joins with a handler that collects, then does what `then` says. */
async function member(
  backend: EmbeddedBackend,
  options: Partial<SubscriptionOptions> & { id: string; broker?: BrokerRef },
  then: (message: LogMessage) => void = (message) => quietly(message.ack()),
) {
  const messages = new Collector<LogMessage>(options.id);
  const handle = await backend.eventLog.subscribe(
    {
      broker,
      start: { from: 'earliest' },
      maxInFlight: 100,
      ...options,
    },
    (message) => {
      messages.push(message);
      then(message);
    },
  );
  return { messages, handle };
}

/** Waits (polling, with the collector's timeout as a bound) until `check` holds. */
async function eventually(check: () => boolean, what: string): Promise<void> {
  const done = new Collector<true>(what);
  const poll = setInterval(() => {
    if (check()) done.push(true);
  }, 10);
  try {
    if (!check()) await done.next();
  } finally {
    clearInterval(poll);
  }
}

describe('embedded backend: retention per broker', () => {
  it("sweeps with a broker's own retention, which survives a restart, and falls back to the default", async () => {
    const dataDir = tempDir();
    let backend = await start(dataDir, { retentionMs: 3_600_000 });
    const short: BrokerRef = { namespace: 'default', name: 'short' };
    const long: BrokerRef = { namespace: 'default', name: 'long' };
    await backend.eventLog.ensureBroker(short, { retentionMs: 0 });
    await backend.eventLog.ensureBroker(long);

    /** Appends `n` events to each broker and waits until a subscription is done with them. */
    const appendAndConsume = async (n: number, round: string) => {
      for (const target of [short, long]) {
        await backend.eventLog.append(
          target,
          Array.from({ length: n }, (_, i) => event(`${round}-${i}`)),
        );
        const { messages, handle } = await member(backend, { id: 'worker', broker: target });
        const last = Number((await messages.count(n))[n - 1]!.position);
        await eventually(
          () => (backend.durableCursor(target, 'worker') ?? 0) >= last,
          'the durable cursor',
        );
        await handle.close();
      }
    };

    await appendAndConsume(3, 'first');
    expect(await backend.sweep()).toBe(3);

    await stop(backend);
    backend = await start(dataDir, { retentionMs: 3_600_000 });
    await appendAndConsume(2, 'second');
    // Only `short`'s two: `long` keeps the default, and `short` kept 0 across the restart.
    expect(await backend.sweep()).toBe(2);

    // Options given again replace the old ones: without retentionMs, the default again.
    await backend.eventLog.ensureBroker(short, {});
    await appendAndConsume(1, 'third');
    expect(await backend.sweep()).toBe(0);
    await backend.eventLog.ensureBroker(short, { retentionMs: 0 });
    expect(await backend.sweep()).toBe(1);
    // ensureBroker without options keeps what the broker has.
    await backend.eventLog.ensureBroker(short);
    await appendAndConsume(1, 'fourth');
    expect(await backend.sweep()).toBe(1);
  });

  it('refuses a retention that is not a number >= 0', async () => {
    const backend = await start(tempDir());
    for (const retentionMs of [-1, Number.NaN, Number.POSITIVE_INFINITY, '10' as unknown]) {
      await expect(
        backend.eventLog.ensureBroker(broker, { retentionMs: retentionMs as number }),
      ).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    }
  });
});

describe('embedded backend: redrive', () => {
  it('redrives a dead letter whose event retention deleted, with its bytes, once', async () => {
    const dataDir = tempDir();
    let backend = await start(dataDir, { retentionMs: 0 });
    await backend.eventLog.ensureBroker(broker);
    const bytes = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) % 256);
    const poison: CloudEvent = {
      attributes: { ...event('poison').attributes, datacontenttype: 'application/octet-stream' },
      data: { kind: 'bytes', bytes },
    };
    await backend.eventLog.append(broker, [poison, event('fine')]);
    let failed = false;
    const worker = await member(backend, { id: 'worker' }, (message) => {
      if (idOf(message) === 'poison' && !failed) {
        failed = true;
        quietly(message.deadLetter({ reason: 'answered 400', attempts: 1 }));
      } else {
        quietly(message.ack());
      }
    });
    const [first, fine] = await worker.messages.count(2);
    await eventually(
      () => (backend.durableCursor(broker, 'worker') ?? 0) >= Number(fine!.position),
      'the durable cursor',
    );
    expect(await backend.sweep()).toBe(2);
    // The log no longer has it.
    const check = await member(backend, { id: 'check' });
    await backend.eventLog.append(broker, [event('marker')]);
    expect((await check.messages.count(1)).map(idOf)).toEqual(['marker']);

    expect(await backend.eventLog.redriveDeadLetters('worker', broker)).toBe(1);
    const redriven = await worker.messages.until(
      (items) => items.some((m) => idOf(m) === 'poison' && m !== first),
      'the redriven event',
    );
    void redriven;
    const again = worker.messages.items.filter((m) => idOf(m) === 'poison')[1]!;
    expect([again.attempt, again.note, again.position]).toEqual([1, undefined, first!.position]);
    expect(again.event.attributes).toEqual(poison.attributes);
    expect(again.event.data).toMatchObject({ kind: 'bytes' });
    expect(Buffer.from((again.event.data as { bytes: Uint8Array }).bytes)).toEqual(
      Buffer.from(bytes),
    );
    // A redriven event holds no log row back from retention: everything done goes.
    await eventually(
      () => (backend.durableCursor(broker, 'check') ?? 0) >= Number(fine!.position) + 1,
      "check's durable cursor",
    );
    await worker.handle.close();
    await check.handle.close();

    // Acked: it is not delivered again after a restart, and it is no dead letter any more.
    await stop(backend);
    backend = await start(dataDir, { retentionMs: 0 });
    const after = await member(backend, { id: 'worker' });
    await backend.eventLog.append(broker, [event('marker-2')]);
    await after.messages.until(
      (items) => items.some((m) => idOf(m) === 'marker-2'),
      'the second marker',
    );
    expect(after.messages.items.map(idOf)).not.toContain('poison');
    expect(await backend.eventLog.countDeadLetters('worker', broker)).toBe(0);
    expect(await backend.eventLog.redriveDeadLetters('worker', broker)).toBe(0);
    await after.handle.close();
    await stop(backend);
    // Nothing of it is left behind: neither its retry nor the dead letter's copy.
    const db = new Database(join(dataDir, DATABASE_FILE), { readonly: true });
    try {
      const count = (table: string) =>
        (db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
      expect([count('retries'), count('dead_letters')]).toEqual([0, 0]);
    } finally {
      db.close();
    }
  });

  it('rejects a redrive for an unknown broker or subscription with NOT_FOUND', async () => {
    const backend = await start(tempDir());
    await backend.eventLog.ensureBroker(broker);
    await expect(
      backend.eventLog.redriveDeadLetters('nobody', { namespace: 'default', name: 'none' }),
    ).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(backend.eventLog.redriveDeadLetters('nobody', broker)).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
    // Reading is lenient: nothing to list.
    expect(await backend.eventLog.listDeadLetters('nobody', broker)).toEqual([]);
    expect(await backend.eventLog.countDeadLetters('nobody', broker)).toBe(0);
  });

  it('checks the page it is asked for, and caps its size', async () => {
    const backend = await start(tempDir());
    await backend.eventLog.ensureBroker(broker);
    const events = Array.from({ length: 1005 }, (_, i) => event(`d-${i}`));
    await backend.eventLog.append(broker, events);
    const settled: Promise<void>[] = [];
    const dead = await member(backend, { id: 'dead', maxInFlight: 2000 }, (message) => {
      settled.push(message.deadLetter({ reason: 'no', attempts: 1 }));
    });
    await dead.messages.count(events.length);
    await Promise.all(settled);
    const log = backend.eventLog;
    await expect(log.listDeadLetters('dead', broker, { after: 'x1' })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
    });
    await expect(log.listDeadLetters('dead', broker, { limit: 0 })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
    });
    await expect(log.listDeadLetters('dead', broker, { limit: 1.5 })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
    });
    expect(await log.countDeadLetters('dead', broker)).toBe(events.length);
    expect(await log.listDeadLetters('dead', broker)).toHaveLength(100);
    expect(await log.listDeadLetters('dead', broker, { limit: 5000 })).toHaveLength(1000);
  });
});

describe('embedded backend: ordered delivery', () => {
  it('bounds what a stuck key holds in memory: it stops reading, and then catches up in order', async () => {
    const backend = await start(tempDir());
    await backend.eventLog.ensureBroker(broker);
    const stuck = MAX_HELD + 3 * READ_BATCH;
    const first = event('a-0', { partitionkey: 'a' });
    const rest = Array.from({ length: stuck }, (_, i) =>
      event(`a-${i + 1}`, { partitionkey: 'a' }),
    );
    await backend.eventLog.append(broker, [first]);
    for (let i = 0; i < rest.length; i += 500) {
      await backend.eventLog.append(broker, rest.slice(i, i + 500));
    }
    await backend.eventLog.append(broker, [event('b-0', { partitionkey: 'b' })]);
    let out = 0;
    let overlaps = 0;
    let release: (() => void) | undefined;
    const ordered = await member(
      backend,
      { id: 'ordered', ordered: true, maxInFlight: 10 },
      (message) => {
        if (keyOf(message) !== 'a') {
          quietly(message.ack());
          return;
        }
        if (out > 0) overlaps++;
        out++;
        const settle = () => {
          out--;
          quietly(message.ack());
        };
        if (idOf(message) === 'a-0') release = settle;
        else setImmediate(settle);
      },
    );
    const witness = await member(backend, { id: 'witness' });
    await witness.messages.count(stuck + 2);
    // Everything is read by the witness; the ordered subscription stopped reading behind a-0 with
    // its read-ahead full of a's events, so b-0 (a different key) waits too.
    await ordered.messages.count(1);
    expect(ordered.messages.items.map(idOf)).toEqual(['a-0']);
    release!();
    await ordered.messages.count(stuck + 2);
    expect(overlaps).toBe(0);
    expect(ordered.messages.items.filter((m) => keyOf(m) === 'a').map(idOf)).toEqual(
      [first, ...rest].map((e) => String(e.attributes.id)),
    );
  });

  it('after a lost cursor update, replays each key in log order with its pending retry in its place', async () => {
    const dataDir = tempDir();
    let backend = await start(dataDir);
    await backend.eventLog.ensureBroker(broker);
    const keys = Array.from({ length: 8 }, (_, i) => `k${i}`);
    const events: CloudEvent[] = [];
    for (let n = 0; n < 3; n++) {
      for (const key of keys) events.push(event(`${key}-${n}`, { partitionkey: key }));
      // Fillers make reading the log again take long enough for the retries to come due meanwhile.
      if (n < 2) for (let i = 0; i < 100; i++) events.push(event(`f-${n}-${i}`));
    }
    await backend.eventLog.append(broker, events);
    // k?-0 and k?-1 are acked, k?-2 waits for a retry an hour away.
    const before = await member(
      backend,
      { id: 'ordered', ordered: true, maxInFlight: 100 },
      (message) => {
        if (keyOf(message) !== '' && idOf(message).endsWith('-2'))
          quietly(message.nak(3_600_000, 'later'));
        else quietly(message.ack());
      },
    );
    await before.messages.count(events.length);
    await before.handle.close();
    await stop(backend);
    // A crash lost the cursor's last update, and the retries are due by now.
    const db = new Database(join(dataDir, DATABASE_FILE));
    db.prepare('UPDATE subscriptions SET cursor = 0').run();
    db.prepare('UPDATE retries SET due_at = 0').run();
    db.close();

    backend = await start(dataDir);
    const after = await member(
      backend,
      { id: 'ordered', ordered: true, maxInFlight: 1 },
      (message) => setImmediate(() => quietly(message.ack())),
    );
    await after.messages.until(
      (items) => items.filter((m) => m.attempt === 2).length === keys.length,
      'every retry',
    );
    for (const key of keys) {
      const received = after.messages.items.filter((m) => keyOf(m) === key);
      // The acked ones come again (at least once), before the retry that follows them in the log.
      expect(withoutRepeats(received), key).toEqual([`${key}-0`, `${key}-1`, `${key}-2`]);
      expect(received[2]!.note).toBe('later');
    }
  });

  it('lets blocked events go once no member asks for ordered delivery any more', async () => {
    const backend = await start(tempDir());
    await backend.eventLog.ensureBroker(broker);
    await backend.eventLog.append(
      broker,
      Array.from({ length: 4 }, (_, i) => event(`a-${i}`, { partitionkey: 'a' })),
    );
    // It takes a-0 and never settles it; full, it leaves the rest to the other member.
    const ordered = await member(backend, { id: 's', ordered: true, maxInFlight: 1 }, () => {});
    await ordered.messages.count(1);
    const unordered = await member(backend, { id: 's', ordered: false });
    // Still ordered while the first member is there: nothing of a while a-0 is out.
    await backend.eventLog.append(broker, [event('marker')]);
    await unordered.messages.count(1);
    expect(unordered.messages.items.map(idOf)).toEqual(['marker']);
    await ordered.handle.close();
    // a-0 came back from the closed member; now unordered, all of a goes at once.
    const received = await unordered.messages.count(5);
    expect(received.map(idOf).sort()).toEqual(['a-0', 'a-1', 'a-2', 'a-3', 'marker']);
  });
});

describe('embedded backend: seek and notes', () => {
  it('moves the durable cursor when the seek commits, back as well as forth', async () => {
    const backend = await start(tempDir());
    await backend.eventLog.ensureBroker(broker);
    await backend.eventLog.append(broker, [event('e-0'), event('e-1'), event('e-2')]);
    const { messages } = await member(backend, { id: 's' }, () => {});
    const first = await messages.count(3);
    const last = Number(first[2]!.position);
    // The acks move the in-memory cursor; its write goes with the seek's commit and must not undo it.
    for (const message of first) quietly(message.ack());
    await backend.eventLog.seek('s', broker, { from: 'earliest' });
    expect(backend.durableCursor(broker, 's')).toBe(0);
    const again = await messages.count(6);
    expect(again.slice(3).map(idOf)).toEqual(['e-0', 'e-1', 'e-2']);
    for (const message of again.slice(3)) quietly(message.ack());
    await eventually(() => backend.durableCursor(broker, 's') === last, 'the durable cursor');
    await backend.eventLog.append(broker, [event('e-3')]);
    await backend.eventLog.seek('s', broker, { from: 'latest' });
    expect(backend.durableCursor(broker, 's')).toBe(last + 1);
    await backend.eventLog.append(broker, [event('marker')]);
    await messages.until((items) => items.some((m) => idOf(m) === 'marker'), 'the marker');
  });

  it('refuses a note that is not a string, and a bad seek position', async () => {
    const backend = await start(tempDir());
    await backend.eventLog.ensureBroker(broker);
    await backend.eventLog.append(broker, [event('e')]);
    const { messages } = await member(backend, { id: 's' }, () => {});
    const message = await messages.next();
    await expect(message.nak(0, 42 as unknown as string)).rejects.toMatchObject({
      code: 'BAD_REQUEST',
    });
    await message.nak(0, 'fine');
    expect((await messages.next()).note).toBe('fine');
    await expect(
      backend.eventLog.seek('s', broker, { from: 'time', time: new Date(Number.NaN) }),
    ).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });
});
