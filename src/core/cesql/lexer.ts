/**
 * The CESQL lexer (spec 2.x; token shapes as in cesql/CESQLLexer.g4, written by hand).
 *
 * - Whitespace is space, tab, CR and LF (the grammar's `SPACE`); anything else unknown is an error.
 * - A word is a run of `[A-Za-z0-9_]`. All digits: an integer literal (its sign, if any, is an
 *   operator token the parser folds in). A keyword (any case): `AND OR XOR NOT LIKE EXISTS IN TRUE
 *   FALSE`. Letters and digits: an identifier, lower-cased (identifiers are case-insensitive).
 *   Letters and `_` starting with a letter: a function name, upper-cased. Any other mix is an error.
 * - Strings are `'...'` or `"..."`. Inside, `\` plus the delimiter and a doubled delimiter both stand
 *   for the delimiter; a `\` before any other character is kept as is, together with that character
 *   (so `'a\c'` is `a\c` and `\%` reaches LIKE intact). Strings may span lines.
 */

import { CesqlParseError } from './types.js';

export type TokenType =
  | 'integer'
  | 'string'
  | 'identifier'
  | 'function'
  | 'keyword'
  | 'operator'
  | '('
  | ')'
  | ','
  | 'end';

export type Keyword = 'AND' | 'OR' | 'XOR' | 'NOT' | 'LIKE' | 'EXISTS' | 'IN' | 'TRUE' | 'FALSE';

const KEYWORDS: ReadonlySet<string> = new Set<Keyword>([
  'AND',
  'OR',
  'XOR',
  'NOT',
  'LIKE',
  'EXISTS',
  'IN',
  'TRUE',
  'FALSE',
]);

export interface Token {
  readonly type: TokenType;
  /**
   * integer: the digits; string: the unescaped content; identifier: lower-cased name; function:
   * upper-cased name; keyword: upper-cased keyword; operator and punctuation: the symbol.
   */
  readonly value: string;
  /** 0-based offset of the first character, and of the character after the last one. */
  readonly start: number;
  readonly end: number;
}

const TWO_CHAR_OPERATORS: ReadonlySet<string> = new Set(['!=', '<>', '<=', '>=']);
const ONE_CHAR_OPERATORS: ReadonlySet<string> = new Set(['=', '<', '>', '+', '-', '*', '/', '%']);

function isWordChar(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) || // 0-9
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x61 && c <= 0x7a) || // a-z
    c === 0x5f // _
  );
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

const DIGITS = /^[0-9]+$/;
const ALPHANUMERIC = /^[A-Za-z0-9]+$/;
const FUNCTION_NAME = /^[A-Za-z][A-Za-z_]*$/;

/** Splits an expression into tokens, ending with one `end` token. Throws CesqlParseError. */
export function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  const n = input.length;
  let i = 0;
  while (i < n) {
    const c = input.charCodeAt(i);
    if (isSpace(c)) {
      i++;
      continue;
    }
    const start = i;
    if (isWordChar(c)) {
      while (i < n && isWordChar(input.charCodeAt(i))) i++;
      tokens.push(word(input.slice(start, i), start, i));
      continue;
    }
    if (c === 0x27 || c === 0x22) {
      // ' or "
      i = stringLiteral(input, start, tokens);
      continue;
    }
    const ch = input[i]!;
    if (ch === '(' || ch === ')' || ch === ',') {
      tokens.push({ type: ch, value: ch, start, end: i + 1 });
      i++;
      continue;
    }
    const two = input.slice(i, i + 2);
    if (TWO_CHAR_OPERATORS.has(two)) {
      tokens.push({ type: 'operator', value: two, start, end: i + 2 });
      i += 2;
      continue;
    }
    if (ONE_CHAR_OPERATORS.has(ch)) {
      tokens.push({ type: 'operator', value: ch, start, end: i + 1 });
      i++;
      continue;
    }
    const cp = String.fromCodePoint(input.codePointAt(i)!);
    const hint = ch === '!' ? " (did you mean '!='?)" : '';
    throw new CesqlParseError(start, `unexpected character ${JSON.stringify(cp)}${hint}`);
  }
  tokens.push({ type: 'end', value: '', start: n, end: n });
  return tokens;
}

function word(text: string, start: number, end: number): Token {
  if (DIGITS.test(text)) return { type: 'integer', value: text, start, end };
  const upper = text.toUpperCase();
  if (KEYWORDS.has(upper)) return { type: 'keyword', value: upper, start, end };
  if (ALPHANUMERIC.test(text)) return { type: 'identifier', value: text.toLowerCase(), start, end };
  if (FUNCTION_NAME.test(text)) return { type: 'function', value: upper, start, end };
  throw new CesqlParseError(
    start,
    `'${text}' is neither an attribute name (letters and digits) nor a function name (letters and '_')`,
  );
}

/** Reads the string literal starting at `start`, pushes its token and returns the offset after it. */
function stringLiteral(input: string, start: number, tokens: Token[]): number {
  const quote = input[start]!;
  const n = input.length;
  let value = '';
  let chunk = start + 1;
  let i = start + 1;
  while (i < n) {
    const ch = input[i]!;
    if (ch === '\\' && i + 1 < n) {
      if (input[i + 1] === quote) {
        value += input.slice(chunk, i) + quote;
        i += 2;
        chunk = i;
      } else {
        i += 2; // kept verbatim, backslash included
      }
      continue;
    }
    if (ch === quote) {
      if (input[i + 1] === quote) {
        value += input.slice(chunk, i) + quote;
        i += 2;
        chunk = i;
        continue;
      }
      value += input.slice(chunk, i);
      tokens.push({ type: 'string', value, start, end: i + 1 });
      return i + 1;
    }
    i++;
  }
  throw new CesqlParseError(start, `unterminated string literal (missing closing ${quote})`);
}

/** How a token reads in an error message. */
export function describeToken(token: Token): string {
  switch (token.type) {
    case 'end':
      return 'end of expression';
    case 'integer':
      return `integer ${token.value}`;
    case 'string': {
      const text = token.value.length > 30 ? `${token.value.slice(0, 30)}...` : token.value;
      return `string ${JSON.stringify(text)}`;
    }
    case 'identifier':
      return `identifier '${token.value}'`;
    case 'function':
      return `function name '${token.value}'`;
    case 'keyword':
      return `keyword ${token.value}`;
    default:
      return `'${token.value}'`;
  }
}
