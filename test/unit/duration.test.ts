import { describe, expect, it } from 'vitest';
import { durationError, formatDuration, parseDuration } from '../../src/core/duration.js';

describe('parseDuration', () => {
  it.each([
    ['PT0.2S', 200],
    ['PT1S', 1_000],
    ['PT1.5S', 1_500],
    ['PT0,5S', 500],
    ['PT1M30S', 90_000],
    ['PT1.5M', 90_000],
    ['PT1H', 3_600_000],
    ['PT36H', 129_600_000],
    ['PT100S', 100_000],
    ['P1D', 86_400_000],
    ['P1DT1H', 90_000_000],
    ['P1DT2H', 93_600_000],
    ['P1DT0.5H', 88_200_000],
    ['P1DT1H1M1.001S', 90_061_001],
    ['P2W', 1_209_600_000],
    ['P1W1D', 691_200_000],
    ['PT0S', 0],
    ['P0D', 0],
    ['PT0.0005S', 1],
    ['PT0.0004S', 0],
    ['PT0.123456S', 123],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
    expect(durationError(text)).toBeUndefined();
  });

  it.each([
    '1s',
    '',
    'P',
    'PT',
    'P1Y',
    'P1M',
    'P1Y2M3D',
    '-PT1S',
    '+PT1S',
    'pt1s',
    'PT1s',
    'PT1',
    'PT1.S',
    'PT.5S',
    'P1H',
    'PT1D',
    'PT1W',
    'PT1S1M',
    'PT1S1S',
    'P1D2D',
    'P1DT',
    'PTT1S',
    'PT1.5M30S',
    ' PT1S',
    'PT1S ',
    'PT1X',
    'PT99999999999999999999H',
  ])('%j is invalid', (text) => {
    expect(parseDuration(text)).toBeUndefined();
    expect(durationError(text)).toEqual(expect.any(String));
  });

  it('explains why years and months are refused', () => {
    expect(durationError('P1Y')).toContain('years and months are not supported');
    expect(durationError('P2M')).toContain('years and months are not supported');
    // M after T is minutes, not months.
    expect(parseDuration('PT2M')).toBe(120_000);
  });

  it('explains negative durations and non-strings', () => {
    expect(durationError('-PT1S')).toContain('negative');
    expect(durationError(5)).toContain('string');
    expect(durationError('P1S')).toContain('unknown unit "S"');
    expect(durationError('PT1.5M30S')).toContain('only the last component may have a fraction');
  });
});

describe('formatDuration', () => {
  it.each([
    [0, 'PT0S'],
    [1, 'PT0.001S'],
    [200, 'PT0.2S'],
    [1_000, 'PT1S'],
    [1_500, 'PT1.5S'],
    [1_001, 'PT1.001S'],
    [1_010, 'PT1.01S'],
    [60_000, 'PT1M'],
    [90_000, 'PT1M30S'],
    [3_600_000, 'PT1H'],
    [86_400_000, 'P1D'],
    [93_600_000, 'P1DT2H'],
    [90_061_001, 'P1DT1H1M1.001S'],
    [1_209_600_000, 'P14D'],
    [1.4, 'PT0.001S'],
    [0.4, 'PT0S'],
  ])('%d ms is %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it.each([0, 1, 7, 200, 999, 1_000, 59_999, 61_050, 3_599_999, 86_400_001, 987_654_321])(
    'round-trips %d ms through parseDuration',
    (ms) => {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    },
  );

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])('refuses %d', (ms) => {
    expect(() => formatDuration(ms)).toThrow(RangeError);
  });
});
