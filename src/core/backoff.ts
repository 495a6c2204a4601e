/**
 * The retry backoff policy (DESIGN.md section 5): the k-th retry (k >= 1) waits
 * `backoffDelay * k` (linear) or `backoffDelay * 2^(k-1)` (exponential), so the first retry waits
 * exactly `backoffDelay` under both policies.
 */

import type { BackoffPolicy } from './resources/types.js';

/** The longest a single retry waits unless the caller gives another cap: one hour. */
export const DEFAULT_MAX_BACKOFF_MS = 3_600_000;

/**
 * Delay before retry number k (k >= 1): linear = base * k, exponential = base * 2^(k-1). Capped at
 * maxMs (default one hour) without overflow, for any k. Throws RangeError for a k that is not a
 * positive integer, or a negative or non-finite base or cap: those are programming errors.
 */
export function backoffDelayMs(
  policy: BackoffPolicy,
  baseMs: number,
  k: number,
  maxMs: number = DEFAULT_MAX_BACKOFF_MS,
): number {
  if (!Number.isInteger(k) || k < 1) {
    throw new RangeError(`retry number must be an integer >= 1, got ${k}`);
  }
  if (!Number.isFinite(baseMs) || baseMs < 0) {
    throw new RangeError(`base delay must be a finite number >= 0, got ${baseMs}`);
  }
  if (!Number.isFinite(maxMs) || maxMs < 0) {
    throw new RangeError(`maximum delay must be a finite number >= 0, got ${maxMs}`);
  }
  let factor: number;
  switch (policy) {
    case 'linear':
      factor = k;
      break;
    case 'exponential':
      // 2 ** large is Infinity, never NaN; the comparison below handles it.
      factor = 2 ** (k - 1);
      break;
    default:
      throw new RangeError(`unknown backoff policy ${String(policy)}`);
  }
  if (baseMs === 0) return 0;
  // Compare before multiplying so that a huge factor cannot overflow.
  if (factor >= maxMs / baseMs) return maxMs;
  return Math.min(maxMs, Math.round(baseMs * factor));
}
