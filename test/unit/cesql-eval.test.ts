import { describe, expect, it } from 'vitest';
import {
  cesqlMatches,
  compileCesql,
  type CesqlErrorKind,
  type CesqlValue,
} from '../../src/core/cesql/index.js';
import type { AttributeValue, CloudEvent } from '../../src/core/event.js';

function event(extra: Record<string, AttributeValue> = {}): CloudEvent {
  return {
    attributes: {
      specversion: '1.0',
      id: 'e-1',
      source: 'https://example.com/shop',
      type: 'com.example.order.created',
      ...extra,
    },
  };
}

/** [value, error kinds] of one evaluation. */
function run(expression: string, e: CloudEvent = event()): [CesqlValue, CesqlErrorKind[]] {
  const result = compileCesql(expression).evaluate(e);
  return [result.value, result.errors.map((error) => error.kind)];
}

/** Checks value (type-exact, -0 is not 0) and error kinds. */
function check(
  expression: string,
  value: CesqlValue,
  errors: CesqlErrorKind[] = [],
  e: CloudEvent = event(),
): void {
  const [actual, kinds] = run(expression, e);
  expect({ value: actual, errors: kinds }).toEqual({ value, errors });
  expect(Object.is(actual, value), `${String(actual)} is exactly ${String(value)}`).toBe(true);
}

describe('short-circuit of AND and OR (spec 3.4.2)', () => {
  it.each<[string, boolean, CesqlErrorKind[]]>([
    ['FALSE AND (1/0 = 0)', false, []],
    ['FALSE AND missing', false, []],
    ['TRUE OR (1/0 = 0)', true, []],
    ['TRUE OR missing', true, []],
    ["'false' AND missing", false, []],
    ['0 AND missing', false, []],
    ['TRUE AND (1/0 = 0)', false, ['math']],
    ['FALSE OR (1 % 0 = 0)', false, ['math']],
    ['FALSE OR missing', false, ['missingAttribute']],
    ['FALSE XOR (1/0 = 0)', false, ['math']], // XOR needs both sides
    ["'maybe' AND TRUE", false, ['cast']],
    ['missing AND FALSE', false, ['missingAttribute']],
  ])('%s -> %j %j', (expression, value, errors) => check(expression, value, errors));
});

describe('integer arithmetic: int32, wrapping on overflow like sdk-go', () => {
  it.each<[string, number, CesqlErrorKind[]]>([
    ['2147483647 + 1', -2147483648, []],
    ['-2147483648 - 1', 2147483647, []],
    ['65536 * 65536', 0, []],
    ['2147483647 * 2', -2, []],
    ['-2147483648 / -1', -2147483648, []],
    ['-2147483648 % -1', 0, []],
    ['-(-2147483648)', -2147483648, []],
    ['0 * -1', 0, []],
    ['-0', 0, []],
    ['-7 / 2', -3, []],
    ['7 / -2', -3, []],
    ['-7 % 2', -1, []],
    ['7 % -2', 1, []],
    ['0 / 5', 0, []],
    ['-0 % 5', 0, []],
    ['5 / 0', 0, ['math']],
    ['5 % 0', 0, ['math']],
    ['ABS(-2147483648)', 2147483647, ['math']],
    ['ABS(-2147483647)', 2147483647, []],
    ['ABS(-2147483648) + 1', 0, ['math']], // fail-fast: the enclosing + returns its zero
    ['ABS(2147483647 + 1)', 2147483647, ['math']],
    ["'2147483647' + 1", -2147483648, []],
    ["'2147483648' + 1", 0, ['cast']],
    ["INT('-0')", 0, []],
    ["INT('+7')", 7, []],
    ["INT(' 7')", 0, ['cast']],
    ["INT('7.0')", 0, ['cast']],
    ["INT('')", 0, ['cast']],
    ['-missing', 0, ['missingAttribute']],
    ['missing * 5', 0, ['missingAttribute']],
    ['1 / missing', 0, ['missingAttribute']],
  ])('%s -> %j %j', (expression, value, errors) => check(expression, value, errors));
});

describe('comparisons and implicit casts (spec 3.7)', () => {
  it.each<[string, boolean, CesqlErrorKind[]]>([
    ['TRUE = 1', true, []], // right is Integer: TRUE -> 1
    ['1 = TRUE', true, []], // right is Boolean: 1 -> TRUE
    ['2 = TRUE', true, []],
    ['0 = FALSE', true, []],
    ["'abc' = 1", false, ['cast']], // 'abc' cannot become an Integer
    ["1 = 'abc'", false, []], // '1' = 'abc'
    ["TRUE = 'true'", true, []],
    ["TRUE = 'TRUE'", false, []],
    ["'TRUE' = TRUE", true, []], // String -> Boolean ignores case
    ["'yes' = TRUE", false, ['cast']],
    ["'10' < 9", false, []],
    ['TRUE < 2', true, []],
    ["'a' < 1", false, ['cast']],
    ['1 < 2 < 3', true, []],
    ["'abc' <> 'ABC'", true, []],
    ['missing = missing', false, ['missingAttribute']],
  ])('%s -> %j %j', (expression, value, errors) => check(expression, value, errors));
});

describe('a string attribute holding a number, compared with = to an integer', () => {
  it('casts the attribute to the type of the right operand', () => {
    check('count = 10', true, [], event({ count: '10' }));
    check('count = 10', false, [], event({ count: '11' }));
    check('count = 10', true, [], event({ count: '+10' }));
    check('count = 10', true, [], event({ count: '010' }));
    check("count = '10'", false, [], event({ count: '010' }));
    check('10 = count', false, [], event({ count: '010' })); // '10' = '010'
    check('count > 9 AND count < 11', true, [], event({ count: '10' }));
    check('count + 1', 11, [], event({ count: '10' }));
  });

  it('a value that is not an integer is a CastError and no match', () => {
    check('count = 10', false, ['cast'], event({ count: 'ten' }));
    check('count = 10', false, ['cast'], event({ count: '10.0' }));
    expect(cesqlMatches(compileCesql('count = 10'), event({ count: 'ten' }))).toBe(false);
    expect(cesqlMatches(compileCesql('count = 10'), event({ count: '10' }))).toBe(true);
  });
});

describe('typed extensions (structured JSON keeps their type)', () => {
  const typed = event({ mybool: true, myint: 42, myneg: -3, myfloat: 1.5, mybig: 2 ** 40 });

  it.each<[string, CesqlValue]>([
    ['mybool', true],
    ['myint', 42],
    ['myneg', -3],
    ['myint + 1', 43],
    ['myint = 42', true],
    ["myint = '42'", true], // right is String: 42 -> '42'
    ['mybool AND TRUE', true],
    ["mybool = 'TRUE'", false], // right is String: TRUE -> 'true'
    ["mybool = 'true'", true],
    ['NOT mybool', false],
    ['LENGTH(myint)', 2],
    ["myint LIKE '4_'", true],
    ["mybool LIKE 't%'", true],
    ['myint IN (41, 42)', true],
    ["myint IN ('42')", true],
    // Not a CESQL primitive: represented as String (spec 3.2).
    ['myfloat', '1.5'],
    ["myfloat = '1.5'", true],
    ['mybig', '1099511627776'],
  ])('%s -> %j', (expression, value) => check(expression, value, [], typed));

  it('a non-int32 number does not cast to Integer', () => {
    check('myfloat + 1', 0, ['cast'], typed);
  });
});

describe('attribute access', () => {
  it('attribute names are case-insensitive', () => {
    check("TYPE = 'com.example.order.created'", true);
    check("Type LIKE 'com.%'", true);
    check('EXISTS ID AND EXISTS SpecVersion', true);
    check('SOURCE', 'https://example.com/shop');
  });

  it('reads own properties only: prototype names are missing attributes', () => {
    check('EXISTS constructor', false);
    check('EXISTS tostring', false);
    check('constructor', false, ['missingAttribute']);
    check('constructor', 'yes', [], event({ constructor: 'yes' }));
  });

  it('never sees the data', () => {
    const withData: CloudEvent = { ...event(), data: { kind: 'json', text: '{"a":1}' } };
    check('EXISTS data', false, [], withData);
  });

  it('a missing attribute is the zero value of the enclosing operator, with one error', () => {
    check('missing', false, ['missingAttribute']);
    check('NOT missing', false, ['missingAttribute']);
    check("missing NOT LIKE 'x'", false, ['missingAttribute']);
    check('missing NOT IN (1)', false, ['missingAttribute']);
    check('LENGTH(missing)', 0, ['missingAttribute']);
    check("CONCAT('a', missing)", '', ['missingAttribute']);
    check('TRUE AND (missing = "")', false, ['missingAttribute']);
    const result = compileCesql('missing + othermissing').evaluate(event());
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]!.message).toContain("'missing'");
  });
});

describe('LIKE', () => {
  it.each<[string, string, boolean]>([
    // Regular expression metacharacters are literal.
    ['a.c', 'a.c', true],
    ['abc', 'a.c', false],
    ['a*', 'a*', true],
    ['aaa', 'a*', false],
    ['a+b', 'a+b', true],
    ['aab', 'a+b', false],
    ['(x)', '(x)', true],
    ['x', '(x)', false],
    ['[ab]', '[ab]', true],
    ['a', '[ab]', false],
    ['^a$', '^a$', true],
    ['a', '^a$', false],
    ['a|b', 'a|b', true],
    ['a', 'a|b', false],
    ['a{2}', 'a{2}', true],
    ['aa', 'a{2}', false],
    ['a?', 'a?', true],
    ['a', 'a?', false],
    ['\\d', '\\d', true],
    ['1', '\\d', false],
    ['a/b', 'a/b', true],
    ['a-b', 'a-b', true],
    ['$1.50', '$_.%', true],
    ['x.y.z', '%.%.%', true],
    ['x.yz', '%.%.%', false],
    // Wildcards and escapes.
    ['100%', '100\\%', true],
    ['1000', '100\\%', false],
    ['a_b', 'a\\_b', true],
    ['axb', 'a\\_b', false],
    ['a\\b', 'a\\b', true], // a lone backslash is literal
    ['', '%', true],
    ['', '_', false],
    ['', '', true],
    ['x', '', false],
    ['abc', '%%%', true],
    ['abc', 'a%%c', true],
    ['abc', '___', true],
    ['abcd', '___', false],
    ['abcabc', '%abc', true],
    ['abcab', 'ab%ab', true],
    ['ab', 'ab%ab', false],
    ['aXbYc', 'a_b_c', true],
    ['axbyz', 'a%b%c', false],
    ['mississippi', 'm%iss%ppi', true],
    ['mississippi', 'm%iss%iss%ppi', true],
    ['mississippi', 'm%iss%iss%iss%', false],
    // Case-sensitive; `_` and `%` match any code point, newlines and emoji included.
    ['ABC', 'abc', false],
    ['😀', '_', true],
    ['a😀b', 'a_b', true],
    ['a😀b', '%😀%', true],
    ['a\nb', 'a_b', true],
    ['a\nb', 'a%', true],
  ])('%j LIKE %j -> %j', (value, pattern, matches) => {
    const expression = `v LIKE '${pattern.replaceAll("'", "''")}'`;
    check(expression, matches, [], event({ v: value }));
    check(expression.replace(' LIKE ', ' NOT LIKE '), !matches, [], event({ v: value }));
  });

  it('stays linear on patterns that make backtracking regexes explode', () => {
    const program = compileCesql("v LIKE '%a%a%a%a%a%a%a%a%a%b'");
    const value = 'a'.repeat(20_000);
    const started = performance.now();
    expect(program.evaluate(event({ v: value })).value).toBe(false);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe('IN with mixed types and casts', () => {
  it.each<[string, boolean, CesqlErrorKind[]]>([
    ["'1' IN (1, 2)", true, []],
    ["1 IN ('1', '2')", true, []],
    ["1 IN ('01')", true, []], // '01' -> 1
    ["'1' IN ('01')", false, []],
    ["1 IN ('1', 'x')", true, []], // stops at the first match
    ["1 IN ('x', 1)", false, ['cast']], // 'x' cannot become an Integer
    ["5 IN (5, 'x')", true, []],
    ["5 IN ('x', 5)", false, ['cast']],
    ['TRUE IN (1)', true, []],
    ['FALSE IN (0)', true, []],
    ["TRUE IN ('yes')", false, ['cast']],
    ["'true' IN (TRUE)", true, []],
    ["'TRUE' IN (TRUE)", false, []],
    ['2 IN (1 + 1)', true, []],
    ['2 IN (1 / 0, 2)', false, ['math']],
    ['2 IN (2, 1 / 0)', true, []],
    ['1 NOT IN (2, 3)', true, []],
    ['1 NOT IN (1)', false, []],
    ["1 NOT IN ('x')", false, ['cast']],
    ['missing IN (1)', false, ['missingAttribute']],
    ['1 IN (missing)', false, ['missingAttribute']],
    ['1 IN (1, missing)', true, []],
    ["id IN (source, 'e-1')", true, []],
    ['id IN (source, type)', false, []],
    ["myint IN ('x', 7)", false, ['cast']],
    ["myint IN (7, 'x')", true, []],
  ])('%s -> %j %j', (expression, value, errors) =>
    check(expression, value, errors, event({ myint: 7 })),
  );
});

describe('built-in functions', () => {
  it.each<[string, CesqlValue, CesqlErrorKind[]]>([
    ["length('😀')", 1, []],
    ["LENGTH('héllo')", 5, []],
    ['LENGTH(12345)', 5, []],
    ["LEFT('😀ab', 1)", '😀', []],
    ["RIGHT('ab😀', 2)", 'b😀', []],
    ["LEFT('abc', 0)", '', []],
    ["LEFT('abc', -1)", 'abc', ['functionEvaluation']],
    ["CONCAT(LEFT('abc', -1), 'x')", '', ['functionEvaluation']],
    ["RIGHT('abc', -1)", 'abc', ['functionEvaluation']],
    ["SUBSTRING('a😀b', 2, 1)", '😀', []],
    ["SUBSTRING('a😀b', -1)", 'b', []],
    ["SUBSTRING('abc', 3)", 'c', []],
    ["SUBSTRING('abc', 4)", '', ['functionEvaluation']],
    ["SUBSTRING('abc', -3)", 'abc', []],
    ["SUBSTRING('abc', 1, 0)", '', []],
    ["SUBSTRING('abc', 1, -1)", '', ['functionEvaluation']],
    ["SUBSTRING('abc', 0, 5)", '', []],
    ["SUBSTRING('', 1)", '', ['functionEvaluation']],
    ["SUBSTRING('abcdef', 2, 2147483647)", 'bcdef', []],
    ["TRIM('\u00a0 x \u3000\n')", 'x', []],
    ["TRIM('\u0085x\u2028')", 'x', []],
    ["TRIM('\ufeffx')", '\ufeffx', []], // U+FEFF is not White_Space
    ["TRIM('\u0001x')", '\u0001x', []], // nor are control characters
    ["UPPER('straße')", 'STRASSE', []],
    ["LOWER('ÀB')", 'àb', []],
    ["CONCAT(1, TRUE, 'x')", '1truex', []],
    ["CONCAT_WS('-', 1, 2, 'c')", '1-2-c', []],
    ['CONCAT_WS(1)', '', []],
    ['ABS(-5)', 5, []],
    ["ABS('x')", 0, ['cast']],
    ["BOOL('False')", false, []],
    ["BOOL('yes')", false, ['cast']],
    ["STRING(-12) = '-12'", true, []],
    ['INT(TRUE) + INT(FALSE)', 1, []],
    // No such function or arity: false + MissingFunctionError, at evaluation.
    ['FOO()', false, ['missingFunction']],
    ["LENGTH('a', 'b')", false, ['missingFunction']],
    ['LENGTH()', false, ['missingFunction']],
    ["SUBSTRING('a')", false, ['missingFunction']],
    ['CONCAT_WS()', false, ['missingFunction']],
    ['NOT FOO(1)', false, ['missingFunction']],
  ])('%s -> %j %j', (expression, value, errors) => check(expression, value, errors));

  it('says what is missing', () => {
    expect(compileCesql('foo(1)').evaluate(event()).errors[0]?.message).toBe(
      'unknown function FOO',
    );
    expect(compileCesql('left(1)').evaluate(event()).errors[0]?.message).toBe(
      'function LEFT does not take 1 argument',
    );
  });
});

describe('cesqlMatches (filter semantics)', () => {
  const matches = (expression: string, e: CloudEvent = event()) =>
    cesqlMatches(compileCesql(expression), e);

  it('is true only for a Boolean TRUE without errors', () => {
    expect(matches('TRUE')).toBe(true);
    expect(matches("type LIKE 'com.example.%' AND EXISTS source")).toBe(true);
    expect(matches('TRUE OR missing')).toBe(true); // short-circuited: no error
  });

  it('is false for a non-Boolean result, however truthy', () => {
    expect(matches('type')).toBe(false);
    expect(matches('1')).toBe(false);
    expect(matches("'true'")).toBe(false);
    expect(matches("'TRUE'")).toBe(false);
    expect(matches('mybool', event({ mybool: 'true' }))).toBe(false);
    expect(matches('mybool', event({ mybool: true }))).toBe(true);
  });

  it('is false on any error, whatever the value', () => {
    expect(matches("missing = 'x'")).toBe(false);
    expect(matches("missing NOT LIKE 'x'")).toBe(false);
    expect(matches('NOT (missing = 1)')).toBe(false);
    expect(matches('1 / 0 = 0')).toBe(false);
    expect(matches("BOOL('x') = FALSE")).toBe(false);
    expect(matches('FOO()')).toBe(false);
    // An error-carrying value that would be TRUE still fails the filter.
    expect(matches("LEFT('true', -1)")).toBe(false);
    expect(matches("BOOL(LEFT('true', -1))")).toBe(false);
  });
});

describe('compile once, evaluate many', () => {
  it('gives each event its own result and errors', () => {
    const program = compileCesql("INT(hop) < ttl AND type LIKE 'com.%' AND sequence = 5");
    const results = [
      event({ hop: '1', ttl: 5, sequence: '5' }),
      event({ hop: '9', ttl: 5, sequence: 5 }),
      event({ ttl: 5, sequence: '5' }),
      event({ hop: '1', ttl: 5, sequence: '5', type: 'org.other' }),
      event({ hop: 'x', ttl: 5, sequence: 5 }),
      event({ hop: '1', ttl: 5, sequence: '5' }),
    ].map((e) => program.evaluate(e));
    expect(results.map((r) => [r.value, r.errors.map((e) => e.kind)])).toEqual([
      [true, []],
      [false, []],
      [false, ['missingAttribute']],
      [false, []],
      [false, ['cast']],
      [true, []],
    ]);
    expect(program.expression).toBe("INT(hop) < ttl AND type LIKE 'com.%' AND sequence = 5");
  });

  it('raises a constant error on every evaluation, not only the first', () => {
    const program = compileCesql('1 / 0 = 0 OR 2 IN (1 / 0)');
    for (let i = 0; i < 3; i++) {
      expect(program.evaluate(event())).toEqual({
        value: false,
        errors: [{ kind: 'math', message: 'division by zero' }],
      });
    }
  });

  it('does not share mutable error lists between results', () => {
    const program = compileCesql('TRUE');
    const a = program.evaluate(event());
    expect(Object.isFrozen(a.errors)).toBe(true);
    expect(program.evaluate(event()).errors).toEqual([]);
  });

  it('does not mutate the event', () => {
    const e = event({ count: '10' });
    const before = JSON.stringify(e);
    compileCesql("count = 10 AND LOWER(type) LIKE '%' AND missing = 1").evaluate(e);
    expect(JSON.stringify(e)).toBe(before);
  });
});
