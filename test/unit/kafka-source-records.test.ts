import { createRequire } from 'node:module';
import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { defaultConsumerGroup, describeKafkaError } from '../../src/adapters/kafka/index.js';
import {
  headerExtension,
  keyText,
  recordToEvent,
  type RecordEvent,
  type RecordOrigin,
  type SourceRecord,
} from '../../src/adapters/kafka/records.js';
import { validateEvent } from '../../src/core/codec/validate.js';
import type { CloudEvent } from '../../src/core/event.js';
import type { Resource } from '../../src/core/resources/types.js';

// kafkajs is CommonJS and spreads its errors into module.exports, so Node cannot see them as
// named exports: take them from the default export. Its typings declare some constructors without
// the (message, options) parameters the classes take.
type KafkaErrorClass = new (error: string | Error, options?: Record<string, unknown>) => Error;
const { KafkaJSConnectionError, KafkaJSNumberOfRetriesExceeded, KafkaJSRequestTimeoutError } =
  kafkajs;
const KafkaJSBrokerNotFound = kafkajs.KafkaJSBrokerNotFound as unknown as KafkaErrorClass;
const KafkaJSNonRetriableError = kafkajs.KafkaJSNonRetriableError as unknown as KafkaErrorClass;
const KafkaJSSASLAuthenticationError =
  kafkajs.KafkaJSSASLAuthenticationError as unknown as KafkaErrorClass;
// The protocol errors exactly as kafkajs builds them from a broker's error code.
const { createErrorFromCode } = createRequire(import.meta.url)('kafkajs/src/protocol/error.js') as {
  createErrorFromCode: (code: number) => Error & { type: string };
};

const ORIGIN: RecordOrigin = {
  namespace: 'team-a',
  name: 'orders-source',
  topic: 'orders',
  partition: 3,
  keyType: 'string',
  overrides: {},
};

function record(fields: Partial<SourceRecord> = {}): SourceRecord {
  return {
    key: null,
    value: Buffer.from('hello'),
    timestamp: '1700000000123',
    offset: '42',
    ...fields,
  };
}

function origin(fields: Partial<RecordOrigin> = {}): RecordOrigin {
  return { ...ORIGIN, ...fields };
}

/** recordToEvent, and the produced event must always be a valid CloudEvent. */
function convert(rec: SourceRecord, from: RecordOrigin = ORIGIN): RecordEvent {
  const result = recordToEvent(rec, from);
  expect(validateEvent(result.event)).toEqual([]);
  return result;
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

function int64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(n);
  return b;
}

function float32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeFloatBE(value);
  return b;
}

function float64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(n);
  return b;
}

function bytesOf(event: CloudEvent): Uint8Array {
  const data = event.data;
  if (data === undefined || data.kind === 'json') {
    throw new Error(`expected byte data, got ${JSON.stringify(data)}`);
  }
  return data.bytes;
}

/** The attribute names recordToEvent sets on a wrapped record, without key and headers. */
const WRAPPED_BASE = ['specversion', 'id', 'source', 'type', 'subject', 'time'];

describe('recordToEvent: a plain record is wrapped as Knative does', () => {
  it('sets type, source, subject, id, time and specversion from the record and the source', () => {
    const { event, passedThrough } = convert(record());
    expect(passedThrough).toBe(false);
    expect(event.attributes).toEqual({
      specversion: '1.0',
      id: 'partition:3/offset:42',
      source: '/apis/v1/namespaces/team-a/kafkasources/orders-source#orders',
      type: 'dev.knative.kafka.event',
      subject: 'partition:3#42',
      time: '2023-11-14T22:13:20.123Z',
    });
  });

  it('uses the partition, offset, namespace, name and topic it is given', () => {
    const { event } = convert(
      record({ offset: '9007199254740993' }),
      origin({ namespace: 'ns2', name: 'src2', topic: 'my.topic_x-1', partition: 0 }),
    );
    // An offset beyond 2^53 stays exact (it is a string all the way).
    expect(event.attributes.id).toBe('partition:0/offset:9007199254740993');
    expect(event.attributes.subject).toBe('partition:0#9007199254740993');
    expect(event.attributes.source).toBe('/apis/v1/namespaces/ns2/kafkasources/src2#my.topic_x-1');
  });

  it.each<[string, string]>([
    ['0', '1970-01-01T00:00:00.000Z'],
    ['1', '1970-01-01T00:00:00.001Z'],
    ['1718000000999', '2024-06-10T06:13:20.999Z'],
  ])('takes time from the timestamp %s in milliseconds', (timestamp, time) => {
    expect(convert(record({ timestamp })).event.attributes.time).toBe(time);
  });

  it.each(['-1', 'not-a-number'])('leaves time out for the timestamp %j', (timestamp) => {
    const { event } = convert(record({ timestamp }));
    expect(event.attributes).not.toHaveProperty('time');
  });

  it('keeps the value byte for byte as data, including bytes that are not UTF-8', () => {
    const value = Buffer.from([0x00, 0xff, 0xfe, 0xc3, 0x28, 0x80, 0x7f, 0x0a]);
    const { event } = convert(record({ value }));
    expect(event.data?.kind).toBe('bytes');
    expect(Buffer.from(bytesOf(event))).toEqual(value);
  });

  it('copies the value, so that reusing the record buffer does not change the event', () => {
    const value = Buffer.from('abc');
    const { event } = convert(record({ value }));
    value.fill(0x7a);
    expect(Buffer.from(bytesOf(event)).toString()).toBe('abc');
  });

  it.each<[string, Buffer | null]>([
    ['a null value', null],
    ['an empty value', Buffer.alloc(0)],
  ])('gives no data for %s', (_name, value) => {
    const { event } = convert(record({ value }));
    expect(event).not.toHaveProperty('data');
    expect(event.data).toBeUndefined();
  });

  it('takes datacontenttype from the content-type header (trimmed)', () => {
    const { event } = convert(
      record({ headers: { 'content-type': Buffer.from(' application/json; charset=utf-8 ') } }),
    );
    expect(event.attributes.datacontenttype).toBe('application/json; charset=utf-8');
  });

  it('sets no datacontenttype without a content-type header, or with a blank one', () => {
    expect(convert(record()).event.attributes).not.toHaveProperty('datacontenttype');
    const blank = convert(record({ headers: { 'content-type': Buffer.from('  ') } }));
    expect(blank.event.attributes).not.toHaveProperty('datacontenttype');
  });

  it('sets no key or partitionkey for a null key', () => {
    const { event } = convert(record({ key: null }));
    expect(event.attributes).not.toHaveProperty('key');
    expect(event.attributes).not.toHaveProperty('partitionkey');
  });

  it('copies the key into both key and partitionkey', () => {
    const { event } = convert(record({ key: Buffer.from('customer-17') }));
    expect(event.attributes.key).toBe('customer-17');
    expect(event.attributes.partitionkey).toBe('customer-17');
  });

  it.each<[string, RecordOrigin['keyType'], Buffer, string]>([
    ['a UTF-8 string', 'string', Buffer.from('clé-ü'), 'clé-ü'],
    ['a 4-byte int (big-endian)', 'int', Buffer.from([0x00, 0x00, 0x01, 0x02]), '258'],
    ['a negative 4-byte int', 'int', Buffer.from([0xff, 0xff, 0xff, 0xfe]), '-2'],
    ['the smallest 4-byte int', 'int', Buffer.from([0x80, 0, 0, 0]), '-2147483648'],
    ['the largest 4-byte int', 'int', int32(2_147_483_647), '2147483647'],
    ['an 8-byte int (big-endian)', 'int', Buffer.from([0, 0, 0, 0, 0, 0, 0x01, 0x02]), '258'],
    ['an 8-byte int beyond 2^53', 'int', int64(9_007_199_254_740_993n), '9007199254740993'],
    ['a negative 8-byte int', 'int', Buffer.alloc(8, 0xff), '-1'],
    ['the smallest 8-byte int', 'int', int64(-(2n ** 63n)), '-9223372036854775808'],
    ['a 4-byte float (big-endian)', 'float', Buffer.from([0x3f, 0xc0, 0x00, 0x00]), '1.5'],
    ['a negative 4-byte float', 'float', Buffer.from([0xc0, 0x20, 0x00, 0x00]), '-2.5'],
    ['an 8-byte float (big-endian)', 'float', float64(Math.PI), String(Math.PI)],
    ['a negative 8-byte float', 'float', float64(-123.456), '-123.456'],
    [
      'an 8-byte 2.5 (not read as two floats)',
      'float',
      Buffer.from([0x40, 0x04, 0, 0, 0, 0, 0, 0]),
      '2.5',
    ],
    ['a byte array (base64)', 'byte-array', Buffer.from([0xfb, 0xff, 0x00, 0x01]), '+/8AAQ=='],
    ['a byte array that is not UTF-8', 'byte-array', Buffer.from([0xc3, 0x28]), 'wyg='],
  ])('renders %s key', (_name, keyType, key, expected) => {
    expect(keyText(key, keyType)).toBe(expected);
    const { event } = convert(record({ key }), origin({ keyType }));
    expect(event.attributes.key).toBe(expected);
    expect(event.attributes.partitionkey).toBe(expected);
  });

  it.each<[string, Buffer, string]>([
    // 0x3dcccccd is the float nearest 0.1: Java's Float.toString writes 0.1, not 0.10000000149.
    ['the float nearest 0.1', Buffer.from([0x3d, 0xcc, 0xcc, 0xcd]), '0.1'],
    ['the float nearest 1.1', float32(1.1), '1.1'],
    ['a whole float', float32(1), '1.0'],
    ['a whole double', float64(-3), '-3.0'],
  ])('writes %s as Java does', (_name, key, expected) => {
    expect(keyText(key, 'float')).toBe(expected);
  });

  it.each<[RecordOrigin['keyType'], number]>([
    ['int', 2],
    ['int', 5],
    ['int', 16],
    ['float', 1],
    ['float', 6],
    ['float', 9],
  ])('reads a %s key of %i bytes as text, as Knative falls back', (keyType, length) => {
    const key = Buffer.alloc(length, 0x41);
    expect(keyText(key, keyType)).toBe('A'.repeat(length));
    const { event } = convert(record({ key }), origin({ keyType }));
    expect(event.attributes.key).toBe('A'.repeat(length));
    expect(event.attributes.partitionkey).toBe('A'.repeat(length));
  });

  it.each<RecordOrigin['keyType']>(['string', 'int', 'float', 'byte-array'])(
    'gives no key for an empty %s key, as Knative',
    (keyType) => {
      expect(keyText(Buffer.alloc(0), keyType)).toBeUndefined();
      const { event } = convert(record({ key: Buffer.alloc(0) }), origin({ keyType }));
      expect(event.attributes).not.toHaveProperty('key');
      expect(event.attributes).not.toHaveProperty('partitionkey');
    },
  );

  it('turns every header into kafkaheader<name>, lower-cased, letters and digits only', () => {
    const { event } = convert(
      record({
        headers: {
          'X-Request-ID': Buffer.from('r-1'),
          trace_parent: Buffer.from('00-abc-01'),
          'Tenant.Name 2': 'acme',
          plain: Buffer.from('v'),
        },
      }),
    );
    expect(event.attributes.kafkaheaderxrequestid).toBe('r-1');
    expect(event.attributes.kafkaheadertraceparent).toBe('00-abc-01');
    expect(event.attributes.kafkaheadertenantname2).toBe('acme');
    expect(event.attributes.kafkaheaderplain).toBe('v');
    expect(Object.keys(event.attributes)).toEqual([
      ...WRAPPED_BASE,
      'kafkaheaderxrequestid',
      'kafkaheadertraceparent',
      'kafkaheadertenantname2',
      'kafkaheaderplain',
    ]);
  });

  it('decodes Buffer header values as UTF-8 and keeps string header values as they are', () => {
    const { event } = convert(
      record({ headers: { a: Buffer.from('grüße', 'utf8'), b: 'straße', empty: Buffer.alloc(0) } }),
    );
    expect(event.attributes.kafkaheadera).toBe('grüße');
    expect(event.attributes.kafkaheaderb).toBe('straße');
    expect(event.attributes.kafkaheaderempty).toBe('');
  });

  it('takes the last value of a repeated header (kafkajs gives an array), as Knative', () => {
    const { event } = convert(
      record({
        headers: {
          repeated: [Buffer.from('first'), Buffer.from('second')],
          mixed: ['one', Buffer.from('two')],
        },
      }),
    );
    expect(event.attributes.kafkaheaderrepeated).toBe('second');
    expect(event.attributes.kafkaheadermixed).toBe('two');
  });

  it('skips headers without a value and names without a letter or digit', () => {
    const { event } = convert(
      record({ headers: { missing: undefined, none: [], '--': Buffer.from('x'), ok: 'y' } }),
    );
    expect(Object.keys(event.attributes)).toEqual([...WRAPPED_BASE, 'kafkaheaderok']);
  });

  it('applies ceOverrides last, replacing key, partitionkey and header extensions', () => {
    const { event, passedThrough } = convert(
      record({ key: Buffer.from('k'), headers: { team: Buffer.from('from-header') } }),
      origin({ overrides: { key: 'ov-key', kafkaheaderteam: 'ov-team', env: 'prod' } }),
    );
    expect(passedThrough).toBe(false);
    expect(event.attributes.key).toBe('ov-key');
    expect(event.attributes.partitionkey).toBe('k');
    expect(event.attributes.kafkaheaderteam).toBe('ov-team');
    expect(event.attributes.env).toBe('prod');
    // Overrides do not touch the data.
    expect(Buffer.from(bytesOf(event)).toString()).toBe('hello');
  });
});

describe('headerExtension', () => {
  it.each<[string, string]>([
    ['abc', 'kafkaheaderabc'],
    ['ABC', 'kafkaheaderabc'],
    ['Content-Type', 'kafkaheadercontenttype'],
    ['ce_id', 'kafkaheaderceid'],
    ['a.b/c:d e', 'kafkaheaderabcde'],
    ['Größe9', 'kafkaheadergre9'],
    ['', 'kafkaheader'],
  ])('%j gives %j', (name, extension) => {
    expect(headerExtension(name)).toBe(extension);
  });
});

type Headers = Record<string, Buffer | string | undefined>;

/** Headers of a binary-mode CloudEvent record (the CloudEvents Kafka binding). */
function binaryHeaders(extra: Record<string, Buffer | string> = {}): Headers {
  return {
    ce_specversion: Buffer.from('1.0'),
    ce_id: Buffer.from('evt-1'),
    ce_source: Buffer.from('urn:example:orders'),
    ce_type: Buffer.from('com.example.order.created'),
    ce_time: Buffer.from('2024-01-02T03:04:05Z'),
    ce_myext: Buffer.from('ext value'),
    'content-type': Buffer.from('application/octet-stream'),
    ...extra,
  };
}

describe('recordToEvent: a binary-mode CloudEvent record passes through', () => {
  it('takes the attributes from ce_ headers and the data from the value, byte for byte', () => {
    const value = Buffer.from([0x01, 0xff, 0x80, 0x00]);
    const { event, passedThrough } = convert(
      record({
        key: Buffer.from('partition-me'),
        value,
        headers: binaryHeaders({ 'x-other': Buffer.from('ignored') }),
      }),
    );
    expect(passedThrough).toBe(true);
    expect(event.attributes).toEqual({
      specversion: '1.0',
      id: 'evt-1',
      source: 'urn:example:orders',
      type: 'com.example.order.created',
      time: '2024-01-02T03:04:05Z',
      myext: 'ext value',
      datacontenttype: 'application/octet-stream',
    });
    expect(Buffer.from(bytesOf(event))).toEqual(value);
  });

  it('adds no key, partitionkey, kafkaheader, subject or time of its own', () => {
    const headers = binaryHeaders();
    delete headers.ce_time;
    const { event } = convert(
      record({ key: Buffer.from('k'), headers: { ...headers, 'X-Trace': Buffer.from('t') } }),
      origin({ keyType: 'byte-array' }),
    );
    const names = Object.keys(event.attributes);
    expect(names).not.toContain('key');
    expect(names).not.toContain('partitionkey');
    expect(names).not.toContain('subject');
    expect(names).not.toContain('time');
    expect(names.filter((n) => n.startsWith('kafkaheader'))).toEqual([]);
    expect(event.attributes.id).toBe('evt-1');
    expect(event.attributes.type).toBe('com.example.order.created');
  });

  it('keeps a partitionkey that the event itself carries', () => {
    const { event } = convert(
      record({ key: Buffer.from('record-key'), headers: binaryHeaders({ ce_partitionkey: 'pk' }) }),
    );
    expect(event.attributes.partitionkey).toBe('pk');
  });

  it('gives no data for a null or empty value', () => {
    for (const value of [null, Buffer.alloc(0)]) {
      const { event, passedThrough } = convert(record({ value, headers: binaryHeaders() }));
      expect(passedThrough).toBe(true);
      expect(event.data).toBeUndefined();
    }
  });

  it('still applies ceOverrides', () => {
    const { event, passedThrough } = convert(
      record({ headers: binaryHeaders() }),
      origin({ overrides: { myext: 'overridden', region: 'eu' } }),
    );
    expect(passedThrough).toBe(true);
    expect(event.attributes.myext).toBe('overridden');
    expect(event.attributes.region).toBe('eu');
    expect(event.attributes.id).toBe('evt-1');
  });

  it('accepts a 0.3 event', () => {
    const { event, passedThrough } = convert(
      record({ headers: binaryHeaders({ ce_specversion: '0.3' }) }),
    );
    expect(passedThrough).toBe(true);
    expect(event.attributes.specversion).toBe('0.3');
  });

  it.each<[string, Record<string, Buffer | string>, string[]]>([
    ['without ce_type', { ce_type: '' }, ['ce_type']],
    ['with an unsupported ce_specversion', { ce_specversion: '2.0' }, []],
    ['with an invalid attribute name (ce_Bad)', { ce_Bad: 'x' }, []],
    ['with an invalid ce_time', { ce_time: 'yesterday' }, []],
  ])('wraps a record that claims to be a CloudEvent %s', (_name, change, drop) => {
    const headers: Headers = { ...binaryHeaders(), ...change };
    for (const name of drop) delete headers[name];
    const value = Buffer.from('payload');
    const { event, passedThrough } = convert(record({ value, headers }));
    expect(passedThrough).toBe(false);
    expect(event.attributes.type).toBe('dev.knative.kafka.event');
    expect(event.attributes.id).toBe('partition:3/offset:42');
    expect(event.attributes.specversion).toBe('1.0');
    // The would-be attributes survive as header extensions.
    expect(event.attributes.kafkaheadercespecversion).toBe(String(change.ce_specversion ?? '1.0'));
    expect(event.attributes.kafkaheaderceid).toBe('evt-1');
    expect(event.attributes.datacontenttype).toBe('application/octet-stream');
    expect(Buffer.from(bytesOf(event)).toString()).toBe('payload');
  });

  it('wraps an invalid one with the ceOverrides applied too', () => {
    const headers = { ...binaryHeaders(), ce_specversion: '9.9' };
    const { event, passedThrough } = convert(
      record({ headers }),
      origin({ overrides: { region: 'eu' } }),
    );
    expect(passedThrough).toBe(false);
    expect(event.attributes.region).toBe('eu');
  });
});

describe('recordToEvent: a structured-mode CloudEvent record passes through', () => {
  const structured = {
    specversion: '1.0',
    id: 'evt-9',
    source: '/orders',
    type: 'com.example.order.shipped',
    datacontenttype: 'application/json',
    tracing: 'abc',
    data: { order: 17, items: ['a', 'b'], note: 'ü' },
  };
  const text = JSON.stringify(structured);

  it.each([
    'application/cloudevents+json',
    'application/cloudevents+json; charset=utf-8',
    'Application/CloudEvents+JSON;charset=UTF-8',
  ])('reads the value as the event for content-type %j', (contentType) => {
    const { event, passedThrough } = convert(
      record({
        key: Buffer.from('k'),
        value: Buffer.from(text, 'utf8'),
        headers: { 'content-type': Buffer.from(contentType), 'x-extra': 'e' },
      }),
    );
    expect(passedThrough).toBe(true);
    expect(event.attributes).toEqual({
      specversion: '1.0',
      id: 'evt-9',
      source: '/orders',
      type: 'com.example.order.shipped',
      datacontenttype: 'application/json',
      tracing: 'abc',
    });
    expect(event.data).toEqual({ kind: 'json', text: JSON.stringify(structured.data) });
  });

  it('keeps the JSON text of data exactly, whitespace and number forms included', () => {
    const raw =
      '{"specversion":"1.0","id":"1","source":"/s","type":"t","data": {"n": 1.50, "big": 12345678901234567890}}';
    const { event, passedThrough } = convert(
      record({
        value: Buffer.from(raw),
        headers: { 'content-type': 'application/cloudevents+json' },
      }),
    );
    expect(passedThrough).toBe(true);
    expect(event.data).toEqual({
      kind: 'json',
      text: '{"n": 1.50, "big": 12345678901234567890}',
    });
  });

  it('applies ceOverrides to a structured event', () => {
    const { event } = convert(
      record({
        value: Buffer.from(text),
        headers: { 'content-type': 'application/cloudevents+json' },
      }),
      origin({ overrides: { tracing: 'override' } }),
    );
    expect(event.attributes.tracing).toBe('override');
    expect(event.attributes.id).toBe('evt-9');
    expect(event.data?.kind).toBe('json');
  });

  it.each<[string, Buffer | null]>([
    ['JSON that does not parse', Buffer.from('{"specversion":"1.0",')],
    ['a JSON array', Buffer.from('[]')],
    ['an event without type', Buffer.from('{"specversion":"1.0","id":"1","source":"/s"}')],
    [
      'an event with an invalid attribute name',
      Buffer.from('{"specversion":"1.0","id":"1","source":"/s","type":"t","Bad":"x"}'),
    ],
    ['no value', null],
  ])('wraps a structured record holding %s', (_name, value) => {
    const { event, passedThrough } = convert(
      record({ value, headers: { 'content-type': 'application/cloudevents+json' } }),
    );
    expect(passedThrough).toBe(false);
    expect(event.attributes.type).toBe('dev.knative.kafka.event');
    expect(event.attributes.datacontenttype).toBe('application/cloudevents+json');
    if (value === null) expect(event.data).toBeUndefined();
    else expect(Buffer.from(bytesOf(event))).toEqual(value);
  });

  it('wraps a record with a plain JSON content-type, even if the value looks like an event', () => {
    const { event, passedThrough } = convert(
      record({ value: Buffer.from(text), headers: { 'content-type': 'application/json' } }),
    );
    expect(passedThrough).toBe(false);
    expect(event.attributes.id).toBe('partition:3/offset:42');
    expect(event.attributes.datacontenttype).toBe('application/json');
    expect(Buffer.from(bytesOf(event)).toString()).toBe(text);
  });
});

describe('defaultConsumerGroup', () => {
  const source = (uid?: string): Resource => ({
    apiVersion: 'sources.knative.dev/v1beta1',
    kind: 'KafkaSource',
    metadata: { name: 'orders-source', namespace: 'team-a', ...(uid === undefined ? {} : { uid }) },
    spec: {},
  });

  it("names the group after the source's uid, as Knative does", () => {
    expect(defaultConsumerGroup(source('0b6c2f6e-1111-2222-3333-444455556666'))).toBe(
      'knative-kafka-source-0b6c2f6e-1111-2222-3333-444455556666',
    );
  });

  it('differs between two sources with different uids', () => {
    expect(defaultConsumerGroup(source('a'))).not.toBe(defaultConsumerGroup(source('b')));
  });

  it('falls back to the name without a uid', () => {
    expect(defaultConsumerGroup(source())).toBe('knative-kafka-source-orders-source');
  });
});

/** Counts the occurrences of `part` in `text`. */
function occurrences(text: string, part: string): number {
  return text.split(part).length - 1;
}

describe('describeKafkaError', () => {
  it('AuthenticationFailed for a KafkaJSSASLAuthenticationError', () => {
    const error = new KafkaJSSASLAuthenticationError(
      'SASL PLAIN authentication failed: Authentication failed: Invalid username or password',
    );
    expect(describeKafkaError(error)).toEqual({
      reason: 'AuthenticationFailed',
      message:
        'SASL PLAIN authentication failed: Authentication failed: Invalid username or password',
    });
  });

  it.each<[string, number]>([
    ['SASL_AUTHENTICATION_FAILED', 58],
    ['ILLEGAL_SASL_STATE', 34],
    ['UNSUPPORTED_SASL_MECHANISM', 33],
  ])('AuthenticationFailed for the protocol error %s', (type, code) => {
    const error = createErrorFromCode(code);
    expect(error.type).toBe(type);
    const described = describeKafkaError(error);
    expect(described.reason).toBe('AuthenticationFailed');
    expect(described.message).toBe(error.message);
  });

  it.each<[string, number]>([
    ['TOPIC_AUTHORIZATION_FAILED', 29],
    ['GROUP_AUTHORIZATION_FAILED', 30],
    ['CLUSTER_AUTHORIZATION_FAILED', 31],
  ])('NotAuthorized for %s, also when wrapped by the retrier', (type, code) => {
    const error = createErrorFromCode(code);
    expect(error.type).toBe(type);
    expect(describeKafkaError(error).reason).toBe('NotAuthorized');
    const wrapped = new KafkaJSNonRetriableError(error, { cause: error });
    const described = describeKafkaError(wrapped);
    expect(described.reason).toBe('NotAuthorized');
    // The wrapper repeats the message; it is shown once.
    expect(described.message).toBe(error.message);
  });

  it('TopicNotFound for UNKNOWN_TOPIC_OR_PARTITION after retries', () => {
    const inner = createErrorFromCode(3);
    const error = new KafkaJSNumberOfRetriesExceeded(inner, { retryCount: 5, retryTime: 1000 });
    const described = describeKafkaError(error);
    expect(described.reason).toBe('TopicNotFound');
    expect(described.message).toBe('This server does not host this topic-partition');
  });

  it('TopicNotFound from the message alone, deep in a cause chain', () => {
    const error = new Error('fetch failed', {
      cause: new Error('broker said: This server does not host this topic-partition'),
    });
    expect(describeKafkaError(error)).toEqual({
      reason: 'TopicNotFound',
      message: 'fetch failed: broker said: This server does not host this topic-partition',
    });
  });

  it.each([
    'Connection error: self-signed certificate in certificate chain',
    'Connection error: unable to verify the first certificate',
    'Connection error: 4096:error:0A00010B:SSL routines:ssl3_get_record:wrong version number',
  ])('TLSFailed for a connection error %j (checked before Unreachable)', (message) => {
    const error = new KafkaJSConnectionError(message, { broker: 'kafka:9093' });
    expect(describeKafkaError(error)).toEqual({ reason: 'TLSFailed', message });
  });

  it.each<[string, () => Error]>([
    [
      'a refused connection',
      () =>
        new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9092', {
          broker: '127.0.0.1:9092',
        }),
    ],
    ['a connection timeout', () => new KafkaJSConnectionError('Connection timeout')],
    [
      'a request timeout',
      () => new KafkaJSRequestTimeoutError('Request Metadata(key: 3) timed out'),
    ],
    ['no broker', () => new KafkaJSBrokerNotFound('Broker not found in the cluster')],
    ['a plain ENOTFOUND error', () => new Error('getaddrinfo ENOTFOUND kafka.invalid')],
    ['a plain EHOSTUNREACH error', () => new Error('connect EHOSTUNREACH 10.0.0.9:9092')],
  ])('Unreachable for %s', (_name, make) => {
    const error = make();
    expect(describeKafkaError(error)).toEqual({ reason: 'Unreachable', message: error.message });
  });

  it('Unreachable for a connection error wrapped by the retrier, message shown once', () => {
    const inner = new KafkaJSConnectionError(
      'Connection error: connect ECONNREFUSED 10.1.1.1:9092',
    );
    const error = new KafkaJSNumberOfRetriesExceeded(inner, { retryCount: 3, retryTime: 2000 });
    const described = describeKafkaError(error);
    expect(described.reason).toBe('Unreachable');
    expect(described.message).toBe('Connection error: connect ECONNREFUSED 10.1.1.1:9092');
  });

  it('follows originalError before cause, and joins distinct messages outermost first', () => {
    const error = {
      name: 'KafkaJSError',
      message: 'Consumer crashed',
      originalError: {
        name: 'KafkaJSSASLAuthenticationError',
        message: 'SASL SCRAM SHA512 authentication failed: bad proof',
      },
      cause: { name: 'Other', type: 'TOPIC_AUTHORIZATION_FAILED', message: 'not followed' },
    };
    const described = describeKafkaError(error);
    expect(described.reason).toBe('AuthenticationFailed');
    expect(described.message).toBe(
      'Consumer crashed: SASL SCRAM SHA512 authentication failed: bad proof',
    );
    expect(described.message).not.toContain('not followed');
  });

  it('includes every wrapped message exactly once', () => {
    const error = new Error('outer', {
      cause: new Error('middle', { cause: new Error('outer', { cause: new Error('inner') }) }),
    });
    const { reason, message } = describeKafkaError(error);
    expect(reason).toBe('UpstreamError');
    expect(message).toBe('outer: middle: inner');
    for (const part of ['outer', 'middle', 'inner']) expect(occurrences(message, part)).toBe(1);
  });

  it('prefers authentication over authorization, and authorization over a missing topic', () => {
    const sasl = { message: 'c', type: 'SASL_AUTHENTICATION_FAILED' };
    const authz = (cause?: unknown) => ({
      message: 'b',
      type: 'GROUP_AUTHORIZATION_FAILED',
      cause,
    });
    const topic = (cause?: unknown) => ({
      message: 'a',
      type: 'UNKNOWN_TOPIC_OR_PARTITION',
      cause,
    });
    expect(describeKafkaError(topic(authz(sasl)))).toEqual({
      reason: 'AuthenticationFailed',
      message: 'a: b: c',
    });
    expect(describeKafkaError(topic(authz())).reason).toBe('NotAuthorized');
    expect(describeKafkaError(topic()).reason).toBe('TopicNotFound');
  });

  it('stops on a cyclic chain and shows its message once', () => {
    const error: { message: string; cause?: unknown } = { message: 'loops' };
    error.cause = error;
    expect(describeKafkaError(error)).toEqual({ reason: 'UpstreamError', message: 'loops' });
  });

  it('UpstreamError for anything else', () => {
    const error = createErrorFromCode(-1);
    expect(describeKafkaError(error)).toEqual({ reason: 'UpstreamError', message: error.message });
  });

  it.each<[unknown, string]>([
    ['plain text', 'plain text'],
    [undefined, 'undefined'],
    [42, '42'],
  ])('describes the non-object %j by its string form', (error, message) => {
    expect(describeKafkaError(error)).toEqual({ reason: 'UpstreamError', message });
  });

  it('falls back to String(error) for an object without any message', () => {
    expect(describeKafkaError({ name: 'Weird' })).toEqual({
      reason: 'UpstreamError',
      message: '[object Object]',
    });
  });
});

describe('recordToEvent: records that would make an invalid event', () => {
  it.each(['9000000000000000', '253402300800000', '', '   '])(
    'leaves time out for the timestamp %j (beyond year 9999, or none)',
    (timestamp) => {
      const { event } = convert(record({ timestamp }));
      expect(event.attributes).not.toHaveProperty('time');
      expect(validateEvent(event)).toEqual([]);
    },
  );

  it('sets no datacontenttype from a content-type that is not printable ASCII', () => {
    const { event } = convert(record({ headers: { 'content-type': 'text/plain; name=é' } }));
    expect(event.attributes).not.toHaveProperty('datacontenttype');
    expect(validateEvent(event)).toEqual([]);
  });

  it('reads Content-Type in any case, and makes no kafkaheader extension of it, as Knative', () => {
    const { event } = convert(record({ headers: { 'Content-Type': 'application/json' } }));
    expect(event.attributes.datacontenttype).toBe('application/json');
    expect(event.attributes).not.toHaveProperty('kafkaheadercontenttype');
  });
});

describe('describeKafkaError: edge cases', () => {
  it('a DNS failure of a host named like ssl or tls is Unreachable, not TLSFailed', () => {
    const error = new Error('Connection error: getaddrinfo ENOTFOUND kafka-ssl.internal');
    expect(describeKafkaError(error).reason).toBe('Unreachable');
  });

  it('does not throw on an error whose type is not a string', () => {
    expect(describeKafkaError({ message: 'x', type: 3 }).reason).toBe('UpstreamError');
  });
});
