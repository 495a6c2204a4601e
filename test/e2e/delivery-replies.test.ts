/**
 * Delivery guarantees (issue 4, DESIGN.md section 5, reference/knative.md 1.7, 1.10 and 1.11),
 * part two: replies routed back into the broker, loop prevention with knativebrokerttl, and long
 * events and replies.
 *
 * The server runs with --max-ttl 5 and one delivery in flight per trigger, so each trigger handles
 * the log in order: once a later event has arrived, an earlier one (a reply stored before it)
 * would have arrived first.
 */
import { describe, expect, it } from 'vitest';
import { useServer } from '../support/e2e.js';
import { binaryEvent } from '../support/server-process.js';
import {
  binaryAnswer,
  idOf,
  statusOf,
  untilBrokerStatus,
  untilTriggerStatus,
} from '../support/delivery.js';

const MAX_TTL = 5;

/** A deterministic text of `length` printable ASCII characters, different for each `seed`. */
function longText(length: number, seed: number): string {
  return Array.from({ length }, (_, i) => String.fromCharCode(33 + ((i * 7 + seed) % 94))).join('');
}

describe('delivery guarantees: replies, TTL, long events', () => {
  const fx = useServer(['--max-ttl', String(MAX_TTL), '--trigger-concurrency', '1']);

  const only = (type: string): Record<string, unknown> => ({ filters: [{ exact: { type } }] });

  const delivered = async (trigger: string, count: number): Promise<void> => {
    await untilTriggerStatus(fx.url, trigger, (s) => s.deliveries?.delivered === count);
  };

  describe('replies', () => {
    it('routes a binary reply into the same broker, through every trigger', async () => {
      const broker = await fx.broker();
      const replier = await fx.subscribe(broker, `${broker}-replier`, only('order.created'));
      const confirmed = await fx.subscribe(broker, `${broker}-confirmed`, only('order.confirmed'));
      const everything = await fx.subscribe(broker, `${broker}-everything`);
      replier.responder = (q) =>
        binaryAnswer(
          {
            specversion: '1.0',
            id: `reply-to-${idOf(q)}`,
            source: '/replier',
            type: 'order.confirmed',
            myext: 'from-reply',
          },
          '{"confirmed":true}',
          'application/json',
        );
      await fx.send(broker, { id: 'o1', type: 'order.created' });

      const [asked] = await replier.waitFor(1);
      expect(asked!.headers.prefer).toBe('reply');
      const [reply] = await confirmed.waitFor(1);
      expect(reply!.headers['ce-id']).toBe('reply-to-o1');
      expect(reply!.headers['ce-source']).toBe('/replier');
      expect(reply!.headers['ce-type']).toBe('order.confirmed');
      expect(reply!.headers['ce-myext']).toBe('from-reply');
      expect(reply!.headers['content-type']).toBe('application/json');
      expect(reply!.body.toString('utf8')).toBe('{"confirmed":true}');
      expect(reply!.headers['ce-knativearrivaltime']).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(reply!.headers['ce-knativebrokerttl']).toBeUndefined();
      expect((await everything.waitFor(2)).map(idOf)).toEqual(['o1', 'reply-to-o1']);
      await delivered(`${broker}-replier`, 1);
    });

    it('routes a structured reply into the same broker', async () => {
      const broker = await fx.broker();
      const replier = await fx.subscribe(broker, `${broker}-replier`, only('order.created'));
      const confirmed = await fx.subscribe(broker, `${broker}-confirmed`, only('order.confirmed'));
      const data = { order: 7, lines: [{ sku: 'x', qty: 2 }], note: 'naïve €' };
      replier.responder = (q) => ({
        status: 200,
        headers: { 'content-type': 'application/cloudevents+json; charset=utf-8' },
        body: JSON.stringify({
          specversion: '1.0',
          id: `reply-to-${idOf(q)}`,
          source: '/replier',
          type: 'order.confirmed',
          subject: 'order-7',
          myext: 'structured',
          datacontenttype: 'application/json',
          data,
        }),
      });
      await fx.send(broker, { id: 'o2', type: 'order.created' });
      const [reply] = await confirmed.waitFor(1);
      expect(reply!.headers['ce-id']).toBe('reply-to-o2');
      expect(reply!.headers['ce-source']).toBe('/replier');
      expect(reply!.headers['ce-subject']).toBe('order-7');
      expect(reply!.headers['ce-myext']).toBe('structured');
      expect(reply!.headers['content-type']).toMatch(/^application\/json/);
      expect(JSON.parse(reply!.body.toString('utf8'))).toEqual(data);
      expect(reply!.headers['ce-knativebrokerttl']).toBeUndefined();
    });

    it('a binary reply without data is a reply (its body is empty, its ce- headers make it an event)', async () => {
      const broker = await fx.broker();
      const replier = await fx.subscribe(broker, `${broker}-replier`, only('ping'));
      const pongs = await fx.subscribe(broker, `${broker}-pongs`, only('pong'));
      replier.responder = (q) =>
        binaryAnswer({ specversion: '1.0', id: `pong-${idOf(q)}`, source: '/r', type: 'pong' });
      await fx.send(broker, { id: 'p1', type: 'ping' });
      const [pong] = await pongs.waitFor(1);
      expect(idOf(pong!)).toBe('pong-p1');
      expect(pong!.body.byteLength).toBe(0);
    });

    it('a 202 answer is not a reply, even with a CloudEvent in it', async () => {
      const broker = await fx.broker();
      const trigger = `${broker}-accepting`;
      const accepting = await fx.subscribe(broker, trigger, only('order.created'));
      const confirmed = await fx.subscribe(broker, `${broker}-confirmed`, {
        filters: [{ any: [{ exact: { type: 'order.confirmed' } }, { exact: { type: 'marker' } }] }],
      });
      accepting.responder = () =>
        binaryAnswer(
          { specversion: '1.0', id: 'not-a-reply', source: '/x', type: 'order.confirmed' },
          '{}',
          'application/json',
          202,
        );
      await fx.send(broker, { type: 'order.created' });
      await delivered(trigger, 1);
      // Had the 202 been taken as a reply, it would be in the log before the marker.
      const marker = await fx.send(broker, { type: 'marker' });
      expect((await confirmed.waitFor(1)).map(idOf)).toEqual([marker]);
    });
  });

  describe('loop prevention', () => {
    it(`stops a reply loop: exactly --max-ttl (${MAX_TTL}) deliveries, then the broker counts it`, async () => {
      const broker = await fx.broker();
      const trigger = `${broker}-looper`;
      const looper = await fx.subscribe(broker, trigger, only('loop'));
      // Replies with an event of the same type, and even claims a fresh TTL: the broker ignores it.
      looper.responder = (_q, i) =>
        binaryAnswer(
          {
            specversion: '1.0',
            id: `loop-${i + 1}`,
            source: '/looper',
            type: 'loop',
            knativebrokerttl: '255',
          },
          `{"hop":${i + 1}}`,
          'application/json',
        );
      await fx.send(broker, { id: 'loop-0', type: 'loop' });
      await looper.waitFor(MAX_TTL);
      const status = await untilBrokerStatus(fx.url, broker, (s) => s.ttlExhausted === 1);
      expect(status.ttlExhausted).toBe(1);
      // The fifth delivery's reply was dropped: there is no sixth.
      const settled = await untilTriggerStatus(
        fx.url,
        trigger,
        (st) => st.deliveries?.delivered >= MAX_TTL,
      );
      expect(settled.deliveries.delivered).toBe(MAX_TTL);
      expect(looper.requests.map(idOf)).toEqual(['loop-0', 'loop-1', 'loop-2', 'loop-3', 'loop-4']);
      // Subscribers never see the TTL.
      for (const q of looper.requests) expect(q.headers['ce-knativebrokerttl']).toBeUndefined();
    });

    it('refuses an event that arrives with knativebrokerttl 0 (400) and counts it', async () => {
      const broker = await fx.broker();
      const r = await fx.subscribe(broker, `${broker}-ttl`, {
        filters: [{ any: [{ prefix: { type: 'ttl.' } }, { exact: { type: 'marker' } }] }],
      });
      // Replies to `ttl.first` only.
      r.responder = (q) =>
        q.headers['ce-type'] === 'ttl.first'
          ? binaryAnswer(
              { specversion: '1.0', id: 'again', source: '/r', type: 'ttl.again' },
              '{}',
              'application/json',
            )
          : { status: 200 };
      const refused = await fetch(
        `${fx.url}/default/${broker}`,
        binaryEvent({
          specversion: '1.0',
          id: 'dead',
          source: '/test',
          type: 'ttl.zero',
          knativebrokerttl: '0',
        }),
      );
      expect(refused.status).toBe(400);
      expect((await statusOf(fx.url, 'brokers', broker)).ttlExhausted).toBe(1);

      // One hop left: delivered (without the TTL), but its reply would have none and is dropped.
      await fx.send(broker, { id: 'last-hop', type: 'ttl.first', knativebrokerttl: '1' });
      const [first] = await r.waitFor(1);
      expect(idOf(first!)).toBe('last-hop');
      expect(first!.headers['ce-knativebrokerttl']).toBeUndefined();
      await untilBrokerStatus(fx.url, broker, (s) => s.ttlExhausted === 2);
      const marker = await fx.send(broker, { type: 'marker' });
      // Neither the refused event nor the dropped reply reached the trigger.
      expect((await r.waitFor(2)).map(idOf)).toEqual(['last-hop', marker]);
    });
  });

  describe('long events (Knative BrokerDeliverLongMessage, 36 KiB)', () => {
    it('delivers a 36 KiB event and routes a 36 KiB reply', async () => {
      const size = 36 * 1024;
      const request = longText(size, 1);
      const response = longText(size, 2);
      const broker = await fx.broker();
      const relay = await fx.subscribe(broker, `${broker}-relay`, only('long.request'));
      const sink = await fx.subscribe(broker, `${broker}-sink`, only('long.reply'));
      relay.responder = () =>
        binaryAnswer(
          { specversion: '1.0', id: 'long-reply', source: '/relay', type: 'long.reply' },
          response,
          'text/plain',
        );
      await fx.send(broker, { id: 'long', type: 'long.request' }, request, 'text/plain');
      const [got] = await relay.waitFor(1);
      expect(got!.body.byteLength).toBe(size);
      expect(got!.body.toString('latin1')).toBe(request);
      const [reply] = await sink.waitFor(1);
      expect(idOf(reply!)).toBe('long-reply');
      expect(reply!.body.byteLength).toBe(size);
      expect(reply!.body.toString('latin1')).toBe(response);
    });
  });
});
