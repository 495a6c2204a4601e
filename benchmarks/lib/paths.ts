/** Where things are, from the compiled file's location (dist-bench/benchmarks/lib/). */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The repository's root. */
export const ROOT = path.resolve(here, '../../..');
/** The CLI under test; BENCH_CLI measures another build instead (an A/B of a change to src/). */
export const CLI = process.env.BENCH_CLI ?? path.join(ROOT, 'dist/cli.js');
/** The compiled benchmark scripts (dist-bench/benchmarks). */
export const BENCH_DIST = path.resolve(here, '..');
export const RESULTS_DIR = path.join(ROOT, 'benchmarks/results');
/** The copy of the latest full run kept in git (charts and tables the README shows). */
export const LATEST_DIR = path.join(ROOT, 'benchmarks/latest');
export const PROFILES_DIR = path.join(RESULTS_DIR, 'profiles');

/** A compiled script of the benchmarks, e.g. `lib/generator.js`. */
export function benchScript(relative: string): string {
  return path.join(BENCH_DIST, relative);
}
