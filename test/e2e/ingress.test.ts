/** Every ingress status of DESIGN.md section 3, against the real CLI. */
import { beforeAll, describe, expect, it } from 'vitest';
import { useServer } from '../support/e2e.js';
import { binaryEvent } from '../support/server-process.js';

const attrs = { specversion: '1.0', id: 'i-1', source: '/test', type: 'com.example.test' };

describe('ingress', () => {
  const fx = useServer(['--max-event-size', '4KiB']);
  let ingress: string;

  beforeAll(() => {
    ingress = `${fx.url}/default/default`;
  });

  async function problem(response: Response): Promise<Record<string, unknown>> {
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    return (await response.json()) as Record<string, unknown>;
  }

  it('answers 202 to a binary-mode event', async () => {
    const response = await fetch(ingress, binaryEvent(attrs, '{"a":1}', 'application/json'));
    expect(response.status).toBe(202);
  });

  it('answers 202 to a structured-mode event', async () => {
    const response = await fetch(ingress, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents+json; charset=UTF-8' },
      body: JSON.stringify({ ...attrs, data: { a: 1 } }),
    });
    expect(response.status).toBe(202);
  });

  it('answers 202 to a batch, including an empty one', async () => {
    for (const batch of [[{ ...attrs }, { ...attrs, id: 'i-2' }], []]) {
      const response = await fetch(ingress, {
        method: 'POST',
        headers: { 'content-type': 'application/cloudevents-batch+json' },
        body: JSON.stringify(batch),
      });
      expect(response.status).toBe(202);
    }
  });

  it('accepts a trailing slash on the ingress path', async () => {
    const response = await fetch(`${ingress}/`, binaryEvent(attrs));
    expect(response.status).toBe(202);
  });

  it('accepts CloudEvents 0.3', async () => {
    const response = await fetch(ingress, binaryEvent({ ...attrs, specversion: '0.3' }));
    expect(response.status).toBe(202);
  });

  it('answers 400 with the field for an invalid event', async () => {
    const response = await fetch(
      ingress,
      binaryEvent({ specversion: '1.0', source: '/s', type: 't' }),
    );
    expect(response.status).toBe(400);
    const body = await problem(response);
    expect(body.code).toBe('INVALID_EVENT');
    expect(body.errors).toEqual(
      expect.arrayContaining([expect.objectContaining({ field: 'ce-id' })]),
    );
  });

  it('answers 400 for a structured body that is not JSON', async () => {
    const response = await fetch(ingress, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents+json' },
      body: '{"id": ',
    });
    expect(response.status).toBe(400);
    expect((await problem(response)).code).toBe('INVALID_EVENT');
  });

  it('answers 400 for an unsupported specversion', async () => {
    const response = await fetch(ingress, binaryEvent({ ...attrs, specversion: '2.0' }));
    expect(response.status).toBe(400);
  });

  it('answers 404 for an unknown broker or namespace', async () => {
    for (const path of ['/default/nope', '/elsewhere/default']) {
      const response = await fetch(`${fx.url}${path}`, binaryEvent(attrs));
      expect(response.status).toBe(404);
      expect((await problem(response)).code).toBe('BROKER_NOT_FOUND');
    }
  });

  it('answers 405 with Allow to other methods', async () => {
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
      const response = await fetch(ingress, { method });
      expect(response.status, method).toBe(405);
      expect(response.headers.get('allow')).toBe('POST, OPTIONS');
    }
  });

  it('answers OPTIONS with 200 and the webhook headers', async () => {
    const response = await fetch(ingress, { method: 'OPTIONS' });
    expect(response.status).toBe(200);
    expect(response.headers.get('allow')).toBe('POST, OPTIONS');
    expect(response.headers.get('webhook-allowed-origin')).toBe('*');
  });

  it('answers 413 above the configured size limit, 202 just below it', async () => {
    const big = await fetch(ingress, binaryEvent(attrs, 'x'.repeat(4097), 'text/plain'));
    expect(big.status).toBe(413);
    expect((await problem(big)).code).toBe('PAYLOAD_TOO_LARGE');
    const fits = await fetch(ingress, binaryEvent(attrs, 'x'.repeat(4000), 'text/plain'));
    expect(fits.status).toBe(202);
  });

  it('answers 415 to an unknown structured format', async () => {
    const response = await fetch(ingress, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents+avro' },
      body: 'x',
    });
    expect(response.status).toBe(415);
    expect((await problem(response)).code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('serves liveness and readiness', async () => {
    expect((await fetch(`${fx.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${fx.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
  });
});
