/**
 * The dispatcher on the real embedded backend: when the store cannot record the outcome of a
 * delivery (here: the database reached its size limit, as a full disk would), the dispatcher keeps
 * trying to settle instead of forgetting the outcome, and succeeds once there is room.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { TriggerDispatcher } from '../../src/broker/dispatcher.js';
import { resolveDelivery } from '../../src/core/delivery.js';
import { Collector } from '../support/collector.js';
import { embeddedHarness } from '../support/embedded.js';
import { Gate, Receiver } from '../support/receiver.js';
import type { LogMessage } from '../../src/backends/contracts.js';
import type { CompiledFilter } from '../../src/core/filters.js';
import { makeEvent, uniqueBroker } from '../conformance/fixtures.js';

describe('dispatcher', () => {
  const harness = embeddedHarness();
  const receiver = new Receiver();
  afterAll(async () => {
    await receiver.stop();
    await harness.cleanup();
  });

  it('keeps trying to record a dead letter while the store is full', async () => {
    await receiver.start();
    receiver.responder = (request) => ({ status: request.headers['ce-id'] === 'big' ? 400 : 200 });
    const backend = await harness.open();
    const broker = uniqueBroker();
    await backend.eventLog.ensureBroker(broker);
    const errors = new Collector<Record<string, unknown>>('settle errors');
    const dispatcher = new TriggerDispatcher(
      {
        namespace: broker.namespace,
        name: 'settle',
        uid: 'settle-uid',
        broker: broker.name,
        subscriber: new URL(receiver.url),
        filter: () => true,
        delivery: resolveDelivery({ retry: 0 }, undefined, 5000),
      },
      {
        eventLog: backend.eventLog,
        maxInFlight: 1,
        maxResponseBytes: 1024,
        maxTtl: 255,
        onTtlExhausted: () => undefined,
        onError: (_error, context) => errors.push(context),
      },
    );
    await dispatcher.start();

    // A large event: its dead-letter copy needs new pages, which the full database cannot give.
    const big = makeEvent('big', {}, { kind: 'bytes', bytes: new Uint8Array(256 * 1024).fill(7) });
    await backend.eventLog.append(broker, [big]);
    const [{ page_count: pages }] = backend.pragma('page_count') as [{ page_count: number }];
    backend.pragma(`max_page_count = ${pages}`);

    await receiver.waitFor(1);
    const first = await errors.next();
    expect(first).toMatchObject({ trigger: `${broker.namespace}/settle` });
    expect(first.retryInMs).toBeGreaterThan(0);

    backend.pragma('max_page_count = 1073741823');
    // With one delivery in flight, the next event is handed over only once `big` is settled.
    await backend.eventLog.append(broker, [makeEvent('next')]);
    const ids = (await receiver.waitFor(2)).map((r) => r.headers['ce-id']);
    expect(ids).toEqual(['big', 'next']);
    const deadLetters = await backend.eventLog.listDeadLetters('settle-uid', broker);
    expect(deadLetters.map((d) => d.event.attributes.id)).toEqual(['big']);
    expect(deadLetters[0]).toMatchObject({
      attempts: 1,
      lastStatus: 400,
      destination: receiver.url,
    });
    await dispatcher.stop(Date.now());
  });
});

describe('dispatcher replies', () => {
  const harness = embeddedHarness();
  const receiver = new Receiver();
  afterAll(async () => {
    await receiver.stop();
    await harness.cleanup();
  });

  it('fails and retries the original delivery when its reply cannot be stored', async () => {
    await receiver.start();
    const gate = new Gate();
    // Each attempt answers with a large reply event; the second answer waits for the gate.
    receiver.responder = async (_request, index) => {
      if (index === 1) await gate.opened;
      return {
        status: 200,
        headers: {
          'ce-specversion': '1.0',
          'ce-id': `reply-${index}`,
          'ce-source': '/replier',
          'ce-type': 'reply',
          'content-type': 'application/octet-stream',
        },
        body: Buffer.alloc(256 * 1024, 1),
      };
    };
    const backend = await harness.open();
    const broker = uniqueBroker();
    await backend.eventLog.ensureBroker(broker);
    const onlyType =
      (type: string): CompiledFilter =>
      (event) =>
        event.attributes.type === type;
    const replies = new Collector<LogMessage>('stored replies');
    await backend.eventLog.subscribe(
      {
        id: 'watch-replies',
        broker,
        start: { from: 'latest' },
        maxInFlight: 10,
        filter: onlyType('reply'),
      },
      (message) => {
        replies.push(message);
        void message.ack();
      },
    );
    const dispatcher = new TriggerDispatcher(
      {
        namespace: broker.namespace,
        name: 'replier',
        uid: 'replier-uid',
        broker: broker.name,
        subscriber: new URL(receiver.url),
        filter: onlyType('original'),
        delivery: resolveDelivery(
          { retry: 5, backoffPolicy: 'linear', backoffDelay: 'PT0.01S' },
          undefined,
          5000,
        ),
      },
      {
        eventLog: backend.eventLog,
        maxInFlight: 1,
        maxResponseBytes: 1024 * 1024,
        maxTtl: 255,
        onTtlExhausted: () => undefined,
        onError: () => undefined,
      },
    );
    await dispatcher.start();

    await backend.eventLog.append(broker, [makeEvent('original-1', { type: 'original' })]);
    // No room for the reply: its append fails like on a full disk.
    const [{ page_count: pages }] = backend.pragma('page_count') as [{ page_count: number }];
    backend.pragma(`max_page_count = ${pages}`);

    // The original is delivered again: the failed reply failed its delivery.
    const attempts = await receiver.waitFor(2);
    expect(attempts.map((r) => r.headers['ce-id'])).toEqual(['original-1', 'original-1']);
    expect(dispatcher.counters).toMatchObject({ delivered: 0, retried: 1 });
    expect(dispatcher.counters.lastError?.message).toMatch(/reply could not be stored/);

    backend.pragma('max_page_count = 1073741823');
    gate.open();
    const stored = await replies.next();
    expect(stored.event.attributes).toMatchObject({
      id: 'reply-1',
      type: 'reply',
      knativebrokerttl: 254,
    });
    expect(replies.items).toHaveLength(1);
    // Stopping waits for the delivery in flight, which acks once its reply is stored.
    await dispatcher.stop(Date.now() + 5000);
    expect(dispatcher.counters.delivered).toBe(1);
  });
});
