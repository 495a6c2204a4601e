/**
 * A private nats-server of a test's own: its own port, store directory and optional config file,
 * JetStream on. It can be stopped and started again on the same port and store (outage tests).
 *
 * Tests that need one skip when the binary is missing, except under CI=true, where they fail:
 * use `describe.skipIf(skipWithoutNatsServer)` and let `startNatsServer` throw.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { manageProcess, type ManagedProcess, type Started } from './managed-process.js';

/** Where nats-server is looked for after NATS_SERVER_BIN and PATH. */
const USUAL_DIRS = ['/usr/sbin', '/usr/local/bin', '/usr/local/sbin', '/opt/homebrew/bin'];

/** The nats-server executable: NATS_SERVER_BIN, else the first on PATH or in the usual dirs. */
export function natsServerBinary(): string | undefined {
  const candidates =
    process.env.NATS_SERVER_BIN !== undefined && process.env.NATS_SERVER_BIN !== ''
      ? [process.env.NATS_SERVER_BIN]
      : [...(process.env.PATH ?? '').split(path.delimiter), ...USUAL_DIRS]
          .filter((dir) => dir !== '')
          .map((dir) => path.join(dir, 'nats-server'));
  return candidates.find((file) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** True when tests needing a nats-server should be skipped: none installed and not under CI. */
export const skipWithoutNatsServer = natsServerBinary() === undefined && process.env.CI !== 'true';

export interface NatsServerOptions {
  /** Text of a nats-server config file, passed with `-c` (flags below still apply). */
  readonly config?: string;
  /** A fixed port; by default a free one. */
  readonly port?: number;
  /** How long to wait for "Server is ready" (default 20 s). */
  readonly readyTimeoutMs?: number;
}

export interface NatsServer extends ManagedProcess {
  readonly port: number;
  /** `nats://127.0.0.1:<port>`. */
  readonly url: string;
  /** The server's own temporary directory: its config file, and the JetStream store under it. */
  readonly dir: string;
  readonly storeDir: string;
}

const running = new Set<ChildProcess>();
/** Temporary directories of servers not closed yet. */
const openDirs = new Set<string>();
// A test process that ends without closing its servers must not leave them (or their files) behind.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
  for (const dir of openDirs) rmSync(dir, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || address === null) throw new Error('no free port');
  return address.port;
}

class PortTaken extends Error {}

/** Spawns nats-server and resolves once it logs "Server is ready". */
function spawnServer(binary: string, args: string[], timeoutMs: number): Promise<Started> {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let output = '';
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      running.delete(child);
      resolve();
    }),
  );
  return new Promise<Started>((resolve, reject) => {
    let settled = false;
    const settle = (error?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error === undefined) resolve({ child, exited, output: () => output });
      else reject(error);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      settle(new Error(`nats-server was not ready in ${timeoutMs} ms; output:\n${output}`));
    }, timeoutMs);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      if (output.includes('Server is ready')) settle();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', (error) => settle(new Error(`cannot run ${binary}: ${error.message}`)));
    void exited.then(() => {
      const message = `nats-server ${args.join(' ')} exited before it was ready; output:\n${output}`;
      settle(
        output.includes('address already in use') ? new PortTaken(message) : new Error(message),
      );
    });
  });
}

/** Starts a private nats-server with JetStream on 127.0.0.1; resolves when it accepts clients. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const binary = natsServerBinary();
  if (binary === undefined) {
    throw new Error(
      'nats-server is not installed (looked on PATH and in /usr/sbin, /usr/local/bin; set ' +
        'NATS_SERVER_BIN to its path). Install NATS server 2.9 or newer.',
    );
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'tributary-nats-'));
  openDirs.add(dir);
  const storeDir = path.join(dir, 'store');
  const configFile = path.join(dir, 'nats-server.conf');
  if (options.config !== undefined) writeFileSync(configFile, options.config, 'utf8');
  const timeoutMs = options.readyTimeoutMs ?? 20_000;
  const argsFor = (port: number): string[] => [
    ...(options.config === undefined ? [] : ['-c', configFile]),
    '-a',
    '127.0.0.1',
    '-p',
    String(port),
    '-js',
    '-sd',
    storeDir,
  ];

  let port = options.port ?? (await freePort());
  let current: Started | undefined;
  try {
    // A port found free can be taken before the server binds it: try another one a few times.
    for (let attempt = 1; current === undefined; attempt++) {
      try {
        current = await spawnServer(binary, argsFor(port), timeoutMs);
      } catch (error) {
        if (!(error instanceof PortTaken) || options.port !== undefined || attempt >= 5)
          throw error;
        port = await freePort();
      }
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    openDirs.delete(dir);
    throw error;
  }

  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    dir,
    storeDir,
    ...manageProcess(current, {
      what: 'nats-server',
      launch: () => spawnServer(binary, argsFor(port), timeoutMs),
      remove: () => {
        rmSync(dir, { recursive: true, force: true });
        openDirs.delete(dir);
      },
    }),
  };
}
