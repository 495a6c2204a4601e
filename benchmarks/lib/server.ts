/**
 * The servers under test, each a fresh process on the server core: Tributary itself (the real CLI,
 * `node dist/cli.js serve --port 0`, as a user starts it) and the bare fastify route of the ingress
 * baseline. (test/support/server-process.ts does the same for the e2e tests, but it finds the CLI
 * relative to its own file, which is dist-bench/ once compiled for the benchmarks.)
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { benchScript, CLI, RESULTS_DIR } from './paths.js';
import { cpuNs, rssBytes, SERVER_CPU, spawnNode } from './proc.js';

export interface MemoryUsage {
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

/** The server's event loop and GC during a window (lib/memory-probe.ts, SIGWINCH). */
export interface LoopStats {
  readonly delayP50Ms: number;
  readonly delayP99Ms: number;
  readonly delayMaxMs: number;
  readonly gcCount: number;
  readonly gcTotalMs: number;
  readonly gcMaxMs: number;
}

export interface ServerUnderTest {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  /** After a full garbage collection in the server (Tributary only). */
  memory(): Promise<MemoryUsage>;
  /** What the probe reported at its last SIGWINCH (the generator sends one at a window's end). */
  loopStats(): LoopStats | undefined;
  rss(): number;
  cpuNs(): number;
  output(): string;
  /** SIGTERM, then SIGKILL if it has not exited after 15 s. */
  stop(): Promise<void>;
}

function launch(
  child: ChildProcess,
  readyLine: (line: string) => string | undefined,
  label: string,
): Promise<ServerUnderTest> {
  let output = '';
  const memoryWaiters: ((usage: MemoryUsage) => void)[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let pendingErr = '';
  let loop: LoopStats | undefined;
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
    pendingErr += chunk.toString('utf8');
    let newline: number;
    while ((newline = pendingErr.indexOf('\n')) >= 0) {
      const line = pendingErr.slice(0, newline);
      pendingErr = pendingErr.slice(newline + 1);
      if (line.startsWith('{"benchLoop"')) {
        loop = (JSON.parse(line) as { benchLoop: LoopStats }).benchLoop;
        continue;
      }
      if (!line.startsWith('{"benchMemory"')) continue;
      const usage = (JSON.parse(line) as { benchMemory: MemoryUsage }).benchMemory;
      memoryWaiters.shift()?.(usage);
    }
  });
  return new Promise<ServerUnderTest>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${label} did not get ready in 60 s:\n${output}`));
    }, 60_000);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${label} exited before it was ready:\n${output}`));
    });
    let pendingOut = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      pendingOut += chunk.toString('utf8');
      let newline: number;
      while ((newline = pendingOut.indexOf('\n')) >= 0) {
        const line = pendingOut.slice(0, newline);
        pendingOut = pendingOut.slice(newline + 1);
        const url = readyLine(line);
        if (url === undefined) continue;
        clearTimeout(timer);
        const { hostname, port } = new URL(url);
        const pid = child.pid!;
        resolve({
          url,
          host: hostname,
          port: Number(port),
          pid,
          memory: () =>
            new Promise<MemoryUsage>((done, fail) => {
              const t = setTimeout(() => fail(new Error(`${label} did not report memory`)), 30_000);
              memoryWaiters.push((usage) => {
                clearTimeout(t);
                done(usage);
              });
              child.kill('SIGUSR2');
            }),
          loopStats: () => loop,
          rss: () => rssBytes(pid),
          cpuNs: () => cpuNs(pid),
          output: () => output,
          stop: async () => {
            if (child.exitCode !== null || child.signalCode !== null) return;
            const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
            child.kill('SIGTERM');
            await exited;
            clearTimeout(kill);
          },
        });
      }
    });
  });
}

export interface TributaryOptions {
  readonly backend: string;
  readonly dataDir: string;
  readonly args?: readonly string[];
  /** Writes a V8 CPU profile of the server into this directory when it stops. */
  readonly cpuProfDir?: string;
}

/** Starts `tributary serve` on the server core with the memory probe preloaded. */
export function startTributary(options: TributaryOptions): Promise<ServerUnderTest> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first`);
  const profile =
    options.cpuProfDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', options.cpuProfDir];
  if (options.cpuProfDir !== undefined) mkdirSync(options.cpuProfDir, { recursive: true });
  // BENCH_SERVER_NODE_ARGS: extra node flags for the server, for diagnosis (e.g. --trace-gc).
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const child = spawnNode(SERVER_CPU, [
    ...nodeArgs,
    '--expose-gc',
    '--import',
    pathToFileURL(benchScript('lib/memory-probe.js')).href,
    ...profile,
    CLI,
    'serve',
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--backend',
    options.backend,
    '--data-dir',
    options.dataDir,
    // Stops between measurements should not wait 30 s for deliveries to a gone subscriber.
    '--shutdown-timeout',
    '2s',
    ...(options.args ?? []),
  ]);
  return launch(
    child,
    (line) =>
      line.includes('"tributary ready"') ? (JSON.parse(line) as { url: string }).url : undefined,
    'tributary',
  );
}

/** Starts the bare fastify route (lib/bare-fastify.js) on the server core. */
export function startBareFastify(): Promise<ServerUnderTest> {
  const child = spawnNode(SERVER_CPU, [benchScript('lib/bare-fastify.js')]);
  return launch(
    child,
    (line) =>
      line.startsWith('{"bareReady"')
        ? (JSON.parse(line) as { bareReady: string }).bareReady
        : undefined,
    'bare fastify',
  );
}

/**
 * A new empty directory for a server's data, under benchmarks/results/ (not the system's temporary
 * directory, which may be a tmpfs where an fsync costs nothing): the same disk as the default
 * ./data.
 */
export function freshDataDir(): string {
  const parent = path.join(RESULTS_DIR, 'data');
  mkdirSync(parent, { recursive: true });
  return mkdtempSync(path.join(parent, 'run-'));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
