import { describe, expect, it } from 'vitest';
import { deadLetterEvent } from '../../src/core/delivery.js';
import type { CloudEvent } from '../../src/core/event.js';
import { admitTtl, DEFAULT_MAX_TTL, forDelivery, replyTtl } from '../../src/core/ttl.js';

const event = (extra: Record<string, string | number> = {}): CloudEvent => ({
  attributes: { specversion: '1.0', id: '1', source: '/s', type: 't', ...extra },
  data: { kind: 'json', text: '{"a":1}' },
});

describe('admitTtl', () => {
  it('gives an event without a TTL the maximum', () => {
    const admitted = admitTtl(event(), DEFAULT_MAX_TTL);
    expect(admitted).toMatchObject({ ok: true });
    expect(admitted.ok && admitted.event.attributes.knativebrokerttl).toBe(255);
  });

  it.each([
    ['7', '7'],
    [7, 7],
    ['300', 255],
  ])('keeps a TTL with hops left (%j), capped at the maximum', (ttl, kept) => {
    const admitted = admitTtl(event({ knativebrokerttl: ttl }), 255);
    expect(admitted.ok && admitted.event.attributes.knativebrokerttl).toBe(kept);
  });

  it.each([0, '0', -1, '-3'])('refuses an event with no hop left (%j)', (ttl) => {
    const admitted = admitTtl(event({ knativebrokerttl: ttl }), 255);
    expect(admitted.ok).toBe(false);
    expect(!admitted.ok && admitted.reason).toMatch(/no hop left/);
  });

  it.each(['x', '1.5', ''])('refuses a TTL that is not an integer (%j)', (ttl) => {
    expect(admitTtl(event({ knativebrokerttl: ttl }), 255)).toEqual({
      ok: false,
      reason: 'knativebrokerttl must be an integer',
    });
  });
});

describe('replyTtl', () => {
  it("gives a reply its original's TTL minus one, whatever the reply carried", () => {
    const reply = replyTtl(event({ knativebrokerttl: 200 }), event({ knativebrokerttl: 5 }), 255);
    expect(reply.ok && reply.event.attributes.knativebrokerttl).toBe(4);
  });

  it('drops a reply that would have no hop left', () => {
    expect(replyTtl(event(), event({ knativebrokerttl: 1 }), 255).ok).toBe(false);
    expect(replyTtl(event(), event({ knativebrokerttl: 2 }), 255).ok).toBe(true);
  });

  it('counts from the maximum when the original has none', () => {
    const reply = replyTtl(event(), event(), 10);
    expect(reply.ok && reply.event.attributes.knativebrokerttl).toBe(9);
  });
});

describe('forDelivery', () => {
  it('strips the TTL and keeps everything else', () => {
    const stored = event({ knativebrokerttl: 9, ext: 'x' });
    const delivered = forDelivery(stored);
    expect(delivered.attributes).toEqual({
      specversion: '1.0',
      id: '1',
      source: '/s',
      type: 't',
      ext: 'x',
    });
    expect(delivered.data).toBe(stored.data);
  });
});

describe('deadLetterEvent', () => {
  it("adds Knative's three error extensions, base64 of at most 1024 bytes", () => {
    const body = new Uint8Array(1500).fill(65);
    const e = deadLetterEvent(event(), { destination: 'http://sub/', status: 422, body });
    expect(e.attributes.knativeerrordest).toBe('http://sub/');
    expect(e.attributes.knativeerrorcode).toBe(422);
    expect(Buffer.from(String(e.attributes.knativeerrordata), 'base64')).toEqual(
      Buffer.alloc(1024, 65),
    );
    expect(e.data).toEqual(event().data);
  });

  it('leaves out the code and the data when there was no response or no body', () => {
    const e = deadLetterEvent(event(), { destination: 'http://sub/' });
    expect(Object.keys(e.attributes)).toEqual([
      'specversion',
      'id',
      'source',
      'type',
      'knativeerrordest',
    ]);
    const empty = deadLetterEvent(event(), {
      destination: 'http://sub/',
      status: 500,
      body: new Uint8Array(),
    });
    expect(empty.attributes.knativeerrorcode).toBe(500);
    expect(empty.attributes.knativeerrordata).toBeUndefined();
  });
});
