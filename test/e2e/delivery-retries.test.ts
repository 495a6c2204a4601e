/**
 * Delivery guarantees (issue 4, DESIGN.md section 5, reference/knative.md 1.5, 1.6 and 1.8), part
 * one: the delivery spec end to end against real HTTP subscribers that fail in patterns, hold
 * requests and answer with Retry-After; dead-letter sinks and their extensions; ordering.
 *
 * Timing is asserted only for backoff and Retry-After waits, as gaps between the receiver's own
 * arrival times within a generous tolerance (see expectGaps).
 */
import { describe, expect, it } from 'vitest';
import { useServer } from '../support/e2e.js';
import { Gate, type Answer, type ReceivedRequest } from '../support/receiver.js';
import { createTrigger, putResource } from '../support/server-process.js';
import {
  deadLetters,
  expectGaps,
  gapsOf,
  idOf,
  recordArrivals,
  untilTriggerStatus,
} from '../support/delivery.js';

/** Fast retries for tests that count attempts: 10 ms, 20 ms, ... */
const QUICK = { backoffPolicy: 'linear', backoffDelay: 'PT0.01S' } as const;

describe('delivery guarantees: retries, backoff, timeouts, dead-letter sinks, ordering', () => {
  const fx = useServer(['--trigger-concurrency', '4']);

  const deliveries = async (trigger: string, holds: (d: any) => boolean): Promise<any> =>
    (
      await untilTriggerStatus(
        fx.url,
        trigger,
        (s) => s.deliveries !== undefined && holds(s.deliveries),
      )
    ).deliveries;

  describe('retry counts', () => {
    it('retry: 3 delivers an event that fails 3 times (4 attempts, then success)', async () => {
      const broker = await fx.broker();
      const trigger = `${broker}-three`;
      const r = await fx.subscribe(broker, trigger, { delivery: { retry: 3, ...QUICK } });
      r.responder = (_q, i) => ({ status: i < 3 ? 500 : 200 });
      const id = await fx.send(broker);
      expect((await r.waitFor(4)).map(idOf)).toEqual([id, id, id, id]);
      const counts = await deliveries(trigger, (d) => d.delivered === 1);
      expect(counts).toMatchObject({ delivered: 1, retried: 3, deadLettered: 0, kept: 0 });
      // Settled by the fourth attempt: there is no fifth.
      expect(r.requests).toHaveLength(4);
    });

    it('retry: 3 dead-letters an event that fails 4 times, after exactly 4 attempts', async () => {
      const broker = await fx.broker();
      const trigger = `${broker}-three`;
      const dls = await fx.receiver();
      const r = await fx.subscribe(broker, trigger, {
        delivery: { retry: 3, ...QUICK, deadLetterSink: { uri: dls.url } },
      });
      // A fifth attempt would succeed: the event must not get one.
      r.responder = (_q, i) => ({ status: i < 4 ? 500 : 200 });
      const id = await fx.send(broker);
      const [dead] = await dls.waitFor(1);
      expect(idOf(dead!)).toBe(id);
      expect(dead!.headers['ce-knativeerrorcode']).toBe('500');
      expect(dead!.headers['ce-knativeerrordest']).toBe(r.url);
      // The sink gets the event only once the subscriber's last attempt has failed.
      expect(r.requests.map(idOf)).toEqual([id, id, id, id]);
      const counts = await deliveries(trigger, (d) => d.deadLettered === 1);
      expect(counts).toMatchObject({ delivered: 0, retried: 3, deadLettered: 1, kept: 0 });
      expect(dls.requests).toHaveLength(1);
    });

    it("a trigger's delivery replaces the broker's as a whole", async () => {
      const brokerDls = await fx.receiver();
      const triggerDls = await fx.receiver();
      const broker = 'spec-override';
      const created = await putResource(fx.url, 'brokers', 'default', broker, {
        spec: { delivery: { retry: 1, ...QUICK, deadLetterSink: { uri: brokerDls.url } } },
      });
      expect(created.status).toBe(201);
      // No delivery: the broker's applies (2 attempts, then the broker's sink).
      const inherit = await fx.subscribe(broker, 'spec-inherit');
      // Its own sink and retries.
      const own = await fx.subscribe(broker, 'spec-own', {
        delivery: { retry: 2, ...QUICK, deadLetterSink: { uri: triggerDls.url } },
      });
      // Its own delivery without a sink: the broker's sink does not apply, the event is kept.
      const bare = await fx.subscribe(broker, 'spec-bare', { delivery: { retry: 0 } });
      for (const r of [inherit, own, bare]) r.responder = () => ({ status: 500 });
      const id = await fx.send(broker);

      const [viaBroker] = await brokerDls.waitFor(1);
      expect(idOf(viaBroker!)).toBe(id);
      expect(viaBroker!.headers['ce-knativeerrordest']).toBe(inherit.url);
      expect(inherit.requests).toHaveLength(2);

      const [viaTrigger] = await triggerDls.waitFor(1);
      expect(idOf(viaTrigger!)).toBe(id);
      expect(viaTrigger!.headers['ce-knativeerrordest']).toBe(own.url);
      expect(own.requests).toHaveLength(3);

      const kept = await deadLetters(fx.url, 'spec-bare').untilTotal(1);
      expect(kept.items[0].event.id).toBe(id);
      expect(bare.requests).toHaveLength(1);
      // Kept, so it never reached the broker's sink: that one has the inheriting trigger's only.
      expect(brokerDls.requests).toHaveLength(1);
    });
  });

  describe('backoff', () => {
    it('waits backoffDelay * k (linear) and backoffDelay * 2^(k-1) (exponential) before retry k', async () => {
      const broker = await fx.broker();
      const delay = { retry: 4, backoffDelay: 'PT0.25S' };
      const linear = await fx.subscribe(broker, `${broker}-linear`, {
        delivery: { ...delay, backoffPolicy: 'linear' },
      });
      const exponential = await fx.subscribe(broker, `${broker}-exponential`, {
        delivery: { ...delay, backoffPolicy: 'exponential' },
      });
      const failFourTimes = (_q: ReceivedRequest, i: number): Answer => ({
        status: i < 4 ? 503 : 200,
      });
      const linearAt = recordArrivals(linear, failFourTimes);
      const exponentialAt = recordArrivals(exponential, failFourTimes);
      await fx.send(broker);
      await linear.waitFor(5);
      await exponential.waitFor(5);
      // The 4th wait tells the policies apart even at the edges of the tolerance.
      expectGaps(gapsOf(linearAt), [250, 500, 750, 1000]);
      expectGaps(gapsOf(exponentialAt), [250, 500, 1000, 2000]);
    });

    it('honours Retry-After on 429 and 503 up to retryAfterMax, never below the backoff', async () => {
      const broker = await fx.broker();
      const honoured = await fx.subscribe(broker, `${broker}-honoured`, {
        delivery: {
          retry: 3,
          backoffPolicy: 'linear',
          backoffDelay: 'PT0.05S',
          retryAfterMax: 'PT1S',
        },
      });
      // Retry-After: 0 is below the backoff of 0.6 s: the backoff wins.
      const floor = await fx.subscribe(broker, `${broker}-floor`, {
        delivery: {
          retry: 1,
          backoffPolicy: 'linear',
          backoffDelay: 'PT0.6S',
          retryAfterMax: 'PT1S',
        },
      });
      const honouredAnswers: Answer[] = [
        { status: 429, headers: { 'retry-after': '1' } }, // max(50 ms, min(1 s, 1 s))
        { status: 503, headers: { 'retry-after': '30' } }, // capped at retryAfterMax: 1 s
        { status: 500, headers: { 'retry-after': '1' } }, // only 429 and 503: linear 3 x 50 ms
        { status: 200 },
      ];
      const honouredAt = recordArrivals(honoured, (_q, i) => honouredAnswers[i] ?? { status: 200 });
      const floorAt = recordArrivals(floor, (_q, i) =>
        i === 0 ? { status: 429, headers: { 'retry-after': '0' } } : { status: 200 },
      );
      await fx.send(broker);
      await honoured.waitFor(4);
      await floor.waitFor(2);
      expectGaps(gapsOf(honouredAt), [1000, 1000, 150]);
      expectGaps(gapsOf(floorAt), [600]);
    });

    it('ignores Retry-After without retryAfterMax', async () => {
      const broker = await fx.broker();
      const r = await fx.subscribe(broker, `${broker}-ignored`, {
        delivery: { retry: 2, backoffPolicy: 'linear', backoffDelay: 'PT0.05S' },
      });
      const at = recordArrivals(r, (_q, i) =>
        i === 0
          ? { status: 429, headers: { 'retry-after': '2' } }
          : i === 1
            ? { status: 503, headers: { 'retry-after': '2' } }
            : { status: 200 },
      );
      await fx.send(broker);
      await r.waitFor(3);
      expectGaps(gapsOf(at), [50, 100]);
    });
  });

  it('timeout bounds each attempt: the next attempt arrives while the first is still held', async () => {
    const broker = await fx.broker();
    const trigger = `${broker}-timeout`;
    const r = await fx.subscribe(broker, trigger, {
      delivery: { retry: 2, ...QUICK, timeout: 'PT0.5S' },
    });
    const gate = new Gate();
    let firstHeld = false;
    r.responder = async (_q, i) => {
      if (i > 0) return { status: 200 };
      firstHeld = true;
      await gate.opened;
      firstHeld = false;
      return { status: 200 };
    };
    const id = await fx.send(broker);
    try {
      // Without the timeout the broker would wait for the held answer (--delivery-timeout 30 s).
      const [first, second] = await r.waitFor(2);
      expect(firstHeld).toBe(true);
      expect([idOf(first!), idOf(second!)]).toEqual([id, id]);
      const status = await untilTriggerStatus(
        fx.url,
        trigger,
        (s) => s.deliveries?.delivered === 1,
      );
      expect(status.deliveries).toMatchObject({ delivered: 1, retried: 1, kept: 0 });
      expect(status.lastError.message).toMatch(/time/i);
      expect(Number.isNaN(Date.parse(status.lastError.time))).toBe(false);
      expect(r.requests).toHaveLength(2);
    } finally {
      gate.open();
    }
  });

  describe('dead-letter sink', () => {
    it('sends a 4xx straight to the dead-letter sink with the three extensions, after one attempt', async () => {
      const broker = await fx.broker();
      const trigger = `${broker}-invalid`;
      const dls = await fx.receiver();
      const r = await fx.subscribe(broker, trigger, {
        delivery: { retry: 5, ...QUICK, deadLetterSink: { uri: dls.url } },
      });
      const problem = 'field "amount" must not be negative';
      r.responder = () => ({
        status: 422,
        headers: { 'content-type': 'text/plain' },
        body: problem,
      });
      const id = await fx.send(
        broker,
        { type: 'com.example.order', subject: 'order-7', myext: 'kept' },
        '{"amount":-1}',
        'application/json',
      );
      const [dead] = await dls.waitFor(1);
      const h = dead!.headers;
      // The original event, unchanged...
      expect(h['ce-id']).toBe(id);
      expect(h['ce-source']).toBe('/test');
      expect(h['ce-type']).toBe('com.example.order');
      expect(h['ce-subject']).toBe('order-7');
      expect(h['ce-myext']).toBe('kept');
      expect(h['content-type']).toBe('application/json');
      expect(dead!.body.toString('utf8')).toBe('{"amount":-1}');
      // ...plus Knative's error extensions, and never the broker's TTL.
      expect(h['ce-knativeerrordest']).toBe(r.url);
      expect(h['ce-knativeerrorcode']).toBe('422');
      expect(h['ce-knativeerrordata']).toBe(Buffer.from(problem).toString('base64'));
      expect(h['ce-knativebrokerttl']).toBeUndefined();
      // Not retried: the sink got it after the one and only attempt.
      expect(r.requests).toHaveLength(1);
      const counts = await deliveries(trigger, (d) => d.deadLettered === 1);
      expect(counts).toMatchObject({ delivered: 0, retried: 0, deadLettered: 1, kept: 0 });
    });

    it('knativeerrordata is the base64 of at most the first 1024 bytes of the body', async () => {
      const broker = await fx.broker();
      const dls = await fx.receiver();
      const r = await fx.subscribe(broker, `${broker}-long-error`, {
        delivery: { retry: 0, deadLetterSink: { uri: dls.url } },
      });
      const body = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 31 + 7) % 256));
      r.responder = () => ({
        status: 400,
        headers: { 'content-type': 'application/octet-stream' },
        body,
      });
      await fx.send(broker);
      const [dead] = await dls.waitFor(1);
      expect(dead!.headers['ce-knativeerrorcode']).toBe('400');
      expect(dead!.headers['ce-knativeerrordata']).toBe(body.subarray(0, 1024).toString('base64'));
    });

    it('an unreachable subscriber dead-letters with knativeerrordest and no code or data', async () => {
      const broker = await fx.broker();
      const dls = await fx.receiver();
      const gone = await fx.receiver();
      const url = gone.url;
      await gone.stop();
      await createTrigger(fx.url, `${broker}-unreachable`, {
        broker,
        subscriber: { uri: url },
        delivery: { retry: 1, ...QUICK, deadLetterSink: { uri: dls.url } },
      });
      const id = await fx.send(broker);
      const [dead] = await dls.waitFor(1);
      expect(idOf(dead!)).toBe(id);
      expect(dead!.headers['ce-knativeerrordest']).toBe(url);
      expect(dead!.headers['ce-knativeerrorcode']).toBeUndefined();
      expect(dead!.headers['ce-knativeerrordata']).toBeUndefined();
    });

    it('a flaky dead-letter sink (fails twice) still receives the event: it is retried too', async () => {
      const broker = await fx.broker();
      const trigger = `${broker}-flaky-sink`;
      const dls = await fx.receiver();
      const r = await fx.subscribe(broker, trigger, {
        delivery: { retry: 2, ...QUICK, deadLetterSink: { uri: dls.url } },
      });
      r.responder = () => ({ status: 500 });
      dls.responder = (_q, i) => ({ status: [500, 503][i] ?? 200 });
      const id = await fx.send(broker);
      const sinkRequests = await dls.waitFor(3);
      for (const q of sinkRequests) {
        expect(idOf(q)).toBe(id);
        expect(q.headers['ce-knativeerrordest']).toBe(r.url);
        expect(q.headers['ce-knativeerrorcode']).toBe('500');
      }
      const counts = await deliveries(trigger, (d) => d.deadLettered === 1);
      // Two retries at the subscriber, two at the sink.
      expect(counts).toMatchObject({ delivered: 0, retried: 4, deadLettered: 1, kept: 0 });
      expect(r.requests).toHaveLength(3);
      expect(dls.requests).toHaveLength(3);
      expect((await deadLetters(fx.url, trigger).list()).body.total).toBe(0);
    });

    it('a non-empty 2xx body that is not a CloudEvent fails the delivery: retried, then dead-lettered', async () => {
      const broker = await fx.broker();
      const trigger = `${broker}-not-an-event`;
      const dls = await fx.receiver();
      const r = await fx.subscribe(broker, trigger, {
        delivery: { retry: 2, ...QUICK, deadLetterSink: { uri: dls.url } },
      });
      r.responder = () => ({
        status: 200,
        headers: { 'content-type': 'text/plain' },
        body: 'thanks!',
      });
      const id = await fx.send(broker);
      const [dead] = await dls.waitFor(1);
      expect(idOf(dead!)).toBe(id);
      expect(r.requests.map(idOf)).toEqual([id, id, id]);
      expect(dead!.headers['ce-knativeerrordest']).toBe(r.url);
      // Knative's broker answers such a delivery with 502 (reference/knative.md 1.7), and the
      // sink gets that code.
      expect(dead!.headers['ce-knativeerrorcode']).toBe('502');
      const counts = await deliveries(trigger, (d) => d.deadLettered === 1);
      expect(counts).toMatchObject({ delivered: 0, retried: 2, deadLettered: 1 });
    });
  });

  describe('ordering', () => {
    it('ordered: one event at a time per partitionkey, in order, retries included', async () => {
      const broker = await fx.broker();
      const trigger = `${broker}-ordered`;
      const r = await fx.subscribe(broker, trigger, {
        delivery: {
          ordering: 'ordered',
          retry: 5,
          backoffPolicy: 'linear',
          backoffDelay: 'PT0.05S',
        },
      });
      const inFlight = new Map<string, number>();
      const overlaps: string[] = [];
      const arrived = new Set<string>();
      const othersDone = new Gate();
      let a1Attempts = 0;
      r.responder = async (q) => {
        const key = String(q.headers['ce-partitionkey'] ?? '');
        const id = idOf(q);
        const now = (inFlight.get(key) ?? 0) + 1;
        inFlight.set(key, now);
        if (now > 1) overlaps.push(id);
        arrived.add(id);
        if (arrived.has('b3') && arrived.has('c3')) othersDone.open();
        try {
          // Some work time, so that a second delivery of the same key would overlap this one.
          await new Promise((resolve) => setTimeout(resolve, 10));
          if (id === 'a1' && ++a1Attempts <= 2) {
            // a1 fails twice; its second failure waits until b and c are done: other keys go on
            // while a waits for its retries.
            if (a1Attempts === 2) await othersDone.opened;
            return { status: 500 };
          }
          return { status: 200 };
        } finally {
          inFlight.set(key, inFlight.get(key)! - 1);
        }
      };
      for (const n of [1, 2, 3]) {
        for (const key of ['a', 'b', 'c']) {
          await fx.send(broker, { id: `${key}${n}`, partitionkey: key });
        }
      }
      // Events without a partitionkey form one group of their own.
      await fx.send(broker, { id: 'n1' });
      await fx.send(broker, { id: 'n2' });

      const all = (await r.waitFor(13)).map((q) => ({
        key: String(q.headers['ce-partitionkey'] ?? ''),
        id: idOf(q),
      }));
      const ofKey = (key: string): string[] => all.filter((e) => e.key === key).map((e) => e.id);
      expect(ofKey('a')).toEqual(['a1', 'a1', 'a1', 'a2', 'a3']);
      expect(ofKey('b')).toEqual(['b1', 'b2', 'b3']);
      expect(ofKey('c')).toEqual(['c1', 'c2', 'c3']);
      expect(ofKey('')).toEqual(['n1', 'n2']);
      expect(overlaps).toEqual([]);
      const counts = await deliveries(trigger, (d) => d.delivered === 11);
      expect(counts).toMatchObject({ delivered: 11, retried: 2 });
      expect(r.requests).toHaveLength(13);
    });

    it('the Knative annotation kafka.eventing.knative.dev/delivery.order: ordered is honoured', async () => {
      const broker = await fx.broker();
      const probe = await fx.subscribe(broker, `${broker}-probe`);
      const r = await fx.receiver();
      const trigger = `${broker}-annotated`;
      const created = await putResource(fx.url, 'triggers', 'default', trigger, {
        metadata: { annotations: { 'kafka.eventing.knative.dev/delivery.order': 'ordered' } },
        spec: { broker, subscriber: { uri: r.url } },
      });
      expect(created.status).toBe(201);
      const gate = new Gate();
      r.responder = async (_q, i) => {
        if (i === 0) await gate.opened;
        return { status: 200 };
      };
      try {
        for (const id of ['o1', 'o2', 'o3']) await fx.send(broker, { id });
        await r.waitFor(1);
        // The unordered trigger got all three while o1 is held: o2 and o3 wait for it.
        await probe.waitFor(3);
        expect(r.requests.map(idOf)).toEqual(['o1']);
      } finally {
        gate.open();
      }
      expect((await r.waitFor(3)).map(idOf)).toEqual(['o1', 'o2', 'o3']);
    });
  });
});
