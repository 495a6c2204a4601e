/**
 * The CloudEvents JSON event format (json-format.md) and JSON batch format, lossless.
 *
 * `JSON.parse` validates the text and reads attribute values; a small scanner walks the same text to
 * find member order and the exact source span of each `data` member, which is kept byte for byte
 * (numbers beyond 2^53, key order and whitespace inside `data` survive). Attributes keep their JSON
 * types and member order.
 */

import { Buffer } from 'node:buffer';
import type { AttributeValue, CloudEvent, EventData } from '../event.js';
import type { FieldProblem } from '../errors.js';
import { isJsonMediaType, isTextMediaType } from './media.js';
import { invalidEvent } from './problems.js';
import { isValidAttributeName, validateEvent } from './validate.js';

// ---------------------------------------------------------------------------------------------
// Scanner. It only ever runs on text JSON.parse has accepted, so it can skip rather than check.

interface MemberSpan {
  readonly name: string;
  /** Offsets of the member's value in the source text: [start, end). */
  readonly start: number;
  readonly end: number;
}

function skipWhitespace(text: string, pos: number): number {
  while (pos < text.length) {
    const c = text.charCodeAt(pos);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    pos++;
  }
  return pos;
}

/** Returns the offset just after the string starting at `pos` (which holds its opening quote). */
function skipString(text: string, pos: number): number {
  const length = text.length;
  for (pos++; pos < length; pos++) {
    const c = text.charCodeAt(pos);
    if (c === 0x22) return pos + 1;
    if (c === 0x5c) pos++;
  }
  return pos;
}

/** Returns the offset just after the JSON value starting at `pos`. */
function skipValue(text: string, pos: number): number {
  const c = text.charCodeAt(pos);
  if (c === 0x22) return skipString(text, pos);
  if (c === 0x7b || c === 0x5b) {
    let depth = 0;
    while (pos < text.length) {
      const d = text.charCodeAt(pos);
      if (d === 0x22) {
        pos = skipString(text, pos);
        continue;
      }
      if (d === 0x7b || d === 0x5b) depth++;
      else if (d === 0x7d || d === 0x5d) {
        depth--;
        if (depth === 0) return pos + 1;
      }
      pos++;
    }
    return pos;
  }
  // number, true, false, null
  while (pos < text.length) {
    const d = text.charCodeAt(pos);
    if (
      d === 0x2c ||
      d === 0x7d ||
      d === 0x5d ||
      d === 0x20 ||
      d === 0x0a ||
      d === 0x0d ||
      d === 0x09
    ) {
      break;
    }
    pos++;
  }
  return pos;
}

function memberName(text: string, start: number, end: number): string {
  const raw = text.slice(start + 1, end - 1);
  return raw.includes('\\') ? (JSON.parse(text.slice(start, end)) as string) : raw;
}

/** Scans the object starting at `pos` (its `{`); returns its members in order and its end offset. */
function scanObject(text: string, pos: number): { members: MemberSpan[]; end: number } {
  const members: MemberSpan[] = [];
  pos = skipWhitespace(text, pos + 1);
  if (text.charCodeAt(pos) === 0x7d) return { members, end: pos + 1 };
  for (;;) {
    const nameStart = pos;
    const nameEnd = skipString(text, pos);
    pos = skipWhitespace(text, nameEnd);
    pos = skipWhitespace(text, pos + 1); // the colon
    const start = pos;
    const end = skipValue(text, pos);
    members.push({ name: memberName(text, nameStart, nameEnd), start, end });
    pos = skipWhitespace(text, end);
    if (text.charCodeAt(pos) === 0x2c) {
      pos = skipWhitespace(text, pos + 1);
      continue;
    }
    return { members, end: pos + 1 };
  }
}

/** Members of each element of the top-level array (undefined for elements that are not objects). */
function scanArrayOfObjects(text: string): (MemberSpan[] | undefined)[] {
  const out: (MemberSpan[] | undefined)[] = [];
  let pos = skipWhitespace(text, 0) + 1;
  pos = skipWhitespace(text, pos);
  if (text.charCodeAt(pos) === 0x5d) return out;
  for (;;) {
    if (text.charCodeAt(pos) === 0x7b) {
      const { members, end } = scanObject(text, pos);
      out.push(members);
      pos = end;
    } else {
      out.push(undefined);
      pos = skipValue(text, pos);
    }
    pos = skipWhitespace(text, pos);
    if (text.charCodeAt(pos) !== 0x2c) return out;
    pos = skipWhitespace(text, pos + 1);
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding

const BASE64 = /^[A-Za-z0-9+/]*$/;

/** Decodes standard base64 (RFC 4648 section 4; padding optional), or undefined if malformed. */
function decodeBase64(text: string): Uint8Array | undefined {
  let body = text;
  if (body.endsWith('==')) body = body.slice(0, -2);
  else if (body.endsWith('=')) body = body.slice(0, -1);
  if (!BASE64.test(body)) return undefined;
  const rest = body.length % 4;
  if (rest === 1) return undefined;
  if (body.length !== text.length && (text.length % 4 !== 0 || rest === 0)) return undefined;
  const buf = Buffer.from(body, 'base64');
  // Small buffers are slices of Node's shared pool: copy those, so the event owns its bytes.
  return buf.byteLength === buf.buffer.byteLength
    ? new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
    : new Uint8Array(buf);
}

function fieldName(path: string | undefined, name: string): string {
  return path === undefined || path === '' ? name : `${path}.${name}`;
}

/** Builds one event from a parsed object and its scanned members; adds problems, never throws. */
function buildEvent(
  text: string,
  object: Record<string, unknown>,
  members: readonly MemberSpan[],
  path: string | undefined,
  problems: FieldProblem[],
): CloudEvent {
  const attributes: Record<string, AttributeValue> = {};
  const seen = new Set<string>();
  let dataMember: MemberSpan | undefined;
  let base64Text: string | undefined;

  for (const member of members) {
    const { name } = member;
    if (seen.has(name)) {
      problems.push({ field: fieldName(path, name), message: 'member appears more than once' });
      continue;
    }
    seen.add(name);
    const value = object[name];
    if (name === 'data') {
      dataMember = member;
      continue;
    }
    if (name === 'data_base64') {
      if (value === null) continue;
      if (typeof value !== 'string') {
        problems.push({ field: fieldName(path, name), message: 'must be a base64 string' });
      } else {
        base64Text = value;
      }
      continue;
    }
    if (value === null) continue; // null means unset (json-format 2.4)
    if (!isValidAttributeName(name)) {
      // Reported here and left out (a name such as `__proto__` must never become a key).
      problems.push({
        field: fieldName(path, name),
        message: 'attribute names must consist of lower-case letters a-z and digits 0-9',
      });
      continue;
    }
    // Value types are checked by validateEvent below; an invalid event is never returned.
    attributes[name] = value as AttributeValue;
  }

  let data: EventData | undefined;
  if (dataMember !== undefined && base64Text !== undefined) {
    problems.push({
      field: fieldName(path, 'data_base64'),
      message: '"data" and "data_base64" are mutually exclusive',
    });
  } else if (dataMember !== undefined) {
    data = { kind: 'json', text: text.slice(dataMember.start, dataMember.end) };
  } else if (base64Text !== undefined) {
    const bytes = decodeBase64(base64Text);
    if (bytes === undefined) {
      problems.push({ field: fieldName(path, 'data_base64'), message: 'is not valid base64' });
    } else {
      data = { kind: 'base64', bytes };
    }
  }

  const event: CloudEvent = data === undefined ? { attributes } : { attributes, data };
  problems.push(...validateEvent(event, path));
  return event;
}

function parseJson(text: string, field: string, label: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw invalidEvent([{ field, message: `not valid JSON: ${reason}` }], label);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Parses one event in the JSON event format. `path` prefixes the fields of reported problems.
 * Throws TributaryError INVALID_EVENT listing every problem.
 */
export function parseStructuredEvent(text: string, path?: string): CloudEvent {
  const parsed = parseJson(text, path || '(body)', 'CloudEvent');
  if (!isObject(parsed)) {
    throw invalidEvent([
      { field: path || '(body)', message: 'a structured event must be a JSON object' },
    ]);
  }
  const start = skipWhitespace(text, 0);
  const { members } = scanObject(text, start);
  const problems: FieldProblem[] = [];
  const event = buildEvent(text, parsed, members, path, problems);
  if (problems.length > 0) throw invalidEvent(problems);
  return event;
}

/**
 * Parses a JSON batch (an array of JSON-format events; `[]` is valid). Problems carry the index
 * path (`[3].source`); all events must share one specversion. Throws INVALID_EVENT.
 */
export function parseBatch(text: string): CloudEvent[] {
  const parsed = parseJson(text, '(body)', 'CloudEvents batch');
  if (!Array.isArray(parsed)) {
    throw invalidEvent(
      [{ field: '(body)', message: 'a batch must be a JSON array of events' }],
      'CloudEvents batch',
    );
  }
  const spans = scanArrayOfObjects(text);
  const problems: FieldProblem[] = [];
  const events: CloudEvent[] = [];
  let specversion: unknown;
  let specversionAt = -1;
  for (let i = 0; i < parsed.length; i++) {
    const item: unknown = parsed[i];
    const members = spans[i];
    const path = `[${i}]`;
    if (!isObject(item) || members === undefined) {
      problems.push({ field: path, message: 'a batch item must be a JSON object' });
      continue;
    }
    const event = buildEvent(text, item, members, path, problems);
    events.push(event);
    const version = event.attributes.specversion;
    if (typeof version !== 'string') continue;
    if (specversionAt === -1) {
      specversion = version;
      specversionAt = i;
    } else if (version !== specversion) {
      problems.push({
        field: `${path}.specversion`,
        message: `all events in a batch must have the same specversion ("${String(specversion)}" at [${specversionAt}])`,
      });
    }
  }
  if (problems.length > 0) throw invalidEvent(problems, 'CloudEvents batch');
  return events;
}

// ---------------------------------------------------------------------------------------------
// Encoding

const utf8Encoder = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function isJsonWhitespace(code: number | undefined): boolean {
  return code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09;
}

/** The bytes as a JSON text to embed verbatim, or undefined when they are not exactly one. */
function bytesAsJsonText(bytes: Uint8Array): string | undefined {
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
  // Surrounding whitespace would not survive a round trip (the data span excludes it).
  if (text.length === 0) return undefined;
  if (isJsonWhitespace(text.charCodeAt(0)) || isJsonWhitespace(text.charCodeAt(text.length - 1))) {
    return undefined;
  }
  try {
    JSON.parse(text);
  } catch {
    return undefined;
  }
  return text;
}

function bytesAsString(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

function base64Member(bytes: Uint8Array): string {
  return `"data_base64":"${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')}"`;
}

/** The `data` / `data_base64` member for an event's data, following json-format 3.1.1. */
function dataMember(event: CloudEvent): string | undefined {
  const data = event.data;
  if (data === undefined) return undefined;
  switch (data.kind) {
    case 'json':
      return `"data":${data.text}`;
    case 'base64':
      return base64Member(data.bytes);
    case 'bytes': {
      const contentType = event.attributes.datacontenttype;
      if (typeof contentType === 'string') {
        if (isJsonMediaType(contentType)) {
          const json = bytesAsJsonText(data.bytes);
          if (json !== undefined) return `"data":${json}`;
        } else if (isTextMediaType(contentType)) {
          const str = bytesAsString(data.bytes);
          if (str !== undefined) return `"data":${JSON.stringify(str)}`;
        }
      }
      // Absent datacontenttype would mean application/json, so opaque bytes go as base64.
      return base64Member(data.bytes);
    }
  }
}

/** Serializes an event in the JSON event format: attributes in stored order, typed; data last. */
export function serializeStructuredEvent(event: CloudEvent): string {
  const parts: string[] = [];
  for (const [name, value] of Object.entries(event.attributes)) {
    if (value === undefined) continue;
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(value)}`);
  }
  const data = dataMember(event);
  if (data !== undefined) parts.push(data);
  return `{${parts.join(',')}}`;
}

/** Serializes events in the JSON batch format. */
export function serializeBatch(events: readonly CloudEvent[]): string {
  return `[${events.map(serializeStructuredEvent).join(',')}]`;
}

/** UTF-8 bytes of a string (shared by the HTTP codec). */
export function utf8(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}
