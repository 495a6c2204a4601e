/**
 * Delivery as DESIGN.md section 5 has it so far: retries with backoff on retryable answers, no
 * retry on the others, bounded concurrency per trigger, and isolation between triggers.
 */
import { describe, expect, it } from 'vitest';
import { useServer } from '../support/e2e.js';
import { Gate, type Receiver } from '../support/receiver.js';

describe('delivery', () => {
  const fx = useServer(['--trigger-concurrency', '4']);

  /** A new broker with one trigger (and receiver) per entry. */
  async function setup(
    triggers: { name: string; delivery?: Record<string, unknown> }[],
  ): Promise<{ broker: string; receivers: Receiver[] }> {
    const broker = await fx.broker();
    const receivers: Receiver[] = [];
    for (const t of triggers) {
      const spec = t.delivery === undefined ? {} : { delivery: t.delivery };
      receivers.push(await fx.subscribe(broker, `${broker}-${t.name}`, spec));
    }
    return { broker, receivers };
  }

  const send = async (broker: string, id: string): Promise<void> => {
    await fx.send(broker, { id });
  };

  it('retries 404, 408, 409, 429, 500 and 503, then succeeds', async () => {
    const {
      broker,
      receivers: [r],
    } = await setup([
      { name: 'flaky', delivery: { retry: 6, backoffPolicy: 'linear', backoffDelay: 'PT0.01S' } },
    ]);
    const statuses = [404, 408, 409, 429, 500, 503, 202];
    r!.responder = (_req, i) => ({ status: statuses[i] ?? 500 });
    await send(broker, 'retried');
    const requests = await r!.waitFor(statuses.length);
    expect(requests.every((q) => q.headers['ce-id'] === 'retried')).toBe(true);
  });

  it('does not retry other client errors, and stops after retry + 1 attempts', async () => {
    const {
      broker,
      receivers: [bad, down],
    } = await setup([
      { name: 'bad', delivery: { retry: 5, backoffDelay: 'PT0.01S' } },
      { name: 'down', delivery: { retry: 2, backoffPolicy: 'linear', backoffDelay: 'PT0.01S' } },
    ]);
    bad!.responder = () => ({ status: 400 });
    down!.responder = () => ({ status: 500 });
    await send(broker, 'first');
    await bad!.waitFor(1);
    await down!.waitFor(3);
    // A second event shows that the first one is settled for good (one delivery in order per attempt).
    bad!.responder = () => ({ status: 200 });
    down!.responder = () => ({ status: 200 });
    await send(broker, 'second');
    const badIds = (await bad!.waitFor(2)).map((q) => q.headers['ce-id']);
    const downIds = (await down!.waitFor(4)).map((q) => q.headers['ce-id']);
    expect(badIds).toEqual(['first', 'second']);
    expect(downIds).toEqual(['first', 'first', 'first', 'second']);
  });

  it('keeps at most --trigger-concurrency deliveries in flight per trigger', async () => {
    const {
      broker,
      receivers: [r],
    } = await setup([{ name: 'bounded' }]);
    const gate = new Gate();
    r!.responder = async () => {
      await gate.opened;
      return { status: 200 };
    };
    for (let i = 0; i < 10; i++) await send(broker, `c${i}`);
    await r!.waitFor(4);
    // Four are held; a fifth cannot start until one finishes. Another broker's trigger proves time passed.
    const {
      broker: other,
      receivers: [probe],
    } = await setup([{ name: 'probe' }]);
    await send(other, 'probe');
    await probe!.waitFor(1);
    expect(r!.requests.length).toBe(4);
    gate.open();
    await r!.waitFor(10);
  });

  it('a subscriber that sleeps does not delay another trigger', async () => {
    const {
      broker,
      receivers: [slow, fast],
    } = await setup([{ name: 'slow' }, { name: 'fast' }]);
    const gate = new Gate();
    slow!.responder = async () => {
      await gate.opened;
      return { status: 200 };
    };
    const ids = Array.from({ length: 20 }, (_, i) => `iso-${i}`);
    for (const id of ids) await send(broker, id);
    // Every event reaches the fast subscriber while the slow one still holds its first requests.
    const fastIds = (await fast!.waitFor(ids.length)).map((q) => q.headers['ce-id']);
    expect(new Set(fastIds)).toEqual(new Set(ids));
    expect(slow!.requests.length).toBeLessThanOrEqual(4);
    gate.open();
    await slow!.waitFor(ids.length);
  });
});
