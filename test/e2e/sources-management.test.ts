/**
 * GitHub and GitLab sources through the management API: Knative manifests applied as they are
 * (YAML, `secretKeyRef` read from --secrets-dir), secrets given by environment variable, secrets
 * never shown, the status (webhookUrl, sinkUri, conditions) following the sink and the secrets,
 * and deletion.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { getJson, idOf } from '../support/delivery.js';
import { useServer } from '../support/e2e.js';
import { putResource } from '../support/server-process.js';
import type { Receiver } from '../support/receiver.js';
import { tempDir } from '../support/temp-dir.js';

const secretsDir = tempDir();
mkdirSync(join(secretsDir, 'github-secret'));
// Written with a trailing newline, as `echo secret > file` does.
writeFileSync(join(secretsDir, 'github-secret', 'secretToken'), 'from-a-file\n');

const fixture = useServer(['--secrets-dir', secretsDir], { GITLAB_WEBHOOK_TOKEN: 'from-env' });

const KNATIVE_MANIFESTS = (broker: string): string => `
apiVersion: sources.knative.dev/v1alpha1
kind: GitHubSource
metadata:
  name: knative-github
spec:
  eventTypes:
    - pull_request
    - push
  ownerAndRepository: acme/widgets
  accessToken:
    secretKeyRef:
      name: github-secret
      key: accessToken
      optional: true
  secretToken:
    secretKeyRef:
      name: github-secret
      key: secretToken
  sink:
    ref:
      apiVersion: eventing.knative.dev/v1
      kind: Broker
      name: ${broker}
---
apiVersion: sources.knative.dev/v1alpha1
kind: GitLabSource
metadata:
  name: knative-gitlab
spec:
  eventTypes:
    - push_events
    - issues_events
  projectUrl: https://gitlab.example.com/acme/widgets
  secretToken:
    env: GITLAB_WEBHOOK_TOKEN
  sink:
    ref:
      apiVersion: eventing.knative.dev/v1
      kind: Broker
      name: ${broker}
`;

function githubPush(url: string, secret: string, id = randomUUID()): Promise<Response> {
  const body = JSON.stringify({ ref: 'refs/heads/main', compare: 'https://x/compare/a...b' });
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-github-event': 'push',
      'x-github-delivery': id,
      'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
    },
    body,
  });
}

const sourceUrl = (name: string): string => `${fixture.url}/v1/namespaces/default/sources/${name}`;
const conditionsOf = (resource: any): Record<string, string> =>
  Object.fromEntries(
    (resource.status.conditions as { type: string; status: string; reason?: string }[]).map((c) => [
      c.type,
      c.reason === undefined ? c.status : `${c.status}/${c.reason}`,
    ]),
  );

describe('sources through the management API', () => {
  let broker: string;
  let subscriber: Receiver;

  beforeAll(async () => {
    broker = await fixture.broker();
    subscriber = await fixture.subscribe(broker, 'sources-all');
  });

  it('applies Knative GitHubSource and GitLabSource manifests as they are; their secrets come from a file and the environment', async () => {
    const response = await fetch(`${fixture.url}/v1/apply`, {
      method: 'POST',
      headers: { 'content-type': 'application/yaml' },
      body: KNATIVE_MANIFESTS(broker),
    });
    expect(response.status).toBe(200);
    const github = (await getJson(sourceUrl('knative-github'))).body;
    expect(conditionsOf(github)).toEqual({
      SinkProvided: 'True',
      SecretsProvided: 'True',
      Ready: 'True',
    });
    expect(github.status.sinkUri).toBe(`${fixture.url}/default/${broker}`);

    const before = subscriber.requests.length;
    const id = randomUUID();
    expect((await githubPush(github.status.webhookUrl, 'from-a-file', id)).status).toBe(202);
    expect((await githubPush(github.status.webhookUrl, 'from-a-file\n')).status).toBe(401);

    const gitlab = (await getJson(sourceUrl('knative-gitlab'))).body;
    expect(conditionsOf(gitlab).Ready).toBe('True');
    const gitlabId = randomUUID();
    const pushed = await fetch(gitlab.status.webhookUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-gitlab-event': 'Push Hook',
        'x-gitlab-token': 'from-env',
        'x-gitlab-event-uuid': gitlabId,
      },
      body: '{"object_kind":"push"}',
    });
    expect(pushed.status).toBe(202);
    const received = (await subscriber.waitFor(before + 2)).slice(before);
    expect(received.map(idOf).sort()).toEqual([id, gitlabId].sort());
  });

  it('never shows a secret value; a manifest read back and applied again keeps its secret', async () => {
    await putResource(fixture.url, 'sources', 'default', 'kept', {
      kind: 'GitHubSource',
      spec: {
        ownerAndRepository: 'acme/widgets',
        secretToken: { value: 'very-secret' },
        sink: { ref: { kind: 'Broker', name: broker } },
      },
    });
    const read = (await getJson(sourceUrl('kept'))).body;
    expect(read.spec.secretToken).toEqual({ value: '<redacted>' });
    expect(JSON.stringify(read)).not.toContain('very-secret');
    const list = await (await fetch(`${fixture.url}/v1/namespaces/default/sources`)).text();
    expect(list).not.toContain('very-secret');

    const { metadata, spec } = read;
    const again = await putResource(fixture.url, 'sources', 'default', 'kept', {
      apiVersion: read.apiVersion,
      kind: read.kind,
      metadata,
      spec,
    });
    expect(again.status).toBe(200);
    expect((again.body.metadata as { generation: number }).generation).toBe(1);
    expect((await githubPush(read.status.webhookUrl, 'very-secret')).status).toBe(202);

    const copy = await putResource(fixture.url, 'sources', 'default', 'copy', {
      kind: 'GitHubSource',
      spec,
    });
    expect(copy.status).toBe(400);
    expect((copy.body.errors as { field: string }[]).map((e) => e.field)).toEqual([
      'spec.secretToken.value',
    ]);
  });

  it('is not Ready while its secret cannot be read, and answers its webhooks 503 meanwhile', async () => {
    const { body } = await putResource(fixture.url, 'sources', 'default', 'no-secret', {
      kind: 'GitHubSource',
      spec: {
        ownerAndRepository: 'acme/widgets',
        secretToken: { env: 'NOT_SET_ANYWHERE' },
        sink: { ref: { kind: 'Broker', name: broker } },
      },
    });
    expect(conditionsOf(body)).toEqual({
      SinkProvided: 'True',
      SecretsProvided: 'False/SecretNotFound',
      Ready: 'False/SecretNotFound',
    });
    const response = await githubPush((body.status as any).webhookUrl, 'anything');
    expect(response.status).toBe(503);
    expect(((await response.json()) as { code: string }).code).toBe('SOURCE_NOT_READY');
  });

  it('follows its broker: not Ready without it, Ready and delivering once it exists', async () => {
    const name = `later-${randomUUID().slice(0, 8)}`;
    const { body } = await putResource(fixture.url, 'sources', 'default', 'waits', {
      kind: 'GitHubSource',
      spec: {
        ownerAndRepository: 'acme/widgets',
        sink: { ref: { kind: 'Broker', name } },
      },
    });
    expect(conditionsOf(body)).toEqual({
      SinkProvided: 'False/SinkNotReady',
      Ready: 'False/SinkNotReady',
    });
    const url = (body.status as any).webhookUrl as string;
    const early = await githubPush(url, 'unsigned is fine without a secret');
    expect(early.status).toBe(404);
    expect(((await early.json()) as { code: string }).code).toBe('BROKER_NOT_FOUND');

    expect((await putResource(fixture.url, 'brokers', 'default', name, {})).status).toBe(201);
    const late = fixture.subscribe(name, `${name}-t`);
    const receiver = await late;
    expect(conditionsOf((await getJson(sourceUrl('waits'))).body).Ready).toBe('True');
    const id = randomUUID();
    expect((await githubPush(url, 'x', id)).status).toBe(202);
    expect(idOf((await receiver.waitFor(1))[0]!)).toBe(id);
  });

  it('refuses an invalid GitHubSource with every problem and its field path', async () => {
    const { status, body } = await putResource(fixture.url, 'sources', 'default', 'bad', {
      kind: 'GitHubSource',
      spec: {
        ownerAndRepository: 'a/b/c',
        eventTypes: ['Push'],
        secretToken: { value: 'x', env: 'Y' },
        ceOverrides: { extensions: { type: 'mine' } },
        sink: { uri: 'not a url' },
        colour: 'blue',
      },
    });
    expect(status).toBe(400);
    expect((body.errors as { field: string }[]).map((e) => e.field).sort()).toEqual(
      [
        'spec.ownerAndRepository',
        'spec.eventTypes[0]',
        'spec.secretToken',
        'spec.ceOverrides.extensions.type',
        'spec.sink.uri',
        'spec.colour',
      ].sort(),
    );
  });

  it('a deleted source no longer takes webhooks', async () => {
    const { body } = await putResource(fixture.url, 'sources', 'default', 'gone', {
      kind: 'GitHubSource',
      spec: { ownerAndRepository: 'acme/widgets', sink: { ref: { kind: 'Broker', name: broker } } },
    });
    const url = (body.status as any).webhookUrl as string;
    expect((await githubPush(url, 'x')).status).toBe(202);
    expect((await fetch(sourceUrl('gone'), { method: 'DELETE' })).status).toBe(200);
    const after = await githubPush(url, 'x');
    expect(after.status).toBe(404);
    expect(((await after.json()) as { code: string }).code).toBe('SOURCE_NOT_FOUND');
  });
});
