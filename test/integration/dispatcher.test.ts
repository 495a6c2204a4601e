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
import { Receiver } from '../support/receiver.js';
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
