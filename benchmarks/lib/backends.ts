/**
 * Which backends a run measures. The harness takes a list (`--backends embedded,nats,kafka`, all
 * by default), runs those the CLI implements whose server is reachable, and records the others as
 * skipped with the reason.
 */
import net from 'node:net';
import { BACKENDS } from '../../src/config.js';

export const ALL_BACKENDS = ['embedded', 'nats', 'kafka'] as const;

/** Where each backend is planned, for backends the CLI does not offer yet. */
const PLANNED: Readonly<Record<string, string>> = { nats: 'issue 6', kafka: 'issue 7' };

/** The server a backend needs, checked before a run (none for embedded). */
const SERVICES: Readonly<Record<string, { host: string; port: number }>> = {
  nats: { host: '127.0.0.1', port: 4222 },
  kafka: { host: '127.0.0.1', port: 9092 },
};

/**
 * Extra `tributary serve` flags per backend (the broker's address, say), to fill in as each
 * backend lands.
 */
export const SERVER_ARGS: Readonly<Record<string, readonly string[]>> = {};

/**
 * The raw backend client each backend's ingress and end-to-end results are a ratio of: the same
 * durability without Tributary. The NATS and Kafka ones are written with those backends.
 */
export const RAW_BASELINES: Readonly<
  Record<string, { readonly description: string; readonly implemented: boolean }>
> = {
  embedded: {
    description: 'SQLite insert with the backend schema and pragmas (lib/sqlite-baseline.ts)',
    implemented: true,
  },
  nats: { description: 'JetStream publish with acks, and a pull consumer', implemented: false },
  kafka: { description: 'kafkajs send with acks=all, and a consumer', implemented: false },
};

/**
 * Whether a fresh copy of a prepared data directory gives a server with the same state, so that
 * fixtures (10,000 triggers) are created once and every measurement starts a fresh server on a
 * copy. True for the embedded backend, whose whole state is its data directory.
 */
export function copiesDataDir(backend: string): boolean {
  return backend === 'embedded';
}

export type Availability =
  { readonly run: true } | { readonly run: false; readonly reason: string };

function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export async function availability(backend: string): Promise<Availability> {
  if (!(BACKENDS as readonly string[]).includes(backend)) {
    const planned = PLANNED[backend];
    return {
      run: false,
      reason:
        planned === undefined
          ? `unknown backend (the CLI offers ${BACKENDS.join(', ')})`
          : `backend not implemented yet (${planned})`,
    };
  }
  const service = SERVICES[backend];
  if (service !== undefined && !(await reachable(service.host, service.port))) {
    return {
      run: false,
      reason: `no ${backend} server reachable at ${service.host}:${service.port}`,
    };
  }
  return { run: true };
}

/** Parses `--backends a,b` (or `--backends=a,b`); all known backends by default. */
export function requestedBackends(argv: readonly string[]): string[] {
  const at = argv.findIndex((a) => a === '--backends' || a.startsWith('--backends='));
  if (at < 0) return [...ALL_BACKENDS];
  const value = argv[at]!.includes('=') ? argv[at]!.split('=')[1]! : (argv[at + 1] ?? '');
  return value
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b !== '');
}
