/**
 * Ingress: events per second answered 202, binary-mode single events over N concurrent connections
 * and batch-mode requests, against baselines measured in the same run on the same core:
 *
 * - the raw backend write with the same durability, one event at a time and with as many events
 *   at once as the ingress has in flight (k = connections x events per request). Embedded: a
 *   SQLite insert loop with the backend's schema and pragmas (WAL, synchronous=FULL: one fsync per
 *   commit), one event per transaction, and the same batched as the group commit batches
 *   concurrent requests (k events per transaction). NATS: JetStream publishes of the messages the
 *   backend writes, to a stream configured as a broker's, each PubAck awaited before the next
 *   (serial), and with k publishes awaiting their acks at all times. Kafka: kafkajs producer sends
 *   with acks=all of the records the backend writes, one at a time, and with as many sends in
 *   flight as the ingress has requests in flight, each of as many records as a request's events;
 * - a bare fastify route answering 202, with Tributary's fastify options, driven by the same load
 *   generator: the ceiling the HTTP layer puts on any ingress.
 *
 * Each measurement is a fresh server (or baseline) process on the server core and a fresh generator
 * on the other core; rounds interleave all configurations; medians of the rounds are reported.
 *
 *   npm run bench:ingress [-- --quick] [--backends embedded,nats,kafka] [--cpu-prof]
 */
import { RAW_BASELINES } from './lib/backends.js';
import { fmt, median, ratio } from './lib/stats.js';
import {
  forEachBackend,
  INGRESS_PATH,
  log,
  PAYLOAD_BYTES,
  percent,
  runGenerator,
  runRawThroughput,
  Servers,
  type GoalResult,
  type Options,
} from './lib/harness.js';
import type { ClosedResult } from './lib/generator.js';
import { settle } from './lib/proc.js';
import { startBareFastify } from './lib/server.js';
import { figure } from './lib/svg.js';

interface Config {
  /** 0: binary mode, one event per request; k: batch mode with k events per request. */
  readonly batch: number;
  readonly connections: number;
}

const label = (c: Config): string =>
  c.batch === 0 ? `binary, ${c.connections} conn` : `batch of ${c.batch}, ${c.connections} conn`;
/** Events the ingress has in flight: what the raw backend is given at once. */
const eventsPerTx = (c: Config): number => c.connections * Math.max(1, c.batch);

/**
 * The raw write the ingress with `c` is compared with: that many events at once, and on Kafka
 * grouped in sends as the ingress groups them (one send per request, of `batch` events), where
 * SQLite and JetStream take them one by one (batch 1).
 */
interface RawShape {
  readonly inFlight: number;
  readonly batch: number;
}
const rawShape = (backend: string, c: Config): RawShape => ({
  inFlight: eventsPerTx(c),
  batch: backend === 'kafka' ? Math.max(1, c.batch) : 1,
});
const shapeKey = (s: RawShape): string => `${s.inFlight}/${s.batch}`;
/** The concurrency as the table shows it: events, or sends x records per send. */
const shapeText = (s: RawShape): string =>
  s.batch === 1 ? String(s.inFlight) : `${s.inFlight / s.batch} sends x ${s.batch}`;

/** Ingress at 80 % or more of the raw backend write (issue 5). */
const GOAL_SHARE = 0.8;

interface Row {
  readonly config: Config;
  readonly tributary: number;
  readonly bare: number;
  /** The raw backend with as many events at once as the ingress has in flight (NaN: none). */
  readonly rawConcurrent: number;
  readonly serverCpu: number;
  readonly latencyP99: number;
  readonly non202: number;
  readonly runs: { tributary: ClosedResult[]; bare: ClosedResult[]; rawConcurrent: number[] };
}

async function measure(backend: string, opts: Options) {
  const configs: Config[] = opts.quick
    ? [
        { batch: 0, connections: 32 },
        { batch: 100, connections: 8 },
      ]
    : [
        { batch: 0, connections: 1 },
        { batch: 0, connections: 8 },
        { batch: 0, connections: 32 },
        { batch: 0, connections: 128 },
        { batch: 100, connections: 1 },
        { batch: 100, connections: 8 },
      ];
  // Quick mode keeps `npm run bench -- --quick` near three minutes: one round on NATS and Kafka.
  const rounds = opts.quick ? (backend === 'embedded' ? 2 : 1) : 3;
  const warmupMs = opts.quick ? 300 : 1000;
  const durationMs = opts.quick ? 1000 : 3000;
  const servers = new Servers(backend, opts);
  const raw = RAW_BASELINES[backend];
  const hasRaw = raw?.implemented === true;
  const shapes = new Map<string, RawShape>(
    [{ inFlight: 1, batch: 1 }, ...configs.map((c) => rawShape(backend, c))].map((sh) => [
      shapeKey(sh),
      sh,
    ]),
  );

  const tributary = configs.map((): ClosedResult[] => []);
  const bare = configs.map((): ClosedResult[] => []);
  // Raw backend events/s per shape (events at once / per send; 1/1: serial).
  const rawRuns = new Map<string, number[]>([...shapes.keys()].map((k) => [k, []]));
  const rawDetails: unknown[] = [];

  for (let round = 0; round < rounds; round++) {
    log(`ingress round ${round + 1}/${rounds}`);
    for (const [i, config] of configs.entries()) {
      const task = {
        kind: 'closed' as const,
        path: INGRESS_PATH,
        payloadBytes: PAYLOAD_BYTES,
        connections: config.connections,
        batch: config.batch,
        warmupMs,
        durationMs,
      };
      const prepared = await servers.start(undefined, `ingress-${backend}-${i}-${round}`);
      try {
        const result = await runGenerator({
          ...task,
          url: prepared.server.url,
          serverPid: prepared.server.pid,
        });
        prepared.markWindow(result.windowMonotonicUs);
        tributary[i]!.push(result);
      } finally {
        await prepared.stop();
      }
      settle();
      const baseline = await startBareFastify();
      try {
        bare[i]!.push(await runGenerator({ ...task, url: baseline.url, serverPid: baseline.pid }));
      } finally {
        await baseline.stop();
      }
    }
    if (hasRaw) {
      for (const [k, shape] of shapes) {
        const result = await runRawThroughput(backend, {
          ...shape,
          warmupMs,
          durationMs,
          payloadBytes: PAYLOAD_BYTES,
        });
        if (result === undefined) continue;
        rawRuns.get(k)!.push(result.eventsPerSecond);
        rawDetails.push({ ...shape, round, ...result.result });
      }
    }
  }
  servers.dispose();

  const rawSerial = median(rawRuns.get(shapeKey({ inFlight: 1, batch: 1 }))!);
  const rawOf = (c: Config): number[] => rawRuns.get(shapeKey(rawShape(backend, c)))!;
  const rows: Row[] = configs.map((config, i) => {
    const t = tributary[i]!;
    return {
      config,
      tributary: median(t.map((r) => r.eventsPerSecond)),
      bare: median(bare[i]!.map((r) => r.eventsPerSecond)),
      rawConcurrent: median(rawOf(config)),
      serverCpu: median(t.map((r) => r.serverCpu)),
      latencyP99: median(t.map((r) => r.latencyMs.p99)),
      non202: t.reduce((n, r) => n + r.errors + r.requests - (r.statuses['202'] ?? 0), 0),
      runs: { tributary: t, bare: bare[i]!, rawConcurrent: rawOf(config) },
    };
  });

  const serial = raw?.serial ?? 'raw serial';
  const concurrent = raw?.concurrent ?? 'raw concurrent';
  const unit = raw?.concurrencyUnit ?? 'at once';
  const baselineText =
    backend === 'embedded'
      ? `SQLite insert loop (one event per fsync'd transaction) **${fmt(rawSerial)} ev/s**; SQLite batched with as many events per transaction as requests in flight (the group commit's best case).`
      : backend === 'nats'
        ? `JetStream publishes of the backend's messages (same headers, ${PAYLOAD_BYTES}-byte JSON data, a \`Nats-Msg-Id\`) to a stream configured as a broker's, one at a time, each PubAck awaited before the next, **${fmt(rawSerial)} ev/s**; JetStream in flight: as many publishes awaiting their acks at all times as the ingress has events in flight. NATS itself (not pinned) serves both.`
        : backend === 'kafka'
          ? `kafkajs producer sends with \`acks: -1\` (all) of the records the backend writes (the same \`ce_\` headers, no key, ${PAYLOAD_BYTES}-byte JSON data) to a topic of as many partitions as the servers' broker topics, one at a time, each awaited before the next, **${fmt(rawSerial)} ev/s**; kafkajs in flight: as many sends awaiting their acks at all times as the ingress has requests in flight, each of as many records as a request has events (sends x records). Kafka itself (not pinned) serves both.`
          : 'none measured.';
  const table = [
    `Events per second answered 202 (median of ${rounds} round${rounds > 1 ? 's' : ''}, ${durationMs / 1000} s each after ${warmupMs / 1000} s of warm-up; ${PAYLOAD_BYTES}-byte JSON data). Raw baselines on the same core in the same run: ${baselineText}`,
    '',
    `| ingress | Tributary ev/s | x ${serial} | ${concurrent} ev/s (${unit}) | x ${concurrent} | bare fastify ev/s | x bare fastify | server CPU | p99 response |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${label(r.config)} | ${fmt(r.tributary)} | ${ratio(r.tributary / rawSerial)} | ${fmt(r.rawConcurrent)} (${shapeText(rawShape(backend, r.config))}) | ${ratio(r.tributary / r.rawConcurrent)} | ${fmt(r.bare)} | ${ratio(r.tributary / r.bare)} | ${percent(r.serverCpu)} | ${fmt(r.latencyP99)} ms |`,
    ),
  ];
  if (!hasRaw) {
    table.push(
      '',
      `Raw ${backend} baseline (${raw?.description ?? 'none known'}): not measured yet; it is written with the backend.`,
    );
  }
  const failures = rows.reduce((n, r) => n + r.non202, 0);
  if (failures > 0) table.push('', `**${failures} requests were not answered 202.**`);

  const goals: GoalResult[] = [];
  if (hasRaw) {
    const best = rows
      .filter((r) => r.config.batch === 0)
      .reduce((a, b) => (b.tributary > a.tributary ? b : a));
    const vsSerial = best.tributary / rawSerial;
    goals.push({
      goal:
        backend === 'embedded'
          ? `ingress (binary, best of the connection counts: ${best.config.connections}) vs the raw SQLite insert loop`
          : `ingress (binary, best of the connection counts: ${best.config.connections}) vs raw ${backend} one event at a time (${serial})`,
      target: `>= ${GOAL_SHARE}x`,
      measured: ratio(vsSerial),
      met: vsSerial >= GOAL_SHARE,
      margin: `${ratio(vsSerial / GOAL_SHARE)} of the target`,
    });
    for (const r of rows.filter((row) => row === best || row.config.batch > 0)) {
      const share = r.tributary / r.rawConcurrent;
      goals.push({
        goal:
          backend === 'embedded'
            ? `ingress (${label(r.config)}) vs SQLite batched like the group commit (${eventsPerTx(r.config)} events/tx)`
            : `ingress (${label(r.config)}) vs ${concurrent} (${shapeText(rawShape(backend, r.config))} ${unit}, as many as the ingress)`,
        target: `>= ${GOAL_SHARE}x`,
        measured: ratio(share),
        met: share >= GOAL_SHARE,
        margin: `${ratio(share / GOAL_SHARE)} of the target; the bare fastify route itself reaches ${ratio(r.bare / r.rawConcurrent)} of it`,
      });
    }
  }

  const svg = figure(
    [
      {
        kind: 'bar',
        width: 760,
        title: `Ingress (${backend}): events/s answered 202`,
        yLabel: 'events per second (log)',
        yLog: true,
        groups: rows.map((r) =>
          r.config.batch === 0
            ? `${r.config.connections} conn`
            : `${r.config.batch}x${r.config.connections}`,
        ),
        series: [
          { name: 'Tributary', values: rows.map((r) => r.tributary) },
          { name: 'bare fastify 202', values: rows.map((r) => r.bare) },
          ...(hasRaw
            ? [
                { name: concurrent, values: rows.map((r) => r.rawConcurrent) },
                { name: serial, values: rows.map(() => rawSerial) },
              ]
            : []),
        ],
      },
    ],
    'Groups: binary mode over N connections, or batch of k events x N connections. Same core, same run.',
  );

  return {
    markdown: table.join('\n'),
    svg,
    goals,
    data: {
      rounds,
      warmupMs,
      durationMs,
      payloadBytes: PAYLOAD_BYTES,
      rawBaseline: raw?.description,
      rawSerial,
      raw: Object.fromEntries(rawRuns),
      rawRuns: rawDetails,
      rows,
    },
  };
}

await forEachBackend('ingress', measure);
