import { describe, expect, it } from 'vitest';
import {
  decodeHttpMessage,
  encodeBatch,
  encodeBinary,
  encodeStructured,
  looksLikeCloudEvent,
} from '../../src/core/codec/index.js';
import type { HttpHeaders } from '../../src/core/codec/index.js';
import type { CloudEvent } from '../../src/core/event.js';
import {
  BASE_ATTRIBUTES,
  BINARY_BASE,
  STRUCTURED_BASE,
  bytes,
  catchError,
  problemFields,
  text,
} from './fixtures/codec/helpers.js';

const EMPTY = new Uint8Array(0);

function decodeOne(headers: HttpHeaders, body: Uint8Array = EMPTY): CloudEvent {
  const { events } = decodeHttpMessage(headers, body);
  expect(events).toHaveLength(1);
  return events[0] as CloudEvent;
}

describe('content mode detection', () => {
  const structuredBody = bytes(`{${STRUCTURED_BASE}}`);
  const batchBody = bytes(`[{${STRUCTURED_BASE}}]`);

  it.each<[string, string | undefined, Uint8Array, string]>([
    ['no content type', undefined, EMPTY, 'binary'],
    ['application/json', 'application/json', bytes('{}'), 'binary'],
    ['text/plain', 'text/plain', bytes('x'), 'binary'],
    ['structured', 'application/cloudevents+json', structuredBody, 'structured'],
    [
      'structured with charset',
      'application/cloudevents+json; charset=UTF-8',
      structuredBody,
      'structured',
    ],
    ['structured upper case', 'Application/CloudEvents+JSON', structuredBody, 'structured'],
    [
      'structured with quoted charset',
      'application/cloudevents+json;charset="utf-8"',
      structuredBody,
      'structured',
    ],
    ['batch', 'application/cloudevents-batch+json', batchBody, 'batch'],
    [
      'batch upper case with charset',
      'APPLICATION/CLOUDEVENTS-BATCH+JSON; charset=utf-8',
      batchBody,
      'batch',
    ],
  ])('%s', (_name, contentType, body, mode) => {
    const headers: Record<string, string> = { ...BINARY_BASE };
    if (contentType !== undefined) headers['content-type'] = contentType;
    expect(decodeHttpMessage(headers, body).mode).toBe(mode);
  });

  it.each([
    'application/cloudevents+avro',
    'application/cloudevents+protobuf',
    'application/cloudevents',
    'application/cloudevents+xml; charset=utf-8',
    'application/cloudevents-batch+xml',
    'application/cloudevents-batch+avro',
    'application/cloudevents-batch',
    'application/cloudevents+json; charset=iso-8859-1',
  ])('415 for %s', (contentType) => {
    const error = catchError(
      () => decodeHttpMessage({ 'content-type': contentType }, bytes('{}')),
      'UNSUPPORTED_MEDIA_TYPE',
    );
    expect(error.status).toBe(415);
  });

  it('structured mode ignores ce- headers (the payload is authoritative)', () => {
    const e = decodeOne(
      { 'content-type': 'application/cloudevents+json', 'ce-id': 'other', 'ce-extra': 'x' },
      bytes(`{${STRUCTURED_BASE}}`),
    );
    expect(e.attributes).toEqual(BASE_ATTRIBUTES);
  });

  it('structured mode with an empty body is a 400', () => {
    const error = catchError(() =>
      decodeHttpMessage({ 'content-type': 'application/cloudevents+json' }, EMPTY),
    );
    expect(error.status).toBe(400);
  });

  it('structured mode with invalid UTF-8 is a 400', () => {
    const body = new Uint8Array([...bytes(`{${STRUCTURED_BASE},"x":"`), 0xff, ...bytes('"}')]);
    expect(
      problemFields(() =>
        decodeHttpMessage({ 'content-type': 'application/cloudevents+json' }, body),
      ),
    ).toEqual(['(body)']);
  });

  it('structured mode skips a UTF-8 BOM', () => {
    const body = new Uint8Array([0xef, 0xbb, 0xbf, ...bytes(`{${STRUCTURED_BASE}}`)]);
    expect(decodeOne({ 'content-type': 'application/cloudevents+json' }, body).attributes).toEqual(
      BASE_ATTRIBUTES,
    );
  });

  it('batch mode returns every event, and [] returns none', () => {
    const headers = { 'content-type': 'application/cloudevents-batch+json' };
    const body = bytes(`[{${STRUCTURED_BASE}},{${STRUCTURED_BASE.replace('A234', 'B234')}}]`);
    const decoded = decodeHttpMessage(headers, body);
    expect(decoded.mode).toBe('batch');
    expect(decoded.events.map((e) => e.attributes.id)).toEqual([
      'A234-1234-1234',
      'B234-1234-1234',
    ]);
    expect(decodeHttpMessage(headers, bytes('[]'))).toEqual({ mode: 'batch', events: [] });
  });

  it('batch mode reports the index of an invalid item', () => {
    const body = bytes(`[{${STRUCTURED_BASE}},{"specversion":"1.0","source":"/s","type":"t"}]`);
    expect(
      problemFields(() =>
        decodeHttpMessage({ 'content-type': 'application/cloudevents-batch+json' }, body),
      ),
    ).toEqual(['[1].id']);
  });

  it('several Content-Type values are a 400', () => {
    expect(
      problemFields(() =>
        decodeHttpMessage(
          { ...BINARY_BASE, 'content-type': ['text/plain', 'application/json'] },
          EMPTY,
        ),
      ),
    ).toEqual(['content-type']);
  });
});

describe('binary mode decoding', () => {
  it('maps ce- headers to string attributes in header order', () => {
    const e = decodeOne({
      host: 'example.com',
      ...BINARY_BASE,
      'ce-time': '2018-04-05T17:31:00Z',
      'ce-comexampleextension1': 'value',
      'ce-flag': 'true',
      'ce-count': '7',
      'content-length': '0',
    });
    expect(e.attributes).toEqual({
      ...BASE_ATTRIBUTES,
      time: '2018-04-05T17:31:00Z',
      comexampleextension1: 'value',
      flag: 'true',
      count: '7',
    });
    expect(Object.keys(e.attributes)).toEqual([
      'specversion',
      'id',
      'source',
      'type',
      'time',
      'comexampleextension1',
      'flag',
      'count',
    ]);
    expect(e.data).toBeUndefined();
  });

  it('maps Content-Type to datacontenttype, kept as sent', () => {
    const e = decodeOne(
      { ...BINARY_BASE, 'content-type': 'Text/Plain; charset=UTF-8' },
      bytes('x'),
    );
    expect(e.attributes.datacontenttype).toBe('Text/Plain; charset=UTF-8');
  });

  it('an empty Content-Type is no datacontenttype', () => {
    const e = decodeOne({ ...BINARY_BASE, 'content-type': '' }, bytes('x'));
    expect('datacontenttype' in e.attributes).toBe(false);
  });

  it('the body becomes bytes data, byte for byte', () => {
    const body = new Uint8Array([0, 1, 2, 0xff, 0xfe]);
    const e = decodeOne({ ...BINARY_BASE, 'content-type': 'application/octet-stream' }, body);
    expect(e.data).toEqual({ kind: 'bytes', bytes: new Uint8Array([0, 1, 2, 0xff, 0xfe]) });
  });

  it('an empty body means no data', () => {
    const e = decodeOne({ ...BINARY_BASE, 'content-type': 'application/json' }, EMPTY);
    expect(e.data).toBeUndefined();
    expect('data' in e).toBe(false);
  });

  it.each([
    ['spec example', 'Euro%20%E2%82%AC%20%F0%9F%98%80', 'Euro € 😀'],
    ['lower-case hex', 'Euro%20%e2%82%ac', 'Euro €'],
    ['quoted-string', '"Euro \\"quoted\\""', 'Euro "quoted"'],
    ['lone percent kept', '100%', '100%'],
    ['one round only', '%2541', '%41'],
  ])('percent-decodes header values: %s', (_name, raw, expected) => {
    expect(decodeOne({ ...BINARY_BASE, 'ce-subject': raw }).attributes.subject).toBe(expected);
  });

  it('decodes percent-encoded required attributes too', () => {
    const e = decodeOne({ ...BINARY_BASE, 'ce-source': '/my%20source' });
    expect(e.attributes.source).toBe('/my source');
  });

  it.each<[string, Record<string, string | string[]>, string[]]>([
    ['overlong %C0%A0', { 'ce-subject': 'a%C0%A0' }, ['ce-subject']],
    ['%FF', { 'ce-ext': '%FF' }, ['ce-ext']],
    ['ce-datacontenttype', { 'ce-datacontenttype': 'text/plain' }, ['ce-datacontenttype']],
    ['dash in the attribute name', { 'ce-my-ext': 'x' }, ['ce-my-ext']],
    ['underscore in the attribute name', { 'ce-my_ext': 'x' }, ['ce-my_ext']],
    ['empty attribute name', { 'ce-': 'x' }, ['ce-']],
    ['attribute named data', { 'ce-data': 'x' }, ['ce-data']],
    ['several values', { 'ce-ext': ['a', 'b'] }, ['ce-ext']],
    ['unsupported specversion', { 'ce-specversion': '2.0' }, ['ce-specversion']],
    ['invalid time', { 'ce-time': '2018-02-30T00:00:00Z' }, ['ce-time']],
    ['empty subject', { 'ce-subject': '' }, ['ce-subject']],
    ['relative dataschema', { 'ce-dataschema': '/x' }, ['ce-dataschema']],
    ['empty id', { 'ce-id': '' }, ['ce-id']],
  ])('400: %s', (_name, extra, fields) => {
    const headers = { ...BINARY_BASE, ...extra };
    const error = catchError(() => decodeHttpMessage(headers, EMPTY));
    expect(error.status).toBe(400);
    expect(error.problems.map((p) => p.field)).toEqual(fields);
  });

  it('missing required headers are named by header', () => {
    expect(
      problemFields(() => decodeHttpMessage({ 'content-type': 'application/json' }, bytes('{}'))),
    ).toEqual(['ce-id', 'ce-source', 'ce-specversion', 'ce-type']);
  });

  it('accepts header names in any case', () => {
    const e = decodeOne({
      'CE-SpecVersion': '1.0',
      'Ce-Id': '1',
      'ce-SOURCE': '/s',
      'ce-type': 't',
      'Content-Type': 'text/plain',
    });
    expect(e.attributes).toEqual({
      specversion: '1.0',
      id: '1',
      source: '/s',
      type: 't',
      datacontenttype: 'text/plain',
    });
  });

  it('the same attribute under two casings is rejected', () => {
    expect(problemFields(() => decodeHttpMessage({ ...BINARY_BASE, 'CE-ID': 'x' }, EMPTY))).toEqual(
      ['ce-id'],
    );
  });

  it('reports every problem at once', () => {
    expect(
      problemFields(() =>
        decodeHttpMessage(
          { 'ce-specversion': '1.0', 'ce-datacontenttype': 'x', 'ce-time': 'now', 'ce-x': '%FF' },
          EMPTY,
        ),
      ),
    ).toEqual(['ce-datacontenttype', 'ce-x', 'ce-id', 'ce-source', 'ce-type', 'ce-time']);
  });

  it('accepts a 0.3 event without upgrading it', () => {
    const e = decodeOne(
      {
        ...BINARY_BASE,
        'ce-specversion': '0.3',
        'ce-schemaurl': '/schema',
        'ce-datacontentencoding': 'base64',
        'content-type': 'application/octet-stream',
      },
      bytes('aGk='),
    );
    expect(e.attributes.specversion).toBe('0.3');
    expect(e.attributes.schemaurl).toBe('/schema');
    expect(e.attributes.datacontentencoding).toBe('base64');
    expect(e.data).toEqual({ kind: 'bytes', bytes: bytes('aGk=') });
  });

  it('ignores undefined header values', () => {
    const e = decodeOne({ ...BINARY_BASE, 'ce-ext': undefined });
    expect('ext' in e.attributes).toBe(false);
  });
});

describe('encodeBinary', () => {
  it('writes ce- headers percent-encoded and Content-Type from datacontenttype', () => {
    const { headers, body } = encodeBinary({
      attributes: {
        ...BASE_ATTRIBUTES,
        subject: 'Euro € 😀',
        flag: true,
        count: 7,
        datacontenttype: 'text/plain; charset=utf-8',
      },
      data: { kind: 'bytes', bytes: bytes('hello') },
    });
    expect(headers).toEqual({
      'ce-specversion': '1.0',
      'ce-id': 'A234-1234-1234',
      'ce-source': 'https://github.com/cloudevents/spec/pull',
      'ce-type': 'com.github.pull_request.opened',
      'ce-subject': 'Euro%20%E2%82%AC%20%F0%9F%98%80',
      'ce-flag': 'true',
      'ce-count': '7',
      'content-type': 'text/plain; charset=utf-8',
    });
    expect(text(body)).toBe('hello');
  });

  it('never writes ce-datacontenttype', () => {
    const { headers } = encodeBinary({
      attributes: { ...BASE_ATTRIBUTES, datacontenttype: 'application/xml' },
    });
    expect(headers['ce-datacontenttype']).toBeUndefined();
    expect(headers['content-type']).toBe('application/xml');
  });

  it('no data: no body', () => {
    expect(encodeBinary({ attributes: BASE_ATTRIBUTES })).toEqual({
      headers: {
        'ce-specversion': '1.0',
        'ce-id': 'A234-1234-1234',
        'ce-source': 'https://github.com/cloudevents/spec/pull',
        'ce-type': 'com.github.pull_request.opened',
      },
      body: undefined,
    });
  });

  it('bytes without datacontenttype: no Content-Type', () => {
    const { headers, body } = encodeBinary({
      attributes: BASE_ATTRIBUTES,
      data: { kind: 'bytes', bytes: new Uint8Array([1, 2]) },
    });
    expect(headers['content-type']).toBeUndefined();
    expect(body).toEqual(new Uint8Array([1, 2]));
  });

  it('base64 data: the decoded bytes', () => {
    const { body } = encodeBinary({
      attributes: { ...BASE_ATTRIBUTES, datacontenttype: 'application/octet-stream' },
      data: { kind: 'base64', bytes: new Uint8Array([0, 255]) },
    });
    expect(body).toEqual(new Uint8Array([0, 255]));
  });

  it.each<[string, string | undefined, string, string, string]>([
    [
      'JSON object, no datacontenttype',
      undefined,
      '{"b":1,"a":2}',
      'application/json',
      '{"b":1,"a":2}',
    ],
    [
      'big integer kept',
      'application/json',
      '12345678901234567890',
      'application/json',
      '12345678901234567890',
    ],
    [
      'JSON string with application/json keeps quotes',
      'application/json',
      '"I\'m just a string"',
      'application/json',
      '"I\'m just a string"',
    ],
    [
      'JSON string with no datacontenttype keeps quotes',
      undefined,
      '"I\'m just a string"',
      'application/json',
      '"I\'m just a string"',
    ],
    [
      'JSON string with +json keeps quotes',
      'application/cloudevents+json',
      '"x"',
      'application/cloudevents+json',
      '"x"',
    ],
    [
      'JSON string with text/plain loses quotes',
      'text/plain',
      '"I\'m just a string"',
      'text/plain',
      "I'm just a string",
    ],
    ['escapes decoded for text', 'text/plain', '"a\\"b\\u20ac\\n"', 'text/plain', 'a"b€\n'],
    ['JSON string with application/xml', 'application/xml', '"<a/>"', 'application/xml', '<a/>'],
    ['non-string JSON with text/plain stays raw', 'text/plain', '{"a":1}', 'text/plain', '{"a":1}'],
    ['null with application/json', 'application/json', 'null', 'application/json', 'null'],
  ])('json data: %s', (_name, contentType, raw, expectedType, expectedBody) => {
    const attributes =
      contentType === undefined
        ? BASE_ATTRIBUTES
        : { ...BASE_ATTRIBUTES, datacontenttype: contentType };
    const { headers, body } = encodeBinary({ attributes, data: { kind: 'json', text: raw } });
    expect(headers['content-type']).toBe(expectedType);
    expect(text(body)).toBe(expectedBody);
  });

  it('encodes every header value to printable ASCII', () => {
    const { headers } = encodeBinary({
      attributes: { ...BASE_ATTRIBUTES, a: ' "%\u0000\u007f\u00e9😀', b: -5 },
    });
    for (const value of Object.values(headers)) expect(value).toMatch(/^[\x21-\x7e]*$/);
    expect(headers['ce-a']).toBe('%20%22%25%00%7F%C3%A9%F0%9F%98%80');
    expect(headers['ce-b']).toBe('-5');
  });
});

describe('encodeStructured and encodeBatch', () => {
  it('structured: the JSON event format with its content type', () => {
    const { headers, body } = encodeStructured({
      attributes: { ...BASE_ATTRIBUTES, count: 7 },
      data: { kind: 'json', text: '{"b":1}' },
    });
    expect(headers).toEqual({ 'content-type': 'application/cloudevents+json; charset=utf-8' });
    expect(text(body)).toBe(`{${STRUCTURED_BASE},"count":7,"data":{"b":1}}`);
  });

  it('batch: an array of events with the batch content type', () => {
    const e: CloudEvent = { attributes: BASE_ATTRIBUTES };
    const { headers, body } = encodeBatch([e, e]);
    expect(headers).toEqual({ 'content-type': 'application/cloudevents-batch+json' });
    expect(text(body)).toBe(`[{${STRUCTURED_BASE}},{${STRUCTURED_BASE}}]`);
    expect(text(encodeBatch([]).body)).toBe('[]');
  });
});

describe('looksLikeCloudEvent', () => {
  it.each<[string, HttpHeaders, boolean]>([
    ['binary', { 'ce-specversion': '1.0' }, true],
    ['binary, any case', { 'CE-SpecVersion': '1.0' }, true],
    ['structured', { 'content-type': 'application/cloudevents+json; charset=utf-8' }, true],
    ['structured, upper case', { 'content-type': 'Application/CloudEvents+JSON' }, true],
    ['batch', { 'content-type': 'application/cloudevents-batch+json' }, true],
    [
      'unknown format is still a CloudEvent',
      { 'content-type': 'application/cloudevents+avro' },
      true,
    ],
    ['plain JSON', { 'content-type': 'application/json' }, false],
    ['ce- headers without specversion', { 'ce-id': '1', 'content-type': 'text/plain' }, false],
    ['nothing', {}, false],
    ['undefined specversion', { 'ce-specversion': undefined }, false],
  ])('%s', (_name, headers, expected) => {
    expect(looksLikeCloudEvent(headers)).toBe(expected);
  });
});
