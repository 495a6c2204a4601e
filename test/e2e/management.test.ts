/** The management API and /v1/apply, as a user drives them. */
import { beforeAll, describe, expect, it } from 'vitest';
import { useServer } from '../support/e2e.js';
import { putResource } from '../support/server-process.js';
import { condition, untilSourceCondition } from '../support/sources.js';

type Json = Record<string, any>;

describe('management API', () => {
  const fx = useServer();
  let api: string;

  beforeAll(() => {
    api = `${fx.url}/v1/namespaces`;
  });

  const get = async (path: string): Promise<{ status: number; body: Json }> => {
    const response = await fetch(`${api}/${path}`);
    return { status: response.status, body: (await response.json()) as Json };
  };

  it('has the broker default in namespace default after the first start', async () => {
    const { status, body } = await get('default/brokers/default');
    expect(status).toBe(200);
    expect(body.kind).toBe('Broker');
    expect(body.spec.delivery).toEqual({
      retry: 10,
      backoffPolicy: 'exponential',
      backoffDelay: 'PT0.2S',
    });
    expect(body.status.address.url).toBe(`${fx.url}/default/default`);
    expect(body.status.conditions).toContainEqual(
      expect.objectContaining({ type: 'Ready', status: 'True' }),
    );
  });

  it('creates with 201, replaces with 200, bumps the generation only when spec changes', async () => {
    const spec = { broker: 'default', subscriber: { uri: 'http://127.0.0.1:9/a' } };
    const created = await putResource(fx.url, 'triggers', 'team', 't1', { spec });
    expect(created.status).toBe(201);
    const meta = created.body.metadata as Json;
    expect(meta).toMatchObject({ name: 't1', namespace: 'team', generation: 1 });
    expect(meta.uid).toMatch(/^[0-9a-f-]{36}$/);

    const same = await putResource(fx.url, 'triggers', 'team', 't1', {
      spec,
      metadata: { labels: { a: 'b' } },
    });
    expect(same.status).toBe(200);
    expect((same.body.metadata as Json).generation).toBe(1);

    const changed = await putResource(fx.url, 'triggers', 'team', 't1', {
      spec: { ...spec, subscriber: { uri: 'http://127.0.0.1:9/b' } },
    });
    expect(changed.status).toBe(200);
    expect(changed.body.metadata).toMatchObject({
      generation: 2,
      uid: meta.uid,
      creationTimestamp: meta.creationTimestamp,
    });
    // The trigger's broker does not exist in namespace team: it is stored, not Ready.
    expect((changed.body.status as Json).conditions).toContainEqual(
      expect.objectContaining({ type: 'Ready', status: 'False', reason: 'BrokerDoesNotExist' }),
    );
  });

  it('makes a trigger Ready once its broker is created', async () => {
    expect((await putResource(fx.url, 'brokers', 'team', 'default', {})).status).toBe(201);
    const { body } = await get('team/triggers/t1');
    expect(body.status.conditions).toContainEqual(
      expect.objectContaining({ type: 'Ready', status: 'True' }),
    );
    expect(body.status.subscriberUri).toBe('http://127.0.0.1:9/b');
  });

  it('lists and deletes', async () => {
    await putResource(fx.url, 'triggers', 'team', 't0', {
      spec: { broker: 'default', subscriber: { uri: 'http://x.example/' } },
    });
    const list = await get('team/triggers');
    expect(list.status).toBe(200);
    expect(list.body.items.map((i: Json) => i.metadata.name)).toEqual(['t0', 't1']);
    const deleted = await fetch(`${api}/team/triggers/t0`, { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    expect((await get('team/triggers/t0')).status).toBe(404);
    expect((await fetch(`${api}/team/triggers/t0`, { method: 'DELETE' })).status).toBe(404);
  });

  it('refuses an invalid resource with every problem and its field path', async () => {
    const { status, body } = await putResource(fx.url, 'triggers', 'team', 'bad', {
      spec: {
        subscriber: { uri: 'not a url' },
        filter: { attributes: { 'Bad-Key': 'x' } },
        filters: [{ exact: { type: 'a' }, prefix: { type: 'b' } }, { prefix: {} }],
        delivery: { retry: -1, backoffDelay: '1s', backoffPolicy: 'fibonacci' },
      },
    });
    expect(status).toBe(400);
    expect(body.code).toBe('VALIDATION_FAILED');
    const fields = (body.errors as { field: string }[]).map((e) => e.field);
    for (const field of [
      'spec.broker',
      'spec.subscriber.uri',
      'spec.filter.attributes',
      'spec.filters[0]',
      'spec.filters[1].prefix',
      'spec.delivery.retry',
      'spec.delivery.backoffDelay',
      'spec.delivery.backoffPolicy',
    ]) {
      expect(fields, field).toContain(field);
    }
  });

  it('refuses names that do not match the URL, reserved namespaces, and immutable changes', async () => {
    const mismatch = await putResource(fx.url, 'brokers', 'team', 'x', {
      metadata: { name: 'y' },
    });
    expect(mismatch.status).toBe(400);
    expect((mismatch.body.errors as Json[])[0]!.field).toBe('metadata.name');
    const reserved = await putResource(fx.url, 'brokers', 'webhooks', 'x', {});
    expect(reserved.status).toBe(400);
    const moved = await putResource(fx.url, 'triggers', 'team', 't1', {
      spec: { broker: 'other', subscriber: { uri: 'http://127.0.0.1:9/b' } },
    });
    expect(moved.status).toBe(400);
    expect(moved.body.errors).toEqual([expect.objectContaining({ field: 'spec.broker' })]);
  });

  it('answers 404 for an unknown collection and a missing resource, 400 for a bad body', async () => {
    expect((await get('team/widgets')).status).toBe(404);
    expect((await get('team/brokers/missing')).status).toBe(404);
    const response = await fetch(`${api}/team/brokers/x`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: '{',
    });
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });

  it('applies Knative manifests in multi-document YAML as they are', async () => {
    const yaml = `apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: shop
  namespace: apply
  annotations:
    eventing.knative.dev/broker.class: MTChannelBasedBroker
spec:
  delivery:
    retry: 3
    backoffPolicy: linear
    backoffDelay: PT1S
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: orders
  namespace: apply
spec:
  broker: shop
  filter:
    attributes:
      type: com.example.order
  subscriber:
    uri: http://127.0.0.1:9/orders
`;
    const post = (): Promise<Response> =>
      fetch(`${fx.url}/v1/apply`, {
        method: 'POST',
        headers: { 'content-type': 'application/yaml' },
        body: yaml,
      });
    const first = await post();
    expect(first.status).toBe(200);
    const items = ((await first.json()) as Json).items as Json[];
    expect(items.map((i) => [i.kind, i.name, i.action])).toEqual([
      ['Broker', 'shop', 'created'],
      ['Trigger', 'orders', 'created'],
    ]);
    expect(items[1]!.resource.status.conditions).toContainEqual(
      expect.objectContaining({ type: 'Ready', status: 'True' }),
    );
    const again = ((await (await post()).json()) as Json).items as Json[];
    expect(again.map((i) => i.action)).toEqual(['unchanged', 'unchanged']);
  });

  it('refuses a whole apply request when one document is invalid, naming the document', async () => {
    const response = await fetch(`${fx.url}/v1/apply`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([
        { kind: 'Broker', metadata: { name: 'fine', namespace: 'apply2' } },
        { kind: 'Service', apiVersion: 'serving.knative.dev/v1', metadata: { name: 'svc' } },
        { kind: 'Trigger', metadata: { name: 'broken' }, spec: { broker: 'fine' } },
      ]),
    });
    expect(response.status).toBe(400);
    const fields = (((await response.json()) as Json).errors as Json[]).map((e) => e.field);
    expect(fields).toEqual(expect.arrayContaining(['[1].kind', '[2].spec.subscriber']));
    expect((await get('apply2/brokers/fine')).status).toBe(404);
  });

  it('reports YAML syntax errors with their position', async () => {
    const response = await fetch(`${fx.url}/v1/apply`, {
      method: 'POST',
      headers: { 'content-type': 'application/yaml' },
      body: 'kind: Broker\nmetadata: [unclosed\n',
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as Json;
    expect(JSON.stringify(body.errors)).toMatch(/line \d+/);
  });

  it('stores a pulling source and shows its upstream failing in the status', async () => {
    const { status } = await putResource(fx.url, 'sources', 'default', 'mns', {
      apiVersion: 'sources.tributary.dev/v1alpha1',
      kind: 'MnsSource',
      spec: {
        // Nothing listens on port 1: the source cannot reach its queue.
        endpoint: 'http://127.0.0.1:1',
        accountId: '123456',
        queue: 'orders',
        credentials: { accessKey: { value: 'id' }, secretKey: { value: 'secret' } },
        sink: { ref: { kind: 'Broker', name: 'default' } },
      },
    });
    expect(status).toBe(201);
    expect((await get('default/sources')).body.items).toHaveLength(1);
    const failing = await untilSourceCondition(fx.url, 'mns', 'Connected', 'False', 'Unreachable');
    expect(condition(failing, 'Ready')).toMatchObject({ status: 'False', reason: 'Unreachable' });
    expect(failing.events.upstreamErrors).toBeGreaterThan(0);
    // The secret never comes back.
    const stored = (await get('default/sources/mns')).body;
    expect(stored.spec.credentials.secretKey).toEqual({ value: '<redacted>' });
    expect(
      (await fetch(`${fx.url}/v1/namespaces/default/sources/mns`, { method: 'DELETE' })).status,
    ).toBe(200);
  });
});
