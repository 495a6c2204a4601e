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
 *   `content-type` header, the key as `key` and `partitionkey`, every header as
 *   `kafkaheader<name>` (lower-case, letters and digits only), the value byte for byte as data.
 *
 * The source's `ceOverrides.extensions` are set last on both.
 */
import { headerText, type RecordHeadersIn } from '../../backends/kafka/codec.js';
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

/** The record's key as Knative's key deserializers render it; undefined for a null or bad key. */
export function keyText(key: Buffer, keyType: KeyType): string | undefined {
  switch (keyType) {
    case 'string':
      return key.toString('utf8');
    case 'byte-array':
      return key.toString('base64');
    case 'int':
      if (key.length === 4) return String(key.readInt32BE(0));
      if (key.length === 8) return key.readBigInt64BE(0).toString();
      return undefined;
    case 'float':
      if (key.length === 4) return String(key.readFloatBE(0));
      if (key.length === 8) return String(key.readDoubleBE(0));
      return undefined;
  }
}

/** `kafkaheader` + the header name lower-cased with everything but a-z and 0-9 left out. */
export function headerExtension(name: string): string {
  return `kafkaheader${name.toLowerCase().replace(/[^a-z0-9]/g, '')}`;
}

/** The CloudEvent for one record (see the module comment). */
export function recordToEvent(record: SourceRecord, origin: RecordOrigin): RecordEvent {
  const headers = record.headers ?? {};
  const contentType = headerText(headers, 'content-type');
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
  const millis = Number(record.timestamp);
  if (Number.isFinite(millis) && millis >= 0) attributes.time = new Date(millis).toISOString();
  if (contentType !== undefined && contentType.trim() !== '') {
    attributes.datacontenttype = contentType.trim();
  }
  const key = record.key === null ? undefined : keyText(record.key, origin.keyType);
  if (key !== undefined) {
    attributes.key = key;
    attributes.partitionkey = key;
  }
  for (const name of Object.keys(headers)) {
    const text = headerText(headers, name);
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
