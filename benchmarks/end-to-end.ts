/**
 * End to end: open-loop load at fixed offered rates (500, 1,000, 2,000, 5,000 events/s, then up
 * while the rate is held) through ingress, backend and one trigger to a local HTTP subscriber.
 * The generator both sends and receives, so latency is one clock: receipt time minus the send time
 * carried in each event (`ce-benchsent`). A warm-up is sent first and discarded; then the window
 * is measured; then the generator waits for the window's last delivery.
 *
 * A rate is held when the window's deliveries arrive at the offered rate (>= 95 %), the backlog
 * (scheduled minus delivered) does not grow (least-squares slope <= 2 % of the rate), every event
 * was answered 202, and every event was delivered. The highest held rate is found by continuing up
 * the ladder, then bisecting between the last held and the first failed rate.
 *
 * Each rate is a fresh server on the server core; rounds repeat the whole ladder; medians.
 *
 *   npm run bench:e2e [-- --quick] [--backends ...] [--cpu-prof]
 */
import { RAW_BASELINES } from './lib/backends.js';
import {
  fixture,
  forEachBackend,
  INGRESS_PATH,
  log,
  PAYLOAD_BYTES,
  prewarmEvents,
  percent,
  receiverPort,
  runGenerator,
  runRawRate,
  Servers,
  trigger,
  type GoalResult,
  type Options,
  type RawRate,
} from './lib/harness.js';
import type { OpenResult } from './lib/generator.js';
import type { LoopStats } from './lib/server.js';
import { fmt, median, ratio } from './lib/stats.js';
import { figure } from './lib/svg.js';

const LADDER = [500, 1_000, 2_000, 5_000];
const GOAL = { rate: 1_000, p99Ms: 10 };
const EVENT_TYPE = 'com.example.e2e';

interface RateSummary {
  readonly rate: number;
  readonly runs: OpenResult[];
  /** The raw backend's write-and-read-back at the same rate (empty where not measured). */
  readonly raw: RawRate[];
  readonly rawP99: number;
  /** The server's event loop in the window: longest block, and longest GC pause (ms). */
  readonly loops: LoopStats[];
  readonly loopMaxMs: number;
  readonly gcMaxMs: number;
  readonly held: boolean;
  readonly delivered: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly p99FromDue: number;
  readonly ingressP99: number;
  readonly serverCpu: number;
  readonly mainThreadCpu: number;
  readonly generatorCpu: number;
}

function summarize(
  rate: number,
  runs: OpenResult[],
  raw: RawRate[],
  loops: LoopStats[],
): RateSummary {
  const m = (f: (r: OpenResult) => number): number => median(runs.map(f));
  return {
    rate,
    runs,
    raw,
    loops,
    loopMaxMs: median(loops.map((l) => l.delayMaxMs)),
    gcMaxMs: median(loops.map((l) => l.gcMaxMs)),
    rawP99: median(raw.map((r) => r.latencyMs.p99)),
    held: runs.filter((r) => r.held).length * 2 > runs.length,
    delivered: m((r) => r.deliveredPerSecond),
    p50: m((r) => r.latencyMs.p50),
    p90: m((r) => r.latencyMs.p90),
    p99: m((r) => r.latencyMs.p99),
    max: m((r) => r.latencyMs.max),
    p99FromDue: m((r) => r.latencyFromDueMs.p99),
    ingressP99: m((r) => r.ingressMs.p99),
    serverCpu: m((r) => r.server.windowCpu),
    mainThreadCpu: m((r) => r.server.mainThreadCpu),
    generatorCpu: m((r) => r.generatorCpu),
  };
}

async function measure(backend: string, opts: Options) {
  const rounds = opts.quick ? 1 : 3;
  const warmupMs = opts.quick ? 500 : 1000;
  const durationMs = opts.quick ? 2000 : 5000;
  const drainMs = opts.quick ? 4000 : 10_000;
  const bisections = opts.quick ? 0 : 2;
  const port = await receiverPort();
  const e2e = fixture('e2e', [
    trigger('e2e', [{ exact: { type: EVENT_TYPE } }], `http://127.0.0.1:${port}/`),
  ]);
  const servers = new Servers(backend, opts);
  const runs = new Map<number, OpenResult[]>();
  const loops = new Map<number, LoopStats[]>();
  // The raw backend at the same offered rate, in the same round (embedded: SQLite, lib/
  // sqlite-baseline.ts; NATS: JetStream publish and pull consumer, lib/nats-baseline.ts; Kafka:
  // kafkajs send and consumer group, lib/kafka-baseline.ts; quick mode only at the goal's rate).
  const rawInfo = RAW_BASELINES[backend];
  const rawLabel = rawInfo?.rate ?? 'raw backend';
  const raw = new Map<number, RawRate[]>();
  const rawBaseline = async (rate: number): Promise<void> => {
    if (rawInfo?.implemented !== true || (opts.quick && rate !== GOAL.rate)) return;
    const result = await runRawRate(backend, {
      rate,
      warmupMs,
      durationMs,
      payloadBytes: PAYLOAD_BYTES,
    });
    if (result === undefined) return;
    if (!raw.has(rate)) raw.set(rate, []);
    raw.get(rate)!.push(result);
  };

  const once = async (rate: number, round: number): Promise<OpenResult> => {
    const prepared = await servers.start(e2e, `e2e-${backend}-${rate}-${round}`);
    try {
      const result = await runGenerator({
        kind: 'open',
        url: prepared.server.url,
        path: INGRESS_PATH,
        payloadBytes: PAYLOAD_BYTES,
        serverPid: prepared.server.pid,
        rate,
        warmupMs,
        durationMs,
        drainMs,
        eventType: EVENT_TYPE,
        receiverPort: port,
        prewarmEvents: prewarmEvents(opts),
      });
      prepared.markWindow(result.windowMonotonicUs);
      log(
        `${rate} ev/s: delivered ${fmt(result.deliveredPerSecond)}/s, p99 ${fmt(result.latencyMs.p99)} ms, ${result.held ? 'held' : 'NOT held'}`,
      );
      if (!runs.has(rate)) runs.set(rate, []);
      runs.get(rate)!.push(result);
      const loop = prepared.server.loopStats();
      if (loop !== undefined) {
        if (!loops.has(rate)) loops.set(rate, []);
        loops.get(rate)!.push(loop);
      }
    } finally {
      await prepared.stop();
    }
    await rawBaseline(rate);
    return runs.get(rate)!.at(-1)!;
  };

  // Round 1 walks the ladder, goes up while held, and bisects; later rounds repeat those rates.
  log('end-to-end round 1');
  let lastHeld = 0;
  let firstFailed = Number.POSITIVE_INFINITY;
  const note = (rate: number, held: boolean): void => {
    if (held) lastHeld = Math.max(lastHeld, rate);
    else firstFailed = Math.min(firstFailed, rate);
  };
  // --only 1000,2000 measures just those rates (for a profile of one), without going up. Quick
  // mode keeps `npm run bench -- --quick` near three minutes: on NATS and Kafka only the goal's rate.
  const goalOnly = opts.quick && backend !== 'embedded' && opts.only === undefined;
  const fixed = opts.only?.map(Number).filter((r) => r > 0) ?? (goalOnly ? [GOAL.rate] : undefined);
  for (const rate of fixed ?? LADDER) note(rate, (await once(rate, 0)).held);
  for (
    let rate = LADDER.at(-1)! * 2;
    fixed === undefined && firstFailed === Number.POSITIVE_INFINITY;
    rate *= 2
  ) {
    note(rate, (await once(rate, 0)).held);
  }
  for (
    let b = 0;
    fixed === undefined && b < bisections && firstFailed > lastHeld && lastHeld > 0;
    b++
  ) {
    const rate = Math.round((lastHeld + firstFailed) / 2 / 100) * 100;
    if (rate <= lastHeld || rate >= firstFailed) break;
    note(rate, (await once(rate, 0)).held);
  }
  const rates = [...runs.keys()].sort((a, b) => a - b);
  for (let round = 1; round < rounds; round++) {
    log(`end-to-end round ${round + 1}/${rounds}`);
    for (const rate of rates) await once(rate, round);
  }
  servers.dispose();

  const rows = rates.map((rate) =>
    summarize(rate, runs.get(rate)!, raw.get(rate) ?? [], loops.get(rate) ?? []),
  );
  const highestHeld = Math.max(0, ...rows.filter((r) => r.held).map((r) => r.rate));
  const table = [
    `One trigger, one local HTTP subscriber in the generator's process; ${PAYLOAD_BYTES}-byte JSON data; latency from the send time carried in each event to its receipt, ms. Median of ${rounds} round${rounds > 1 ? 's' : ''}, each a fresh server: ${warmupMs / 1000} s warm-up discarded, ${durationMs / 1000} s measured.${goalOnly ? ` Quick mode on ${backend}: the goal's rate only (no search for the highest rate held).` : ` **Highest rate held: ${fmt(highestHeld)} events/s.**`}`,
    '',
    `| offered ev/s | delivered ev/s | held | p50 | p90 | p99 | max | p99 from due time | ingress p99 | ${rawLabel} p99 | p99 x raw | server loop blocked max (GC max) | server CPU (main thread) | generator CPU |`,
    '|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${fmt(r.rate)} | ${fmt(r.delivered)} | ${r.held ? 'yes' : 'no'} | ${fmt(r.p50)} | ${fmt(r.p90)} | ${fmt(r.p99)} | ${fmt(r.max)} | ${fmt(r.p99FromDue)} | ${fmt(r.ingressP99)} | ${fmt(r.rawP99)} | ${ratio(r.p99 / r.rawP99)} | ${fmt(r.loopMaxMs)} (${fmt(r.gcMaxMs)}) | ${percent(r.serverCpu)} (${percent(r.mainThreadCpu)}) | ${percent(r.generatorCpu)} |`,
    ),
  ];
  const rawNote =
    backend === 'embedded'
      ? "Raw SQLite: the same rate into the backend's schema and pragmas without Tributary, each commit taking every event due (a group commit) and reading it back; latency from due time to read back: what durability alone costs."
      : backend === 'nats'
        ? "Raw JetStream: the same rate published (open loop, each PubAck awaited without holding up the schedule) to a stream configured as a broker's, in a process on the server core, and consumed there by a durable pull consumer with explicit acks; latency from the publish to the consumer's receipt: what JetStream alone costs. NATS itself is not pinned."
        : backend === 'kafka'
          ? "Raw kafkajs: the same rate sent (open loop, `acks: -1`, each ack awaited without holding up the schedule) as the backend's records to a topic of as many partitions as the servers' broker topics, in a process on the server core, and consumed there by a consumer group (autoCommit, eachMessage; the send starts once the group has joined); latency from the send to the consumer's receipt: what Kafka and kafkajs alone cost. Kafka itself is not pinned."
          : undefined;
  const notes =
    'p99 from due time: from when the event was due to be sent (includes waiting for a free connection in the generator). Server loop blocked: how late a 5 ms timer in the server ran at worst during the window (a synchronous commit, a GC pause, a long callback), from a probe preloaded into it.';
  table.push('', rawNote === undefined ? notes : `${rawNote} ${notes}`);
  const duplicates = rows.reduce((n, r) => n + r.runs.reduce((m, x) => m + x.duplicates, 0), 0);
  if (duplicates > 0) table.push('', `${duplicates} duplicate deliveries (at least once).`);

  const goalRow = rows.find((r) => r.rate === GOAL.rate);
  const goals: GoalResult[] = [];
  if (goalRow !== undefined) {
    goals.push({
      goal: `end-to-end p99 at ${fmt(GOAL.rate)} events/s`,
      target: `<= ${GOAL.p99Ms} ms`,
      measured: `${fmt(goalRow.p99)} ms = ${ratio(goalRow.p99 / GOAL.p99Ms)} of the limit${Number.isFinite(goalRow.rawP99) ? ` (${rawLabel} at the same rate: ${fmt(goalRow.rawP99)} ms; Tributary ${ratio(goalRow.p99 / goalRow.rawP99)} of it)` : ''}`,
      met: goalRow.held && goalRow.p99 <= GOAL.p99Ms,
      margin:
        goalRow.p99 <= GOAL.p99Ms
          ? `${ratio(GOAL.p99Ms / goalRow.p99)} headroom`
          : `over by ${ratio(goalRow.p99 / GOAL.p99Ms)}`,
    });
  }

  const svg = figure(
    [
      {
        kind: 'line',
        title: `End to end (${backend}): throughput`,
        xLabel: 'offered events/s',
        yLabel: 'delivered events/s',
        series: [
          { name: 'delivered', points: rows.map((r) => [r.rate, r.delivered]) },
          { name: 'offered', points: rows.map((r) => [r.rate, r.rate]), dashed: true },
        ],
      },
      {
        kind: 'line',
        title: `End to end (${backend}): latency`,
        xLabel: 'offered events/s',
        yLabel: 'latency ms (log)',
        yLog: true,
        hline: { y: GOAL.p99Ms, label: `goal: p99 <= ${GOAL.p99Ms} ms at ${fmt(GOAL.rate)}/s` },
        series: [
          { name: 'p50', points: rows.map((r) => [r.rate, r.p50]) },
          { name: 'p90', points: rows.map((r) => [r.rate, r.p90]) },
          { name: 'p99', points: rows.map((r) => [r.rate, r.p99]) },
          { name: 'max', points: rows.map((r) => [r.rate, r.max]) },
        ],
      },
    ],
    `Median of ${rounds} round(s); ${goalOnly ? "the goal's rate only" : `highest rate held ${fmt(highestHeld)}/s`}; server on one core, generator and subscriber on the other.`,
  );
  return {
    markdown: table.join('\n'),
    svg,
    goals,
    data: {
      rounds,
      warmupMs,
      durationMs,
      drainMs,
      payloadBytes: PAYLOAD_BYTES,
      highestHeld: goalOnly ? undefined : highestHeld,
      rows,
    },
  };
}

await forEachBackend('end-to-end', measure);
