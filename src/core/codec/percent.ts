/**
 * Percent-encoding of CloudEvents attribute values in HTTP headers (HTTP protocol binding 3.1.3.2).
 *
 * Encoding: every character outside printable ASCII (U+0021..U+007E), plus space, `"` and `%`, is
 * written as the `%XY` escapes (upper-case hex) of its UTF-8 bytes. The result is pure ASCII.
 *
 * Decoding: an RFC 7230 quoted-string is unescaped first, then exactly one round of
 * percent-decoding runs; lower-case hex and needlessly encoded characters are accepted, and a
 * byte sequence that is not valid UTF-8 (overlong `%C0%A0`, a stray `%FF`, an encoded surrogate)
 * is rejected.
 */

import { TributaryError } from '../errors.js';

const HEX = '0123456789ABCDEF';
const utf8Encoder = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function mustEncode(code: number): boolean {
  return code < 0x21 || code > 0x7e || code === 0x22 || code === 0x25;
}

/** Percent-encodes an attribute's canonical string for a `ce-` header (upper-case hex, UTF-8). */
export function percentEncodeHeaderValue(value: string): string {
  let i = 0;
  // Fast path: most values (ids, types, URIs) need no escaping at all.
  while (i < value.length && !mustEncode(value.charCodeAt(i))) i++;
  if (i === value.length) return value;

  let out = value.slice(0, i);
  while (i < value.length) {
    const code = value.charCodeAt(i);
    if (!mustEncode(code)) {
      out += value[i];
      i++;
      continue;
    }
    // Take one whole code point (a surrogate pair counts as one character).
    const cp = value.codePointAt(i) ?? code;
    const width = cp > 0xffff ? 2 : 1;
    for (const byte of utf8Encoder.encode(value.slice(i, i + width))) {
      out += '%' + HEX[byte >> 4] + HEX[byte & 0x0f];
    }
    i += width;
  }
  return out;
}

export type HeaderDecodeResult =
  { readonly ok: true; readonly value: string } | { readonly ok: false; readonly message: string };

function isOws(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  return -1;
}

/**
 * Unescapes an RFC 7230 section 3.2.6 quoted-string (`"..."` with `\x` quoted-pairs). Returns
 * undefined when `raw` is not one well-formed quoted-string, in which case the caller keeps the
 * value as it is (a sender that does not encode may well send a value that merely starts with `"`).
 */
function unquote(raw: string): string | undefined {
  if (raw.length < 2 || raw.charCodeAt(0) !== 0x22 || raw.charCodeAt(raw.length - 1) !== 0x22) {
    return undefined;
  }
  let out = '';
  const end = raw.length - 1;
  for (let i = 1; i < end; i++) {
    const code = raw.charCodeAt(i);
    if (code === 0x5c) {
      if (i + 1 >= end) return undefined; // the closing quote is escaped: not closed
      i++;
      out += raw[i];
    } else if (code === 0x22) {
      return undefined; // an unescaped quote inside: not one quoted-string
    } else {
      out += raw[i];
    }
  }
  return out;
}

/**
 * Decodes a `ce-` header value without throwing.
 *
 * `raw` is the header value as Node presents it: every octet as one character (latin1). So
 * characters U+0080..U+00FF are taken as raw octets (a sender that does not percent-encode and
 * sends UTF-8 gets its text back), and characters above U+00FF (only possible when a caller built
 * the string itself) are taken as their UTF-8 bytes.
 *
 * Policy for malformed escapes: a `%` that is not followed by two hex digits is kept literally.
 * Several SDKs (sdk-go, sdk-java, the JS SDK; cloudevents/spec#1397) neither encode nor decode, and
 * a value such as `100%` or `50%off` from them is better kept than refused. A well-formed escape
 * that yields invalid UTF-8 is refused, as the binding requires.
 */
export function tryDecodeHeaderValue(raw: string): HeaderDecodeResult {
  // Optional whitespace around a field value is not part of it (RFC 7230 3.2).
  let start = 0;
  let stop = raw.length;
  while (start < stop && isOws(raw.charCodeAt(start))) start++;
  while (stop > start && isOws(raw.charCodeAt(stop - 1))) stop--;
  let value = start === 0 && stop === raw.length ? raw : raw.slice(start, stop);

  const unquoted = unquote(value);
  if (unquoted !== undefined) value = unquoted;

  // Fast path: nothing to decode and plain ASCII.
  let plain = true;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code === 0x25 || code > 0x7f) {
      plain = false;
      break;
    }
  }
  if (plain) return { ok: true, value };

  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code === 0x25 && i + 2 < value.length) {
      const hi = hexValue(value.charCodeAt(i + 1));
      const lo = hexValue(value.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) {
        bytes.push((hi << 4) | lo);
        i += 2;
        continue;
      }
      bytes.push(code);
    } else if (code <= 0xff) {
      bytes.push(code);
    } else {
      const cp = value.codePointAt(i) ?? code;
      const width = cp > 0xffff ? 2 : 1;
      for (const byte of utf8Encoder.encode(value.slice(i, i + width))) bytes.push(byte);
      i += width - 1;
    }
  }
  try {
    return { ok: true, value: strictUtf8.decode(Uint8Array.from(bytes)) };
  } catch {
    return { ok: false, message: 'the percent-decoded value is not valid UTF-8' };
  }
}

/**
 * Decodes a `ce-` header value: quoted-string unescape, then one round of percent-decoding.
 * Throws TributaryError INVALID_EVENT when the decoded bytes are not valid UTF-8.
 */
export function decodeHeaderValue(raw: string): string {
  const result = tryDecodeHeaderValue(raw);
  if (result.ok) return result.value;
  throw new TributaryError('INVALID_EVENT', `Invalid header value: ${result.message}`, {
    problems: [{ field: 'header', message: result.message }],
  });
}
