/**
 * Load shedding in the broker writer (issue 12, "Backpressure"): writes wait for the event store
 * up to --max-pending-size bytes; a write past it is refused with OVERLOADED at once and never
 * reaches the store; the count goes back down whether a write succeeds or fails.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { EventLog } from '../../src/backends/contracts.js';
import { BrokerWriter, SHEDDING_QUIET_MS } from '../../src/broker/broker-writer.js';
import { approximateSize, type CloudEvent } from '../../src/core/event.js';
import { TributaryError } from '../../src/core/errors.js';
import { deferred, type Deferred } from '../support/deferred.js';

function event(id: string, bytes: number): CloudEvent {
  return {
    attributes: { specversion: '1.0', id, source: '/s', type: 't' },
    data: { kind: 'bytes', bytes: new Uint8Array(bytes) },
  };
}

/** A writer over a store whose appends wait until the test settles them. */
function setup(maxPendingBytes: number) {
  const appends: { events: readonly CloudEvent[]; done: Deferred<void> }[] = [];
  const episodes: string[] = [];
  const eventLog = {
    append: (_ref: unknown, events: readonly CloudEvent[]) => {
      const done = deferred();
      appends.push({ events, done });
      return done.promise;
    },
  } as unknown as EventLog;
  const writer = new BrokerWriter({
    eventLog,
    controlPlane: {
      readyBroker: (namespace, name) => ({ namespace, name }),
      countTtlExhausted: () => undefined,
    },
    maxTtl: 255,
    onStoreError: () => undefined,
    maxPendingBytes,
    onShedding: {
      started: () => episodes.push('started'),
      ended: (refused) => episodes.push(`ended after ${refused} refused`),
    },
  });
  const write = (id: string, bytes: number) => writer.write('default', 'b', [event(id, bytes)]);
  return { writer, appends, episodes, write };
}

const SIZE = approximateSize(event('e0', 1000));

describe('BrokerWriter load shedding', () => {
  it('refuses with OVERLOADED (503, Retry-After 1) past the limit, without touching the store', async () => {
    const { writer, appends, write } = setup(SIZE * 3);
    const admitted = [write('e0', 1000), write('e1', 1000), write('e2', 1000)];
    expect(appends).toHaveLength(3);
    expect(writer.pending()).toEqual({ bytes: SIZE * 3, writes: 3, shed: 0 });

    const refused = await write('e3', 1000).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(TributaryError);
    expect((refused as TributaryError).code).toBe('OVERLOADED');
    expect((refused as TributaryError).status).toBe(503);
    expect((refused as TributaryError).retryAfter).toBe(1);
    expect(appends).toHaveLength(3);
    expect(writer.pending().shed).toBe(1);

    // Room again once the store acknowledged one: the next write goes through.
    appends[0]!.done.resolve();
    await admitted[0];
    const fourth = write('e4', 1000);
    expect(appends).toHaveLength(4);
    for (const a of appends.slice(1)) a.done.resolve();
    await Promise.all([...admitted, fourth]);
    expect(writer.pending()).toEqual({ bytes: 0, writes: 0, shed: 1 });
  });

  it('admits one write larger than the limit when nothing waits', async () => {
    const { writer, appends, write } = setup(2048);
    const big = write('big', 100_000);
    expect(appends).toHaveLength(1);
    await expect(write('small', 10)).rejects.toMatchObject({ code: 'OVERLOADED' });
    appends[0]!.done.resolve();
    await big;
    expect(writer.pending().bytes).toBe(0);
  });

  it('gives the room back when the store fails (BACKEND_UNAVAILABLE)', async () => {
    const { writer, appends, write } = setup(SIZE);
    const failing = write('e0', 1000);
    appends[0]!.done.reject(new Error('disk gone'));
    await expect(failing).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
    expect(writer.pending()).toEqual({ bytes: 0, writes: 0, shed: 0 });
    const next = write('e1', 1000);
    appends[1]!.done.resolve();
    await next;
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it('tells one episode of shedding: its start, and its end with the writes refused', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { appends, episodes, write } = setup(SIZE * 4);
    const admitted = [0, 1, 2, 3].map((i) => write(`e${i}`, 1000));
    for (const id of ['r0', 'r1', 'r2']) {
      await expect(write(id, 1000)).rejects.toMatchObject({ code: 'OVERLOADED' });
    }
    expect(episodes).toEqual(['started']);
    // Room is back, but a refusal came just now: the episode goes on.
    appends[0]!.done.resolve();
    appends[1]!.done.resolve();
    appends[2]!.done.resolve();
    await Promise.all(admitted.slice(0, 3));
    expect(episodes).toEqual(['started']);
    // Quiet long enough, but over half the limit still waits: it goes on.
    vi.advanceTimersByTime(SHEDDING_QUIET_MS);
    const more = [4, 5].map((i) => write(`e${i}`, 1000));
    appends[3]!.done.resolve();
    await admitted[3];
    expect(episodes).toEqual(['started']);
    // Under half and quiet: it ends, with the three refusals.
    appends[4]!.done.resolve();
    await more[0];
    expect(episodes).toEqual(['started', 'ended after 3 refused']);
    appends[5]!.done.resolve();
    await more[1];
    expect(episodes).toHaveLength(2);
  });

  it('never sheds with no limit (0)', async () => {
    const { writer, appends, write } = setup(0);
    const all = Array.from({ length: 50 }, (_, i) => write(`e${i}`, 100_000));
    expect(appends).toHaveLength(50);
    for (const a of appends) a.done.resolve();
    await Promise.all(all);
    expect(writer.pending().shed).toBe(0);
  });
});

describe('BrokerWriter when the store has no log for the broker', () => {
  it('answers 503 while the control plane holds the broker ready, 404 once it is gone', async () => {
    let ready = true;
    const writer = new BrokerWriter({
      eventLog: {
        append: () => {
          // The broker goes away while its append fails: the check comes after the failure.
          const wasReady = ready;
          return Promise.reject(
            new TributaryError('NOT_FOUND', wasReady ? 'no responders' : 'no log'),
          );
        },
      } as unknown as EventLog,
      controlPlane: {
        readyBroker: (namespace, name) => (ready ? { namespace, name } : undefined),
        countTtlExhausted: () => undefined,
      },
      maxTtl: 255,
      onStoreError: () => undefined,
    });
    await expect(writer.write('default', 'b', [event('e0', 10)])).rejects.toMatchObject({
      code: 'BACKEND_UNAVAILABLE',
      status: 503,
      retryAfter: 1,
    });
    const pending = writer.write('default', 'b', [event('e1', 10)]);
    ready = false;
    await expect(pending).rejects.toMatchObject({ code: 'BROKER_NOT_FOUND', status: 404 });
  });
});
