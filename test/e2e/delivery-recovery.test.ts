/**
 * Delivery guarantees (issue 4, DESIGN.md section 5), part three: what Knative drops and we keep.
 * Events that fail everywhere, or have no dead-letter sink, are kept as dead letters of their
 * trigger, listed and redriven through the API; retained events are replayed from a time.
 *
 * The server runs with one delivery in flight per trigger, so each trigger handles the log in
 * order.
 */
import { describe, expect, it } from 'vitest';
import { useServer } from '../support/e2e.js';
import { putResource } from '../support/server-process.js';
import { deadLetters, idOf, postJson, untilTriggerStatus } from '../support/delivery.js';

const QUICK = { backoffPolicy: 'linear', backoffDelay: 'PT0.01S' } as const;

describe('delivery guarantees: dead letters kept and redriven, replay', () => {
  const fx = useServer(['--trigger-concurrency', '1']);

  /**
   * A broker and a trigger (retry 1, no dead-letter sink) whose subscriber answers 503 until told
   * otherwise; `keep(id)` sends an event and waits until it is kept.
   */
  async function failingTrigger(): Promise<{
    broker: string;
    trigger: string;
    receiver: Awaited<ReturnType<typeof fx.subscribe>>;
    dl: ReturnType<typeof deadLetters>;
    keep: (id: string) => Promise<void>;
    setFailing: (failing: boolean) => void;
  }> {
    const broker = await fx.broker();
    const trigger = `${broker}-kept`;
    const receiver = await fx.subscribe(broker, trigger, { delivery: { retry: 1, ...QUICK } });
    let failing = true;
    receiver.responder = () =>
      failing
        ? { status: 503, headers: { 'content-type': 'text/plain' }, body: 'down for maintenance' }
        : { status: 200 };
    const dl = deadLetters(fx.url, trigger);
    let kept = 0;
    const keep = async (id: string): Promise<void> => {
      await fx.send(
        broker,
        { id, type: 'com.example.kept', myext: 'x' },
        `{"id":"${id}"}`,
        'application/json',
      );
      await dl.untilTotal(++kept);
    };
    return {
      broker,
      trigger,
      receiver,
      dl,
      keep,
      setFailing: (f) => (failing = f),
    };
  }

  it('keeps events that fail without a dead-letter sink and lists them, oldest first, by pages', async () => {
    const started = Date.now();
    const { trigger, receiver, dl, keep } = await failingTrigger();
    // One at a time, so the order of the dead letters is known.
    for (const id of ['k1', 'k2', 'k3']) await keep(id);
    expect(receiver.requests.map(idOf)).toEqual(['k1', 'k1', 'k2', 'k2', 'k3', 'k3']);

    const { status, body } = await dl.list();
    expect(status).toBe(200);
    expect(body.total).toBe(3);
    expect(body.next).toBeUndefined();
    expect(body.items.map((item: any) => item.event.id)).toEqual(['k1', 'k2', 'k3']);
    for (const item of body.items) {
      expect(typeof item.id).toBe('string');
      expect(item.id).not.toBe('');
      const at = Date.parse(item.deadLetteredAt);
      expect(at).toBeGreaterThanOrEqual(started - 1000);
      expect(at).toBeLessThanOrEqual(Date.now() + 1000);
      expect(item.reason).toMatch(/503/);
      expect(item.attempts).toBe(2);
      expect(item.destination).toBe(receiver.url);
      expect(item.lastStatus).toBe(503);
      // The original event as a structured JSON CloudEvent.
      expect(item.event).toMatchObject({
        specversion: '1.0',
        id: expect.any(String),
        source: '/test',
        type: 'com.example.kept',
        myext: 'x',
        datacontenttype: 'application/json',
        data: { id: item.event.id },
      });
    }
    expect(new Set(body.items.map((item: any) => item.id)).size).toBe(3);

    const first = await dl.list({ limit: '2' });
    expect(first.status).toBe(200);
    expect(first.body.total).toBe(3);
    expect(first.body.items.map((item: any) => item.event.id)).toEqual(['k1', 'k2']);
    expect(first.body.next).toEqual(expect.any(String));
    const second = await dl.list({ limit: '2', after: first.body.next });
    expect(second.status).toBe(200);
    expect(second.body.total).toBe(3);
    expect(second.body.items.map((item: any) => item.event.id)).toEqual(['k3']);
    expect(second.body.next).toBeUndefined();
    expect([...first.body.items, ...second.body.items]).toEqual(body.items);

    expect((await dl.list({ limit: '0' })).status).toBe(400);
    expect((await deadLetters(fx.url, 'no-such-trigger').list()).status).toBe(404);

    const s = await untilTriggerStatus(fx.url, trigger, (st) => st.deliveries?.kept === 3);
    expect(s.deliveries).toEqual({
      delivered: 0,
      retried: 3,
      deadLettered: 0,
      kept: 3,
      deadLettersKept: 3,
    });
    expect(s.lastError.message).toMatch(/503/);
    expect(Date.parse(s.lastError.time)).toBeGreaterThanOrEqual(started - 1000);
  });

  it('redrives kept events by id and all of them, delivered again as first attempts', async () => {
    const { trigger, receiver, dl, keep, setFailing } = await failingTrigger();
    for (const id of ['r1', 'r2', 'r3']) await keep(id);
    const listed = (await dl.list()).body.items as any[];
    const deadLetterId = (eventId: string): string =>
      listed.find((item) => item.event.id === eventId).id;

    // Redriven while the subscriber still fails: two attempts again (retry 1), then kept again.
    const again = await dl.redrive({ ids: [deadLetterId('r2')] });
    expect(again).toEqual({ status: 200, body: { redriven: 1 } });
    expect((await receiver.waitFor(8)).slice(6).map(idOf)).toEqual(['r2', 'r2']);
    const rekept = await dl.untilTotal(3);
    const r2 = rekept.items.find((item: any) => item.event.id === 'r2');
    expect(r2.attempts).toBe(2);

    setFailing(false);
    expect(await dl.redrive({ ids: ['no-such-dead-letter'] })).toEqual({
      status: 200,
      body: { redriven: 0 },
    });
    const r1 = rekept.items.find((item: any) => item.event.id === 'r1').id;
    expect(await dl.redrive({ ids: [r1] })).toEqual({ status: 200, body: { redriven: 1 } });
    const redrivenR1 = (await receiver.waitFor(9))[8];
    expect(idOf(redrivenR1!)).toBe('r1');
    // Delivered as it was sent, without the broker's TTL.
    expect(redrivenR1!.headers['ce-myext']).toBe('x');
    expect(redrivenR1!.headers['ce-knativebrokerttl']).toBeUndefined();
    expect(redrivenR1!.body.toString('utf8')).toBe('{"id":"r1"}');
    const afterOne = (await dl.list()).body;
    expect(afterOne.total).toBe(2);
    expect(afterOne.items.map((item: any) => item.event.id).sort()).toEqual(['r2', 'r3']);

    expect(await dl.redrive({})).toEqual({ status: 200, body: { redriven: 2 } });
    const rest = (await receiver.waitFor(11)).slice(9).map(idOf);
    expect(rest.sort()).toEqual(['r2', 'r3']);
    expect((await dl.list()).body).toEqual({ items: [], total: 0 });

    const s = await untilTriggerStatus(fx.url, trigger, (st) => st.deliveries?.delivered === 3);
    expect(s.deliveries).toEqual({
      delivered: 3,
      retried: 4,
      deadLettered: 0,
      kept: 4,
      deadLettersKept: 0,
    });
    expect(receiver.requests).toHaveLength(11);
  });

  it('keeps an event whose dead-letter sink fails too, naming the sink', async () => {
    const broker = await fx.broker();
    const trigger = `${broker}-both-fail`;
    const dls = await fx.receiver();
    const r = await fx.subscribe(broker, trigger, {
      delivery: { retry: 1, ...QUICK, deadLetterSink: { uri: dls.url } },
    });
    r.responder = () => ({ status: 500 });
    dls.responder = () => ({ status: 503, body: 'sink full' });
    const id = await fx.send(broker, { myext: 'original' });
    const { items } = await deadLetters(fx.url, trigger).untilTotal(1);
    const [item] = items;
    expect(item.destination).toBe(dls.url);
    expect(item.lastStatus).toBe(503);
    expect(item.reason).toMatch(/dead-letter/i);
    // Two attempts at the subscriber, two at the sink.
    expect(item.attempts).toBe(4);
    expect(r.requests).toHaveLength(2);
    expect(dls.requests).toHaveLength(2);
    // The original event is kept, without the error extensions the sink got.
    expect(item.event.id).toBe(id);
    expect(item.event.myext).toBe('original');
    expect(item.event.knativeerrordest).toBeUndefined();
    expect(item.event.knativeerrorcode).toBeUndefined();
    const s = await untilTriggerStatus(fx.url, trigger, (st) => st.deliveries?.kept === 1);
    expect(s.deliveries).toMatchObject({ delivered: 0, deadLettered: 0, kept: 1, retried: 2 });
  });

  it('replays retained events from a time: later ones again, earlier ones not, the filter kept', async () => {
    const broker = 'replayed';
    const created = await putResource(fx.url, 'brokers', 'default', broker, {
      spec: { retention: 'PT1H' },
    });
    expect(created.status).toBe(201);
    const trigger = `${broker}-orders`;
    const r = await fx.subscribe(broker, trigger, { filters: [{ exact: { type: 'replay.me' } }] });
    const send = (id: string, type = 'replay.me'): Promise<string> => fx.send(broker, { id, type });

    await send('x1');
    await send('y1', 'other');
    await send('x2');
    expect((await r.waitFor(2)).map(idOf)).toEqual(['x1', 'x2']);
    // Batch 1 is stored (it was delivered); `from` is after it, and batch 2 arrives after `from`.
    const from = Date.now() + 1;
    await until(() => Date.now() > from);
    await send('x3');
    await send('y2', 'other');
    await send('x4');
    expect((await r.waitFor(4)).map(idOf)).toEqual(['x1', 'x2', 'x3', 'x4']);

    const replay = await postJson(`${fx.url}/v1/namespaces/default/triggers/${trigger}/replay`, {
      from: new Date(from).toISOString(),
    });
    expect(replay.status).toBe(202);
    expect((await r.waitFor(6)).map(idOf)).toEqual(['x1', 'x2', 'x3', 'x4', 'x3', 'x4']);
    // A later event comes after the replayed ones, and nothing else was replayed before it.
    await send('x5');
    expect((await r.waitFor(7)).map(idOf)).toEqual(['x1', 'x2', 'x3', 'x4', 'x3', 'x4', 'x5']);

    const bad = await postJson(`${fx.url}/v1/namespaces/default/triggers/${trigger}/replay`, {
      from: 'yesterday',
    });
    expect(bad.status).toBe(400);
    const missing = await postJson(`${fx.url}/v1/namespaces/default/triggers/nope/replay`, {
      from: new Date(from).toISOString(),
    });
    expect(missing.status).toBe(404);
  });
});

/** Waits for a condition of the clock (a time to have passed), checking on every macrotask. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}
