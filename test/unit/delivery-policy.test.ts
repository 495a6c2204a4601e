import { describe, expect, it } from 'vitest';
import {
  isRetryable,
  isSuccess,
  nextStep,
  parseRetryAfterMs,
  resolveDelivery,
  type AttemptResult,
  type ResolvedDelivery,
} from '../../src/core/delivery.js';
import type { DeliverySpec } from '../../src/core/resources/types.js';

const DEFAULT_TIMEOUT = 30_000;

/** A fixed clock on a whole second, so that HTTP dates (second resolution) compare exactly. */
const NOW = Date.parse('2030-01-01T00:00:00.000Z');

function resolved(overrides: Partial<ResolvedDelivery> = {}): ResolvedDelivery {
  return {
    retry: 3,
    backoffPolicy: 'exponential',
    backoffDelayMs: 100,
    timeoutMs: DEFAULT_TIMEOUT,
    retryAfterMaxMs: undefined,
    format: 'binary',
    deadLetterSinkUri: undefined,
    ordered: false,
    ...overrides,
  };
}

function response(status: number, retryAfter?: string): AttemptResult {
  return retryAfter === undefined
    ? { kind: 'response', status }
    : { kind: 'response', status, retryAfter };
}

describe('resolveDelivery', () => {
  const brokerSpec: DeliverySpec = {
    retry: 5,
    backoffPolicy: 'linear',
    backoffDelay: 'PT1S',
    timeout: 'PT10S',
    retryAfterMax: 'PT2M',
    format: 'json',
    deadLetterSink: { uri: 'http://broker-dls.example/' },
  };

  it("uses Knative's broker default when neither trigger nor broker has a spec", () => {
    expect(resolveDelivery(undefined, undefined, DEFAULT_TIMEOUT)).toEqual({
      retry: 10,
      backoffPolicy: 'exponential',
      backoffDelayMs: 200,
      timeoutMs: DEFAULT_TIMEOUT,
      retryAfterMaxMs: undefined,
      format: 'binary',
      deadLetterSinkUri: undefined,
      ordered: false,
    });
  });

  it("uses the broker's spec when the trigger has none, parsing its durations", () => {
    expect(resolveDelivery(undefined, brokerSpec, DEFAULT_TIMEOUT)).toEqual({
      retry: 5,
      backoffPolicy: 'linear',
      backoffDelayMs: 1000,
      timeoutMs: 10_000,
      retryAfterMaxMs: 120_000,
      format: 'json',
      deadLetterSinkUri: 'http://broker-dls.example/',
      ordered: false,
    });
  });

  it("replaces the broker's spec as a whole with the trigger's", () => {
    const trigger: DeliverySpec = { retry: 2 };
    expect(resolveDelivery(trigger, brokerSpec, 5_000)).toEqual({
      retry: 2,
      backoffPolicy: 'exponential',
      backoffDelayMs: 0,
      timeoutMs: 5_000,
      retryAfterMaxMs: undefined,
      format: 'binary',
      deadLetterSinkUri: undefined,
      ordered: false,
    });
  });

  it("an empty trigger spec still replaces the broker's: no retries, no dead-letter sink", () => {
    const d = resolveDelivery({}, brokerSpec, 7_000);
    expect(d.retry).toBe(0);
    expect(d.backoffDelayMs).toBe(0);
    expect(d.timeoutMs).toBe(7_000);
    expect(d.deadLetterSinkUri).toBeUndefined();
    expect(d.format).toBe('binary');
  });

  it('fields a broker spec leaves out: retry 0, backoff 0, timeout = the given default', () => {
    const d = resolveDelivery(undefined, { deadLetterSink: { uri: 'http://dls/' } }, 12_345);
    expect(d).toEqual({
      retry: 0,
      backoffPolicy: 'exponential',
      backoffDelayMs: 0,
      timeoutMs: 12_345,
      retryAfterMaxMs: undefined,
      format: 'binary',
      deadLetterSinkUri: 'http://dls/',
      ordered: false,
    });
  });

  it("takes every field from the trigger's spec", () => {
    const trigger: DeliverySpec = {
      retry: 1,
      backoffPolicy: 'linear',
      backoffDelay: 'PT0.5S',
      timeout: 'PT1M30S',
      retryAfterMax: 'PT0S',
      format: 'json',
      deadLetterSink: { uri: 'http://trigger-dls/' },
      ordering: 'ordered',
    };
    expect(resolveDelivery(trigger, brokerSpec, DEFAULT_TIMEOUT)).toEqual({
      retry: 1,
      backoffPolicy: 'linear',
      backoffDelayMs: 500,
      timeoutMs: 90_000,
      retryAfterMaxMs: 0,
      format: 'json',
      deadLetterSinkUri: 'http://trigger-dls/',
      ordered: true,
    });
  });

  it('a dead-letter sink without a uri gives no deadLetterSinkUri', () => {
    const d = resolveDelivery(
      { deadLetterSink: { ref: { kind: 'Service', name: 'dls' } } },
      undefined,
      DEFAULT_TIMEOUT,
    );
    expect(d.deadLetterSinkUri).toBeUndefined();
  });
});

describe('isRetryable and isSuccess', () => {
  it.each([404, 408, 409, 429, 500, 501, 502, 503, 504, 599])('%d is retried', (status) => {
    expect(isRetryable(response(status))).toBe(true);
    expect(isSuccess(response(status))).toBe(false);
  });

  it.each([100, 101, 199, 300, 301, 302, 304, 307, 400, 401, 403, 405, 410, 413, 415, 422, 600])(
    '%d is not retried',
    (status) => {
      expect(isRetryable(response(status))).toBe(false);
      expect(isSuccess(response(status))).toBe(false);
    },
  );

  it('network errors and timeouts are retried', () => {
    expect(isRetryable({ kind: 'network', message: 'ECONNREFUSED' })).toBe(true);
    expect(isRetryable({ kind: 'timeout' })).toBe(true);
    expect(isSuccess({ kind: 'network', message: 'ECONNREFUSED' })).toBe(false);
    expect(isSuccess({ kind: 'timeout' })).toBe(false);
  });

  it.each([200, 201, 202, 204, 299])('%d is a success', (status) => {
    expect(isSuccess(response(status))).toBe(true);
  });
});

describe('parseRetryAfterMs', () => {
  it.each([
    ['0', 0],
    ['1', 1000],
    ['120', 120_000],
    [' 7 ', 7000],
  ])('seconds %j -> %d ms', (header, ms) => {
    expect(parseRetryAfterMs(header, NOW)).toBe(ms);
  });

  it('reads an HTTP date as the time from now until then', () => {
    expect(parseRetryAfterMs('Tue, 01 Jan 2030 00:00:07 GMT', NOW)).toBe(7000);
    expect(parseRetryAfterMs('Tue, 01 Jan 2030 00:02:00 GMT', NOW)).toBe(120_000);
  });

  it('an HTTP date in the past means 0', () => {
    expect(parseRetryAfterMs('Mon, 31 Dec 2029 23:59:00 GMT', NOW)).toBe(0);
  });

  it.each([
    undefined,
    '',
    'soon',
    '10s',
    '5 minutes',
    'May 2099',
    '3000.5',
    '2030-01-01T00:00:00Z',
  ])('%j is unparsable', (header) => {
    expect(parseRetryAfterMs(header, NOW)).toBeUndefined();
  });
});

describe('nextStep', () => {
  it('a success is done, whatever the attempt', () => {
    expect(nextStep(resolved(), 1, response(200), NOW)).toEqual({ action: 'done' });
    expect(nextStep(resolved(), 99, response(202), NOW)).toEqual({ action: 'done' });
    expect(nextStep(resolved({ retry: 0 }), 1, response(204), NOW)).toEqual({ action: 'done' });
  });

  it('retries while attempt <= retry, with the backoff of that retry (exponential)', () => {
    const d = resolved({ retry: 3, backoffPolicy: 'exponential', backoffDelayMs: 100 });
    expect(nextStep(d, 1, response(500), NOW)).toEqual({ action: 'retry', delayMs: 100 });
    expect(nextStep(d, 2, response(500), NOW)).toEqual({ action: 'retry', delayMs: 200 });
    expect(nextStep(d, 3, response(500), NOW)).toEqual({ action: 'retry', delayMs: 400 });
    expect(nextStep(d, 4, response(500), NOW)).toEqual({ action: 'dead-letter' });
    expect(nextStep(d, 5, response(500), NOW)).toEqual({ action: 'dead-letter' });
  });

  it('retries with linear backoff', () => {
    const d = resolved({ retry: 3, backoffPolicy: 'linear', backoffDelayMs: 100 });
    expect(nextStep(d, 1, { kind: 'timeout' }, NOW)).toEqual({ action: 'retry', delayMs: 100 });
    expect(nextStep(d, 2, { kind: 'timeout' }, NOW)).toEqual({ action: 'retry', delayMs: 200 });
    expect(nextStep(d, 3, { kind: 'timeout' }, NOW)).toEqual({ action: 'retry', delayMs: 300 });
    expect(nextStep(d, 4, { kind: 'timeout' }, NOW)).toEqual({ action: 'dead-letter' });
  });

  it('retry 0 means one attempt, then the dead-letter sink', () => {
    const d = resolved({ retry: 0 });
    expect(nextStep(d, 1, response(503), NOW)).toEqual({ action: 'dead-letter' });
    expect(nextStep(d, 1, { kind: 'network', message: 'reset' }, NOW)).toEqual({
      action: 'dead-letter',
    });
  });

  it("Knative's default makes 11 attempts, the last retry waiting 102.4 s", () => {
    const d = resolveDelivery(undefined, undefined, DEFAULT_TIMEOUT);
    expect(nextStep(d, 10, response(500), NOW)).toEqual({ action: 'retry', delayMs: 102_400 });
    expect(nextStep(d, 11, response(500), NOW)).toEqual({ action: 'dead-letter' });
  });

  it('no backoff delay retries at once', () => {
    const d = resolved({ retry: 2, backoffDelayMs: 0 });
    expect(nextStep(d, 2, response(404), NOW)).toEqual({ action: 'retry', delayMs: 0 });
  });

  it.each([400, 401, 403, 410, 422, 301, 100])(
    'a non-retryable %d goes to the dead-letter sink at once',
    (status) => {
      expect(nextStep(resolved({ retry: 10 }), 1, response(status), NOW)).toEqual({
        action: 'dead-letter',
      });
    },
  );

  describe('Retry-After', () => {
    const withMax = resolved({ retry: 5, backoffDelayMs: 100, retryAfterMaxMs: 10_000 });

    it('on 429 and 503 waits the header, in seconds', () => {
      expect(nextStep(withMax, 1, response(429, '5'), NOW)).toEqual({
        action: 'retry',
        delayMs: 5000,
      });
      expect(nextStep(withMax, 1, response(503, '3'), NOW)).toEqual({
        action: 'retry',
        delayMs: 3000,
      });
    });

    it('on 429 and 503 waits until an HTTP date', () => {
      expect(nextStep(withMax, 1, response(429, 'Tue, 01 Jan 2030 00:00:06 GMT'), NOW)).toEqual({
        action: 'retry',
        delayMs: 6000,
      });
    });

    it('is capped at retryAfterMax', () => {
      expect(nextStep(withMax, 1, response(429, '60'), NOW)).toEqual({
        action: 'retry',
        delayMs: 10_000,
      });
      expect(nextStep(withMax, 1, response(503, 'Tue, 01 Jan 2030 01:00:00 GMT'), NOW)).toEqual({
        action: 'retry',
        delayMs: 10_000,
      });
    });

    it('never waits less than the backoff: max(backoff, min(header, max))', () => {
      // Retry 4 backs off 100 * 2^3 = 800 ms; the header asks for 0 s.
      expect(nextStep(withMax, 4, response(429, '0'), NOW)).toEqual({
        action: 'retry',
        delayMs: 800,
      });
      // Backoff above the cap: the backoff wins.
      const slow = resolved({ retry: 5, backoffDelayMs: 20_000, retryAfterMaxMs: 10_000 });
      expect(nextStep(slow, 1, response(429, '5'), NOW)).toEqual({
        action: 'retry',
        delayMs: 20_000,
      });
    });

    it('is ignored on other retryable statuses', () => {
      for (const status of [404, 408, 409, 500, 502, 504]) {
        expect(nextStep(withMax, 1, response(status, '5'), NOW)).toEqual({
          action: 'retry',
          delayMs: 100,
        });
      }
    });

    it('is ignored when retryAfterMax is not set', () => {
      const d = resolved({ retry: 5, backoffDelayMs: 100, retryAfterMaxMs: undefined });
      expect(nextStep(d, 1, response(429, '5'), NOW)).toEqual({ action: 'retry', delayMs: 100 });
      expect(nextStep(d, 1, response(503, '5'), NOW)).toEqual({ action: 'retry', delayMs: 100 });
    });

    it('retryAfterMax PT0S disables it', () => {
      const d = resolveDelivery(
        { retry: 1, backoffDelay: 'PT0.1S', retryAfterMax: 'PT0S' },
        undefined,
        1,
      );
      expect(nextStep(d, 1, response(429, '5'), NOW)).toEqual({ action: 'retry', delayMs: 100 });
    });

    it('an unparsable or missing header is ignored', () => {
      expect(nextStep(withMax, 1, response(429, 'soon'), NOW)).toEqual({
        action: 'retry',
        delayMs: 100,
      });
      expect(nextStep(withMax, 1, response(503), NOW)).toEqual({ action: 'retry', delayMs: 100 });
    });

    it('does not extend the number of attempts', () => {
      expect(nextStep(withMax, 6, response(429, '5'), NOW)).toEqual({ action: 'dead-letter' });
    });
  });
});
