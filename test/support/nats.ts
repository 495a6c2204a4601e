/**
 * A conformance harness for the NATS backend, against the server at `NATS_URL` (default
 * nats://127.0.0.1:4222, a nats-server with JetStream). Each harness has a prefix of its own, so
 * its streams and buckets are apart from every other harness's and are removed by `cleanup()`.
 */
import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Backend } from '../../src/backends/contracts.js';
import { createNatsBackend, type NatsBackendOptions } from '../../src/backends/nats/index.js';
import type { BackendHarness } from '../conformance/harness.js';

export const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

export type NatsHarness = BackendHarness & {
  /** The prefix of every stream and bucket this harness's backends create. */
  readonly prefix: string;
  reopen(): Promise<Backend>;
};

/** A prefix no other harness uses (letters, digits and `-`, as createNatsBackend accepts). */
export function uniquePrefix(): string {
  return `t-${randomBytes(6).toString('hex')}`;
}

/** Letters and digits only, lower case: how the prefix is looked for in stream names. */
function squeeze(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '');
}

async function connectQuietly(url: string): Promise<NatsConnection> {
  return connect({ servers: url, timeout: 2_000, maxReconnectAttempts: 0, name: 'tributary-test' });
}

export function natsHarness(
  options: Omit<NatsBackendOptions, 'prefix' | 'url'> & { readonly url?: string } = {},
): NatsHarness {
  const prefix = uniquePrefix();
  const url = options.url ?? NATS_URL;
  const open = new Set<Backend>();

  async function start(): Promise<Backend> {
    const backend = await createNatsBackend({ ...options, url, prefix });
    open.add(backend);
    return backend;
  }

  return {
    prefix,
    open: start,
    // The data lives in the server: a new backend with the same prefix sees all of it.
    reopen: start,
    cleanup: async () => {
      for (const backend of open) await backend.close().catch(() => {});
      open.clear();
      await removeStreams(prefix, url);
    },
  };
}

/**
 * Deletes every stream whose name holds `prefix` (ignoring case and punctuation, as stream names
 * may upper-case the prefix or replace its `-`): the KV buckets (`KV_<bucket>`) and the event
 * streams alike.
 */
export async function removeStreams(prefix: string, url = NATS_URL): Promise<string[]> {
  const wanted = squeeze(prefix);
  const nc = await connectQuietly(url);
  try {
    const jsm = await jetstreamManager(nc);
    const names: string[] = [];
    for await (const name of jsm.streams.names()) {
      if (squeeze(name).includes(wanted)) names.push(name);
    }
    for (const name of names) await jsm.streams.delete(name);
    return names;
  } finally {
    await nc.close();
  }
}

/**
 * Deletes every consumer of the streams `removeStreams` would delete, as a server that forgot them
 * would (an ephemeral consumer idle past its inactivity threshold): for tests of recovery.
 */
export async function dropConsumers(prefix: string, url = NATS_URL): Promise<number> {
  const wanted = squeeze(prefix);
  const nc = await connectQuietly(url);
  try {
    const jsm = await jetstreamManager(nc);
    let dropped = 0;
    for await (const stream of jsm.streams.names()) {
      if (!squeeze(stream).includes(wanted)) continue;
      for await (const consumer of jsm.consumers.list(stream)) {
        await jsm.consumers.delete(stream, consumer.name);
        dropped++;
      }
    }
    return dropped;
  } finally {
    await nc.close();
  }
}

/** True when a NATS server with JetStream answers at `url`. */
export async function natsAvailable(url = NATS_URL): Promise<boolean> {
  let nc: NatsConnection | undefined;
  try {
    nc = await connectQuietly(url);
    const jsm = await jetstreamManager(nc);
    await jsm.getAccountInfo();
    return true;
  } catch {
    return false;
  } finally {
    await nc?.close().catch(() => {});
  }
}

/**
 * For a test file that needs NATS: true when it is reachable. When it is not, the run fails under
 * `CI=true` (this throws), and otherwise the caller skips its tests (this says so on the console).
 */
export async function natsRequired(what: string, url = NATS_URL): Promise<boolean> {
  if (await natsAvailable(url)) return true;
  const how = 'start one with `nats-server -js` or set NATS_URL';
  if (process.env.CI === 'true') {
    throw new Error(`${what}: no NATS with JetStream answers at ${url} (CI=true): ${how}`);
  }
  console.warn(`Skipping ${what}: no NATS with JetStream at ${url} (${how}).`);
  return false;
}
