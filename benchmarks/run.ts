/**
 * `npm run bench`: every scenario (ingress, end-to-end, fan-out, memory, sources), each its own
 * script and process, for every requested backend; then benchmarks/results/summary.md with the
 * goals, the tables and the charts. `--quick` is a reduced matrix (fewer sizes and rounds, shorter
 * windows): 1.5 to 2 minutes per backend on a 2-core machine (4.2 for embedded, NATS and Kafka); `--publish` copies the summary
 * and charts to benchmarks/latest/ (kept in git) and into the README's Performance section.
 *
 *   npm run bench [-- --quick] [--backends embedded,nats,kafka] [--cpu-prof] [--publish]
 */
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import * as prettier from 'prettier';
import { requestedBackends } from './lib/backends.js';
import { freePort, goalTable, type GoalResult } from './lib/harness.js';
import { benchScript, LATEST_DIR, RESULTS_DIR, ROOT } from './lib/paths.js';
import { machine, pinSelf, GENERATOR_CPU } from './lib/proc.js';

const SCENARIOS = ['ingress', 'end-to-end', 'fan-out', 'memory', 'sources'] as const;
const README_BEGIN = '<!-- bench:begin (written by npm run bench -- --publish) -->';
const README_END = '<!-- bench:end -->';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const publish = argv.includes('--publish');
const backends = requestedBackends(argv);
const passed = argv.filter((a) => a !== '--publish');

function runScenario(scenario: string, env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [benchScript(`${scenario}.js`), ...passed], {
      stdio: 'inherit',
      env,
    });
    child.once('exit', (code) => resolve(code ?? 1));
  });
}

interface ScenarioJson {
  readonly scenario: string;
  readonly backend: string;
  readonly date: string;
  readonly quick: boolean;
  readonly seconds: number;
  readonly skipped?: string;
  readonly goals: GoalResult[];
}

/** The summary's Markdown; charts referenced as `${imagePrefix}<scenario>-<backend>.svg`. */
function summary(totalSeconds: number, imagePrefix: string, failed: string[]): string {
  const reports: { json: ScenarioJson; md: string; svg: boolean }[] = [];
  for (const scenario of SCENARIOS) {
    for (const backend of backends) {
      const base = path.join(RESULTS_DIR, `${scenario}-${backend}`);
      if (!existsSync(`${base}.json`)) continue;
      reports.push({
        json: JSON.parse(readFileSync(`${base}.json`, 'utf8')) as ScenarioJson,
        md: readFileSync(`${base}.md`, 'utf8').trim(),
        svg: existsSync(`${base}.svg`),
      });
    }
  }
  const m = machine();
  const goals = reports.flatMap((r) =>
    r.json.goals.map((g) => ({ ...g, goal: `${r.json.backend}: ${g.goal}` })),
  );
  const skipped = reports.filter((r) => r.json.skipped !== undefined);
  const lines = [
    `Run of ${new Date().toISOString().slice(0, 10)}, ${quick ? '`--quick`' : 'full'} mode, ${fmtSeconds(totalSeconds)}: Node ${m.node} on ${m.cpu}, ${m.cores} cores; ${m.pinning}. Every figure is a median of repeated measurements, each on a fresh server process; ratios are against baselines measured in the same run.`,
    '',
    '#### Goals (issue 5)',
    '',
    goalTable(goals),
    '',
  ];
  if (skipped.length > 0) {
    lines.push(
      '#### Skipped',
      '',
      ...skipped.map((r) => `- ${r.json.scenario} on ${r.json.backend}: ${r.json.skipped}`),
      '',
    );
  }
  if (failed.length > 0) lines.push(`**Failed scenarios: ${failed.join(', ')}.**`, '');
  for (const r of reports.filter((x) => x.json.skipped === undefined)) {
    // The per-scenario files start with their own `###` heading; nest them under this section.
    lines.push(r.md.replace(/^### /, '#### '), '');
    if (r.svg) {
      lines.push(
        `![${r.json.scenario} (${r.json.backend})](${imagePrefix}${r.json.scenario}-${r.json.backend}.svg)`,
        '',
      );
    }
  }
  return `${lines.join('\n').trim()}\n`;
}

/** Text as the repository's prettier writes it (tables aligned), so `npm run lint` passes. */
async function formatted(text: string, parser: 'markdown' | 'json' = 'markdown'): Promise<string> {
  const config = (await prettier.resolveConfig(path.join(ROOT, 'README.md'))) ?? {};
  return prettier.format(text, { ...config, parser });
}

function fmtSeconds(seconds: number): string {
  return seconds < 120 ? `${seconds.toFixed(0)} s` : `${(seconds / 60).toFixed(1)} min`;
}

async function main(): Promise<void> {
  pinSelf(GENERATOR_CPU);
  const started = performance.now();
  mkdirSync(RESULTS_DIR, { recursive: true });
  for (const f of readdirSync(RESULTS_DIR)) {
    if (SCENARIOS.some((s) => f.startsWith(`${s}-`))) rmSync(path.join(RESULTS_DIR, f));
  }
  // Fixtures (triggers applied once into a data directory) shared by the scenarios of this run,
  // all of which deliver to the same subscriber port.
  const fixtures = path.join(RESULTS_DIR, 'data', `fixtures-${process.pid}`);
  mkdirSync(fixtures, { recursive: true });
  const env = {
    ...process.env,
    BENCH_FIXTURES_DIR: fixtures,
    BENCH_RECEIVER_PORT: String(await freePort()),
  };
  const failed: string[] = [];
  try {
    for (const scenario of SCENARIOS) {
      process.stdout.write(`\n=== ${scenario} ===\n`);
      const code = await runScenario(scenario, env);
      if (code !== 0) failed.push(scenario);
    }
  } finally {
    rmSync(fixtures, { recursive: true, force: true });
  }
  const seconds = (performance.now() - started) / 1000;
  const text = summary(seconds, '', failed);
  writeFileSync(path.join(RESULTS_DIR, 'summary.md'), text);
  process.stdout.write(`\n=== summary (benchmarks/results/summary.md) ===\n\n${text}\n`);
  process.stdout.write(`npm run bench${quick ? ' -- --quick' : ''}: ${fmtSeconds(seconds)}\n`);

  if (publish) {
    rmSync(LATEST_DIR, { recursive: true, force: true });
    mkdirSync(LATEST_DIR, { recursive: true });
    for (const f of readdirSync(RESULTS_DIR)) {
      if (!SCENARIOS.some((s) => f.startsWith(`${s}-`))) continue;
      const from = path.join(RESULTS_DIR, f);
      const to = path.join(LATEST_DIR, f);
      if (f.endsWith('.svg')) copyFileSync(from, to);
      if (f.endsWith('.json'))
        writeFileSync(to, await formatted(readFileSync(from, 'utf8'), 'json'));
    }
    writeFileSync(path.join(LATEST_DIR, 'summary.md'), await formatted(text));
    const readmePath = path.join(ROOT, 'README.md');
    const readme = readFileSync(readmePath, 'utf8');
    const begin = readme.indexOf(README_BEGIN);
    const end = readme.indexOf(README_END);
    if (begin < 0 || end < begin) {
      process.stderr.write(
        `README.md has no "${README_BEGIN}" ... "${README_END}" block; not updated\n`,
      );
    } else {
      const section = summary(seconds, 'benchmarks/latest/', failed);
      writeFileSync(
        readmePath,
        await formatted(
          `${readme.slice(0, begin + README_BEGIN.length)}\n\n${section}\n${readme.slice(end)}`,
        ),
      );
      process.stdout.write('published to benchmarks/latest/ and README.md\n');
    }
  }
  if (failed.length > 0) process.exitCode = 1;
}

await main();
