/**
 * The load generator, run as its own process on the generator core, fresh for every measurement:
 * `node generator.js '<task as JSON>'` prints one JSON line with the result.
 *
 * - `closed`: N connections each send the next request as soon as the previous one is answered
 *   (ingress throughput; what autocannon does).
 * - `open`: events at a fixed offered rate whatever the server does (vegeta's and wrk2's model, no
 *   coordinated omission), to a server whose trigger delivers them back to the subscriber in this
 *   same process: the latency is the receipt time minus the send time carried in the event
 *   (`ce-benchsent`), both read from one clock (`performance.now()` of this process). A warm-up is
 *   sent first and discarded.
 * - `burst`: a number of events sent as fast as possible in batches; the time until every trigger
 *   delivered every one of them (deliveries per second with N matching triggers).
 */
import http from 'node:http';
import { HttpConnection, payload, postRequest } from './http-client.js';
import { cpuNs, mainThreadCpuNs, monotonicUs, now, rssBytes, sleep, runTask } from './proc.js';
import { median, percentiles, Samples, slope, type Percentiles } from './stats.js';

interface Common {
  /** Base URL of the server under test. */
  readonly url: string;
  /** Ingress path, e.g. /default/default. */
  readonly path: string;
  readonly payloadBytes: number;
  /** The server's pid, to read its CPU time and memory (Linux /proc). */
  readonly serverPid?: number;
}

export interface ClosedTask extends Common {
  readonly kind: 'closed';
  readonly connections: number;
  /** 0: one binary-mode event per request; k: a batch-mode request of k structured events. */
  readonly batch: number;
  readonly warmupMs: number;
  readonly durationMs: number;
}

export interface OpenTask extends Common {
  readonly kind: 'open';
  /** Offered events per second. */
  readonly rate: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** How long to wait after the last send for the last delivery. */
  readonly drainMs: number;
  readonly eventType: string;
  readonly receiverPort: number;
  /** Measures the server's idle CPU this long before sending (subtracted from the per-event cost). */
  readonly idleMs?: number;
  /**
   * Events sent as fast as 8 connections allow, and delivered, before anything else: a fresh
   * server's code runs in V8's interpreter and baseline tiers until it has run often enough to be
   * optimized, and a few hundred events of warm-up at a low rate are not enough (measured: at
   * 500 events/s the first seconds spend more CPU in LoadIC builtins and TurboFan than in our
   * code). Measurements are of a warm server, as in production.
   */
  readonly prewarmEvents?: number;
  readonly maxConnections?: number;
  /**
   * For a server that keeps working after the matching trigger's delivery (NATS: every trigger's
   * consumer reads every event, and the others may still be reading when the matching one has
   * delivered): waits up to this long, after the prewarm, for the server's CPU to settle, and
   * after the last delivery, for it to fall back to its idle CPU; the per-event cost counts that
   * tail. 0 or absent: not waited for.
   */
  readonly quietMs?: number;
}

export interface BurstTask extends Common {
  readonly kind: 'burst';
  readonly events: number;
  readonly warmupEvents: number;
  /** Events per batch-mode request. */
  readonly batch: number;
  readonly connections: number;
  readonly eventType: string;
  readonly receiverPort: number;
  /** Deliveries expected per event (the number of matching triggers). */
  readonly deliveriesPerEvent: number;
  readonly timeoutMs: number;
}

export type GeneratorTask = ClosedTask | OpenTask | BurstTask;

export interface ClosedResult {
  readonly seconds: number;
  readonly requests: number;
  readonly events: number;
  readonly eventsPerSecond: number;
  readonly statuses: Record<string, number>;
  readonly errors: number;
  /** Response time of the requests (ms). */
  readonly latencyMs: Percentiles;
  /** Share of one core the generator used. */
  readonly generatorCpu: number;
  /** Share of one core the server used (NaN without its pid). */
  readonly serverCpu: number;
  /** The measured window on CLOCK_MONOTONIC in µs, the clock of V8's CPU profiles. */
  readonly windowMonotonicUs: readonly [number, number];
}

export interface OpenResult {
  readonly rate: number;
  readonly seconds: number;
  /** Events scheduled in the measured window. */
  readonly offered: number;
  readonly accepted: number;
  readonly rejected: Record<string, number>;
  readonly errors: number;
  /** Deliveries received during the measured window, per second. */
  readonly deliveredPerSecond: number;
  /** Delivery latency of the window's events, from the send time carried in the event (ms). */
  readonly latencyMs: Percentiles;
  /** The same from the time the event was due (includes waiting for a free connection). */
  readonly latencyFromDueMs: Percentiles;
  /** Response time of the ingress (202) for the window's events (ms). */
  readonly ingressMs: Percentiles;
  /** How late sends left the generator against their schedule (ms). */
  readonly sendLagMs: Percentiles;
  /** Growth of (scheduled - delivered) over the window, in events per second. */
  readonly backlogSlope: number;
  readonly backlogEnd: number;
  /** Every window event was delivered before drainMs ran out. */
  readonly drained: boolean;
  readonly drainMs: number;
  readonly duplicates: number;
  readonly missing: number;
  /**
   * The rate was held: the window's deliveries within 5 % of the offered rate, a backlog that does
   * not grow, every event accepted and delivered.
   */
  readonly held: boolean;
  readonly connections: number;
  readonly generatorCpu: number;
  /** The measured window on CLOCK_MONOTONIC in µs, the clock of V8's CPU profiles. */
  readonly windowMonotonicUs: readonly [number, number];
  readonly server: {
    readonly idleCpu: number;
    /** How long after the last delivery the server took to fall back to idle (quietMs), ms. */
    readonly quietAfterMs: number;
    /** Share of one core the server used in the window, all threads. */
    readonly windowCpu: number;
    /** The same for its main thread alone (the event loop). */
    readonly mainThreadCpu: number;
    /** Server CPU per event in µs, from the window's start until the last delivery, net of idle. */
    readonly cpuPerEventUs: number;
    readonly rssPeak: number;
    readonly rssMedian: number;
  };
}

export interface BurstResult {
  readonly events: number;
  readonly deliveries: number;
  readonly seconds: number;
  readonly deliveriesPerSecond: number;
  /** Time until every event was answered 202. */
  readonly ingressSeconds: number;
  readonly complete: boolean;
  /** Events delivered more (or less) often than there are matching triggers. */
  readonly wrongCounts: number;
  readonly serverCpu: number;
  readonly cpuPerDeliveryUs: number;
  /** TCP connections the server opened to the subscriber during the measured burst. */
  readonly subscriberConnections: number;
}

function binaryRequest(
  path: string,
  seq: number,
  type: string,
  body: Buffer,
  sentAt: number,
): Buffer {
  return postRequest(
    path,
    {
      'ce-specversion': '1.0',
      'ce-id': String(seq),
      'ce-source': '/bench',
      'ce-type': type,
      'ce-benchsent': sentAt.toFixed(3),
      'content-type': 'application/json',
    },
    body,
  );
}

function batchRequest(
  path: string,
  firstSeq: number,
  count: number,
  type: string,
  data: unknown,
  sentAt: number,
): Buffer {
  const events = [];
  for (let i = 0; i < count; i++) {
    events.push({
      specversion: '1.0',
      id: String(firstSeq + i),
      source: '/bench',
      type,
      datacontenttype: 'application/json',
      benchsent: sentAt.toFixed(3),
      data,
    });
  }
  return postRequest(
    path,
    { 'content-type': 'application/cloudevents-batch+json' },
    Buffer.from(JSON.stringify(events), 'utf8'),
  );
}

function cpuShare(from: NodeJS.CpuUsage, ms: number): number {
  const used = process.cpuUsage(from);
  return (used.user + used.system) / 1000 / ms;
}

/** Asks the server's probe (lib/memory-probe.ts) for its event-loop and GC figures, and resets them. */
function probe(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGWINCH');
  } catch {
    // The server is gone: the measurement reports what it has.
  }
}

function serverCpuNs(pid: number | undefined): number {
  return pid === undefined ? Number.NaN : cpuNs(pid);
}

async function closed(task: ClosedTask): Promise<ClosedResult> {
  const { hostname, port } = new URL(task.url);
  const connections = await Promise.all(
    Array.from({ length: task.connections }, () => HttpConnection.connect(hostname, Number(port))),
  );
  const body = payload(task.payloadBytes);
  const data = JSON.parse(body.toString('utf8')) as unknown;
  const perRequest = task.batch === 0 ? 1 : task.batch;
  let seq = 0;
  let measuring = false;
  let stopped = false;
  let requests = 0;
  let errors = 0;
  const statuses: Record<string, number> = {};
  const latency = new Samples();
  // Requests are built before the clock starts and reused in turn (ids repeat after 256 requests),
  // so the generator's core spends its time on sending, not on JSON.stringify.
  const prebuilt = Array.from({ length: 256 }, (_, i) =>
    task.batch === 0
      ? binaryRequest(task.path, i + 1, 'com.example.bench', body, 0)
      : batchRequest(task.path, i * task.batch + 1, task.batch, 'com.example.bench', data, 0),
  );
  const loop = async (connection: HttpConnection): Promise<void> => {
    while (!stopped && connection.alive) {
      const sentAt = now();
      const bytes = prebuilt[seq++ & 255]!;
      const counted = measuring;
      try {
        const status = await connection.request(bytes);
        if (counted && measuring) {
          requests++;
          statuses[status] = (statuses[status] ?? 0) + 1;
          latency.push(now() - sentAt);
        }
      } catch {
        if (counted && measuring) errors++;
      }
    }
  };
  const loops = connections.map(loop);
  await sleep(task.warmupMs);
  measuring = true;
  const cpu0 = process.cpuUsage();
  const server0 = serverCpuNs(task.serverPid);
  const start = now();
  const monotonicStart = monotonicUs();
  await sleep(task.durationMs);
  measuring = false;
  const ms = now() - start;
  const monotonicEnd = monotonicUs();
  const generatorCpu = cpuShare(cpu0, ms);
  const serverCpu = (serverCpuNs(task.serverPid) - server0) / 1e6 / ms;
  stopped = true;
  await Promise.all(loops);
  for (const c of connections) c.close();
  const accepted = statuses['202'] ?? 0;
  return {
    seconds: ms / 1000,
    requests,
    events: accepted * perRequest,
    eventsPerSecond: (accepted * perRequest) / (ms / 1000),
    statuses,
    errors,
    latencyMs: percentiles(latency.values()),
    generatorCpu,
    serverCpu,
    windowMonotonicUs: [monotonicStart, monotonicEnd],
  };
}

/** The subscriber: a real HTTP server in this process that notes when each event arrives. */
async function receiver(
  port: number,
  onEvent: (seq: number, sentAt: number, at: number) => void,
): Promise<http.Server> {
  const server = http.createServer((request, response) => {
    const at = now();
    const seq = Number(request.headers['ce-id']);
    const sentAt = Number(request.headers['ce-benchsent']);
    request.resume();
    request.on('end', () => {
      response.writeHead(202, { 'content-length': '0' });
      response.end();
    });
    onEvent(seq, sentAt, at);
  });
  // Longer than the broker's pooled connections stay idle: a connection closed by the subscriber
  // at the moment the broker reuses it would fail a delivery and add a retry to the latency.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 130_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return server;
}

class Pool {
  private readonly idle: HttpConnection[] = [];
  private opening = 0;
  size = 0;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly max: number,
    private readonly onFree: () => void,
  ) {}

  async open(count: number): Promise<void> {
    await Promise.all(Array.from({ length: count }, () => this.grow()));
  }

  private async grow(): Promise<void> {
    this.opening++;
    try {
      const connection = await HttpConnection.connect(this.host, this.port);
      this.size++;
      this.idle.push(connection);
    } finally {
      this.opening--;
    }
  }

  /** An idle connection, or undefined (then one is being opened if the pool may grow). */
  take(): HttpConnection | undefined {
    const connection = this.idle.pop();
    if (connection === undefined && this.size + this.opening < this.max) {
      void this.grow().then(this.onFree, () => {});
    }
    return connection;
  }

  give(connection: HttpConnection): void {
    if (connection.alive) this.idle.push(connection);
    else this.size--;
  }

  close(): void {
    for (const c of this.idle) c.close();
  }
}

async function open(task: OpenTask): Promise<OpenResult> {
  const { hostname, port } = new URL(task.url);
  const interval = 1000 / task.rate;
  const warmN = Math.round((task.rate * task.warmupMs) / 1000);
  const measN = Math.round((task.rate * task.durationMs) / 1000);
  const total = warmN + measN;
  const body = payload(task.payloadBytes);

  const seen = new Uint8Array(total + 1);
  let receivedUnique = 0;
  let duplicates = 0;
  let unexpected = 0;
  let windowStart = Number.POSITIVE_INFINITY;
  let windowEnd = Number.POSITIVE_INFINITY;
  let deliveredInWindow = 0;
  const latency = new Samples();
  const latencyFromDue = new Samples();
  let t0 = 0;
  let prewarmed = 0;
  const server = await receiver(task.receiverPort, (seq, sentAt, at) => {
    if (Number.isNaN(seq)) {
      prewarmed++; // ids `w<n>`: the prewarm's events
      return;
    }
    if (!(seq >= 1 && seq <= total)) {
      unexpected++;
      return;
    }
    if (seen[seq] === 1) {
      duplicates++;
      return;
    }
    seen[seq] = 1;
    receivedUnique++;
    if (at >= windowStart && at < windowEnd) deliveredInWindow++;
    if (seq > warmN) {
      latency.push(at - sentAt);
      latencyFromDue.push(at - (t0 + (seq - 1) * interval));
    }
  });

  const queue: number[] = [];
  let queueHead = 0;
  let scheduled = 0;
  let accepted = 0;
  let errors = 0;
  let inFlight = 0;
  const rejected: Record<string, number> = {};
  const ingress = new Samples();
  const sendLag = new Samples();
  const pool = new Pool(hostname, Number(port), task.maxConnections ?? 512, () => pump());
  await pool.open(Math.min(task.maxConnections ?? 512, 8 + Math.ceil(task.rate / 250)));

  const sendOne = (connection: HttpConnection, seq: number): void => {
    const sentAt = now();
    const inWindow = seq > warmN;
    if (inWindow) sendLag.push(sentAt - (t0 + (seq - 1) * interval));
    inFlight++;
    connection.request(binaryRequest(task.path, seq, task.eventType, body, sentAt)).then(
      (status) => {
        inFlight--;
        if (status === 202) accepted++;
        else rejected[status] = (rejected[status] ?? 0) + 1;
        if (inWindow) ingress.push(now() - sentAt);
        pool.give(connection);
        pump();
      },
      () => {
        inFlight--;
        errors++;
        pool.give(connection);
        pump();
      },
    );
  };
  function pump(): void {
    while (queueHead < queue.length) {
      const connection = pool.take();
      if (connection === undefined) return;
      sendOne(connection, queue[queueHead++]!);
    }
    if (queueHead > 4096) {
      queue.splice(0, queueHead);
      queueHead = 0;
    }
  }

  if ((task.prewarmEvents ?? 0) > 0) {
    await prewarm(hostname, Number(port), task, body);
    const deadline = now() + 60_000;
    while (prewarmed < task.prewarmEvents! && now() < deadline) await sleep(5);
    await sleep(200);
  }
  const quietMs = task.quietMs ?? 0;
  if (quietMs > 0) await settled(task.serverPid, quietMs);

  const idleMs = task.idleMs ?? 0;
  const idle0 = serverCpuNs(task.serverPid);
  const idleStart = now();
  if (idleMs > 0) await sleep(idleMs);
  const idleCpu = (serverCpuNs(task.serverPid) - idle0) / 1e6 / Math.max(1, now() - idleStart);

  let cpu0: NodeJS.CpuUsage = process.cpuUsage();
  let server0 = 0;
  let main0 = 0;
  const backlog: [number, number][] = [];
  const rss: number[] = [];
  let sampler: NodeJS.Timeout | undefined;
  let monotonicStart = 0;

  t0 = now() + 5;
  windowStart = t0 + warmN * interval;
  windowEnd = t0 + total * interval;
  await new Promise<void>((resolve) => {
    let windowOpened = false;
    const tick = (): void => {
      const at = now();
      while (scheduled < total && t0 + scheduled * interval <= at) queue.push(++scheduled);
      pump();
      if (!windowOpened && at >= windowStart) {
        windowOpened = true;
        monotonicStart = monotonicUs();
        probe(task.serverPid);
        cpu0 = process.cpuUsage();
        server0 = serverCpuNs(task.serverPid);
        main0 = task.serverPid === undefined ? Number.NaN : mainThreadCpuNs(task.serverPid);
        sampler = setInterval(() => {
          backlog.push([(now() - windowStart) / 1000, scheduled - receivedUnique]);
          if (task.serverPid !== undefined) rss.push(rssBytes(task.serverPid));
        }, 100);
      }
      if (scheduled >= total) {
        resolve();
        return;
      }
      setTimeout(tick, Math.max(0, Math.min(1, t0 + scheduled * interval - now())));
    };
    setTimeout(tick, Math.max(0, t0 - now()));
  });
  // The window ends when the last event is due; wait for its end, then for the last delivery.
  await sleep(Math.max(0, windowEnd - now()));
  clearInterval(sampler);
  const monotonicEnd = monotonicUs();
  probe(task.serverPid);
  const windowMs = now() - windowStart;
  const generatorCpu = cpuShare(cpu0, windowMs);
  const windowServerNs = serverCpuNs(task.serverPid) - server0;
  const windowMainNs =
    (task.serverPid === undefined ? Number.NaN : mainThreadCpuNs(task.serverPid)) - main0;
  const backlogEnd = scheduled - receivedUnique;
  const drainDeadline = now() + task.drainMs;
  while (
    now() < drainDeadline &&
    (receivedUnique < accepted || inFlight > 0 || queueHead < queue.length)
  ) {
    await sleep(5);
  }
  const deliveredAt = now();
  const drained = receivedUnique >= accepted && inFlight === 0 && queueHead >= queue.length;
  const doneAt =
    quietMs > 0 && drained ? await backToIdle(task.serverPid, idleCpu, quietMs) : deliveredAt;
  const serverUsedNs = serverCpuNs(task.serverPid) - server0;
  const netNs = serverUsedNs - idleCpu * 1e6 * (doneAt - windowStart);
  // The last deliveries (and any duplicate) may still be on their way when the loop ends.
  await sleep(50);
  pool.close();
  server.closeAllConnections();
  server.close();

  let missing = 0;
  for (let seq = warmN + 1; seq <= total; seq++) if (seen[seq] !== 1) missing++;
  const deliveredPerSecond = deliveredInWindow / (windowMs / 1000);
  const backlogSlope = slope(backlog);
  const nonAccepted = errors + Object.values(rejected).reduce((a, b) => a + b, 0);
  // Delivering more than offered in the window is catching up a backlog built before it: not a
  // steady state either.
  const held =
    drained &&
    nonAccepted === 0 &&
    Math.abs(deliveredPerSecond / task.rate - 1) <= 0.05 &&
    backlogSlope <= Math.max(0.02 * task.rate, 5);
  return {
    rate: task.rate,
    seconds: windowMs / 1000,
    offered: measN,
    accepted,
    rejected,
    errors,
    deliveredPerSecond,
    latencyMs: percentiles(latency.values()),
    latencyFromDueMs: percentiles(latencyFromDue.values()),
    ingressMs: percentiles(ingress.values()),
    sendLagMs: percentiles(sendLag.values()),
    backlogSlope,
    backlogEnd,
    drained,
    drainMs: deliveredAt - windowEnd,
    duplicates: duplicates + unexpected,
    missing,
    held,
    connections: pool.size,
    generatorCpu,
    windowMonotonicUs: [monotonicStart, monotonicEnd],
    server: {
      idleCpu,
      quietAfterMs: doneAt - deliveredAt,
      windowCpu: windowServerNs / 1e6 / windowMs,
      mainThreadCpu: windowMainNs / 1e6 / windowMs,
      cpuPerEventUs: netNs / 1000 / measN,
      rssPeak: rss.length === 0 ? Number.NaN : Math.max(...rss),
      rssMedian: median(rss),
    },
  };
}

/** The server's CPU share over the next `ms` (NaN without its pid). */
async function cpuShareOver(pid: number | undefined, ms: number): Promise<number> {
  const c0 = serverCpuNs(pid);
  const t = now();
  await sleep(ms);
  return (serverCpuNs(pid) - c0) / 1e6 / (now() - t);
}

/** Waits (up to `capMs`) until the server's CPU share is steady: no backlog left being worked off. */
async function settled(pid: number | undefined, capMs: number): Promise<void> {
  if (pid === undefined) return;
  const deadline = now() + capMs;
  let previous = await cpuShareOver(pid, 200);
  while (now() < deadline) {
    const share = await cpuShareOver(pid, 200);
    if (Math.abs(share - previous) <= 0.03) return;
    previous = share;
  }
}

/**
 * Waits (up to `capMs`) until the server's CPU share over 100 ms is back within 5 % of a core of
 * its idle share; resolves with the time it got there (the start of that quiet interval).
 */
async function backToIdle(
  pid: number | undefined,
  idleCpu: number,
  capMs: number,
): Promise<number> {
  const deadline = now() + capMs;
  for (;;) {
    const start = now();
    if (pid === undefined || start >= deadline) return start;
    if ((await cpuShareOver(pid, 100)) <= idleCpu + 0.05) return start;
  }
}

/** Sends `task.prewarmEvents` binary events with ids `w<n>` over 8 connections, closed loop. */
async function prewarm(host: string, port: number, task: OpenTask, body: Buffer): Promise<void> {
  const connections = await Promise.all(
    Array.from({ length: 8 }, () => HttpConnection.connect(host, port)),
  );
  let next = 0;
  await Promise.all(
    connections.map(async (connection) => {
      while (next < task.prewarmEvents!) {
        const n = next++;
        const request = postRequest(
          task.path,
          {
            'ce-specversion': '1.0',
            'ce-id': `w${n}`,
            'ce-source': '/bench',
            'ce-type': task.eventType,
            'ce-benchsent': now().toFixed(3),
            'content-type': 'application/json',
          },
          body,
        );
        const status = await connection.request(request);
        if (status !== 202) throw new Error(`prewarm: ingress answered ${status}`);
      }
      connection.close();
    }),
  );
}

async function burst(task: BurstTask): Promise<BurstResult> {
  const { hostname, port } = new URL(task.url);
  const total = task.warmupEvents + task.events;
  const counts = new Uint16Array(total + 1);
  let deliveries = 0;
  let waiter: { target: number; resolve: () => void } | undefined;
  const server = await receiver(task.receiverPort, (seq) => {
    if (seq >= 1 && seq <= total) counts[seq]!++;
    deliveries++;
    if (waiter !== undefined && deliveries >= waiter.target) {
      const w = waiter;
      waiter = undefined;
      w.resolve();
    }
  });
  const until = (target: number, timeoutMs: number): Promise<boolean> =>
    deliveries >= target
      ? Promise.resolve(true)
      : new Promise((resolve) => {
          const timer = setTimeout(() => {
            waiter = undefined;
            resolve(false);
          }, timeoutMs);
          waiter = {
            target,
            resolve: () => {
              clearTimeout(timer);
              resolve(true);
            },
          };
        });
  const connections = await Promise.all(
    Array.from({ length: task.connections }, () => HttpConnection.connect(hostname, Number(port))),
  );
  const data = JSON.parse(payload(task.payloadBytes).toString('utf8')) as unknown;
  const sendRange = async (first: number, count: number): Promise<void> => {
    let next = first;
    const last = first + count - 1;
    await Promise.all(
      connections.map(async (connection) => {
        while (next <= last) {
          const from = next;
          const n = Math.min(task.batch, last - from + 1);
          next += n;
          const status = await connection.request(
            batchRequest(task.path, from, n, task.eventType, data, now()),
          );
          if (status !== 202) throw new Error(`ingress answered ${status}`);
        }
      }),
    );
  };
  const perEvent = task.deliveriesPerEvent;
  if (task.warmupEvents > 0) {
    await sendRange(1, task.warmupEvents);
    await until(task.warmupEvents * perEvent, task.timeoutMs);
  }
  const base = deliveries;
  let subscriberConnections = 0;
  server.on('connection', () => subscriberConnections++);
  const server0 = serverCpuNs(task.serverPid);
  const start = now();
  await sendRange(task.warmupEvents + 1, task.events);
  const ingressSeconds = (now() - start) / 1000;
  const complete = await until(base + task.events * perEvent, task.timeoutMs);
  const ms = now() - start;
  const serverNs = serverCpuNs(task.serverPid) - server0;
  await sleep(50);
  let wrongCounts = 0;
  for (let seq = 1; seq <= total; seq++) if (counts[seq] !== perEvent) wrongCounts++;
  for (const c of connections) c.close();
  server.closeAllConnections();
  server.close();
  const measured = deliveries - base;
  return {
    events: task.events,
    deliveries: measured,
    seconds: ms / 1000,
    deliveriesPerSecond: measured / (ms / 1000),
    ingressSeconds,
    complete,
    wrongCounts,
    serverCpu: serverNs / 1e6 / ms,
    cpuPerDeliveryUs: serverNs / 1000 / Math.max(1, measured),
    subscriberConnections,
  };
}

async function main(task: GeneratorTask): Promise<unknown> {
  switch (task.kind) {
    case 'closed':
      return closed(task);
    case 'open':
      return open(task);
    case 'burst':
      return burst(task);
  }
}

runTask<GeneratorTask>(main);
