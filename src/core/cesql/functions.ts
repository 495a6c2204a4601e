/**
 * Built-in functions (spec 3.5, plus the casting functions INT, BOOL and STRING of 3.7 and the TCK).
 *
 * Dispatch is by upper-cased name and arity (spec 3.5): a name has at most one overload per fixed
 * arity and at most one variadic overload, whose fixed parameters outnumber every other overload's.
 * Calls are resolved when the expression is compiled; arguments are cast to the parameter types
 * before the call (`Any` = no cast).
 *
 * Strings are sequences of Unicode code points: LENGTH, LEFT, RIGHT and SUBSTRING count code
 * points, not UTF-16 units, so an emoji is one character. Strings without surrogates (almost all)
 * take the plain `length`/`slice` path.
 */

import { toBooleanValue, toIntegerValue, toStringValue } from './casts.js';
import {
  INT32_MAX,
  INT32_MIN,
  raise,
  type CesqlType,
  type CesqlValue,
  type EvalContext,
} from './types.js';

export type ParameterType = CesqlType | 'Any';

export interface FunctionDefinition {
  readonly name: string;
  /** The fixed parameters. */
  readonly parameters: readonly ParameterType[];
  /** The type of every argument after the fixed ones, for a variadic function. */
  readonly variadic?: ParameterType;
  readonly returns: CesqlType;
  /**
   * Runs on arguments already cast to the parameter types. A function that fails calls `raise`
   * (kind functionEvaluation, or math for ABS) and still returns a value of its return type.
   */
  readonly run: (args: readonly CesqlValue[], ctx: EvalContext) => CesqlValue;
}

const SURROGATE = /[\uD800-\uDFFF]/;

function codePointLength(s: string): number {
  if (!SURROGATE.test(s)) return s.length;
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** `slice` in code points. */
function codePointSlice(s: string, start: number, end?: number): string {
  if (!SURROGATE.test(s)) return s.slice(start, end);
  return Array.from(s).slice(start, end).join('');
}

/** Unicode White_Space (PropList.txt), all in the BMP; JS `trim` differs (it strips U+FEFF, keeps U+0085). */
function isWhiteSpace(c: number): boolean {
  return (
    (c >= 0x09 && c <= 0x0d) ||
    c === 0x20 ||
    c === 0x85 ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000
  );
}

function trim(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && isWhiteSpace(s.charCodeAt(start))) start++;
  while (end > start && isWhiteSpace(s.charCodeAt(end - 1))) end--;
  return s.slice(start, end);
}

const str = (args: readonly CesqlValue[], i: number): string => args[i] as string;
const int = (args: readonly CesqlValue[], i: number): number => args[i] as number;

function substring(x: string, pos: number, length: number | undefined, ctx: EvalContext): string {
  if (length !== undefined && length < 0) {
    raise(ctx, 'functionEvaluation', `SUBSTRING: the length ${length} is negative`);
    return '';
  }
  if (pos === 0) return '';
  const n = codePointLength(x);
  if (pos > n || pos < -n) {
    raise(
      ctx,
      'functionEvaluation',
      `SUBSTRING: the position ${pos} is outside the string (length ${n})`,
    );
    return '';
  }
  const begin = pos < 0 ? n + pos : pos - 1;
  const end = length === undefined ? n : Math.min(n, begin + length);
  return codePointSlice(x, begin, end);
}

/** LEFT and RIGHT: the first or last `y` characters; a negative `y` is an error and gives `x`. */
function edgeFunction(name: string, take: (x: string, y: number) => string): FunctionDefinition {
  return {
    name,
    parameters: ['String', 'Integer'],
    returns: 'String',
    run: (args, ctx) => {
      const x = str(args, 0);
      const y = int(args, 1);
      if (y < 0) {
        raise(ctx, 'functionEvaluation', `${name}: the length ${y} is negative`);
        return x;
      }
      return take(x, y);
    },
  };
}

export const BUILTIN_FUNCTIONS: readonly FunctionDefinition[] = [
  {
    name: 'LENGTH',
    parameters: ['String'],
    returns: 'Integer',
    run: (args) => codePointLength(str(args, 0)),
  },
  {
    name: 'CONCAT',
    parameters: [],
    variadic: 'String',
    returns: 'String',
    run: (args) => args.join(''),
  },
  {
    name: 'CONCAT_WS',
    parameters: ['String'],
    variadic: 'String',
    returns: 'String',
    run: (args) => args.slice(1).join(str(args, 0)),
  },
  {
    name: 'LOWER',
    parameters: ['String'],
    returns: 'String',
    run: (args) => str(args, 0).toLowerCase(),
  },
  {
    name: 'UPPER',
    parameters: ['String'],
    returns: 'String',
    run: (args) => str(args, 0).toUpperCase(),
  },
  {
    name: 'TRIM',
    parameters: ['String'],
    returns: 'String',
    run: (args) => trim(str(args, 0)),
  },
  edgeFunction('LEFT', (x, y) => codePointSlice(x, 0, y)),
  edgeFunction('RIGHT', (x, y) => {
    const n = codePointLength(x);
    return y >= n ? x : codePointSlice(x, n - y);
  }),
  {
    name: 'SUBSTRING',
    parameters: ['String', 'Integer'],
    returns: 'String',
    run: (args, ctx) => substring(str(args, 0), int(args, 1), undefined, ctx),
  },
  {
    name: 'SUBSTRING',
    parameters: ['String', 'Integer', 'Integer'],
    returns: 'String',
    run: (args, ctx) => substring(str(args, 0), int(args, 1), int(args, 2), ctx),
  },
  {
    name: 'ABS',
    parameters: ['Integer'],
    returns: 'Integer',
    run: (args, ctx) => {
      const x = int(args, 0);
      if (x === INT32_MIN) {
        raise(ctx, 'math', 'ABS(-2147483648) overflows 32 bits; the result is 2147483647');
        return INT32_MAX;
      }
      return Math.abs(x);
    },
  },
  // The casting functions of 3.7: CastError and the zero value when the cast fails.
  {
    name: 'INT',
    parameters: ['Any'],
    returns: 'Integer',
    run: (args, ctx) => toIntegerValue(args[0]!, ctx),
  },
  {
    name: 'BOOL',
    parameters: ['Any'],
    returns: 'Boolean',
    run: (args, ctx) => toBooleanValue(args[0]!, ctx),
  },
  {
    name: 'STRING',
    parameters: ['Any'],
    returns: 'String',
    run: (args) => toStringValue(args[0]!),
  },
];

interface Overloads {
  readonly fixed: Map<number, FunctionDefinition>;
  variadic: FunctionDefinition | undefined;
}

/** A function table keyed by upper-cased name, checked against the overloading rules of 3.5. */
export class FunctionTable {
  private readonly byName = new Map<string, Overloads>();

  constructor(definitions: readonly FunctionDefinition[]) {
    for (const definition of definitions) this.add(definition);
  }

  private add(definition: FunctionDefinition): void {
    const name = definition.name.toUpperCase();
    let overloads = this.byName.get(name);
    if (overloads === undefined) {
      overloads = { fixed: new Map(), variadic: undefined };
      this.byName.set(name, overloads);
    }
    const arity = definition.parameters.length;
    const maxFixed = Math.max(-1, ...overloads.fixed.keys());
    if (definition.variadic !== undefined) {
      if (overloads.variadic !== undefined || arity <= maxFixed) {
        throw new Error(`${name}: a variadic overload must be unique and outnumber every arity`);
      }
      overloads.variadic = definition;
    } else {
      const variadicArity = overloads.variadic?.parameters.length;
      if (overloads.fixed.has(arity) || (variadicArity !== undefined && arity >= variadicArity)) {
        throw new Error(`${name}: an overload with ${arity} parameters clashes with another one`);
      }
      overloads.fixed.set(arity, definition);
    }
  }

  /** The overload of `name` for `arity` arguments, or a reason why there is none. */
  resolve(name: string, arity: number): FunctionDefinition | string {
    const overloads = this.byName.get(name.toUpperCase());
    if (overloads === undefined) return `unknown function ${name}`;
    const fixed = overloads.fixed.get(arity);
    if (fixed !== undefined) return fixed;
    const variadic = overloads.variadic;
    if (variadic !== undefined && arity >= variadic.parameters.length) return variadic;
    const s = arity === 1 ? '' : 's';
    return `function ${name} does not take ${arity} argument${s}`;
  }
}

export const BUILTINS = new FunctionTable(BUILTIN_FUNCTIONS);
