/**
 * ISO-8601 durations as Knative's DeliverySpec uses them (`PT0.2S`, `PT1S`, `PT1M30S`, `P1DT2H`).
 *
 * Grammar accepted: `P[nW][nD][T[nH][nM][nS]]`, components in that order, each at most once, at
 * least one present, a decimal fraction (`.` or `,`) only on the last component present. Years and
 * months are refused because their length in milliseconds is ambiguous; negative durations are
 * refused. Designators are upper case, as ISO 8601 writes them.
 */

const MS_PER = {
  W: 7 * 24 * 3_600_000,
  D: 24 * 3_600_000,
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
} as const;

const EXAMPLES = 'such as PT0.2S, PT1M30S or P1DT2H';

type ParseResult = { readonly ms: number; readonly error?: undefined } | { readonly error: string };

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

function parse(text: unknown): ParseResult {
  if (typeof text !== 'string') return { error: `must be an ISO-8601 duration string ${EXAMPLES}` };
  if (text.startsWith('-')) return { error: `negative durations are not allowed: "${text}"` };
  if (!text.startsWith('P')) {
    return { error: `"${text}" is not an ISO-8601 duration; expected one ${EXAMPLES}` };
  }

  // Rank of each designator: components must appear in strictly increasing rank.
  const dateRank: Record<string, number> = { W: 1, D: 2 };
  const timeRank: Record<string, number> = { H: 3, M: 4, S: 5 };

  let i = 1;
  let inTime = false;
  let timeComponents = 0;
  let components = 0;
  let lastRank = 0;
  let lastHadFraction = false;
  let total = 0;

  while (i < text.length) {
    if (text[i] === 'T') {
      if (inTime) return { error: `"${text}" has more than one T` };
      inTime = true;
      i++;
      continue;
    }
    const start = i;
    while (i < text.length && isDigit(text.charCodeAt(i))) i++;
    const whole = text.slice(start, i);
    if (whole === '') {
      return { error: `"${text}" is not an ISO-8601 duration; expected a number at position ${i}` };
    }
    let fraction = '';
    if (text[i] === '.' || text[i] === ',') {
      i++;
      const fractionStart = i;
      while (i < text.length && isDigit(text.charCodeAt(i))) i++;
      fraction = text.slice(fractionStart, i);
      if (fraction === '') {
        return { error: `"${text}" has a decimal separator without digits after it` };
      }
    }
    const designator = text[i];
    if (designator === undefined) {
      return { error: `"${text}" ends with a number that has no unit (W, D, H, M or S)` };
    }
    i++;
    if (!inTime && (designator === 'Y' || designator === 'M')) {
      return {
        error: `"${text}": years and months are not supported because their length varies; use days or weeks (e.g. P30D)`,
      };
    }
    const rank = (inTime ? timeRank : dateRank)[designator];
    if (rank === undefined) {
      const where = inTime ? 'after T (H, M or S)' : 'before T (W or D)';
      return { error: `"${text}" has an unknown unit "${designator}" ${where}` };
    }
    if (rank <= lastRank) {
      return {
        error: `"${text}" has units out of order or repeated; write P[nW][nD]T[nH][nM][nS]`,
      };
    }
    if (lastHadFraction) {
      return { error: `"${text}": only the last component may have a fraction` };
    }
    const unit = MS_PER[designator as keyof typeof MS_PER];
    total += Number(whole) * unit;
    if (fraction !== '') total += Number(`0.${fraction}`) * unit;
    lastRank = rank;
    lastHadFraction = fraction !== '';
    components++;
    if (inTime) timeComponents++;
  }

  if (components === 0) return { error: `"${text}" has no components; expected one ${EXAMPLES}` };
  if (inTime && timeComponents === 0) {
    return { error: `"${text}" has a T with no hours, minutes or seconds after it` };
  }
  const ms = Math.round(total);
  if (!Number.isSafeInteger(ms)) return { error: `"${text}" is too large` };
  return { ms };
}

/**
 * Parses an ISO-8601 duration (e.g. PT0.2S, PT1S, PT1M30S, P1D, P1DT2H, PT1.5S, P2W). Returns
 * milliseconds (rounded to an integer) or undefined when invalid; `durationError` says why.
 */
export function parseDuration(text: string): number | undefined {
  const result = parse(text);
  return result.error === undefined ? result.ms : undefined;
}

/** Why `text` is not an accepted duration, or undefined when it is one. */
export function durationError(text: unknown): string | undefined {
  return parse(text).error;
}

/**
 * Formats milliseconds as the ISO-8601 duration `parseDuration` reads back to the same value:
 * 200 -> "PT0.2S", 90000 -> "PT1M30S", 0 -> "PT0S", 93600000 -> "P1DT2H". Days are the largest
 * unit used. Fractions of a millisecond are rounded.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) {
    throw new RangeError(`formatDuration needs a finite non-negative number, got ${ms}`);
  }
  let rest = Math.round(ms);
  if (rest === 0) return 'PT0S';
  const days = Math.floor(rest / MS_PER.D);
  rest -= days * MS_PER.D;
  const hours = Math.floor(rest / MS_PER.H);
  rest -= hours * MS_PER.H;
  const minutes = Math.floor(rest / MS_PER.M);
  rest -= minutes * MS_PER.M;
  const seconds = Math.floor(rest / MS_PER.S);
  const millis = rest - seconds * MS_PER.S;

  let out = 'P';
  if (days > 0) out += `${days}D`;
  if (hours > 0 || minutes > 0 || seconds > 0 || millis > 0) {
    out += 'T';
    if (hours > 0) out += `${hours}H`;
    if (minutes > 0) out += `${minutes}M`;
    if (millis > 0) {
      out += `${seconds}.${String(millis).padStart(3, '0').replace(/0+$/, '')}S`;
    } else if (seconds > 0) {
      out += `${seconds}S`;
    }
  }
  return out;
}
