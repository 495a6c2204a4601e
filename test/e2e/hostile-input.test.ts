/**
 * Hostile input against one running server (the built CLI): fast-check properties send more than
 * 10,000 generated requests (malformed, deeply nested, oversized, badly typed, invalid UTF-8,
 * YAML bombs) to the ingress, the management API and the webhooks, and each answer must be a 2xx
 * or an application/problem+json 4xx with a catalogued code; afterwards the process is alive,
 * ready, logged no 5xx or uncaught error, and its RSS stayed bounded. Raw-socket cases cover what
 * an HTTP client will not send: header blocks over --max-header-size, a 100 KB request line,
 * bodies dripped slower than --request-timeout, lying Content-Length, broken chunking, and a body
 * streamed past --max-event-size. docs/hostile-input.md describes the limits.
 */
import type net from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BILLION_LAUGHS,
  deepYaml,
  HostileClient,
  ingressRequest,
  managementRequest,
  parseRawAnswer,
  rawExchange,
  residentBytes,
  verdict,
  watchResident,
  webhookRequest,
  writeAll,
  type HostileRequest,
  type WebhookSources,
} from '../support/hostile.js';
import { putResource, startServer, type ServerProcess } from '../support/server-process.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

const MiB = 1024 * 1024;
/** --max-event-size and --webhook-max-body of the server under test. */
const LIMIT = 64 * 1024;
/** --request-timeout of the server under test, in ms. */
const REQUEST_TIMEOUT = 1000;
/** --max-header-size. */
const MAX_HEADER = 16 * 1024;
/**
 * How much the server's RSS may grow over its size after start-up during the property run. The
 * working set is small: at most 8 requests are in flight, each body at most LIMIT + 64 KiB, parsed
 * into a few copies, so a few MB; the rest of the margin is V8 letting garbage pile up between
 * collections under load (measured: 35 to 55 MB over a start-up RSS of about 170 MB). A leak of the bodies (10,000 x up to 128 KiB), an expanded YAML bomb
 * (10^9 nodes) or a body read whole past the limit would all go far over it.
 */
const RSS_GROWTH_BOUND = 128 * MiB;

const BROKER = 'hostile';
const SOURCES: WebhookSources = {
  github: { open: 'gh-open', signed: 'gh-signed' },
  gitlab: { open: 'gl-open', signed: 'gl-signed' },
  secret: 'hostile-secret',
};

let server: ServerProcess;
let client: HostileClient;

beforeAll(async () => {
  server = await startServer({
    dataDir: tempDir(),
    args: [
      '--max-event-size',
      String(LIMIT),
      '--webhook-max-body',
      String(LIMIT),
      '--request-timeout',
      `${REQUEST_TIMEOUT}ms`,
      '--max-header-size',
      String(MAX_HEADER),
    ],
  });
  client = new HostileClient(server.url, 8);
  expect((await putResource(server.url, 'brokers', 'default', BROKER, {})).status).toBe(201);
  const sink = { ref: { apiVersion: 'eventing.knative.dev/v1', kind: 'Broker', name: BROKER } };
  for (const [name, kind, spec] of [
    [SOURCES.github.open, 'GitHubSource', { ownerAndRepository: 'octo/hostile' }],
    [
      SOURCES.github.signed,
      'GitHubSource',
      { ownerAndRepository: 'octo/hostile', secretToken: { value: SOURCES.secret } },
    ],
    [SOURCES.gitlab.open, 'GitLabSource', { projectUrl: 'https://gitlab.example/octo/hostile' }],
    [
      SOURCES.gitlab.signed,
      'GitLabSource',
      {
        projectUrl: 'https://gitlab.example/octo/hostile',
        secretToken: { value: SOURCES.secret },
      },
    ],
  ] as const) {
    const created = await putResource(server.url, 'sources', 'default', name, {
      apiVersion: 'sources.knative.dev/v1alpha1',
      kind,
      spec: { ...spec, sink },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
  }
});

afterAll(async () => {
  client?.close();
  await server?.stop();
  removeTempDirs();
});

/** What the server wrote that must never be there: a 5xx, an uncaught error, a V8 abort. */
function serverFailures(): string[] {
  return server
    .output()
    .split('\n')
    .filter((line) =>
      /"request failed"|"level":60|uncaught|unhandled|FATAL ERROR|RangeError|out of memory/i.test(
        line,
      ),
    );
}

async function expectAlive(): Promise<void> {
  expect(server.child.exitCode).toBeNull();
  expect(server.child.signalCode).toBeNull();
  const ready = await fetch(`${server.url}/readyz`);
  expect(ready.status).toBe(200);
  expect(serverFailures()).toEqual([]);
}

function describeRequest(request: HostileRequest): string {
  const body = request.body ?? Buffer.alloc(0);
  return `${request.method} ${request.path} ${JSON.stringify(request.headers)} body (${body.length} bytes) ${JSON.stringify(body.subarray(0, 200).toString('latin1'))}`;
}

/** Answers by surface (ingress, apply, webhooks...) and status, to check what the run reached. */
const tally = new Map<string, Map<number, number>>();

function surfaceOf(path: string): string {
  if (path.startsWith('/webhooks/')) return 'webhooks';
  if (path.startsWith('/v1/')) return 'management';
  return 'ingress';
}

async function answersWell(request: HostileRequest): Promise<void> {
  const outcome = await client.send(request);
  const wrong = verdict(request, outcome);
  if (wrong !== undefined) throw new Error(`${describeRequest(request)}: ${wrong}`);
  const surface = surfaceOf(request.path);
  const counts = tally.get(surface) ?? new Map<number, number>();
  const status = outcome.kind === 'answer' ? outcome.status : 0;
  counts.set(status, (counts.get(status) ?? 0) + 1);
  tally.set(surface, counts);
}

/** A property over `requests`, `runs` times; a failure is shrunk to a small request and thrown. */
function check(requests: fc.Arbitrary<HostileRequest>, runs: number): Promise<void> {
  return fc.assert(fc.asyncProperty(requests, answersWell), {
    numRuns: runs,
    // The request in the error is cut short; fast-check's own report would print whole bodies.
    reporter: (details) => {
      if (!details.failed) return;
      const error = details.errorInstance;
      throw new Error(
        `after ${details.numRuns} runs (seed ${details.seed}, path ${details.counterexamplePath ?? ''}, shrunk ${details.numShrinks} times): ${error instanceof Error ? error.message : String(error)}`,
      );
    },
  });
}

describe('generated hostile requests (fast-check)', () => {
  it('answers 10,000+ of them with a 2xx or a problem 4xx, and stays up with bounded memory', async () => {
    const pid = server.child.pid!;
    const baseline = residentBytes(pid);
    const rss = watchResident(pid);
    try {
      // Several properties at once over 8 keep-alive connections.
      await Promise.all([
        check(ingressRequest(BROKER, LIMIT), 2000),
        check(ingressRequest(BROKER, LIMIT), 1500),
        check(managementRequest(LIMIT), 2000),
        check(managementRequest(LIMIT), 1500),
        check(webhookRequest(SOURCES, LIMIT), 3000),
      ]);
    } finally {
      rss.stop();
    }
    expect(client.sent).toBeGreaterThanOrEqual(10_000);
    // The run reached past the front door of each surface: some requests were taken, some refused.
    for (const surface of ['ingress', 'management', 'webhooks']) {
      const statuses = [...(tally.get(surface) ?? new Map<number, number>()).keys()];
      expect(
        statuses.some((s) => s < 300),
        `${surface}: ${statuses.join(', ')}`,
      ).toBe(true);
      expect(
        statuses.filter((s) => s >= 400).length,
        `${surface}: ${statuses.join(', ')}`,
      ).toBeGreaterThan(2);
    }
    await expectAlive();
    expect(
      rss.peak - baseline,
      `peak RSS ${rss.peak} bytes, after start-up ${baseline}`,
    ).toBeLessThan(RSS_GROWTH_BOUND);
  }, 240_000);

  it('refuses a billion-laughs YAML and YAML nested 10,000 levels with 400, not 5xx', async () => {
    for (const body of [
      BILLION_LAUGHS,
      deepYaml(10_000, 'flow'),
      deepYaml(10_000, 'sequence'),
      deepYaml(300, 'block'),
      deepYaml(10_000, 'keys'),
    ]) {
      for (const [method, path] of [
        ['POST', '/v1/apply'],
        ['PUT', `/v1/namespaces/default/brokers/yaml`],
      ] as const) {
        const response = await fetch(`${server.url}${path}`, {
          method,
          headers: { 'content-type': 'application/yaml' },
          body,
        });
        expect(response.status, body.slice(0, 60)).toBe(400);
        expect(((await response.json()) as { code: string }).code).toBe('BAD_REQUEST');
      }
    }
    await expectAlive();
  });

  it('refuses filters nested deeper than the limit with a field path, not a stack overflow', async () => {
    const depth = 5000;
    const filter = '{"not":'.repeat(depth) + '{"exact":{"type":"a"}}' + '}'.repeat(depth);
    const response = await fetch(`${server.url}/v1/namespaces/default/triggers/deep`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: `{"spec":{"broker":"${BROKER}","subscriber":{"uri":"http://127.0.0.1:9/"},"filters":[${filter}]}}`,
    });
    expect(response.status).toBe(400);
    const problem = (await response.json()) as { code: string; errors: { field: string }[] };
    expect(problem.code).toBe('VALIDATION_FAILED');
    expect(problem.errors[0]!.field).toMatch(/^spec\.filters\[0\](\.not){33}$/);
  });

  it('answers wrong content types with 415', async () => {
    for (const [path, type] of [
      [`/default/${BROKER}`, 'application/cloudevents+xml'],
      [`/default/${BROKER}`, 'application/cloudevents-batch+protobuf'],
      ['/v1/apply', 'text/html'],
      ['/v1/apply', 'application/x-www-form-urlencoded'],
    ] as const) {
      const response = await fetch(`${server.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': type },
        body: '<x/>',
      });
      expect(response.status, `${path} ${type}`).toBe(415);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(((await response.json()) as { code: string }).code).toBe('UNSUPPORTED_MEDIA_TYPE');
    }
  });
});

describe('raw sockets', () => {
  const CE =
    'ce-specversion: 1.0\r\nce-id: raw\r\nce-source: /raw\r\nce-type: t\r\ncontent-type: text/plain\r\n';

  function expectProblem(text: string, status: number, code: string): void {
    const answer = parseRawAnswer(text);
    expect(answer.status, text.slice(0, 300)).toBe(status);
    expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect((answer.body as { code: string }).code).toBe(code);
  }

  it('answers a header block over --max-header-size with 431 and closes', async () => {
    const answer = await rawExchange(server.url, (socket) => {
      socket.write(
        `POST /default/${BROKER} HTTP/1.1\r\nhost: x\r\n${CE}x-big: ${'a'.repeat(MAX_HEADER + 1)}\r\ncontent-length: 0\r\n\r\n`,
      );
    });
    expect(answer.closed).toBe(true);
    expectProblem(answer.text, 431, 'HEADERS_TOO_LARGE');
  });

  it('takes many small headers under the limit, and refuses them over it', async () => {
    const many = (count: number): string =>
      Array.from({ length: count }, (_, i) => `x-h${i}: v\r\n`).join('');
    const under = await rawExchange(server.url, (socket) => {
      socket.write(
        `POST /default/${BROKER} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n${CE}${many(1000)}content-length: 2\r\n\r\nhi`,
      );
    });
    expect(parseRawAnswer(under.text).status).toBe(202);
    const over = await rawExchange(server.url, (socket) => {
      socket.write(
        `POST /default/${BROKER} HTTP/1.1\r\nhost: x\r\n${CE}${many(3000)}content-length: 2\r\n\r\nhi`,
      );
    });
    expect(over.closed).toBe(true);
    expectProblem(over.text, 431, 'HEADERS_TOO_LARGE');
  });

  it('answers a 100 KB request line with 431 and closes', async () => {
    const answer = await rawExchange(server.url, (socket) => {
      socket.write(`GET /${'a'.repeat(100 * 1024)} HTTP/1.1\r\nhost: x\r\n\r\n`);
    });
    expect(answer.closed).toBe(true);
    expectProblem(answer.text, 431, 'HEADERS_TOO_LARGE');
  });

  it('answers a body dripped slower than --request-timeout with 408 and closes', async () => {
    let timer: NodeJS.Timeout | undefined;
    const answer = await rawExchange(server.url, (socket) => {
      socket.write(
        `POST /default/${BROKER} HTTP/1.1\r\nhost: x\r\n${CE}content-length: 100\r\n\r\n`,
      );
      // One byte a second: the body would take 100 s.
      timer = setInterval(() => {
        if (!socket.destroyed) socket.write('a');
      }, 1000);
    });
    clearInterval(timer);
    expect(answer.closed).toBe(true);
    // Node checks the deadlines every second at most (connectionsCheckingInterval).
    expect(answer.elapsedMs).toBeLessThan(REQUEST_TIMEOUT + 1000 + 2000);
    expectProblem(answer.text, 408, 'REQUEST_TIMEOUT');
  });

  it('answers headers dripped slower than --request-timeout with 408 and closes', async () => {
    let timer: NodeJS.Timeout | undefined;
    const answer = await rawExchange(server.url, (socket) => {
      socket.write(`POST /default/${BROKER} HTTP/1.1\r\n`);
      let i = 0;
      timer = setInterval(() => {
        if (!socket.destroyed) socket.write(`x-slow-${i++}: 1\r\n`);
      }, 300);
    });
    clearInterval(timer);
    expect(answer.closed).toBe(true);
    expect(answer.elapsedMs).toBeLessThan(REQUEST_TIMEOUT + 1000 + 2000);
    expectProblem(answer.text, 408, 'REQUEST_TIMEOUT');
  });

  it('survives a Content-Length larger than the body followed by a close', async () => {
    const answer = await rawExchange(server.url, (socket) => {
      socket.end(
        `POST /default/${BROKER} HTTP/1.1\r\nhost: x\r\n${CE}content-length: 1000\r\n\r\nshort`,
      );
    });
    expect(answer.closed).toBe(true);
    // Nothing, or a 4xx: never a 5xx.
    if (answer.text !== '') expect(parseRawAnswer(answer.text).status).toBeLessThan(500);
    await expectAlive();
  });

  it('answers chunked bodies with invalid chunk sizes with 400 and closes', async () => {
    for (const chunks of [
      'zz\r\nabc\r\n0\r\n\r\n',
      '-1\r\nabc\r\n0\r\n\r\n',
      'fffffffffffffffffffff\r\nabc\r\n0\r\n\r\n',
      '3\r\nabcdef\r\n0\r\n\r\n',
    ]) {
      const answer = await rawExchange(server.url, (socket) => {
        socket.write(
          `POST /default/${BROKER} HTTP/1.1\r\nhost: x\r\n${CE}transfer-encoding: chunked\r\n\r\n${chunks}`,
        );
      });
      expect(answer.closed, chunks).toBe(true);
      expectProblem(answer.text, 400, 'BAD_REQUEST');
    }
  });

  it('answers a body streamed past --max-event-size with 413 and stops reading it', async () => {
    const pid = server.child.pid!;
    const before = residentBytes(pid);
    const piece = Buffer.alloc(256 * 1024, 0x61);
    const chunk = Buffer.concat([
      Buffer.from(`${piece.length.toString(16)}\r\n`),
      piece,
      Buffer.from('\r\n'),
    ]);
    /** Stop anyway after this much: a server still reading by then has not stopped. */
    const giveUpAfter = 512 * MiB;
    let written = 0;
    const answer = await rawExchange(
      server.url,
      async (socket: net.Socket) => {
        // More than the limit, then wait for the answer: it is read before the server closes
        // (a close with unread data resets the connection, which can discard an answer in flight).
        const answered = new Promise((resolve) => {
          socket.once('data', resolve);
          socket.once('close', resolve);
        });
        await writeAll(
          socket,
          `POST /default/${BROKER} HTTP/1.1\r\nhost: x\r\n${CE}transfer-encoding: chunked\r\n\r\n`,
        );
        await writeAll(socket, chunk);
        written += chunk.length;
        await answered;
        // Then keep streaming: the server must have stopped reading and closed the connection.
        while (!socket.destroyed && written < giveUpAfter) {
          if (!(await writeAll(socket, chunk))) break;
          written += chunk.length;
        }
      },
      60_000,
    );
    expect(answer.closed).toBe(true);
    expectProblem(answer.text, 413, 'PAYLOAD_TOO_LARGE');
    // What the kernel's socket buffers held when the server closed, not 512 MiB.
    expect(written).toBeLessThan(64 * MiB);
    expect(residentBytes(pid) - before).toBeLessThan(64 * MiB);
    await expectAlive();
  });
});
