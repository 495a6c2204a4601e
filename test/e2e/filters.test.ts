/**
 * Trigger filters end to end, modelled on Knative's new_trigger_filters conformance features.
 *
 * The server runs with one delivery in flight per trigger, so each trigger handles the log in
 * order: once the last event a trigger should get has arrived, every earlier event has been
 * filtered, and the exact list of received ids shows that nothing else got through.
 */
import { describe, expect, it } from 'vitest';
import { useServer } from '../support/e2e.js';
import type { Receiver } from '../support/receiver.js';
import { putResource } from '../support/server-process.js';

describe('trigger filters', () => {
  const fx = useServer(['--trigger-concurrency', '1']);

  async function idsReceived(receiver: Receiver, count: number): Promise<string[]> {
    return (await receiver.waitFor(count)).map((r) => String(r.headers['ce-id']));
  }

  /** Sends events in order and checks that the trigger got exactly those with `match: true`. */
  async function check(
    filterSpec: Record<string, unknown>,
    events: { attrs: Record<string, string>; match: boolean }[],
  ): Promise<void> {
    const broker = await fx.broker();
    const receiver = await fx.subscribe(broker, `t-${broker}`, filterSpec);
    const expected: string[] = [];
    for (const e of events) {
      const id = await fx.send(broker, e.attrs);
      if (e.match) expected.push(id);
    }
    expect(await idsReceived(receiver, expected.length)).toEqual(expected);
  }

  it('without a filter, passes every event', async () => {
    await check({}, [
      { attrs: { type: 'a' }, match: true },
      { attrs: { type: 'b' }, match: true },
    ]);
  });

  it('exact', async () => {
    await check({ filters: [{ exact: { type: 'com.example.match' } }] }, [
      { attrs: { type: 'com.example.other' }, match: false },
      { attrs: { type: 'com.example.match.not' }, match: false },
      { attrs: { type: 'com.example.match' }, match: true },
    ]);
  });

  it('prefix', async () => {
    await check({ filters: [{ prefix: { type: 'com.example.' } }] }, [
      { attrs: { type: 'org.example.x' }, match: false },
      { attrs: { type: 'com.exampl' }, match: false },
      { attrs: { type: 'com.example.x' }, match: true },
    ]);
  });

  it('suffix', async () => {
    await check({ filters: [{ suffix: { source: '/orders' } }] }, [
      { attrs: { source: '/orders/1' }, match: false },
      { attrs: { source: '/shop/orders' }, match: true },
    ]);
  });

  it('all', async () => {
    await check({ filters: [{ all: [{ exact: { type: 'a' } }, { prefix: { source: '/x' } }] }] }, [
      { attrs: { type: 'a', source: '/y' }, match: false },
      { attrs: { type: 'b', source: '/x1' }, match: false },
      { attrs: { type: 'a', source: '/x1' }, match: true },
    ]);
  });

  it('any', async () => {
    await check({ filters: [{ any: [{ exact: { type: 'a' } }, { exact: { type: 'b' } }] }] }, [
      { attrs: { type: 'c' }, match: false },
      { attrs: { type: 'a' }, match: true },
      { attrs: { type: 'b' }, match: true },
    ]);
  });

  it('not', async () => {
    await check({ filters: [{ not: { exact: { type: 'a' } } }] }, [
      { attrs: { type: 'a' }, match: false },
      { attrs: { type: 'b' }, match: true },
    ]);
  });

  it('ANDs the top-level filters', async () => {
    await check({ filters: [{ prefix: { type: 'com.' } }, { suffix: { type: '.z' } }] }, [
      { attrs: { type: 'com.a' }, match: false },
      { attrs: { type: 'org.z' }, match: false },
      { attrs: { type: 'com.z' }, match: true },
    ]);
  });

  it('filters on extensions', async () => {
    await check({ filters: [{ exact: { myextension: 'yes' } }] }, [
      { attrs: { myextension: 'no' }, match: false },
      { attrs: {}, match: false },
      { attrs: { myextension: 'yes' }, match: true },
    ]);
  });

  it('fails exact, prefix and suffix on a missing attribute', async () => {
    await check(
      { filters: [{ any: [{ exact: { subject: 's' } }, { prefix: { subject: '' + 's' } }] }] },
      [
        { attrs: {}, match: false },
        { attrs: { subject: 's' }, match: true },
      ],
    );
    await check({ filters: [{ not: { suffix: { subject: 'x' } } }] }, [
      // `not` of a failed suffix passes: the missing attribute makes suffix false.
      { attrs: {}, match: true },
      { attrs: { subject: 'ax' }, match: false },
      { attrs: { subject: 'ay' }, match: true },
    ]);
  });

  it('applies the legacy attributes filter, with "" meaning present and non-empty', async () => {
    await check({ filter: { attributes: { type: 'a', myext: '' } } }, [
      { attrs: { type: 'a' }, match: false },
      { attrs: { type: 'a', myext: '' }, match: false },
      { attrs: { type: 'b', myext: 'x' }, match: false },
      { attrs: { type: 'a', myext: 'x' }, match: true },
    ]);
  });

  it('lets non-empty filters override filter.attributes', async () => {
    await check({ filter: { attributes: { type: 'a' } }, filters: [{ exact: { type: 'b' } }] }, [
      { attrs: { type: 'a' }, match: false },
      { attrs: { type: 'b' }, match: true },
    ]);
  });

  it('keeps filter.attributes when filters is empty', async () => {
    await check({ filter: { attributes: { type: 'a' } }, filters: [] }, [
      { attrs: { type: 'b' }, match: false },
      { attrs: { type: 'a' }, match: true },
    ]);
  });

  it('routes each event to every matching trigger of a broker, and only to those', async () => {
    const broker = await fx.broker();
    // Each trigger also takes type `end`, sent last: when it arrives, the trigger has seen everything.
    const withEnd = (f: Record<string, unknown>): Record<string, unknown> => ({
      filters: [{ any: [f, { exact: { type: 'end' } }] }],
    });
    const ra = await fx.subscribe(broker, 'multi-a', withEnd({ exact: { type: 'a' } }));
    const rb = await fx.subscribe(broker, 'multi-b', withEnd({ exact: { type: 'b' } }));
    const rab = await fx.subscribe(broker, 'multi-ab', withEnd({ prefix: { type: '' + 'a' } }));
    const a = await fx.send(broker, { type: 'a' });
    const b = await fx.send(broker, { type: 'b' });
    const ab = await fx.send(broker, { type: 'ab' });
    await fx.send(broker, { type: 'c' });
    const end = await fx.send(broker, { type: 'end' });
    expect(await idsReceived(ra, 2)).toEqual([a, end]);
    expect(await idsReceived(rb, 2)).toEqual([b, end]);
    expect(await idsReceived(rab, 3)).toEqual([a, ab, end]);
  });

  it('delivers only events that arrive after the trigger is ready', async () => {
    const broker = await fx.broker();
    await fx.send(broker, { type: 'before' });
    const receiver = await fx.subscribe(broker, 'late', {});
    const after = await fx.send(broker, { type: 'after' });
    expect(await idsReceived(receiver, 1)).toEqual([after]);
  });

  it('cesql', async () => {
    await check({ filters: [{ cesql: "type = 'com.example.a' AND myext LIKE 'x%'" }] }, [
      { attrs: { type: 'com.example.a', myext: 'yx' }, match: false },
      { attrs: { type: 'com.example.b', myext: 'xy' }, match: false },
      { attrs: { type: 'com.example.a' }, match: false },
      { attrs: { type: 'com.example.a', myext: 'xy' }, match: true },
    ]);
  });

  it('cesql inside any, all and not', async () => {
    await check(
      {
        filters: [
          { any: [{ cesql: "subject = 'one'" }, { exact: { subject: 'two' } }] },
          { all: [{ not: { cesql: "source LIKE '/blocked%'" } }, { prefix: { type: 'com.' } }] },
        ],
      },
      [
        { attrs: { subject: 'three', type: 'com.x' }, match: false },
        { attrs: { subject: 'one', type: 'com.x', source: '/blocked/1' }, match: false },
        { attrs: { subject: 'two', type: 'org.x' }, match: false },
        { attrs: { subject: 'one', type: 'com.x', source: '/fine' }, match: true },
        { attrs: { subject: 'two', type: 'com.y' }, match: true },
      ],
    );
  });

  it('cesql: an evaluation error, a missing attribute or a non-boolean result is no match', async () => {
    await check({ filters: [{ cesql: 'INT(count) > 3' }] }, [
      { attrs: { count: 'many' }, match: false },
      { attrs: {}, match: false },
      { attrs: { count: '2' }, match: false },
      { attrs: { count: '4' }, match: true },
    ]);
    await check({ filters: [{ any: [{ cesql: 'type' }, { exact: { subject: 'end' } }] }] }, [
      { attrs: { type: 'true' }, match: false },
      { attrs: { subject: 'end' }, match: true },
    ]);
  });

  it('refuses an invalid cesql expression, naming the field, the position and the reason', async () => {
    const { status, body } = await putResource(fx.url, 'triggers', 'default', 'sql', {
      spec: {
        broker: 'default',
        subscriber: { uri: 'http://127.0.0.1:1/' },
        filters: [{ prefix: { type: 'a' } }, { all: [{ cesql: "type = 'a' AND (source" }] }],
      },
    });
    expect(status).toBe(400);
    expect(body.errors).toEqual([
      { field: 'spec.filters[1].all[0].cesql', message: expect.stringMatching(/position \d+/) },
    ]);
  });
});
