/**
 * Per-event matching cost with 10, 1,000 and 10,000 triggers on one broker, of which exactly one
 * matches each event: exact, prefix, CESQL and mixed filters. Reported as the median of several
 * runs and as a ratio against 10 triggers of the same kind, measured in the same run.
 *
 * Goal (issue 3): 10,000 exact-filter triggers cost at most 1.5x per event of 10, because exact
 * filters on type and source are indexed (src/core/filter-index.ts).
 *
 *   npm run bench:filters [-- --quick]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CloudEvent } from '../src/core/event.js';
import { FilterIndex } from '../src/core/filter-index.js';
import { compileTriggerFilter } from '../src/core/filters.js';
import type { TriggerSpec } from '../src/core/resources/types.js';

type Kind = 'exact' | 'prefix' | 'cesql' | 'mixed';
const KINDS: readonly Kind[] = ['exact', 'prefix', 'cesql', 'mixed'];
const SIZES = [10, 1_000, 10_000] as const;
const GOAL = { kind: 'exact' as Kind, size: 10_000, maxRatio: 1.5 };

const quick = process.argv.includes('--quick');
const RUNS = quick ? 3 : 5;
const ROUNDS = quick ? 3 : 5;
/** Enough evaluations per run that a run lasts tens of milliseconds even at 10 triggers. */
const EVALUATIONS_PER_RUN = quick ? 20_000_000 : 60_000_000;

function spec(kind: Kind, i: number): Pick<TriggerSpec, 'filters'> {
  const k: Exclude<Kind, 'mixed'> =
    kind === 'mixed' ? (['exact', 'prefix', 'cesql'] as const)[i % 3]! : kind;
  switch (k) {
    case 'exact':
      return { filters: [{ exact: { type: `com.example.t${i}` } }] };
    case 'prefix':
      return { filters: [{ prefix: { type: `com.example.t${i}.` } }] };
    case 'cesql':
      return { filters: [{ cesql: `type = 'com.example.t${i}.x' AND source LIKE '/bench%'` }] };
  }
}

/** An event that exactly trigger `i` matches. */
function eventFor(kind: Kind, i: number): CloudEvent {
  const k = kind === 'mixed' ? (['exact', 'prefix', 'cesql'] as const)[i % 3]! : kind;
  const type = k === 'exact' ? `com.example.t${i}` : `com.example.t${i}.x`;
  return { attributes: { specversion: '1.0', id: String(i), source: '/bench', type } };
}

interface Result {
  readonly kind: Kind;
  readonly triggers: number;
  readonly nsPerEvent: number;
  readonly runsNs: number[];
  readonly ratioToTen: number;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface Setup {
  readonly size: number;
  /** Runs `count` events through the index; returns ns per event. */
  run(count: number): number;
  readonly eventsPerRun: number;
  matched(): number;
}

function setup(kind: Kind, size: number): Setup {
  const index = new FilterIndex<number>();
  for (let i = 0; i < size; i++) index.set(i, compileTriggerFilter(spec(kind, i)));
  // Events spread over all triggers, each matching exactly one.
  const events = Array.from({ length: 1024 }, (_, j) => eventFor(kind, (j * 7919) % size));
  // Linear kinds evaluate every trigger per event; indexed ones one: keep run lengths comparable.
  const perEvent = kind === 'exact' ? 1 : size;
  const eventsPerRun = Math.max(512, Math.floor(EVALUATIONS_PER_RUN / perEvent / 50));
  let matched = 0;
  const visit = (): void => {
    matched++;
  };
  return {
    size,
    eventsPerRun,
    matched: () => matched,
    run: (count) => {
      const start = process.hrtime.bigint();
      for (let n = 0; n < count; n++) index.forEachMatch(events[n & 1023]!, visit);
      return Number(process.hrtime.bigint() - start) / count;
    },
  };
}

/** In a child process: measures one kind and size, prints the runs (ns per event) as JSON. */
function child(kind: Kind, size: number): void {
  const s = setup(kind, size);
  s.run(s.eventsPerRun); // warm-up: one unmeasured run, so the code under test is optimized
  const before = s.matched();
  const runs: number[] = [];
  for (let r = 0; r < RUNS; r++) runs.push(s.run(s.eventsPerRun));
  const expected = RUNS * s.eventsPerRun;
  if (s.matched() - before !== expected) {
    throw new Error(
      `${kind}/${size}: ${s.matched() - before} matches for ${expected} events; each should match once`,
    );
  }
  process.stdout.write(JSON.stringify(runs));
}

/**
 * Each kind and size is measured in a fresh process (no JIT state shared between sizes), in
 * interleaved rounds (10, 1,000, 10,000, 10, ...) so that a slow phase of the machine hits every
 * size alike; the median over all runs of all rounds is reported.
 */
function measureKind(kind: Kind): Result[] {
  const runs: number[][] = SIZES.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    SIZES.forEach((size, i) => {
      const args = [
        ...process.execArgv,
        fileURLToPath(import.meta.url),
        '--child',
        kind,
        String(size),
      ];
      if (quick) args.push('--quick');
      const out = execFileSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
      runs[i]!.push(...(JSON.parse(out) as number[]));
    });
  }
  const base = median(runs[0]!);
  return SIZES.map((size, i) => {
    const nsPerEvent = median(runs[i]!);
    return { kind, triggers: size, nsPerEvent, runsNs: runs[i]!, ratioToTen: nsPerEvent / base };
  });
}

const childAt = process.argv.indexOf('--child');
if (childAt >= 0) {
  child(process.argv[childAt + 1] as Kind, Number(process.argv[childAt + 2]));
  process.exit(0);
}

const results: Result[] = KINDS.flatMap(measureKind);

const lines = [
  '| filters | triggers | ns per event (median) | x of 10 triggers |',
  '|---|---:|---:|---:|',
  ...results.map(
    (r) =>
      `| ${r.kind} | ${r.triggers} | ${r.nsPerEvent.toFixed(0)} | ${r.ratioToTen.toFixed(2)} |`,
  ),
];
const goal = results.find((r) => r.kind === GOAL.kind && r.triggers === GOAL.size)!;
const verdict = `goal: ${GOAL.kind} filters, ${GOAL.size} triggers at most ${GOAL.maxRatio}x of 10: ${goal.ratioToTen.toFixed(3)}x, ${goal.ratioToTen <= GOAL.maxRatio ? 'met' : 'NOT met'}`;
process.stdout.write(`${lines.join('\n')}\n\n${verdict}\n`);

const dir = path.resolve('benchmarks/results');
mkdirSync(dir, { recursive: true });
writeFileSync(
  path.join(dir, 'filter-matching.json'),
  `${JSON.stringify({ node: process.version, quick, runs: RUNS, rounds: ROUNDS, results, goal: { ...GOAL, ratio: goal.ratioToTen } }, null, 2)}\n`,
);
