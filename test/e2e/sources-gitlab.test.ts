/**
 * GitLabSource through the real server with payloads written from GitLab's documented examples
 * (test/fixtures/gitlab/: push, tag push, issue, note, merge request, pipeline, job, deployment,
 * release): each becomes one CloudEvent with Knative's type and source and the `comgitlabevent`
 * extension; the id is GitLab's Idempotency-Key (else X-Gitlab-Event-UUID). Also the signing
 * token (Standard Webhooks signatures), as GitLab 19 sends them.
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { getJson, idOf } from '../support/delivery.js';
import { useServer } from '../support/e2e.js';
import { putResource, ROOT } from '../support/server-process.js';
import type { Receiver } from '../support/receiver.js';

interface Fixture {
  readonly event: string;
  readonly projectUrl: string;
  readonly payload: Record<string, unknown>;
}

const dir = join(ROOT, 'test/fixtures/gitlab');
const hooks = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Fixture);

/** What GitLab's X-Gitlab-Event becomes in the CloudEvent type (Knative's GitLabSource). */
const TYPES: Record<string, string> = {
  'Push Hook': 'push',
  'Tag Push Hook': 'tag_push',
  'Issue Hook': 'issue',
  'Note Hook': 'note',
  'Merge Request Hook': 'merge_request',
  'Pipeline Hook': 'pipeline',
  'Job Hook': 'job',
  'Deployment Hook': 'deployment',
  'Release Hook': 'release',
};

const TOKEN = 'gitlab-secret-token';
const SIGNING_KEY = randomBytes(32);
const SIGNING_TOKEN = `whsec_${SIGNING_KEY.toString('base64')}`;

function standardSignature(id: string, timestamp: string, body: string): string {
  const mac = createHmac('sha256', SIGNING_KEY).update(`${id}.${timestamp}.${body}`).digest();
  return `v1,${mac.toString('base64')}`;
}

describe('GitLabSource with the documented hook payloads', () => {
  const fixture = useServer();
  let broker: string;
  let subscriber: Receiver;

  beforeAll(async () => {
    broker = await fixture.broker();
    subscriber = await fixture.subscribe(broker, 'gitlab-all');
  });

  async function source(name: string, projectUrl: string, extra = {}): Promise<string> {
    const { status, body } = await putResource(fixture.url, 'sources', 'default', name, {
      apiVersion: 'sources.knative.dev/v1alpha1',
      kind: 'GitLabSource',
      spec: {
        projectUrl,
        secretToken: { value: TOKEN },
        sink: { ref: { kind: 'Broker', name: broker } },
        ...extra,
      },
    });
    expect(status).toBe(201);
    return (body.status as { webhookUrl: string }).webhookUrl;
  }

  it('has a fixture for each of the nine hooks', () => {
    expect(hooks.map((h) => h.event).sort()).toEqual(Object.keys(TYPES).sort());
  });

  it('turns each hook into one CloudEvent: type, source, id, comgitlabevent, data', async () => {
    // The documented examples come from several projects: one source for each.
    const urls = new Map<string, string>();
    for (const projectUrl of new Set(hooks.map((h) => h.projectUrl))) {
      urls.set(projectUrl, await source(`gitlab-project-${urls.size}`, projectUrl));
    }
    const sent = new Map<string, { hook: Fixture; body: string }>();
    const before = subscriber.requests.length;
    for (const [i, hook] of hooks.entries()) {
      const url = urls.get(hook.projectUrl)!;
      const body = JSON.stringify(hook.payload, null, 2);
      const id = randomUUID();
      // Older GitLab sends only the event UUID; 17.4 and later also the Idempotency-Key.
      const ids: Record<string, string> = i % 2 === 0 ? { 'idempotency-key': id } : {};
      const response = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'GitLab/17.6.0',
          'x-gitlab-event': hook.event,
          'x-gitlab-token': TOKEN,
          'x-gitlab-event-uuid': i % 2 === 0 ? randomUUID() : id,
          'x-gitlab-instance': 'https://gitlab.example.com',
          ...ids,
        },
        body,
      });
      expect(response.status, hook.event).toBe(202);
      sent.set(id, { hook, body });
    }
    const received = (await subscriber.waitFor(before + hooks.length)).slice(before);
    expect(new Set(received.map(idOf))).toEqual(new Set(sent.keys()));
    for (const request of received) {
      const { hook, body } = sent.get(idOf(request))!;
      const headers = request.headers;
      expect(headers['ce-type'], hook.event).toBe(
        `dev.knative.sources.gitlab.${TYPES[hook.event]}`,
      );
      expect(headers['ce-source'], hook.event).toBe(hook.projectUrl);
      expect(decodeURIComponent(String(headers['ce-comgitlabevent'])), hook.event).toBe(hook.event);
      expect(headers['ce-subject'], hook.event).toBeUndefined();
      expect(headers['content-type']).toBe('application/json');
      expect(request.body.equals(Buffer.from(body)), hook.event).toBe(true);
    }
  });

  it('with a signing token: takes a valid Standard Webhooks signature and refuses others', async () => {
    const url = await source('gitlab-signed', 'https://gitlab.example.com/acme/signed', {
      signingToken: { value: SIGNING_TOKEN },
    });
    const hook = hooks.find((h) => h.event === 'Push Hook')!;
    const body = JSON.stringify(hook.payload);
    const post = (headers: Record<string, string>): Promise<Response> =>
      fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-gitlab-event': hook.event,
          'x-gitlab-token': TOKEN,
          ...headers,
        },
        body,
      });
    const now = String(Math.floor(Date.now() / 1000));
    const stale = String(Math.floor(Date.now() / 1000) - 3600);
    const wrongKey = `v1,${createHmac('sha256', 'other').update(`x.${now}.${body}`).digest('base64')}`;
    const refused: Record<string, string>[] = [
      {}, // no signature at all
      { 'webhook-id': 'a', 'webhook-timestamp': now, 'webhook-signature': wrongKey },
      {
        'webhook-id': 'b',
        'webhook-timestamp': stale,
        'webhook-signature': standardSignature('b', stale, body),
      },
      // Signed for another id: the id is part of what is signed.
      {
        'webhook-id': 'c',
        'webhook-timestamp': now,
        'webhook-signature': standardSignature('d', now, body),
      },
    ];
    for (const headers of refused) expect((await post(headers)).status).toBe(401);

    const id = randomUUID();
    const before = subscriber.requests.length;
    const good = await post({
      'idempotency-key': id,
      'webhook-id': id,
      'webhook-timestamp': now,
      // Two signatures while the key rotates: one of them matches.
      'webhook-signature': `${wrongKey} ${standardSignature(id, now, body)}`,
    });
    expect(good.status).toBe(202);
    const [request] = (await subscriber.waitFor(before + 1)).slice(before);
    expect(idOf(request!)).toBe(id);
    const { body: status } = await getJson(
      `${fixture.url}/v1/namespaces/default/sources/gitlab-signed`,
    );
    expect(status.status.events).toMatchObject({ rejected: 4, forwarded: 1 });
    expect(status.spec.signingToken).toEqual({ value: '<redacted>' });
  });
});
