/**
 * Turns an AST into a tree of closures, once; evaluating is then calls and comparisons only: no
 * parsing, no RegExp construction, no dispatch on node kinds.
 *
 * Fail-fast evaluation (spec 4.1, and what the TCK's `result` values expect): the first error stops
 * the evaluation. The operator or function that raises it still returns its own value (spec 3.3:
 * `ABS(-2147483648)` is 2147483647, `LEFT('abc', -2)` is 'abc', a missing attribute is false); every
 * operator or function above it then stops and returns the zero value of its own return type (spec
 * 3.2: `missing * 5` is 0, `1 / missing` is 0 with only the MissingAttributeError). So a program's
 * result carries at most one error.
 *
 * Operand order follows the spec and sdk-go: a binary operator evaluates its left operand, then its
 * right one, then casts them; AND and OR skip the right operand when the left one decides (3.4.2);
 * IN evaluates the set left to right and stops at the first element equal to `x`; a function
 * evaluates and casts its arguments left to right.
 *
 * Subtrees made only of literals (and built-in calls on them) are evaluated at compile time when that
 * raises no error, so `x IN ('a', 'b', 'c')` or `LENGTH(x) > 2 * 3` cost no more than plain literals.
 */

import type { BinaryOperator, Expr } from './ast.js';
import { children } from './ast.js';
import { castTo, toBooleanValue, toIntegerValue, toStringValue } from './casts.js';
import { BUILTINS, type FunctionTable } from './functions.js';
import {
  isInt32,
  raise,
  typeOf,
  ZERO,
  type CesqlError,
  type CesqlType,
  type CesqlValue,
  type EvalContext,
} from './types.js';

export type Evaluator = (ctx: EvalContext) => CesqlValue;

/**
 * The value of an attribute as CESQL sees it (spec 3.2), or undefined when the event lacks it.
 * Booleans, strings and int32 numbers keep their type; any other value (a number that is not an
 * int32, say 1.5) "MUST be represented by the String type".
 */
export function readAttribute(
  attributes: Readonly<Record<string, unknown>>,
  name: string,
): CesqlValue | undefined {
  if (!Object.hasOwn(attributes, name)) return undefined;
  const value = attributes[name];
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return isInt32(value) ? value | 0 : String(value);
    case 'undefined':
      return undefined;
    default:
      return value === null ? undefined : JSON.stringify(value);
  }
}

export function compileExpression(expr: Expr, functions: FunctionTable = BUILTINS): Evaluator {
  return new Compiler(functions).compile(expr);
}

const NO_ATTRIBUTES: Readonly<Record<string, unknown>> = Object.freeze({});

class Compiler {
  /** Subtrees whose value is known at compile time: literals and folded subtrees. */
  private readonly constants = new WeakSet<Expr>();

  constructor(private readonly functions: FunctionTable) {}

  /** Compiles a subtree; one made only of constants is evaluated now, unless that raises an error. */
  compile(expr: Expr): Evaluator {
    const run = this.build(expr);
    if (expr.kind === 'literal') {
      this.constants.add(expr);
      return run;
    }
    if (expr.kind === 'attribute' || expr.kind === 'exists') return run;
    if (!children(expr).every((child) => this.constants.has(child))) return run;
    const ctx: EvalContext = { attributes: NO_ATTRIBUTES, error: undefined };
    const value = run(ctx);
    if (ctx.error !== undefined) return run; // raised again at every evaluation
    this.constants.add(expr);
    return () => value;
  }

  private build(expr: Expr): Evaluator {
    switch (expr.kind) {
      case 'literal': {
        const value = expr.value;
        return () => value;
      }
      case 'attribute': {
        const name = expr.name;
        return (ctx) => {
          const value = readAttribute(ctx.attributes, name);
          if (value !== undefined) return value;
          raise(ctx, 'missingAttribute', `the event has no attribute '${name}'`);
          return false; // type unknown: assume Boolean (3.2)
        };
      }
      case 'exists': {
        const name = expr.name;
        return (ctx) => readAttribute(ctx.attributes, name) !== undefined;
      }
      case 'not': {
        const operand = this.compile(expr.operand);
        return (ctx) => {
          const value = operand(ctx);
          if (ctx.error !== undefined) return false;
          const b = toBooleanValue(value, ctx);
          return ctx.error === undefined && !b;
        };
      }
      case 'negate': {
        const operand = this.compile(expr.operand);
        return (ctx) => {
          const value = operand(ctx);
          if (ctx.error !== undefined) return 0;
          const n = toIntegerValue(value, ctx);
          return ctx.error === undefined ? -n | 0 : 0; // wraps: -(-2147483648) is -2147483648
        };
      }
      case 'binary':
        return this.binary(expr.operator, this.compile(expr.left), this.compile(expr.right));
      case 'like': {
        const operand = this.compile(expr.operand);
        const { matcher, negated } = expr;
        return (ctx) => {
          const value = operand(ctx);
          if (ctx.error !== undefined) return false;
          return matcher(toStringValue(value)) !== negated;
        };
      }
      case 'in':
        return this.in(expr.operand, expr.set, expr.negated);
      case 'call':
        return this.call(expr.name, expr.args);
    }
  }

  private binary(operator: BinaryOperator, left: Evaluator, right: Evaluator): Evaluator {
    switch (operator) {
      case 'AND':
        return (ctx) => {
          const a = left(ctx);
          if (ctx.error !== undefined) return false;
          if (!toBooleanValue(a, ctx) || ctx.error !== undefined) return false; // short-circuit
          const b = right(ctx);
          if (ctx.error !== undefined) return false;
          const y = toBooleanValue(b, ctx);
          return ctx.error === undefined && y;
        };
      case 'OR':
        return (ctx) => {
          const a = left(ctx);
          if (ctx.error !== undefined) return false;
          const x = toBooleanValue(a, ctx);
          if (ctx.error !== undefined) return false;
          if (x) return true; // short-circuit
          const b = right(ctx);
          if (ctx.error !== undefined) return false;
          const y = toBooleanValue(b, ctx);
          return ctx.error === undefined && y;
        };
      case 'XOR':
        return (ctx) => {
          const a = left(ctx);
          if (ctx.error !== undefined) return false;
          const b = right(ctx);
          if (ctx.error !== undefined) return false;
          const x = toBooleanValue(a, ctx);
          if (ctx.error !== undefined) return false;
          const y = toBooleanValue(b, ctx);
          return ctx.error === undefined && x !== y;
        };
      case '=':
        return equality(left, right, false);
      case '!=':
      case '<>':
        return equality(left, right, true);
      case '<':
        return integerOperation(left, right, false, (x, y) => x < y);
      case '<=':
        return integerOperation(left, right, false, (x, y) => x <= y);
      case '>':
        return integerOperation(left, right, false, (x, y) => x > y);
      case '>=':
        return integerOperation(left, right, false, (x, y) => x >= y);
      // Integer arithmetic wraps around in 32 bits, as in sdk-go (Go int32) and sdk-java (int).
      case '+':
        return integerOperation(left, right, 0, (x, y) => (x + y) | 0);
      case '-':
        return integerOperation(left, right, 0, (x, y) => (x - y) | 0);
      case '*':
        return integerOperation(left, right, 0, (x, y) => Math.imul(x, y));
      case '/':
        return integerOperation(left, right, 0, (x, y, ctx) => {
          if (y !== 0) return (x / y) | 0; // truncates toward 0
          raise(ctx, 'math', 'division by zero');
          return 0;
        });
      case '%':
        return integerOperation(left, right, 0, (x, y, ctx) => {
          if (y !== 0) return (x % y) | 0; // sign of x; | 0 turns -0 into 0
          raise(ctx, 'math', 'modulo by zero');
          return 0;
        });
    }
  }

  private in(operandExpr: Expr, setExprs: readonly Expr[], negated: boolean): Evaluator {
    const operand = this.compile(operandExpr);
    const set = setExprs.map((e) => this.compile(e));
    if (setExprs.every((e) => this.constants.has(e))) {
      // Every element is known: cast the set once per possible type of x.
      const values = set.map((run) => run({ attributes: NO_ATTRIBUTES, error: undefined }));
      const prepared = {
        Boolean: prepareSet(values, 'Boolean'),
        Integer: prepareSet(values, 'Integer'),
        String: prepareSet(values, 'String'),
      };
      return (ctx) => {
        const x = operand(ctx);
        if (ctx.error !== undefined) return false;
        const { members, failure } = prepared[typeOf(x)];
        if (members.has(x)) return !negated;
        if (failure === undefined) return negated;
        raise(ctx, failure.error.kind, failure.error.message);
        return false;
      };
    }
    const n = set.length;
    return (ctx) => {
      const x = operand(ctx);
      if (ctx.error !== undefined) return false;
      const type = typeOf(x);
      for (let i = 0; i < n; i++) {
        const element = set[i]!(ctx);
        if (ctx.error !== undefined) return false;
        const y = castTo(element, type, ctx);
        if (ctx.error !== undefined) return false;
        if (y === x) return !negated;
      }
      return negated;
    };
  }

  private call(name: string, argExprs: readonly Expr[]): Evaluator {
    const definition = this.functions.resolve(name, argExprs.length);
    if (typeof definition === 'string') {
      return (ctx) => {
        raise(ctx, 'missingFunction', definition);
        return false; // 3.5: an undispatchable call is false
      };
    }
    const args = argExprs.map((e) => this.compile(e));
    const n = args.length;
    const types = args.map(
      (_, i) => definition.parameters[i] ?? definition.variadic ?? ('Any' as const),
    );
    const zero = ZERO[definition.returns];
    const { run } = definition;
    return (ctx) => {
      const values: CesqlValue[] = new Array<CesqlValue>(n);
      for (let i = 0; i < n; i++) {
        const value = args[i]!(ctx);
        if (ctx.error !== undefined) return zero;
        const type = types[i]!;
        values[i] = type === 'Any' ? value : castTo(value, type, ctx);
        if (ctx.error !== undefined) return zero;
      }
      return run(values, ctx);
    };
  }
}

/** `=` (or `!=`/`<>` when negated): x is cast to the type of y (spec 3.7, ambiguous operators). */
function equality(left: Evaluator, right: Evaluator, negated: boolean): Evaluator {
  return (ctx) => {
    const a = left(ctx);
    if (ctx.error !== undefined) return false;
    const b = right(ctx);
    if (ctx.error !== undefined) return false;
    const x = castTo(a, typeOf(b), ctx);
    if (ctx.error !== undefined) return false;
    return (x === b) !== negated;
  };
}

/** An Integer x Integer operator; `zero` is the zero value of its return type. */
function integerOperation<R extends CesqlValue>(
  left: Evaluator,
  right: Evaluator,
  zero: R,
  op: (x: number, y: number, ctx: EvalContext) => R,
): Evaluator {
  return (ctx) => {
    const a = left(ctx);
    if (ctx.error !== undefined) return zero;
    const b = right(ctx);
    if (ctx.error !== undefined) return zero;
    const x = toIntegerValue(a, ctx);
    if (ctx.error !== undefined) return zero;
    const y = toIntegerValue(b, ctx);
    if (ctx.error !== undefined) return zero;
    return op(x, y, ctx);
  };
}

interface PreparedSet {
  /** The elements before the first one that does not cast, cast to the type. */
  readonly members: ReadonlySet<CesqlValue>;
  /** The first element that does not cast, if any: matching stops there with its CastError. */
  readonly failure?: { readonly error: CesqlError };
}

function prepareSet(values: readonly CesqlValue[], type: CesqlType): PreparedSet {
  const members = new Set<CesqlValue>();
  for (const element of values) {
    const ctx: EvalContext = { attributes: NO_ATTRIBUTES, error: undefined };
    const value = castTo(element, type, ctx);
    if (ctx.error !== undefined) return { members, failure: { error: ctx.error } };
    members.add(value);
  }
  return { members };
}
