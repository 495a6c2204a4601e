import { describe, expect, it } from 'vitest';
import { backoffDelayMs, DEFAULT_MAX_BACKOFF_MS } from '../../src/core/backoff.js';

describe('backoffDelayMs', () => {
  it.each([
    [1, 200],
    [2, 400],
    [3, 600],
    [4, 800],
  ])('linear, base 200 ms, retry %d waits %d ms', (k, ms) => {
    expect(backoffDelayMs('linear', 200, k)).toBe(ms);
  });

  it.each([
    [1, 200],
    [2, 400],
    [3, 800],
    [4, 1_600],
  ])('exponential, base 200 ms, retry %d waits %d ms', (k, ms) => {
    expect(backoffDelayMs('exponential', 200, k)).toBe(ms);
  });

  it("Knative's broker default (retry 10, exponential, PT0.2S) waits 204.6 s in total", () => {
    let total = 0;
    for (let k = 1; k <= 10; k++) total += backoffDelayMs('exponential', 200, k);
    expect(total).toBe(204_600);
    expect(backoffDelayMs('exponential', 200, 10)).toBe(102_400);
  });

  it('caps at one hour by default', () => {
    expect(DEFAULT_MAX_BACKOFF_MS).toBe(3_600_000);
    // 200 * 2^14 = 3,276,800 is under the cap; 200 * 2^15 = 6,553,600 is over it.
    expect(backoffDelayMs('exponential', 200, 15)).toBe(3_276_800);
    expect(backoffDelayMs('exponential', 200, 16)).toBe(3_600_000);
    expect(backoffDelayMs('linear', 1_000_000, 4)).toBe(3_600_000);
    expect(backoffDelayMs('linear', 1_000_000, 3)).toBe(3_000_000);
  });

  it('caps at a given maximum', () => {
    expect(backoffDelayMs('linear', 200, 3, 500)).toBe(500);
    expect(backoffDelayMs('linear', 200, 2, 500)).toBe(400);
    expect(backoffDelayMs('exponential', 200, 3, 800)).toBe(800);
    expect(backoffDelayMs('exponential', 200, 3, 0)).toBe(0);
  });

  it('never overflows for huge retry numbers', () => {
    expect(backoffDelayMs('exponential', 200, 1_100)).toBe(3_600_000);
    expect(backoffDelayMs('exponential', 200, 1_000_000)).toBe(3_600_000);
    expect(backoffDelayMs('linear', 200, Number.MAX_SAFE_INTEGER)).toBe(3_600_000);
    expect(backoffDelayMs('exponential', Number.MAX_SAFE_INTEGER, 2)).toBe(3_600_000);
  });

  it('a zero base waits nothing, whatever k', () => {
    expect(backoffDelayMs('exponential', 0, 5_000)).toBe(0);
    expect(backoffDelayMs('linear', 0, 7)).toBe(0);
  });

  it.each([
    ['k = 0', 'linear', 200, 0, undefined],
    ['k = 1.5', 'exponential', 200, 1.5, undefined],
    ['k = NaN', 'linear', 200, Number.NaN, undefined],
    ['negative base', 'linear', -1, 1, undefined],
    ['infinite base', 'linear', Number.POSITIVE_INFINITY, 1, undefined],
    ['negative cap', 'linear', 200, 1, -5],
    ['unknown policy', 'fibonacci', 200, 1, undefined],
  ] as const)('refuses %s', (_name, policy, base, k, max) => {
    expect(() => backoffDelayMs(policy as 'linear', base, k, max)).toThrow(RangeError);
  });
});
