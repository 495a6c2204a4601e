/**
 * CESQL values, types, errors and the per-evaluation context (CESQL v1.0 sections 3.1 and 3.3).
 */

/** A CESQL value: Boolean, Integer (always an int32 held in a JS number, never -0) or String. */
export type CesqlValue = boolean | number | string;

/** The CESQL primitive types (spec 3.1). `Any` is only a parameter type of INT, BOOL and STRING. */
export type CesqlType = 'Boolean' | 'Integer' | 'String';

/** The error types every engine MUST support (spec 3.3), named as the TCK's `error` values. */
export type CesqlErrorKind =
  | 'parse'
  | 'math'
  | 'cast'
  | 'missingFunction'
  | 'functionEvaluation'
  | 'missingAttribute'
  | 'generic';

export interface CesqlError {
  readonly kind: CesqlErrorKind;
  readonly message: string;
}

/** Parse failure: `position` is the 0-based character offset in the expression where it went wrong. */
export class CesqlParseError extends Error {
  override readonly name = 'CesqlParseError';
  readonly kind = 'parse' as const;
  readonly position: number;
  readonly reason: string;

  constructor(position: number, reason: string) {
    super(`at position ${position}: ${reason}`);
    this.position = position;
    this.reason = reason;
  }
}

export const INT32_MIN = -2147483648;
export const INT32_MAX = 2147483647;

export function isInt32(n: number): boolean {
  return Number.isInteger(n) && n >= INT32_MIN && n <= INT32_MAX;
}

/** The zero value of each type (spec 3.1). */
export const ZERO: { readonly [T in CesqlType]: CesqlValue } = {
  Boolean: false,
  Integer: 0,
  String: '',
};

export function typeOf(value: CesqlValue): CesqlType {
  switch (typeof value) {
    case 'boolean':
      return 'Boolean';
    case 'number':
      return 'Integer';
    default:
      return 'String';
  }
}

/**
 * State of one evaluation. The engine runs in fail-fast mode (see index.ts): `error` is the first
 * error raised; once it is set, every enclosing operator stops and returns its own zero value.
 */
export interface EvalContext {
  readonly attributes: Readonly<Record<string, unknown>>;
  error: CesqlError | undefined;
}

/** Records an error (only the first one counts in fail-fast mode). */
export function raise(ctx: EvalContext, kind: CesqlErrorKind, message: string): void {
  if (ctx.error === undefined) ctx.error = { kind, message };
}

/** Quotes a value for an error message, shortened so an attribute cannot flood a log line. */
export function show(value: CesqlValue): string {
  if (typeof value !== 'string') return String(value);
  const text = value.length > 40 ? `${value.slice(0, 40)}...` : value;
  return JSON.stringify(text);
}
