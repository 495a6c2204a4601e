/**
 * What every webhook source (GitHubSource, GitLabSource) must do, through the real server: one
 * CloudEvent per delivery, redeliveries not stored twice, hostile requests refused with the right
 * status and nothing forwarded, the body limit, and the direct sink (a service, bypassing the
 * broker) with its retries, dead-letter sink and failure answer. Run per adapter by
 * webhook-sources.test.ts, on each backend.
 */
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { getJson, idOf, until } from '../support/delivery.js';
import type { ServerFixture } from '../support/e2e.js';
import { putResource } from '../support/server-process.js';
import type { Receiver } from '../support/receiver.js';

export interface WebhookSourceCase {
  readonly kind: 'GitHubSource' | 'GitLabSource';
  /** The kind's own spec fields, with `secret` as the source's secret token. */
  spec(secret: string): Record<string, unknown>;
  /** Headers of a genuine delivery of `body` with id `id`, signed or authenticated with `secret`. */
  headers(body: string, id: string, secret: string): Record<string, string>;
  /** The headers that authenticate a delivery (removed in the missing-signature case). */
  readonly authHeaders: readonly string[];
  /** The header that names the event. */
  readonly eventHeader: string;
  /** A delivery's body, and the CloudEvent it must become. */
  readonly sample: { readonly body: string; readonly type: string; readonly source: string };
  /** A `spec.eventTypes` that does not include the sample's event. */
  readonly otherEventTypes: readonly string[];
}

/** The fixture's server must run with `--webhook-max-body 64KiB`. */
export const WEBHOOK_MAX_BODY_ARGS = ['--webhook-max-body', '64KiB'] as const;

export function webhookSourceTests(fixture: ServerFixture, c: WebhookSourceCase): void {
  describe(`${c.kind}: webhook source conformance`, () => {
    const secret = `s-${randomUUID()}`;
    let sources = 0;
    let broker: string;
    let subscriber: Receiver;

    beforeAll(async () => {
      broker = await fixture.broker();
      subscriber = await fixture.subscribe(broker, `${broker}-all`);
    });

    /** Creates a source and returns its webhook URL (from its status). */
    async function source(
      sink: Record<string, unknown>,
      extra: Record<string, unknown> = {},
    ): Promise<string> {
      const name = `${c.kind.toLowerCase()}-${++sources}`;
      const { status, body } = await putResource(fixture.url, 'sources', 'default', name, {
        apiVersion: 'sources.knative.dev/v1alpha1',
        kind: c.kind,
        spec: { ...c.spec(secret), sink, ...extra },
      });
      expect(status).toBe(201);
      const st = body.status as { webhookUrl: string; conditions: { type: string }[] };
      expect(st.conditions.at(-1)).toEqual({ type: 'Ready', status: 'True' });
      expect(st.webhookUrl).toBe(`${fixture.url}/webhooks/default/${name}`);
      return st.webhookUrl;
    }

    const toBroker = (): Record<string, unknown> => ({ ref: { kind: 'Broker', name: broker } });

    function post(
      url: string,
      headers: Record<string, string>,
      body: string | Buffer = c.sample.body,
    ): Promise<Response> {
      return fetch(url, { method: 'POST', headers, body });
    }

    /**
     * Asserts nothing reached the subscriber from the requests before: a genuine delivery sent
     * after them must be the next event the subscriber gets.
     */
    async function nothingForwarded(url: string): Promise<void> {
      const before = subscriber.requests.length;
      const id = randomUUID();
      expect((await post(url, c.headers(c.sample.body, id, secret))).status).toBe(202);
      const received = await subscriber.waitFor(before + 1);
      expect(idOf(received[before]!)).toBe(id);
      expect(subscriber.requests.length).toBe(before + 1);
    }

    it('forwards a delivery as one CloudEvent: type, source, id, data byte for byte', async () => {
      const url = await source(toBroker());
      const id = randomUUID();
      const before = subscriber.requests.length;
      const response = await post(url, c.headers(c.sample.body, id, secret));
      expect(response.status).toBe(202);
      const event = (await subscriber.waitFor(before + 1))[before]!;
      expect(event.headers['ce-id']).toBe(id);
      expect(event.headers['ce-type']).toBe(c.sample.type);
      expect(event.headers['ce-source']).toBe(c.sample.source);
      expect(event.headers['ce-specversion']).toBe('1.0');
      expect(event.headers['content-type']).toBe('application/json');
      expect(Date.parse(String(event.headers['ce-time']))).not.toBeNaN();
      expect(event.body.equals(Buffer.from(c.sample.body))).toBe(true);
    });

    it('does not store a redelivery of the same delivery id twice', async () => {
      const url = await source(toBroker());
      const id = randomUUID();
      const before = subscriber.requests.length;
      const first = await post(url, c.headers(c.sample.body, id, secret));
      const again = await post(url, c.headers(c.sample.body, id, secret));
      expect([first.status, again.status]).toEqual([202, 202]);
      await nothingForwarded(url);
      expect(subscriber.requests.slice(before).filter((r) => idOf(r) === id)).toHaveLength(1);
      const { body } = await getJson(
        `${fixture.url}/v1/namespaces/default/sources/${url.split('/').at(-1)}`,
      );
      expect(body.status.events).toMatchObject({ forwarded: 2, duplicates: 1 });
    });

    it('refuses a wrong and a missing signature or token with 401, forwarding nothing', async () => {
      const url = await source(toBroker());
      const wrong = c.headers(c.sample.body, randomUUID(), `${secret}-not`);
      const missing = c.headers(c.sample.body, randomUUID(), secret);
      for (const name of c.authHeaders) delete missing[name];
      // The right signature of another body.
      const tampered = c.headers(c.sample.body, randomUUID(), secret);
      for (const headers of [wrong, missing]) {
        const response = await post(url, headers);
        expect(response.status).toBe(401);
        expect(response.headers.get('content-type')).toContain('application/problem+json');
        expect(((await response.json()) as { code: string }).code).toBe('UNAUTHORIZED');
      }
      if (c.kind === 'GitHubSource') {
        expect((await post(url, tampered, `${c.sample.body} `)).status).toBe(401);
      }
      await nothingForwarded(url);
    });

    it('refuses a missing event header (400), a content type that is not JSON (415) and truncated JSON (400)', async () => {
      const url = await source(toBroker());
      const noEvent = c.headers(c.sample.body, randomUUID(), secret);
      delete noEvent[c.eventHeader];
      expect((await post(url, noEvent)).status).toBe(400);
      const text = {
        ...c.headers(c.sample.body, randomUUID(), secret),
        'content-type': 'text/plain',
      };
      expect((await post(url, text)).status).toBe(415);
      const truncated = c.sample.body.slice(0, c.sample.body.length >> 1);
      const response = await post(url, c.headers(truncated, randomUUID(), secret), truncated);
      expect(response.status).toBe(400);
      expect(((await response.json()) as { detail: string }).detail).toContain('not valid JSON');
      await nothingForwarded(url);
    });

    it('answers 404 for an unknown source and 405 for GET, storing nothing', async () => {
      const url = await source(toBroker());
      const unknown = `${fixture.url}/webhooks/default/no-such-source`;
      const response = await post(unknown, c.headers(c.sample.body, randomUUID(), secret));
      expect(response.status).toBe(404);
      expect(((await response.json()) as { code: string }).code).toBe('SOURCE_NOT_FOUND');
      const get = await fetch(url);
      expect(get.status).toBe(405);
      expect(get.headers.get('allow')).toBe('POST');
      await nothingForwarded(url);
    });

    it('answers 202 for an event type not in spec.eventTypes and forwards nothing', async () => {
      const url = await source(toBroker(), { eventTypes: c.otherEventTypes });
      const response = await post(url, c.headers(c.sample.body, randomUUID(), secret));
      expect(response.status).toBe(202);
      const name = url.split('/').at(-1)!;
      const { body } = await getJson(`${fixture.url}/v1/namespaces/default/sources/${name}`);
      expect(body.status.events).toMatchObject({ received: 1, ignored: 1, forwarded: 0 });
      const all = await source(toBroker());
      await nothingForwarded(all);
    });

    it('answers 413 above --webhook-max-body, forwarding nothing', async () => {
      const url = await source(toBroker());
      const big = JSON.stringify({ padding: 'x'.repeat(70 * 1024) });
      const response = await post(url, c.headers(big, randomUUID(), secret), big);
      expect(response.status).toBe(413);
      await nothingForwarded(url);
    });

    describe('direct sink (a service, bypassing the broker)', () => {
      it('delivers to the service and answers with its status', async () => {
        const service = await fixture.receiver();
        service.responder = () => ({ status: 201 });
        const url = await source({ uri: service.url });
        const id = randomUUID();
        const response = await post(url, c.headers(c.sample.body, id, secret));
        expect(response.status).toBe(201);
        const [request] = await service.waitFor(1);
        expect(request!.headers['ce-id']).toBe(id);
        expect(request!.headers['ce-type']).toBe(c.sample.type);
        expect(request!.body.equals(Buffer.from(c.sample.body))).toBe(true);
      });

      it('retries a failing service with the source delivery spec, then answers its success', async () => {
        const service = await fixture.receiver();
        service.responder = (_r, i) => ({ status: i < 2 ? 503 : 200 });
        const url = await source(
          { uri: service.url },
          { delivery: { retry: 3, backoffPolicy: 'linear', backoffDelay: 'PT0.01S' } },
        );
        const id = randomUUID();
        expect((await post(url, c.headers(c.sample.body, id, secret))).status).toBe(200);
        expect(service.requests.map(idOf)).toEqual([id, id, id]);
      });

      it('answers 502 when the service keeps failing, and takes the redelivery afterwards', async () => {
        const service = await fixture.receiver();
        let failing = true;
        service.responder = () => ({ status: failing ? 500 : 200 });
        const url = await source(
          { uri: service.url },
          { delivery: { retry: 1, backoffPolicy: 'linear', backoffDelay: 'PT0.01S' } },
        );
        const id = randomUUID();
        const response = await post(url, c.headers(c.sample.body, id, secret));
        expect(response.status).toBe(502);
        const problem = (await response.json()) as { code: string; detail: string };
        expect(problem.code).toBe('SINK_FAILED');
        expect(problem.detail).toContain('answered 500');
        expect(service.requests).toHaveLength(2);
        // Nothing was stored, so the sender's redelivery must go through.
        failing = false;
        expect((await post(url, c.headers(c.sample.body, id, secret))).status).toBe(200);
        expect(service.requests.map(idOf)).toEqual([id, id, id]);
      });

      it('sends what the service refuses to the dead-letter sink, with the error extensions', async () => {
        const service = await fixture.receiver();
        service.responder = () => ({ status: 400, body: 'no thanks' });
        const dls = await fixture.receiver();
        const url = await source(
          { uri: service.url },
          { delivery: { retry: 2, deadLetterSink: { uri: dls.url } } },
        );
        const id = randomUUID();
        expect((await post(url, c.headers(c.sample.body, id, secret))).status).toBe(202);
        expect(service.requests).toHaveLength(1); // 400 is not retried
        const [dead] = await dls.waitFor(1);
        expect(dead!.headers['ce-id']).toBe(id);
        expect(dead!.headers['ce-knativeerrordest']).toBe(service.url);
        expect(dead!.headers['ce-knativeerrorcode']).toBe('400');
        expect(Buffer.from(String(dead!.headers['ce-knativeerrordata']), 'base64').toString()).toBe(
          'no thanks',
        );
      });

      it('answers 502 when the service is not listening', async () => {
        const service = await fixture.receiver();
        await service.stop();
        const url = await source({ uri: service.url }, { delivery: { retry: 0 } });
        const response = await post(url, c.headers(c.sample.body, randomUUID(), secret));
        expect(response.status).toBe(502);
        const name = url.split('/').at(-1)!;
        const status = await until(
          'the failure counted in the status',
          async () => (await getJson(`${fixture.url}/v1/namespaces/default/sources/${name}`)).body,
          (b) => b.status.events.failed === 1,
        );
        expect(status.status.lastError.message).toContain('request failed');
      });
    });
  });
}
