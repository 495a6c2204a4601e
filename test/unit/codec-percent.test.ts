import { describe, expect, it } from 'vitest';
import {
  decodeHeaderValue,
  percentEncodeHeaderValue,
  tryDecodeHeaderValue,
} from '../../src/core/codec/index.js';
import { catchError } from './fixtures/codec/helpers.js';

describe('percentEncodeHeaderValue', () => {
  it.each([
    ['spec example', 'Euro € 😀', 'Euro%20%E2%82%AC%20%F0%9F%98%80'],
    ['plain ASCII is unchanged', 'com.example.someevent', 'com.example.someevent'],
    ['URI characters are unchanged', 'https://a.b/c?d=e&f=g#h', 'https://a.b/c?d=e&f=g#h'],
    ['space', 'a b', 'a%20b'],
    ['double quote', 'say "hi"', 'say%20%22hi%22'],
    ['percent', '100%', '100%25'],
    ['an already encoded-looking value is encoded again', '%20', '%2520'],
    ['tab and newline', 'a\tb\nc', 'a%09b%0Ac'],
    ['DEL', 'x\u007f', 'x%7F'],
    ['C1 control', '\u0085', '%C2%85'],
    ['latin-1 letter', 'café', 'caf%C3%A9'],
    ['astral plane (one code point, four bytes)', '😀', '%F0%9F%98%80'],
    ['backslash, tilde, braces stay', '\\~{}', '\\~{}'],
    ['empty', '', ''],
  ])('%s', (_name, input, expected) => {
    expect(percentEncodeHeaderValue(input)).toBe(expected);
  });

  it('uses upper-case hex and only printable ASCII', () => {
    const all = Array.from({ length: 0x250 }, (_, i) => String.fromCharCode(i)).join('');
    const encoded = percentEncodeHeaderValue(all);
    expect(encoded).toMatch(/^[\x21-\x7e]*$/);
    expect(encoded).not.toMatch(/%[0-9A-F]?[a-f]/);
    expect(encoded).not.toMatch(/[ "]/);
  });

  it('encodes every character outside U+0021..U+007E, plus space, " and %', () => {
    for (let code = 0; code < 0x100; code++) {
      const char = String.fromCharCode(code);
      const mustEncode = code < 0x21 || code > 0x7e || char === '"' || char === '%';
      expect(percentEncodeHeaderValue(char) !== char, `U+${code.toString(16)}`).toBe(mustEncode);
    }
  });
});

describe('decodeHeaderValue', () => {
  it.each([
    ['spec example', 'Euro%20%E2%82%AC%20%F0%9F%98%80', 'Euro € 😀'],
    ['lower-case hex', 'Euro%20%e2%82%ac%20%f0%9f%98%80', 'Euro € 😀'],
    ['needlessly encoded ASCII', '%41%42%43', 'ABC'],
    ['exactly one round of decoding', '%2520', '%20'],
    ['plain value', 'com.example.someevent', 'com.example.someevent'],
    ['quoted-string', '"hello world"', 'hello world'],
    ['quoted-string with backslash escapes', '"say \\"hi\\" \\\\o/"', 'say "hi" \\o/'],
    ['quoted-string, then percent-decoding', '"a%20b"', 'a b'],
    ['empty quoted-string', '""', ''],
    ['surrounding whitespace is not part of the value', '  abc\t', 'abc'],
    ['lone % at the end is kept (lenient policy)', '100%', '100%'],
    ['% followed by non-hex is kept', '50%off', '50%off'],
    ['% followed by one hex digit is kept', 'a%4', 'a%4'],
    ['% followed by one hex digit then non-hex is kept', '%4g', '%4g'],
    ['value merely starting with a quote is kept', '"abc', '"abc'],
    ['unescaped inner quote: not a quoted-string, kept', '"a"b"', '"a"b"'],
    ['escaped closing quote: not closed, kept', '"abc\\"', '"abc\\"'],
    ['raw UTF-8 octets as Node presents them (latin1)', 'caf\u00c3\u00a9', 'café'],
    ['a string built with characters above U+00FF', 'Euro € 😀', 'Euro € 😀'],
  ])('%s', (_name, raw, expected) => {
    expect(decodeHeaderValue(raw)).toBe(expected);
  });

  it.each([
    ['overlong encoding of space', '%C0%A0'],
    ['lone continuation byte', '%80'],
    ['0xFF', '%FF'],
    ['truncated sequence', '%E2%82'],
    ['encoded surrogate', '%ED%A0%80'],
    ['code point above U+10FFFF', '%F4%90%80%80'],
    ['invalid inside a quoted-string', '"a%C0%A0"'],
    ['raw invalid octet', 'caf\u00e9'],
  ])('rejects invalid UTF-8: %s', (_name, raw) => {
    const error = catchError(() => decodeHeaderValue(raw));
    expect(error.status).toBe(400);
    expect(error.message).toContain('UTF-8');
    const result = tryDecodeHeaderValue(raw);
    expect(result.ok).toBe(false);
  });

  it('round-trips every code point class through encode then decode', () => {
    const samples = [
      'Euro € 😀',
      ' leading and trailing ',
      '"quoted"',
      '100% sure',
      '%41 is not A',
      'tab\there',
      'ключ',
      '日本語',
      '\u0000\u001f\u007f\u0085',
      'a\\b',
    ];
    for (const sample of samples) {
      expect(decodeHeaderValue(percentEncodeHeaderValue(sample))).toBe(sample);
    }
  });
});
