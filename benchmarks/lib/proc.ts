/**
 * Processes and cores. The machines have 2 cores: the server under test (and each raw baseline in
 * its place) runs on core 0, the load generator and the subscriber on core 1, so neither steals
 * the other's CPU. `taskset` pins them; without it (or with one core) they run unpinned and the
 * results say so.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

export const SERVER_CPU = 0;
export const GENERATOR_CPU = 1;

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The machine's cores (not this process's affinity, which pinning narrows). */
export const CORES = os.cpus().length;

export const PINNING = CORES >= 2 && hasTaskset();

export function pinningNote(): string {
  return PINNING
    ? `server (and each raw baseline) pinned to core ${SERVER_CPU}, load generator and subscriber to core ${GENERATOR_CPU}`
    : 'unpinned (taskset missing or fewer than 2 cores): server and generator share the cores';
}

/** The command and arguments that run `command args` on one core. */
export function pinned(
  cpu: number,
  command: string,
  args: readonly string[],
): [string, readonly string[]] {
  return PINNING ? ['taskset', ['-c', String(cpu), command, ...args]] : [command, args];
}

/**
 * Lets the disk settle before a measurement: writes the page cache back (`sync`) so that a previous
 * measurement's dirty pages (or the removal of its data directory) do not slow this one's fsyncs.
 */
export function settle(): void {
  try {
    execFileSync('sync', [], { stdio: 'ignore' });
  } catch {
    // No sync command: nothing to settle with.
  }
}

/** Moves this process (every thread of it) to one core. */
export function pinSelf(cpu: number): void {
  if (!PINNING) return;
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], {
    stdio: 'ignore',
  });
}

/** Starts `node <args>` on one core (taskset execs node: the child's pid is node's). */
export function spawnNode(
  cpu: number,
  args: readonly string[],
  stdio: 'pipe' | 'inherit' = 'pipe',
): ChildProcess {
  const [command, argv] = pinned(cpu, process.execPath, args);
  return spawn(command, argv, { stdio: ['ignore', stdio, stdio] });
}

/**
 * CPU time a process has used so far, in nanoseconds, all threads included (from
 * /proc/<pid>/task/<tid>/schedstat, which counts in ns, unlike /proc/<pid>/stat's clock ticks).
 * Threads that exited are not counted; the server's threads live as long as it does.
 */
export function cpuNs(pid: number): number {
  const dir = `/proc/${pid}/task`;
  if (!existsSync(dir)) return Number.NaN;
  let total = 0;
  for (const tid of readdirSync(dir)) {
    try {
      total += Number(readFileSync(`${dir}/${tid}/schedstat`, 'latin1').split(' ')[0]);
    } catch {
      // The thread exited between the listing and the read.
    }
  }
  return total;
}

/**
 * CPU time of a process's main thread (the event loop, where Tributary's JavaScript and its
 * synchronous SQLite calls run), in ns. While the event loop is busy but this grows slower than
 * the wall clock, the thread is blocked (an fsync inside a COMMIT), not computing.
 */
export function mainThreadCpuNs(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'latin1').split(' ')[0]);
  } catch {
    return Number.NaN;
  }
}

/** Resident set size of a process in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'latin1');
    const match = /VmRSS:\s+(\d+) kB/.exec(status);
    return match === null ? Number.NaN : Number(match[1]) * 1024;
  } catch {
    return Number.NaN;
  }
}

/** Collects a child's output and resolves with its last JSON line once it exits with 0. */
export function childResult<T>(child: ChildProcess, label: string): Promise<T> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code !== 0) {
        reject(new Error(`${label} exited with ${code ?? signal}:\n${stderr}\n${stdout}`));
        return;
      }
      const last = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as T);
      } catch {
        reject(new Error(`${label} printed no result:\n${stderr}\n${stdout}`));
      }
    });
  });
}

export function machine(): { node: string; cpu: string; cores: number; pinning: string } {
  return {
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: CORES,
    pinning: pinningNote(),
  };
}

/** Milliseconds on this process's high-resolution clock. */
export const now = (): number => performance.now();
/** CLOCK_MONOTONIC in µs, the clock of V8's CPU profiles. */
export const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);
export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The end of a child process of the harness: runs `main` with the task given as JSON in argv[2],
 * prints its result as one JSON line and exits 0, or prints the error and exits 1.
 */
export function runTask<T>(main: (task: T) => Promise<unknown>): void {
  main(JSON.parse(process.argv[2]!) as T).then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      process.exit(0);
    },
    (error: unknown) => {
      process.stderr.write(
        `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exit(1);
    },
  );
}
