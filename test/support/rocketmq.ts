/**
 * RocketMQ 5 for tests.
 *
 * The cluster: `ROCKETMQ_ENDPOINTS` (the proxy's gRPC endpoint, `host:port`, several separated by
 * `;`) when set, else the local RocketMQ of `npm run services:up` (127.0.0.1:8081), started by the
 * same machinery (scripts/rocketmq.ts) when it does not run yet. Topics and consumer groups are
 * created through the name server (`ROCKETMQ_NAMESRV_ADDR`, default: the local one, or port 9876 on
 * the host of ROCKETMQ_ENDPOINTS), because the 5.x proxy creates neither on demand. There is no
 * Docker fallback: point ROCKETMQ_ENDPOINTS and ROCKETMQ_NAMESRV_ADDR at an existing cluster instead.
 *
 * A test file that needs it awaits `rocketmqRequired(what)`: without RocketMQ the run fails under
 * CI=true and the file is skipped otherwise. Tests keep apart with `uniqueRocketmqName(prefix)`,
 * create what they use with `createTopic` / `createConsumerGroup`, and remove it with
 * `deleteTopics` / `deleteConsumerGroups` (or the `...ByPrefix` variants) and `closeRocketmqClients`.
 *
 * rocketmq-client-nodejs notes: import the classes by name (`import { Producer, SimpleConsumer }
 * from 'rocketmq-client-nodejs'`); pass `namespace: ''` and `logger: silentLogger` (else each client
 * writes ~/logs/rocketmq/rocketmq_client_nodejs.log); a SimpleConsumer of a group that does not
 * exist never finishes `startup()` (use `startSimpleConsumer`, which creates the group and bounds
 * the start).
 *
 * A private cluster: `startPrivateRocketmq(options)` starts a name server and a proxy with its broker
 * of the test's own (own ports, own temporary state directory), optionally with authentication and
 * authorization (ACL 2.0) at the proxy; a test file that uses one awaits
 * `privateRocketmqRequired(what)` first.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  Producer,
  SimpleConsumer,
  type FilterExpression,
  type MessageOptions,
  type SendReceipt,
} from 'rocketmq-client-nodejs';
import { checkJava, isAlive } from '../../scripts/kafka.js';
import { once, reasonOf, unavailable } from './required.js';
import {
  createConsumerGroup as createGroupOn,
  createRocketmqUser,
  createTopic as createTopicOn,
  deleteConsumerGroup,
  deleteTopic,
  listConsumerGroups,
  listTopics,
  localRocketmq,
  localRocketmqUp,
  resolveRocketmqJars,
  rocketmqDown,
  rocketmqLayout,
  rocketmqUp,
  silentLogger,
  waitForRocketmq,
  type ConsumerGroupOptions,
  type RocketmqAuth,
  type RocketmqUserType,
  type TopicOptions,
} from '../../scripts/rocketmq.js';

export {
  silentLogger,
  type ConsumerGroupOptions,
  type RocketmqAuth,
  type RocketmqUserType,
  type TopicOptions,
};

const existingEndpoints = process.env.ROCKETMQ_ENDPOINTS?.trim() ?? '';

/** Whether the tests use a cluster named by ROCKETMQ_ENDPOINTS (rather than the local one). */
export const usesExistingCluster = existingEndpoints !== '';

/** The proxy's gRPC endpoint(s): ROCKETMQ_ENDPOINTS, else the local one (127.0.0.1:8081). */
export const ROCKETMQ_ENDPOINTS: string = usesExistingCluster
  ? existingEndpoints
  : localRocketmq().endpoints;

function defaultNamesrv(): string {
  if (!usesExistingCluster) return localRocketmq().namesrvAddr;
  const first = existingEndpoints.split(';')[0]?.trim() ?? '';
  const colon = first.lastIndexOf(':');
  return `${colon > 0 ? first.slice(0, colon) : first}:9876`;
}

/** The name server(s) for administration: ROCKETMQ_NAMESRV_ADDR, else see the file comment. */
export const ROCKETMQ_NAMESRV_ADDR: string =
  process.env.ROCKETMQ_NAMESRV_ADDR?.trim() || defaultNamesrv();

/**
 * Resolves once the cluster takes a message through its gRPC endpoint: ROCKETMQ_ENDPOINTS' cluster,
 * or the local one, started when it does not run (the first start resolves jars from Maven Central).
 */
export const ensureRocketmq = once(async (): Promise<void> => {
  if (usesExistingCluster) {
    await waitForRocketmq(
      { endpoints: ROCKETMQ_ENDPOINTS, namesrvAddr: ROCKETMQ_NAMESRV_ADDR },
      { timeoutMs: 15_000 },
    );
    return;
  }
  const result = await localRocketmqUp({ log: (line) => console.log(`rocketmq: ${line}`) });
  if (result.started) {
    console.log(
      `rocketmq: started the local RocketMQ ${result.local.version} at ${result.local.endpoints}; ` +
        'it keeps running after the tests (npm run services:down stops it)',
    );
  }
});

/**
 * For a test file that needs RocketMQ: true once it takes messages. When it cannot (no Java or
 * Maven for the local cluster, ROCKETMQ_ENDPOINTS unreachable), the run fails under CI=true (this
 * throws: never a silent skip) and otherwise the caller skips its tests (this says so).
 */
export async function rocketmqRequired(what: string): Promise<boolean> {
  try {
    await ensureRocketmq();
    return true;
  } catch (error) {
    const how = usesExistingCluster
      ? `no RocketMQ takes messages at ROCKETMQ_ENDPOINTS=${existingEndpoints} ` +
        `(name server ${ROCKETMQ_NAMESRV_ADDR})`
      : 'the local RocketMQ (npm run services:up; needs Java 17+ and Maven) is not available; ' +
        'or set ROCKETMQ_ENDPOINTS (and ROCKETMQ_NAMESRV_ADDR) to a cluster';
    return unavailable(what, `${how}: ${reasonOf(error)}`);
  }
}

/**
 * A topic or group name no other test uses: `<prefix>-` and 12 hex digits (RocketMQ allows
 * letters, digits, `-`, `_`, `%` and `|`).
 */
export function uniqueRocketmqName(prefix = 't'): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

/** Creates (or updates) `topic`: NORMAL with one queue unless told otherwise. Idempotent. */
export function createTopic(topic: string, options: TopicOptions = {}): Promise<void> {
  return createTopicOn(ROCKETMQ_NAMESRV_ADDR, topic, options);
}

/** Creates (or updates) the consumer group `group` (`fifo: true` for ordered delivery). */
export function createConsumerGroup(
  group: string,
  options: ConsumerGroupOptions = {},
): Promise<void> {
  return createGroupOn(ROCKETMQ_NAMESRV_ADDR, group, options);
}

/** Deletes these topics (missing ones are fine). */
export async function deleteTopics(topics: Iterable<string>): Promise<void> {
  for (const topic of topics) await deleteTopic(ROCKETMQ_NAMESRV_ADDR, topic);
}

/** Deletes these consumer groups and their offsets (missing ones are fine). */
export async function deleteConsumerGroups(groups: Iterable<string>): Promise<void> {
  for (const group of groups) await deleteConsumerGroup(ROCKETMQ_NAMESRV_ADDR, group);
}

/**
 * Deletes every topic whose name starts with `prefix`, and the retry and dead-letter topics
 * (`%RETRY%<group>_<topic>`, `%DLQ%<group>`) of groups whose name starts with it; returns their
 * names.
 */
export async function deleteTopicsByPrefix(prefix: string): Promise<string[]> {
  const starts = [prefix, `%RETRY%${prefix}`, `%DLQ%${prefix}`];
  const topics = (await listTopics(ROCKETMQ_NAMESRV_ADDR)).filter((t) =>
    starts.some((start) => t.startsWith(start)),
  );
  await deleteTopics(topics);
  return topics;
}

/** Deletes every consumer group whose name starts with `prefix`; returns their names. */
export async function deleteConsumerGroupsByPrefix(prefix: string): Promise<string[]> {
  const groups = (await listConsumerGroups(ROCKETMQ_NAMESRV_ADDR)).filter((g) =>
    g.startsWith(prefix),
  );
  await deleteConsumerGroups(groups);
  return groups;
}

/** `promise`, or a rejection after `ms` (the client's `startup()` can wait forever). */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

let sharedProducer: Promise<Producer> | undefined;

/** The tests' shared producer (started on first use; `closeRocketmqClients` stops it). */
export function rocketmqProducer(): Promise<Producer> {
  sharedProducer ??= (async () => {
    const producer = new Producer({
      endpoints: ROCKETMQ_ENDPOINTS,
      namespace: '',
      logger: silentLogger,
    });
    await within(producer.startup(), 15_000, 'the producer start');
    return producer;
  })();
  sharedProducer.catch(() => (sharedProducer = undefined));
  return sharedProducer;
}

/** A message to produce: the client's options without the topic, a string body allowed. */
export interface TestMessage extends Omit<MessageOptions, 'topic' | 'body' | 'properties'> {
  readonly body: string | Buffer;
  /** User properties (a Map, as the client wants, or a plain object). */
  readonly properties?: Map<string, string> | Readonly<Record<string, string>>;
}

/** Sends `messages` to `topic` one after the other with the shared producer; returns the receipts. */
export async function produce(
  topic: string,
  messages: readonly TestMessage[],
): Promise<SendReceipt[]> {
  const producer = await rocketmqProducer();
  const receipts: SendReceipt[] = [];
  for (const message of messages) receipts.push(await producer.send(toMessage(topic, message)));
  return receipts;
}

/** The client's message options of a test message. */
function toMessage(topic: string, message: TestMessage): MessageOptions {
  const { body, properties, ...rest } = message;
  return {
    ...rest,
    topic,
    body: typeof body === 'string' ? Buffer.from(body, 'utf8') : body,
    ...(properties === undefined
      ? {}
      : {
          properties: properties instanceof Map ? properties : new Map(Object.entries(properties)),
        }),
  };
}

const consumers = new Set<SimpleConsumer>();

export interface SimpleConsumerSetup {
  readonly group: string;
  /** Topic to filter expression (a tag expression such as `*` or `a||b`, or a FilterExpression). */
  readonly subscriptions: ReadonlyMap<string, string | FilterExpression>;
  /**
   * Long-polling wait of `receive`, default 5 s. The client's gRPC deadline is this plus its
   * requestTimeout (3 s), and the proxy refuses (BadRequestException 40000, "deadline time remaining
   * is not enough for polling") a receive whose deadline is below its minimum long-poll of 5 s, so
   * 2 s fails; an empty receive takes 5 s whatever this is.
   */
  readonly awaitDuration?: number;
  /** Create the group first (default true) and with which options. */
  readonly createGroup?: boolean | ConsumerGroupOptions;
  readonly startTimeoutMs?: number;
}

/**
 * Creates the consumer group (unless told not to) and starts a SimpleConsumer of it, failing after
 * `startTimeoutMs` (15 s) rather than hanging. `closeRocketmqClients` shuts it down.
 */
export async function startSimpleConsumer(setup: SimpleConsumerSetup): Promise<SimpleConsumer> {
  if (setup.createGroup !== false) {
    await createConsumerGroup(
      setup.group,
      typeof setup.createGroup === 'object' ? setup.createGroup : {},
    );
  }
  const consumer = new SimpleConsumer({
    endpoints: ROCKETMQ_ENDPOINTS,
    namespace: '',
    logger: silentLogger,
    consumerGroup: setup.group,
    subscriptions: new Map(setup.subscriptions),
    awaitDuration: setup.awaitDuration ?? 5_000,
  });
  consumers.add(consumer);
  try {
    await within(consumer.startup(), setup.startTimeoutMs ?? 15_000, 'the SimpleConsumer start');
  } catch (error) {
    consumers.delete(consumer);
    await within(consumer.shutdown(), 5_000, 'the SimpleConsumer shutdown').catch(() => {});
    throw error;
  }
  return consumer;
}

/** Shuts down the shared producer and the consumers of `startSimpleConsumer`. */
export async function closeRocketmqClients(): Promise<void> {
  const closing: Promise<unknown>[] = [...consumers].map((consumer) =>
    within(consumer.shutdown(), 10_000, 'a SimpleConsumer shutdown').catch(() => {}),
  );
  consumers.clear();
  const producer = sharedProducer;
  sharedProducer = undefined;
  if (producer !== undefined) {
    closing.push(
      producer.then((p) => within(p.shutdown(), 10_000, 'the producer shutdown')).catch(() => {}),
    );
  }
  await Promise.all(closing);
}

// ---------------------------------------------------------------------------------------------
// Private clusters.

/** The jars' directory once resolved (private clusters run from it). */
const rocketmqRuntime = once(async (): Promise<string> => {
  await checkJava('a private RocketMQ');
  return resolveRocketmqJars({ log: (line) => console.log(`rocketmq: ${line}`) });
});

/**
 * For a test file that starts private clusters: true when Java 17+ and the RocketMQ jars (resolved
 * with Maven on first use) are there; otherwise the run fails under CI=true (this throws) and the
 * caller skips its tests (this says so), as `rocketmqRequired`.
 */
export async function privateRocketmqRequired(what: string): Promise<boolean> {
  try {
    await rocketmqRuntime();
    return true;
  } catch (error) {
    return unavailable(
      what,
      `a private RocketMQ cannot run here (needs Java 17+ and Maven): ${reasonOf(error)}`,
    );
  }
}

export interface PrivateRocketmqOptions {
  /**
   * Authentication at the proxy with this user, a super user made at the start (and, with
   * `authorization`, permission checks); the cluster's own clients (readiness probe, `produce`)
   * sign with it.
   */
  readonly auth?: RocketmqAuth;
  /** How long the start may take until a send succeeds (default 120 s). */
  readonly readyTimeoutMs?: number;
}

export interface PrivateRocketmq {
  /** The proxy's gRPC endpoint, `127.0.0.1:<port>`. */
  readonly endpoints: string;
  /** The name server, `127.0.0.1:<port>`. */
  readonly namesrvAddr: string;
  readonly auth: RocketmqAuth | undefined;
  /** The temporary state directory: configurations, store, logs (`logs/rocketmqlogs`). */
  readonly dir: string;
  /** Seconds from spawning the name server to the first successful send. */
  readonly startSeconds: number;
  createTopic(topic: string, options?: TopicOptions): Promise<void>;
  createConsumerGroup(group: string, options?: ConsumerGroupOptions): Promise<void>;
  /** Creates (or updates) a user of ACL 2.0; a `Normal` one may do nothing without an ACL. */
  createUser(username: string, password: string, type?: RocketmqUserType): Promise<void>;
  /** Sends `messages` to `topic` with a producer of this cluster (signed by `auth`'s user). */
  produce(topic: string, messages: readonly TestMessage[]): Promise<SendReceipt[]>;
  /** Whether both JVMs run. */
  running(): boolean;
  /** Stops the producer and both JVMs (SIGTERM, then SIGKILL) and removes the directory. */
  close(): Promise<void>;
}

const privatePids = new Set<number>();
const privateDirs = new Set<string>();
// A test process that ends without closing its clusters must not leave their JVMs (which are
// detached, as the shared cluster's) or their files behind.
process.once('exit', () => {
  for (const pid of privatePids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  for (const dir of privateDirs) rmSync(dir, { recursive: true, force: true });
});

function listenable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A run of `count` consecutive free ports on 127.0.0.1, starting at one the system hands out (the
 * broker listens on its port - 2 and + 1 besides the port itself).
 */
async function freePortRun(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const address = server.address();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (typeof address !== 'object' || address === null) continue;
    const first = address.port;
    if (first + count > 65_535) continue;
    let free = true;
    for (let port = first; port < first + count && free; port++) free = await listenable(port);
    if (free) return first;
  }
  throw new Error(`no ${count} consecutive free ports on 127.0.0.1`);
}

/**
 * Starts a private RocketMQ on 127.0.0.1 (six consecutive free ports, a fresh temporary state
 * directory, small heaps: 128 MiB for the name server, 384 MiB for the proxy and its broker);
 * resolves once a send through its proxy (signed by `auth`'s user) succeeds, ~10 s here.
 */
export async function startPrivateRocketmq(
  options: PrivateRocketmqOptions = {},
): Promise<PrivateRocketmq> {
  await rocketmqRuntime();
  const dir = mkdtempSync(path.join(tmpdir(), 'tributary-rocketmq-'));
  privateDirs.add(dir);
  const first = await freePortRun(6);
  const local = rocketmqLayout({
    grpcPort: first,
    proxyRemotingPort: first + 1,
    // first + 2: the broker's "fast" port (its port - 2).
    namesrvPort: first + 3,
    brokerPort: first + 4,
    // first + 5: the broker's HA port (its port + 1).
    stateDir: dir,
    auth: options.auth,
    heapMb: { namesrv: 128, proxy: 384 },
  });
  const up = await rocketmqUp(local, { timeoutMs: options.readyTimeoutMs ?? 120_000 }).catch(
    (error: unknown) => {
      privateDirs.delete(dir);
      rmSync(dir, { recursive: true, force: true });
      throw error;
    },
  );
  const pids = [up.pids.proxy, up.pids.namesrv];
  for (const pid of pids) privatePids.add(pid);

  let producer: Promise<Producer> | undefined;
  const startedProducer = (): Promise<Producer> => {
    producer ??= (async () => {
      const created = new Producer({
        endpoints: local.endpoints,
        namespace: '',
        logger: silentLogger,
        ...(local.auth === undefined
          ? {}
          : {
              sessionCredentials: {
                accessKey: local.auth.username,
                accessSecret: local.auth.password,
              },
            }),
      });
      await within(created.startup(), 15_000, 'the producer start');
      return created;
    })();
    producer.catch(() => (producer = undefined));
    return producer;
  };
  let closed = false;
  return {
    endpoints: local.endpoints,
    namesrvAddr: local.namesrvAddr,
    auth: local.auth,
    dir,
    startSeconds: up.startSeconds ?? 0,
    createTopic: (topic, topicOptions = {}) =>
      createTopicOn(local.namesrvAddr, topic, topicOptions),
    createConsumerGroup: (group, groupOptions = {}) =>
      createGroupOn(local.namesrvAddr, group, groupOptions),
    createUser: (username, password, type = 'Normal') =>
      createRocketmqUser(local.namesrvAddr, username, password, type),
    produce: async (topic, messages) => {
      const sender = await startedProducer();
      const receipts: SendReceipt[] = [];
      for (const message of messages) receipts.push(await sender.send(toMessage(topic, message)));
      return receipts;
    },
    running: () => pids.every((pid) => isAlive(pid)),
    close: async () => {
      if (closed) return;
      closed = true;
      const stopping = producer;
      producer = undefined;
      if (stopping !== undefined) {
        await stopping
          .then((p) => within(p.shutdown(), 10_000, 'the producer shutdown'))
          .catch(() => {});
      }
      await rocketmqDown(local, { timeoutMs: 15_000 });
      for (const pid of pids) privatePids.delete(pid);
      privateDirs.delete(dir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
