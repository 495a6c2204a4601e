/**
 * Hostile input for test/e2e/hostile-input.test.ts: fast-check generators of malformed, deep,
 * huge and badly typed requests, a keep-alive HTTP client that reports a dropped connection
 * instead of throwing, the verdict every answer must pass, and raw-socket helpers for what an HTTP
 * client refuses to send (oversized header blocks, lying Content-Length, broken chunking, bodies
 * dripped byte by byte).
 */
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import fc from 'fast-check';
import { ErrorCodes } from '../../src/core/errors.js';

// ---------------------------------------------------------------------------------------------
// The client and the verdict.

export interface HostileRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: Buffer;
  /**
   * The body is over the server's limit: the server may answer 413 and close the connection
   * while the body is still being sent, so a dropped connection is allowed for this request only.
   */
  readonly oversized?: boolean;
}

export type Outcome =
  | {
      readonly kind: 'answer';
      readonly status: number;
      readonly headers: http.IncomingHttpHeaders;
      readonly body: Buffer;
    }
  | { readonly kind: 'dropped'; readonly error: string };

/** Keep-alive connections to one server, at most `sockets` at once. */
export class HostileClient {
  private readonly agent: http.Agent;
  /** Requests sent so far. */
  sent = 0;

  constructor(
    private readonly baseUrl: string,
    sockets = 8,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: sockets });
  }

  send(request: HostileRequest, timeoutMs = 20_000): Promise<Outcome> {
    this.sent++;
    const url = new URL(this.baseUrl);
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      const settle = (outcome: Outcome): void => {
        if (settled) return;
        settled = true;
        resolve(outcome);
      };
      const req = http.request(
        {
          agent: this.agent,
          host: url.hostname,
          port: url.port,
          method: request.method,
          path: request.path,
          headers: {
            ...request.headers,
            ...(request.body === undefined ? {} : { 'content-length': request.body.length }),
          },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () =>
            settle({
              kind: 'answer',
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks),
            }),
          );
          res.on('error', (error) => settle({ kind: 'dropped', error: String(error) }));
        },
      );
      req.on('timeout', () => {
        req.destroy(new Error(`no answer within ${timeoutMs} ms`));
      });
      req.on('error', (error) => settle({ kind: 'dropped', error: String(error) }));
      req.end(request.body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

const KNOWN_CODES = new Set(Object.keys(ErrorCodes));

/**
 * What is wrong with an answer, or undefined when it is acceptable: a 2xx, or a 4xx that is
 * application/problem+json with a catalogued `code` and the same `status`. A dropped connection
 * is acceptable only for an oversized body.
 */
export function verdict(request: HostileRequest, outcome: Outcome): string | undefined {
  if (outcome.kind === 'dropped') {
    return request.oversized === true ? undefined : `the connection was dropped: ${outcome.error}`;
  }
  const { status } = outcome;
  if (status >= 200 && status < 300) return undefined;
  if (status < 400 || status >= 500) {
    return `answered ${status}: ${outcome.body.toString('utf8').slice(0, 500)}`;
  }
  const type = String(outcome.headers['content-type'] ?? '');
  if (!type.startsWith('application/problem+json')) return `${status} with content type ${type}`;
  let problem: { code?: unknown; status?: unknown };
  try {
    problem = JSON.parse(outcome.body.toString('utf8')) as typeof problem;
  } catch {
    return `${status} with a body that is not JSON: ${outcome.body.toString('utf8').slice(0, 200)}`;
  }
  if (typeof problem.code !== 'string' || !KNOWN_CODES.has(problem.code)) {
    return `${status} without a catalogued code: ${JSON.stringify(problem).slice(0, 300)}`;
  }
  if (problem.status !== status)
    return `${status} whose problem says status ${String(problem.status)}`;
  return undefined;
}

/** The resident set size of a process in bytes (Linux: VmRSS of /proc/<pid>/status). */
export function residentBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (kib === null) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kib[1]) * 1024;
}

/** Samples a process's RSS every `everyMs` until stopped; `peak` is the largest seen. */
export function watchResident(pid: number, everyMs = 100) {
  let peak = residentBytes(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, residentBytes(pid));
    } catch {
      // the process is gone: the liveness checks say so
    }
  }, everyMs);
  return {
    get peak() {
      return peak;
    },
    stop: () => clearInterval(timer),
  };
}

// ---------------------------------------------------------------------------------------------
// Building blocks.

const utf8 = (text: string): Buffer => Buffer.from(text, 'utf8');

/** Characters Node lets a header value hold: tab, printable ASCII, and the bytes 0x80-0xff. */
const headerChar = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
  { weight: 1, arbitrary: fc.constant(0x09) },
  { weight: 2, arbitrary: fc.integer({ min: 0x80, max: 0xff }) },
);

/** A header value; bytes over 0x7f go out as single latin1 bytes (so, often invalid UTF-8). */
export const headerValue = (maxLength = 64): fc.Arbitrary<string> =>
  fc.array(headerChar, { maxLength }).map((codes) => String.fromCharCode(...codes).trim());

const token = fc.stringMatching(/^[a-z0-9-]{1,20}$/);

/** Bytes that are not valid UTF-8 (lone continuation bytes, truncated sequences, overlongs). */
const invalidUtf8 = fc.constantFrom(
  Buffer.from([0xff]),
  Buffer.from([0xc3]),
  Buffer.from([0x80, 0x80]),
  Buffer.from([0xe2, 0x82]),
  Buffer.from([0xc0, 0xaf]),
  Buffer.from([0xed, 0xa0, 0x80]),
  Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]),
);

/** `[[[...]]]` or `{"a":{"a":...}}` nested up to 10,000 levels. */
export const deepJson = fc
  .record({
    depth: fc.oneof(fc.integer({ min: 1, max: 200 }), fc.constantFrom(1000, 5000, 10_000)),
    kind: fc.constantFrom('array', 'object', 'mixed', 'unclosed'),
  })
  .map(({ depth, kind }) => {
    switch (kind) {
      case 'array':
        return '['.repeat(depth) + ']'.repeat(depth);
      case 'object':
        return '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
      case 'mixed':
        return '[{"a":'.repeat(depth) + 'null' + '}]'.repeat(depth);
      default:
        return '['.repeat(depth);
    }
  });

/** JSON texts that are odd but (mostly) valid: huge numbers, duplicate keys, prototype keys. */
const oddJson = fc.constantFrom(
  '1e999999',
  '-1e999999',
  '123456789012345678901234567890123456789',
  '0.0000000000000000000000000000000000000000000000001e-400',
  '{"a":1,"a":2,"a":{"b":3}}',
  '{"__proto__":{"polluted":true}}',
  '{"constructor":{"prototype":{"polluted":true}}}',
  '"\\ud800"',
  '"\\u0000\\u001f"',
  '\ufeff{}',
  '',
  ' ',
  'null',
  '[1,]',
  '{"a"}',
  "{'a':1}",
  'NaN',
  '[' + '1,'.repeat(20_000) + '1]',
);

/** A random JSON value, as text. */
const randomJson = fc.jsonValue({ maxDepth: 6 }).map((value) => JSON.stringify(value) ?? 'null');

/** Any JSON-ish text, as bytes, sometimes with invalid UTF-8 spliced in. */
export const jsonishBody = fc
  .tuple(
    fc.oneof(randomJson, deepJson, oddJson, fc.string({ maxLength: 200 })),
    fc.option(fc.tuple(invalidUtf8, fc.nat()), { freq: 4 }),
  )
  .map(([text, spliced]) => {
    const bytes = utf8(text);
    if (spliced === null) return bytes;
    const [bad, at] = spliced;
    const cut = bytes.length === 0 ? 0 : at % bytes.length;
    return Buffer.concat([bytes.subarray(0, cut), bad, bytes.subarray(cut)]);
  });

/** Content types: the right ones, near misses, parameters, and nonsense. */
export const contentType = fc.oneof(
  fc.constantFrom(
    'application/json',
    'application/cloudevents+json',
    'application/cloudevents-batch+json',
    'application/cloudevents+json; charset=utf-8',
    'application/cloudevents+json; charset=latin1',
    'application/cloudevents+xml',
    'application/cloudevents+protobuf',
    'application/cloudevents-batch+avro',
    'APPLICATION/CLOUDEVENTS+JSON',
    'application/yaml',
    'text/yaml',
    'text/plain',
    'application/octet-stream',
    'multipart/form-data; boundary=x',
    'application/x-www-form-urlencoded',
    'text/html',
    'application/json; charset=utf-16',
    ';;;==',
    '*/*',
    'application/',
    '/json',
    'application/json;;;',
    'application/json; a="unterminated',
  ),
  headerValue(40),
  fc.tuple(token, token).map(([a, b]) => `${a}/${b}`),
);

// ---------------------------------------------------------------------------------------------
// Ingress: POST /{namespace}/{broker}.

const CE_ATTRIBUTES = [
  'specversion',
  'id',
  'source',
  'type',
  'time',
  'subject',
  'dataschema',
  'datacontenttype',
  'knativebrokerttl',
  'traceparent',
  'partitionkey',
];

const ceHeaders = fc
  .array(
    fc.tuple(
      fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(...CE_ATTRIBUTES) },
        { weight: 1, arbitrary: token },
        { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9_.]{1,30}$/) },
      ),
      fc.oneof(
        { weight: 3, arbitrary: headerValue() },
        {
          weight: 1,
          arbitrary: fc.constantFrom('1.0', '0.3', '2.0', '%', '%zz', '%C3%28', '%FF', 'a%20b'),
        },
        {
          weight: 1,
          arbitrary: fc.constantFrom('2026-13-45T99:99:99Z', 'not a time', '-1', '1e9'),
        },
      ),
    ),
    { maxLength: 12 },
  )
  .map((entries) => {
    const headers: Record<string, string> = {};
    for (const [name, value] of entries) headers[`ce-${name}`] = value;
    return headers;
  });

/** A complete, valid set of binary-mode attributes, so that the body gets decoded too. */
const validCe = fc.record({
  'ce-specversion': fc.constant('1.0'),
  'ce-id': fc.stringMatching(/^[a-z0-9]{1,12}$/),
  'ce-source': fc.constant('/hostile'),
  'ce-type': fc.constant('com.example.hostile'),
});

const structuredEvent = fc
  .record({
    members: fc.dictionary(
      fc.oneof(fc.constantFrom(...CE_ATTRIBUTES, 'data', 'data_base64', '__proto__'), token),
      fc.jsonValue({ maxDepth: 3 }),
      { maxKeys: 10 },
    ),
    valid: fc.boolean(),
    data: fc.oneof(randomJson, deepJson, oddJson),
  })
  .map(({ members, valid, data }) => {
    const base = valid
      ? { specversion: '1.0', id: 'x', source: '/hostile', type: 'com.example.hostile', ...members }
      : members;
    // The data member is spliced in as text, so that deep or odd JSON reaches the server as such.
    const text = JSON.stringify(base);
    return text === '{}' ? `{"data":${data}}` : `${text.slice(0, -1)},"data":${data}}`;
  });

const structuredBody = fc.oneof(
  structuredEvent.map(utf8),
  fc.array(structuredEvent, { maxLength: 5 }).map((events) => utf8(`[${events.join(',')}]`)),
  jsonishBody,
);

/** Every request of the ingress property, to broker `broker` of namespace `default` (or a wrong one). */
export function ingressRequest(broker: string, limit: number): fc.Arbitrary<HostileRequest> {
  const path = fc.oneof(
    { weight: 8, arbitrary: fc.constant(`/default/${broker}`) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 }))
        .map(([ns, b]) => `/${encodeURIComponent(ns)}/${encodeURIComponent(b)}`),
    },
  );
  const binary = fc
    .record({
      path,
      ce: fc.oneof(
        ceHeaders,
        fc.tuple(validCe, ceHeaders).map(([v, r]) => ({ ...r, ...v })),
      ),
      type: fc.option(contentType, { freq: 5 }),
      body: fc.oneof(
        jsonishBody,
        fc.uint8Array({ maxLength: 4096 }).map((b) => Buffer.from(b)),
      ),
    })
    .map(({ path, ce, type, body }) => ({
      method: 'POST',
      path,
      headers: { ...ce, ...(type === null ? {} : { 'content-type': type }) },
      body,
    }));
  const structured = fc
    .record({
      path,
      type: fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom('application/cloudevents+json') },
        { weight: 2, arbitrary: fc.constantFrom('application/cloudevents-batch+json') },
        { weight: 1, arbitrary: contentType },
      ),
      ce: fc.option(ceHeaders, { freq: 4 }),
      body: structuredBody,
    })
    .map(({ path, type, ce, body }) => ({
      method: 'POST',
      path,
      headers: { ...(ce ?? {}), 'content-type': type },
      body,
    }));
  return fc.oneof(
    { weight: 5, arbitrary: binary },
    { weight: 5, arbitrary: structured },
    { weight: 1, arbitrary: oversized(`/default/${broker}`, limit, contentType) },
  );
}

/** A body a little or a lot over `limit`: 413, or a close while it is sent. */
function oversized(
  path: string,
  limit: number,
  type: fc.Arbitrary<string>,
): fc.Arbitrary<HostileRequest> {
  return fc
    .record({ extra: fc.integer({ min: 1, max: 64 * 1024 }), type })
    .map(({ extra, type }) => ({
      method: 'POST',
      path,
      headers: {
        'content-type': type,
        'ce-specversion': '1.0',
        'ce-id': 'big',
        'ce-source': '/hostile',
        'ce-type': 't',
      },
      body: Buffer.alloc(limit + extra, 0x5b),
      oversized: true,
    }));
}

// ---------------------------------------------------------------------------------------------
// Management: PUT /v1/namespaces/{ns}/{collection}/{name} and POST /v1/apply.

/** n levels of aliases, each a list of `width` references to the previous: width^n nodes. */
export function yamlBomb(levels: number, width: number): string {
  const lines = [`l0: &l0 [${Array.from({ length: width }, () => '"lol"').join(', ')}]`];
  for (let i = 1; i <= levels; i++) {
    lines.push(`l${i}: &l${i} [${Array.from({ length: width }, () => `*l${i - 1}`).join(', ')}]`);
  }
  return lines.join('\n') + '\n';
}

/** YAML nested `depth` levels, in one of its four ways of nesting. */
export function deepYaml(depth: number, style: 'flow' | 'block' | 'sequence' | 'keys'): string {
  switch (style) {
    case 'flow':
      return '['.repeat(depth) + ']'.repeat(depth);
    case 'block': {
      // Indentation grows by one a level: at most 300 levels, so that the body stays ~45 KB.
      const levels = Math.min(depth, 300);
      return Array.from({ length: levels }, (_, i) => `${' '.repeat(i)}a:`).join('\n') + ' 1\n';
    }
    case 'sequence':
      return '- '.repeat(depth) + 'x\n';
    default:
      return '? '.repeat(depth) + 'x\n';
  }
}

const YAML_PIECES = [
  'kind: Broker\n',
  'kind: Trigger\n',
  'kind: GitHubSource\n',
  'apiVersion: eventing.knative.dev/v1\n',
  'metadata:\n  name: hostile\n',
  'metadata: {name: "a b"}\n',
  'spec:\n  broker: default\n',
  'spec: {subscriber: {uri: "http://127.0.0.1:9/"}}\n',
  '---\n',
  '...\n',
  '&a x: *a\n',
  '*undefined\n',
  '<<: *a\n',
  '!!binary aGk=\n',
  '!!js/function "function(){}"\n',
  '!!python/object:os.system ls\n',
  '? [a, b]\n: c\n',
  '%YAML 1.1\n---\n',
  '%TAG ! tag:x,2000:\n---\n',
  'a: |\n  text\n',
  'a: >-\n  folded\n',
  '\t- tab\n',
  'a: b: c\n',
  '- - - x\n',
  '"unterminated\n',
  "'quoted'\n",
  '__proto__: {polluted: true}\n',
  'a: 1e999999\n',
  'a: 0x_FF\n',
  'a: .inf\n',
  'a: ~\n',
  '{a: 1, a: 2}\n',
];

const randomYaml = fc.oneof(
  fc.array(fc.constantFrom(...YAML_PIECES), { maxLength: 12 }).map((pieces) => pieces.join('')),
  fc.string({ maxLength: 300 }),
  fc
    .record({ levels: fc.integer({ min: 1, max: 12 }), width: fc.integer({ min: 2, max: 12 }) })
    .map(({ levels, width }) => yamlBomb(levels, width)),
  fc
    .record({
      depth: fc.oneof(fc.integer({ min: 1, max: 100 }), fc.constantFrom(1000, 10_000)),
      style: fc.constantFrom(
        'flow' as const,
        'block' as const,
        'sequence' as const,
        'keys' as const,
      ),
    })
    .map(({ depth, style }) => deepYaml(depth, style)),
  fc
    .jsonValue({ maxDepth: 5 })
    .map((value) => `kind: Broker\nmetadata: {name: y}\nspec: ${JSON.stringify(value)}\n`),
);

const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml'];

/** Something resource-shaped with random parts: a kind, a name, a spec of random JSON. */
const manifestish = fc
  .record({
    kind: fc.oneof(
      fc.constantFrom('Broker', 'Trigger', 'GitHubSource', 'GitLabSource', 'List', 'Nope'),
      fc.jsonValue({ maxDepth: 1 }),
    ),
    metadata: fc.oneof(
      fc.record({ name: fc.oneof(token, fc.string({ maxLength: 80 })) }),
      fc.jsonValue({ maxDepth: 2 }),
    ),
    spec: fc.jsonValue({ maxDepth: 5 }),
  })
  .map((m) => utf8(JSON.stringify(m)));

export function managementRequest(limit: number): fc.Arbitrary<HostileRequest> {
  const yaml = fc
    .record({
      text: randomYaml,
      type: fc.constantFrom(...YAML_TYPES),
      bad: fc.option(invalidUtf8, { freq: 5 }),
    })
    .map(({ text, type, bad }) => ({
      body: bad === null ? utf8(text) : Buffer.concat([utf8(text), bad]),
      type,
    }));
  const json = fc
    .record({
      body: fc.oneof(jsonishBody, manifestish),
      type: fc.oneof(
        { weight: 5, arbitrary: fc.constant('application/json') },
        { weight: 1, arbitrary: contentType },
      ),
    })
    .map(({ body, type }) => ({ body, type }));
  const where = fc.oneof(
    { weight: 3, arbitrary: fc.constant({ method: 'POST', path: '/v1/apply' }) },
    {
      weight: 2,
      arbitrary: fc
        .record({
          collection: fc.constantFrom('brokers', 'triggers', 'sources', 'nope'),
          name: fc.oneof(token, fc.string({ maxLength: 70 })),
          namespace: fc.oneof(fc.constant('default'), token, fc.string({ maxLength: 70 })),
        })
        .map(({ collection, name, namespace }) => ({
          method: 'PUT',
          // Names start with "h" so that the property never replaces the fixtures of the test.
          path: `/v1/namespaces/${encodeURIComponent(namespace)}/${collection}/h${encodeURIComponent(name)}`,
        })),
    },
  );
  const normal = fc
    .tuple(where, fc.oneof(yaml, json))
    .map(([{ method, path }, { body, type }]) => ({
      method,
      path,
      headers: { 'content-type': type },
      body,
    }));
  return fc.oneof(
    { weight: 12, arbitrary: normal },
    { weight: 1, arbitrary: oversizedManagement(limit) },
  );
}

function oversizedManagement(limit: number): fc.Arbitrary<HostileRequest> {
  return fc
    .record({
      extra: fc.integer({ min: 1, max: 64 * 1024 }),
      type: fc.constantFrom('application/json', 'application/yaml'),
    })
    .map(({ extra, type }) => ({
      method: 'POST',
      path: '/v1/apply',
      headers: { 'content-type': type },
      body: Buffer.alloc(limit + extra, 0x5b),
      oversized: true,
    }));
}

/**
 * A valid apply body that keeps ~width^levels aliases: refused (too many aliases) rather than
 * expanded, whatever the levels.
 */
export const BILLION_LAUGHS = yamlBomb(9, 10);

// ---------------------------------------------------------------------------------------------
// Webhooks: POST /webhooks/{namespace}/{source}.

export interface WebhookSources {
  /** GitHubSource names: one without a secret (bodies reach the adapter), one with `secret`. */
  readonly github: { readonly open: string; readonly signed: string };
  readonly gitlab: { readonly open: string; readonly signed: string };
  readonly secret: string;
}

const GITHUB_EVENTS = ['push', 'ping', 'issues', 'pull_request', 'release', 'nope', ''];
const GITLAB_EVENTS = ['Push Hook', 'Issue Hook', 'Merge Request Hook', 'System Hook', 'Nope'];

export function webhookRequest(
  sources: WebhookSources,
  limit: number,
): fc.Arbitrary<HostileRequest> {
  const body = fc.oneof(
    jsonishBody,
    fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b)),
    fc
      .record({
        action: fc.string({ maxLength: 10 }),
        repository: fc.oneof(
          fc.record({ full_name: fc.string(), html_url: fc.string() }),
          fc.jsonValue({ maxDepth: 3 }),
        ),
        project: fc.jsonValue({ maxDepth: 3 }),
        object_kind: fc.string({ maxLength: 12 }),
      })
      .map((o) => utf8(JSON.stringify(o))),
  );
  const github = fc
    .record({
      signed: fc.boolean(),
      event: fc.oneof(fc.constantFrom(...GITHUB_EVENTS), headerValue(30)),
      delivery: fc.option(headerValue(40), { freq: 5 }),
      signature: fc.oneof(
        fc.constant('good'),
        fc.constant('none'),
        headerValue(80),
        fc.stringMatching(/^[0-9a-f]{64}$/).map((hex) => `sha256=${hex}`),
        fc.constantFrom('sha256=', 'sha1=abc', 'sha256=zz'),
      ),
      type: fc.option(contentType, { freq: 3 }),
      body,
    })
    .map(({ signed, event, delivery, signature, type, body }) => {
      const headers: Record<string, string> = { 'x-github-event': event };
      if (delivery !== null) headers['x-github-delivery'] = delivery;
      if (signature === 'good') {
        headers['x-hub-signature-256'] =
          `sha256=${createHmac('sha256', sources.secret).update(body).digest('hex')}`;
      } else if (signature !== 'none') headers['x-hub-signature-256'] = signature;
      headers['content-type'] = type ?? 'application/json';
      const name = signed ? sources.github.signed : sources.github.open;
      return { method: 'POST', path: `/webhooks/default/${name}`, headers, body };
    });
  const gitlab = fc
    .record({
      signed: fc.boolean(),
      event: fc.oneof(fc.constantFrom(...GITLAB_EVENTS), headerValue(30)),
      token: fc.oneof(fc.constant('good'), fc.constant('none'), headerValue(40)),
      uuid: fc.option(headerValue(40), { freq: 3 }),
      type: fc.option(contentType, { freq: 3 }),
      body,
    })
    .map(({ signed, event, token, uuid, type, body }) => {
      const headers: Record<string, string> = { 'x-gitlab-event': event };
      if (token === 'good') headers['x-gitlab-token'] = sources.secret;
      else if (token !== 'none') headers['x-gitlab-token'] = token;
      if (uuid !== null) headers['x-gitlab-event-uuid'] = uuid;
      headers['content-type'] = type ?? 'application/json';
      const name = signed ? sources.gitlab.signed : sources.gitlab.open;
      return { method: 'POST', path: `/webhooks/default/${name}`, headers, body };
    });
  const elsewhere = fc
    .record({ source: fc.string({ maxLength: 30 }), body })
    .map(({ source, body }) => ({
      method: 'POST',
      path: `/webhooks/default/${encodeURIComponent(source)}`,
      headers: { 'content-type': 'application/json' },
      body,
    }));
  return fc.oneof(
    { weight: 5, arbitrary: github },
    { weight: 5, arbitrary: gitlab },
    { weight: 1, arbitrary: elsewhere },
    {
      weight: 1,
      arbitrary: oversized(`/webhooks/default/${sources.github.open}`, limit, contentType),
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Raw sockets.

export interface RawAnswer {
  /** Everything the server wrote before it closed the connection (or before `timeoutMs`). */
  readonly text: string;
  /** The server closed the connection (rather than the wait timing out). */
  readonly closed: boolean;
  /** ms from the first byte sent to the close. */
  readonly elapsedMs: number;
}

/**
 * Opens a connection, calls `write` with it, and collects what the server writes until it closes
 * the connection, or `timeoutMs` passes (then the socket is destroyed and `closed` is false).
 */
export function rawExchange(
  baseUrl: string,
  write: (socket: net.Socket) => void | Promise<void>,
  timeoutMs = 10_000,
): Promise<RawAnswer> {
  const url = new URL(baseUrl);
  return new Promise<RawAnswer>((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    let started = 0;
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({
        text: Buffer.concat(chunks).toString('latin1'),
        closed,
        elapsedMs: Date.now() - started,
      });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    // A reset after the answer counts as a close; writes into a closed socket are expected.
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('connect', () => {
      started = Date.now();
      Promise.resolve(write(socket)).catch((error: unknown) => {
        if (!done) reject(error instanceof Error ? error : new Error(String(error)));
      });
    });
  });
}

/** The status line's code and the JSON body of a raw HTTP/1.1 answer (one, not chunked). */
export function parseRawAnswer(text: string): {
  status: number;
  headers: Record<string, string>;
  body: unknown;
} {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`not an HTTP answer: ${JSON.stringify(text.slice(0, 200))}`);
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? '')?.[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const raw = text.slice(end + 4);
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    body = raw;
  }
  return { status, headers, body };
}

/** Writes `data` and resolves once it is handed to the kernel (or the socket is gone). */
export function writeAll(socket: net.Socket, data: string | Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    if (socket.destroyed) {
      resolve(false);
      return;
    }
    socket.write(data, (error) => resolve(error === undefined || error === null));
  });
}
