/**
 * The CloudEvents Subscriptions API through the real server, by a client that knows only that
 * specification (plain fetch, its paths, fields and status codes): a subscription receives the
 * events its source, types and filters select at its sink; create, read, list, replace and delete;
 * refusals name the field; and the subscription is a normal trigger in the management API.
 */
import { describe, expect, it } from 'vitest';
import { useServer } from '../support/e2e.js';
import type { Receiver } from '../support/receiver.js';
import { putResource } from '../support/server-process.js';

const BASE = '/v1/namespaces/default/subscriptions';

interface Answer {
  status: number;
  location: string | null;
  contentType: string | null;
  body: any;
}

async function call(url: string, method: string, body?: unknown): Promise<Answer> {
  const response = await fetch(url, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return {
    status: response.status,
    location: response.headers.get('location'),
    contentType: response.headers.get('content-type'),
    body: text === '' ? undefined : JSON.parse(text),
  };
}

const ids = (receiver: Receiver): string[] =>
  receiver.requests.map((r) => String(r.headers['ce-id']));

describe('CloudEvents Subscriptions API', () => {
  const fx = useServer(['--trigger-concurrency', '1']);
  const api = (path = ''): string => `${fx.url}${BASE}${path}`;

  it('creates a subscription that gets only the events it selects, at its sink', async () => {
    const broker = await fx.broker();
    const sink = await fx.receiver();
    const created = await call(api(), 'POST', {
      id: 'ignored-on-create',
      source: '/orders',
      types: ['com.example.created', 'com.example.paid'],
      config: { broker },
      filters: [{ prefix: { subject: 'eu/' } }, { sql: "priority <> 'low'" }],
      sink: sink.url,
      protocol: 'HTTP',
      protocolsettings: { method: 'POST' },
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect(id).not.toBe('ignored-on-create');
    expect(created.location).toBe(`${BASE}/${id}`);
    expect(created.body).toEqual({
      id,
      source: '/orders',
      types: ['com.example.created', 'com.example.paid'],
      config: { broker },
      filters: [{ prefix: { subject: 'eu/' } }, { sql: "priority <> 'low'" }],
      sink: sink.url,
      protocol: 'HTTP',
    });

    const event = {
      source: '/orders',
      type: 'com.example.created',
      subject: 'eu/1',
      priority: 'high',
    };
    // Each misses one condition; then one that meets them all.
    await fx.send(broker, { ...event, source: '/users' });
    await fx.send(broker, { ...event, type: 'com.example.shipped' });
    await fx.send(broker, { ...event, subject: 'us/1' });
    await fx.send(broker, { ...event, priority: 'low' });
    const first = await fx.send(broker, event);
    await sink.waitFor(1);
    const second = await fx.send(broker, { ...event, type: 'com.example.paid' });
    await sink.waitFor(2);
    // One delivery at a time, in order: nothing else got through before or between.
    expect(ids(sink)).toEqual([first, second]);

    // GET of the Location gives the same subscription; the list has it.
    const read = await call(`${fx.url}${created.location}`, 'GET');
    expect(read.status).toBe(200);
    expect(read.body).toEqual(created.body);
    const list = await call(api(), 'GET');
    expect(list.status).toBe(200);
    expect(list.body).toContainEqual(created.body);
  });

  it('is a normal trigger in the management API, labelled with the id', async () => {
    const sink = await fx.receiver();
    const created = await call(api(), 'POST', {
      types: ['com.example.visible'],
      sink: sink.url,
      protocol: 'HTTP',
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect(created.body.config).toEqual({ broker: 'default' });
    const trigger = await call(`${fx.url}/v1/namespaces/default/triggers/${id}`, 'GET');
    expect(trigger.status).toBe(200);
    expect(trigger.body.metadata.labels).toEqual({ 'subscriptions.cloudevents.io/id': id });
    expect(trigger.body.spec).toMatchObject({
      broker: 'default',
      filters: [{ exact: { type: 'com.example.visible' } }],
      subscriber: { uri: sink.url },
    });
    expect(
      trigger.body.status.conditions.find((c: { type: string }) => c.type === 'Ready').status,
    ).toBe('True');
  });

  it('replaces with PUT (and creates with the id of the URL), deletes with DELETE', async () => {
    const broker = await fx.broker();
    const sink = await fx.receiver();
    const id = 'orders-feed';
    const body = { types: ['com.example.a'], config: { broker }, sink: sink.url, protocol: 'HTTP' };
    const created = await call(api(`/${id}`), 'PUT', body);
    expect(created.status).toBe(201);
    expect(created.location).toBe(`${BASE}/${id}`);
    expect(created.body.id).toBe(id);

    const replaced = await call(api(`/${id}`), 'PUT', {
      ...body,
      id,
      types: ['com.example.b'],
    });
    expect(replaced.status).toBe(200);
    expect(replaced.body.types).toEqual(['com.example.b']);
    expect((await call(api(`/${id}`), 'GET')).body.types).toEqual(['com.example.b']);

    // The replacement is in force: an event of the old type is not delivered, one of the new is.
    await fx.send(broker, { type: 'com.example.a' });
    const wanted = await fx.send(broker, { type: 'com.example.b' });
    await sink.waitFor(1);
    expect(ids(sink)).toEqual([wanted]);

    const deleted = await call(api(`/${id}`), 'DELETE');
    expect(deleted.status).toBe(200);
    expect(deleted.body).toMatchObject({ id, types: ['com.example.b'], sink: sink.url });
    const gone = await call(api(`/${id}`), 'GET');
    expect(gone.status).toBe(404);
    expect(gone.contentType).toMatch(/^application\/problem\+json/);
    expect(gone.body.code).toBe('NOT_FOUND');
    expect((await call(api(`/${id}`), 'DELETE')).status).toBe(404);
    expect((await call(`${fx.url}/v1/namespaces/default/triggers/${id}`, 'GET')).status).toBe(404);
    expect(((await call(api(), 'GET')).body as { id: string }[]).map((s) => s.id)).not.toContain(
      id,
    );
  });

  it('refuses what it cannot honour, naming each field', async () => {
    const sink = await fx.receiver();
    const refused = await call(api(), 'POST', {
      types: [''],
      filters: [
        { exact: { type: 'x' } },
        { prefix: {} },
        { regex: { type: '.*' } },
        { all: [{ sql: 'type =' }] },
        { exact: { type: 'x' }, suffix: { type: 'y' } },
      ],
      sink: 'not a url',
      protocol: 'MQTT5',
    });
    expect(refused.status).toBe(400);
    expect(refused.contentType).toMatch(/^application\/problem\+json/);
    expect(refused.body.code).toBe('VALIDATION_FAILED');
    const fields = (refused.body.errors as { field: string }[]).map((e) => e.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        'types[0]',
        'filters[1].prefix',
        'filters[2].regex',
        'filters[3].all[0].sql',
        'filters[4]',
        'sink',
        'protocol',
      ]),
    );
    expect(fields.some((f) => f.startsWith('filters[0]'))).toBe(false);

    const missing = await call(api(), 'POST', { sink: sink.url });
    expect(missing.status).toBe(400);
    expect(missing.body.errors).toEqual([expect.objectContaining({ field: 'protocol' })]);

    for (const [body, field] of [
      [{ protocolsettings: { headers: { authorization: 'x' } } }, 'protocolsettings.headers'],
      [{ sinkcredential: { credentialtype: 'PLAIN' } }, 'sinkcredential'],
      [{ filter: [] }, 'filter'],
    ] as const) {
      const answer = await call(api(), 'POST', { sink: sink.url, protocol: 'HTTP', ...body });
      expect(answer.status, field).toBe(400);
      expect((answer.body.errors as { field: string }[]).map((e) => e.field)).toEqual([field]);
    }

    // Nothing was created by the refused requests.
    const list = (await call(api(), 'GET')).body as { sink: string }[];
    expect(list.filter((s) => s.sink === sink.url)).toEqual([]);
  });

  it('does not take over a trigger that is not a subscription', async () => {
    const sink = await fx.receiver();
    const { status } = await putResource(fx.url, 'triggers', 'default', 'hand-made', {
      spec: { broker: 'default', subscriber: { uri: sink.url } },
    });
    expect(status).toBe(201);
    expect((await call(api('/hand-made'), 'GET')).status).toBe(404);
    const put = await call(api('/hand-made'), 'PUT', { sink: sink.url, protocol: 'HTTP' });
    expect(put.status).toBe(409);
    expect(put.body.code).toBe('CONFLICT');
    expect((await call(api('/hand-made'), 'DELETE')).status).toBe(404);
    expect((await call(`${fx.url}/v1/namespaces/default/triggers/hand-made`, 'GET')).status).toBe(
      200,
    );
  });
});
