/**
 * 202 means durable: when the store cannot take an event (here: it reached --max-store-size, as a
 * full disk would), the ingress answers 503 with Retry-After instead, and every event that did get
 * a 202 is delivered.
 */
import { describe, expect, it } from 'vitest';
import { useServer } from '../support/e2e.js';
import { Gate } from '../support/receiver.js';
import { binaryEvent } from '../support/server-process.js';

describe('a full store', () => {
  const fx = useServer(['--max-store-size', '512KiB']);

  it('answers 503 with Retry-After, not 202, and loses none of the accepted events', async () => {
    const receiver = await fx.subscribe('default', 'full');
    // Held until readiness is checked: an acknowledged delivery is a write that succeeds (it frees
    // space), which makes the store healthy again before the check could see it failing.
    const held = new Gate();
    receiver.responder = async () => {
      await held.opened;
      return { status: 200 };
    };
    const accepted: string[] = [];
    let refused: Response | undefined;
    for (let i = 0; i < 1000 && refused === undefined; i++) {
      const response = await fetch(
        `${fx.url}/default/default`,
        binaryEvent(
          { specversion: '1.0', id: `f${i}`, source: '/full', type: 't' },
          'x'.repeat(3000),
          'text/plain',
        ),
      );
      if (response.status === 202) accepted.push(`f${i}`);
      else refused = response;
    }
    expect(refused?.status).toBe(503);
    expect(refused?.headers.get('retry-after')).toBe('1');
    expect(((await refused!.json()) as { code: string }).code).toBe('BACKEND_UNAVAILABLE');
    expect(accepted.length).toBeGreaterThan(10);
    expect((await fetch(`${fx.url}/readyz`)).status).toBe(503);
    held.open();

    const received = (await receiver.waitFor(accepted.length)).map((r) =>
      String(r.headers['ce-id']),
    );
    expect(new Set(received)).toEqual(new Set(accepted));
  });
});
