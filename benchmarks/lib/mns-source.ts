/**
 * The MNS half of the sources scenario: messages per second through an MnsSource against a raw
 * `@alicloud/mns` consumer measured in the same run.
 *
 * The queues are on the in-test MNS server (test/support/mns-server.ts, the HTTP/XML API the real
 * client speaks), which runs in this orchestrating process on the generator core, beside the
 * subscriber (an HTTP server on `port` counting each event by its `ce-id`). Every measurement
 * gets two fresh queues (default attributes: a 30 s visibility timeout), seeded directly with N
 * messages of MESSAGE_BYTES-byte JSON and a warm-up's messages, and drains them:
 *
 * - raw (lib/mns-consumer-baseline.ts, a fresh process on the server core, in the server's place):
 *   one long-polling receive loop (`batchReceiveMessage` of up to 16, `waitSeconds: 1`), each
 *   message parsed, counted and deleted (`deleteMessage`), 16 in hand at most: the MnsSource's
 *   defaults; messages/s = N / (its client's creation until the last delete);
 * - MnsSource: a fresh server with one trigger to the subscriber, and an MnsSource PUT once the
 *   queue is seeded (`waitSeconds: 1`, the other fields left to their defaults), its sink the
 *   subscriber's URI or the broker `default`; messages/s = N / (the PUT until the subscriber has
 *   every message and the queue is empty, every message deleted).
 *
 * Also measured on both: this process's CPU (the MNS server and the subscriber) from the measured
 * queue's first receive until it is empty, to show when the fake MNS server is what limits. Rounds
 * interleave the configurations (rotating which goes first); medians of the rounds.
 */
import http from 'node:http';
import { MNS_DEFAULTS } from '../../src/adapters/mns/index.js';
import { MnsServer } from '../../test/support/mns-server.js';
import { fixture, log, percent, prewarmEvents, Servers, trigger, type Options } from './harness.js';
import type { MnsConsumerResult, MnsConsumerTask } from './mns-consumer-baseline.js';
import { benchScript } from './paths.js';
import {
  childResult,
  cpuNs,
  monotonicUs,
  now,
  SERVER_CPU,
  settle,
  sleep,
  spawnNode,
} from './proc.js';
import { fmt, median, ratio } from './stats.js';
import type { BarPanel } from './svg.js';
import { ArrivalPhase } from './arrivals.js';

/** Bytes of each message's JSON body. */
export const MESSAGE_BYTES = 1024;
/** The CloudEvent type of an MNS message (src/adapters/mns/messages.ts). */
const MNS_EVENT_TYPE = 'mns:Queue:SendMessage';
const WAIT_SECONDS = 1;
const REQUEST_TIMEOUT_MS = 10_000;

export type MnsConfig = 'raw' | 'uri' | 'broker';

const CONFIGS: readonly MnsConfig[] = ['raw', 'uri', 'broker'];

const LABELS: Readonly<Record<MnsConfig, string>> = {
  raw: 'raw `@alicloud/mns` consumer',
  uri: 'MnsSource, URI sink',
  broker: 'MnsSource, broker sink (one trigger)',
};

const SHORT_LABELS: Readonly<Record<MnsConfig, string>> = {
  raw: 'raw @alicloud/mns',
  uri: 'MnsSource, URI',
  broker: 'MnsSource, broker',
};

/** Message `i`'s body: JSON of exactly MESSAGE_BYTES bytes. */
function messageBody(i: number): string {
  const head = {
    order: i,
    customer: `customer-${i % 1000}`,
    amount: (i * 7919) % 100_000,
    currency: 'EUR',
    note: '',
  };
  const padding = MESSAGE_BYTES - Buffer.byteLength(JSON.stringify(head));
  return JSON.stringify({ ...head, note: 'x'.repeat(Math.max(0, padding)) });
}

function seed(mns: MnsServer, queue: string, messages: number): void {
  mns.createQueue(queue);
  for (let i = 0; i < messages; i++) mns.send(queue, messageBody(i));
}

/** What the subscriber counts: the events of one queue, by `ce-id` (the MessageId). */
/** A phase's arrivals, of the events whose `ce-subject` is `subject` (the phase's queue). */
interface Phase {
  readonly subject: string;
  readonly arrivals: ArrivalPhase;
}

class Subscriber {
  current: Phase | undefined;
  strays = 0;
  private constructor(private readonly server: http.Server) {}

  static async start(port: number): Promise<Subscriber> {
    const server = http.createServer();
    const subscriber = new Subscriber(server);
    server.on('request', (request: http.IncomingMessage, response: http.ServerResponse) => {
      const at = now();
      request.resume();
      request.on('end', () => {
        response.writeHead(202, { 'content-length': '0' });
        response.end();
      });
      const id = request.headers['ce-id'];
      const phase = subscriber.current;
      if (typeof id !== 'string' || phase === undefined) {
        subscriber.strays++;
        return;
      }
      if (request.headers['ce-subject'] !== phase.subject) {
        subscriber.strays++;
        return;
      }
      phase.arrivals.record(id, at);
    });
    // Longer than the broker's pooled connections stay idle (see generator.ts).
    server.keepAliveTimeout = 120_000;
    server.headersTimeout = 130_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    return subscriber;
  }

  /** Counts the events of `queue` from now on; resolves once `expected` distinct ones came. */
  expect(
    mns: MnsServer,
    queue: string,
    expected: number,
  ): { phase: ArrivalPhase; all: Promise<void> } {
    let done: () => void = () => {};
    const all = new Promise<void>((resolve) => (done = resolve));
    const phase = new ArrivalPhase(expected, done);
    this.current = { subject: `acs:mns::${mns.accountId}:queues/${queue}`, arrivals: phase };
    return { phase, all };
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * This process's CPU (the MNS server and the subscriber) from the queue's first receive until it
 * is empty: a share of one core and ms per message. NaN when the queue never got there.
 */
function loadWindow(
  mns: MnsServer,
  queue: string,
  messages: number,
  timeoutMs: number,
): Promise<{ cpu: number; cpuPerMessageUs: number; drainedAt: number }> {
  let cpu0 = process.cpuUsage();
  let start = Number.NaN;
  const first = mns.untilReceived(queue, 1, timeoutMs).then(() => {
    cpu0 = process.cpuUsage();
    start = now();
  });
  return Promise.all([first, mns.untilEmpty(queue, timeoutMs)]).then(
    () => {
      const end = now();
      const used = process.cpuUsage(cpu0);
      const cpuMs = (used.user + used.system) / 1000;
      return {
        cpu: cpuMs / Math.max(1e-3, end - start),
        cpuPerMessageUs: (cpuMs * 1000) / messages,
        drainedAt: end,
      };
    },
    () => ({ cpu: Number.NaN, cpuPerMessageUs: Number.NaN, drainedAt: Number.NaN }),
  );
}

/** One measurement, raw or through an MnsSource. */
export interface MnsRun {
  readonly config: MnsConfig;
  readonly round: number;
  readonly messages: number;
  readonly received: number;
  readonly complete: boolean;
  readonly duplicates: number;
  readonly seconds: number;
  readonly messagesPerSecond: number;
  readonly firstMessageMs: number;
  readonly afterFirstPerSecond: number;
  /** The process on the server core (the raw consumer, or the server): share of a core, per message. */
  readonly cpu: number;
  readonly cpuPerMessageUs: number;
  /** This process (the fake MNS server and the subscriber) while the queue drained. */
  readonly loadCpu: number;
  readonly loadCpuPerMessageUs: number;
  /** MnsSource: from the PUT until the subscriber had every message (deletes may follow). */
  readonly deliveredSeconds?: number;
  readonly warmupSeconds?: number;
  /** MnsSource: its counters after the run. */
  readonly sourceEvents?: Record<string, number>;
  readonly raw?: MnsConsumerResult;
}

export interface MnsRow {
  readonly config: MnsConfig;
  readonly messagesPerSecond: number;
  readonly afterFirstPerSecond: number;
  readonly firstMessageMs: number;
  readonly cpu: number;
  readonly cpuPerMessageUs: number;
  readonly loadCpu: number;
  readonly loadCpuPerMessageUs: number;
  readonly duplicates: number;
  readonly incomplete: number;
  readonly failed: number;
}

interface MnsFailure {
  readonly config: MnsConfig;
  readonly round: number;
  readonly error: string;
}

function summarize(
  config: MnsConfig,
  runs: readonly MnsRun[],
  failures: readonly MnsFailure[],
): MnsRow {
  const m = (f: (r: MnsRun) => number): number => median(runs.map(f));
  return {
    config,
    messagesPerSecond: m((r) => r.messagesPerSecond),
    afterFirstPerSecond: m((r) => r.afterFirstPerSecond),
    firstMessageMs: m((r) => r.firstMessageMs),
    cpu: m((r) => r.cpu),
    cpuPerMessageUs: m((r) => r.cpuPerMessageUs),
    loadCpu: m((r) => r.loadCpu),
    loadCpuPerMessageUs: m((r) => r.loadCpuPerMessageUs),
    duplicates: runs.reduce((n, r) => n + r.duplicates, 0),
    incomplete: runs.filter((r) => !r.complete).length,
    failed: failures.filter((f) => f.config === config).length,
  };
}

export interface MnsSourceReport {
  readonly markdown: string;
  readonly panel: BarPanel;
  readonly caption: string;
  readonly data: unknown;
}

async function management(
  url: string,
  name: string,
  method: 'GET' | 'PUT' | 'DELETE',
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${url}/v1/namespaces/default/sources/${name}`, {
    method,
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    ...(body === undefined
      ? {}
      : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
}

interface SourceStatus {
  readonly conditions?: readonly { type: string; status: string; reason?: string }[];
  readonly events?: Record<string, number>;
}

async function sourceStatus(url: string, name: string): Promise<SourceStatus> {
  const answer = await management(url, name, 'GET');
  return (answer.body as { status?: SourceStatus } | undefined)?.status ?? {};
}

/**
 * The MNS half of the sources scenario on `backend`. `port` is the subscriber's port the trigger
 * (and the URI sink) names.
 */
export async function measureMnsSource(
  backend: string,
  opts: Options,
  port: number,
): Promise<MnsSourceReport> {
  // Quick mode: 2,000 messages, two rounds on embedded and one on NATS and Kafka.
  const rounds = opts.quick ? (backend === 'embedded' ? 2 : 1) : 3;
  const messages = opts.quick ? 2_000 : 5_000;
  const warmupMessages = prewarmEvents(opts);
  const timeoutMs = opts.quick ? 60_000 : 180_000;
  const mns = await MnsServer.start({ accountId: '1234567890' });
  const subscriber = await Subscriber.start(port);
  const runs: Record<MnsConfig, MnsRun[]> = { raw: [], uri: [], broker: [] };
  const failures: MnsFailure[] = [];
  const sourceFixture = fixture('mns-source', [
    trigger('mns-source', [{ exact: { type: MNS_EVENT_TYPE } }], `http://127.0.0.1:${port}/`),
  ]);
  const servers = new Servers(backend, opts);
  let queues = 0;

  const spec = (queue: string, config: Exclude<MnsConfig, 'raw'>) => ({
    kind: 'MnsSource',
    spec: {
      endpoint: mns.endpoint,
      accountId: mns.accountId,
      queue,
      credentials: {
        accessKey: { value: mns.accessKeyId },
        secretKey: { value: mns.accessKeySecret },
      },
      waitSeconds: WAIT_SECONDS,
      sink:
        config === 'broker'
          ? { ref: { kind: 'Broker', name: 'default' } }
          : { uri: `http://127.0.0.1:${port}/` },
    },
  });

  /** PUTs an MnsSource on `queue` and waits until its messages are delivered and deleted. */
  const drainThrough = async (
    url: string,
    pid: number,
    name: string,
    queue: string,
    count: number,
    config: Exclude<MnsConfig, 'raw'>,
  ) => {
    const { phase, all } = subscriber.expect(mns, queue, count);
    const window = loadWindow(mns, queue, count, timeoutMs);
    let drainedAt = Number.NaN;
    const emptied = mns.untilEmpty(queue, timeoutMs).then(
      () => void (drainedAt = now()),
      () => {},
    );
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    const server0 = cpuNs(pid);
    const monotonicStart = monotonicUs();
    const start = now();
    const put = await management(url, name, 'PUT', spec(queue, config));
    if (put.status !== 200 && put.status !== 201) {
      clearTimeout(timer);
      throw new Error(`PUT MnsSource ${name}: ${put.status} ${JSON.stringify(put.body)}`);
    }
    await Promise.race([Promise.all([all, emptied]), timedOut]);
    clearTimeout(timer);
    const received = phase.received;
    const complete = received === count && !Number.isNaN(drainedAt);
    const end = complete ? Math.max(phase.lastAt, drainedAt) : now();
    const serverNs = cpuNs(pid) - server0;
    const ms = Math.max(1e-3, end - start);
    const load = complete
      ? await window
      : { cpu: Number.NaN, cpuPerMessageUs: Number.NaN, drainedAt: Number.NaN };
    subscriber.current = undefined;
    return {
      messages: count,
      received,
      complete,
      duplicates: phase.duplicates,
      seconds: ms / 1000,
      messagesPerSecond: received / (ms / 1000),
      firstMessageMs: phase.firstAt - start,
      afterFirstPerSecond:
        received > 1 ? (received - 1) / ((phase.lastAt - phase.firstAt) / 1000) : Number.NaN,
      cpu: serverNs / 1e6 / ms,
      cpuPerMessageUs: serverNs / 1000 / Math.max(1, received),
      loadCpu: load.cpu,
      loadCpuPerMessageUs: load.cpuPerMessageUs,
      deliveredSeconds: (phase.lastAt - start) / 1000,
      window: [monotonicStart, monotonicStart + ms * 1000] as const,
    };
  };

  const once = async (config: MnsConfig, round: number): Promise<void> => {
    const n = ++queues;
    const queue = `bench-${n}`;
    const warmQueue = `warm-${n}`;
    seed(mns, warmQueue, warmupMessages);
    seed(mns, queue, messages);
    let run: MnsRun;
    try {
      if (config === 'raw') {
        const window = loadWindow(mns, queue, messages, timeoutMs * 2);
        settle();
        const task: MnsConsumerTask = {
          endpoint: mns.endpoint,
          accountId: mns.accountId,
          accessKeyId: mns.accessKeyId,
          accessKeySecret: mns.accessKeySecret,
          waitSeconds: WAIT_SECONDS,
          batchSize: MNS_DEFAULTS.batchSize,
          concurrency: MNS_DEFAULTS.concurrency,
          measured: { queue, messages },
          warmup: { queue: warmQueue, messages: warmupMessages },
          timeoutMs,
        };
        const result = await childResult<MnsConsumerResult>(
          spawnNode(SERVER_CPU, [
            benchScript('lib/mns-consumer-baseline.js'),
            JSON.stringify(task),
          ]),
          'mns consumer baseline',
        );
        const load = result.complete
          ? await window
          : { cpu: Number.NaN, cpuPerMessageUs: Number.NaN };
        run = {
          config,
          round,
          messages,
          received: result.received,
          complete: result.complete,
          duplicates: result.duplicates,
          seconds: result.seconds,
          messagesPerSecond: result.messagesPerSecond,
          firstMessageMs: result.firstMessageMs,
          afterFirstPerSecond: result.afterFirstPerSecond,
          cpu: result.cpu,
          cpuPerMessageUs: result.cpuPerMessageUs,
          loadCpu: load.cpu,
          loadCpuPerMessageUs: load.cpuPerMessageUs,
          ...(result.warmup === undefined ? {} : { warmupSeconds: result.warmup.seconds }),
          raw: result,
        };
      } else {
        const prepared = await servers.start(
          sourceFixture,
          `sources-mns-${backend}-${config}-${round}`,
        );
        try {
          const { url, pid } = prepared.server;
          const warm = await drainThrough(url, pid, 'warm', warmQueue, warmupMessages, config);
          if (!warm.complete) {
            const status = await sourceStatus(url, 'warm');
            throw new Error(
              status.conditions?.some((c) => c.reason === 'AdapterUnavailable') === true
                ? 'the server under test runs no MnsSource adapter: dist/ is older than src/ (run "npm run build")'
                : `warm-up: ${warm.received} of ${warmupMessages} messages delivered; the source's status: ${JSON.stringify(status)}`,
            );
          }
          // Its poller stops, so that it does not long-poll (nothing) beside the measured one.
          await management(url, 'warm', 'DELETE');
          await sleep(200);
          const { window, ...measured } = await drainThrough(
            url,
            pid,
            'bench',
            queue,
            messages,
            config,
          );
          prepared.markWindow(window);
          run = {
            config,
            round,
            ...measured,
            warmupSeconds: warm.seconds,
            sourceEvents: (await sourceStatus(url, 'bench')).events ?? {},
          };
        } finally {
          await prepared.stop();
        }
      }
    } catch (error) {
      const message = (error as Error).message;
      failures.push({ config, round, error: message });
      log(`mns ${config}: FAILED: ${message.split('\n').slice(0, 3).join(' ')}`);
      return;
    }
    runs[config].push(run);
    log(
      `mns ${config}: ${fmt(run.messagesPerSecond)} messages/s (${fmt(run.afterFirstPerSecond)}/s after the first at ${fmt(run.firstMessageMs)} ms), server-core CPU ${percent(run.cpu)}, MNS server + subscriber CPU ${percent(run.loadCpu)}${run.complete ? '' : `, INCOMPLETE (${fmt(run.received)} of ${fmt(run.messages)})`}`,
    );
  };

  try {
    for (let round = 0; round < rounds; round++) {
      log(`mns source round ${round + 1}/${rounds}`);
      // Rotating which goes first, so that a slow phase of the machine hits all alike.
      const order = CONFIGS.map((_, i) => CONFIGS[(i + round) % CONFIGS.length]!);
      for (const config of order) await once(config, round);
    }
  } finally {
    servers.dispose();
    await subscriber.close();
    await mns.close();
  }

  const rows = CONFIGS.map((c) => summarize(c, runs[c], failures));
  const raw = rows[0]!;
  const table = [
    `**MNS source**: ${fmt(messages)} messages of ${fmt(MESSAGE_BYTES)}-byte JSON seeded beforehand into a fresh queue (default attributes, 30 s visibility) of the in-test MNS server (test/support/mns-server.ts, the HTTP/XML API the real \`@alicloud/mns\` client speaks), which runs in the orchestrating process on the generator core beside the subscriber; a warm-up of ${fmt(warmupMessages)} messages (another queue) first, discarded. Raw: an \`@alicloud/mns\` consumer in its own process on the server core, one long-polling loop of \`batchReceiveMessage\` (up to ${MNS_DEFAULTS.batchSize}, \`waitSeconds: ${WAIT_SECONDS}\`), each message parsed, counted and removed with \`deleteMessage\`, at most ${MNS_DEFAULTS.concurrency} in hand (the MnsSource's defaults); messages/s = messages / (its client's creation until the last delete). MnsSource: a fresh server with one trigger (exact \`type: ${MNS_EVENT_TYPE}\`) to the subscriber, and an MnsSource (\`waitSeconds: ${WAIT_SECONDS}\`, otherwise defaults) PUT once the queue is seeded, its sink the subscriber's URI or the broker \`default\`; messages/s = messages / (the PUT until the subscriber has every message and the queue is empty). Median of ${rounds} round${rounds > 1 ? 's' : ''}, configurations interleaved.`,
    '',
    '| configuration | messages/s | x raw | first message after | messages/s after the first | x raw | CPU on the server core | CPU per message | MNS server + subscriber CPU | per message | duplicates |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${LABELS[r.config]} | ${fmt(r.messagesPerSecond)} | ${ratio(r.messagesPerSecond / raw.messagesPerSecond)} | ${fmt(r.firstMessageMs)} ms | ${fmt(r.afterFirstPerSecond)} | ${ratio(r.afterFirstPerSecond / raw.afterFirstPerSecond)} | ${percent(r.cpu)} | ${fmt(r.cpuPerMessageUs)} µs | ${percent(r.loadCpu)} | ${fmt(r.loadCpuPerMessageUs)} µs | ${fmt(r.duplicates)} |`,
    ),
    '',
    `"First message after" includes, for the MnsSource, the control plane telling the source runtime and the client's first request. CPU on the server core is the raw consumer's process or the server's (all threads); "MNS server + subscriber CPU" is the orchestrating process on the generator core from the queue's first receive until it was empty: near 100 %, the fake MNS server (whose receive scans and sorts the queue's messages) is what limits, and the ratio understates the difference.`,
  ];
  const incomplete = rows.reduce((n, r) => n + r.incomplete, 0);
  if (incomplete > 0) {
    table.push(
      '',
      `**${incomplete} MNS measurement(s) timed out before every message was drained** (their rate counts what arrived).`,
    );
  }
  if (failures.length > 0) {
    table.push(
      '',
      `**Failed measurements:** ${failures.map((f) => `round ${f.round + 1}, ${f.config}: ${f.error.split('\n').slice(0, 2).join(' ')}`).join('; ')}.`,
    );
  }
  const uri = rows.find((r) => r.config === 'uri')!;
  const broker = rows.find((r) => r.config === 'broker')!;
  return {
    markdown: table.join('\n'),
    panel: {
      kind: 'bar',
      title: `Sources (${backend}): MNS messages`,
      yLabel: 'messages per second',
      groups: ['from start', 'after the first message'],
      series: rows.map((r) => ({
        name: SHORT_LABELS[r.config],
        values: [r.messagesPerSecond, r.afterFirstPerSecond],
      })),
    },
    caption: `MNS: ${fmt(messages)} messages of ${fmt(MESSAGE_BYTES)} B, median of ${rounds} round(s); MnsSource ${ratio(uri.messagesPerSecond / raw.messagesPerSecond)} (URI sink) and ${ratio(broker.messagesPerSecond / raw.messagesPerSecond)} (broker sink) of the raw @alicloud/mns consumer.`,
    data: {
      rounds,
      messages,
      warmup: warmupMessages,
      messageBytes: MESSAGE_BYTES,
      waitSeconds: WAIT_SECONDS,
      batchSize: MNS_DEFAULTS.batchSize,
      concurrency: MNS_DEFAULTS.concurrency,
      timeoutMs,
      strays: subscriber.strays,
      rows,
      runs,
      failures,
    },
  };
}
