/**
 * Embedded-only behaviour beyond the conformance suites: group commit, storage failures, retention,
 * the shared read cache, and what the contract leaves to the implementation.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type {
  BrokerRef,
  EventFilter,
  LogMessage,
  ResourceChange,
} from '../../src/backends/contracts.js';
import {
  createEmbeddedBackend,
  type EmbeddedBackend,
  type EmbeddedBackendOptions,
} from '../../src/backends/embedded/index.js';
import type { CloudEvent } from '../../src/core/event.js';
import { compileTriggerFilter } from '../../src/core/filters.js';
import type { Resource, ResourceKey } from '../../src/core/resources/types.js';
import { Collector } from '../support/collector.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

const open: EmbeddedBackend[] = [];

async function start(
  options: Omit<EmbeddedBackendOptions, 'dataDir'> = {},
): Promise<EmbeddedBackend> {
  const backend = await createEmbeddedBackend({ dataDir: tempDir(), ...options });
  open.push(backend);
  return backend;
}

afterEach(async () => {
  for (const backend of open.splice(0)) await backend.close();
  removeTempDirs();
});

const broker: BrokerRef = { namespace: 'default', name: 'b' };

function event(id: string, extra: Record<string, string | number | boolean> = {}): CloudEvent {
  return { attributes: { specversion: '1.0', id, source: '/test', type: 'test', ...extra } };
}

function ids(messages: readonly LogMessage[]): string[] {
  return messages.map((message) => String(message.event.attributes.id));
}

function subscribe(
  backend: EmbeddedBackend,
  id: string,
  options: {
    maxInFlight?: number;
    autoAck?: boolean;
    from?: 'earliest' | 'latest';
    filter?: EventFilter;
  } = {},
) {
  const messages = new Collector<LogMessage>(id);
  const handle = backend.eventLog.subscribe(
    {
      id,
      broker,
      start: { from: options.from ?? 'earliest' },
      maxInFlight: options.maxInFlight ?? 100,
      ...(options.filter === undefined ? {} : { filter: options.filter }),
    },
    (message) => {
      messages.push(message);
      if (options.autoAck !== false) void message.ack();
    },
  );
  return handle.then((h) => ({ handle: h, messages }));
}

/** An indexed `exact type` filter that counts its calls in `calls[i]`. */
function countingTypeFilter(type: string, calls: number[], i: number): EventFilter {
  const inner = compileTriggerFilter({ filters: [{ exact: { type } }] });
  expect(inner.indexKey).toMatchObject({ attribute: 'type', value: type });
  return Object.assign(
    (e: CloudEvent) => {
      calls[i]!++;
      return inner(e);
    },
    { indexKey: inner.indexKey },
  );
}

/** Waits (polling, with the collector's timeout as a bound) until `check` holds. */
async function eventually(check: () => boolean, what: string): Promise<void> {
  const done = new Collector<true>(what);
  const poll = setInterval(() => {
    if (check()) done.push(true);
  }, 20);
  try {
    if (!check()) await done.next();
  } finally {
    clearInterval(poll);
  }
}

function seq(message: LogMessage): number {
  return Number(message.position);
}

function brokerResource(name: string): Resource {
  return {
    apiVersion: 'eventing.knative.dev/v1',
    kind: 'Broker',
    metadata: { name, namespace: 'default' },
    spec: {},
  };
}

const brokerKey = (name: string): ResourceKey => ({
  collection: 'brokers',
  namespace: 'default',
  name,
});

describe('embedded backend: group commit', () => {
  it('stores 1,000 concurrent appends in fewer transactions than appends', async () => {
    const backend = await start();
    await backend.eventLog.ensureBroker(broker);
    const before = backend.stats();
    const events = Array.from({ length: 1000 }, (_, i) => event(`c-${i}`));
    await Promise.all(events.map((e) => backend.eventLog.append(broker, [e])));
    const after = backend.stats();
    expect(after.operations - before.operations).toBe(1000);
    expect(after.commits - before.commits).toBeLessThan(1000);
    expect(after.largestBatch).toBeGreaterThan(1);

    const { messages } = await subscribe(backend, 'all');
    const received = await messages.count(1000);
    // One append after another in one transaction: the log keeps the call order.
    expect(ids(received)).toEqual(events.map((e) => String(e.attributes.id)));
  });

  it('rejects only the failing operations of a batch, and applies the others', async () => {
    const backend = await start();
    await backend.eventLog.ensureBroker(broker);
    await backend.resources.create(brokerKey('taken'), brokerResource('taken'));
    const before = backend.stats().commits;
    const results = await Promise.allSettled([
      backend.eventLog.append(broker, [event('good-1')]),
      backend.eventLog.append({ namespace: 'default', name: 'missing' }, [event('lost')]),
      backend.resources.create(brokerKey('taken'), brokerResource('taken')),
      backend.resources.create(brokerKey('fresh'), brokerResource('fresh')),
      backend.eventLog.append(broker, [event('good-2')]),
    ]);
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'rejected',
      'rejected',
      'fulfilled',
      'fulfilled',
    ]);
    expect(results[1]).toMatchObject({ reason: { code: 'NOT_FOUND' } });
    expect(results[2]).toMatchObject({ reason: { code: 'CONFLICT' } });
    expect(backend.stats().commits - before).toBe(1);
    expect(await backend.resources.get(brokerKey('fresh'))).toBeDefined();
    const { messages } = await subscribe(backend, 's');
    expect(ids(await messages.count(2))).toEqual(['good-1', 'good-2']);
  });
});

describe('embedded backend: storage failure', () => {
  it('rejects a batch with BACKEND_UNAVAILABLE when the disk is full, then recovers', async () => {
    const backend = await start();
    await backend.eventLog.ensureBroker(broker);
    await backend.eventLog.append(broker, [event('before')]);
    const [{ page_count: pages }] = backend.pragma('page_count') as [{ page_count: number }];
    backend.pragma(`max_page_count = ${pages}`);
    const big: CloudEvent = {
      ...event('too-big'),
      data: { kind: 'bytes', bytes: new Uint8Array(1 << 20) },
    };
    const results = await Promise.allSettled([
      backend.eventLog.append(broker, [big]),
      backend.resources.create(brokerKey('alongside'), brokerResource('alongside')),
    ]);
    for (const result of results) {
      expect(result).toMatchObject({ status: 'rejected', reason: { code: 'BACKEND_UNAVAILABLE' } });
    }
    expect(backend.eventLog.isHealthy()).toBe(false);
    // Nothing of the failed batch was applied.
    expect(await backend.resources.get(brokerKey('alongside'))).toBeUndefined();

    backend.pragma('max_page_count = 1073741823');
    // Health comes back without any traffic (an ingress may refuse events while unhealthy).
    const recovered = new Collector<boolean>('health');
    const poll = setInterval(() => {
      if (backend.eventLog.isHealthy()) recovered.push(true);
    }, 20);
    try {
      await recovered.next();
    } finally {
      clearInterval(poll);
    }
    await backend.eventLog.append(broker, [event('after')]);
    expect(backend.eventLog.isHealthy()).toBe(true);
    const { messages } = await subscribe(backend, 's');
    expect(ids(await messages.count(2))).toEqual(['before', 'after']);
  });

  it('refuses writes after close, and is no longer healthy', async () => {
    const backend = await start();
    await backend.eventLog.ensureBroker(broker);
    await backend.close();
    expect(backend.eventLog.isHealthy()).toBe(false);
    await expect(backend.eventLog.append(broker, [event('late')])).rejects.toMatchObject({
      code: 'SHUTTING_DOWN',
    });
    await expect(backend.resources.get(brokerKey('x'))).rejects.toMatchObject({
      code: 'SHUTTING_DOWN',
    });
  });

  it('commits writes that were queued when close was called', async () => {
    const dataDir = tempDir();
    const backend = await createEmbeddedBackend({ dataDir });
    await backend.eventLog.ensureBroker(broker);
    const pending = backend.eventLog.append(broker, [event('queued')]);
    await backend.close();
    await pending;
    const reopened = await createEmbeddedBackend({ dataDir });
    open.push(reopened);
    const { messages } = await subscribe(reopened, 's');
    expect(ids(await messages.count(1))).toEqual(['queued']);
  });
});

describe('embedded backend: retention', () => {
  it('deletes old events every subscription is done with, and keeps pending retries', async () => {
    const backend = await start({ retentionMs: 0 });
    await backend.eventLog.ensureBroker(broker);
    const idle: BrokerRef = { namespace: 'default', name: 'idle' };
    await backend.eventLog.ensureBroker(idle);
    await backend.eventLog.append(idle, [event('i1'), event('i2'), event('i3')]);
    await backend.eventLog.append(broker, [event('e1'), event('e2'), event('e3'), event('e4')]);

    const { handle, messages } = await subscribe(backend, 'worker', { autoAck: false });
    const [e1, e2, e3] = await messages.count(4);
    await e1!.ack();
    await e2!.ack();
    // The nak commits the cursor too; e4 stays unsettled.
    await e3!.nak(3_600_000);
    await handle.close();

    // idle has no subscription: all three go; b keeps e3 (retry) and e4 (not done).
    expect(await backend.sweep()).toBe(5);

    const check = await subscribe(backend, 'check');
    await backend.eventLog.append(broker, [event('marker')]);
    await check.messages.until(
      (items) => items.some((m) => m.event.attributes.id === 'marker'),
      'the marker',
    );
    expect(ids(check.messages.items)).toEqual(['e3', 'e4', 'marker']);

    const idleCheck = new Collector<LogMessage>('idle');
    await backend.eventLog.subscribe(
      { id: 'idle-check', broker: idle, start: { from: 'earliest' }, maxInFlight: 10 },
      idleCheck.push,
    );
    await backend.eventLog.append(idle, [event('idle-marker')]);
    expect(ids(await idleCheck.count(1))).toEqual(['idle-marker']);
  });

  it('keeps events younger than the retention', async () => {
    const backend = await start({ retentionMs: 3_600_000 });
    await backend.eventLog.ensureBroker(broker);
    await backend.eventLog.append(broker, [event('young')]);
    expect(await backend.sweep()).toBe(0);
  });
});

describe('embedded backend: delivery details', () => {
  it('hands what a closed member left unsettled to another member', async () => {
    const backend = await start();
    await backend.eventLog.ensureBroker(broker);
    await backend.eventLog.append(broker, [event('left'), event('next')]);
    const first = await subscribe(backend, 's', { maxInFlight: 1, autoAck: false });
    await first.messages.count(1);
    await first.handle.close();
    const second = await subscribe(backend, 's');
    const received = await second.messages.count(2);
    expect(ids(received)).toEqual(['left', 'next']);
    expect(received[0]!.attempt).toBe(1);
    expect(ids(first.messages.items)).toEqual(['left']);
  });

  it('reads from SQLite when a subscription falls behind the shared cache', async () => {
    const backend = await start({ cacheLimits: { maxEvents: 8, maxBytes: 1 << 20 } });
    await backend.eventLog.ensureBroker(broker);
    const all: string[] = [];
    const appends: Promise<void>[] = [];
    for (let batch = 0; batch < 100; batch++) {
      const events = Array.from({ length: 5 }, (_, i) => event(`x-${batch * 5 + i}`));
      all.push(...events.map((e) => String(e.attributes.id)));
      appends.push(backend.eventLog.append(broker, events));
      if (batch === 50) await Promise.all(appends);
    }
    const subscribers = await Promise.all(
      [1, 7, 300].map((maxInFlight) => subscribe(backend, `s-${maxInFlight}`, { maxInFlight })),
    );
    await Promise.all(appends);
    for (const { messages } of subscribers) expect(ids(await messages.count(500))).toEqual(all);
  });

  it('fans out to many subscriptions from one read', async () => {
    const backend = await start();
    await backend.eventLog.ensureBroker(broker);
    const subscribers = await Promise.all(
      Array.from({ length: 200 }, (_, i) => subscribe(backend, `fan-${i}`, { from: 'latest' })),
    );
    const events = Array.from({ length: 20 }, (_, i) => event(`f-${i}`));
    await backend.eventLog.append(broker, events);
    for (const { messages } of subscribers) {
      expect(ids(await messages.count(20))).toEqual(events.map((e) => String(e.attributes.id)));
    }
  });

  it('treats a filter that throws as not matching', async () => {
    const backend = await start();
    await backend.eventLog.ensureBroker(broker);
    const messages = new Collector<LogMessage>('filtered');
    await backend.eventLog.subscribe(
      {
        id: 's',
        broker,
        start: { from: 'earliest' },
        maxInFlight: 5,
        filter: (e) => {
          if (e.attributes.id === 'boom') throw new Error('filter bug');
          return true;
        },
      },
      messages.push,
    );
    await backend.eventLog.append(broker, [event('boom'), event('fine')]);
    expect(ids(await messages.count(1))).toEqual(['fine']);
  });

  it('resumes a subscription from its durable cursor after a restart', async () => {
    const dataDir = tempDir();
    const backend = await createEmbeddedBackend({ dataDir });
    await backend.eventLog.ensureBroker(broker);
    await backend.eventLog.append(
      broker,
      Array.from({ length: 300 }, (_, i) => event(`r-${i}`)),
    );
    const first = await subscribe(backend, 's', { maxInFlight: 50 });
    await first.messages.count(300);
    await first.handle.close();
    await backend.close();
    const reopened = await createEmbeddedBackend({ dataDir });
    open.push(reopened);
    const second = await subscribe(reopened, 's');
    await reopened.eventLog.append(broker, [event('new')]);
    expect(ids(await second.messages.count(1))).toEqual(['new']);
  });
});

describe('embedded backend: filter index', () => {
  const SUBSCRIPTIONS = 1000;
  const TARGET = 7;

  it.each([
    ['only indexed subscriptions', false],
    ['one unindexed subscription too', true],
  ])('does not call the filters of other indexed subscriptions: %s', async (_, withUnindexed) => {
    const backend = await start();
    await backend.eventLog.ensureBroker(broker);
    const calls = Array.from({ length: SUBSCRIPTIONS }, () => 0);
    const subscribers = await Promise.all(
      Array.from({ length: SUBSCRIPTIONS }, (_, i) =>
        subscribe(backend, `t-${i}`, {
          from: 'latest',
          filter: countingTypeFilter(`t${i}`, calls, i),
        }),
      ),
    );
    let unindexedCalls = 0;
    const unindexed = withUnindexed
      ? await subscribe(backend, 'unindexed', {
          from: 'latest',
          filter: (e) => {
            unindexedCalls++;
            return String(e.attributes.type).startsWith('t');
          },
        })
      : undefined;

    const sent: string[] = [];
    for (let batch = 0; batch < 8; batch++) {
      const events = Array.from({ length: 25 }, (_, i) =>
        event(`e-${batch * 25 + i}`, { type: `t${TARGET}` }),
      );
      sent.push(...events.map((e) => String(e.attributes.id)));
      await backend.eventLog.append(broker, events);
    }
    expect(ids(await subscribers[TARGET]!.messages.count(200))).toEqual(sent);
    if (unindexed !== undefined) {
      expect(ids(await unindexed.messages.count(200))).toEqual(sent);
      expect(unindexedCalls).toBe(200);
    }
    const others = calls.reduce((sum, n, i) => (i === TARGET ? sum : sum + n), 0);
    expect(others).toBe(0);
    expect(calls[TARGET]).toBeGreaterThanOrEqual(200);
    expect(calls[TARGET]).toBeLessThanOrEqual(400);
    expect(subscribers.filter((s) => s.messages.length > 0)).toHaveLength(1);
  });

  it('persists the cursor of a parked subscription, which then does not read those events again', async () => {
    const dataDir = tempDir();
    const backend = await createEmbeddedBackend({ dataDir });
    open.push(backend);
    await backend.eventLog.ensureBroker(broker);
    const calls = [0];
    const parked = await subscribe(backend, 'parked', {
      filter: countingTypeFilter('want', calls, 0),
    });
    const witness = await subscribe(backend, 'witness');
    await backend.eventLog.append(broker, [event('w-1', { type: 'want' })]);
    await parked.messages.count(1);
    for (let batch = 0; batch < 5; batch++) {
      await backend.eventLog.append(
        broker,
        Array.from({ length: 20 }, (_, i) => event(`o-${batch}-${i}`, { type: 'other' })),
      );
    }
    const last = seq((await witness.messages.count(101))[100]!);
    // Its cursor reaches the last event without it reading any of the 100 that do not match.
    await eventually(
      () => (backend.durableCursor(broker, 'parked') ?? 0) >= last,
      "the parked subscription's durable cursor",
    );
    expect(calls[0]).toBe(1);

    await parked.handle.close();
    await witness.handle.close();
    await backend.close();
    const reopened = await createEmbeddedBackend({ dataDir });
    open.push(reopened);
    expect(reopened.durableCursor(broker, 'parked')).toBeGreaterThanOrEqual(last);
    const again = await subscribe(reopened, 'parked', {
      filter: countingTypeFilter('want', calls, 0),
    });
    await reopened.eventLog.append(broker, [event('w-2', { type: 'want' })]);
    expect(ids(await again.messages.count(1))).toEqual(['w-2']);
    expect(calls[0]).toBe(2);
  });

  it('keeps what a parked subscription has unsettled or waiting for a retry', async () => {
    const backend = await start({ retentionMs: 0 });
    await backend.eventLog.ensureBroker(broker);
    await backend.eventLog.append(broker, [event('before-1'), event('before-2')]);
    const filter = () => compileTriggerFilter({ filters: [{ exact: { type: 'want' } }] });
    const holding = await subscribe(backend, 'holding', {
      from: 'latest',
      filter: filter(),
      autoAck: false,
    });
    const retrying = await subscribe(backend, 'retrying', {
      from: 'latest',
      filter: filter(),
      autoAck: false,
    });
    const done = await subscribe(backend, 'done', { from: 'latest', filter: filter() });
    await backend.eventLog.append(broker, [
      event('o-0', { type: 'other' }),
      event('w-1', { type: 'want' }),
      event('o-1', { type: 'other' }),
    ]);
    const [held] = await holding.messages.count(1);
    await (await retrying.messages.count(1))[0]!.nak(3_600_000);
    await done.messages.count(1);
    for (let batch = 0; batch < 5; batch++) {
      await backend.eventLog.append(
        broker,
        Array.from({ length: 10 }, (_, i) => event(`o-${batch}-${i}`, { type: 'other' })),
      );
    }
    const lastSeq = seq(held!) + 51;
    // The parked cursors move on without pumps; `holding` stays just before its unsettled w-1.
    await eventually(
      () =>
        (backend.durableCursor(broker, 'done') ?? 0) >= lastSeq &&
        (backend.durableCursor(broker, 'retrying') ?? 0) >= lastSeq,
      'the durable cursors of the parked subscriptions',
    );
    expect(backend.durableCursor(broker, 'holding')).toBe(seq(held!) - 1);
    // before-1, before-2 and o-0 go; w-1 (unsettled, and a retry) and everything after it stay.
    expect(await backend.sweep()).toBe(3);

    await held!.ack();
    await eventually(
      () => (backend.durableCursor(broker, 'holding') ?? 0) >= lastSeq,
      "the cursor of 'holding' after its ack",
    );
    // Only w-1 stays: it waits for its retry.
    expect(await backend.sweep()).toBe(51);
    const check = await subscribe(backend, 'check');
    await backend.eventLog.append(broker, [event('marker')]);
    await check.messages.until(
      (items) => items.some((m) => m.event.attributes.id === 'marker'),
      'the marker',
    );
    expect(ids(check.messages.items)).toEqual(['w-1', 'marker']);
  });
});

describe('embedded backend: resource watch', () => {
  it('keeps notifying the other listeners when one throws', async () => {
    const backend = await start();
    await backend.resources.watch(() => {
      throw new Error('listener bug');
    });
    const changes = new Collector<ResourceChange>('changes');
    await backend.resources.watch(changes.push);
    await backend.resources.create(brokerKey('one'), brokerResource('one'));
    await backend.resources.create(brokerKey('two'), brokerResource('two'));
    const received = await changes.count(2);
    expect(received.map((c) => (c.type === 'put' ? c.stored.key.name : ''))).toEqual([
      'one',
      'two',
    ]);
  });
});
