/**
 * The load of the sources scenario, run as its own process on the generator core, fresh for every
 * measurement: `node webhook-load.js '<task as JSON>'` prints one JSON line with the result.
 *
 * Closed loop: `connections` keep-alive connections each send the next delivery as soon as the
 * previous one is answered, `deliveries` in all, every one the same body (a GitHub `push`
 * payload) with a new id:
 *
 * - `webhook`: POSTed to a GitHubSource's webhook URL as GitHub sends it (`X-GitHub-Event`, a new
 *   `X-GitHub-Delivery` UUID, `X-Hub-Signature-256` of the body with the source's secret);
 * - `ingress`: POSTed to the broker ingress as a binary-mode CloudEvent (a new `ce-id` UUID, the
 *   type and source the GitHubSource would give it).
 *
 * The trigger on the broker delivers every event back to the subscriber in this process, which
 * counts them by id. Throughput is end to end: the deliveries over the time from the first send
 * until the subscriber has received every delivery that was answered 202. A warm-up of the same
 * kind is sent and delivered first (a fresh server's code runs unoptimized for its first
 * thousands of events), and discarded.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { GITHUB_EVENT, GITHUB_EVENT_TYPE, hubSignature256, pushPayload } from './github-payload.js';
import { HttpConnection, postRequest } from './http-client.js';
import { cpuNs, monotonicUs, now, sleep, runTask } from './proc.js';
import { percentiles, Samples, type Percentiles } from './stats.js';

export type DeliveryMode = 'webhook' | 'ingress';

export interface DeliveryTask {
  readonly mode: DeliveryMode;
  /** Base URL of the server under test. */
  readonly url: string;
  /** The webhook path (`/webhooks/<ns>/<source>`) or the ingress path (`/<ns>/<broker>`). */
  readonly path: string;
  /** The GitHubSource's secret token (webhook mode). */
  readonly secret: string;
  /** `ce-source` of the ingress events: the source the GitHubSource gives its events. */
  readonly ceSource: string;
  readonly deliveries: number;
  readonly warmup: number;
  readonly connections: number;
  /** The port the trigger's subscriber URI names. */
  readonly receiverPort: number;
  /** How long a phase may take, from its first send until its last delivery. */
  readonly timeoutMs: number;
  /** The server's pid, to read its CPU time (Linux /proc). */
  readonly serverPid?: number;
}

export interface PhaseResult {
  readonly deliveries: number;
  /** From the first send until the last delivery answered 202 was received (or the timeout). */
  readonly seconds: number;
  /** Unique deliveries received over `seconds`. */
  readonly deliveriesPerSecond: number;
  /** From the first send until every request was answered. */
  readonly answeredSeconds: number;
  readonly answeredPerSecond: number;
  readonly statuses: Record<string, number>;
  /** Requests answered with anything but 202, and requests that got no answer. */
  readonly non202: number;
  readonly errors: number;
  /** Unique deliveries received. */
  readonly received: number;
  /** Every delivery answered 202 was received before the timeout. */
  readonly complete: boolean;
  /** The same id received again (at least once), within the phase. */
  readonly duplicates: number;
  /** Response time of the requests (ms). */
  readonly responseMs: Percentiles;
  /** From each send to the subscriber's receipt of its event (ms). */
  readonly deliveryMs: Percentiles;
  /** Share of one core the server used over `seconds` (NaN without its pid). */
  readonly serverCpu: number;
  /** Server CPU per delivery, µs. */
  readonly serverCpuPerDeliveryUs: number;
  readonly generatorCpu: number;
  /** The phase on CLOCK_MONOTONIC in µs, the clock of V8's CPU profiles. */
  readonly windowMonotonicUs: readonly [number, number];
}

export interface DeliveryResult extends PhaseResult {
  readonly mode: DeliveryMode;
  readonly connections: number;
  readonly bodyBytes: number;
  readonly warmup: PhaseResult;
  /** Receipts of ids this process did not send in the phase they arrived in. */
  readonly strays: number;
}

interface Phase {
  /** Ids sent and not received yet, with their send time. */
  readonly pending: Map<string, number>;
  readonly seen: Set<string>;
  readonly delivery: Samples;
  received: number;
  duplicates: number;
  lastAt: number;
  onReceipt: () => void;
}

let current: Phase | undefined;
let strays = 0;

/** The subscriber: a real HTTP server in this process that counts each event by its `ce-id`. */
async function receiver(port: number): Promise<http.Server> {
  const server = http.createServer((request, response) => {
    const at = now();
    const id = request.headers['ce-id'];
    request.resume();
    request.on('end', () => {
      response.writeHead(202, { 'content-length': '0' });
      response.end();
    });
    const phase = current;
    if (typeof id !== 'string' || phase === undefined) {
      strays++;
      return;
    }
    const sentAt = phase.pending.get(id);
    if (sentAt !== undefined) {
      phase.pending.delete(id);
      phase.seen.add(id);
      phase.received++;
      phase.lastAt = at;
      phase.delivery.push(at - sentAt);
      phase.onReceipt();
    } else if (phase.seen.has(id)) {
      phase.duplicates++;
    } else {
      strays++;
    }
  });
  // Longer than the broker's pooled connections stay idle (see generator.ts).
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 130_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return server;
}

function requestFor(task: DeliveryTask, body: Buffer, signature: string): (id: string) => Buffer {
  if (task.mode === 'webhook') {
    return (id) =>
      postRequest(
        task.path,
        {
          'content-type': 'application/json',
          'x-github-event': GITHUB_EVENT,
          'x-github-delivery': id,
          'x-hub-signature-256': signature,
        },
        body,
      );
  }
  return (id) =>
    postRequest(
      task.path,
      {
        'ce-specversion': '1.0',
        'ce-id': id,
        'ce-source': task.ceSource,
        'ce-type': GITHUB_EVENT_TYPE,
        'content-type': 'application/json',
      },
      body,
    );
}

function serverCpuNs(pid: number | undefined): number {
  return pid === undefined ? Number.NaN : cpuNs(pid);
}

/** Sends `count` deliveries closed loop and waits for the subscriber to have them all. */
async function runPhase(
  task: DeliveryTask,
  connections: readonly HttpConnection[],
  request: (id: string) => Buffer,
  count: number,
): Promise<PhaseResult> {
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => (finish = resolve));
  let answered = 0;
  let accepted = 0;
  let answeredAt = count === 0 ? now() : Number.NaN;
  const phase: Phase = {
    pending: new Map(),
    seen: new Set(),
    delivery: new Samples(),
    received: 0,
    duplicates: 0,
    lastAt: Number.NaN,
    // Done when every delivery was received, or once all are answered, every one answered 202.
    onReceipt: () => {
      if (phase.received >= count || (answered === count && phase.received >= accepted)) finish();
    },
  };
  current = phase;
  const statuses: Record<string, number> = {};
  let errors = 0;
  const response = new Samples();
  let next = 0;
  const cpu0 = process.cpuUsage();
  const server0 = serverCpuNs(task.serverPid);
  const monotonicStart = monotonicUs();
  const start = now();
  // A server that stops answering or delivering: the connections are closed (their requests fail)
  // and the phase reports what it got.
  const timer = setTimeout(() => {
    for (const c of connections) c.close();
    finish();
  }, task.timeoutMs);
  const loops = connections.map(async (connection) => {
    while (next < count && connection.alive) {
      next++;
      const id = randomUUID();
      const bytes = request(id);
      const sentAt = now();
      phase.pending.set(id, sentAt);
      try {
        const status = await connection.request(bytes);
        response.push(now() - sentAt);
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (status === 202) accepted++;
        else phase.pending.delete(id);
      } catch {
        errors++;
        phase.pending.delete(id);
      }
      if (++answered === count) answeredAt = now();
    }
  });
  await Promise.all(loops);
  if (answered < count) {
    // Connections died before every delivery was sent: what was sent is what there is.
    errors += count - answered;
    answered = count;
    answeredAt = now();
  }
  phase.onReceipt();
  await finished;
  clearTimeout(timer);
  const complete = phase.received >= accepted;
  const end = complete ? phase.lastAt : now();
  const ms = Math.max(1e-3, end - start);
  const serverNs = serverCpuNs(task.serverPid) - server0;
  const used = process.cpuUsage(cpu0);
  const non202 = count - accepted;
  return {
    deliveries: count,
    seconds: ms / 1000,
    deliveriesPerSecond: phase.received / (ms / 1000),
    answeredSeconds: (answeredAt - start) / 1000,
    answeredPerSecond: count / ((answeredAt - start) / 1000),
    statuses,
    non202,
    errors,
    received: phase.received,
    complete,
    duplicates: phase.duplicates,
    responseMs: percentiles(response.values()),
    deliveryMs: percentiles(phase.delivery.values()),
    serverCpu: serverNs / 1e6 / ms,
    serverCpuPerDeliveryUs: serverNs / 1000 / Math.max(1, phase.received),
    generatorCpu: (used.user + used.system) / 1000 / Math.max(1, now() - start),
    windowMonotonicUs: [monotonicStart, monotonicStart + ms * 1000],
  };
}

async function main(task: DeliveryTask): Promise<DeliveryResult> {
  const body = pushPayload();
  const request = requestFor(task, body, hubSignature256(body, task.secret));
  const server = await receiver(task.receiverPort);
  const { hostname, port } = new URL(task.url);
  const connections = await Promise.all(
    Array.from({ length: task.connections }, () => HttpConnection.connect(hostname, Number(port))),
  );
  const warmup = await runPhase(task, connections, request, task.warmup);
  if (!warmup.complete || warmup.non202 > 0) {
    throw new Error(
      `warm-up: ${warmup.received} of ${task.warmup} ${task.mode} deliveries received, answers ${JSON.stringify(warmup.statuses)}, ${warmup.errors} errors`,
    );
  }
  // Late duplicates of the warm-up, if any, land here rather than in the measured phase.
  current = undefined;
  await sleep(200);
  const measured = await runPhase(task, connections, request, task.deliveries);
  // Duplicates arriving just after the last delivery are still counted.
  await sleep(50);
  current = undefined;
  for (const c of connections) c.close();
  server.closeAllConnections();
  server.close();
  return {
    mode: task.mode,
    connections: task.connections,
    bodyBytes: body.length,
    ...measured,
    warmup,
    strays,
  };
}

runTask<DeliveryTask>(main);
