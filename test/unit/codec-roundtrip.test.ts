import { CloudEvent as SdkCloudEvent, HTTP } from 'cloudevents';
import { describe, expect, it } from 'vitest';
import {
  decodeHttpMessage,
  encodeBatch,
  encodeBinary,
  encodeStructured,
} from '../../src/core/codec/index.js';
import type { EncodedMessage, HttpHeaders } from '../../src/core/codec/index.js';
import type { AttributeValue, CloudEvent, EventData } from '../../src/core/event.js';
import {
  BASE_ATTRIBUTES,
  BINARY_BASE,
  STRUCTURED_BASE,
  bytes,
  text,
} from './fixtures/codec/helpers.js';

const STRUCTURED = { 'content-type': 'application/cloudevents+json; charset=utf-8' };

function decode(message: EncodedMessage): CloudEvent {
  const { events } = decodeHttpMessage(message.headers, message.body ?? new Uint8Array(0));
  expect(events).toHaveLength(1);
  return events[0] as CloudEvent;
}

function decodeStructured(json: string): CloudEvent {
  return decode({ headers: STRUCTURED, body: bytes(json) });
}

function decodeBinary(headers: HttpHeaders, body: Uint8Array = new Uint8Array(0)): CloudEvent {
  const { mode, events } = decodeHttpMessage(headers, body);
  expect(mode).toBe('binary');
  return events[0] as CloudEvent;
}

describe('structured -> structured is lossless', () => {
  it.each([
    ['minimal', `{${STRUCTURED_BASE}}`],
    ['typed extensions', `{${STRUCTURED_BASE},"flag":true,"off":false,"count":7,"neg":-1,"s":"7"}`],
    ['untouched time', `{${STRUCTURED_BASE},"time":"2018-04-26T14:48:09+02:00"}`],
    ['Object.prototype names as extensions', `{${STRUCTURED_BASE},"constructor":"c","tostring":1}`],
    ['fractional time', `{${STRUCTURED_BASE},"time":"2018-04-26T14:48:09.123456789Z"}`],
    ['big integer data', `{${STRUCTURED_BASE},"data":12345678901234567890}`],
    ['key order in data', `{${STRUCTURED_BASE},"data":{"b":1,"a":2}}`],
    ['whitespace in data', `{${STRUCTURED_BASE},"data":{ "b" : [1, 2.50] }}`],
    ['explicit null data', `{${STRUCTURED_BASE},"data":null}`],
    [
      'string data',
      `{${STRUCTURED_BASE},"datacontenttype":"text/plain","data":"I'm just a string"}`,
    ],
    [
      'data_base64',
      `{${STRUCTURED_BASE},"datacontenttype":"image/png","data_base64":"iVBORw0KGgo="}`,
    ],
    ['empty data_base64', `{${STRUCTURED_BASE},"data_base64":""}`],
    ['unicode attributes', `{${STRUCTURED_BASE},"subject":"Euro € 😀","x":"\\"quoted\\" 100%"}`],
    [
      '0.3 event',
      '{"specversion":"0.3","id":"1","source":"/s","type":"t","schemaurl":"/x","datacontentencoding":"base64","data":"aGk="}',
    ],
  ])('%s', (_name, json) => {
    const first = decodeStructured(json);
    const encoded = encodeStructured(first);
    const second = decode(encoded);
    expect(second).toEqual(first);
    // Compact input comes back byte for byte.
    if (!json.includes('{ ')) expect(text(encoded.body)).toBe(json);
  });

  it('keeps the 0.3 specversion', () => {
    const e = decode(
      encodeStructured(decodeStructured('{"specversion":"0.3","id":"1","source":"/s","type":"t"}')),
    );
    expect(e.attributes.specversion).toBe('0.3');
  });

  it('keeps data_base64 bytes exactly', () => {
    const all = new Uint8Array(256).map((_, i) => i);
    const e: CloudEvent = {
      attributes: { ...BASE_ATTRIBUTES, datacontenttype: 'application/octet-stream' },
      data: { kind: 'base64', bytes: all },
    };
    const back = decode(encodeStructured(e));
    expect(back.data?.kind).toBe('base64');
    expect(back).toEqual(e);
  });
});

describe('binary -> binary is lossless', () => {
  it.each<[string, Record<string, string>, Uint8Array]>([
    ['no data', { ...BINARY_BASE }, new Uint8Array(0)],
    [
      'text with extensions',
      { ...BINARY_BASE, 'ce-ext': 'true', 'ce-n': '7', 'content-type': 'text/plain' },
      bytes('hello'),
    ],
    [
      'percent-encoded values',
      {
        ...BINARY_BASE,
        'ce-subject': 'Euro%20%E2%82%AC%20%F0%9F%98%80',
        'ce-x': '%22quoted%22%20100%25',
      },
      new Uint8Array(0),
    ],
    [
      'binary payload',
      { ...BINARY_BASE, 'content-type': 'application/octet-stream' },
      new Uint8Array([0, 0xff, 0x80, 10]),
    ],
    [
      'JSON payload',
      { ...BINARY_BASE, 'content-type': 'application/json' },
      bytes('{"b":1,"a":12345678901234567890}\n'),
    ],
    ['payload without content type', { ...BINARY_BASE }, bytes('raw')],
    ['constructor extension', { ...BINARY_BASE, 'ce-constructor': 'c' }, new Uint8Array(0)],
    [
      '0.3 event',
      { ...BINARY_BASE, 'ce-specversion': '0.3', 'ce-schemaurl': '/x', 'content-type': 'text/xml' },
      bytes('<a/>'),
    ],
  ])('%s', (_name, headers, body) => {
    const first = decodeBinary(headers, body);
    const encoded = encodeBinary(first);
    expect(encoded.headers).toEqual(headers);
    const second = decode(encoded);
    expect(second).toEqual(first);
  });

  it('re-encodes lower-case hex and quoted strings canonically', () => {
    const first = decodeBinary({ ...BINARY_BASE, 'ce-a': 'caf%c3%a9', 'ce-b': '"x y"' });
    const { headers } = encodeBinary(first);
    expect(headers['ce-a']).toBe('caf%C3%A9');
    expect(headers['ce-b']).toBe('x%20y');
  });
});

describe('binary -> structured -> binary keeps bytes and attributes', () => {
  it.each<[string, string | undefined, Uint8Array, string]>([
    ['JSON', 'application/json', bytes('{"b":1,"a":12345678901234567890}'), 'data'],
    ['JSON with trailing newline', 'application/json', bytes('{"b":1}\n'), 'data_base64'],
    ['invalid JSON', 'application/json', bytes('{oops'), 'data_base64'],
    ['vendor +json', 'application/vnd.api+json', bytes('[1,2]'), 'data'],
    ['text', 'text/plain; charset=utf-8', bytes('I\'m "text" with € and \\'), 'data'],
    ['text with a BOM', 'text/plain', new Uint8Array([0xef, 0xbb, 0xbf, 0x41]), 'data'],
    ['text that looks like a JSON string', 'text/plain', bytes('"quoted"'), 'data'],
    ['XML', 'application/xml', bytes('<a b="c"/>'), 'data'],
    ['invalid UTF-8 text', 'text/plain', new Uint8Array([0x41, 0xc0, 0xa0]), 'data_base64'],
    ['octets', 'application/octet-stream', new Uint8Array([0, 1, 2, 254, 255]), 'data_base64'],
    ['no content type', undefined, bytes('{}'), 'data_base64'],
  ])('%s', (_name, contentType, body, member) => {
    const headers: Record<string, string> = {
      ...BINARY_BASE,
      'ce-subject': 'Euro%20%E2%82%AC',
      'ce-n': '7',
    };
    if (contentType !== undefined) headers['content-type'] = contentType;
    const first = decodeBinary(headers, body);
    const structured = encodeStructured(first);
    const parsed = JSON.parse(text(structured.body) ?? '') as Record<string, unknown>;
    expect(Object.keys(parsed)).toContain(member);
    expect(parsed.n).toBe('7'); // binary values are strings
    const again = encodeBinary(decode(structured));
    expect(again.headers).toEqual(headers);
    expect(again.body).toEqual(body);
  });
});

describe('structured -> binary', () => {
  it('keeps a big integer and key order in data', () => {
    const e = decodeStructured(`{${STRUCTURED_BASE},"data":{"b":1,"a":12345678901234567890}}`);
    const { headers, body } = encodeBinary(e);
    expect(headers['content-type']).toBe('application/json');
    expect(text(body)).toBe('{"b":1,"a":12345678901234567890}');
  });

  it('"I\'m just a string" with text/plain becomes a body without quotes', () => {
    const e = decodeStructured(
      `{${STRUCTURED_BASE},"datacontenttype":"text/plain","data":"I'm just a string"}`,
    );
    const { headers, body } = encodeBinary(e);
    expect(headers['content-type']).toBe('text/plain');
    expect(text(body)).toBe("I'm just a string");
  });

  it('"I\'m just a string" with application/json keeps its quotes', () => {
    const e = decodeStructured(
      `{${STRUCTURED_BASE},"datacontenttype":"application/json","data":"I'm just a string"}`,
    );
    expect(text(encodeBinary(e).body)).toBe('"I\'m just a string"');
  });

  it('"I\'m just a string" without datacontenttype keeps its quotes and gets application/json', () => {
    const e = decodeStructured(`{${STRUCTURED_BASE},"data":"I'm just a string"}`);
    const { headers, body } = encodeBinary(e);
    expect(headers['content-type']).toBe('application/json');
    expect(text(body)).toBe('"I\'m just a string"');
  });

  it('data_base64 becomes the raw bytes and comes back as data_base64', () => {
    const e = decodeStructured(
      `{${STRUCTURED_BASE},"datacontenttype":"application/octet-stream","data_base64":"AAEC/w=="}`,
    );
    const binary = encodeBinary(e);
    expect(binary.body).toEqual(new Uint8Array([0, 1, 2, 255]));
    expect(text(encodeStructured(decode(binary)).body)).toBe(
      `{${STRUCTURED_BASE},"datacontenttype":"application/octet-stream","data_base64":"AAEC/w=="}`,
    );
  });

  it('typed extensions become canonical strings, and time stays untouched', () => {
    const e = decodeStructured(
      `{${STRUCTURED_BASE},"flag":true,"count":7,"time":"2018-04-26T14:48:09+02:00"}`,
    );
    const { headers } = encodeBinary(e);
    expect(headers['ce-flag']).toBe('true');
    expect(headers['ce-count']).toBe('7');
    expect(headers['ce-time']).toBe('2018-04-26T14:48:09+02:00');
    expect(decode(encodeBinary(e)).attributes).toEqual({
      ...BASE_ATTRIBUTES,
      flag: 'true',
      count: '7',
      time: '2018-04-26T14:48:09+02:00',
    });
  });
});

describe('batch round trip', () => {
  it('encodeBatch then decode returns the same events', () => {
    const events = [
      decodeStructured(`{${STRUCTURED_BASE},"data":{"b":1,"a":12345678901234567890}}`),
      decodeStructured(`{${STRUCTURED_BASE},"ext":true,"data_base64":"AQI="}`),
      decodeBinary({ ...BINARY_BASE, 'content-type': 'text/plain' }, bytes('hi')),
    ];
    const { mode, events: back } = decodeHttpMessage(
      encodeBatch(events).headers,
      encodeBatch(events).body ?? new Uint8Array(0),
    );
    expect(mode).toBe('batch');
    expect(back.slice(0, 2)).toEqual(events.slice(0, 2));
    expect(back[2]?.data).toEqual({ kind: 'json', text: '"hi"' });
    expect(encodeBinary(back[2] as CloudEvent).body).toEqual(bytes('hi'));
  });
});

// A deterministic pseudo-random generator (mulberry32), so failures can be reproduced.
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('randomized round trips', () => {
  const alphabet = ['a', 'Z', '0', ' ', '"', '%', '\\', '\t', '~', 'é', '€', '😀', '\u0000', '%41'];
  const contentTypes = [undefined, 'application/json', 'text/plain', 'application/octet-stream'];

  function randomString(next: () => number): string {
    let out = '';
    const length = Math.floor(next() * 12);
    for (let i = 0; i < length; i++) out += alphabet[Math.floor(next() * alphabet.length)];
    return out;
  }

  function randomEvent(next: () => number): CloudEvent {
    const attributes: Record<string, AttributeValue> = {
      ...BASE_ATTRIBUTES,
      id: `id${randomString(next)}`,
      subject: `s${randomString(next)}`,
      ext: randomString(next),
    };
    if (next() < 0.5) attributes.num = Math.floor(next() * 2 ** 31) * (next() < 0.5 ? -1 : 1);
    if (next() < 0.5) attributes.bool = next() < 0.5;
    const contentType = contentTypes[Math.floor(next() * contentTypes.length)];
    if (contentType !== undefined) attributes.datacontenttype = contentType;
    const raw = new Uint8Array(Math.floor(next() * 20)).map(() => Math.floor(next() * 256));
    const roll = next();
    let data: EventData | undefined;
    if (roll < 0.25) data = undefined;
    else if (roll < 0.5) data = { kind: 'base64', bytes: raw };
    else if (roll < 0.75) data = { kind: 'json', text: JSON.stringify({ s: randomString(next) }) };
    else data = { kind: 'bytes', bytes: raw.length === 0 ? new Uint8Array([1]) : raw };
    return data === undefined ? { attributes } : { attributes, data };
  }

  function normalize(message: EncodedMessage): EncodedMessage {
    return message.body?.length === 0 ? { ...message, body: undefined } : message;
  }

  it('structured -> structured and binary -> binary for 300 random events', () => {
    const next = rng(20240613);
    for (let i = 0; i < 300; i++) {
      const e = randomEvent(next);
      // Structured keeps everything when the data is not opaque bytes.
      if (e.data?.kind !== 'bytes') expect(decode(encodeStructured(e))).toEqual(e);
      // Binary keeps attribute strings and the body bytes.
      // (An empty payload and no payload are the same empty HTTP body.)
      const binary = normalize(encodeBinary(e));
      const fromBinary = decode(binary);
      expect(encodeBinary(fromBinary)).toEqual(binary);
      for (const [name, value] of Object.entries(e.attributes)) {
        expect(fromBinary.attributes[name]).toBe(String(value));
      }
      // binary -> structured -> binary keeps the bytes and the headers.
      expect(normalize(encodeBinary(decode(encodeStructured(fromBinary))))).toEqual(binary);
    }
  });
});

describe('interoperability with the cloudevents SDK as an independent producer', () => {
  function sdkHeaders(headers: Record<string, unknown>): Record<string, string> {
    return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, String(v)]));
  }

  function sdkBody(body: unknown): Uint8Array {
    if (typeof body === 'string') return bytes(body);
    if (body instanceof Uint8Array) return body;
    throw new Error('unexpected SDK body');
  }

  const sdkEvent = new SdkCloudEvent({
    id: 'sdk-1',
    source: 'urn:example:sdk',
    type: 'com.example.sdk',
    time: '2018-04-26T12:48:09.000Z',
    subject: 'subject',
    datacontenttype: 'application/json',
    data: { b: 1, a: [true, null] },
    ext: 'value',
    flag: true,
    count: 7,
  });

  it('decodes an SDK binary message', () => {
    const message = HTTP.binary(sdkEvent);
    const e = decodeBinary(sdkHeaders(message.headers), sdkBody(message.body));
    expect(e.attributes).toMatchObject({
      specversion: '1.0',
      id: 'sdk-1',
      source: 'urn:example:sdk',
      type: 'com.example.sdk',
      time: '2018-04-26T12:48:09.000Z',
      subject: 'subject',
      ext: 'value',
      flag: 'true',
      count: '7',
    });
    expect(JSON.parse(text(encodeBinary(e).body) ?? '')).toEqual({ b: 1, a: [true, null] });
  });

  it('decodes an SDK structured message with typed extensions', () => {
    const message = HTTP.structured(sdkEvent);
    const e = decode({ headers: sdkHeaders(message.headers), body: sdkBody(message.body) });
    expect(e.attributes.flag).toBe(true);
    expect(e.attributes.count).toBe(7);
    expect(e.data).toEqual({ kind: 'json', text: '{"b":1,"a":[true,null]}' });
  });

  it('the SDK reads our binary and structured messages', () => {
    const ours = decodeStructured(
      `{${STRUCTURED_BASE},"time":"2018-04-26T12:48:09.000Z","datacontenttype":"application/json","ext":"v","data":{"b":1}}`,
    );
    for (const message of [encodeBinary(ours), encodeStructured(ours)]) {
      const body = text(message.body) ?? '';
      const theirs = HTTP.toEvent({ headers: message.headers, body }) as SdkCloudEvent;
      expect(theirs.id).toBe('A234-1234-1234');
      expect(theirs.source).toBe('https://github.com/cloudevents/spec/pull');
      expect(theirs.ext).toBe('v');
      expect(theirs.data).toEqual({ b: 1 });
    }
  });
});
