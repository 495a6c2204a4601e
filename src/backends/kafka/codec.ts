/**
 * How an event is kept in a Kafka record: the binary content mode of the CloudEvents Kafka binding
 * (reference/cloudevents.md section 3: every attribute as a `ce_<name>` header with its UTF-8
 * string, `datacontenttype` as the `content-type` header, the data as the value), the
 * `partitionkey` extension as the record key, and two headers of ours that make the round trip
 * lossless, as on NATS: `tributary-types` (attributes that were JSON numbers or booleans) and
 * `tributary-data` (the form the data arrived in; absent: no data).
 */
import type { AttributeValue, CloudEvent, EventData } from '../../core/event.js';
import { attributeTypes, parseAttributeTypes, typedValue } from '../attribute-types.js';

export const CE_PREFIX = 'ce_';
export const CONTENT_TYPE = 'content-type';
export const TYPES_HEADER = 'tributary-types';
export const DATA_HEADER = 'tributary-data';

export type RecordHeaders = Record<string, Buffer>;

export interface EncodedRecord {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: RecordHeaders;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The record for `event`; `extra` headers (ours) come after the event's. */
export function encodeRecord(
  event: CloudEvent,
  extra?: Readonly<Record<string, string>>,
): EncodedRecord {
  const headers: RecordHeaders = {};
  for (const [name, value] of Object.entries(event.attributes)) {
    if (value === undefined) continue;
    const header = name === 'datacontenttype' ? CONTENT_TYPE : CE_PREFIX + name;
    headers[header] = Buffer.from(String(value), 'utf8');
  }
  const types = attributeTypes(event.attributes);
  if (types !== '') headers[TYPES_HEADER] = Buffer.from(types);
  const data = event.data;
  let value: Buffer | null = null;
  if (data !== undefined) {
    headers[DATA_HEADER] = Buffer.from(data.kind);
    value = data.kind === 'json' ? Buffer.from(data.text, 'utf8') : asBuffer(data.bytes);
  }
  if (extra !== undefined) {
    for (const [name, text] of Object.entries(extra)) headers[name] = Buffer.from(text, 'utf8');
  }
  const key = event.attributes.partitionkey;
  return { key: key === undefined ? null : Buffer.from(String(key), 'utf8'), value, headers };
}

/** A header as text (kafkajs gives a Buffer, a string, or a list of them). */
export function headerText(headers: RecordHeadersIn | undefined, name: string): string | undefined {
  const raw = headers?.[name];
  if (raw === undefined) return undefined;
  const first = Array.isArray(raw) ? raw[0] : raw;
  if (first === undefined) return undefined;
  return typeof first === 'string' ? first : first.toString('utf8');
}

export type RecordHeadersIn = Record<string, Buffer | string | (Buffer | string)[] | undefined>;

/** The event in a record written by `encodeRecord` (copies the value). */
export function decodeRecord(headers: RecordHeadersIn, value: Buffer | null): CloudEvent {
  const types = parseAttributeTypes(headerText(headers, TYPES_HEADER));
  const attributes: Record<string, AttributeValue> = {};
  for (const name of Object.keys(headers)) {
    let attribute: string;
    if (name === CONTENT_TYPE) attribute = 'datacontenttype';
    else if (name.startsWith(CE_PREFIX)) attribute = name.slice(CE_PREFIX.length);
    else continue;
    const text = headerText(headers, name);
    if (text !== undefined) attributes[attribute] = typedValue(text, types.get(attribute));
  }
  Object.freeze(attributes);
  const kind = headerText(headers, DATA_HEADER);
  const bytes = value ?? Buffer.alloc(0);
  let data: EventData | undefined;
  if (kind === 'json') data = Object.freeze({ kind: 'json', text: bytes.toString('utf8') });
  else if (kind === 'bytes' || kind === 'base64') {
    data = Object.freeze({ kind, bytes: new Uint8Array(bytes) });
  }
  return Object.freeze(data === undefined ? { attributes } : { attributes, data });
}
