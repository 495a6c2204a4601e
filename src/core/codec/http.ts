/**
 * The HTTP protocol binding (v1.0.2) for CloudEvents: binary, structured and batched content modes,
 * decoding and encoding. Pure: it works on a header record and body bytes, never on a socket.
 */

import type { AttributeValue, CloudEvent } from '../event.js';
import type { FieldProblem } from '../errors.js';
import { TributaryError } from '../errors.js';
import {
  parseBatch,
  parseStructuredEvent,
  serializeBatch,
  serializeStructuredEvent,
  utf8,
} from './json.js';
import { isJsonMediaType, mediaTypeEssence, mediaTypeParameter } from './media.js';
import { percentEncodeHeaderValue, tryDecodeHeaderValue } from './percent.js';
import { invalidEvent } from './problems.js';
import { isValidAttributeName, validateEventFields } from './validate.js';

/** Request or response headers, Node style: lower-case names. */
export type HttpHeaders = Readonly<Record<string, string | string[] | undefined>>;
export type ContentMode = 'binary' | 'structured' | 'batch';

export interface DecodedMessage {
  readonly mode: ContentMode;
  readonly events: CloudEvent[];
}

export interface EncodedMessage {
  readonly headers: Record<string, string>;
  readonly body: Uint8Array | undefined;
}

export const STRUCTURED_CONTENT_TYPE = 'application/cloudevents+json; charset=utf-8';
export const BATCH_CONTENT_TYPE = 'application/cloudevents-batch+json';

const STRUCTURED_PREFIX = 'application/cloudevents';
const BATCH_PREFIX = 'application/cloudevents-batch';
const JSON_CHARSETS = new Set(['utf-8', 'utf8', 'us-ascii']);

const bodyDecoder = new TextDecoder('utf-8', { fatal: true }); // strips a leading BOM (RFC 8259 8.1)

/** A header by name: the exact (lower-case) key first, then any casing. */
function findHeader(headers: HttpHeaders, name: string): string | string[] | undefined {
  const direct = headers[name];
  if (direct !== undefined) return direct;
  for (const key of Object.keys(headers)) {
    if (key.length === name.length && key.toLowerCase() === name) return headers[key];
  }
  return undefined;
}

/** A single-valued header; several values for it make the message invalid. */
function singleHeader(headers: HttpHeaders, name: string): string | undefined {
  const value = findHeader(headers, name);
  if (!Array.isArray(value)) return value;
  if (value.length === 0) return undefined;
  if (value.length === 1) return value[0];
  throw invalidEvent(
    [{ field: name, message: 'the header must not appear more than once' }],
    'CloudEvents message',
  );
}

function unsupported(contentType: string, reason: string): TributaryError {
  return new TributaryError(
    'UNSUPPORTED_MEDIA_TYPE',
    `Unsupported CloudEvents content type "${contentType}": ${reason}`,
    { problems: [{ field: 'content-type', message: reason }] },
  );
}

/** The content mode a Content-Type selects; throws UNSUPPORTED_MEDIA_TYPE for a non-JSON format. */
function contentMode(contentType: string | undefined): ContentMode {
  if (contentType === undefined) return 'binary';
  const essence = mediaTypeEssence(contentType);
  let mode: ContentMode;
  if (essence.startsWith(BATCH_PREFIX)) {
    if (essence !== `${BATCH_PREFIX}+json`) {
      throw unsupported(
        contentType,
        'the only supported batch format is application/cloudevents-batch+json',
      );
    }
    mode = 'batch';
  } else if (essence.startsWith(STRUCTURED_PREFIX)) {
    if (essence !== `${STRUCTURED_PREFIX}+json`) {
      throw unsupported(
        contentType,
        'the only supported event format is application/cloudevents+json',
      );
    }
    mode = 'structured';
  } else {
    return 'binary';
  }
  const charset = mediaTypeParameter(contentType, 'charset');
  if (charset !== undefined && !JSON_CHARSETS.has(charset.toLowerCase())) {
    throw unsupported(contentType, `JSON must be UTF-8, not charset "${charset}"`);
  }
  return mode;
}

function bodyText(body: Uint8Array): string {
  try {
    return bodyDecoder.decode(body);
  } catch {
    throw invalidEvent(
      [{ field: '(body)', message: 'the body is not valid UTF-8' }],
      'CloudEvents message',
    );
  }
}

/** The field a binary-mode problem is reported on: the header that carries the attribute. */
function binaryField(attribute: string): string {
  return attribute === 'datacontenttype' ? 'content-type' : `ce-${attribute}`;
}

function decodeBinary(headers: HttpHeaders, body: Uint8Array): CloudEvent {
  const attributes: Record<string, AttributeValue> = {};
  const problems: FieldProblem[] = [];

  for (const [key, raw] of Object.entries(headers)) {
    if (raw === undefined) continue;
    const header = key.toLowerCase();
    if (header === 'content-type') {
      const value = singleHeader(headers, 'content-type');
      // An empty Content-Type says nothing: treat it as absent.
      if (value !== undefined && value.trim().length > 0) attributes.datacontenttype = value.trim();
      continue;
    }
    if (!header.startsWith('ce-')) continue;
    const name = header.slice(3);
    if (name === 'datacontenttype') {
      problems.push({
        field: header,
        message: 'must not be sent; the Content-Type header carries datacontenttype',
      });
      continue;
    }
    if (!isValidAttributeName(name)) {
      problems.push({
        field: header,
        message:
          name === 'data'
            ? '"data" is reserved and cannot be an attribute'
            : 'attribute names must consist of lower-case letters a-z and digits 0-9',
      });
      continue;
    }
    if ((Array.isArray(raw) && raw.length !== 1) || Object.hasOwn(attributes, name)) {
      problems.push({ field: header, message: 'the header must not appear more than once' });
      continue;
    }
    const decoded = tryDecodeHeaderValue(Array.isArray(raw) ? (raw[0] ?? '') : raw);
    if (!decoded.ok) {
      problems.push({ field: header, message: decoded.message });
      continue;
    }
    attributes[name] = decoded.value;
  }

  const event: CloudEvent =
    body.length === 0 ? { attributes } : { attributes, data: { kind: 'bytes', bytes: body } };
  problems.push(...validateEventFields(event, binaryField));
  if (problems.length > 0) throw invalidEvent(problems);
  return event;
}

/**
 * Decodes an HTTP request or response carrying CloudEvents. Throws TributaryError INVALID_EVENT
 * (400) with field problems, or UNSUPPORTED_MEDIA_TYPE (415).
 */
export function decodeHttpMessage(headers: HttpHeaders, body: Uint8Array): DecodedMessage {
  const mode = contentMode(singleHeader(headers, 'content-type'));
  switch (mode) {
    case 'binary':
      return { mode, events: [decodeBinary(headers, body)] };
    case 'structured':
      return { mode, events: [parseStructuredEvent(bodyText(body))] };
    case 'batch':
      return { mode, events: parseBatch(bodyText(body)) };
  }
}

/**
 * True when the message looks like a CloudEvent at all (a ce-specversion header, or an
 * application/cloudevents* content type). Used to tell a reply event from a plain response body.
 */
export function looksLikeCloudEvent(headers: HttpHeaders): boolean {
  if (findHeader(headers, 'ce-specversion') !== undefined) return true;
  const contentType = findHeader(headers, 'content-type');
  const values = Array.isArray(contentType)
    ? contentType
    : contentType === undefined
      ? []
      : [contentType];
  return values.some((value) => mediaTypeEssence(value).startsWith(STRUCTURED_PREFIX));
}

/** The HTTP body for an event's data in binary mode. */
function binaryBody(event: CloudEvent): Uint8Array | undefined {
  const data = event.data;
  if (data === undefined) return undefined;
  if (data.kind !== 'json') return data.bytes;
  const contentType = event.attributes.datacontenttype;
  if (contentType === undefined || isJsonMediaType(String(contentType))) return utf8(data.text);
  // Non-JSON content type: a JSON string is the data itself (json-format 3.1.2).
  if (data.text.startsWith('"')) return utf8(JSON.parse(data.text) as string);
  return utf8(data.text);
}

/**
 * Encodes an event in binary mode: `ce-<name>` headers with percent-encoded canonical strings,
 * Content-Type = datacontenttype (application/json for JSON data without one), body = data.
 */
export function encodeBinary(event: CloudEvent): EncodedMessage {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(event.attributes)) {
    if (value === undefined) continue;
    if (name === 'datacontenttype') headers['content-type'] = String(value);
    else headers[`ce-${name}`] = percentEncodeHeaderValue(String(value));
  }
  if (event.data?.kind === 'json' && event.attributes.datacontenttype === undefined) {
    headers['content-type'] = 'application/json';
  }
  return { headers, body: binaryBody(event) };
}

/** Encodes an event in structured mode with the JSON event format. */
export function encodeStructured(event: CloudEvent): EncodedMessage {
  return {
    headers: { 'content-type': STRUCTURED_CONTENT_TYPE },
    body: utf8(serializeStructuredEvent(event)),
  };
}

/** Encodes events in batched mode with the JSON batch format. */
export function encodeBatch(events: readonly CloudEvent[]): EncodedMessage {
  return { headers: { 'content-type': BATCH_CONTENT_TYPE }, body: utf8(serializeBatch(events)) };
}
