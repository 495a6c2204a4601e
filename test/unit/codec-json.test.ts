import { describe, expect, it } from 'vitest';
import {
  parseBatch,
  parseStructuredEvent,
  serializeBatch,
  serializeStructuredEvent,
} from '../../src/core/codec/index.js';
import type { CloudEvent } from '../../src/core/event.js';
import {
  BASE_ATTRIBUTES,
  STRUCTURED_BASE,
  bytes,
  catchError,
  problemFields,
} from './fixtures/codec/helpers.js';

function structured(members: string): string {
  return `{${STRUCTURED_BASE}${members.length > 0 ? ',' : ''}${members}}`;
}

describe('parseStructuredEvent: attributes', () => {
  it('reads the required attributes as strings, in member order', () => {
    const e = parseStructuredEvent(structured(''));
    expect(e).toEqual({ attributes: BASE_ATTRIBUTES });
    expect(Object.keys(e.attributes)).toEqual(['specversion', 'id', 'source', 'type']);
    expect(e.data).toBeUndefined();
  });

  it('keeps member order even when it differs from the usual one', () => {
    const e = parseStructuredEvent(
      '{"type":"t","zeta":"z","source":"/s","alpha":"a","id":"1","specversion":"1.0"}',
    );
    expect(Object.keys(e.attributes)).toEqual([
      'type',
      'zeta',
      'source',
      'alpha',
      'id',
      'specversion',
    ]);
  });

  it.each([
    ['boolean true stays boolean', '"flag":true', 'flag', true],
    ['boolean false stays boolean', '"flag":false', 'flag', false],
    ['integer stays number', '"count":7', 'count', 7],
    ['negative int32 minimum', '"count":-2147483648', 'count', -2147483648],
    ['string stays string', '"count":"7"', 'count', '7'],
    ['integer-valued number with exponent', '"count":1e2', 'count', 100],
  ])('extension: %s', (_name, member, attribute, value) => {
    const e = parseStructuredEvent(structured(member));
    expect(e.attributes[attribute]).toStrictEqual(value);
  });

  it('keeps time untouched', () => {
    const e = parseStructuredEvent(structured('"time":"2018-04-26T14:48:09+02:00"'));
    expect(e.attributes.time).toBe('2018-04-26T14:48:09+02:00');
  });

  it('treats a null member as unset', () => {
    const e = parseStructuredEvent(structured('"subject":null,"ext":null,"data_base64":null'));
    expect(e).toEqual({ attributes: BASE_ATTRIBUTES });
    expect('subject' in e.attributes).toBe(false);
  });

  it('a null required attribute is missing', () => {
    expect(
      problemFields(() => parseStructuredEvent(structured('').replace('"1.0"', 'null'))),
    ).toEqual(['specversion']);
  });

  it('accepts a 0.3 event and does not upgrade it', () => {
    const e = parseStructuredEvent(
      '{"specversion":"0.3","id":"1","source":"/s","type":"t","schemaurl":"/schema","datacontentencoding":"base64","data":"aGk="}',
    );
    expect(e.attributes.specversion).toBe('0.3');
    expect(e.attributes.schemaurl).toBe('/schema');
    expect(e.attributes.datacontentencoding).toBe('base64');
    expect('dataschema' in e.attributes).toBe(false);
    expect(e.data).toEqual({ kind: 'json', text: '"aGk="' });
  });

  it('decodes escaped member names', () => {
    const e = parseStructuredEvent(structured('"\\u0065xt":"x"'));
    expect(e.attributes.ext).toBe('x');
  });
});

describe('parseStructuredEvent: invalid events', () => {
  it.each([
    ['extension object', '"ext":{"a":1}', ['ext']],
    ['extension array', '"ext":[1]', ['ext']],
    ['extension float', '"ext":1.5', ['ext']],
    ['extension above int32', '"ext":2147483648', ['ext']],
    ['extension far above 2^53', '"ext":12345678901234567890', ['ext']],
    ['upper-case extension name', '"myExt":"x"', ['myExt']],
    ['extension name with a dash', '"my-ext":"x"', ['my-ext']],
    ['__proto__ member', '"__proto__":"x"', ['__proto__']],
    ['data and data_base64 together', '"data":1,"data_base64":"AA=="', ['data_base64']],
    ['data null and data_base64 together', '"data":null,"data_base64":"AA=="', ['data_base64']],
    ['data_base64 not base64', '"data_base64":"not base64!"', ['data_base64']],
    ['data_base64 with bad length', '"data_base64":"QUJDR"', ['data_base64']],
    ['data_base64 url-safe alphabet', '"data_base64":"-_-_"', ['data_base64']],
    ['data_base64 not a string', '"data_base64":12', ['data_base64']],
    ['invalid time', '"time":"2018-02-30T00:00:00Z"', ['time']],
    ['dataschema not absolute', '"dataschema":"/x"', ['dataschema']],
    ['empty subject', '"subject":""', ['subject']],
    ['duplicate member', '"ext":"a","ext":"b"', ['ext']],
    ['duplicate data member', '"data":1,"data":2', ['data']],
  ])('%s', (_name, members, fields) => {
    const error = catchError(() => parseStructuredEvent(structured(members)));
    expect(error.status).toBe(400);
    expect(error.problems.map((p) => p.field)).toEqual(fields);
  });

  it('rejects unsupported specversion with that message', () => {
    const error = catchError(() =>
      parseStructuredEvent('{"specversion":"2.0","id":"1","source":"/s","type":"t"}'),
    );
    expect(error.problems.map((p) => p.field)).toEqual(['specversion']);
    expect(error.problems[0]?.message).toContain('unsupported specversion "2.0"');
  });

  it('reports every problem', () => {
    expect(
      problemFields(() =>
        parseStructuredEvent('{"specversion":"1.0","id":7,"Bad":1,"ext":1.5,"time":"x"}'),
      ),
    ).toEqual(['Bad', 'id', 'source', 'type', 'ext', 'time']);
  });

  it.each([
    ['not JSON', '{"specversion":'],
    ['a JSON array', '[]'],
    ['a JSON string', '"event"'],
    ['empty text', ''],
  ])('rejects %s', (_name, input) => {
    expect(problemFields(() => parseStructuredEvent(input))).toEqual(['(body)']);
  });

  it('prefixes problems with the path', () => {
    expect(
      problemFields(() => parseStructuredEvent('{"specversion":"1.0","id":"1","type":"t"}', '[5]')),
    ).toEqual(['[5].source']);
  });
});

describe('parseStructuredEvent: data', () => {
  it.each([
    ['object keeps key order', '{"b":1,"a":2}'],
    ['big integer', '12345678901234567890'],
    ['big integer nested', '{"n":12345678901234567890,"f":1.50}'],
    ['whitespace inside', '{ "a" : [ 1 ,  2 ] ,\n\t"b":{} }'],
    ['explicit null payload', 'null'],
    ['string', '"I\'m just a string"'],
    ['string with escapes and braces', '"{\\"x\\": \\"}\\\\\\"\\u00e9"'],
    ['number', '-0.000e+10'],
    ['boolean', 'false'],
    ['empty array', '[]'],
    ['nested arrays with strings containing brackets', '[["]"],{"}":"["}]'],
  ])('%s: raw text kept byte for byte', (_name, raw) => {
    const e = parseStructuredEvent(`{${STRUCTURED_BASE},"data":  ${raw}  }`);
    expect(e.data).toEqual({ kind: 'json', text: raw });
  });

  it('finds data wherever it is among the members', () => {
    const e = parseStructuredEvent(
      '{ "data" : {"x":[1,2,{"data":3}]} , "specversion":"1.0","id":"1","source":"/s","type":"t" }',
    );
    expect(e.data).toEqual({ kind: 'json', text: '{"x":[1,2,{"data":3}]}' });
    expect(Object.keys(e.attributes)).toEqual(['specversion', 'id', 'source', 'type']);
  });

  it('ignores members named data inside extensions-like nested values', () => {
    const e = parseStructuredEvent(`{${STRUCTURED_BASE},"data":{"data_base64":"x"}}`);
    expect(e.data).toEqual({ kind: 'json', text: '{"data_base64":"x"}' });
  });

  it.each([
    ['AAECAwQF/w==', [0, 1, 2, 3, 4, 5, 255]],
    ['aGVsbG8=', [...bytes('hello')]],
    ['aGVsbG8', [...bytes('hello')]],
    ['', []],
    ['+/+/', [0xfb, 0xff, 0xbf]],
  ])('data_base64 %s decodes to bytes', (b64, expected) => {
    const e = parseStructuredEvent(structured(`"data_base64":"${b64}"`));
    expect(e.data?.kind).toBe('base64');
    expect(e.data?.kind === 'base64' ? [...e.data.bytes] : undefined).toEqual(expected);
  });

  it('keeps a BOM-free, multi-byte UTF-8 payload intact', () => {
    const e = parseStructuredEvent(structured('"data":"Euro € 😀"'));
    expect(e.data).toEqual({ kind: 'json', text: '"Euro € 😀"' });
  });
});

describe('serializeStructuredEvent', () => {
  it('writes attributes in stored order with their types, then data verbatim', () => {
    const e: CloudEvent = {
      attributes: { ...BASE_ATTRIBUTES, flag: true, count: 7, time: '2018-04-26T14:48:09+02:00' },
      data: { kind: 'json', text: '{"b":1,"a":12345678901234567890}' },
    };
    expect(serializeStructuredEvent(e)).toBe(
      `{${STRUCTURED_BASE},"flag":true,"count":7,"time":"2018-04-26T14:48:09+02:00","data":{"b":1,"a":12345678901234567890}}`,
    );
  });

  it('writes no data member without data', () => {
    expect(serializeStructuredEvent({ attributes: BASE_ATTRIBUTES })).toBe(`{${STRUCTURED_BASE}}`);
  });

  it('writes base64 data as data_base64', () => {
    const e: CloudEvent = {
      attributes: BASE_ATTRIBUTES,
      data: { kind: 'base64', bytes: new Uint8Array([0, 1, 2, 255]) },
    };
    expect(serializeStructuredEvent(e)).toBe(`{${STRUCTURED_BASE},"data_base64":"AAEC/w=="}`);
  });

  it.each<[string, string | undefined, Uint8Array, string]>([
    [
      'JSON bytes with a JSON type',
      'application/json',
      bytes('{"b":1,"a":2}'),
      '"data":{"b":1,"a":2}',
    ],
    [
      'JSON bytes with a +json type and params',
      'application/vnd.x+JSON; charset=utf-8',
      bytes('[12345678901234567890]'),
      '"data":[12345678901234567890]',
    ],
    [
      'invalid JSON with a JSON type',
      'application/json',
      bytes('{oops'),
      '"data_base64":"e29vcHM="',
    ],
    [
      'JSON with trailing newline (would not round-trip)',
      'application/json',
      bytes('{}\n'),
      '"data_base64":"e30K"',
    ],
    ['text/plain', 'text/plain', bytes('I\'m "text"'), '"data":"I\'m \\"text\\""'],
    ['application/xml', 'application/xml', bytes('<a/>'), '"data":"<a/>"'],
    ['+xml', 'application/atom+xml', bytes('<feed/>'), '"data":"<feed/>"'],
    ['javascript', 'application/javascript', bytes('f()'), '"data":"f()"'],
    ['form', 'application/x-www-form-urlencoded', bytes('a=1&b=2'), '"data":"a=1&b=2"'],
    ['text with invalid UTF-8', 'text/plain', new Uint8Array([0xff]), '"data_base64":"/w=="'],
    ['octet-stream', 'application/octet-stream', bytes('abc'), '"data_base64":"YWJj"'],
    ['no datacontenttype', undefined, bytes('{}'), '"data_base64":"e30="'],
  ])('bytes data: %s', (_name, contentType, body, member) => {
    const attributes =
      contentType === undefined
        ? BASE_ATTRIBUTES
        : { ...BASE_ATTRIBUTES, datacontenttype: contentType };
    const out = serializeStructuredEvent({ attributes, data: { kind: 'bytes', bytes: body } });
    expect(out.endsWith(`,${member}}`)).toBe(true);
    expect(() => JSON.parse(out) as unknown).not.toThrow();
  });
});

describe('parseBatch', () => {
  const ok = (id: string): string => `{${STRUCTURED_BASE.replace('A234-1234-1234', id)}}`;

  it('parses an empty batch', () => {
    expect(parseBatch('[]')).toEqual([]);
    expect(parseBatch(' [ ] ')).toEqual([]);
  });

  it('parses every event with its own data span', () => {
    const events = parseBatch(
      `[ ${ok('1')}, {${STRUCTURED_BASE},"data":{"b":1,"a":12345678901234567890}} ,{${STRUCTURED_BASE},"data_base64":"AQI="}]`,
    );
    expect(events).toHaveLength(3);
    expect(events[0]?.attributes.id).toBe('1');
    expect(events[0]?.data).toBeUndefined();
    expect(events[1]?.data).toEqual({ kind: 'json', text: '{"b":1,"a":12345678901234567890}' });
    expect(events[2]?.data).toEqual({ kind: 'base64', bytes: new Uint8Array([1, 2]) });
  });

  it('reports an invalid item with its index', () => {
    const error = catchError(() =>
      parseBatch(`[${ok('1')},{"specversion":"1.0","source":"/s","type":"t"},${ok('3')}]`),
    );
    expect(error.problems.map((p) => p.field)).toEqual(['[1].id']);
  });

  it('reports problems of several items', () => {
    expect(
      problemFields(() =>
        parseBatch(`[{"specversion":"1.0","id":"1","type":"t"},7,{${STRUCTURED_BASE},"x":1.5}]`),
      ),
    ).toEqual(['[0].source', '[1]', '[2].x']);
  });

  it('rejects mixed specversions', () => {
    const v03 = '{"specversion":"0.3","id":"2","source":"/s","type":"t"}';
    const error = catchError(() => parseBatch(`[${ok('1')},${v03}]`));
    expect(error.problems.map((p) => p.field)).toEqual(['[1].specversion']);
    expect(error.problems[0]?.message).toContain('same specversion');
  });

  it('accepts a batch of 0.3 events', () => {
    const v03 = '{"specversion":"0.3","id":"2","source":"/s","type":"t"}';
    expect(parseBatch(`[${v03},${v03}]`).map((e) => e.attributes.specversion)).toEqual([
      '0.3',
      '0.3',
    ]);
  });

  it.each([
    ['an object', ok('1')],
    ['not JSON', '[{'],
  ])('rejects %s', (_name, input) => {
    expect(problemFields(() => parseBatch(input))).toEqual(['(body)']);
  });

  it('serializeBatch and parseBatch round-trip', () => {
    const events = parseBatch(
      `[${ok('1')},{${STRUCTURED_BASE},"n":7,"data":{"b":1,"a":12345678901234567890}}]`,
    );
    expect(parseBatch(serializeBatch(events))).toEqual(events);
    expect(serializeBatch([])).toBe('[]');
  });
});
