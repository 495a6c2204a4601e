/**
 * A Kafka record as the KafkaSource turns it into a CloudEvent (reference/knative.md 4.6), pure:
 *
 * - a record that already is a CloudEvent passes through unchanged: the binary content mode of the
 *   CloudEvents Kafka binding (`ce_<attribute>` headers, `content-type` = datacontenttype, the value
 *   as data) or the structured mode (`content-type: application/cloudevents+json`, the value is the
 *   event). A record that claims to be one but is not valid is wrapped like any other, as Knative's
 *   adapter does;
 * - any other record is wrapped: type `dev.knative.kafka.event`, source
 *   `/apis/v1/namespaces/<ns>/kafkasources/<name>#<topic>`, subject `partition:<p>#<offset>`, id
 *   `partition:<p>/offset:<offset>`, time = the record's timestamp, datacontenttype from the
 *   `content-type` header, the key as `key` and `partitionkey`, every other header as
 *   `kafkaheader<name>` (lower-case, letters and digits only; the last of repeated ones), the
 *   value byte for byte as data.
 *
 * The source's `ceOverrides.extensions` are set last on both.
 */
import type { RecordHeadersIn } from '../../backends/kafka/codec.js';
import type { AttributeValue, CloudEvent } from '../../core/event.js';
import { carriedCloudEvent, withOverrides } from '../carried-event.js';

export const KAFKA_EVENT_TYPE = 'dev.knative.kafka.event';

export type KeyType = 'string' | 'int' | 'float' | 'byte-array';

/** The parts of a kafkajs record the source reads. */
export interface SourceRecord {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** Milliseconds since the epoch, as a decimal string. */
  readonly timestamp: string;
  readonly offset: string;
  readonly headers?: RecordHeadersIn;
}

export interface RecordOrigin {
  readonly namespace: string;
  readonly name: string;
  readonly topic: string;
  readonly partition: number;
  readonly keyType: KeyType;
  readonly overrides: Readonly<Record<string, string>>;
}

export interface RecordEvent {
  readonly event: CloudEvent;
  /** The record was a CloudEvent and passed through. */
  readonly passedThrough: boolean;
}

/** A float as Java's Float/Double.toString writes it for ordinary magnitudes (`1.0`, `1.1`). */
function javaFloat(value: number, single: boolean): string {
  if (!Number.isFinite(value))
    return Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity';
  let text = String(value);
  if (single) {
    // The shortest decimal that reads back as the same single-precision value.
    for (let digits = 1; digits <= 9; digits++) {
      const candidate = Number(value.toPrecision(digits));
      if (Math.fround(candidate) === value) {
        text = String(candidate);
        break;
      }
    }
  }
  return /^-?\d+$/.test(text) ? `${text}.0` : text;
}

/**
 * The record's key as Knative's key deserializers render it: UTF-8 text, base64 for byte-array,
 * a big-endian int (4 bytes; 8 bytes as a long) or float (4 or 8 bytes); a key of another length
 * for int or float is read as text, as Knative falls back. Undefined for an empty key (no key).
 */
export function keyText(key: Buffer, keyType: KeyType): string | undefined {
  if (key.length === 0) return undefined;
  switch (keyType) {
    case 'byte-array':
      return key.toString('base64');
    case 'int':
      if (key.length === 4) return String(key.readInt32BE(0));
      if (key.length === 8) return key.readBigInt64BE(0).toString();
      break;
    case 'float':
      if (key.length === 4) return javaFloat(key.readFloatBE(0), true);
      if (key.length === 8) return javaFloat(key.readDoubleBE(0), false);
      break;
    case 'string':
      break;
  }
  return key.toString('utf8');
}

/** The last value of a header (Knative keeps the last of repeated headers), as text. */
function lastHeaderText(headers: RecordHeadersIn, name: string): string | undefined {
  const raw = headers[name];
  const last = Array.isArray(raw) ? raw[raw.length - 1] : raw;
  if (last === undefined) return undefined;
  return typeof last === 'string' ? last : last.toString('utf8');
}

/** The record's time: its timestamp, when it is one a CloudEvent can carry (years 0 to 9999). */
function recordTime(timestamp: string): string | undefined {
  if (timestamp.trim() === '') return undefined;
  const millis = Number(timestamp);
  if (!Number.isFinite(millis) || millis < 0 || millis >= MAX_TIMESTAMP_MS) return undefined;
  return new Date(millis).toISOString();
}

/** 10000-01-01T00:00:00Z: RFC 3339 has four-digit years. */
const MAX_TIMESTAMP_MS = 253_402_300_800_000;

/** printable ASCII, as a header-borne datacontenttype must be */
const MEDIA_TYPE = /^[\x20-\x7e]+$/;

/** `kafkaheader` + the header name lower-cased with everything but a-z and 0-9 left out. */
export function headerExtension(name: string): string {
  return `kafkaheader${name.toLowerCase().replace(/[^a-z0-9]/g, '')}`;
}

/** The CloudEvent for one record (see the module comment). */
export function recordToEvent(record: SourceRecord, origin: RecordOrigin): RecordEvent {
  const headers = record.headers ?? {};
  const carried = carriedCloudEvent(headers, record.value);
  if (carried !== undefined) {
    return { event: withOverrides(carried, origin.overrides), passedThrough: true };
  }
  const { partition } = origin;
  const attributes: Record<string, AttributeValue> = {
    specversion: '1.0',
    id: `partition:${partition}/offset:${record.offset}`,
    source: `/apis/v1/namespaces/${origin.namespace}/kafkasources/${origin.name}#${origin.topic}`,
    type: KAFKA_EVENT_TYPE,
    subject: `partition:${partition}#${record.offset}`,
  };
  const time = recordTime(record.timestamp);
  if (time !== undefined) attributes.time = time;
  // The content-type header, in any case, is the datacontenttype and not an extension (Knative).
  const contentTypeHeader = Object.keys(headers).find((n) => n.toLowerCase() === 'content-type');
  const contentType =
    contentTypeHeader === undefined
      ? undefined
      : lastHeaderText(headers, contentTypeHeader)?.trim();
  if (contentType !== undefined && contentType !== '' && MEDIA_TYPE.test(contentType)) {
    attributes.datacontenttype = contentType;
  }
  const key = record.key === null ? undefined : keyText(record.key, origin.keyType);
  if (key !== undefined) {
    attributes.key = key;
    attributes.partitionkey = key;
  }
  for (const name of Object.keys(headers)) {
    if (name === contentTypeHeader) continue;
    const text = lastHeaderText(headers, name);
    const extension = headerExtension(name);
    if (text !== undefined && extension !== 'kafkaheader') attributes[extension] = text;
  }
  const value = record.value;
  const event: CloudEvent =
    value === null || value.length === 0
      ? { attributes }
      : { attributes, data: { kind: 'bytes', bytes: new Uint8Array(value) } };
  return { event: withOverrides(event, origin.overrides), passedThrough: false };
}
