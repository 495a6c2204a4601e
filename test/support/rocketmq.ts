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
 */
import { randomBytes } from 'node:crypto';
import {
  Producer,
  SimpleConsumer,
  type FilterExpression,
  type MessageOptions,
  type SendReceipt,
} from 'rocketmq-client-nodejs';
import {
  createConsumerGroup as createGroupOn,
  createTopic as createTopicOn,
  deleteConsumerGroup,
  deleteTopic,
  listConsumerGroups,
  listTopics,
  localRocketmq,
  localRocketmqUp,
  silentLogger,
  waitForRocketmq,
  type ConsumerGroupOptions,
  type TopicOptions,
} from '../../scripts/rocketmq.js';

export { silentLogger, type ConsumerGroupOptions, type TopicOptions };

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

let ensured: Promise<void> | undefined;

/**
 * Resolves once the cluster takes a message through its gRPC endpoint: ROCKETMQ_ENDPOINTS' cluster,
 * or the local one, started when it does not run (the first start resolves jars from Maven Central).
 */
export function ensureRocketmq(): Promise<void> {
  ensured ??= (async () => {
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
  })();
  ensured.catch(() => (ensured = undefined));
  return ensured;
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

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
    const problem = `${how}: ${reasonOf(error)}`;
    if (process.env.CI === 'true') throw new Error(`${what}: ${problem} (CI=true)`);
    console.warn(`Skipping ${what}: ${problem}`);
    return false;
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
  for (const message of messages) {
    const { body, properties, ...rest } = message;
    receipts.push(
      await producer.send({
        ...rest,
        topic,
        body: typeof body === 'string' ? Buffer.from(body, 'utf8') : body,
        ...(properties === undefined
          ? {}
          : {
              properties:
                properties instanceof Map ? properties : new Map(Object.entries(properties)),
            }),
      }),
    );
  }
  return receipts;
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
