import { describe, expect, it } from 'vitest';
import type { Expr } from '../../src/core/cesql/ast.js';
import { CesqlParseError, compileCesql } from '../../src/core/cesql/index.js';
import { MAX_DEPTH, parse } from '../../src/core/cesql/parser.js';

/** The AST fully parenthesized, to read precedence and associativity off. */
function shape(expr: Expr): string {
  switch (expr.kind) {
    case 'literal':
      if (typeof expr.value === 'string') return `'${expr.value}'`;
      return typeof expr.value === 'boolean'
        ? String(expr.value).toUpperCase()
        : String(expr.value);
    case 'attribute':
      return expr.name;
    case 'exists':
      return `(EXISTS ${expr.name})`;
    case 'not':
      return `(NOT ${shape(expr.operand)})`;
    case 'negate':
      return `(-${shape(expr.operand)})`;
    case 'binary':
      return `(${shape(expr.left)} ${expr.operator} ${shape(expr.right)})`;
    case 'like':
      return `(${shape(expr.operand)} ${expr.negated ? 'NOT LIKE' : 'LIKE'} '${expr.pattern}')`;
    case 'in':
      return `(${shape(expr.operand)} ${expr.negated ? 'NOT IN' : 'IN'} (${expr.set.map(shape).join(', ')}))`;
    case 'call':
      return `${expr.name}(${expr.args.map(shape).join(', ')})`;
  }
}

function parseError(expression: string): CesqlParseError {
  try {
    compileCesql(expression);
  } catch (error) {
    if (error instanceof CesqlParseError) return error;
    throw error;
  }
  throw new Error(`${JSON.stringify(expression)} compiled`);
}

const evaluate = (expression: string) =>
  compileCesql(expression).evaluate({
    attributes: { specversion: '1.0', id: 'e-1', source: '/s', type: 't' },
  });

describe('parse errors: position and reason', () => {
  it.each<[string, number, string]>([
    ['a = ', 4, 'expected an expression but found end of expression'],
    ['(a', 2, "expected ')' but found end of expression"],
    ['a LIKE 123', 7, 'expected a string literal pattern after LIKE but found integer 123'],
    ['a LIKE b', 7, "expected a string literal pattern after LIKE but found identifier 'b'"],
    ["a LIKE ('x')", 7, "expected a string literal pattern after LIKE but found '('"],
    ['1 IN ()', 6, "expected at least one value in the IN set but found ')'"],
    ['1 IN 1', 5, "expected '(' after IN but found integer 1"],
    ['1 IN (1,)', 8, "expected an expression but found ')'"],
    ['1 IN (1 2)', 8, "expected ',' or ')' in the IN set but found integer 2"],
    ["'abc", 0, "unterminated string literal (missing closing ')"],
    ['a = "abc\\"', 4, 'unterminated string literal (missing closing ")'],
    ['a # b', 2, 'unexpected character "#"'],
    ['a ! b', 2, `unexpected character "!" (did you mean '!='?)`],
    ['a = 1 ; b', 6, 'unexpected character ";"'],
    ['a b', 2, "expected an operator or end of expression but found identifier 'b'"],
    ['TRUE FALSE', 5, 'expected an operator or end of expression but found keyword FALSE'],
    ['(a))', 3, "expected an operator or end of expression but found ')'"],
    ['ABC(', 4, 'expected an expression but found end of expression'],
    ["LENGTH('a',)", 11, "expected an expression but found ')'"],
    ["LENGTH('a' 'b')", 11, "expected ',' or ')' in the argument list but found string \"b\""],
    ['', 0, 'expected an expression but found end of expression'],
    ['   ', 3, 'expected an expression but found end of expression'],
    ['a NOT b', 6, "expected LIKE or IN after NOT but found identifier 'b'"],
    ['EXISTS 1', 7, 'expected an attribute name after EXISTS but found integer 1'],
    ['EXISTS (a)', 7, "expected an attribute name after EXISTS but found '('"],
    ['+ 1', 0, "expected an expression but found '+'"],
    ['* 1', 0, "expected an expression but found '*'"],
    [
      '2147483648',
      0,
      'integer literal 2147483648 is outside the 32-bit range -2147483648..2147483647',
    ],
    [
      '1 + -2147483649',
      4,
      'integer literal -2147483649 is outside the 32-bit range -2147483648..2147483647',
    ],
    [
      '- 2147483648',
      2,
      'integer literal 2147483648 is outside the 32-bit range -2147483648..2147483647',
    ],
    ['abc1(2)', 0, "'abc1' is not a valid function name (letters and '_' only)"],
    [
      'my_attr = 1',
      0,
      "'my_attr' is not an attribute name (letters and digits only) and no '(' follows for a call of MY_ATTR",
    ],
    [
      'a_1 = 1',
      0,
      "'a_1' is neither an attribute name (letters and digits) nor a function name (letters and '_')",
    ],
    ['AND', 0, 'expected an expression but found keyword AND'],
  ])('%j fails at %i: %s', (expression, position, reason) => {
    const error = parseError(expression);
    expect(error).toBeInstanceOf(Error);
    expect(error.kind).toBe('parse');
    expect(error.name).toBe('CesqlParseError');
    expect({ position: error.position, reason: error.reason }).toEqual({ position, reason });
    expect(error.message).toBe(`at position ${position}: ${reason}`);
  });

  it('reads as position plus reason, ready for a problem detail', () => {
    expect(parseError("type = 'a' AND (source").message).toBe(
      "at position 22: expected ')' but found end of expression",
    );
  });

  it('limits nesting depth instead of overflowing the stack', () => {
    const deepParens = `${'('.repeat(MAX_DEPTH + 1)}a${')'.repeat(MAX_DEPTH + 1)}`;
    expect(parseError(deepParens).reason).toMatch(/nested more than 1000 levels/);
    expect(parseError(`${'NOT '.repeat(MAX_DEPTH + 5)}TRUE`).reason).toMatch(/nested more/);
    const longChain = Array.from({ length: 5000 }, () => 'TRUE').join(' AND ');
    expect(parseError(longChain).reason).toMatch(/nested more/);

    // Just inside the limit: compiles and evaluates.
    const deepNot = `${'NOT '.repeat(MAX_DEPTH - 1)}TRUE`;
    expect(evaluate(deepNot)).toEqual({ value: (MAX_DEPTH - 1) % 2 === 0, errors: [] });
    const chain = Array.from({ length: MAX_DEPTH }, () => 'id').join(' OR ');
    expect(() => compileCesql(chain)).not.toThrow();
  });
});

describe('precedence and associativity (spec 3.6)', () => {
  it.each<[string, string]>([
    ['1 + 2 * 3', '(1 + (2 * 3))'],
    ['1 * 2 + 3', '((1 * 2) + 3)'],
    ['4 - 1 - 1', '((4 - 1) - 1)'],
    ['8 / 2 / 2', '((8 / 2) / 2)'],
    ['8 % 3 * 2', '((8 % 3) * 2)'],
    ['NOT a = b', '((NOT a) = b)'],
    ["NOT a LIKE 'x%'", "((NOT a) LIKE 'x%')"],
    ['NOT EXISTS a', '(NOT (EXISTS a))'],
    ['NOT NOT a', '(NOT (NOT a))'],
    ['-1 - -1', '(-1 - -1)'],
    ['- 1 - - 1', '((-1) - (-1))'],
    ['--10', '(--10)'],
    ['-a * b', '((-a) * b)'],
    ['-(a + b)', '(-(a + b))'],
    ['4-1', '(4 - 1)'],
    ['4 -1', '(4 - 1)'],
    ['4 - -2147483648', '(4 - -2147483648)'],
    ['+5 + +5', '(5 + 5)'],
    ['a AND b OR c XOR d', '(((a AND b) OR c) XOR d)'],
    ['a OR b AND c', '((a OR b) AND c)'],
    ['a XOR b AND c OR d', '(((a XOR b) AND c) OR d)'],
    ['a = 1 AND b < 2', '((a = 1) AND (b < 2))'],
    ['a + 1 = b * 2', '((a + 1) = (b * 2))'],
    ['1 < 2 = TRUE', '((1 < 2) = TRUE)'],
    ['1 + 2 IN (3)', '(1 + (2 IN (3)))'],
    ["a LIKE 'x' IN (TRUE)", "((a LIKE 'x') IN (TRUE))"],
    ["a IN (1) LIKE 't%'", "((a IN (1)) LIKE 't%')"],
    ["a NOT LIKE 'x' AND b NOT IN (1, 2)", "((a NOT LIKE 'x') AND (b NOT IN (1, 2)))"],
    ["EXISTS a AND a LIKE '%x'", "((EXISTS a) AND (a LIKE '%x'))"],
    ["LENGTH('ab') * 2", "(LENGTH('ab') * 2)"],
    ["concat_ws(',', a, LOWER(b))", "CONCAT_WS(',', a, LOWER(b))"],
    ['(a OR b) AND c', '((a OR b) AND c)'],
    ['a <> b != c', '((a <> b) != c)'],
  ])('%s parses as %s', (expression, expected) => {
    expect(shape(parse(expression))).toBe(expected);
  });

  it.each<[string, boolean | number]>([
    ['1 + 2 * 3', 7],
    ['4 * 2 + 4 / 2', 10],
    ['-1 - -1', 0],
    ['4-1', 3],
    ['10 - 2 - 3', 5],
    ['NOT TRUE = FALSE', true],
    ['FALSE AND TRUE OR TRUE', true], // left to right; sdk-go's right grouping gives false
    ['TRUE OR TRUE AND FALSE', false],
    ['TRUE XOR TRUE OR TRUE', true],
    ['1 + 2 IN (3)', 1], // 1 + (2 IN (3)) = 1 + FALSE
    ['2 * 3 IN (6)', 0],
  ])('%s evaluates to %j', (expression, value) => {
    expect(evaluate(expression)).toEqual({ value, errors: [] });
  });
});

describe('lexical rules', () => {
  it.each<[string, string | number | boolean]>([
    ["'it''s'", "it's"],
    ['"say ""hi"""', 'say "hi"'],
    ["'a\\'b'", "a'b"],
    ['"a\\"b"', 'a"b'],
    ["'a\\\"b'", 'a\\"b'],
    ["'a\\b'", 'a\\b'],
    ["'a\\\\'", 'a\\\\'],
    ["'line\nbreak'", 'line\nbreak'],
    ["''", ''],
    ['"é😀"', 'é😀'],
    ['007', 7],
    ['-0', 0],
    ['-2147483648', -2147483648],
    ['+2147483647', 2147483647],
    ['tRuE', true],
    ['\tTRUE\r\n', true],
  ])('%j is %j', (expression, value) => {
    const result = evaluate(expression);
    expect(result.errors).toEqual([]);
    expect(Object.is(result.value, value)).toBe(true);
  });

  it('keywords, attribute names and function names are case-insensitive', () => {
    expect(shape(parse("Type = 'x' aNd NoT eXiStS SUBJECT Or LeNgTh(ID) In (1)"))).toBe(
      "(((type = 'x') AND (NOT (EXISTS subject))) OR (LENGTH(id) IN (1)))",
    );
  });

  it('keeps the pattern of LIKE as written, and compiles it once at parse time', () => {
    const expr = parse("a LIKE 'x\\%y_%'");
    expect(expr.kind === 'like' && expr.pattern).toBe('x\\%y_%');
    expect(expr.kind === 'like' && typeof expr.matcher).toBe('function');
  });
});
