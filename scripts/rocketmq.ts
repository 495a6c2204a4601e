/**
 * Apache RocketMQ 5 without Docker, for development and tests: the name server's and the proxy's
 * jars resolved once from Maven Central into the cache directory of scripts/kafka.ts, a name server
 * and one JVM with a broker and the gRPC proxy in "local" mode, all on loopback with small heaps,
 * and readiness through a real send over gRPC (rocketmq-client-nodejs).
 *
 * The 5.x proxy creates neither topics nor consumer groups on demand (a send to an unknown topic
 * fails with NotFoundException; a SimpleConsumer of an unknown group never finishes `startup()`),
 * so this module also speaks just enough of RocketMQ's remoting protocol (length-prefixed JSON
 * frames over TCP) to create and delete topics and groups on the brokers a name server knows.
 *
 * `scripts/services.ts` (`npm run services:up` / `services:down`) runs the shared local RocketMQ
 * with it; `test/support/rocketmq.ts` builds the tests' helpers on it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statfsSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { connect as connectTcp } from 'node:net';
import path from 'node:path';
import { Producer } from 'rocketmq-client-nodejs';
import {
  cacheDir,
  checkJava,
  commandLine,
  env,
  isAlive,
  javaBinary,
  lastLines,
  logTail,
  portFromEnv,
  portInUse,
  resolveMavenJars,
  ServiceSetupError,
  sleep,
  waitForExit,
  withFileLock,
  type Log,
} from './kafka.js';

/**
 * The RocketMQ version. 5.5.0 is the newest whose rocketmq-proxy and rocketmq-namesrv are on Maven
 * Central: 5.5.1 is published there for some modules only (rocketmq-broker, tiered store), not for
 * the proxy, the name server or the tools.
 */
export const DEFAULT_ROCKETMQ_VERSION = '5.5.0';
/** The cluster name of the local broker (and RocketMQ's default). */
export const CLUSTER_NAME = 'DefaultCluster';
/** The topic the readiness probe sends to (created on first use). */
export const PROBE_TOPIC = 'tributary-probe';

/** A failure with a message meant for a person: what is missing and what to do. */
export class RocketmqSetupError extends ServiceSetupError {
  override readonly name: string = 'RocketmqSetupError';
}

const quiet: Log = () => {};

/** A logger for rocketmq-client-nodejs that drops everything (see `silentLogger`). */
export interface ClientLogger {
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
  debug(...args: unknown[]): void;
}

/**
 * rocketmq-client-nodejs logs through egg-logger into `~/logs/rocketmq/rocketmq_client_nodejs.log`
 * unless a client gets a `logger` option: pass this one to keep it quiet. (A client's `shutdown()`
 * calls its logger's `close()` when it has one; this one has none, so clients can share it.)
 */
export const silentLogger: ClientLogger = {
  info: () => {},
  warn: () => {},
  error: () => {},
  debug: () => {},
};

/** The RocketMQ version to run: TRIBUTARY_SERVICES_ROCKETMQ_VERSION, else the default. */
export function rocketmqVersion(): string {
  return env('TRIBUTARY_SERVICES_ROCKETMQ_VERSION') ?? DEFAULT_ROCKETMQ_VERSION;
}

/** Everything of one RocketMQ version: `lib/` (the jars) and the local cluster's state. */
export function rocketmqHome(version = rocketmqVersion()): string {
  return path.join(cacheDir(), `rocketmq-${version}`);
}

/**
 * The directory holding the jars of the name server and the proxy (which brings the broker, the
 * store and the client along), resolved from Maven Central on first use.
 */
export function resolveRocketmqJars(
  options: { readonly version?: string; readonly log?: Log } = {},
): Promise<string> {
  const version = options.version ?? rocketmqVersion();
  return resolveMavenJars({
    home: rocketmqHome(version),
    version,
    name: 'rocketmq-runtime',
    what: `the RocketMQ ${version} jars`,
    coordinates: [
      `org.apache.rocketmq:rocketmq-proxy:${version}`,
      `org.apache.rocketmq:rocketmq-namesrv:${version}`,
    ],
    requiredJar: `rocketmq-proxy-${version}.jar`,
    log: options.log,
  });
}

// ---------------------------------------------------------------------------------------------
// The remoting protocol, for administration.

/** RocketMQ remoting request codes used here (org.apache.rocketmq.remoting.protocol.RequestCode). */
const Code = {
  createTopic: 17,
  getRouteInfoByTopic: 105,
  getBrokerClusterInfo: 106,
  createSubscriptionGroup: 200,
  getAllSubscriptionGroupConfig: 201,
  getAllTopicListFromNameServer: 206,
  deleteSubscriptionGroup: 207,
  deleteTopicInBroker: 215,
  deleteTopicInNamesrv: 216,
  authCreateUser: 3001,
  authUpdateUser: 3002,
} as const;

/** Response code of a topic the name server does not know (ResponseCode.TOPIC_NOT_EXIST). */
const TOPIC_NOT_EXIST = 17;

export interface RemotingResponse {
  /** 0 is success. */
  readonly code: number;
  readonly remark: string | undefined;
  readonly body: Buffer;
}

let nextOpaque = 1;

function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port)) throw new Error(`not a host:port address: ${address}`);
  return { host: address.slice(0, colon), port };
}

/**
 * One remoting request on a connection of its own. A frame is a 4-byte length (of everything after
 * it), a 4-byte header length whose top byte is the serialization (0 = JSON), the JSON header (code,
 * opaque, string-valued `extFields`) and the body. Rejects on connection errors and at the timeout.
 */
export function remotingRequest(
  address: string,
  code: number,
  fields: Readonly<Record<string, string>> = {},
  body?: string,
  timeoutMs = 5_000,
): Promise<RemotingResponse> {
  const { host, port } = splitAddress(address);
  const header = Buffer.from(
    JSON.stringify({
      code,
      language: 'NODE_JS',
      version: 0,
      opaque: nextOpaque++,
      flag: 0,
      extFields: fields,
    }),
    'utf8',
  );
  const payload = Buffer.from(body ?? '', 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeInt32BE(4 + header.length + payload.length, 0);
  prefix.writeInt32BE(header.length, 4);
  return new Promise((resolve, reject) => {
    const socket = connectTcp({ host, port });
    let received = Buffer.alloc(0);
    let done = false;
    const finish = (error: Error | undefined, response?: RemotingResponse): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (error !== undefined) reject(error);
      else if (response !== undefined) resolve(response);
    };
    const timer = setTimeout(
      () => finish(new Error(`no answer from ${address} within ${timeoutMs} ms (code ${code})`)),
      timeoutMs,
    );
    socket.once('connect', () => socket.write(Buffer.concat([prefix, header, payload])));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 8) return;
      const length = received.readInt32BE(0);
      if (received.length < 4 + length) return;
      const mark = received.readInt32BE(4);
      const headerLength = mark & 0xffffff;
      if (mark >>> 24 !== 0) {
        finish(new Error(`${address} answered in a non-JSON serialization (${mark >>> 24})`));
        return;
      }
      try {
        const answer = JSON.parse(received.subarray(8, 8 + headerLength).toString('utf8')) as {
          code?: unknown;
          remark?: unknown;
        };
        finish(undefined, {
          code: typeof answer.code === 'number' ? answer.code : -1,
          remark: typeof answer.remark === 'string' ? answer.remark : undefined,
          body: received.subarray(8 + headerLength, 4 + length),
        });
      } catch (error) {
        finish(error as Error);
      }
    });
    socket.once('error', (error) => finish(error));
    socket.once('close', () =>
      finish(new Error(`${address} closed the connection (code ${code})`)),
    );
  });
}

/**
 * RocketMQ writes maps with numeric keys as `{0:"..."}` (not JSON): quotes such keys, then parses.
 * Only a key right after `{` or `,` is touched, which no value of these answers contains.
 */
function parseRocketmqJson(body: Buffer): unknown {
  return JSON.parse(body.toString('utf8').replace(/([{,])(-?\d+):/g, '$1"$2":'));
}

function failed(what: string, response: RemotingResponse): RocketmqSetupError {
  return new RocketmqSetupError(
    `${what}: code ${response.code}${response.remark === undefined ? '' : ` (${response.remark})`}`,
  );
}

/** A request to the first name server of `namesrvAddr` (`host:port;host:port`) that answers. */
async function namesrvRequest(
  namesrvAddr: string,
  code: number,
  fields: Readonly<Record<string, string>> = {},
  timeoutMs?: number,
): Promise<RemotingResponse> {
  let lastError: unknown;
  for (const address of namesrvAddr.split(';').filter((a) => a.trim() !== '')) {
    try {
      return await remotingRequest(address.trim(), code, fields, undefined, timeoutMs);
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(`no name server in "${namesrvAddr}"`);
}

/** The master brokers' addresses (`brokerId` 0) the name server knows, of `cluster` if given. */
export async function masterBrokers(namesrvAddr: string, cluster?: string): Promise<string[]> {
  const response = await namesrvRequest(namesrvAddr, Code.getBrokerClusterInfo);
  if (response.code !== 0) throw failed(`cluster info from ${namesrvAddr}`, response);
  const info = parseRocketmqJson(response.body) as {
    brokerAddrTable?: Record<string, { brokerAddrs?: Record<string, string>; cluster?: string }>;
  };
  const masters: string[] = [];
  for (const broker of Object.values(info.brokerAddrTable ?? {})) {
    if (cluster !== undefined && broker.cluster !== cluster) continue;
    const master = broker.brokerAddrs?.['0'];
    if (master !== undefined) masters.push(master);
  }
  return masters;
}

async function eachMaster(
  namesrvAddr: string,
  what: string,
  request: (broker: string) => Promise<RemotingResponse>,
): Promise<void> {
  const brokers = await masterBrokers(namesrvAddr);
  if (brokers.length === 0) {
    throw new RocketmqSetupError(`${what}: no broker is registered with ${namesrvAddr} yet`);
  }
  for (const broker of brokers) {
    const response = await request(broker);
    if (response.code !== 0) throw failed(`${what} on ${broker}`, response);
  }
}

/** Whether the name server has a route for `topic` (which the proxy needs to serve it). */
export async function topicRouteExists(namesrvAddr: string, topic: string): Promise<boolean> {
  const response = await namesrvRequest(namesrvAddr, Code.getRouteInfoByTopic, { topic });
  if (response.code === 0) return true;
  if (response.code === TOPIC_NOT_EXIST) return false;
  throw failed(`the route of ${topic} from ${namesrvAddr}`, response);
}

/** A topic's message type; the proxy only accepts messages of the topic's type. */
export type TopicType = 'NORMAL' | 'FIFO' | 'DELAY' | 'TRANSACTION';

export interface TopicOptions {
  /** NORMAL by default (a topic without the attribute counts as NORMAL). */
  readonly type?: TopicType;
  /** Read and write queues per broker; 1 by default. */
  readonly queues?: number;
  /** How long to wait for the name server to have the topic's route (default 10 s). */
  readonly timeoutMs?: number;
}

/**
 * Creates (or updates) `topic` on every master broker, then waits until the name server serves its
 * route, so that the proxy never caches "no such topic" for it. Idempotent; takes milliseconds.
 */
export async function createTopic(
  namesrvAddr: string,
  topic: string,
  options: TopicOptions = {},
): Promise<void> {
  const queues = String(options.queues ?? 1);
  const type = options.type ?? 'NORMAL';
  await eachMaster(namesrvAddr, `creating the topic ${topic}`, (broker) =>
    remotingRequest(broker, Code.createTopic, {
      topic,
      defaultTopic: 'TBW102',
      readQueueNums: queues,
      writeQueueNums: queues,
      perm: '6', // read and write
      topicFilterType: 'SINGLE_TAG',
      topicSysFlag: '0',
      order: 'false',
      attributes: `+message.type=${type}`,
    }),
  );
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  while (!(await topicRouteExists(namesrvAddr, topic))) {
    if (Date.now() > deadline) {
      throw new RocketmqSetupError(`the name server ${namesrvAddr} has no route for ${topic}`);
    }
    await sleep(50);
  }
}

export interface ConsumerGroupOptions {
  /** Deliver the messages of one message group in order (for FIFO topics). */
  readonly fifo?: boolean;
  /** Deliveries before a message goes to the group's dead-letter queue (default 16). */
  readonly maxDeliveryAttempts?: number;
}

/** Creates (or updates) the consumer group `group` on every master broker. Idempotent. */
export async function createConsumerGroup(
  namesrvAddr: string,
  group: string,
  options: ConsumerGroupOptions = {},
): Promise<void> {
  const config = JSON.stringify({
    groupName: group,
    consumeEnable: true,
    consumeFromMinEnable: true,
    consumeBroadcastEnable: true,
    consumeMessageOrderly: options.fifo === true,
    retryQueueNums: 1,
    retryMaxTimes: options.maxDeliveryAttempts ?? 16,
    brokerId: 0,
    whichBrokerWhenConsumeSlowly: 1,
    notifyConsumerIdsChangedEnable: true,
    groupSysFlag: 0,
    consumeTimeoutMinute: 15,
  });
  await eachMaster(namesrvAddr, `creating the consumer group ${group}`, (broker) =>
    remotingRequest(broker, Code.createSubscriptionGroup, {}, config),
  );
}

/** Deletes `topic` from every master broker and from the name server. */
export async function deleteTopic(namesrvAddr: string, topic: string): Promise<void> {
  await eachMaster(namesrvAddr, `deleting the topic ${topic}`, (broker) =>
    remotingRequest(broker, Code.deleteTopicInBroker, { topic }),
  );
  const response = await namesrvRequest(namesrvAddr, Code.deleteTopicInNamesrv, { topic });
  if (response.code !== 0) throw failed(`deleting the topic ${topic} on ${namesrvAddr}`, response);
}

/** Deletes the consumer group `group` (and its offsets) from every master broker. */
export async function deleteConsumerGroup(namesrvAddr: string, group: string): Promise<void> {
  await eachMaster(namesrvAddr, `deleting the consumer group ${group}`, (broker) =>
    remotingRequest(broker, Code.deleteSubscriptionGroup, {
      groupName: group,
      cleanOffset: 'true',
    }),
  );
}

/** The names of all topics the name server knows. */
export async function listTopics(namesrvAddr: string): Promise<string[]> {
  const response = await namesrvRequest(namesrvAddr, Code.getAllTopicListFromNameServer);
  if (response.code !== 0) throw failed(`the topic list of ${namesrvAddr}`, response);
  const list = parseRocketmqJson(response.body) as { topicList?: string[] };
  return list.topicList ?? [];
}

/** The names of all consumer groups of the master brokers. */
export async function listConsumerGroups(namesrvAddr: string): Promise<string[]> {
  const groups = new Set<string>();
  for (const broker of await masterBrokers(namesrvAddr)) {
    const response = await remotingRequest(broker, Code.getAllSubscriptionGroupConfig);
    if (response.code !== 0) throw failed(`the consumer groups of ${broker}`, response);
    const table = parseRocketmqJson(response.body) as {
      subscriptionGroupTable?: Record<string, unknown>;
    };
    for (const name of Object.keys(table.subscriptionGroupTable ?? {})) groups.add(name);
  }
  return [...groups];
}

/** A user of ACL 2.0: `Super` may do everything, `Normal` only what an ACL allows. */
export type RocketmqUserType = 'Super' | 'Normal';

/**
 * Creates (or, when it exists, updates) a user of RocketMQ's ACL 2.0 on every master broker, which
 * keeps the users (the proxy asks its broker). Needs the brokers' remoting port to take unsigned
 * requests, as the private clusters of `rocketmqLayout` with `auth` do (see `brokerConf`).
 */
export async function createRocketmqUser(
  namesrvAddr: string,
  username: string,
  password: string,
  userType: RocketmqUserType = 'Normal',
): Promise<void> {
  const body = JSON.stringify({ username, password, userType, userStatus: 'enable' });
  await eachMaster(namesrvAddr, `creating the user ${username}`, async (broker) => {
    const created = await remotingRequest(broker, Code.authCreateUser, { username }, body);
    // An existing user is an error of the create request: update it instead.
    return created.code === 0
      ? created
      : remotingRequest(broker, Code.authUpdateUser, { username }, body);
  });
}

// ---------------------------------------------------------------------------------------------
// Readiness.

export interface ProbeTarget {
  /** The proxy's gRPC endpoint(s), `127.0.0.1:8081`. */
  readonly endpoints: string;
  /** The name server(s), for creating the probe topic. */
  readonly namesrvAddr: string;
  /** The user to sign the probe's requests with, when the proxy checks credentials. */
  readonly auth?: RocketmqAuth | undefined;
}

/** `promise`, or a rejection after `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * One end-to-end check: the probe topic exists (created when not), and a producer sends a message
 * to it through the proxy's gRPC endpoint. Resolves with the message id.
 */
export async function probeRocketmq(target: ProbeTarget): Promise<string> {
  await createTopic(target.namesrvAddr, PROBE_TOPIC, { timeoutMs: 5_000 });
  const producer = new Producer({
    endpoints: target.endpoints,
    namespace: '',
    logger: silentLogger,
    requestTimeout: 3_000,
    maxAttempts: 1,
    ...(target.auth === undefined
      ? {}
      : {
          sessionCredentials: {
            accessKey: target.auth.username,
            accessSecret: target.auth.password,
          },
        }),
  });
  try {
    await within(producer.startup(), 5_000, 'the producer start');
    const receipt = await within(
      producer.send({ topic: PROBE_TOPIC, tag: 'probe', body: Buffer.from('probe') }),
      5_000,
      'the probe send',
    );
    return receipt.messageId;
  } finally {
    await within(producer.shutdown(), 5_000, 'the producer shutdown').catch(() => {});
  }
}

export interface WaitOptions {
  readonly timeoutMs: number;
  /** Why waiting is pointless (e.g. a process exited), or undefined while it is worth it. */
  readonly gone?: () => string | undefined;
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Polls `probeRocketmq` until it succeeds; rejects at the deadline or once `gone` says so. */
export async function waitForRocketmq(target: ProbeTarget, options: WaitOptions): Promise<string> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  for (;;) {
    const reason = options.gone?.();
    if (reason !== undefined) throw new RocketmqSetupError(reason);
    try {
      return await probeRocketmq(target);
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new RocketmqSetupError(
        `RocketMQ at ${target.endpoints} (name server ${target.namesrvAddr}) did not take a ` +
          `message within ${Math.round(options.timeoutMs / 1000)} s (last error: ${reasonOf(lastError)})`,
      );
    }
    await sleep(250);
  }
}

// ---------------------------------------------------------------------------------------------
// The shared local RocketMQ of `npm run services:up`, and private ones (tests).

/**
 * Authentication (RocketMQ 5.3+ "ACL 2.0") for a cluster of `rocketmqLayout`: the proxy's gRPC
 * endpoint takes only requests signed by a known user (`MQv2-HMAC-SHA1`, rocketmq-client-nodejs'
 * `sessionCredentials`); this user is made a super user at the first start.
 */
export interface RocketmqAuth {
  readonly username: string;
  readonly password: string;
  /**
   * Also check permissions (authorization): a `Normal` user (`createRocketmqUser`) then needs an ACL
   * for the topic and the group; a super user needs none.
   */
  readonly authorization?: boolean;
}

export interface LocalRocketmq {
  readonly version: string;
  /** The proxy's gRPC port (what clients use). */
  readonly grpcPort: number;
  /** The proxy's remoting port (for 4.x-style remoting clients; not used by the tests). */
  readonly proxyRemotingPort: number;
  readonly namesrvPort: number;
  /** The broker's remoting port; the broker also listens on it - 2 ("fast") and + 1 (HA). */
  readonly brokerPort: number;
  /** `127.0.0.1:<grpcPort>`. */
  readonly endpoints: string;
  /** `127.0.0.1:<namesrvPort>`. */
  readonly namesrvAddr: string;
  /** `<cache>/rocketmq-<version>/local-<grpcPort>`: configs, store, logs and pid files. */
  readonly stateDir: string;
  readonly storeDir: string;
  /** RocketMQ's own logs (`user.home` of both JVMs): `<stateDir>/logs/rocketmqlogs`. */
  readonly logsDir: string;
  readonly namesrv: LocalProcess;
  readonly proxy: LocalProcess;
  readonly brokerConfFile: string;
  readonly proxyConfFile: string;
  /** Authentication at the proxy, if any (the shared local cluster has none). */
  readonly auth: RocketmqAuth | undefined;
  /** The JVMs' maximum heaps, MiB. */
  readonly heapMb: { readonly namesrv: number; readonly proxy: number };
}

export interface LocalProcess {
  /** Its configuration file (and how its command line is recognised). */
  readonly confFile: string;
  /** The JVM's standard output and error. */
  readonly logFile: string;
  readonly pidFile: string;
  /** The main class. */
  readonly mainClass: string;
}

/** Where a cluster of `rocketmqLayout` listens (all on 127.0.0.1) and lives. */
export interface RocketmqLayoutSettings {
  readonly version?: string;
  readonly grpcPort: number;
  /** The gRPC port + 1 by default. */
  readonly proxyRemotingPort?: number;
  readonly namesrvPort: number;
  /** The broker also takes this port - 2 and + 1. */
  readonly brokerPort: number;
  readonly stateDir: string;
  readonly auth?: RocketmqAuth;
  /** The JVMs' maximum heaps, MiB (default 192 for the name server, 512 for the proxy). */
  readonly heapMb?: { readonly namesrv: number; readonly proxy: number };
}

/** The files, ports and settings of one cluster: a name server, and a proxy with its broker. */
export function rocketmqLayout(settings: RocketmqLayoutSettings): LocalRocketmq {
  const { grpcPort, namesrvPort, brokerPort, stateDir } = settings;
  const proc = (name: string, confFile: string, mainClass: string): LocalProcess => ({
    confFile: path.join(stateDir, confFile),
    logFile: path.join(stateDir, `${name}.out`),
    pidFile: path.join(stateDir, `${name}.pid`),
    mainClass,
  });
  return {
    version: settings.version ?? rocketmqVersion(),
    grpcPort,
    proxyRemotingPort: settings.proxyRemotingPort ?? grpcPort + 1,
    namesrvPort,
    brokerPort,
    endpoints: `127.0.0.1:${grpcPort}`,
    namesrvAddr: `127.0.0.1:${namesrvPort}`,
    stateDir,
    storeDir: path.join(stateDir, 'store'),
    logsDir: path.join(stateDir, 'logs', 'rocketmqlogs'),
    namesrv: proc('namesrv', 'namesrv.conf', 'org.apache.rocketmq.namesrv.NamesrvStartup'),
    proxy: proc('proxy', 'rmq-proxy.json', 'org.apache.rocketmq.proxy.ProxyStartup'),
    brokerConfFile: path.join(stateDir, 'broker.conf'),
    proxyConfFile: path.join(stateDir, 'rmq-proxy.json'),
    auth: settings.auth,
    heapMb: settings.heapMb ?? { namesrv: 192, proxy: 512 },
  };
}

/**
 * Where the local RocketMQ listens and lives, all on 127.0.0.1: TRIBUTARY_SERVICES_ROCKETMQ_GRPC_PORT
 * (8081), TRIBUTARY_SERVICES_ROCKETMQ_NAMESRV_PORT (9876), TRIBUTARY_SERVICES_ROCKETMQ_BROKER_PORT
 * (10911; the broker also takes the port - 2 and + 1), TRIBUTARY_SERVICES_ROCKETMQ_PROXY_REMOTING_PORT
 * (the gRPC port + 1; RocketMQ's default 8080 is Tributary's own default port).
 */
export function localRocketmq(version = rocketmqVersion()): LocalRocketmq {
  const grpcPort = portFromEnv('TRIBUTARY_SERVICES_ROCKETMQ_GRPC_PORT', 8081);
  return rocketmqLayout({
    version,
    grpcPort,
    proxyRemotingPort: portFromEnv('TRIBUTARY_SERVICES_ROCKETMQ_PROXY_REMOTING_PORT', grpcPort + 1),
    namesrvPort: portFromEnv('TRIBUTARY_SERVICES_ROCKETMQ_NAMESRV_PORT', 9876),
    brokerPort: portFromEnv('TRIBUTARY_SERVICES_ROCKETMQ_BROKER_PORT', 10911),
    stateDir: path.join(rocketmqHome(version), `local-${grpcPort}`),
  });
}

function properties(title: string, entries: Record<string, string | number | boolean>): string {
  const lines = Object.entries(entries).map(([key, value]) => `${key}=${String(value)}`);
  return `# Written by Tributary's scripts/rocketmq.ts: ${title}.\n${lines.join('\n')}\n`;
}

/** The name server's configuration: loopback only. */
export function namesrvConf(local: LocalRocketmq): string {
  return properties('the local name server', {
    listenPort: local.namesrvPort,
    bindAddress: '127.0.0.1',
    kvConfigPath: path.join(local.stateDir, 'namesrv', 'kvConfig.json'),
    configStorePath: path.join(local.stateDir, 'namesrv', 'namesrv.properties'),
  });
}

/** ACL 2.0's classes (rocketmq-auth; the proxy's own in rocketmq-proxy). */
const AUTH = {
  authenticationProvider:
    'org.apache.rocketmq.auth.authentication.provider.DefaultAuthenticationProvider',
  authorizationProvider:
    'org.apache.rocketmq.auth.authorization.provider.DefaultAuthorizationProvider',
  localUsers:
    'org.apache.rocketmq.auth.authentication.provider.LocalAuthenticationMetadataProvider',
  localAcls: 'org.apache.rocketmq.auth.authorization.provider.LocalAuthorizationMetadataProvider',
  proxyUsers: 'org.apache.rocketmq.proxy.auth.ProxyAuthenticationMetadataProvider',
  proxyAcls: 'org.apache.rocketmq.proxy.auth.ProxyAuthorizationMetadataProvider',
} as const;

/**
 * The broker's part of authentication: it keeps the users and ACLs (RocksDB under
 * `<store>/config`) and makes `auth`'s user a super user at the first start. It does not check
 * requests itself (`authenticationEnabled` stays false here): in local mode clients reach the broker
 * only through the proxy, which checks them, and the administration of this module (topics,
 * groups, users) keeps talking unsigned to the broker's remoting port on loopback.
 */
function brokerAuthConf(auth: RocketmqAuth | undefined): Record<string, string> {
  if (auth === undefined) return {};
  return {
    authenticationMetadataProvider: AUTH.localUsers,
    authorizationMetadataProvider: AUTH.localAcls,
    initAuthenticationUser: JSON.stringify({ username: auth.username, password: auth.password }),
  };
}

/**
 * The broker's configuration, sized for tests: loopback, 64 MiB commit log files, a small timer log
 * and index (the defaults map 1 GiB, 100 MiB and 420 MiB sparse files), SQL92 filters on, and the
 * disk warning level at its maximum (90 %: above it the broker refuses writes).
 */
export function brokerConf(local: LocalRocketmq): string {
  return properties('the broker of the local proxy (local mode)', {
    brokerClusterName: CLUSTER_NAME,
    brokerName: 'broker-a',
    brokerId: 0,
    brokerRole: 'ASYNC_MASTER',
    flushDiskType: 'ASYNC_FLUSH',
    namesrvAddr: local.namesrvAddr,
    brokerIP1: '127.0.0.1',
    bindAddress: '127.0.0.1',
    listenPort: local.brokerPort,
    storePathRootDir: local.storeDir,
    mappedFileSizeCommitLog: 64 * 1024 * 1024,
    mappedFileSizeTimerLog: 16 * 1024 * 1024,
    maxHashSlotNum: 100_000,
    maxIndexNum: 400_000,
    autoCreateTopicEnable: true,
    autoCreateSubscriptionGroup: true,
    enablePropertyFilter: true,
    diskSpaceWarningLevelRatio: 90,
    deleteWhen: '04',
    fileReservedTime: 24,
    ...brokerAuthConf(local.auth),
  });
}

/**
 * The proxy's part of authentication (it reads ACL 2.0's settings, the fields of rocketmq-auth's
 * AuthConfig, from rmq-proxy.json, not from the broker's configuration): it checks every gRPC
 * request's signature, and with `authorization` its permissions, against the users and ACLs its
 * broker keeps (in local mode the Proxy...MetadataProviders ask the broker in the same JVM).
 */
function proxyAuthConf(auth: RocketmqAuth | undefined): Record<string, string | boolean> {
  if (auth === undefined) return {};
  return {
    authenticationEnabled: true,
    authenticationProvider: AUTH.authenticationProvider,
    authenticationMetadataProvider: AUTH.proxyUsers,
    ...(auth.authorization === true
      ? {
          authorizationEnabled: true,
          authorizationProvider: AUTH.authorizationProvider,
          authorizationMetadataProvider: AUTH.proxyAcls,
        }
      : {}),
  };
}

/**
 * The proxy's configuration (JSON): local mode, its ports, and caches that notice a topic or group
 * created after a miss within seconds (the defaults keep a miss for 20 s).
 */
export function proxyConf(local: LocalRocketmq): string {
  const config = {
    rocketMQClusterName: CLUSTER_NAME,
    proxyMode: 'local',
    grpcServerPort: local.grpcPort,
    remotingListenPort: local.proxyRemotingPort,
    namesrvAddr: local.namesrvAddr,
    brokerConfigPath: local.brokerConfFile,
    topicRouteServiceCacheRefreshSeconds: 2,
    topicConfigCacheRefreshSeconds: 2,
    subscriptionGroupConfigCacheRefreshSeconds: 2,
    ...proxyAuthConf(local.auth),
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** Options shared by both JVMs: where RocketMQ keeps its home, logs and (default) store. */
function commonJavaArgs(local: LocalRocketmq): string[] {
  return [
    '-XX:+UseSerialGC',
    '-XX:+ExitOnOutOfMemoryError',
    '-Djava.awt.headless=true',
    `-Drocketmq.home.dir=${path.join(local.stateDir, 'home')}`,
    `-Duser.home=${local.stateDir}`,
  ];
}

/** The name server's java arguments. */
export function namesrvJavaArgs(libDir: string, local: LocalRocketmq): string[] {
  return [
    `-Xms${Math.min(64, local.heapMb.namesrv)}m`,
    `-Xmx${local.heapMb.namesrv}m`,
    ...commonJavaArgs(local),
    '-cp',
    path.join(libDir, '*'),
    local.namesrv.mainClass,
    '-c',
    local.namesrv.confFile,
  ];
}

/** The java arguments of the proxy with its broker in the same JVM (`-pm local`). */
export function proxyJavaArgs(libDir: string, local: LocalRocketmq): string[] {
  return [
    `-Xms${Math.min(256, local.heapMb.proxy)}m`,
    `-Xmx${local.heapMb.proxy}m`,
    '-XX:MaxDirectMemorySize=256m',
    ...commonJavaArgs(local),
    // The store reaches into JDK internals (direct buffers, their cleaners).
    '--add-opens=java.base/java.lang=ALL-UNNAMED',
    '--add-opens=java.base/java.nio=ALL-UNNAMED',
    '--add-opens=java.base/sun.nio.ch=ALL-UNNAMED',
    '--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED',
    '-cp',
    path.join(libDir, '*'),
    local.proxy.mainClass,
    '-pm',
    'local',
    '-pc',
    local.proxyConfFile,
    '-bc',
    local.brokerConfFile,
    '-n',
    local.namesrvAddr,
  ];
}

/** The pid in the pid file when that process is this JVM with this configuration. */
async function runningPid(proc: LocalProcess): Promise<number | undefined> {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(proc.pidFile, 'utf8'), 10);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || !isAlive(pid)) return undefined;
  const args = await commandLine(pid);
  if (args === undefined) return pid; // cannot tell: trust the pid file
  return args.includes(proc.mainClass) && args.includes(proc.confFile) ? pid : undefined;
}

/** The last lines of the JVM output and of RocketMQ's own logs, for error messages. */
function logTails(local: LocalRocketmq): string {
  const parts = [
    `name server output (${local.namesrv.logFile}):\n${logTail(local.namesrv.logFile)}`,
    `proxy output (${local.proxy.logFile}):\n${logTail(local.proxy.logFile)}`,
  ];
  for (const name of ['namesrv.log', 'broker.log', 'proxy.log']) {
    const file = path.join(local.logsDir, name);
    if (!existsSync(file)) continue;
    // Errors and warnings, without the ones every start logs (optional SPI files not found).
    const lines = readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => / (ERROR|WARN) /.test(line) && !/No resource file|Load default/.test(line));
    if (lines.length > 0) {
      parts.push(`${file} (last warnings and errors):\n${lastLines(lines.join('\n'), 10)}`);
    }
  }
  return parts.join('\n');
}

/** Stops `pid` with SIGTERM, then SIGKILL after `timeoutMs`. */
async function stopProcess(pid: number, timeoutMs: number, name: string, log: Log): Promise<void> {
  process.kill(pid, 'SIGTERM');
  if (!(await waitForExit(pid, timeoutMs))) {
    log(`${name} (pid ${pid}) still runs after ${Math.round(timeoutMs / 1000)} s: SIGKILL`);
    if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    await waitForExit(pid, 10_000);
  }
}

/** The share of the disk under `dir` in use, as RocketMQ computes it (1 - free / total). */
function diskUsed(dir: string): number | undefined {
  try {
    const stats = statfsSync(dir);
    return stats.blocks > 0 ? 1 - stats.bfree / stats.blocks : undefined;
  } catch {
    return undefined;
  }
}

/** Spawns a detached JVM writing to `proc.logFile`; returns it once it has a pid. */
async function spawnJvm(args: string[], proc: LocalProcess, cwd: string): Promise<ChildProcess> {
  if (existsSync(proc.logFile) && statSync(proc.logFile).size > 0) {
    renameSync(proc.logFile, `${proc.logFile}.1`);
  }
  const out = openSync(proc.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(javaBinary(), args, { cwd, detached: true, stdio: ['ignore', out, out] });
  } finally {
    closeSync(out);
  }
  let spawnError: Error | undefined;
  child.once('error', (error) => (spawnError = error));
  child.unref();
  if (child.pid === undefined) {
    await sleep(0); // let the 'error' event arrive
    throw new RocketmqSetupError(`cannot run ${javaBinary()}: ${spawnError?.message ?? 'no pid'}`);
  }
  writeFileSync(proc.pidFile, `${child.pid}\n`, 'utf8');
  return child;
}

function exitedReason(child: ChildProcess, name: string): string | undefined {
  return child.exitCode !== null || child.signalCode !== null
    ? `the ${name} exited (${child.exitCode ?? child.signalCode}) before it answered`
    : undefined;
}

export interface RocketmqUpResult {
  readonly local: LocalRocketmq;
  /** The JVMs' pids; undefined when a RocketMQ not started by these scripts answers. */
  readonly pids: { readonly namesrv: number; readonly proxy: number } | undefined;
  /** Whether this call started the proxy (false: it was running already). */
  readonly started: boolean;
  /** The message id of the successful probe send. */
  readonly messageId: string;
  /** Seconds from spawning the first JVM to the first successful send, when started. */
  readonly startSeconds?: number;
}

/** Creates the directories of `local` and writes its three configuration files. */
function writeConfigs(local: LocalRocketmq): void {
  for (const dir of [local.storeDir, path.join(local.stateDir, 'home'), local.logsDir]) {
    mkdirSync(dir, { recursive: true });
  }
  const used = diskUsed(local.storeDir);
  if (used !== undefined && used >= 0.9) {
    throw new RocketmqSetupError(
      `the disk holding ${local.storeDir} is ${(used * 100).toFixed(1)} % full: the RocketMQ ` +
        'broker refuses messages above 90 % (diskSpaceWarningLevelRatio, which cannot go ' +
        'higher). Free some space or point TRIBUTARY_SERVICES_CACHE at another disk.',
    );
  }
  writeFileSync(local.namesrv.confFile, namesrvConf(local), 'utf8');
  writeFileSync(local.brokerConfFile, brokerConf(local), 'utf8');
  writeFileSync(local.proxyConfFile, proxyConf(local), 'utf8');
}

interface Spawned {
  readonly namesrvPid: number;
  readonly proxyPid: number;
  readonly messageId: string;
  readonly startSeconds: number;
}

/**
 * Spawns the name server (unless `namesrvPid` runs already), waits for it to answer, spawns the
 * proxy with its broker and waits for a probe send (signed by `local.auth`'s user, if any). On
 * failure, kills what it spawned, removes their pid files and throws with the logs' tails.
 */
async function spawnRocketmq(
  local: LocalRocketmq,
  libDir: string,
  options: {
    readonly namesrvPid: number | undefined;
    readonly log: Log;
    readonly timeoutMs: number;
  },
): Promise<Spawned> {
  const { log, timeoutMs } = options;
  let namesrvPid = options.namesrvPid;
  let proxyPid: number | undefined;
  const spawned = Date.now();
  const children: ChildProcess[] = [];
  const startsNamesrv = namesrvPid === undefined;
  const gone = (): string | undefined => {
    for (const [index, child] of children.entries()) {
      const name = startsNamesrv && index === 0 ? 'name server' : 'proxy';
      const reason = exitedReason(child, name);
      if (reason !== undefined) return reason;
    }
    return undefined;
  };
  try {
    if (namesrvPid === undefined) {
      const namesrv = await spawnJvm(namesrvJavaArgs(libDir, local), local.namesrv, local.stateDir);
      children.push(namesrv);
      namesrvPid = namesrv.pid;
      log(`started the RocketMQ ${local.version} name server (pid ${namesrvPid})`);
      // The broker registers at start and then every 30 s: let the name server come first.
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const reason = gone();
        if (reason !== undefined) throw new RocketmqSetupError(reason);
        const answer = await remotingRequest(
          local.namesrvAddr,
          Code.getBrokerClusterInfo,
          {},
          undefined,
          2_000,
        ).catch(() => undefined);
        if (answer?.code === 0) break;
        if (Date.now() > deadline) {
          throw new RocketmqSetupError(
            `the name server did not answer at ${local.namesrvAddr} within ${Math.round(timeoutMs / 1000)} s`,
          );
        }
        await sleep(100);
      }
    }
    const proxy = await spawnJvm(proxyJavaArgs(libDir, local), local.proxy, local.stateDir);
    children.push(proxy);
    proxyPid = proxy.pid;
    log(
      `started the RocketMQ ${local.version} broker and proxy (pid ${proxyPid}); waiting for ` +
        `a send through ${local.endpoints} to succeed`,
    );
    const messageId = await waitForRocketmq(local, {
      timeoutMs: Math.max(1_000, timeoutMs - (Date.now() - spawned)),
      gone,
    });
    if (namesrvPid === undefined || proxyPid === undefined) throw new Error('no pid');
    return { namesrvPid, proxyPid, messageId, startSeconds: (Date.now() - spawned) / 1000 };
  } catch (error) {
    for (const child of children) {
      if (child.pid !== undefined && isAlive(child.pid)) process.kill(child.pid, 'SIGKILL');
    }
    rmSync(local.proxy.pidFile, { force: true });
    if (startsNamesrv) rmSync(local.namesrv.pidFile, { force: true });
    throw new RocketmqSetupError(`${reasonOf(error)}\n${logTails(local)}`);
  }
}

/** The ports of `local` besides the name server's, each with the variable that moves it. */
function proxyPorts(local: LocalRocketmq): [number, string][] {
  return [
    [local.grpcPort, 'TRIBUTARY_SERVICES_ROCKETMQ_GRPC_PORT'],
    [local.proxyRemotingPort, 'TRIBUTARY_SERVICES_ROCKETMQ_PROXY_REMOTING_PORT'],
    [local.brokerPort, 'TRIBUTARY_SERVICES_ROCKETMQ_BROKER_PORT'],
    [local.brokerPort - 2, 'TRIBUTARY_SERVICES_ROCKETMQ_BROKER_PORT (the port - 2)'],
    [local.brokerPort + 1, 'TRIBUTARY_SERVICES_ROCKETMQ_BROKER_PORT (the port + 1)'],
  ];
}

/**
 * Makes sure the local RocketMQ runs and takes messages: starts the name server and the proxy (with
 * its broker) unless they, or another RocketMQ, answer at their addresses already. Resolves the jars
 * on first use. Processes calling this at once start one cluster: the others wait for it.
 */
export async function localRocketmqUp(
  options: { readonly log?: Log; readonly timeoutMs?: number } = {},
): Promise<RocketmqUpResult> {
  const log = options.log ?? quiet;
  const timeoutMs = options.timeoutMs ?? 120_000;
  const local = localRocketmq();
  const target: ProbeTarget = { endpoints: local.endpoints, namesrvAddr: local.namesrvAddr };
  mkdirSync(local.stateDir, { recursive: true });
  return withFileLock(
    path.join(local.stateDir, 'up.lock'),
    'another start of the local RocketMQ',
    10 * 60_000,
    async () => {
      const namesrvPid = await runningPid(local.namesrv);
      let proxyPid = await runningPid(local.proxy);
      if (namesrvPid !== undefined && proxyPid !== undefined) {
        const pids = { namesrv: namesrvPid, proxy: proxyPid };
        const messageId = await waitForRocketmq(target, {
          timeoutMs,
          gone: () =>
            isAlive(pids.namesrv) && isAlive(pids.proxy)
              ? undefined
              : 'a process of the local RocketMQ exited',
        }).catch((error: unknown) => {
          throw new RocketmqSetupError(
            `the local RocketMQ (name server pid ${pids.namesrv}, proxy pid ${pids.proxy}) runs ` +
              `but does not take messages: ${reasonOf(error)}\n${logTails(local)}`,
          );
        });
        return { local, pids, started: false, messageId };
      }
      if (proxyPid !== undefined) {
        // Without its name server the broker is unknown to clients: start both afresh.
        log(`the local proxy (pid ${proxyPid}) runs without its name server: restarting it`);
        await stopProcess(proxyPid, 30_000, 'the RocketMQ proxy', log);
        proxyPid = undefined;
      }
      rmSync(local.proxy.pidFile, { force: true });
      if (namesrvPid === undefined) rmSync(local.namesrv.pidFile, { force: true });

      if (namesrvPid === undefined && (await portInUse(local.grpcPort))) {
        const messageId = await waitForRocketmq(target, { timeoutMs: 5_000 }).catch(() => {
          throw new RocketmqSetupError(
            `127.0.0.1:${local.grpcPort} is taken by a process that does not answer as a ` +
              `RocketMQ proxy (with its name server at ${local.namesrvAddr}); stop it or choose ` +
              'another port with TRIBUTARY_SERVICES_ROCKETMQ_GRPC_PORT',
          );
        });
        log(`a RocketMQ not started by services:up answers at ${local.endpoints}: using it`);
        return { local, pids: undefined, started: false, messageId };
      }
      const ports = proxyPorts(local);
      if (namesrvPid === undefined) {
        ports.push([local.namesrvPort, 'TRIBUTARY_SERVICES_ROCKETMQ_NAMESRV_PORT']);
      }
      for (const [port, variable] of ports) {
        if (await portInUse(port)) {
          throw new RocketmqSetupError(
            `127.0.0.1:${port}, which the local RocketMQ needs, is taken; stop what listens ` +
              `there or choose other ports with ${variable}`,
          );
        }
      }

      await checkJava(`RocketMQ ${local.version}`);
      const libDir = await resolveRocketmqJars({ version: local.version, log });
      writeConfigs(local);
      const started = await spawnRocketmq(local, libDir, { namesrvPid, log, timeoutMs }).catch(
        (error: unknown) => {
          throw new RocketmqSetupError(
            `${reasonOf(error)}\n` +
              `(to start from scratch: npm run services:down, then remove ${local.stateDir})`,
          );
        },
      );
      return {
        local,
        pids: { namesrv: started.namesrvPid, proxy: started.proxyPid },
        started: true,
        messageId: started.messageId,
        startSeconds: started.startSeconds,
      };
    },
  );
}

/**
 * Starts a cluster of its own on the ports and in the (fresh or reused) state directory of `local`,
 * e.g. one with authentication (`rocketmqLayout({ ..., auth })`) for tests: checks that its ports are
 * free, writes its configurations, spawns the name server and the proxy with its broker, and
 * resolves once a send (signed by `local.auth`'s user) succeeds. `rocketmqDown(local)` stops it.
 */
export async function rocketmqUp(
  local: LocalRocketmq,
  options: { readonly log?: Log; readonly timeoutMs?: number } = {},
): Promise<RocketmqUpResult & { readonly pids: { namesrv: number; proxy: number } }> {
  const log = options.log ?? quiet;
  const timeoutMs = options.timeoutMs ?? 120_000;
  for (const [port] of [...proxyPorts(local), [local.namesrvPort, 'namesrv'] as const]) {
    if (await portInUse(port)) {
      throw new RocketmqSetupError(`127.0.0.1:${port}, which this RocketMQ needs, is taken`);
    }
  }
  await checkJava(`RocketMQ ${local.version}`);
  const libDir = await resolveRocketmqJars({ version: local.version, log });
  writeConfigs(local);
  const started = await spawnRocketmq(local, libDir, { namesrvPid: undefined, log, timeoutMs });
  return {
    local,
    pids: { namesrv: started.namesrvPid, proxy: started.proxyPid },
    started: true,
    messageId: started.messageId,
    startSeconds: started.startSeconds,
  };
}

/**
 * Stops the cluster of `local` (its pid files): the proxy first, then the name server; SIGTERM,
 * then SIGKILL after `timeoutMs`. Returns the pids stopped.
 */
export async function rocketmqDown(
  local: LocalRocketmq,
  options: { readonly log?: Log; readonly timeoutMs?: number } = {},
): Promise<number[]> {
  const log = options.log ?? quiet;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const stopped: number[] = [];
  for (const [proc, name] of [
    [local.proxy, 'the RocketMQ proxy'],
    [local.namesrv, 'the RocketMQ name server'],
  ] as const) {
    if (!existsSync(proc.pidFile)) continue;
    const pid = await runningPid(proc);
    if (pid !== undefined) {
      log(`stopping ${name} ${local.version} (pid ${pid})`);
      await stopProcess(pid, timeoutMs, name, log);
      stopped.push(pid);
    }
    rmSync(proc.pidFile, { force: true });
  }
  return stopped;
}

/**
 * Stops the local RocketMQ (of any cached version) on its ports: the proxy first, then the name
 * server; SIGTERM, then SIGKILL after `timeoutMs`. Returns the pids stopped.
 */
export async function localRocketmqDown(
  options: { readonly log?: Log; readonly timeoutMs?: number } = {},
): Promise<number[]> {
  const versions = existsSync(cacheDir())
    ? readdirSync(cacheDir())
        .filter((name) => name.startsWith('rocketmq-'))
        .map((name) => name.slice('rocketmq-'.length))
    : [];
  const stopped: number[] = [];
  for (const version of versions)
    stopped.push(...(await rocketmqDown(localRocketmq(version), options)));
  return stopped;
}
