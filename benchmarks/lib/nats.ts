/**
 * The NATS side of the benchmarks: the server they use (NATS_URL, default nats://127.0.0.1:4222,
 * a nats-server with JetStream), a fresh prefix for every Tributary server and raw baseline, and
 * the removal of what one left behind. Every stream and KV bucket a `tributary serve --nats-prefix
 * <prefix>` creates has the prefix in its name (`<prefix>_E_default_default`, `<prefix>_RETRY`,
 * `<prefix>_DEAD`, and the buckets' streams `KV_<prefix>-resources`, `KV_<prefix>-notes`, ...), so
 * deleting the streams whose name holds it removes all of it, consumers included.
 * (test/support/nats.ts does the same for the tests; importing it would compile the tests'
 * harness into dist-bench.)
 */
import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';

export const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

/**
 * A prefix no other server of this run (or of another run) uses: `bench-` and 12 hex digits, well
 * within the backend's 32 characters of letters, digits, `-` and `_`.
 */
export function freshPrefix(): string {
  return `bench-${randomBytes(6).toString('hex')}`;
}

export function connectNats(url = NATS_URL, name = 'tributary-bench'): Promise<NatsConnection> {
  return connect({ servers: url, timeout: 2_000, maxReconnectAttempts: 0, name });
}

/** Why NATS with JetStream cannot be used at `url`, or undefined when it can. */
export async function natsProblem(url = NATS_URL): Promise<string | undefined> {
  let nc: NatsConnection | undefined;
  try {
    nc = await connectNats(url);
  } catch (error) {
    return `no NATS server answers at ${url} (${(error as Error).message})`;
  }
  try {
    const jsm = await jetstreamManager(nc, { timeout: 2_000 });
    await jsm.getAccountInfo();
    return undefined;
  } catch (error) {
    return `the NATS server at ${url} has no JetStream (${(error as Error).message})`;
  } finally {
    await nc.close().catch(() => {});
  }
}

/** Deletes every stream (KV buckets included) whose name holds `prefix`; their names. */
export async function removeStreams(prefix: string, url = NATS_URL): Promise<string[]> {
  const nc = await connectNats(url);
  try {
    // Deleting a stream with thousands of consumers takes the server a while.
    const jsm = await jetstreamManager(nc, { timeout: 60_000 });
    const names: string[] = [];
    for await (const name of jsm.streams.names()) {
      if (name.includes(prefix)) names.push(name);
    }
    for (const name of names) await jsm.streams.delete(name);
    return names;
  } finally {
    await nc.close();
  }
}

/** What a prefix holds in NATS: its streams' consumers and the pull requests waiting on them. */
export interface NatsUsage {
  readonly streams: number;
  readonly consumers: number;
  /** Pull requests open on the server, waiting for messages (`num_waiting`, all consumers). */
  readonly pullRequestsWaiting: number;
  /** Messages handed out and not acknowledged yet (`num_ack_pending`, all consumers). */
  readonly ackPending: number;
  /** Messages not yet handed out (`num_pending`, all consumers). */
  readonly pending: number;
}

export async function natsUsage(prefix: string, url = NATS_URL): Promise<NatsUsage> {
  const nc = await connectNats(url);
  try {
    const jsm = await jetstreamManager(nc, { timeout: 30_000 });
    let streams = 0;
    let consumers = 0;
    let pullRequestsWaiting = 0;
    let ackPending = 0;
    let pending = 0;
    for await (const name of jsm.streams.names()) {
      if (!name.includes(prefix)) continue;
      streams++;
      for await (const info of jsm.consumers.list(name)) {
        consumers++;
        pullRequestsWaiting += info.num_waiting;
        ackPending += info.num_ack_pending;
        pending += info.num_pending;
      }
    }
    return { streams, consumers, pullRequestsWaiting, ackPending, pending };
  } finally {
    await nc.close();
  }
}
