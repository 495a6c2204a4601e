/**
 * The DeliveryLedger contract (src/backends/contracts.ts), the same for every backend: a key added
 * is there until it expires, adding it again extends it, another instance over the same data (a
 * replica, or the same process after a restart) sees it.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backends/contracts.js';
import type { BackendHarness } from './harness.js';

const HOUR = 60 * 60 * 1000;

export function ledgerConformance(name: string, harness: BackendHarness): void {
  describe(`${name}: DeliveryLedger`, () => {
    const key = (): string => `${randomUUID()}/delivery-${randomUUID()}`;

    it('has a key once it is added, and not before; keys are independent', async () => {
      const backend = await harness.open();
      const [a, b] = [key(), key()];
      expect(await backend.ledger.has(a)).toBe(false);
      await backend.ledger.add(a, HOUR);
      expect(await backend.ledger.has(a)).toBe(true);
      expect(await backend.ledger.has(b)).toBe(false);
    });

    it('forgets a key whose time is up, and adding it again makes it count again', async () => {
      const backend = await harness.open();
      const k = key();
      await backend.ledger.add(k, 0); // expires at once
      expect(await backend.ledger.has(k)).toBe(false);
      await backend.ledger.add(k, HOUR);
      expect(await backend.ledger.has(k)).toBe(true);
    });

    it('takes keys with any characters (source uids, ids with slashes, dots and spaces)', async () => {
      const backend = await harness.open();
      const k = `${randomUUID()}/a.b c/ünï*>`;
      await backend.ledger.add(k, HOUR);
      expect(await backend.ledger.has(k)).toBe(true);
      expect(await backend.ledger.has(`${k}x`)).toBe(false);
    });

    it.runIf(harness.reopen !== undefined)(
      'keeps its keys across a restart (a new instance over the same data)',
      async () => {
        let backend: Backend = await harness.open();
        const k = key();
        await backend.ledger.add(k, HOUR);
        await backend.close();
        backend = await harness.reopen!();
        expect(await backend.ledger.has(k)).toBe(true);
      },
    );
  });
}
