/**
 * The Tributary side of the Kafka source measurement (issue 9), run as its own process on the
 * generator core, fresh for every measurement: `node kafka-source-load.js '<task as JSON>'` prints
 * one JSON line with the result.
 *
 * The records are already in their topics (the orchestrator produced them). This process is the
 * subscriber (a real HTTP server that counts each event by its `ce-id`), and it creates the
 * KafkaSource through the management API (`PUT /v1/namespaces/default/sources/<name>`, a fresh
 * consumer group, `initialOffset: earliest`), whose sink is the broker `default` (one trigger
 * delivers its events here) or this subscriber's URI. Records/s = records / (time from the PUT
 * until the subscriber has every record): the control plane telling the source runtime, the
 * consumer joining its group, fetching, turning records into CloudEvents, the sink, and for a
 * broker sink the trigger's delivery.
 *
 * A warm-up of the same kind runs first (another KafkaSource on another topic, deleted once
 * delivered) and is discarded: a fresh server's code runs unoptimized for its first thousands of
 * events.
 *
 * A server that stops answering (its event loop stuck) ends the phase early: when no record has
 * arrived for STALL_MS, the load asks for the source's status, and a server that does not answer
 * within REQUEST_TIMEOUT_MS is reported (`serverAnswered: false`) instead of waited for.
 */
import http from 'node:http';
import { cpuNs, monotonicUs, now, runTask, sleep } from './proc.js';
import { ArrivalPhase } from './arrivals.js';

/** Management API calls give up after this long (a server whose event loop is stuck). */
const REQUEST_TIMEOUT_MS = 10_000;
/** Without a record for this long, the phase checks that the server still answers. */
const STALL_MS = 5_000;

export type SourceSink = 'broker' | 'uri';
export type SourceOrdering = 'ordered' | 'unordered';

/** One KafkaSource to create and read to the end. */
export interface SourceSpec {
  readonly name: string;
  readonly topic: string;
  readonly consumerGroup: string;
  /** Records in the topic. */
  readonly records: number;
}

export interface KafkaSourceTask {
  /** Base URL of the server under test. */
  readonly url: string;
  /** The server's pid, to read its CPU time (Linux /proc). */
  readonly serverPid?: number;
  readonly receiverPort: number;
  readonly bootstrapServers: readonly string[];
  readonly sink: SourceSink;
  readonly ordering: SourceOrdering;
  readonly measured: SourceSpec;
  readonly warmup?: SourceSpec;
  /** How long a phase may take, from the PUT until its last record is received. */
  readonly timeoutMs: number;
}

interface Condition {
  readonly type: string;
  readonly status: string;
  readonly reason?: string;
  readonly message?: string;
}

export interface SourceStatus {
  /** Why the server gave no status (it did not answer). */
  readonly unanswered?: string;
  readonly conditions?: readonly Condition[];
  readonly events?: Record<string, number>;
  readonly lastError?: { message: string; time: string };
}

export interface SourcePhase {
  readonly records: number;
  /** Distinct records received by the subscriber. */
  readonly received: number;
  readonly complete: boolean;
  /** A record received again (at least once). */
  readonly duplicates: number;
  /** From the PUT until the last record was received (or the timeout). */
  readonly seconds: number;
  readonly recordsPerSecond: number;
  /** From the PUT until the first record was received. */
  readonly firstRecordMs: number;
  /** Records after the first over the time after the first: the rate once consuming. */
  readonly afterFirstPerSecond: number;
  /** Share of one core the server used over `seconds` (NaN without its pid), and per record. */
  readonly serverCpu: number;
  readonly serverCpuPerRecordUs: number;
  /** The source's status after the phase: its conditions and counters. */
  readonly status: SourceStatus;
  /** The server answered the status request after the phase (else `status.unanswered` says). */
  readonly serverAnswered: boolean;
  /** The phase on CLOCK_MONOTONIC in µs, the clock of V8's CPU profiles. */
  readonly windowMonotonicUs: readonly [number, number];
}

export interface KafkaSourceResult extends SourcePhase {
  readonly sink: SourceSink;
  readonly ordering: SourceOrdering;
  readonly warmup?: SourcePhase;
  /** Receipts that belong to no phase (a late duplicate of the warm-up). */
  readonly strays: number;
}

/** A phase's arrivals, of the events whose `ce-source` is `ceSource`. */
interface Phase {
  /** `ce-source` of the source's events: `/apis/v1/namespaces/<ns>/kafkasources/<name>#<topic>`. */
  readonly ceSource: string;
  readonly arrivals: ArrivalPhase;
}

let current: Phase | undefined;
let strays = 0;

/** The subscriber: counts each event of the current phase by its `ce-id`. */
async function receiver(port: number): Promise<http.Server> {
  const server = http.createServer((request, response) => {
    const at = now();
    const id = request.headers['ce-id'];
    const source = request.headers['ce-source'];
    request.resume();
    request.on('end', () => {
      response.writeHead(202, { 'content-length': '0' });
      response.end();
    });
    const phase = current;
    if (typeof id !== 'string' || phase === undefined || source !== phase.ceSource) {
      strays++;
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
  return server;
}

function sourceUrl(task: KafkaSourceTask, name: string): string {
  return `${task.url}/v1/namespaces/default/sources/${name}`;
}

async function putSource(task: KafkaSourceTask, spec: SourceSpec): Promise<void> {
  const response = await fetch(sourceUrl(task, spec.name), {
    method: 'PUT',
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      kind: 'KafkaSource',
      spec: {
        bootstrapServers: task.bootstrapServers,
        topics: [spec.topic],
        consumerGroup: spec.consumerGroup,
        initialOffset: 'earliest',
        // `ordered` is the default: left out, as most manifests do.
        ...(task.ordering === 'unordered' ? { ordering: 'unordered' } : {}),
        sink:
          task.sink === 'broker'
            ? { ref: { kind: 'Broker', name: 'default' } }
            : { uri: `http://127.0.0.1:${task.receiverPort}/` },
      },
    }),
  });
  const text = await response.text();
  if (response.status !== 200 && response.status !== 201) {
    throw new Error(`PUT KafkaSource ${spec.name}: ${response.status} ${text}`);
  }
}

/** The source's status; `unanswered` when the server does not answer in time. */
async function sourceStatus(task: KafkaSourceTask, name: string): Promise<SourceStatus> {
  let text: string;
  let code: number;
  try {
    const response = await fetch(sourceUrl(task, name), {
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    text = await response.text();
    code = response.status;
  } catch (error) {
    return { unanswered: `GET source ${name}: ${(error as Error).message}` };
  }
  if (code !== 200) throw new Error(`GET source ${name}: ${code} ${text}`);
  return (JSON.parse(text) as { status?: SourceStatus }).status ?? {};
}

async function deleteSource(task: KafkaSourceTask, name: string): Promise<void> {
  const response = await fetch(sourceUrl(task, name), {
    method: 'DELETE',
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  await response.text();
}

function serverCpuNs(pid: number | undefined): number {
  return pid === undefined ? Number.NaN : cpuNs(pid);
}

/** Creates the source and waits until the subscriber has all its records (or the timeout). */
async function runPhase(task: KafkaSourceTask, spec: SourceSpec): Promise<SourcePhase> {
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => (done = resolve));
  const phase = new ArrivalPhase(spec.records, done);
  current = {
    ceSource: `/apis/v1/namespaces/default/kafkasources/${spec.name}#${spec.topic}`,
    arrivals: phase,
  };
  const timer = setTimeout(done, task.timeoutMs);
  let answering = true;
  let checked = 0;
  const server0 = serverCpuNs(task.serverPid);
  const monotonicStart = monotonicUs();
  const start = now();
  const stallCheck = setInterval(() => {
    const last = Number.isNaN(phase.lastAt) ? start : phase.lastAt;
    if (now() - last < STALL_MS || now() - checked < STALL_MS) return;
    checked = now();
    void sourceStatus(task, spec.name).then(
      (status) => {
        if (status.unanswered === undefined) return;
        answering = false;
        done();
      },
      () => {},
    );
  }, 1_000);
  await putSource(task, spec);
  await finished;
  clearTimeout(timer);
  clearInterval(stallCheck);
  const complete = phase.received === spec.records;
  const end = complete ? phase.lastAt : now();
  const serverNs = serverCpuNs(task.serverPid) - server0;
  const ms = Math.max(1e-3, end - start);
  // Duplicates arriving just after the last record are still counted.
  await sleep(50);
  const status: SourceStatus = answering
    ? await sourceStatus(task, spec.name)
    : { unanswered: `no record and no answer for ${STALL_MS / 1000} s and more` };
  return {
    records: spec.records,
    received: phase.received,
    complete,
    duplicates: phase.duplicates,
    seconds: ms / 1000,
    recordsPerSecond: phase.received / (ms / 1000),
    firstRecordMs: phase.firstAt - start,
    afterFirstPerSecond:
      phase.received > 1
        ? (phase.received - 1) / ((phase.lastAt - phase.firstAt) / 1000)
        : Number.NaN,
    serverCpu: serverNs / 1e6 / ms,
    serverCpuPerRecordUs: serverNs / 1000 / Math.max(1, phase.received),
    status,
    serverAnswered: status.unanswered === undefined,
    windowMonotonicUs: [monotonicStart, monotonicStart + ms * 1000],
  };
}

function adapterMissing(status: SourceStatus): boolean {
  return status.conditions?.some((c) => c.reason === 'AdapterUnavailable') === true;
}

async function main(task: KafkaSourceTask): Promise<KafkaSourceResult> {
  const server = await receiver(task.receiverPort);
  let warmup: SourcePhase | undefined;
  if (task.warmup !== undefined) {
    warmup = await runPhase(task, task.warmup);
    if (!warmup.complete || !warmup.serverAnswered) {
      throw new Error(
        adapterMissing(warmup.status)
          ? 'the server under test runs no KafkaSource adapter: dist/ is older than src/ (run "npm run build")'
          : `warm-up: ${warmup.received} of ${warmup.records} records received; ${warmup.serverAnswered ? `the source's status: ${JSON.stringify(warmup.status)}` : `the server stopped answering (${warmup.status.unanswered})`}`,
      );
    }
    // Its consumer stops, so that it does not fetch (nothing) beside the measured one.
    await deleteSource(task, task.warmup.name);
    current = undefined;
    await sleep(200);
  }
  const measured = await runPhase(task, task.measured);
  current = undefined;
  server.closeAllConnections();
  server.close();
  return {
    sink: task.sink,
    ordering: task.ordering,
    ...measured,
    ...(warmup === undefined ? {} : { warmup }),
    strays,
  };
}

runTask<KafkaSourceTask>(main);
