/**
 * The EventLog conformance suite (DESIGN.md sections 4 and 5). Written only against the contract in
 * src/backends/contracts.ts: every backend runs it through its own harness.
 *
 * Rules: each test uses its own brokers and subscription ids; nothing sleeps to synchronize, tests
 * await the messages themselves; to show that something does NOT happen, a marker event appended
 * afterwards must arrive first (delivery to one member without retries is in log order); no test
 * asserts a duration. The test file calls `harness.cleanup()`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type {
  Backend,
  BrokerRef,
  EventFilter,
  EventLog,
  LogMessage,
  StartPosition,
  SubscriptionHandle,
} from '../../src/backends/contracts.js';
import type { CloudEvent } from '../../src/core/event.js';
import { compileTriggerFilter } from '../../src/core/filters.js';
import { Collector } from '../support/collector.js';
import { until } from '../support/delivery.js';
import type { BackendHarness } from './harness.js';
import {
  bytesEqual,
  clockPast,
  idOf,
  makeEvent,
  makeEvents,
  uniqueBroker,
  uniqueName,
} from './fixtures.js';

/** A short nak delay: the tests await the redelivery, they never measure it. */
const NAK_DELAY_MS = 50;

interface JoinOptions {
  readonly id: string;
  readonly broker: BrokerRef;
  readonly start?: StartPosition;
  readonly maxInFlight?: number;
  readonly filter?: EventFilter;
  /** Ack every message as soon as it arrives. */
  readonly autoAck?: boolean;
  readonly ordered?: boolean;
  /** Called with each message after it is collected (to settle it some other way). */
  readonly onMessage?: (message: LogMessage) => void;
  readonly label?: string;
  /** Also collect the messages here (to wait on several members together). */
  readonly sink?: Collector<LogMessage>;
}

/** One member of a subscription and what it received. */
interface TestMember {
  readonly messages: Collector<LogMessage>;
  readonly handle: SubscriptionHandle;
  /** Ids of the events received so far, in arrival order. */
  ids(): string[];
  /** Waits for the next message and returns its event id. */
  nextId(): Promise<string>;
}

function expectSameEvent(actual: CloudEvent, expected: CloudEvent): void {
  const id = idOf(expected);
  expect(Object.keys(actual.attributes), `attribute order of ${id}`).toEqual(
    Object.keys(expected.attributes),
  );
  for (const [name, value] of Object.entries(expected.attributes)) {
    expect(actual.attributes[name], `attribute ${name} of ${id}`).toStrictEqual(value);
  }
  const data = expected.data;
  if (data === undefined) {
    expect(actual.data, `data of ${id}`).toBeUndefined();
    return;
  }
  expect(actual.data?.kind, `data kind of ${id}`).toBe(data.kind);
  if (data.kind === 'json') {
    expect(actual.data?.kind === 'json' ? actual.data.text : undefined, `data of ${id}`).toBe(
      data.text,
    );
  } else {
    const bytes = actual.data?.kind === data.kind ? actual.data.bytes : new Uint8Array([]);
    expect(bytes.byteLength, `data length of ${id}`).toBe(data.bytes.byteLength);
    expect(bytesEqual(bytes, data.bytes), `data bytes of ${id}`).toBe(true);
  }
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  await expect(promise).rejects.toMatchObject({ code });
}

/** A trigger's `exact` filter on the type: it carries an index key, which a backend may use. */
function indexedType(type: string): EventFilter {
  const filter = compileTriggerFilter({ filters: [{ exact: { type } }] });
  expect(filter.indexKey, 'an exact type filter has an index key').toMatchObject({
    attribute: 'type',
    value: type,
  });
  return filter;
}

/** The same condition as `indexedType`, without an index key. */
function plainType(type: string): EventFilter {
  return (event) => event.attributes.type === type;
}

function typed(id: string, type: string): CloudEvent {
  return makeEvent(id, { type });
}

/** An event of partition key `key`, with the id `${key}-${n}`. */
function keyed(key: string, n: number | string): CloudEvent {
  return makeEvent(`${key}-${n}`, { partitionkey: key });
}

function keyOf(message: LogMessage): string {
  return String(message.event.attributes.partitionkey ?? '');
}

/** The ids of the messages, dropping each repetition that follows itself (a redelivery). */
function withoutRepeats(messages: readonly LogMessage[]): string[] {
  const ids: string[] = [];
  for (const message of messages) {
    const id = idOf(message.event);
    if (ids[ids.length - 1] !== id) ids.push(id);
  }
  return ids;
}

/** Resolves after `hops` turns of the event loop (a settlement that comes a little later). */
async function later(hops: number): Promise<void> {
  for (let i = 0; i < hops; i++) await new Promise((resolve) => setImmediate(resolve));
}

export function eventLogConformance(name: string, harness: BackendHarness): void {
  describe(`EventLog conformance: ${name}`, () => {
    const opened: Backend[] = [];
    const handles = new Map<Backend, SubscriptionHandle[]>();
    const settleErrors: unknown[] = [];
    const durable = harness.reopen !== undefined;
    const perEvent = harness.sharing !== 'partition';

    async function open(): Promise<Backend> {
      const backend = await harness.open();
      opened.push(backend);
      return backend;
    }

    async function reopen(): Promise<Backend> {
      if (harness.reopen === undefined) throw new Error('the harness cannot reopen');
      const backend = await harness.reopen();
      opened.push(backend);
      return backend;
    }

    /** Closes the backend's members, then the backend (as the contract asks). */
    async function shutdown(backend: Backend): Promise<void> {
      for (const handle of handles.get(backend) ?? []) await handle.close();
      handles.delete(backend);
      await backend.close();
    }

    async function withBroker(): Promise<{ backend: Backend; log: EventLog; broker: BrokerRef }> {
      const backend = await open();
      const broker = uniqueBroker();
      await backend.eventLog.ensureBroker(broker);
      return { backend, log: backend.eventLog, broker };
    }

    async function join(backend: Backend, options: JoinOptions): Promise<TestMember> {
      const messages = new Collector<LogMessage>(options.label ?? `member of ${options.id}`);
      const handle = await backend.eventLog.subscribe(
        {
          id: options.id,
          broker: options.broker,
          start: options.start ?? { from: 'earliest' },
          maxInFlight: options.maxInFlight ?? 100,
          ...(options.filter === undefined ? {} : { filter: options.filter }),
          ...(options.ordered === undefined ? {} : { ordered: options.ordered }),
        },
        (message) => {
          messages.push(message);
          options.sink?.push(message);
          if (options.autoAck) message.ack().catch((error: unknown) => settleErrors.push(error));
          options.onMessage?.(message);
        },
      );
      const list = handles.get(backend) ?? [];
      list.push(handle);
      handles.set(backend, list);
      return {
        messages,
        handle,
        ids: () => messages.items.map((message) => idOf(message.event)),
        nextId: async () => idOf((await messages.next()).event),
      };
    }

    afterEach(async () => {
      for (const backend of opened.splice(0)) {
        for (const handle of handles.get(backend) ?? []) await handle.close().catch(() => {});
        await backend.close().catch(() => {});
      }
      handles.clear();
      const errors = settleErrors.splice(0);
      expect(errors, 'acks made by the tests must succeed').toEqual([]);
    });

    describe('brokers and append', () => {
      it('is healthy once open', async () => {
        const backend = await open();
        expect(backend.eventLog.isHealthy()).toBe(true);
      });

      it('rejects an append to an unknown broker with NOT_FOUND', async () => {
        const backend = await open();
        await expectCode(backend.eventLog.append(uniqueBroker(), [makeEvent('x')]), 'NOT_FOUND');
      });

      it('rejects a subscription to an unknown broker with NOT_FOUND', async () => {
        const backend = await open();
        const broker = uniqueBroker();
        const id = uniqueName('s');
        await expectCode(
          backend.eventLog.ensureSubscription({ id, broker, start: { from: 'earliest' } }),
          'NOT_FOUND',
        );
        await expectCode(
          backend.eventLog.subscribe(
            { id, broker, start: { from: 'earliest' }, maxInFlight: 1 },
            () => {},
          ),
          'NOT_FOUND',
        );
      });

      it('creates and deletes brokers idempotently', async () => {
        const { backend, log, broker } = await withBroker();
        await log.ensureBroker(broker);
        await log.append(broker, [makeEvent('kept')]);
        await log.ensureBroker(broker);
        const member = await join(backend, { id: uniqueName('s'), broker, autoAck: true });
        expect(await member.nextId()).toBe('kept');
        await log.deleteBroker(broker);
        await log.deleteBroker(broker);
        await log.deleteBroker(uniqueBroker());
      });

      it('delivers attributes, extensions, typed values and every data kind unchanged, in order', async () => {
        const { backend, log, broker } = await withBroker();
        const allBytes = Uint8Array.from({ length: 256 }, (_, i) => i);
        const events: CloudEvent[] = [
          makeEvent(
            'json',
            {
              datacontenttype: 'application/json',
              dataschema: 'https://example.com/schema',
              subject: 'a/b c',
              time: '2024-01-02T03:04:05.678901+01:00',
              zext: 'declared before aext',
              aext: 42,
              bext: true,
              cext: -1.5,
              dext: false,
              eext: 0,
              fext: '',
            },
            { kind: 'json', text: '{ "b": 1,\n  "a": [1, 2.50, "é", null, 1e3] }' },
          ),
          makeEvent(
            'bytes',
            { datacontenttype: 'application/octet-stream' },
            {
              kind: 'bytes',
              bytes: allBytes,
            },
          ),
          makeEvent('base64', {}, { kind: 'base64', bytes: Uint8Array.from([0, 255, 0, 1, 254]) }),
          makeEvent('no-data'),
          makeEvent('empty-bytes', {}, { kind: 'bytes', bytes: new Uint8Array(0) }),
          makeEvent('json-null', {}, { kind: 'json', text: 'null' }),
          makeEvent(
            'unicode',
            { note: 'naïve 日本語 🚀' },
            { kind: 'json', text: '"日本語 🚀 \\u00e9"' },
          ),
          {
            attributes: {
              specversion: '0.3',
              type: 'legacy.event',
              source: 'urn:legacy',
              id: 'v03',
              schemaurl: 'https://example.com/v03',
            },
            data: { kind: 'bytes', bytes: Buffer.from('plain text') },
          },
        ];
        await log.append(broker, events.slice(0, 3));
        await log.append(broker, events.slice(3));
        const member = await join(backend, { id: uniqueName('s'), broker, autoAck: true });
        const received = await member.messages.count(events.length);
        expect(received.map((message) => idOf(message.event))).toEqual(events.map(idOf));
        received.forEach((message, i) => expectSameEvent(message.event, events[i]!));
        for (const message of received) {
          expect(message.attempt).toBe(1);
          expect(typeof message.position).toBe('string');
        }
        expect(new Set(received.map((message) => message.position)).size).toBe(events.length);
      });

      it('keeps the order of a batch of 100 and of batches after one another', async () => {
        const { backend, log, broker } = await withBroker();
        const first = makeEvents('first', 100);
        const second = makeEvents('second', 100);
        await log.append(broker, first);
        await log.append(broker, second);
        const member = await join(backend, { id: uniqueName('s'), broker, autoAck: true });
        const received = await member.messages.count(200);
        expect(received.map((message) => idOf(message.event))).toEqual(
          [...first, ...second].map(idOf),
        );
      });

      it('makes append reject with NOT_FOUND after deleteBroker, and a re-created broker starts empty', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        await log.append(broker, [makeEvent('before-delete')]);
        const before = await join(backend, { id, broker });
        const first = await before.messages.next();
        expect(idOf(first.event)).toBe('before-delete');
        // Settled before the broker goes: an ack still on its way when the stream is deleted
        // would never be answered (NATS: a timeout).
        await first.ack();
        await before.handle.close();
        await log.deleteBroker(broker);
        await expectCode(log.append(broker, [makeEvent('after-delete')]), 'NOT_FOUND');
        await log.ensureBroker(broker);
        expect(await log.listDeadLetters(id, broker)).toEqual([]);
        // Its subscriptions went with it: the same id starts over, and finds no old events.
        const after = await join(backend, { id, broker, autoAck: true });
        await log.append(broker, [makeEvent('recreated')]);
        expect(await after.nextId()).toBe('recreated');
      });
    });

    describe('start positions', () => {
      it('starts at latest: only events appended after ensureSubscription resolved', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        await log.append(broker, [makeEvent('old-1'), makeEvent('old-2')]);
        await log.ensureSubscription({ id, broker, start: { from: 'latest' } });
        // Appended before any member joined: the subscription must see it.
        await log.append(broker, [makeEvent('new-1')]);
        const member = await join(backend, {
          id,
          broker,
          start: { from: 'latest' },
          autoAck: true,
        });
        expect(await member.nextId()).toBe('new-1');
        await log.append(broker, [makeEvent('marker')]);
        expect(await member.nextId()).toBe('marker');
        expect(member.ids()).toEqual(['new-1', 'marker']);
      });

      it('subscribe at latest sees every event appended after it resolved', async () => {
        const { backend, log, broker } = await withBroker();
        await log.append(broker, [makeEvent('old')]);
        const member = await join(backend, {
          id: uniqueName('s'),
          broker,
          start: { from: 'latest' },
          autoAck: true,
        });
        await log.append(broker, [makeEvent('new')]);
        expect(await member.nextId()).toBe('new');
        expect(member.ids()).toEqual(['new']);
      });

      it('starts at earliest: every retained event', async () => {
        const { backend, log, broker } = await withBroker();
        await log.append(broker, makeEvents('e', 5));
        const member = await join(backend, { id: uniqueName('s'), broker, autoAck: true });
        await member.messages.count(5);
        expect(member.ids()).toEqual(makeEvents('e', 5).map(idOf));
      });

      it('starts at a time: the first event appended at or after it', async () => {
        const { backend, log, broker } = await withBroker();
        await log.append(broker, [makeEvent('before-1'), makeEvent('before-2')]);
        await clockPast(Date.now());
        const start = new Date();
        await clockPast(start.getTime());
        await log.append(broker, [makeEvent('after-1')]);
        await log.append(broker, [makeEvent('after-2')]);
        const member = await join(backend, {
          id: uniqueName('s'),
          broker,
          start: { from: 'time', time: start },
          autoAck: true,
        });
        await member.messages.count(2);
        expect(member.ids()).toEqual(['after-1', 'after-2']);
      });

      it('resumes an existing subscription where it was and ignores start', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        await log.append(broker, [makeEvent('e1'), makeEvent('e2')]);
        const first = await join(backend, { id, broker, autoAck: true });
        await first.messages.count(2);
        await first.handle.close();
        await log.append(broker, [makeEvent('e3')]);
        // start latest would skip e3 for a new subscription; this one resumes after e2.
        const second = await join(backend, {
          id,
          broker,
          start: { from: 'latest' },
          autoAck: true,
        });
        expect(await second.nextId()).toBe('e3');
        await second.handle.close();
        await log.append(broker, [makeEvent('e4')]);
        // start earliest would repeat e1..e3 for a new subscription.
        await log.ensureSubscription({ id, broker, start: { from: 'earliest' } });
        const third = await join(backend, {
          id,
          broker,
          start: { from: 'earliest' },
          autoAck: true,
        });
        expect(await third.nextId()).toBe('e4');
        expect(third.ids()).toEqual(['e4']);
      });
    });

    describe('settlement', () => {
      it('redelivers after nak(delay) with attempt 2, then 3, and not after ack', async () => {
        const { backend, log, broker } = await withBroker();
        await log.append(broker, [makeEvent('flaky')]);
        const member = await join(backend, { id: uniqueName('s'), broker });
        const first = await member.messages.next();
        expect(first.attempt).toBe(1);
        await first.nak(NAK_DELAY_MS);
        const second = await member.messages.next();
        expect(idOf(second.event)).toBe('flaky');
        expect(second.attempt).toBe(2);
        expect(second.position).toBe(first.position);
        expectSameEvent(second.event, first.event);
        await second.nak(NAK_DELAY_MS);
        const third = await member.messages.next();
        expect(idOf(third.event)).toBe('flaky');
        expect(third.attempt).toBe(3);
        await third.ack();
        await log.append(broker, [makeEvent('marker')]);
        const marker = await member.messages.next();
        expect(idOf(marker.event)).toBe('marker');
        await marker.ack();
        expect(member.ids()).toEqual(['flaky', 'flaky', 'flaky', 'marker']);
      });

      it('lets later events through while a nak waits', async () => {
        const { backend, log, broker } = await withBroker();
        await log.append(broker, [makeEvent('slow'), makeEvent('fast')]);
        const member = await join(backend, { id: uniqueName('s'), broker, maxInFlight: 1 });
        const slow = await member.messages.next();
        expect(idOf(slow.event)).toBe('slow');
        await slow.nak(NAK_DELAY_MS);
        // The nak freed the member's only slot: both the next event and the redelivery come.
        const second = await member.messages.next();
        await second.ack();
        const third = await member.messages.next();
        await third.ack();
        expect([second, third].map((message) => idOf(message.event)).sort()).toEqual([
          'fast',
          'slow',
        ]);
        const redelivered = idOf(second.event) === 'slow' ? second : third;
        expect(redelivered.attempt).toBe(2);
      });

      it('stores a dead letter with the event intact and does not redeliver it', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        const poison = makeEvent(
          'poison',
          { datacontenttype: 'application/octet-stream', count: 3, flag: true },
          { kind: 'bytes', bytes: Uint8Array.from([9, 0, 8, 255]) },
        );
        await log.append(broker, [poison, makeEvent('fine')]);
        const member = await join(backend, { id, broker });
        const message = await member.messages.next();
        expect(idOf(message.event)).toBe('poison');
        const before = Date.now();
        await message.deadLetter({
          reason: 'subscriber answered 400',
          attempts: 1,
          destination: 'http://subscriber.example/hook',
          lastStatus: 400,
        });
        const fine = await member.messages.next();
        expect(idOf(fine.event)).toBe('fine');
        await fine.ack();
        const records = await log.listDeadLetters(id, broker);
        expect(records).toHaveLength(1);
        const record = records[0]!;
        expect(typeof record.id).toBe('string');
        expect(record.subscriptionId).toBe(id);
        expect(record.reason).toBe('subscriber answered 400');
        expect(record.attempts).toBe(1);
        expect(record.destination).toBe('http://subscriber.example/hook');
        expect(record.lastStatus).toBe(400);
        expect(record.deadLetteredAt).toBeInstanceOf(Date);
        expect(record.deadLetteredAt.getTime()).toBeGreaterThanOrEqual(before - 60_000);
        expectSameEvent(record.event, poison);
        await log.append(broker, [makeEvent('marker')]);
        const marker = await member.messages.next();
        expect(idOf(marker.event)).toBe('marker');
        await marker.ack();
        expect(member.ids()).toEqual(['poison', 'fine', 'marker']);
      });

      it('dead-letters a redelivered event, listing the records in order', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        await log.append(broker, [makeEvent('a'), makeEvent('b')]);
        const member = await join(backend, { id, broker, maxInFlight: 2 });
        const [a, b] = await member.messages.count(2);
        expect(idOf(a!.event)).toBe('a');
        await a!.nak(NAK_DELAY_MS);
        const retried = await member.messages.next();
        expect(idOf(retried.event)).toBe('a');
        expect(retried.attempt).toBe(2);
        await retried.deadLetter({ reason: 'gave up', attempts: 2 });
        await b!.deadLetter({ reason: 'gave up at once', attempts: 1 });
        const records = await log.listDeadLetters(id, broker);
        expect(records.map((record) => idOf(record.event))).toEqual(['a', 'b']);
        expect(records.map((record) => record.attempts)).toEqual([2, 1]);
        expect(records[0]!.destination).toBeUndefined();
        expect(records[0]!.lastStatus).toBeUndefined();
        expect(new Set(records.map((record) => record.id)).size).toBe(2);
        await log.append(broker, [makeEvent('marker')]);
        expect(await member.nextId()).toBe('marker');
      });

      it('ignores a second settlement of the same message', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        await log.append(broker, [makeEvent('once')]);
        const member = await join(backend, { id, broker });
        const message = await member.messages.next();
        await message.ack();
        await message.ack();
        await message.nak(0);
        await message.deadLetter({ reason: 'late', attempts: 1 });
        await log.append(broker, [makeEvent('marker')]);
        const marker = await member.messages.next();
        expect(idOf(marker.event)).toBe('marker');
        await marker.ack();
        expect(member.ids()).toEqual(['once', 'marker']);
        expect(await backend.eventLog.listDeadLetters(id, broker)).toEqual([]);
      });

      it('accepts a settlement after its member closed', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        await log.append(broker, [makeEvent('held')]);
        const first = await join(backend, { id, broker });
        const held = await first.messages.next();
        await first.handle.close();
        await held.ack();
        const second = await join(backend, { id, broker, autoAck: true });
        await log.append(broker, [makeEvent('marker')]);
        expect(await second.nextId()).toBe('marker');
        expect(second.ids()).toEqual(['marker']);
      });
    });

    describe('members and subscriptions', () => {
      it.skipIf(!perEvent)('hands a member at most maxInFlight unsettled messages', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        const events = makeEvents('m', 5);
        await log.append(broker, events);
        const narrow = await join(backend, { id, broker, maxInFlight: 2, label: 'narrow' });
        await narrow.messages.count(2);
        // The narrow member is full: the other three can only go to a second member.
        const wide = await join(backend, { id, broker, maxInFlight: 10, label: 'wide' });
        await wide.messages.count(3);
        expect(narrow.messages.length).toBe(2);
        expect([...narrow.ids(), ...wide.ids()].sort()).toEqual(events.map(idOf).sort());
      });

      it('hands a member more once it settles', async () => {
        const { backend, log, broker } = await withBroker();
        await log.append(broker, makeEvents('m', 3));
        const member = await join(backend, { id: uniqueName('s'), broker, maxInFlight: 1 });
        for (let i = 0; i < 3; i++) {
          const message = await member.messages.next();
          expect(idOf(message.event)).toBe(`m-${i}`);
          await message.ack();
        }
      });

      it.skipIf(!perEvent)(
        'shares the events of one subscription between its members, each event once',
        async () => {
          const { backend, log, broker } = await withBroker();
          const id = uniqueName('s');
          const stuck = await join(backend, { id, broker, maxInFlight: 1, label: 'stuck' });
          await log.append(broker, [makeEvent('first')]);
          expect(await stuck.nextId()).toBe('first');
          const busy = await join(backend, { id, broker, autoAck: true, label: 'busy' });
          const rest = makeEvents('rest', 20);
          await log.append(broker, rest);
          await busy.messages.count(20);
          expect(busy.ids()).toEqual(rest.map(idOf));
          expect(stuck.ids()).toEqual(['first']);
        },
      );

      it.runIf(!perEvent)(
        'hands a member at most maxInFlight unsettled messages, and the rest once it settles',
        async () => {
          const { backend, log, broker } = await withBroker();
          const events = makeEvents('m', 5);
          await log.append(broker, events);
          const narrow = await join(backend, { id: uniqueName('s'), broker, maxInFlight: 2 });
          const first = await narrow.messages.count(2);
          // A marker in another subscription: by the time it is in, a third one would have come.
          const witness = await join(backend, { id: uniqueName('s'), broker, autoAck: true });
          await witness.messages.count(5);
          expect(narrow.messages.length).toBe(2);
          for (const message of first) await message.ack();
          while (narrow.messages.length < 5) {
            const next = await narrow.messages.next();
            await next.ack();
          }
          expect(narrow.ids()).toEqual(events.map(idOf));
        },
      );

      it.runIf(!perEvent)(
        'hands each event to one member of a subscription only, across its partitions',
        async () => {
          const { backend, log, broker } = await withBroker();
          const id = uniqueName('s');
          const both = new Collector<LogMessage>('both members');
          const a = await join(backend, { id, broker, autoAck: true, label: 'a', sink: both });
          const b = await join(backend, { id, broker, autoAck: true, label: 'b', sink: both });
          const keyedEvents = Array.from({ length: 30 }, (_, i) => keyed(`k${i % 6}`, i));
          await log.append(broker, keyedEvents);
          await both.count(30);
          await log.append(broker, [keyed('k0', 'marker')]);
          await both.count(31);
          const all = [...a.ids(), ...b.ids()];
          expect(all.length).toBe(31);
          expect(new Set(all).size).toBe(31);
        },
      );

      it('gives each member of a subscription different events when both take them', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        const both = new Collector<LogMessage>('both members');
        const a = await join(backend, { id, broker, autoAck: true, label: 'a', sink: both });
        const b = await join(backend, { id, broker, autoAck: true, label: 'b', sink: both });
        const events = makeEvents('shared', 40);
        await log.append(broker, events);
        await both.count(40);
        await log.append(broker, [makeEvent('marker')]);
        await both.count(41);
        const all = [...a.ids(), ...b.ids()];
        expect(all.sort()).toEqual([...events.map(idOf), 'marker'].sort());
      });

      it('gives every subscription every event', async () => {
        const { backend, log, broker } = await withBroker();
        const one = await join(backend, { id: uniqueName('s'), broker, autoAck: true });
        const two = await join(backend, { id: uniqueName('s'), broker, autoAck: true });
        const events = makeEvents('fan', 10);
        await log.append(broker, events);
        await one.messages.count(10);
        await two.messages.count(10);
        expect(one.ids()).toEqual(events.map(idOf));
        expect(two.ids()).toEqual(events.map(idOf));
      });

      it('does not let a subscriber that never settles hold up another subscription', async () => {
        const { backend, log, broker } = await withBroker();
        const stuck = await join(backend, { id: uniqueName('s'), broker, maxInFlight: 1 });
        const healthy = await join(backend, { id: uniqueName('s'), broker, autoAck: true });
        const events = makeEvents('iso', 50);
        await log.append(broker, events);
        await healthy.messages.count(50);
        expect(healthy.ids()).toEqual(events.map(idOf));
        expect(await stuck.nextId()).toBe('iso-0');
      });

      it('stops handing over to a closed member', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        const closing = await join(backend, { id, broker, autoAck: true, label: 'closing' });
        const witness = await join(backend, { id: uniqueName('s'), broker, autoAck: true });
        await log.append(broker, [makeEvent('e1')]);
        expect(await closing.nextId()).toBe('e1');
        await closing.handle.close();
        await log.append(broker, [makeEvent('e2')]);
        expect(await witness.nextId()).toBe('e1');
        expect(await witness.nextId()).toBe('e2');
        // The closed member acks everything it gets, so e2 is left only if it never got it.
        const next = await join(backend, { id, broker, autoAck: true, label: 'next' });
        expect(await next.nextId()).toBe('e2');
        expect(closing.ids()).toEqual(['e1']);
      });

      it('applies the filter, and setFilter replaces it', async () => {
        const { backend, log, broker } = await withBroker();
        const byType =
          (type: string): EventFilter =>
          (event) =>
            event.attributes.type === type;
        const member = await join(backend, {
          id: uniqueName('s'),
          broker,
          filter: byType('keep'),
          autoAck: true,
        });
        await log.append(broker, [
          makeEvent('drop-1', { type: 'drop' }),
          makeEvent('keep-1', { type: 'keep' }),
          makeEvent('drop-2', { type: 'drop' }),
          makeEvent('keep-2', { type: 'keep' }),
        ]);
        await member.messages.count(2);
        member.handle.setFilter(byType('other'));
        await log.append(broker, [
          makeEvent('keep-3', { type: 'keep' }),
          makeEvent('other-1', { type: 'other' }),
        ]);
        await member.messages.count(3);
        member.handle.setFilter(undefined);
        await log.append(broker, [makeEvent('drop-3', { type: 'drop' })]);
        await member.messages.count(4);
        expect(member.ids()).toEqual(['keep-1', 'keep-2', 'other-1', 'drop-3']);
      });

      it('deleteSubscription removes its position and its dead letters', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        await log.append(broker, [makeEvent('e1'), makeEvent('e2')]);
        const member = await join(backend, { id, broker });
        const e1 = await member.messages.next();
        await e1.deadLetter({ reason: 'no', attempts: 1 });
        const e2 = await member.messages.next();
        await e2.ack();
        expect(await log.listDeadLetters(id, broker)).toHaveLength(1);
        await member.handle.close();
        await log.deleteSubscription(id, broker);
        await log.deleteSubscription(id, broker);
        await log.deleteSubscription(uniqueName('s'), uniqueBroker());
        expect(await log.listDeadLetters(id, broker)).toEqual([]);
        // A new subscription with the same id starts where its start says.
        const again = await join(backend, { id, broker, autoAck: true });
        await again.messages.count(2);
        expect(again.ids()).toEqual(['e1', 'e2']);
      });
    });

    describe('indexed filters', () => {
      it('delivers every match and nothing else, like the same filter without an index key', async () => {
        const { backend, log, broker } = await withBroker();
        const byType = await join(backend, {
          id: uniqueName('s'),
          broker,
          filter: indexedType('want'),
          autoAck: true,
          label: 'indexed type',
        });
        // The legacy attributes filter, keyed on the source.
        const bySource = await join(backend, {
          id: uniqueName('s'),
          broker,
          filter: compileTriggerFilter({ filter: { attributes: { source: '/wanted' } } }),
          autoAck: true,
          label: 'indexed source',
        });
        const plain = await join(backend, {
          id: uniqueName('s'),
          broker,
          filter: plainType('want'),
          autoAck: true,
          label: 'plain',
        });
        const wanted: string[] = [];
        const fromSource: string[] = [];
        let n = 0;
        const event = (want: boolean, source: boolean): CloudEvent => {
          const id = `e-${n++}`;
          if (want) wanted.push(id);
          if (source) fromSource.push(id);
          return makeEvent(id, {
            type: want ? 'want' : 'other',
            ...(source ? { source: '/wanted' } : {}),
          });
        };
        for (let round = 0; round < 24; round++) {
          const size = (round % 5) + 1;
          const batch = Array.from({ length: size }, (_, i) => {
            const k = round * 7 + i;
            // Some rounds have no match at all; some end with the only match after the others.
            return event(k % 3 === 0 && round % 4 !== 1, k % 4 === 1);
          });
          await log.append(broker, batch);
          if (round % 3 === 2) {
            // An idle period: every member has everything it will get so far.
            await byType.messages.count(wanted.length);
            await bySource.messages.count(fromSource.length);
            await plain.messages.count(wanted.length);
          }
        }
        await log.append(broker, [event(false, false), event(false, false), event(true, false)]);
        await log.append(broker, [event(false, false), event(false, true)]);
        await log.append(broker, [event(true, true)]);
        await byType.messages.count(wanted.length);
        await bySource.messages.count(fromSource.length);
        await plain.messages.count(wanted.length);
        // Each member gets its events in log order: the last match arrived, so did every earlier one.
        expect(byType.ids()).toEqual(wanted);
        expect(plain.ids()).toEqual(wanted);
        expect(bySource.ids()).toEqual(fromSource);
      });

      it('delivers a match appended in the same batch after events that do not match', async () => {
        const { backend, log, broker } = await withBroker();
        const member = await join(backend, {
          id: uniqueName('s'),
          broker,
          filter: indexedType('want'),
          autoAck: true,
        });
        await log.append(broker, [typed('o-1', 'other'), typed('o-2', 'other')]);
        await log.append(broker, [
          typed('o-3', 'other'),
          typed('o-4', 'other'),
          typed('w-1', 'want'),
          typed('o-5', 'other'),
          typed('w-2', 'want'),
        ]);
        expect(await member.nextId()).toBe('w-1');
        expect(await member.nextId()).toBe('w-2');
        await log.append(broker, [typed('o-6', 'other'), typed('w-3', 'want')]);
        expect(await member.nextId()).toBe('w-3');
        expect(member.ids()).toEqual(['w-1', 'w-2', 'w-3']);
      });

      it('follows setFilter from one index key to another, and to none', async () => {
        const { backend, log, broker } = await withBroker();
        const member = await join(backend, {
          id: uniqueName('s'),
          broker,
          filter: indexedType('a'),
          autoAck: true,
        });
        await log.append(broker, [typed('b-1', 'b'), typed('a-1', 'a')]);
        expect(await member.nextId()).toBe('a-1');
        member.handle.setFilter(indexedType('b'));
        await log.append(broker, [typed('a-2', 'a'), typed('b-2', 'b')]);
        expect(await member.nextId()).toBe('b-2');
        await log.append(broker, [typed('b-3', 'b'), typed('a-3', 'a')]);
        await log.append(broker, [typed('a-4', 'a')]);
        await log.append(broker, [typed('b-4', 'b')]);
        expect(await member.nextId()).toBe('b-3');
        expect(await member.nextId()).toBe('b-4');
        member.handle.setFilter(undefined);
        await log.append(broker, [typed('c-1', 'c'), typed('a-5', 'a')]);
        expect(await member.nextId()).toBe('c-1');
        expect(await member.nextId()).toBe('a-5');
        member.handle.setFilter(indexedType('a'));
        await log.append(broker, [typed('c-2', 'c'), typed('b-5', 'b'), typed('a-6', 'a')]);
        expect(await member.nextId()).toBe('a-6');
        expect(member.ids()).toEqual(['a-1', 'b-2', 'b-3', 'b-4', 'c-1', 'a-5', 'a-6']);
      });

      // Partition sharing: an event waits for its partition's owner, whatever the others' filters.
      it.skipIf(!perEvent)(
        'hands each member of a subscription only what its own filter passes, when their keys differ',
        async () => {
          const { backend, log, broker } = await withBroker();
          const id = uniqueName('s');
          // `a` is the first member and then full: every later event can only go to `b`.
          const a = await join(backend, {
            id,
            broker,
            filter: indexedType('a'),
            maxInFlight: 1,
            label: 'a',
          });
          await log.append(broker, [typed('b-0', 'b'), typed('a-0', 'a')]);
          const held = await a.messages.next();
          expect(idOf(held.event)).toBe('a-0');
          const b = await join(backend, {
            id,
            broker,
            filter: indexedType('b'),
            autoAck: true,
            label: 'b',
          });
          await log.append(broker, [typed('b-1', 'b'), typed('a-1', 'a')]);
          expect(await b.nextId()).toBe('b-1');
          await log.append(broker, [typed('a-2', 'a')]);
          await log.append(broker, [typed('a-3', 'a'), typed('b-2', 'b')]);
          expect(await b.nextId()).toBe('b-2');
          await log.append(broker, [typed('b-3', 'b')]);
          expect(await b.nextId()).toBe('b-3');
          // With `b` gone, the subscription follows `a`'s key again.
          await b.handle.close();
          await held.ack();
          await log.append(broker, [typed('b-4', 'b'), typed('a-4', 'a')]);
          const next = await a.messages.next();
          expect(idOf(next.event)).toBe('a-4');
          await next.ack();
          expect(a.ids()).toEqual(['a-0', 'a-4']);
          expect(b.ids()).toEqual(['b-1', 'b-2', 'b-3']);
        },
      );

      it('judges what was appended while a subscription had no member by the filter of the next one', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        const first = await join(backend, {
          id,
          broker,
          filter: indexedType('a'),
          autoAck: true,
          label: 'first',
        });
        await log.append(broker, [typed('b-0', 'b'), typed('a-0', 'a')]);
        expect(await first.nextId()).toBe('a-0');
        await first.handle.close();
        await log.append(broker, [typed('b-1', 'b'), typed('a-1', 'a')]);
        await log.append(broker, [typed('b-2', 'b')]);
        const next = await join(backend, {
          id,
          broker,
          filter: indexedType('b'),
          autoAck: true,
          label: 'next',
        });
        expect(await next.nextId()).toBe('b-1');
        expect(await next.nextId()).toBe('b-2');
        await log.append(broker, [typed('a-3', 'a'), typed('b-3', 'b')]);
        expect(await next.nextId()).toBe('b-3');
        expect(next.ids()).toEqual(['b-1', 'b-2', 'b-3']);
        expect(first.ids()).toEqual(['a-0']);
      });

      it.skipIf(!durable)(
        'after a restart, redelivers every unacked match and nothing acked',
        async () => {
          const { backend, log, broker } = await withBroker();
          const some = uniqueName('s');
          const all = uniqueName('s');
          const first = await join(backend, {
            id: some,
            broker,
            filter: indexedType('want'),
            label: 'acks some',
          });
          const second = await join(backend, {
            id: all,
            broker,
            filter: indexedType('want'),
            autoAck: true,
            label: 'acks all',
          });
          await log.append(broker, [
            typed('o-0', 'other'),
            typed('o-1', 'other'),
            typed('w-0', 'want'),
          ]);
          await log.append(broker, [
            typed('o-2', 'other'),
            typed('w-1', 'want'),
            typed('o-3', 'other'),
          ]);
          await log.append(broker, [typed('w-2', 'want')]);
          await log.append(broker, [typed('o-4', 'other')]);
          await log.append(broker, [
            typed('w-3', 'want'),
            typed('o-5', 'other'),
            typed('w-4', 'want'),
          ]);
          const received = await first.messages.count(5);
          await second.messages.count(5);
          expect(received.map((message) => idOf(message.event))).toEqual([
            'w-0',
            'w-1',
            'w-2',
            'w-3',
            'w-4',
          ]);
          for (const message of received.slice(0, 3)) await message.ack();
          // Nothing matches these: the subscriptions are done with them without handing them out.
          await log.append(broker, [typed('o-6', 'other'), typed('o-7', 'other')]);
          await log.append(broker, [typed('o-8', 'other')]);
          await shutdown(backend);

          const reopened = await reopen();
          const again = await join(reopened, {
            id: some,
            broker,
            filter: indexedType('want'),
            autoAck: true,
            label: 'acks some, again',
          });
          const allAgain = await join(reopened, {
            id: all,
            broker,
            filter: indexedType('want'),
            autoAck: true,
            label: 'acks all, again',
          });
          expect(await again.nextId()).toBe('w-3');
          expect(await again.nextId()).toBe('w-4');
          await reopened.eventLog.append(broker, [typed('o-9', 'other'), typed('marker', 'want')]);
          expect(await again.nextId()).toBe('marker');
          expect(await allAgain.nextId()).toBe('marker');
          expect(again.ids()).toEqual(['w-3', 'w-4', 'marker']);
          expect(allAgain.ids()).toEqual(['marker']);
        },
      );
    });

    /** Settles in the background; a failure fails the test (afterEach). */
    function settle(promise: Promise<void>): void {
      promise.catch((error: unknown) => settleErrors.push(error));
    }

    /** The first message `accept` takes, once there is one. */
    async function waitFor(
      member: TestMember,
      accept: (message: LogMessage) => boolean,
      what: string,
    ): Promise<LogMessage> {
      await member.messages.until((items) => items.some(accept), what);
      return member.messages.items.find(accept)!;
    }

    function attemptOf(id: string, attempt: number): (message: LogMessage) => boolean {
      return (message) => idOf(message.event) === id && message.attempt === attempt;
    }

    /** Ids of the messages whose event has partition key `key`, in arrival order. */
    function idsOfKey(member: TestMember, key: string): string[] {
      return member.messages.items.filter((m) => keyOf(m) === key).map((m) => idOf(m.event));
    }

    describe('ordered delivery', () => {
      it('holds back the later events of a key behind its nak-ed event while other keys flow', async () => {
        const { backend, log, broker } = await withBroker();
        const events: CloudEvent[] = [];
        for (let n = 0; n < 4; n++) events.push(keyed('a', n), keyed('b', n), keyed('c', n));
        await log.append(broker, events);
        // b and c are acked as they come; a is settled by the test.
        const member = await join(backend, {
          id: uniqueName('s'),
          broker,
          ordered: true,
          maxInFlight: 100,
          onMessage: (message) => {
            if (keyOf(message) !== 'a') settle(message.ack());
          },
        });
        await member.messages.until(
          (items) => items.filter((m) => keyOf(m) !== 'a').length === 8,
          'every event of b and c',
        );
        // a-1 comes before b-1 in the log: it was held back, not late.
        expect(idsOfKey(member, 'a')).toEqual(['a-0']);
        expect(idsOfKey(member, 'b')).toEqual(['b-0', 'b-1', 'b-2', 'b-3']);
        expect(idsOfKey(member, 'c')).toEqual(['c-0', 'c-1', 'c-2', 'c-3']);
        const first = await waitFor(member, attemptOf('a-0', 1), 'a-0');
        await first.nak(NAK_DELAY_MS);
        // While a-0 waits for its retry, b and c still flow.
        await log.append(broker, [keyed('b', 4), keyed('c', 4)]);
        await waitFor(member, attemptOf('b-4', 1), 'b-4');
        await waitFor(member, attemptOf('c-4', 1), 'c-4');
        const second = await waitFor(member, attemptOf('a-0', 2), 'a-0, attempt 2');
        expect(idsOfKey(member, 'a')).toEqual(['a-0', 'a-0']);
        await second.nak(NAK_DELAY_MS);
        const third = await waitFor(member, attemptOf('a-0', 3), 'a-0, attempt 3');
        expect(idsOfKey(member, 'a')).toEqual(['a-0', 'a-0', 'a-0']);
        await third.ack();
        for (let n = 1; n < 4; n++) {
          const next = await waitFor(member, attemptOf(`a-${n}`, 1), `a-${n}`);
          // Nothing of a comes while a-n is out.
          expect(idsOfKey(member, 'a')).toEqual(
            ['a-0', 'a-0', 'a-0', 'a-1', 'a-2', 'a-3'].slice(0, n + 3),
          );
          await next.ack();
        }
        await log.append(broker, [keyed('a', 'marker')]);
        await waitFor(member, attemptOf('a-marker', 1), 'the marker');
        expect(idsOfKey(member, 'a')).toEqual([
          'a-0',
          'a-0',
          'a-0',
          'a-1',
          'a-2',
          'a-3',
          'a-marker',
        ]);
        expect(member.messages.items.filter((m) => keyOf(m) === 'a').map((m) => m.attempt)).toEqual(
          [1, 2, 3, 1, 1, 1, 1],
        );
      });

      it('never has two events of one key out at once, with maxInFlight 10, retries included', async () => {
        const { backend, log, broker } = await withBroker();
        const keys = ['k0', 'k1', 'k2', 'k3', 'k4'];
        const events = Array.from({ length: 80 }, (_, i) =>
          keyed(keys[(i * 3 + Math.floor(i / 7)) % keys.length]!, i),
        );
        const out = new Set<string>();
        const overlaps: string[] = [];
        let mostOut = 0;
        const acked = new Collector<string>('acked events');
        const member = await join(backend, {
          id: uniqueName('s'),
          broker,
          ordered: true,
          maxInFlight: 10,
          onMessage: (message) => {
            const key = keyOf(message);
            const id = idOf(message.event);
            if (out.has(key)) overlaps.push(`${id} while ${key} was out`);
            out.add(key);
            mostOut = Math.max(mostOut, out.size);
            const n = Number(id.split('-')[1]);
            // Settled a few turns later; every ninth event fails its first attempt.
            void later((n % 4) + message.attempt).then(() => {
              out.delete(key);
              if (n % 9 === 0 && message.attempt === 1) {
                settle(message.nak(0));
              } else {
                acked.push(id);
                settle(message.ack());
              }
            });
          },
        });
        await log.append(broker, events.slice(0, 30));
        await log.append(broker, events.slice(30));
        await acked.count(events.length);
        expect(overlaps).toEqual([]);
        // Different keys were out together.
        expect(mostOut).toBeGreaterThan(1);
        for (const key of keys) {
          const expected = events.filter((e) => e.attributes.partitionkey === key).map(idOf);
          const received = withoutRepeats(member.messages.items.filter((m) => keyOf(m) === key));
          expect(received, `order of ${key}`).toEqual(expected);
        }
      });

      it('delivers the events without a partitionkey one at a time, in order', async () => {
        const { backend, log, broker } = await withBroker();
        const events = makeEvents('plain', 20);
        let out = 0;
        let overlaps = 0;
        const acked = new Collector<string>('acked events');
        const member = await join(backend, {
          id: uniqueName('s'),
          broker,
          ordered: true,
          maxInFlight: 10,
          onMessage: (message) => {
            if (out > 0) overlaps++;
            out++;
            const id = idOf(message.event);
            void later(2).then(() => {
              out--;
              if (id === 'plain-5' && message.attempt === 1) {
                settle(message.nak(0));
              } else {
                acked.push(id);
                settle(message.ack());
              }
            });
          },
        });
        await log.append(broker, events);
        await acked.count(events.length);
        expect(overlaps).toBe(0);
        expect(withoutRepeats(member.messages.items)).toEqual(events.map(idOf));
        expect(member.messages.length).toBe(events.length + 1);
      });

      it.skipIf(!durable)(
        'after a restart, a pending retry still holds back the later events of its key',
        async () => {
          const { backend, log, broker } = await withBroker();
          const id = uniqueName('s');
          await log.append(broker, [
            keyed('a', 0),
            keyed('b', 0),
            keyed('a', 1),
            keyed('b', 1),
            keyed('a', 2),
          ]);
          const before = await join(backend, {
            id,
            broker,
            ordered: true,
            onMessage: (message) => {
              if (keyOf(message) === 'b') settle(message.ack());
            },
          });
          await waitFor(before, attemptOf('b-1', 1), 'b-1');
          expect(idsOfKey(before, 'a')).toEqual(['a-0']);
          await (await waitFor(before, attemptOf('a-0', 1), 'a-0')).nak(NAK_DELAY_MS, 'retry me');
          await shutdown(backend);

          const reopened = await reopen();
          const after = await join(reopened, {
            id,
            broker,
            ordered: true,
            onMessage: (message) => {
              if (keyOf(message) === 'b') settle(message.ack());
            },
          });
          await reopened.eventLog.append(broker, [keyed('b', 'marker')]);
          await waitFor(after, attemptOf('b-marker', 1), 'the marker');
          // a-1 and a-2 were read again after the restart, and stayed behind a-0.
          expect(idsOfKey(after, 'a').filter((x) => x !== 'a-0')).toEqual([]);
          const retried = await waitFor(after, attemptOf('a-0', 2), 'a-0, attempt 2');
          expect(retried.note).toBe('retry me');
          expect(idsOfKey(after, 'a')).toEqual(['a-0']);
          await retried.ack();
          await (await waitFor(after, attemptOf('a-1', 1), 'a-1')).ack();
          await (await waitFor(after, attemptOf('a-2', 1), 'a-2')).ack();
          await reopened.eventLog.append(broker, [keyed('a', 'marker')]);
          await (await waitFor(after, attemptOf('a-marker', 1), 'the marker of a')).ack();
          expect(idsOfKey(after, 'a')).toEqual(['a-0', 'a-1', 'a-2', 'a-marker']);
        },
      );
    });

    describe('notes', () => {
      it('hands the note of the last nak to the next attempt, and none on a first hand-over', async () => {
        const { backend, log, broker } = await withBroker();
        await log.append(broker, [makeEvent('noted')]);
        const member = await join(backend, { id: uniqueName('s'), broker });
        const first = await member.messages.next();
        expect(first.note).toBeUndefined();
        await first.nak(NAK_DELAY_MS, 'one');
        const second = await member.messages.next();
        expect([second.attempt, second.note]).toEqual([2, 'one']);
        const structured = JSON.stringify({ phase: 'dead-letter sink', tries: 2, text: 'é 🚀' });
        await second.nak(NAK_DELAY_MS, structured);
        const third = await member.messages.next();
        expect([third.attempt, third.note]).toEqual([3, structured]);
        // A nak without a note leaves none.
        await third.nak(NAK_DELAY_MS);
        const fourth = await member.messages.next();
        expect([fourth.attempt, fourth.note]).toEqual([4, undefined]);
        await fourth.ack();
        await log.append(broker, [makeEvent('marker')]);
        const marker = await member.messages.next();
        expect([idOf(marker.event), marker.attempt, marker.note]).toEqual(['marker', 1, undefined]);
        await marker.ack();
      });

      it.skipIf(!durable)('keeps a note across a restart, and its removal', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        await log.append(broker, [makeEvent('noted'), makeEvent('cleared')]);
        const before = await join(backend, { id, broker });
        const [noted, cleared] = await before.messages.count(2);
        await noted!.nak(NAK_DELAY_MS, 'resume here');
        await cleared!.nak(NAK_DELAY_MS, 'stale');
        const clearedAgain = await waitFor(before, attemptOf('cleared', 2), 'cleared, attempt 2');
        expect(clearedAgain.note).toBe('stale');
        await clearedAgain.nak(NAK_DELAY_MS);
        await shutdown(backend);
        const reopened = await reopen();
        const after = await join(reopened, { id, broker, autoAck: true });
        const received = await after.messages.count(2);
        const byId = new Map(received.map((message) => [idOf(message.event), message]));
        expect([byId.get('noted')?.attempt, byId.get('noted')?.note]).toEqual([2, 'resume here']);
        expect([byId.get('cleared')?.attempt, byId.get('cleared')?.note]).toEqual([3, undefined]);
      });
    });

    describe('seek', () => {
      it.each([
        ['an indexed filter', indexedType('want')],
        ['a filter without an index key', plainType('want')],
      ])('to earliest hands over again the acked events that pass %s', async (_, filter) => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        const member = await join(backend, { id, broker, filter, autoAck: true });
        await log.append(broker, [
          typed('o-0', 'other'),
          typed('w-0', 'want'),
          typed('o-1', 'other'),
        ]);
        await log.append(broker, [typed('w-1', 'want'), typed('o-2', 'other')]);
        await member.messages.count(2);
        // Everything is acked: the subscription has nothing left to do.
        await log.append(broker, [typed('o-3', 'other'), typed('w-2', 'want')]);
        await member.messages.count(3);
        await log.seek(id, broker, { from: 'earliest' });
        await member.messages.count(6);
        await log.append(broker, [typed('o-4', 'other'), typed('w-3', 'want')]);
        await member.messages.count(7);
        expect(member.ids()).toEqual(['w-0', 'w-1', 'w-2', 'w-0', 'w-1', 'w-2', 'w-3']);
        expect(member.messages.items.map((message) => message.attempt)).toEqual([
          1, 1, 1, 1, 1, 1, 1,
        ]);
      });

      it('to a time hands over again the events appended from then on', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        const member = await join(backend, { id, broker, autoAck: true });
        await log.append(broker, [makeEvent('before-1'), makeEvent('before-2')]);
        await clockPast(Date.now());
        const time = new Date();
        await clockPast(time.getTime());
        await log.append(broker, [makeEvent('after-1')]);
        await log.append(broker, [makeEvent('after-2')]);
        await member.messages.count(4);
        await log.seek(id, broker, { from: 'time', time });
        await member.messages.count(6);
        await log.append(broker, [makeEvent('marker')]);
        await member.messages.count(7);
        expect(member.ids()).toEqual([
          'before-1',
          'before-2',
          'after-1',
          'after-2',
          'after-1',
          'after-2',
          'marker',
        ]);
      });

      it('to latest skips a backlog, for a member that is there and for one that comes later', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        const waiting = uniqueName('s');
        await log.ensureSubscription({ id: waiting, broker, start: { from: 'earliest' } });
        const member = await join(backend, { id, broker, maxInFlight: 1 });
        await log.append(broker, makeEvents('backlog', 5));
        const held = await member.messages.next();
        expect(idOf(held.event)).toBe('backlog-0');
        await log.seek(id, broker, { from: 'latest' });
        await log.seek(waiting, broker, { from: 'latest' });
        await held.ack();
        await log.append(broker, [makeEvent('marker')]);
        const marker = await member.messages.next();
        expect(idOf(marker.event)).toBe('marker');
        await marker.ack();
        expect(member.ids()).toEqual(['backlog-0', 'marker']);
        const later = await join(backend, { id: waiting, broker, autoAck: true });
        await log.append(broker, [makeEvent('marker-2')]);
        await later.messages.count(2);
        expect(later.ids()).toEqual(['marker', 'marker-2']);
      });

      it('keeps the retry of an event waiting for one', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        await log.append(broker, [makeEvent('retried'), makeEvent('acked')]);
        const member = await join(backend, { id, broker });
        const [retried, acked] = await member.messages.count(2);
        await acked!.ack();
        await retried!.nak(NAK_DELAY_MS, 'still due');
        await log.seek(id, broker, { from: 'latest' });
        const again = await member.messages.next();
        expect([idOf(again.event), again.attempt, again.note]).toEqual(['retried', 2, 'still due']);
        await again.ack();
        await log.append(broker, [makeEvent('marker')]);
        expect(await member.nextId()).toBe('marker');
        expect(member.ids()).toEqual(['retried', 'acked', 'retried', 'marker']);
      });

      it('keeps an ordered subscription in order, back and forth', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        await log.append(broker, [keyed('a', 0), keyed('a', 1), keyed('a', 2)]);
        const member = await join(backend, {
          id,
          broker,
          ordered: true,
          onMessage: (message) => {
            if (keyOf(message) === 'b') settle(message.ack());
          },
        });
        let seenOfA = 0;
        const nextOfA = async (): Promise<LogMessage> => {
          const index = seenOfA++;
          await member.messages.until(
            () => idsOfKey(member, 'a').length > index,
            `event #${index + 1} of a`,
          );
          return member.messages.items.filter((message) => keyOf(message) === 'a')[index]!;
        };
        await (await nextOfA()).ack();
        const out = await nextOfA();
        expect(idOf(out.event)).toBe('a-1');
        await log.seek(id, broker, { from: 'earliest' });
        await log.append(broker, [keyed('b', 'marker')]);
        await waitFor(member, attemptOf('b-marker', 1), 'the marker');
        // a-0 is handed over again only once a-1, out when the seek came, is settled.
        expect(idsOfKey(member, 'a')).toEqual(['a-0', 'a-1']);
        await out.ack();
        const replayed: string[] = [];
        for (;;) {
          const message = await nextOfA();
          replayed.push(idOf(message.event));
          await message.ack();
          if (idOf(message.event) === 'a-2') break;
        }
        // a-1 may come again or not (its delivery was out when the seek came): in order either way.
        expect(replayed.filter((x) => x !== 'a-1')).toEqual(['a-0', 'a-2']);
        expect(replayed).toEqual([...replayed].sort());
        // Moved forward past what waits behind an event that is out: it is skipped.
        await log.append(broker, [keyed('a', 3), keyed('a', 4)]);
        const held = await nextOfA();
        expect(idOf(held.event)).toBe('a-3');
        await log.seek(id, broker, { from: 'latest' });
        await held.ack();
        await log.append(broker, [keyed('a', 'marker')]);
        const marker = await nextOfA();
        expect(idOf(marker.event)).toBe('a-marker');
        await marker.ack();
      });

      it('rejects an unknown broker or subscription with NOT_FOUND', async () => {
        const { backend, log, broker } = await withBroker();
        await expectCode(
          log.seek(uniqueName('s'), uniqueBroker(), { from: 'earliest' }),
          'NOT_FOUND',
        );
        await expectCode(log.seek(uniqueName('s'), broker, { from: 'latest' }), 'NOT_FOUND');
        const id = uniqueName('s');
        await join(backend, { id, broker, autoAck: true });
        await log.deleteSubscription(id, broker);
        await expectCode(log.seek(id, broker, { from: 'earliest' }), 'NOT_FOUND');
      });

      it.skipIf(!durable)('survives a restart, back and forth', async () => {
        const { backend, log, broker } = await withBroker();
        const back = uniqueName('s');
        const forth = uniqueName('s');
        await log.ensureSubscription({ id: forth, broker, start: { from: 'earliest' } });
        await log.append(broker, makeEvents('e', 3));
        const member = await join(backend, { id: back, broker, autoAck: true });
        await member.messages.count(3);
        await log.seek(back, broker, { from: 'earliest' });
        // Nothing hands the events over again before the restart.
        await member.handle.close();
        await log.seek(forth, broker, { from: 'latest' });
        await shutdown(backend);
        const reopened = await reopen();
        const again = await join(reopened, { id: back, broker, autoAck: true });
        await again.messages.count(3);
        const skipped = await join(reopened, { id: forth, broker, autoAck: true });
        await reopened.eventLog.append(broker, [makeEvent('marker')]);
        await again.messages.count(4);
        expect(await skipped.nextId()).toBe('marker');
        expect(again.ids()).toEqual(['e-0', 'e-1', 'e-2', 'marker']);
        expect(skipped.ids()).toEqual(['marker']);
      });
    });

    describe('dead letters', () => {
      /** Appends the events and dead-letters each of them, in order. */
      async function deadLettered(
        backend: Backend,
        broker: BrokerRef,
        id: string,
        events: CloudEvent[],
      ): Promise<TestMember> {
        await backend.eventLog.append(broker, events);
        const member = await join(backend, { id, broker, maxInFlight: 1 });
        for (let i = 0; i < events.length; i++) {
          const message = await member.messages.next();
          expect(idOf(message.event)).toBe(idOf(events[i]!));
          await message.deadLetter({ reason: `failed ${i}`, attempts: message.attempt });
        }
        return member;
      }

      it('lists dead letters in pages, oldest first, and counts them', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        await deadLettered(backend, broker, id, makeEvents('d', 5));
        expect(await log.countDeadLetters(id, broker)).toBe(5);
        const all = await log.listDeadLetters(id, broker);
        expect(all.map((record) => idOf(record.event))).toEqual([
          'd-0',
          'd-1',
          'd-2',
          'd-3',
          'd-4',
        ]);
        const first = await log.listDeadLetters(id, broker, { limit: 2 });
        expect(first.map((record) => record.id)).toEqual(
          all.slice(0, 2).map((record) => record.id),
        );
        const second = await log.listDeadLetters(id, broker, { after: first[1]!.id, limit: 2 });
        expect(second.map((record) => idOf(record.event))).toEqual(['d-2', 'd-3']);
        const third = await log.listDeadLetters(id, broker, { after: second[1]!.id, limit: 2 });
        expect(third.map((record) => idOf(record.event))).toEqual(['d-4']);
        expect(await log.listDeadLetters(id, broker, { after: third[0]!.id })).toEqual([]);
        expect(third[0]!.reason).toBe('failed 4');
        expect(await log.countDeadLetters(uniqueName('s'), broker)).toBe(0);
      });

      it('redrives every dead letter as a first attempt without a note, and unlists it', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        const events = [
          makeEvent('r-0', {}, { kind: 'bytes', bytes: Uint8Array.from([0, 1, 2, 255]) }),
          makeEvent('r-1', { flag: true }, { kind: 'json', text: '{"n": 1.50}' }),
        ];
        await log.append(broker, events);
        const member = await join(backend, { id, broker });
        for (let i = 0; i < 2; i++) await (await member.messages.next()).nak(NAK_DELAY_MS, 'x');
        for (let i = 0; i < 2; i++) {
          const retried = await member.messages.next();
          await retried.deadLetter({ reason: 'gave up', attempts: retried.attempt });
        }
        expect(await log.countDeadLetters(id, broker)).toBe(2);
        expect(await log.redriveDeadLetters(id, broker)).toBe(2);
        expect(await log.listDeadLetters(id, broker)).toEqual([]);
        expect(await log.countDeadLetters(id, broker)).toBe(0);
        const redriven = await member.messages.count(6);
        const again = redriven.slice(4).sort((a, b) => idOf(a.event).localeCompare(idOf(b.event)));
        expect(
          again.map((message) => [idOf(message.event), message.attempt, message.note]),
        ).toEqual([
          ['r-0', 1, undefined],
          ['r-1', 1, undefined],
        ]);
        again.forEach((message, i) => expectSameEvent(message.event, events[i]!));
        for (const message of again) await message.ack();
        await log.append(broker, [makeEvent('marker')]);
        const marker = await member.messages.next();
        expect(idOf(marker.event)).toBe('marker');
        await marker.ack();
        expect(await log.redriveDeadLetters(id, broker)).toBe(0);
      });

      it('redrives only the given ids, ignores unknown ones, and lists a dead letter again', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        const member = await deadLettered(backend, broker, id, makeEvents('d', 3));
        const records = await log.listDeadLetters(id, broker);
        const wanted = records[1]!.id;
        const unknown = String(Number(records[2]!.id) + 1000);
        expect(
          await log.redriveDeadLetters(id, broker, [wanted, unknown, 'not-an-id', wanted]),
        ).toBe(1);
        expect(await log.redriveDeadLetters(id, broker, [wanted])).toBe(0);
        expect(await log.redriveDeadLetters(id, broker, [])).toBe(0);
        const left = await log.listDeadLetters(id, broker);
        expect(left.map((record) => idOf(record.event))).toEqual(['d-0', 'd-2']);
        const redriven = await member.messages.next();
        expect([idOf(redriven.event), redriven.attempt, redriven.note]).toEqual([
          'd-1',
          1,
          undefined,
        ]);
        // It fails again: it is listed again, after the others.
        await redriven.deadLetter({ reason: 'still failing', attempts: 1 });
        const relisted = await log.listDeadLetters(id, broker);
        expect(relisted.map((record) => idOf(record.event))).toEqual(['d-0', 'd-2', 'd-1']);
        expect(relisted[2]!.reason).toBe('still failing');
        expect(relisted[2]!.id).not.toBe(wanted);
        expect(await log.countDeadLetters(id, broker)).toBe(3);
      });

      it('makes a redriven event wait for its key in an ordered subscription', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        await log.append(broker, [keyed('a', 0), keyed('a', 1), keyed('b', 0)]);
        // b-0 fails once and is acked when redriven; a is settled by the test.
        let failedB: Promise<void> | undefined;
        const member = await join(backend, {
          id,
          broker,
          ordered: true,
          onMessage: (message) => {
            if (keyOf(message) !== 'b') return;
            if (failedB === undefined) failedB = message.deadLetter({ reason: 'no', attempts: 1 });
            else settle(message.ack());
          },
        });
        const first = await waitFor(member, attemptOf('a-0', 1), 'a-0');
        await first.deadLetter({ reason: 'poison', attempts: 1 });
        // a-1 is out: the redriven a-0 waits until it is settled; b-0, redriven with it, does not.
        const held = await waitFor(member, attemptOf('a-1', 1), 'a-1');
        await waitFor(member, attemptOf('b-0', 1), 'b-0');
        await failedB;
        expect(await log.redriveDeadLetters(id, broker)).toBe(2);
        await member.messages.until(() => idsOfKey(member, 'b').length === 2, 'the redriven b-0');
        expect(idsOfKey(member, 'a')).toEqual(['a-0', 'a-1']);
        await held.ack();
        await member.messages.until(() => idsOfKey(member, 'a').length === 3, 'the redriven a-0');
        expect(idsOfKey(member, 'a')).toEqual(['a-0', 'a-1', 'a-0']);
        const again = member.messages.items.filter((m) => idOf(m.event) === 'a-0')[1]!;
        expect([again.attempt, again.note]).toEqual([1, undefined]);
        await again.ack();
        expect(await log.countDeadLetters(id, broker)).toBe(0);
      });

      it.skipIf(!durable)('keeps a redrive across a restart', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        const event = makeEvent('kept', {}, { kind: 'bytes', bytes: Uint8Array.from([7, 8, 9]) });
        const member = await deadLettered(backend, broker, id, [event]);
        await member.handle.close();
        expect(await log.redriveDeadLetters(id, broker)).toBe(1);
        await shutdown(backend);
        const reopened = await reopen();
        expect(await reopened.eventLog.listDeadLetters(id, broker)).toEqual([]);
        const after = await join(reopened, { id, broker, autoAck: true });
        const redriven = await after.messages.next();
        expect([idOf(redriven.event), redriven.attempt, redriven.note]).toEqual([
          'kept',
          1,
          undefined,
        ]);
        expectSameEvent(redriven.event, event);
        await reopened.eventLog.append(broker, [makeEvent('marker')]);
        expect(await after.nextId()).toBe('marker');
        expect(after.ids()).toEqual(['kept', 'marker']);
      });
    });

    describe('backlog', () => {
      /** Resolves once the subscription's backlog is `expected` (backends may report it late). */
      function backlogReaches(
        log: EventLog,
        id: string,
        broker: BrokerRef,
        expected: number,
      ): Promise<number | undefined> {
        return until(
          `a backlog of ${expected}`,
          () => log.backlog(id, broker),
          (n) => n === expected,
        );
      }

      it('counts events not finished: appended, then handed out, until they are acked', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        expect(await log.backlog(id, broker)).toBeUndefined();
        expect(await log.backlog(id, uniqueBroker())).toBeUndefined();
        await log.ensureSubscription({ id, broker, start: { from: 'earliest' } });
        expect(await log.backlog(id, broker)).toBe(0);
        await log.append(broker, makeEvents('b', 4));
        await backlogReaches(log, id, broker, 4);
        const member = await join(backend, { id, broker });
        const messages = await member.messages.count(4);
        // Handed out and not settled: still to do.
        expect(await log.backlog(id, broker)).toBe(4);
        await Promise.all(messages.map((message) => message.ack()));
        await backlogReaches(log, id, broker, 0);
        // Caught up (and idle), the subscription counts what comes next, while it is held.
        await log.append(broker, makeEvents('c', 2));
        const more = (await member.messages.count(6)).slice(4);
        expect(await log.backlog(id, broker)).toBe(2);
        await Promise.all(more.map((message) => message.ack()));
        await backlogReaches(log, id, broker, 0);
      });

      it('counts an event waiting for a retry, not a dead letter kept', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        await log.append(broker, [makeEvent('dead'), makeEvent('later')]);
        const member = await join(backend, { id, broker });
        const [dead, later] = await member.messages.count(2);
        expect(idOf(dead!.event)).toBe('dead');
        await dead!.deadLetter({ reason: 'gave up', attempts: 1 });
        // A retry long after the test: it waits all along.
        await later!.nak(600_000, 'waiting');
        await backlogReaches(log, id, broker, 1);
        expect(await log.countDeadLetters(id, broker)).toBe(1);
        expect(member.messages.length).toBe(2);
      });
    });

    describe('broker options', () => {
      it('accepts a retention for a broker, again and again', async () => {
        const { backend, log, broker } = await withBroker();
        await log.ensureBroker(broker, { retentionMs: 60_000 });
        await log.ensureBroker(broker, { retentionMs: 3_600_000 });
        await log.ensureBroker(broker, {});
        const other = uniqueBroker();
        await log.ensureBroker(other, { retentionMs: 1000 });
        await log.append(broker, [makeEvent('kept')]);
        await log.append(other, [makeEvent('other')]);
        const member = await join(backend, { id: uniqueName('s'), broker, autoAck: true });
        expect(await member.nextId()).toBe('kept');
        const otherMember = await join(backend, {
          id: uniqueName('s'),
          broker: other,
          autoAck: true,
        });
        expect(await otherMember.nextId()).toBe('other');
      });
    });

    describe.skipIf(!durable)('durability', () => {
      it('keeps every event whose append resolved', async () => {
        const { backend, log, broker } = await withBroker();
        const singles = makeEvents('single', 200);
        const batch = makeEvents('batch', 50);
        await Promise.all([
          ...singles.map((event) => log.append(broker, [event])),
          log.append(broker, batch),
        ]);
        await shutdown(backend);
        const reopened = await reopen();
        const member = await join(reopened, { id: uniqueName('s'), broker, autoAck: true });
        await member.messages.count(250);
        await reopened.eventLog.append(broker, [makeEvent('marker')]);
        await member.messages.count(251);
        expect(member.ids().sort()).toEqual(
          [...singles, ...batch, makeEvent('marker')].map(idOf).sort(),
        );
        expect(member.ids().filter((id) => id.startsWith('batch'))).toEqual(batch.map(idOf));
      });

      it('does not redeliver acked events after a restart, and redelivers unsettled ones', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        await log.append(broker, makeEvents('e', 4));
        const before = await join(backend, { id, broker });
        const received = await before.messages.count(4);
        await received[0]!.ack();
        await received[1]!.ack();
        await shutdown(backend);
        const reopened = await reopen();
        const after = await join(reopened, { id, broker, autoAck: true });
        expect(await after.nextId()).toBe('e-2');
        expect(await after.nextId()).toBe('e-3');
        await reopened.eventLog.append(broker, [makeEvent('marker')]);
        expect(await after.nextId()).toBe('marker');
        expect(after.ids()).toEqual(['e-2', 'e-3', 'marker']);
      });

      it('redelivers a nak-ed event after a restart', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        await log.append(broker, [makeEvent('retry-me'), makeEvent('done')]);
        const before = await join(backend, { id, broker });
        const [retry, done] = await before.messages.count(2);
        await retry!.nak(NAK_DELAY_MS);
        await done!.ack();
        await shutdown(backend);
        const reopened = await reopen();
        const after = await join(reopened, { id, broker });
        const again = await after.messages.next();
        expect(idOf(again.event)).toBe('retry-me');
        expect(again.attempt).toBe(2);
        await again.ack();
        await reopened.eventLog.append(broker, [makeEvent('marker')]);
        const marker = await after.messages.next();
        expect(idOf(marker.event)).toBe('marker');
        await marker.ack();
        expect(after.ids()).toEqual(['retry-me', 'marker']);
      });

      it('keeps dead letters and subscriptions across a restart', async () => {
        const { backend, log, broker } = await withBroker();
        const id = uniqueName('s');
        const event = makeEvent('dead', { n: 7 }, { kind: 'json', text: '{"x": 1}' });
        await log.append(broker, [event]);
        const before = await join(backend, { id, broker });
        await (await before.messages.next()).deadLetter({ reason: 'bad', attempts: 4 });
        await shutdown(backend);
        const reopened = await reopen();
        const records = await reopened.eventLog.listDeadLetters(id, broker);
        expect(records).toHaveLength(1);
        expect(records[0]!.attempts).toBe(4);
        expectSameEvent(records[0]!.event, event);
        // The subscription still exists: created before the restart, it ignores start latest.
        await reopened.eventLog.append(broker, [makeEvent('after-restart')]);
        const after = await join(reopened, {
          id,
          broker,
          start: { from: 'latest' },
          autoAck: true,
        });
        expect(await after.nextId()).toBe('after-restart');
      });
    });
  });
}
