/**
 * Type casting (spec 3.7). A failed cast records a CastError in the context and returns the zero
 * value of the target type.
 */

import {
  INT32_MAX,
  INT32_MIN,
  raise,
  show,
  type CesqlType,
  type CesqlValue,
  type EvalContext,
} from './types.js';

const INTEGER_TEXT = /^[+-]?[0-9]+$/;

/** Integer -> String: base 10, no leading zeros, `-` for negatives. Boolean -> `"true"`/`"false"`. */
export function toStringValue(value: CesqlValue): string {
  return typeof value === 'string' ? value : String(value);
}

/**
 * String -> Integer: a base-10 int32 with an optional leading `+` or `-` (nothing else, no spaces),
 * else CastError and 0. Boolean -> 1 or 0.
 */
export function toIntegerValue(value: CesqlValue, ctx: EvalContext): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (INTEGER_TEXT.test(value)) {
    const n = Number(value);
    if (n >= INT32_MIN && n <= INT32_MAX) return n | 0; // | 0: "-0" is 0
  }
  raise(ctx, 'cast', `cannot cast String ${show(value)} to Integer`);
  return 0;
}

/**
 * String -> Boolean: `true` or `false` when "the lower case representation of the string is exactly
 * 'true' or 'false'" (spec 3.7), so `'TRUE'` and `'False'` cast too; else CastError and false.
 * Integer -> Boolean: 0 is false, anything else true.
 */
export function toBooleanValue(value: CesqlValue, ctx: EvalContext): boolean {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return value !== 0;
  const lower = value.toLowerCase();
  if (lower === 'true') return true;
  if (lower === 'false') return false;
  raise(ctx, 'cast', `cannot cast String ${show(value)} to Boolean`);
  return false;
}

export function castTo(value: CesqlValue, type: CesqlType, ctx: EvalContext): CesqlValue {
  switch (type) {
    case 'String':
      return toStringValue(value);
    case 'Integer':
      return toIntegerValue(value, ctx);
    case 'Boolean':
      return toBooleanValue(value, ctx);
  }
}
