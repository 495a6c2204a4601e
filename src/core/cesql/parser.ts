/**
 * The CESQL parser: precedence climbing (Pratt) over the tokens of lexer.ts, producing ast.ts nodes.
 *
 * Precedence (spec 3.6), tightest first; operators of one level associate left to right ("MUST be
 * evaluated left to right when the precedence is equal"):
 *
 *   function calls, literals, attributes, `( ... )`, `EXISTS name`   primaries
 *   `NOT x`, `-x`                                                    unary (operand: a primary or
 *                                                                    another unary, so `NOT a = b`
 *                                                                    is `(NOT a) = b`)
 *   `x [NOT] LIKE 'pattern'`                                          postfix
 *   `x [NOT] IN (y, ...)`                                             postfix
 *   `*` `/` `%`
 *   `+` `-`
 *   `=` `!=` `<>` `<` `<=` `>` `>=`
 *   `AND` `OR` `XOR`                                                  one level
 *
 * The spec's ANTLR grammar marks the AND/OR/XOR level `<assoc=right>` (sdk-go and sdk-java parse
 * `a AND b OR c` as `a AND (b OR c)`); this parser follows the normative text of 3.6 instead and
 * reads it as `(a AND b) OR c`. Chains of one operator (`a AND b AND c`) mean the same either way.
 *
 * Integer literals: `('+'|'-')? digit+` within int32. A sign directly followed by digits in operand
 * position is part of the literal (so `-2147483648` is valid); `- 5` is unary minus applied to `5`;
 * a `+` that does not start a literal is an error (there is no unary plus). In operator position a
 * sign is always the binary operator, so `4-1` and `4 -1` are both 3.
 */

import type { ArithmeticOperator, ComparisonOperator, Expr, LogicOperator } from './ast.js';
import { children } from './ast.js';
import { compileLikePattern } from './like.js';
import { describeToken, tokenize, type Token } from './lexer.js';
import { CesqlParseError, INT32_MAX } from './types.js';

/**
 * The deepest nesting accepted, in AST levels. Parsing, compiling and evaluating recurse on the
 * tree, so this bounds the stack they use whatever the input.
 */
export const MAX_DEPTH = 1000;

/** Binding powers: the higher, the tighter. */
const BP = {
  LOGIC: 10,
  COMPARISON: 20,
  ADDITIVE: 30,
  MULTIPLICATIVE: 40,
  IN: 50,
  LIKE: 60,
  UNARY: 70,
} as const;

const COMPARISON_OPERATORS: ReadonlySet<string> = new Set(['=', '!=', '<>', '<', '<=', '>', '>=']);

/** Parses a whole expression. Throws CesqlParseError. */
export function parse(input: string): Expr {
  const parser = new Parser(tokenize(input));
  const expr = parser.expression(0);
  const next = parser.peek();
  if (next.type !== 'end') {
    parser.fail(next, `expected an operator or end of expression but found ${describeToken(next)}`);
  }
  checkDepth(expr);
  return expr;
}

class Parser {
  private index = 0;
  private nesting = 0;

  constructor(private readonly tokens: readonly Token[]) {}

  peek(offset = 0): Token {
    return this.tokens[Math.min(this.index + offset, this.tokens.length - 1)]!;
  }

  private next(): Token {
    const token = this.peek();
    if (token.type !== 'end') this.index++;
    return token;
  }

  fail(at: Token, reason: string): never {
    throw new CesqlParseError(at.start, reason);
  }

  private expect(type: Token['type'], what: string): Token {
    const token = this.peek();
    if (token.type !== type) this.fail(token, `expected ${what} but found ${describeToken(token)}`);
    return this.next();
  }

  /** An expression whose operators all bind tighter than `minBp`. */
  expression(minBp: number): Expr {
    if (++this.nesting > MAX_DEPTH) {
      this.fail(this.peek(), `the expression is nested more than ${MAX_DEPTH} levels deep`);
    }
    let left = this.operand();
    for (;;) {
      const token = this.peek();
      const bp = this.bindingPower(token);
      if (bp === undefined || bp <= minBp) break;
      left = this.infix(left, bp);
    }
    this.nesting--;
    return left;
  }

  /** The binding power of `token` as an operator after an operand, or undefined if it is none. */
  private bindingPower(token: Token): number | undefined {
    if (token.type === 'operator') {
      switch (token.value) {
        case '*':
        case '/':
        case '%':
          return BP.MULTIPLICATIVE;
        case '+':
        case '-':
          return BP.ADDITIVE;
        default:
          return COMPARISON_OPERATORS.has(token.value) ? BP.COMPARISON : undefined;
      }
    }
    if (token.type !== 'keyword') return undefined;
    switch (token.value) {
      case 'AND':
      case 'OR':
      case 'XOR':
        return BP.LOGIC;
      case 'LIKE':
        return BP.LIKE;
      case 'IN':
        return BP.IN;
      case 'NOT': {
        const after = this.peek(1);
        if (after.type === 'keyword' && after.value === 'LIKE') return BP.LIKE;
        if (after.type === 'keyword' && after.value === 'IN') return BP.IN;
        return this.fail(after, `expected LIKE or IN after NOT but found ${describeToken(after)}`);
      }
      default:
        return undefined;
    }
  }

  private infix(left: Expr, bp: number): Expr {
    const token = this.next();
    if (token.type === 'keyword') {
      let keyword = token.value;
      const negated = keyword === 'NOT';
      if (negated) keyword = this.next().value;
      if (keyword === 'LIKE') return this.like(left, token, negated);
      if (keyword === 'IN') return this.in(left, token, negated);
      const right = this.expression(bp);
      return {
        kind: 'binary',
        pos: token.start,
        operator: keyword as LogicOperator,
        left,
        right,
      };
    }
    const right = this.expression(bp);
    const operator = token.value as ArithmeticOperator | ComparisonOperator;
    return { kind: 'binary', pos: token.start, operator, left, right };
  }

  private like(operand: Expr, operator: Token, negated: boolean): Expr {
    const pattern = this.peek();
    if (pattern.type !== 'string') {
      this.fail(
        pattern,
        `expected a string literal pattern after LIKE but found ${describeToken(pattern)}`,
      );
    }
    this.next();
    return {
      kind: 'like',
      pos: operator.start,
      operand,
      negated,
      pattern: pattern.value,
      matcher: compileLikePattern(pattern.value),
    };
  }

  private in(operand: Expr, operator: Token, negated: boolean): Expr {
    this.expect('(', "'(' after IN");
    if (this.peek().type === ')') {
      this.fail(this.peek(), "expected at least one value in the IN set but found ')'");
    }
    const set = [this.expression(0)];
    while (this.peek().type === ',') {
      this.next();
      set.push(this.expression(0));
    }
    this.expect(')', "',' or ')' in the IN set");
    return { kind: 'in', pos: operator.start, operand, negated, set };
  }

  /** A primary, or a unary operation on one. */
  private operand(): Expr {
    const token = this.next();
    switch (token.type) {
      case 'integer':
        return this.integer(token, token, '');
      case 'string':
        return { kind: 'literal', pos: token.start, value: token.value };
      case 'identifier':
      case 'function':
        if (this.peek().type === '(') return this.call(token);
        if (token.type === 'function') {
          this.fail(
            token,
            `'${token.value.toLowerCase()}' is not an attribute name (letters and digits only) ` +
              `and no '(' follows for a call of ${token.value}`,
          );
        }
        return { kind: 'attribute', pos: token.start, name: token.value };
      case '(': {
        const inner = this.expression(0);
        this.expect(')', "')'");
        return inner;
      }
      case 'operator': {
        const after = this.peek();
        const signed = after.type === 'integer' && after.start === token.end;
        if (token.value === '-') {
          if (signed) return this.integer(this.next(), token, '-');
          const operand = this.expression(BP.UNARY);
          return { kind: 'negate', pos: token.start, operand };
        }
        if (token.value === '+' && signed) return this.integer(this.next(), token, '+');
        break;
      }
      case 'keyword':
        switch (token.value) {
          case 'TRUE':
          case 'FALSE':
            return { kind: 'literal', pos: token.start, value: token.value === 'TRUE' };
          case 'NOT': {
            const operand = this.expression(BP.UNARY);
            return { kind: 'not', pos: token.start, operand };
          }
          case 'EXISTS': {
            const name = this.expect('identifier', 'an attribute name after EXISTS');
            return { kind: 'exists', pos: token.start, name: name.value };
          }
        }
        break;
    }
    return this.fail(token, `expected an expression but found ${describeToken(token)}`);
  }

  private integer(digits: Token, start: Token, sign: '' | '-' | '+'): Expr {
    const magnitude = Number(digits.value);
    const limit = sign === '-' ? INT32_MAX + 1 : INT32_MAX;
    if (magnitude > limit) {
      this.fail(
        start,
        `integer literal ${sign}${digits.value} is outside the 32-bit range -2147483648..2147483647`,
      );
    }
    // `| 0` turns -0 into 0.
    const value = (sign === '-' ? -magnitude : magnitude) | 0;
    return { kind: 'literal', pos: start.start, value };
  }

  private call(name: Token): Expr {
    if (name.type === 'identifier' && /[0-9]/.test(name.value)) {
      this.fail(name, `'${name.value}' is not a valid function name (letters and '_' only)`);
    }
    this.next(); // (
    const args: Expr[] = [];
    if (this.peek().type !== ')') {
      args.push(this.expression(0));
      while (this.peek().type === ',') {
        this.next();
        args.push(this.expression(0));
      }
    }
    this.expect(')', "',' or ')' in the argument list");
    return { kind: 'call', pos: name.start, name: name.value.toUpperCase(), args };
  }
}

/** Rejects trees deeper than MAX_DEPTH (long operator chains nest without parser recursion). */
function checkDepth(root: Expr): void {
  const stack: [Expr, number][] = [[root, 1]];
  while (stack.length > 0) {
    const [expr, depth] = stack.pop()!;
    if (depth > MAX_DEPTH) {
      throw new CesqlParseError(
        expr.pos,
        `the expression is nested more than ${MAX_DEPTH} levels deep`,
      );
    }
    for (const child of children(expr)) stack.push([child, depth + 1]);
  }
}
