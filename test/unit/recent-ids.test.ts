import { describe, expect, it } from 'vitest';
import { RecentIds } from '../../src/sources/recent-ids.js';

const T0 = 1_700_000_000_000;

describe('RecentIds', () => {
  it('claims an id the first time and refuses it while it is remembered', () => {
    const ids = new RecentIds({ windowMs: 60_000, capacity: 10 });
    expect(ids.claim('a', T0)).toBe(true);
    expect(ids.claim('a', T0)).toBe(false);
    expect(ids.claim('a', T0 + 59_999)).toBe(false);
    expect(ids.size).toBe(1);
  });

  it('tells different ids apart', () => {
    const ids = new RecentIds({ windowMs: 60_000, capacity: 10 });
    expect(ids.claim('a', T0)).toBe(true);
    expect(ids.claim('b', T0)).toBe(true);
    expect(ids.claim('A', T0)).toBe(true);
    expect(ids.size).toBe(3);
  });

  it('lets a released id be claimed again', () => {
    const ids = new RecentIds({ windowMs: 60_000, capacity: 10 });
    expect(ids.claim('a', T0)).toBe(true);
    ids.release('a');
    expect(ids.size).toBe(0);
    expect(ids.claim('a', T0 + 1)).toBe(true);
    expect(ids.claim('a', T0 + 2)).toBe(false);
  });

  it('releasing an id it does not hold changes nothing', () => {
    const ids = new RecentIds({ windowMs: 60_000, capacity: 10 });
    ids.claim('a', T0);
    ids.release('b');
    expect(ids.size).toBe(1);
    expect(ids.claim('a', T0)).toBe(false);
  });

  it('forgets an id once its window has passed', () => {
    const ids = new RecentIds({ windowMs: 60_000, capacity: 10 });
    expect(ids.claim('a', T0)).toBe(true);
    expect(ids.claim('a', T0 + 60_000)).toBe(true);
    // The new claim starts a new window.
    expect(ids.claim('a', T0 + 119_999)).toBe(false);
    expect(ids.claim('a', T0 + 120_000)).toBe(true);
  });

  it('a refused claim does not extend the window', () => {
    const ids = new RecentIds({ windowMs: 60_000, capacity: 10 });
    ids.claim('a', T0);
    expect(ids.claim('a', T0 + 50_000)).toBe(false);
    expect(ids.claim('a', T0 + 60_000)).toBe(true);
  });

  it('drops expired ids on the next claim, and only those', () => {
    const ids = new RecentIds({ windowMs: 60_000, capacity: 10 });
    ids.claim('a', T0);
    ids.claim('b', T0 + 10_000);
    ids.claim('c', T0 + 20_000);
    expect(ids.size).toBe(3);
    expect(ids.claim('d', T0 + 70_000)).toBe(true);
    // a and b expired; c and d remain.
    expect(ids.size).toBe(2);
    expect(ids.claim('c', T0 + 70_000)).toBe(false);
  });

  it('evicts the oldest ids beyond its capacity', () => {
    const ids = new RecentIds({ windowMs: 60_000, capacity: 3 });
    for (const [i, id] of ['a', 'b', 'c', 'd'].entries()) {
      expect(ids.claim(id, T0 + i)).toBe(true);
    }
    expect(ids.size).toBe(3);
    // a, the oldest, went first: it can be claimed again (which in turn evicts b).
    expect(ids.claim('a', T0 + 10)).toBe(true);
    expect(ids.claim('c', T0 + 10)).toBe(false);
    expect(ids.claim('d', T0 + 10)).toBe(false);
    expect(ids.claim('b', T0 + 10)).toBe(true);
    expect(ids.size).toBe(3);
  });

  it('a released and claimed again id counts as the newest for eviction', () => {
    const ids = new RecentIds({ windowMs: 60_000, capacity: 2 });
    ids.claim('a', T0);
    ids.claim('b', T0 + 1);
    ids.release('a');
    ids.claim('a', T0 + 2);
    ids.claim('c', T0 + 3);
    // b was the oldest.
    expect(ids.claim('a', T0 + 4)).toBe(false);
    expect(ids.claim('c', T0 + 4)).toBe(false);
    expect(ids.claim('b', T0 + 4)).toBe(true);
  });

  it('uses the clock when no time is given', () => {
    const ids = new RecentIds({ windowMs: 60_000, capacity: 10 });
    expect(ids.claim('a')).toBe(true);
    expect(ids.claim('a')).toBe(false);
  });
});
