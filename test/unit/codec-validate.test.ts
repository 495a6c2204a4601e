import { describe, expect, it } from 'vitest';
import {
  isAbsoluteUri,
  isRfc3339Timestamp,
  isUriReference,
  validateEvent,
} from '../../src/core/codec/index.js';
import type { AttributeValue, CloudEvent } from '../../src/core/event.js';
import { BASE_ATTRIBUTES } from './fixtures/codec/helpers.js';

function event(attributes: Record<string, AttributeValue | undefined>): CloudEvent {
  const clean: Record<string, AttributeValue> = {};
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined) clean[name] = value;
  }
  return { attributes: clean };
}

function with03(extra: Record<string, AttributeValue | undefined> = {}): CloudEvent {
  return event({ ...BASE_ATTRIBUTES, specversion: '0.3', ...extra });
}

function with10(extra: Record<string, AttributeValue | undefined> = {}): CloudEvent {
  return event({ ...BASE_ATTRIBUTES, ...extra });
}

describe('validateEvent: valid events', () => {
  it.each<[string, CloudEvent]>([
    ['minimal 1.0', with10()],
    ['minimal 0.3', with03()],
    ['relative source', with10({ source: '/sensors/tn-1234567/alerts' })],
    [
      'all optional 1.0 attributes',
      with10({
        subject: 'x',
        time: '2018-04-26T14:48:09+02:00',
        dataschema: 'https://example.com/schema.json',
        datacontenttype: 'application/json; charset=utf-8',
      }),
    ],
    [
      '0.3 attributes',
      with03({
        schemaurl: '/schemas/event',
        datacontentencoding: 'base64',
        datacontenttype: 'text/plain',
      }),
    ],
    ['typed extensions', with10({ flag: true, count: 7, neg: -2147483648, max: 2147483647 })],
    ['empty string extension', with10({ note: '' })],
    ['extension name longer than 20 characters', with10({ averyveryverylongextensionname: 'x' })],
    ['digits-only extension name', with10({ '42': 'x' })],
    ['schemaurl in 1.0 is just an extension', with10({ schemaurl: 'not a uri' })],
    ['dataschema in 0.3 is just an extension', with03({ dataschema: 'not a uri' })],
    ['leap second', with10({ time: '2016-12-31T23:59:60Z' })],
    ['leap day', with10({ time: '2024-02-29T00:00:00Z' })],
    ['fractional seconds, lower-case t and z', with10({ time: '2018-04-05t17:31:00.123456789z' })],
  ])('%s', (_name, e) => {
    expect(validateEvent(e)).toEqual([]);
  });
});

describe('validateEvent: problems', () => {
  it.each<[string, CloudEvent, string[]]>([
    ['missing id', with10({ id: undefined }), ['id']],
    ['missing source', with10({ source: undefined }), ['source']],
    ['missing type', with10({ type: undefined }), ['type']],
    ['missing specversion', with10({ specversion: undefined }), ['specversion']],
    ['empty id', with10({ id: '' }), ['id']],
    ['numeric id', with10({ id: 7 }), ['id']],
    ['boolean type', with10({ type: true }), ['type']],
    ['specversion 2.0', with10({ specversion: '2.0' }), ['specversion']],
    ['specversion 1', with10({ specversion: '1' }), ['specversion']],
    ['upper-case attribute name', with10({ myExt: 'x' }), ['myExt']],
    ['dash in attribute name', with10({ 'my-ext': 'x' }), ['my-ext']],
    ['underscore in attribute name', with10({ my_ext: 'x' }), ['my_ext']],
    ['attribute named data', with10({ data: 'x' }), ['data']],
    ['empty subject', with10({ subject: '' }), ['subject']],
    ['numeric subject', with10({ subject: 5 }), ['subject']],
    ['impossible date', with10({ time: '2018-02-30T00:00:00Z' }), ['time']],
    ['not a leap year', with10({ time: '2023-02-29T00:00:00Z' }), ['time']],
    ['1900 is not a leap year', with10({ time: '1900-02-29T00:00:00Z' }), ['time']],
    ['month 13', with10({ time: '2018-13-01T00:00:00Z' }), ['time']],
    ['hour 24', with10({ time: '2018-01-01T24:00:00Z' }), ['time']],
    ['minute 60', with10({ time: '2018-01-01T00:60:00Z' }), ['time']],
    ['no offset', with10({ time: '2018-01-01T00:00:00' }), ['time']],
    ['date only', with10({ time: '2018-01-01' }), ['time']],
    ['offset without colon', with10({ time: '2018-01-01T00:00:00+0200' }), ['time']],
    ['offset hour 24', with10({ time: '2018-01-01T00:00:00+24:00' }), ['time']],
    ['space instead of T', with10({ time: '2018-01-01 00:00:00Z' }), ['time']],
    ['numeric time', with10({ time: 1524750489 }), ['time']],
    ['relative dataschema', with10({ dataschema: '/schema' }), ['dataschema']],
    ['empty dataschema', with10({ dataschema: '' }), ['dataschema']],
    ['dataschema with a space', with10({ dataschema: 'https://a.b/c d' }), ['dataschema']],
    ['0.3 schemaurl with a space', with03({ schemaurl: 'a b' }), ['schemaurl']],
    ['0.3 empty schemaurl', with03({ schemaurl: '' }), ['schemaurl']],
    [
      '0.3 numeric datacontentencoding',
      with03({ datacontentencoding: 1 }),
      ['datacontentencoding'],
    ],
    ['empty datacontenttype', with10({ datacontenttype: '' }), ['datacontenttype']],
    [
      'datacontenttype with CR LF',
      with10({ datacontenttype: 'text/plain\r\nx: y' }),
      ['datacontenttype'],
    ],
    ['float extension', with10({ ratio: 1.5 }), ['ratio']],
    ['extension above int32', with10({ big: 2147483648 }), ['big']],
    ['extension below int32', with10({ small: -2147483649 }), ['small']],
    ['unpaired surrogate', with10({ note: 'a\ud800b' }), ['note']],
  ])('%s', (_name, e, fields) => {
    expect(validateEvent(e).map((p) => p.field)).toEqual(fields);
  });

  it('reports every problem, not just the first', () => {
    const e = event({ specversion: '1.0', id: '', Bad: 'x', time: 'yesterday', ratio: 0.5 });
    expect(validateEvent(e).map((p) => p.field)).toEqual([
      'id',
      'source',
      'type',
      'Bad',
      'time',
      'ratio',
    ]);
  });

  it('prefixes fields with the path', () => {
    const problems = validateEvent(with10({ source: undefined, time: 'x' }), '[3]');
    expect(problems.map((p) => p.field)).toEqual(['[3].source', '[3].time']);
  });

  it('says "unsupported specversion"', () => {
    const [problem] = validateEvent(with10({ specversion: '0.2' }));
    expect(problem?.message).toContain('unsupported specversion');
  });

  it('does not change the event', () => {
    const e = with10({ time: '2018-04-26T14:48:09+02:00' });
    const copy = structuredClone(e);
    validateEvent(e);
    expect(e).toEqual(copy);
  });
});

describe('format helpers', () => {
  it.each([
    ['2018-04-26T14:48:09+02:00', true],
    ['2018-04-26T14:48:09.999999999-11:30', true],
    ['2018-04-26T14:48:09Z', true],
    ['2018-4-26T14:48:09Z', false],
    ['2018-04-26T14:48Z', false],
    ['2018-04-31T00:00:00Z', false],
    ['2018-04-26T14:48:09.Z', false],
    ['0000-01-01T00:00:00Z', true],
  ])('isRfc3339Timestamp(%s) = %s', (input, expected) => {
    expect(isRfc3339Timestamp(input)).toBe(expected);
  });

  it.each([
    ['https://example.com/x?y=1#z', true, true],
    ['urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66', true, true],
    ['mailto:a@b.c', true, true],
    ['/relative/path', false, true],
    ['', false, true],
    ['https://a.b/%2F', true, true],
    ['https://a.b/%zz', false, false],
    ['https://a.b/<x>', false, false],
    ['1http://a.b', false, true],
  ])('%s: absolute URI %s, URI-reference %s', (input, absolute, reference) => {
    expect(isAbsoluteUri(input)).toBe(absolute);
    expect(isUriReference(input)).toBe(reference);
  });
});
