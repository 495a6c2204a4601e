/**
 * Where the time goes: summarizes V8 CPU profiles (`.cpuprofile`, written by a scenario run with
 * `--cpu-prof`, which profiles the server) as self-time shares per function and per area (our src/
 * by file, fastify, better-sqlite3, node internals, GC), idle time left out. When the scenario noted
 * its measured window beside the profile (window.json), only the samples inside it count.
 *
 * A V8 CPU profile samples the main thread's stack on a timer: time the thread spends blocked in a
 * synchronous call (an fsync inside better-sqlite3's COMMIT) is charged to the JS function that made
 * the call, so the shares are of wall time on the main thread, not of CPU time.
 *
 *   npm run bench:profile -- benchmarks/results/profiles/<dir or file> [--top 25]
 *   npm run bench:profile -- <dir> --stalls 10   (the longest spans the event loop never idled)
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
  };
  readonly hitCount?: number;
  readonly children?: number[];
}

interface CpuProfile {
  readonly nodes: ProfileNode[];
  readonly samples: number[];
  readonly timeDeltas: number[];
  readonly startTime: number;
  readonly endTime: number;
}

function files(target: string): string[] {
  if (statSync(target).isFile()) return [target];
  return readdirSync(target, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => path.join(target, f));
}

function area(url: string, name: string): string {
  if (name === '(garbage collector)') return 'GC';
  if (name === '(program)') return '(program: native, not attributed)';
  if (url === '') return `native ${name}`;
  const mod = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url);
  if (mod !== null) return mod[1]!;
  const src = /\/dist\/(.+)\.js$/.exec(url);
  if (src !== null) return `src/${src[1]!}.ts`;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  return url;
}

export interface Stall {
  readonly file: string;
  /** From the start of the window (or of the profile), ms. */
  readonly atMs: number;
  readonly ms: number;
  /** The stacks sampled in it (leaf first), with their share of the span. */
  readonly stacks: { stack: string; share: number }[];
}

/**
 * The longest spans in which the main thread never went idle: what held the event loop when the
 * latency's tail was made (an event that arrives during one waits for its end).
 */
export function stalls(paths: readonly string[], top: number): Stall[] {
  const found: Stall[] = [];
  for (const file of paths) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const stackOf = (id: number): string => {
      const frames: string[] = [];
      for (
        let at: number | undefined = id;
        at !== undefined && frames.length < 7;
        at = parent.get(at)
      ) {
        const frame = nodes.get(at)!.callFrame;
        if (frame.functionName === '(root)') break;
        const where =
          frame.url === '' ? '' : ` ${path.basename(frame.url)}:${frame.lineNumber + 1}`;
        frames.push(`${frame.functionName === '' ? '(anonymous)' : frame.functionName}${where}`);
      }
      return frames.join(' < ');
    };
    const window = readWindow(file);
    let at = profile.startTime;
    let span: { start: number; end: number; ids: number[] } | undefined;
    const close = (): void => {
      if (span === undefined) return;
      const counts = new Map<string, number>();
      for (const id of span.ids) {
        const stack = stackOf(id);
        counts.set(stack, (counts.get(stack) ?? 0) + 1);
      }
      found.push({
        file,
        atMs: (span.start - Math.max(window.startUs, profile.startTime)) / 1000,
        ms: (span.end - span.start) / 1000,
        stacks: [...counts.entries()]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 3)
          .map(([stack, n]) => ({ stack, share: n / span!.ids.length })),
      });
      span = undefined;
    };
    for (let i = 0; i < profile.samples.length; i++) {
      at += profile.timeDeltas[i] ?? 0;
      if (at < window.startUs || at > window.endUs) continue;
      const id = profile.samples[i]!;
      if (nodes.get(id)!.callFrame.functionName === '(idle)') {
        close();
        continue;
      }
      const end = at + (profile.timeDeltas[i + 1] ?? 0);
      if (span === undefined) span = { start: at, end, ids: [id] };
      else {
        span.end = end;
        span.ids.push(id);
      }
    }
    close();
  }
  return found.sort((a, b) => b.ms - a.ms).slice(0, top);
}

function readWindow(file: string): { startUs: number; endUs: number } {
  const windowFile = path.join(path.dirname(file), 'window.json');
  return existsSync(windowFile)
    ? (JSON.parse(readFileSync(windowFile, 'utf8')) as { startUs: number; endUs: number })
    : { startUs: Number.NEGATIVE_INFINITY, endUs: Number.POSITIVE_INFINITY };
}

export interface ProfileSummary {
  readonly totalMs: number;
  readonly busyMs: number;
  readonly functions: { name: string; where: string; ms: number; share: number }[];
  readonly areas: { area: string; ms: number; share: number }[];
}

export function summarize(paths: readonly string[]): ProfileSummary {
  const byFunction = new Map<string, { name: string; where: string; ms: number }>();
  const byArea = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const file of paths) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
    // window.json beside the profile (written by the scenario): only the measured window counts.
    const window = readWindow(file);
    // Self time per node from the samples and their time deltas (µs).
    const self = new Map<number, number>();
    let at = profile.startTime;
    for (let i = 0; i < profile.samples.length; i++) {
      at += profile.timeDeltas[i] ?? 0;
      if (at < window.startUs || at > window.endUs) continue;
      const id = profile.samples[i]!;
      const dt = profile.timeDeltas[i + 1] ?? 0;
      self.set(id, (self.get(id) ?? 0) + dt);
    }
    for (const [id, us] of self) {
      const node = nodes.get(id)!;
      const { functionName, url, lineNumber } = node.callFrame;
      const ms = us / 1000;
      total += ms;
      if (functionName === '(idle)') {
        idle += ms;
        continue;
      }
      const name = functionName === '' ? '(anonymous)' : functionName;
      const file = url.replace(/^file:\/\//, '').replace(/^.*\/(dist|node_modules)\//, '$1/');
      const where = url === '' ? '' : `${file}:${lineNumber + 1}`;
      const key = `${name} ${where}`;
      const entry = byFunction.get(key) ?? { name, where, ms: 0 };
      entry.ms += ms;
      byFunction.set(key, entry);
      const a = area(url, functionName);
      byArea.set(a, (byArea.get(a) ?? 0) + ms);
    }
  }
  const busy = total - idle;
  return {
    totalMs: total,
    busyMs: busy,
    functions: [...byFunction.values()]
      .sort((a, b) => b.ms - a.ms)
      .map((f) => ({ ...f, share: f.ms / busy })),
    areas: [...byArea.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([name, ms]) => ({ area: name, ms, share: ms / busy })),
  };
}

function main(): void {
  const args = process.argv.slice(2);
  const topAt = args.indexOf('--top');
  const top = topAt >= 0 ? Number(args[topAt + 1]) : 25;
  const stallsAt = args.indexOf('--stalls');
  const targets = args.filter(
    (a, i) =>
      !a.startsWith('--') && (topAt < 0 || i !== topAt + 1) && (stallsAt < 0 || i !== stallsAt + 1),
  );
  if (targets.length === 0) {
    process.stderr.write('usage: profile-summary <profile file or directory>... [--top N]\n');
    process.exit(2);
  }
  if (stallsAt >= 0) {
    for (const stall of stalls(targets.flatMap(files), Number(args[stallsAt + 1]) || 10)) {
      process.stdout.write(
        `${stall.ms.toFixed(1)} ms busy at ${stall.atMs.toFixed(0)} ms (${path.basename(path.dirname(stall.file))})\n${stall.stacks.map((s) => `  ${(s.share * 100).toFixed(0)} % ${s.stack}`).join('\n')}\n`,
      );
    }
    return;
  }
  const summary = summarize(targets.flatMap(files));
  const pct = (share: number): string => `${(share * 100).toFixed(1)} %`;
  const lines = [
    `busy ${summary.busyMs.toFixed(0)} ms of ${summary.totalMs.toFixed(0)} ms profiled (${pct(summary.busyMs / summary.totalMs)}); shares are of the busy time`,
    '',
    '| self time | function | where |',
    '|---:|---|---|',
    ...summary.functions.slice(0, top).map((f) => `| ${pct(f.share)} | ${f.name} | ${f.where} |`),
    '',
    '| self time | area |',
    '|---:|---|',
    ...summary.areas.slice(0, top).map((a) => `| ${pct(a.share)} | ${a.area} |`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(path.basename(process.argv[1])))
  main();
