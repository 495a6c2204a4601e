/**
 * Bearer tokens through the real server (docs/security.md): 401 without a token or with an
 * unknown one, 403 FORBIDDEN when a token lacks the namespace or the access; a token for one
 * namespace cannot read, change, stream, redrive or send into another; apply checks every
 * resource; brokers annotated `tributary.dev/ingress-auth` require a token at their ingress;
 * webhooks stay signature-only; secrets are never answered; the CLI's --token round trips.
 */
import { spawn } from 'node:child_process';
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { until } from '../support/delivery.js';
import { useServer } from '../support/e2e.js';
import type { Receiver } from '../support/receiver.js';
import { binaryEvent, CLI, startServer } from '../support/server-process.js';
import { tempDir } from '../support/temp-dir.js';

const ADMIN = 'admin-token-0123456789abcdef';
const SHOP_WRITER = 'shop-writer-token-00000001';
const SHOP_READER = 'shop-reader-token-00000001';
const BILLING_WRITER = 'billing-writer-token-0001';
const SCRAPER = 'scraper-token-000000000001';
const GH_SECRET = 'gh-webhook-secret-value-7f3a';

const tokensFile = join(tempDir(), 'tokens.yaml');
writeFileSync(
  tokensFile,
  `tokens:
  - name: shop-writer
    token: ${SHOP_WRITER}
    namespaces: [shop]
    access: write
  - name: shop-reader
    tokenEnv: SHOP_READER_TOKEN
    namespaces: [shop]
    access: read
  - name: billing-writer
    tokenSha256: ${createHash('sha256').update(BILLING_WRITER).digest('hex')}
    namespaces: [billing]
    access: write
  - name: scraper
    token: ${SCRAPER}
    namespaces: ["*"]
    access: read
`,
);

const fixture = useServer(['--tokens-file', tokensFile], {
  TRIBUTARY_ADMIN_TOKEN: ADMIN,
  SHOP_READER_TOKEN: SHOP_READER,
});

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly body: any;
}

/** One request with an optional bearer token; reads the whole answer. */
async function call(
  method: string,
  path: string,
  token?: string,
  body?: unknown,
  extraHeaders: Record<string, string> = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...extraHeaders };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined && headers['content-type'] === undefined) {
    headers['content-type'] = 'application/json';
  }
  const response = await fetch(`${fixture.url}${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, headers: response.headers, text, body: parsed };
}

/** Sends one binary-mode event to `namespace/broker`; returns the status. */
async function send(
  namespace: string,
  broker: string,
  token?: string,
  id = randomUUID(),
): Promise<number> {
  const request = binaryEvent(
    { specversion: '1.0', id, source: '/auth-test', type: 'com.example.auth' },
    '{}',
    'application/json',
  );
  if (token !== undefined) request.headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${fixture.url}/${namespace}/${broker}`, request);
  await response.arrayBuffer();
  return response.status;
}

/** Opens the live event stream; resolves with the status once the headers are in, then leaves. */
async function streamStatus(namespace: string, broker: string, token?: string): Promise<number> {
  const controller = new AbortController();
  const response = await fetch(
    `${fixture.url}/v1/namespaces/${namespace}/brokers/${broker}/events`,
    {
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      signal: controller.signal,
    },
  );
  controller.abort();
  return response.status;
}

const broker = (namespace: string, name: string, annotations?: Record<string, string>) => ({
  apiVersion: 'eventing.knative.dev/v1',
  kind: 'Broker',
  metadata: { name, namespace, ...(annotations === undefined ? {} : { annotations }) },
});
const trigger = (namespace: string, name: string, on: string, uri: string) => ({
  apiVersion: 'eventing.knative.dev/v1',
  kind: 'Trigger',
  metadata: { name, namespace },
  spec: { broker: on, subscriber: { uri } },
});
const REQUIRED = { 'tributary.dev/ingress-auth': 'required' };

function expectProblem(answer: Answer, status: number, code: string): void {
  expect(answer.status, answer.text).toBe(status);
  expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(answer.body.code).toBe(code);
}

let secureReceiver: Receiver;
let applyAnswer: Answer;

beforeAll(async () => {
  const shopReceiver = await fixture.receiver();
  secureReceiver = await fixture.receiver();
  const billingReceiver = await fixture.receiver();
  applyAnswer = await call('POST', '/v1/apply', ADMIN, [
    broker('shop', 'orders'),
    broker('shop', 'secure', REQUIRED),
    broker('billing', 'invoices'),
    broker('billing', 'locked', REQUIRED),
    trigger('shop', 't-orders', 'orders', shopReceiver.url),
    trigger('shop', 't-secure', 'secure', secureReceiver.url),
    trigger('billing', 't-invoices', 'invoices', billingReceiver.url),
    {
      apiVersion: 'sources.knative.dev/v1alpha1',
      kind: 'GitHubSource',
      metadata: { name: 'gh', namespace: 'shop' },
      spec: {
        ownerAndRepository: 'acme/widgets',
        eventTypes: ['push'],
        secretToken: { value: GH_SECRET },
        sink: { ref: { apiVersion: 'eventing.knative.dev/v1', kind: 'Broker', name: 'orders' } },
      },
    },
  ]);
  expect(applyAnswer.status, applyAnswer.text).toBe(200);
  // Dead-letter and replay operations need the triggers subscribed.
  for (const [ns, name] of [
    ['shop', 't-orders'],
    ['billing', 't-invoices'],
  ] as const) {
    await until(
      `trigger ${ns}/${name} subscribed`,
      async () =>
        (await call('GET', `/v1/namespaces/${ns}/triggers/${name}/deadletters`, ADMIN)).status,
      (status) => status === 200,
    );
  }
});

describe('authentication', () => {
  it('refuses a request without a token: 401, problem+json, WWW-Authenticate: Bearer', async () => {
    for (const [method, path, body] of [
      ['GET', '/v1/namespaces/shop/brokers', undefined],
      ['PUT', '/v1/namespaces/shop/brokers/x', {}],
      ['POST', '/v1/apply', [broker('shop', 'x')]],
      ['GET', '/metrics', undefined],
    ] as const) {
      const answer = await call(method, path, undefined, body);
      expectProblem(answer, 401, 'UNAUTHORIZED');
      expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer realm="tributary"$/);
    }
    expect((await call('GET', '/v1/namespaces/shop/brokers/x', ADMIN)).status).toBe(404);
  });

  it('refuses an unknown token, also one of the same length as a right one, and a non-Bearer scheme', async () => {
    const wrong = `${SHOP_WRITER.slice(0, -1)}2`;
    expect(wrong.length).toBe(SHOP_WRITER.length);
    for (const token of [wrong, 'x']) {
      const answer = await call('GET', '/v1/namespaces/shop/brokers', token);
      expectProblem(answer, 401, 'UNAUTHORIZED');
      expect(answer.headers.get('www-authenticate')).toContain('error="invalid_token"');
    }
    const basic = await call('GET', '/v1/namespaces/shop/brokers', undefined, undefined, {
      authorization: `Basic ${Buffer.from(`u:${SHOP_WRITER}`).toString('base64')}`,
    });
    expectProblem(basic, 401, 'UNAUTHORIZED');
    // The scheme is case-insensitive (RFC 9110).
    expect(
      (
        await call('GET', '/v1/namespaces/shop/brokers', undefined, undefined, {
          authorization: `bearer ${SHOP_WRITER}`,
        })
      ).status,
    ).toBe(200);
  });

  it('leaves health, documentation and console assets open', async () => {
    for (const path of ['/healthz', '/readyz', '/openapi.json', '/ui']) {
      expect((await call('GET', path)).status, path).toBe(200);
    }
  });

  it('/metrics needs a token that reads every namespace', async () => {
    expectProblem(await call('GET', '/metrics', SHOP_WRITER), 403, 'FORBIDDEN');
    const answer = await call('GET', '/metrics', SCRAPER);
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('# TYPE');
  });
});

describe('authorization', () => {
  it('a read token reads its namespace but cannot write it (403 FORBIDDEN)', async () => {
    expect((await call('GET', '/v1/namespaces/shop/brokers', SHOP_READER)).status).toBe(200);
    expect((await call('GET', '/v1/namespaces/shop/brokers/orders', SHOP_READER)).status).toBe(200);
    const put = await call('PUT', '/v1/namespaces/shop/brokers/by-reader', SHOP_READER, {});
    expectProblem(put, 403, 'FORBIDDEN');
    expect(put.body.detail).toContain('shop-reader');
    expectProblem(
      await call('DELETE', '/v1/namespaces/shop/brokers/orders', SHOP_READER),
      403,
      'FORBIDDEN',
    );
    expectProblem(
      await call('POST', '/v1/apply', SHOP_READER, [broker('shop', 'by-reader')]),
      403,
      'FORBIDDEN',
    );
    expect(await send('shop', 'secure', SHOP_READER)).toBe(403);
    expect((await call('GET', '/v1/namespaces/shop/brokers/by-reader', ADMIN)).status).toBe(404);
    expect((await call('GET', '/v1/namespaces/shop/brokers/orders', ADMIN)).status).toBe(200);
  });

  const triggerPath = (ns: string, name: string) => `/v1/namespaces/${ns}/triggers/${name}`;
  /** One request of each route family, against namespace `ns` (trigger `t`, broker `b`). */
  const families = (ns: string, t: string, b: string, locked: string) =>
    [
      ['list brokers', () => call('GET', `/v1/namespaces/${ns}/brokers`, SHOP_WRITER), 200],
      ['read a broker', () => call('GET', `/v1/namespaces/${ns}/brokers/${b}`, SHOP_WRITER), 200],
      [
        'replace a broker',
        () => call('PUT', `/v1/namespaces/${ns}/brokers/${b}`, SHOP_WRITER, {}),
        200,
      ],
      [
        'create a trigger',
        () =>
          call('PUT', triggerPath(ns, 'new-t'), SHOP_WRITER, {
            spec: { broker: b, subscriber: { uri: 'http://127.0.0.1:9/' } },
          }),
        201,
      ],
      ['delete a trigger', () => call('DELETE', triggerPath(ns, 'new-t'), SHOP_WRITER), 200],
      ['list sources', () => call('GET', `/v1/namespaces/${ns}/sources`, SHOP_WRITER), 200],
      ['list event types', () => call('GET', `/v1/namespaces/${ns}/eventtypes`, SHOP_WRITER), 200],
      [
        'list subscriptions',
        () => call('GET', `/v1/namespaces/${ns}/subscriptions`, SHOP_WRITER),
        200,
      ],
      [
        'create a subscription',
        () =>
          call('POST', `/v1/namespaces/${ns}/subscriptions`, SHOP_WRITER, {
            source: '/x',
            config: { broker: b },
            sink: 'http://127.0.0.1:9/',
            protocol: 'HTTP',
          }),
        201,
      ],
      [
        'read dead letters',
        () => call('GET', `${triggerPath(ns, t)}/deadletters`, SHOP_WRITER),
        200,
      ],
      [
        'redrive dead letters',
        () => call('POST', `${triggerPath(ns, t)}/deadletters/redrive`, SHOP_WRITER, {}),
        200,
      ],
      [
        'replay',
        () =>
          call('POST', `${triggerPath(ns, t)}/replay`, SHOP_WRITER, {
            from: new Date().toISOString(),
          }),
        202,
      ],
      ['stream events', () => streamStatus(ns, b, SHOP_WRITER), 200],
      ['send into a broker that requires a token', () => send(ns, locked, SHOP_WRITER), 202],
    ] as const;

  it.each(
    families('billing', 't-invoices', 'invoices', 'locked').map((f) => [f[0], f[1]] as const),
  )('a token for namespace shop cannot %s in namespace billing (403)', async (_what, request) => {
    const answer = await request();
    if (typeof answer === 'number') expect(answer).toBe(403);
    else {
      expectProblem(answer, 403, 'FORBIDDEN');
      expect(answer.body.detail).toContain('"billing"');
    }
  });

  it('nothing changed in namespace billing', async () => {
    const triggers = await call('GET', '/v1/namespaces/billing/triggers', ADMIN);
    expect(triggers.body.items.map((t: any) => t.metadata.name)).toEqual(['t-invoices']);
    const subscriptions = await call('GET', '/v1/namespaces/billing/subscriptions', BILLING_WRITER);
    expect(subscriptions.status).toBe(200);
    expect(subscriptions.body).toEqual([]);
  });

  it.each(families('shop', 't-orders', 'orders', 'secure').map((f) => [f[0], f[1], f[2]] as const))(
    'a token for namespace shop can %s in namespace shop',
    async (_what, request, status) => {
      const answer = await request();
      if (typeof answer === 'number') expect(answer).toBe(status);
      else expect(answer.status, answer.text).toBe(status);
    },
  );

  it('apply with a resource of another namespace is refused whole: 403 and nothing applied', async () => {
    const answer = await call('POST', '/v1/apply', SHOP_WRITER, [
      broker('shop', 'mixed-a'),
      broker('billing', 'mixed-b'),
    ]);
    expectProblem(answer, 403, 'FORBIDDEN');
    expect(answer.body.errors).toEqual([
      { field: '[1].metadata.namespace', message: expect.stringContaining('"billing"') },
    ]);
    expect((await call('GET', '/v1/namespaces/shop/brokers/mixed-a', ADMIN)).status).toBe(404);
    expect((await call('GET', '/v1/namespaces/billing/brokers/mixed-b', ADMIN)).status).toBe(404);
    // The same in YAML, a namespace given by the document only.
    const yaml = await call(
      'POST',
      '/v1/apply',
      SHOP_WRITER,
      'apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: mixed-c\n  namespace: shop\n---\napiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: mixed-d\n',
      { 'content-type': 'application/yaml' },
    );
    expectProblem(yaml, 403, 'FORBIDDEN');
    expect(yaml.body.errors[0].message).toContain('"default"');
    expect((await call('GET', '/v1/namespaces/shop/brokers/mixed-c', ADMIN)).status).toBe(404);
    // Its own namespace only: applied.
    const own = await call('POST', '/v1/apply', SHOP_WRITER, [broker('shop', 'mixed-a')]);
    expect(own.status, own.text).toBe(200);
  });

  it("a source in namespace shop cannot sink into namespace billing's broker", async () => {
    const source = {
      apiVersion: 'sources.knative.dev/v1alpha1',
      kind: 'GitHubSource',
      spec: {
        ownerAndRepository: 'acme/widgets',
        eventTypes: ['push'],
        secretToken: { value: GH_SECRET },
        sink: { ref: { kind: 'Broker', name: 'invoices', namespace: 'billing' } },
      },
    };
    const put = await call('PUT', '/v1/namespaces/shop/sources/into-billing', SHOP_WRITER, source);
    expectProblem(put, 403, 'FORBIDDEN');
    expect(put.body.errors).toEqual([
      { field: 'spec.sink.ref.namespace', message: expect.stringContaining('"billing"') },
    ]);
    const applied = await call('POST', '/v1/apply', SHOP_WRITER, [
      { ...source, metadata: { name: 'into-billing', namespace: 'shop' } },
    ]);
    expectProblem(applied, 403, 'FORBIDDEN');
    expect((await call('GET', '/v1/namespaces/shop/sources/into-billing', ADMIN)).status).toBe(404);
  });
});

describe('broker ingress', () => {
  it('a broker annotated ingress-auth: required refuses an unauthenticated POST and takes a token for its namespace', async () => {
    expect(await send('shop', 'secure')).toBe(401);
    expect(await send('shop', 'secure', `${SHOP_WRITER.slice(0, -1)}9`)).toBe(401);
    expect(await send('shop', 'secure', BILLING_WRITER)).toBe(403);
    const before = secureReceiver.requests.length;
    const id = randomUUID();
    expect(await send('shop', 'secure', SHOP_WRITER, id)).toBe(202);
    const received = await secureReceiver.waitFor(before + 1);
    expect(received.map((r) => r.headers['ce-id'])).toContain(id);
    // Without the annotation the ingress is open, as before tokens existed.
    expect(await send('shop', 'orders')).toBe(202);
    expect(await send('billing', 'invoices')).toBe(202);
  });

  it('adding and removing the annotation takes effect on an existing broker', async () => {
    expect((await call('PUT', '/v1/namespaces/shop/brokers/toggle', SHOP_WRITER, {})).status).toBe(
      201,
    );
    expect(await send('shop', 'toggle')).toBe(202);
    const put = await call('PUT', '/v1/namespaces/shop/brokers/toggle', SHOP_WRITER, {
      metadata: { annotations: REQUIRED },
    });
    expect(put.status, put.text).toBe(200);
    await until(
      'the annotation in force',
      () => send('shop', 'toggle'),
      (status) => status === 401,
    );
    expect(await send('shop', 'toggle', SHOP_WRITER)).toBe(202);
    await call('PUT', '/v1/namespaces/shop/brokers/toggle', SHOP_WRITER, {
      metadata: { annotations: { 'tributary.dev/ingress-auth': 'none' } },
    });
    await until(
      'the annotation lifted',
      () => send('shop', 'toggle'),
      (status) => status === 202,
    );
  });
});

describe('webhooks and secrets', () => {
  function githubPush(url: string, secret: string | undefined, bearer?: string) {
    const body = JSON.stringify({ ref: 'refs/heads/main' });
    return fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'push',
        'x-github-delivery': randomUUID(),
        ...(secret === undefined
          ? {}
          : {
              'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
            }),
        ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }),
      },
      body,
    });
  }

  it('webhooks authenticate by signature only: a bearer token neither helps nor hurts', async () => {
    const source = await call('GET', '/v1/namespaces/shop/sources/gh', SHOP_READER);
    const url = source.body.status.webhookUrl as string;
    expect(url).toMatch(/\/webhooks\/shop\/gh$/);
    expect((await githubPush(url, GH_SECRET)).status).toBe(202);
    expect((await githubPush(url, GH_SECRET, 'not-a-token')).status).toBe(202);
    expect((await githubPush(url, undefined, ADMIN)).status).toBe(401);
    expect((await githubPush(url, 'wrong-secret', ADMIN)).status).toBe(401);
  });

  it('secrets are never answered: GET of one source and of the list, apply answers, subscriptions', async () => {
    expect(applyAnswer.text).not.toContain(GH_SECRET);
    const appliedSource = applyAnswer.body.items.find((i: any) => i.name === 'gh');
    expect(appliedSource.resource.spec.secretToken).toEqual({ value: '<redacted>' });
    const one = await call('GET', '/v1/namespaces/shop/sources/gh', ADMIN);
    expect(one.status).toBe(200);
    expect(one.text).not.toContain(GH_SECRET);
    expect(one.body.spec.secretToken).toEqual({ value: '<redacted>' });
    const list = await call('GET', '/v1/namespaces/shop/sources', ADMIN);
    expect(list.text).not.toContain(GH_SECRET);
    // A subscription cannot carry a credential at all.
    const sub = await call('POST', '/v1/namespaces/shop/subscriptions', SHOP_WRITER, {
      source: '/x',
      config: { broker: 'orders' },
      sink: 'http://127.0.0.1:9/',
      protocol: 'HTTP',
      sinkcredential: { type: 'ACCESSTOKEN', accesstoken: GH_SECRET },
    });
    expect(sub.status).toBe(400);
    expect((await call('GET', '/v1/namespaces/shop/subscriptions', ADMIN)).text).not.toContain(
      GH_SECRET,
    );
  });
});

describe('the CLI', () => {
  function cli(args: string[], env: Record<string, string> = {}) {
    return new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (resolve, reject) => {
        const child = spawn(process.execPath, [CLI, '--server', fixture.url, ...args], {
          env: { ...process.env, TRIBUTARY_TOKEN: '', ...env },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
        child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
        child.on('error', reject);
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      },
    );
  }

  it('round trips with --token (and TRIBUTARY_TOKEN); refuses without it or for another namespace', async () => {
    const file = join(tempDir(), 'cli-broker.yaml');
    writeFileSync(
      file,
      'apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: from-cli\n',
    );
    const applied = await cli(['--token', SHOP_WRITER, '-n', 'shop', 'apply', '-f', file]);
    expect(applied.code, applied.stderr).toBe(0);
    const got = await cli(['--token', SHOP_WRITER, '-n', 'shop', 'get', 'brokers']);
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout).toContain('from-cli');
    const viaEnv = await cli(['-n', 'shop', 'get', 'brokers', 'from-cli'], {
      TRIBUTARY_TOKEN: SHOP_READER,
    });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);

    const anonymous = await cli(['-n', 'shop', 'get', 'brokers']);
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toMatch(/token/i);
    const elsewhere = await cli(['--token', SHOP_WRITER, '-n', 'billing', 'get', 'brokers']);
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toContain('may not read namespace "billing"');
  });
});

describe('configuration', () => {
  it('a bad token file stops the server at start, naming each bad entry', async () => {
    const bad = join(tempDir(), 'bad-tokens.yaml');
    writeFileSync(
      bad,
      'tokens:\n  - name: a\n    token: short\n    namespaces: [shop]\n    access: write\n  - name: b\n    tokenEnv: NOT_SET_ANYWHERE_42\n    namespaces: [shop]\n    access: delete\n',
    );
    const started = startServer({ dataDir: tempDir(), args: ['--tokens-file', bad] });
    await expect(started).rejects.toThrow(/tokens\[0\]\.token/);
    await expect(started).rejects.toThrow(/tokens\[1\]\.tokenEnv/);
    await expect(started).rejects.toThrow(/tokens\[1\]\.access/);
    // CONFIG_INVALID: exit code 2, as for a bad option (docs/errors.md).
    await expect(started).rejects.toThrow(/exited \(2\)/);
  });

  it('warns at start when it listens beyond loopback without tokens', async () => {
    const server = await startServer({ dataDir: tempDir(), args: ['--host', '0.0.0.0'] });
    try {
      expect(server.output()).toContain('no API tokens are configured');
      // Open, as before tokens existed.
      const port = new URL(server.url).port;
      expect((await fetch(`http://127.0.0.1:${port}/v1/namespaces/default/brokers`)).status).toBe(
        200,
      );
    } finally {
      await server.stop();
    }
  });
});
