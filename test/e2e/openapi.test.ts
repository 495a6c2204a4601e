/**
 * The OpenAPI document of the whole HTTP surface: it validates, it lists every route the server
 * registers, its errors are problems, its examples are accepted, and the UI is served.
 *
 * The server runs in this process (src/server.ts `startServer`) so that every route it registers
 * can be collected: fastify announces each new instance on the diagnostics channel
 * `fastify.initialization`, before any route exists, and an `onRoute` hook added there sees every
 * route of every plugin.
 */
import diagnostics from 'node:diagnostics_channel';
import { Validator } from '@seriousme/openapi-schema-validator';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

type Json = Record<string, any>;

interface RegisteredRoute {
  readonly method: string;
  readonly url: string;
  readonly hidden: boolean;
}

/**
 * Routes that are files, not API operations, and are left out of the document on purpose. Each
 * must also be marked `hide` in its schema, so a real operation cannot hide behind this list.
 */
const HIDDEN_ASSETS: readonly { readonly matches: (url: string) => boolean; why: string }[] = [
  {
    matches: (url) => url === '/docs' || url.startsWith('/docs/'),
    why: "Swagger UI's page and files",
  },
  { matches: (url) => url === '/ui/:asset', why: "the web console's files" },
];

/** Paths of src/api/{ingress,management,webhooks,health,openapi}.ts. */
const OWN_PATHS =
  /^\/(healthz|readyz|openapi\.json|v1\/apply|\{namespace\}\/\{broker\}|webhooks\/\{namespace\}\/\{source\})$|^\/v1\/namespaces\/\{namespace\}\/(brokers|triggers|sources)(\/|$)/;

const METHODS = ['get', 'head', 'put', 'post', 'delete', 'options', 'patch', 'trace'];
const PROBLEM_REF = '#/components/schemas/Problem';

/** `/v1/namespaces/:namespace/brokers` -> `/v1/namespaces/{namespace}/brokers`. */
function openApiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

describe('OpenAPI document', () => {
  const routes: RegisteredRoute[] = [];
  let server: RunningServer;
  let doc: Json;

  beforeAll(async () => {
    const collect = (message: unknown): void => {
      const app = (message as { fastify: FastifyInstance }).fastify;
      app.addHook('onRoute', (route: RouteOptions) => {
        const methods = Array.isArray(route.method) ? route.method : [route.method];
        const hidden = route.schema?.hide === true;
        for (const method of methods) routes.push({ method, url: route.url, hidden });
      });
    };
    diagnostics.subscribe('fastify.initialization', collect);
    try {
      server = await startServer(
        loadConfig({
          flags: {
            port: '0',
            host: '127.0.0.1',
            'data-dir': tempDir(),
            'log-level': 'error',
          },
          env: {},
        }),
      );
    } finally {
      diagnostics.unsubscribe('fastify.initialization', collect);
    }
    const response = await fetch(`${server.url}/openapi.json`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    doc = (await response.json()) as Json;
  });

  afterAll(async () => {
    await server?.close();
    removeTempDirs();
  });

  const operations = (): { path: string; method: string; op: Json }[] =>
    Object.entries(doc.paths as Record<string, Json>).flatMap(([path, item]) =>
      Object.entries(item)
        .filter(([method]) => METHODS.includes(method))
        .map(([method, op]) => ({ path, method, op: op as Json })),
    );

  it('validates as an OpenAPI 3.1 document named after the package', async () => {
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.openapi).toMatch(/^3\.1\./);
    expect(doc.info).toMatchObject({ title: 'Tributary', version: expect.any(String) });
  });

  it('documents every route the server registered, with its method', () => {
    // Sanity: the collection saw the server's routes at all.
    expect(routes.length).toBeGreaterThan(20);
    const missing: string[] = [];
    for (const route of routes) {
      const asset = HIDDEN_ASSETS.find((a) => a.matches(route.url));
      if (asset !== undefined) {
        expect(route.hidden, `${route.method} ${route.url} (${asset.why}) is hidden`).toBe(true);
        continue;
      }
      const item = (doc.paths as Record<string, Json>)[openApiPath(route.url)];
      const method = route.method.toLowerCase();
      // Fastify answers HEAD for every GET route; a HEAD route of its own is documented as such.
      const documented =
        item?.[method] !== undefined || (method === 'head' && item?.get !== undefined);
      if (!documented) missing.push(`${route.method} ${route.url}`);
    }
    expect(missing).toEqual([]);

    // And the other way: nothing is documented that the server does not serve.
    const served = new Set(routes.map((r) => `${r.method.toLowerCase()} ${openApiPath(r.url)}`));
    const stale = operations()
      .map(({ path, method }) => `${method} ${path}`)
      .filter((key) => !served.has(key));
    expect(stale).toEqual([]);
  });

  it('gives every operation a summary, tags and a unique operationId', () => {
    const ids = new Set<string>();
    for (const { path, method, op } of operations()) {
      const where = `${method} ${path}`;
      expect(op.summary, where).toEqual(expect.any(String));
      expect(op.tags?.length, where).toBeGreaterThan(0);
      if (op.operationId !== undefined) {
        expect(ids.has(op.operationId), `${where}: ${op.operationId} twice`).toBe(false);
        ids.add(op.operationId);
      }
    }
    // The operations of the ingress, management, webhook, health and document routes are named.
    for (const tag of ['ingress', 'management', 'webhooks', 'operations']) {
      expect(operations().filter(({ op }) => op.tags.includes(tag)).length, tag).toBeGreaterThan(0);
    }
    const named = operations().filter(({ path }) => OWN_PATHS.test(path));
    expect(named.length).toBeGreaterThan(30);
    for (const { path, method, op } of named) {
      expect(op.operationId, `${method} ${path}`).toEqual(expect.any(String));
    }
  });

  it('documents every error response as a problem', () => {
    const problem = doc.components.schemas.Problem as Json;
    expect(problem.required).toEqual(
      expect.arrayContaining(['type', 'title', 'status', 'code', 'detail']),
    );
    expect(problem.properties.errors.items.required).toEqual(['field', 'message']);
    let errors = 0;
    for (const { path, method, op } of operations()) {
      for (const [status, response] of Object.entries(op.responses as Record<string, Json>)) {
        if (!/^[45]/.test(status)) continue;
        errors++;
        const schema = response.content?.['application/problem+json']?.schema as Json | undefined;
        expect(schema?.$ref, `${method} ${path} ${status}`).toBe(PROBLEM_REF);
      }
    }
    expect(errors).toBeGreaterThan(20);
  });

  it('documents the three CloudEvents content modes of the ingress', () => {
    const post = doc.paths['/{namespace}/{broker}'].post as Json;
    expect(Object.keys(post.requestBody.content)).toEqual(
      expect.arrayContaining([
        'application/cloudevents+json',
        'application/cloudevents-batch+json',
        '*/*',
      ]),
    );
    const headers = (post.parameters as Json[]).filter((p) => p.in === 'header');
    expect(headers.map((h) => h.name)).toEqual(
      expect.arrayContaining(['ce-specversion', 'ce-id', 'ce-source', 'ce-type']),
    );
    expect(Object.keys(post.responses)).toContain('202');
  });

  it('serves the UI at /docs', async () => {
    const response = await fetch(`${server.url}/docs`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await response.text()).toMatch(/swagger-ui/i);
    const json = await fetch(`${server.url}/docs/json`);
    expect(json.status).toBe(200);
    expect(((await json.json()) as Json).paths).toEqual(doc.paths);
  });

  it('answers a bad path parameter or query with a 400 problem naming the field', async () => {
    const cases: [string, RequestInit, string][] = [
      ['/v1/namespaces/Not_A_Label/brokers', {}, 'namespace'],
      ['/v1/namespaces/default/triggers/UPPER', { method: 'DELETE' }, 'name'],
      [
        `/v1/namespaces/default/brokers/${'x'.repeat(64)}`,
        { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' },
        'name',
      ],
      ['/v1/namespaces/default/triggers/t/deadletters?limit=abc', {}, 'limit'],
      ['/webhooks/default/Bad.Source', { method: 'POST', body: '{}' }, 'source'],
    ];
    for (const [path, init, field] of cases) {
      const response = await fetch(`${server.url}${path}`, init);
      expect(response.status, path).toBe(400);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      const body = (await response.json()) as Json;
      expect(body.code).toBe('BAD_REQUEST');
      expect(body.errors, path).toEqual([
        expect.objectContaining({ field, message: expect.any(String) }),
      ]);
    }
    // An unknown collection is still not found.
    expect((await fetch(`${server.url}/v1/namespaces/default/widgets`)).status).toBe(404);
  });

  it('accepts every documented resource example', async () => {
    const kinds: string[] = [];
    const created: string[] = [];
    for (const { path, method, op } of operations()) {
      if (method !== 'put' || op.requestBody === undefined) continue;
      const media = op.requestBody.content['application/json'] as Json;
      const examples: Json[] =
        media.example !== undefined
          ? [media.example]
          : Object.values((media.examples ?? {}) as Record<string, Json>).map((e) => e.value);
      expect(examples.length, path).toBeGreaterThan(0);
      for (const example of examples) {
        const url = path
          .replace('{namespace}', example.metadata.namespace ?? 'default')
          .replace('{name}', example.metadata.name);
        const response = await fetch(`${server.url}${url}`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(example),
        });
        expect([200, 201], `${example.kind}: ${await response.clone().text()}`).toContain(
          response.status,
        );
        kinds.push(example.kind);
        created.push(url);
      }
    }
    expect(kinds.sort()).toEqual(
      [
        'ApiServerSource',
        'Broker',
        'GitHubSource',
        'GitLabSource',
        'KafkaSource',
        'MnsSource',
        'RocketMQSource',
        'Trigger',
      ].sort(),
    );

    const apply = doc.paths['/v1/apply'].post.requestBody.content['application/json'] as Json;
    const applied = await fetch(`${server.url}/v1/apply`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(apply.example),
    });
    expect(applied.status, await applied.clone().text()).toBe(200);

    // The sources would keep trying to reach their upstreams: remove them.
    for (const url of created.filter((u) => u.includes('/sources/'))) {
      expect((await fetch(`${server.url}${url}`, { method: 'DELETE' })).status).toBe(200);
    }
  });
});
