/**
 * Events reach the subscriber unchanged (DESIGN.md section 5, "Fidelity"): attributes, extensions
 * and data, sent in binary, structured and batch mode, delivered in binary and structured mode.
 * The broker adds only knativearrivaltime.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { useServer } from '../support/e2e.js';
import type { ReceivedRequest, Receiver } from '../support/receiver.js';

describe('fidelity', () => {
  const fx = useServer(['--trigger-concurrency', '1']);
  let binary: Receiver;
  let structured: Receiver;
  let ingress: string;

  beforeAll(async () => {
    const broker = await fx.broker();
    binary = await fx.subscribe(broker, 'to-binary');
    structured = await fx.subscribe(broker, 'to-structured', { delivery: { format: 'json' } });
    ingress = `${fx.url}/default/${broker}`;
  });

  let sent = 0;
  /** Posts one request and returns what both subscribers received for it. */
  async function roundTrip(
    init: RequestInit,
    events = 1,
  ): Promise<{ bin: ReceivedRequest[]; json: ReceivedRequest[] }> {
    const response = await fetch(ingress, { method: 'POST', ...init });
    expect(response.status).toBe(202);
    const from = sent;
    sent += events;
    const bin = (await binary.waitFor(sent)).slice(from);
    const json = (await structured.waitFor(sent)).slice(from);
    return { bin, json };
  }

  function structuredBody(r: ReceivedRequest): Record<string, unknown> {
    expect(r.headers['content-type']).toMatch(/^application\/cloudevents\+json/i);
    return JSON.parse(r.body.toString('utf8')) as Record<string, unknown>;
  }

  it('keeps a binary event: attributes, percent-encoded extensions, raw bytes', async () => {
    const data = Buffer.from([0, 1, 2, 250, 255, 10, 13]);
    const { bin, json } = await roundTrip({
      headers: {
        'ce-specversion': '1.0',
        'ce-id': 'bin-1',
        'ce-source': 'https://example.com/source?x=1',
        'ce-type': 'com.example.binary',
        'ce-subject': 'Euro%20%E2%82%AC%20%F0%9F%98%80',
        'ce-time': '2018-04-26T14:48:09.123456789+02:00',
        'ce-dataschema': 'https://example.com/schema',
        'ce-myextension': 'value with spaces%25',
        'ce-traceparent': '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        'content-type': 'application/octet-stream',
      },
      body: data,
    });
    const r = bin[0]!;
    expect(r.headers['ce-id']).toBe('bin-1');
    expect(r.headers['ce-source']).toBe('https://example.com/source?x=1');
    expect(r.headers['ce-type']).toBe('com.example.binary');
    expect(r.headers['ce-specversion']).toBe('1.0');
    expect(r.headers['ce-subject']).toBe('Euro%20%E2%82%AC%20%F0%9F%98%80');
    expect(r.headers['ce-time']).toBe('2018-04-26T14:48:09.123456789+02:00');
    expect(r.headers['ce-dataschema']).toBe('https://example.com/schema');
    expect(r.headers['ce-myextension']).toBe('value%20with%20spaces%25');
    expect(r.headers['ce-traceparent']).toBe(
      '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    );
    expect(r.headers['content-type']).toBe('application/octet-stream');
    expect(r.headers['ce-knativearrivaltime']).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(r.headers.prefer).toBe('reply');
    expect(r.body.equals(data)).toBe(true);
    const ce = Object.keys(r.headers).filter((h) => h.startsWith('ce-'));
    expect(ce.sort()).toEqual(
      [
        'ce-specversion',
        'ce-id',
        'ce-source',
        'ce-type',
        'ce-subject',
        'ce-time',
        'ce-dataschema',
        'ce-myextension',
        'ce-traceparent',
        'ce-knativearrivaltime',
      ].sort(),
    );

    const s = structuredBody(json[0]!);
    expect(s).toMatchObject({
      specversion: '1.0',
      id: 'bin-1',
      subject: 'Euro € 😀',
      time: '2018-04-26T14:48:09.123456789+02:00',
      myextension: 'value with spaces%',
      datacontenttype: 'application/octet-stream',
      data_base64: data.toString('base64'),
    });
    expect(s.data).toBeUndefined();
  });

  it('keeps a structured event: typed extensions, JSON data text, big numbers, key order', async () => {
    const text =
      '{"specversion":"1.0","id":"json-1","source":"/s","type":"com.example.json","time":"2018-04-26T14:48:09+02:00",' +
      '"datacontenttype":"application/json","flag":true,"count":7,"name":"n",' +
      '"data":{"b":1,"a":12345678901234567890,"nested":[1.50,{"z":null}]}}';
    const { bin, json } = await roundTrip({
      headers: { 'content-type': 'application/cloudevents+json' },
      body: text,
    });
    const dataText = '{"b":1,"a":12345678901234567890,"nested":[1.50,{"z":null}]}';

    const r = bin[0]!;
    expect(r.body.toString('utf8')).toBe(dataText);
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.headers['ce-flag']).toBe('true');
    expect(r.headers['ce-count']).toBe('7');
    expect(r.headers['ce-time']).toBe('2018-04-26T14:48:09+02:00');

    const raw = json[0]!.body.toString('utf8');
    expect(raw).toContain(`"data":${dataText}`);
    const s = structuredBody(json[0]!);
    expect(s).toMatchObject({
      id: 'json-1',
      flag: true,
      count: 7,
      name: 'n',
      time: '2018-04-26T14:48:09+02:00',
    });
  });

  it('keeps data_base64 and string data of a structured event', async () => {
    const bytes = Buffer.from('binary\u0000data', 'utf8');
    const { bin, json } = await roundTrip({
      headers: { 'content-type': 'application/cloudevents+json' },
      body: JSON.stringify({
        specversion: '1.0',
        id: 'b64-1',
        source: '/s',
        type: 't',
        datacontenttype: 'application/octet-stream',
        data_base64: bytes.toString('base64'),
      }),
    });
    expect(bin[0]!.body.equals(bytes)).toBe(true);
    expect(structuredBody(json[0]!).data_base64).toBe(bytes.toString('base64'));

    const text = await roundTrip({
      headers: { 'content-type': 'application/cloudevents+json' },
      body: JSON.stringify({
        specversion: '1.0',
        id: 's-1',
        source: '/s',
        type: 't',
        datacontenttype: 'text/plain',
        data: "I'm just a string",
      }),
    });
    expect(text.bin[0]!.body.toString('utf8')).toBe("I'm just a string");
    expect(text.bin[0]!.headers['content-type']).toBe('text/plain');
    expect(structuredBody(text.json[0]!).data).toBe("I'm just a string");
  });

  it('delivers each event of a batch unchanged', async () => {
    const batch = [
      { specversion: '1.0', id: 'batch-1', source: '/s', type: 't', ext: 1, data: { n: 1 } },
      {
        specversion: '1.0',
        id: 'batch-2',
        source: '/s',
        type: 't',
        ext: 'two',
        datacontenttype: 'text/plain',
        data: 'two',
      },
    ];
    const { bin, json } = await roundTrip(
      {
        headers: { 'content-type': 'application/cloudevents-batch+json' },
        body: JSON.stringify(batch),
      },
      2,
    );
    expect(bin.map((r) => r.headers['ce-id'])).toEqual(['batch-1', 'batch-2']);
    expect(bin[0]!.body.toString()).toBe('{"n":1}');
    expect(bin[1]!.body.toString()).toBe('two');
    expect(bin[0]!.headers['ce-ext']).toBe('1');
    expect(json.map((r) => structuredBody(r))).toMatchObject([
      { id: 'batch-1', ext: 1, data: { n: 1 } },
      { id: 'batch-2', ext: 'two', data: 'two' },
    ]);
  });

  it('keeps CloudEvents 0.3 as 0.3', async () => {
    const { bin, json } = await roundTrip({
      headers: {
        'ce-specversion': '0.3',
        'ce-id': 'old-1',
        'ce-source': '/s',
        'ce-type': 't',
        'ce-schemaurl': 'https://example.com/schema',
        'content-type': 'application/json',
      },
      body: '{"v":3}',
    });
    expect(bin[0]!.headers['ce-specversion']).toBe('0.3');
    expect(bin[0]!.headers['ce-schemaurl']).toBe('https://example.com/schema');
    expect(bin[0]!.body.toString()).toBe('{"v":3}');
    expect(structuredBody(json[0]!)).toMatchObject({
      specversion: '0.3',
      schemaurl: 'https://example.com/schema',
      data: { v: 3 },
    });
  });

  it('invents no id or time', async () => {
    const { bin } = await roundTrip({
      headers: { 'ce-specversion': '1.0', 'ce-id': 'plain', 'ce-source': '/s', 'ce-type': 't' },
    });
    expect(bin[0]!.headers['ce-time']).toBeUndefined();
    expect(bin[0]!.headers['ce-id']).toBe('plain');
    expect(bin[0]!.body.length).toBe(0);
    expect(bin[0]!.headers['content-type']).toBeUndefined();
  });
});
