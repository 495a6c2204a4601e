/**
 * Kafka for tests.
 *
 * The shared cluster: `KAFKA_BROKERS` (comma separated) when set, else the local broker of
 * `npm run services:up` (127.0.0.1:9092), started by the same machinery (scripts/kafka.ts) when it
 * does not run yet. A test file that needs it awaits `kafkaRequired(what)`: without Kafka the run
 * fails under CI=true and the file is skipped otherwise. Tests keep their topics and groups apart
 * with a `uniqueTopicPrefix()` and remove them with `deleteTopicsByPrefix` / `deleteGroupsByPrefix`.
 *
 * A private broker: `startPrivateKafka(options)` starts a broker of the test's own (own ports, own
 * temporary data directory, formatted fresh), optionally with SASL PLAIN or SCRAM and TLS, which can
 * be stopped, killed and started again on the same ports and data (outage tests).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Kafka, logLevel, type KafkaConfig, type SASLOptions } from 'kafkajs';
import { createTlsFiles as createTestCa } from './test-ca.js';
import {
  brokerJavaArgs,
  checkJava,
  classArchive,
  formatStorage,
  javaBinary,
  localKafka,
  localKafkaUp,
  resolveKafkaJars,
  serverProperties,
  STARTED_LINE,
  waitForKafka,
  type SecurityProtocol,
} from '../../scripts/kafka.js';
import { manageProcess, type ManagedProcess, type Started } from './managed-process.js';
import { once, reasonOf, unavailable } from './required.js';

const existingBrokers = process.env.KAFKA_BROKERS?.trim() ?? '';

/** Whether the tests use a cluster named by KAFKA_BROKERS (rather than the local broker). */
export const usesExistingCluster = existingBrokers !== '';

/** The shared cluster's bootstrap brokers: KAFKA_BROKERS, else the local broker's address. */
export const KAFKA_BROKERS: readonly string[] = usesExistingCluster
  ? existingBrokers
      .split(',')
      .map((broker) => broker.trim())
      .filter((broker) => broker !== '')
  : [localKafka().bootstrap];

/** A kafkajs client of the shared cluster (quiet unless `config` says otherwise). */
export function kafkaClient(config: Partial<KafkaConfig> = {}): Kafka {
  return new Kafka({
    clientId: 'tributary-test',
    brokers: [...KAFKA_BROKERS],
    logLevel: logLevel.NOTHING,
    ...config,
  });
}

/**
 * Resolves once the shared cluster answers an Admin call: KAFKA_BROKERS' cluster, or the local
 * broker, started when it does not run (the first start may resolve jars from Maven Central).
 */
export const ensureKafka = once(async (): Promise<void> => {
  if (usesExistingCluster) {
    await waitForKafka({ brokers: [...KAFKA_BROKERS] }, { timeoutMs: 15_000 });
    return;
  }
  const result = await localKafkaUp({ log: (line) => console.log(`kafka: ${line}`) });
  if (result.started) {
    console.log(
      `kafka: started the local Kafka ${result.local.version} at ${result.local.bootstrap} ` +
        `(pid ${result.pid}); it keeps running after the tests (npm run services:down stops it)`,
    );
  }
});

/**
 * For a test file that needs the shared cluster: true once it answers. When it cannot (no Java or
 * Maven for the local broker, KAFKA_BROKERS unreachable), the run fails under CI=true (this throws)
 * and otherwise the caller skips its tests (this says so on the console).
 */
export async function kafkaRequired(what: string): Promise<boolean> {
  try {
    await ensureKafka();
    return true;
  } catch (error) {
    const how = usesExistingCluster
      ? `no Kafka answers at KAFKA_BROKERS=${existingBrokers}`
      : `the local Kafka (npm run services:up; needs Java 17+ and Maven) is not available; ` +
        'or set KAFKA_BROKERS to a cluster';
    return unavailable(what, `${how}: ${reasonOf(error)}`);
  }
}

/** The broker jars' directory once resolved (private brokers run from it). */
const kafkaRuntime = once(async (): Promise<string> => {
  await checkJava();
  return resolveKafkaJars({ log: (line) => console.log(`kafka: ${line}`) });
});

/**
 * For a test file that starts private brokers: true when Java 17+ and the broker jars (resolved
 * with Maven on first use) are there; otherwise fails under CI=true or skips, as `kafkaRequired`.
 */
export async function privateKafkaRequired(what: string): Promise<boolean> {
  try {
    await kafkaRuntime();
    return true;
  } catch (error) {
    return unavailable(what, `a private Kafka cannot run here: ${reasonOf(error)}`);
  }
}

/** A prefix no other test uses: `t-` and 12 hex digits (valid in topic and group names). */
export function uniqueTopicPrefix(): string {
  return `t-${randomBytes(6).toString('hex')}`;
}

/** A topic name under `prefix` (a fresh prefix by default). */
export function uniqueTopic(prefix = uniqueTopicPrefix(), name = 'topic'): string {
  return `${prefix}-${name}-${randomBytes(3).toString('hex')}`;
}

/** Creates `topic` on the shared cluster with `partitions` partitions, once its leaders are up. */
export async function createKafkaTopic(topic: string, partitions = 1): Promise<void> {
  const admin = kafkaClient().admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [{ topic, numPartitions: partitions }],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
}

/** The ids of the members of a consumer group of the shared cluster (none: empty). */
export async function groupMembers(groupId: string): Promise<string[]> {
  const admin = kafkaClient().admin();
  await admin.connect();
  try {
    const { groups } = await admin.describeGroups([groupId]);
    return (groups[0]?.members ?? []).map((member) => member.memberId);
  } finally {
    await admin.disconnect();
  }
}

/** Deletes every topic whose name starts with `prefix`; returns their names. */
export async function deleteTopicsByPrefix(
  prefix: string,
  config: Partial<KafkaConfig> = {},
): Promise<string[]> {
  const admin = kafkaClient(config).admin();
  await admin.connect();
  try {
    const topics = (await admin.listTopics()).filter((topic) => topic.startsWith(prefix));
    if (topics.length > 0) await admin.deleteTopics({ topics });
    return topics;
  } finally {
    await admin.disconnect();
  }
}

/** Deletes every consumer group whose id starts with `prefix` (they must have no members). */
export async function deleteGroupsByPrefix(
  prefix: string,
  config: Partial<KafkaConfig> = {},
): Promise<string[]> {
  const admin = kafkaClient(config).admin();
  await admin.connect();
  try {
    const { groups } = await admin.listGroups();
    const ids = groups.map((group) => group.groupId).filter((id) => id.startsWith(prefix));
    if (ids.length > 0) await admin.deleteGroups(ids);
    return ids;
  } finally {
    await admin.disconnect();
  }
}

/** Removes what a test made under `prefix`: its topics, then its consumer groups (best effort). */
export async function removeKafkaPrefix(prefix: string): Promise<void> {
  await deleteTopicsByPrefix(prefix);
  await deleteGroupsByPrefix(prefix).catch(() => {});
}

// ---------------------------------------------------------------------------------------------
// Private brokers.

export type SaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';

/** kafkajs SASL options for a user and password with one of the mechanisms above. */
export function saslCredentials(
  mechanism: SaslMechanism,
  username: string,
  password: string,
): SASLOptions {
  switch (mechanism) {
    case 'plain':
      return { mechanism, username, password };
    case 'scram-sha-256':
      return { mechanism, username, password };
    case 'scram-sha-512':
      return { mechanism, username, password };
  }
}

export interface PrivateKafkaOptions {
  /** SASL on the client listener with this mechanism (users below). */
  readonly sasl?: SaslMechanism;
  /** The SASL users, name to password; default `{ tributary: 'tributary-secret' }`. */
  readonly users?: Readonly<Record<string, string>>;
  /** TLS on the client listener; `clientAuth` also requires a client certificate of the test CA. */
  readonly tls?: boolean | { readonly clientAuth?: boolean };
  /** More server properties (they win over the defaults). */
  readonly properties?: Readonly<Record<string, string>>;
  /** How long a start may take until an Admin call succeeds (default 60 s). */
  readonly readyTimeoutMs?: number;
}

/** The client side of a private broker's TLS: the test CA and a client certificate, PEM. */
export interface PrivateKafkaTls {
  readonly caFile: string;
  readonly ca: string;
  readonly certFile: string;
  readonly cert: string;
  readonly keyFile: string;
  readonly key: string;
  /** Whether the broker requires the client certificate. */
  readonly clientAuth: boolean;
}

export interface PrivateKafka extends ManagedProcess {
  readonly port: number;
  readonly controllerPort: number;
  /** `127.0.0.1:<port>`. */
  readonly bootstrap: string;
  readonly protocol: SecurityProtocol;
  /** The first user's credentials (SASL only). */
  readonly sasl: SASLOptions | undefined;
  readonly users: Readonly<Record<string, string>>;
  readonly tls: PrivateKafkaTls | undefined;
  /** The broker's temporary directory: server.properties, `data/`, `tls/`. */
  readonly dir: string;
  readonly dataDir: string;
  /**
   * kafkajs options that connect to this broker: the brokers, the first user's SASL credentials
   * and TLS with the CA and client certificate. `overrides` win (e.g. a wrong password).
   */
  clientConfig(overrides?: Partial<KafkaConfig>): KafkaConfig;
}

const children = new Set<ChildProcess>();
const openDirs = new Set<string>();
// A test process that ends without closing its brokers must not leave them (or their files) behind.
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
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

async function freePortPair(): Promise<[number, number]> {
  const port = await freePort();
  let controllerPort = await freePort();
  while (controllerPort === port) controllerPort = await freePort();
  return [port, controllerPort];
}

interface TlsFiles {
  readonly caFile: string;
  /** The broker's key and certificate in one PEM file (ssl.keystore.type=PEM). */
  readonly keystoreFile: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
}

/**
 * The test CA's files (test-ca.ts), with the broker's key and certificate in one PEM file as Kafka
 * reads them (ssl.keystore.type=PEM). The broker certificate serves clients and the broker itself.
 */
async function createTlsFiles(dir: string): Promise<TlsFiles> {
  const files = await createTestCa(dir, 'serverAuth,clientAuth');
  const keystoreFile = path.join(dir, 'broker-keystore.pem');
  writeFileSync(
    keystoreFile,
    readFileSync(files.serverKey, 'utf8') + readFileSync(files.serverCert, 'utf8'),
  );
  return {
    caFile: files.caCert,
    keystoreFile,
    clientCertFile: files.clientCert,
    clientKeyFile: files.clientKey,
  };
}

/** JAAS and SCRAM-format text cannot hold these in a name or password (tests need none of them). */
const UNSAFE = /[\s"\\;,=[\]]/;

const SCRAM_NAMES: Record<Exclude<SaslMechanism, 'plain'>, string> = {
  'scram-sha-256': 'SCRAM-SHA-256',
  'scram-sha-512': 'SCRAM-SHA-512',
};

interface SecuritySetup {
  readonly protocol: SecurityProtocol;
  readonly properties: Record<string, string>;
  /** `--add-scram` values for the storage format. */
  readonly scram: string[];
  readonly tls: PrivateKafkaTls | undefined;
}

async function securitySetup(
  options: PrivateKafkaOptions,
  users: Readonly<Record<string, string>>,
  dir: string,
): Promise<SecuritySetup> {
  const properties: Record<string, string> = {};
  const scram: string[] = [];
  const mechanism = options.sasl;
  if (mechanism !== undefined) {
    // The broker connects to itself over its listener too: it needs a user of its own.
    const brokerPassword = randomBytes(12).toString('hex');
    for (const [name, password] of Object.entries(users)) {
      if (UNSAFE.test(name) || UNSAFE.test(password) || name === '' || name === 'broker') {
        throw new Error(`startPrivateKafka: unusable user ${JSON.stringify(name)} or its password`);
      }
    }
    if (mechanism === 'plain') {
      const accepted = Object.entries({ ...users, broker: brokerPassword })
        .map(([name, password]) => `user_${name}="${password}"`)
        .join(' ');
      properties['sasl.enabled.mechanisms'] = 'PLAIN';
      properties['sasl.mechanism.inter.broker.protocol'] = 'PLAIN';
      properties['listener.name.client.plain.sasl.jaas.config'] =
        'org.apache.kafka.common.security.plain.PlainLoginModule required ' +
        `username="broker" password="${brokerPassword}" ${accepted};`;
    } else {
      const name = SCRAM_NAMES[mechanism];
      properties['sasl.enabled.mechanisms'] = name;
      properties['sasl.mechanism.inter.broker.protocol'] = name;
      properties[`listener.name.client.${mechanism}.sasl.jaas.config`] =
        'org.apache.kafka.common.security.scram.ScramLoginModule required ' +
        `username="broker" password="${brokerPassword}";`;
      for (const [user, password] of Object.entries({ ...users, broker: brokerPassword })) {
        scram.push(`${name}=[name=${user},password=${password}]`);
      }
    }
  }
  let tls: PrivateKafkaTls | undefined;
  if (options.tls !== undefined && options.tls !== false) {
    const clientAuth = options.tls !== true && options.tls.clientAuth === true;
    const files = await createTlsFiles(path.join(dir, 'tls'));
    properties['ssl.keystore.type'] = 'PEM';
    properties['ssl.keystore.location'] = files.keystoreFile;
    properties['ssl.truststore.type'] = 'PEM';
    properties['ssl.truststore.location'] = files.caFile;
    properties['ssl.client.auth'] = clientAuth ? 'required' : 'none';
    tls = {
      caFile: files.caFile,
      ca: readFileSync(files.caFile, 'utf8'),
      certFile: files.clientCertFile,
      cert: readFileSync(files.clientCertFile, 'utf8'),
      keyFile: files.clientKeyFile,
      key: readFileSync(files.clientKeyFile, 'utf8'),
      clientAuth,
    };
  }
  const protocol: SecurityProtocol =
    mechanism === undefined
      ? tls === undefined
        ? 'PLAINTEXT'
        : 'SSL'
      : tls === undefined
        ? 'SASL_PLAINTEXT'
        : 'SASL_SSL';
  return { protocol, properties, scram, tls };
}

class PortTaken extends Error {}

/** Spawns the broker; resolves when it logs that it started, rejects when it exits first. */
function spawnBroker(
  libDir: string,
  propertiesFile: string,
  cwd: string,
  deadline: number,
): Promise<Started> {
  const archive = classArchive(libDir, 'broker');
  const child = spawn(
    javaBinary(),
    brokerJavaArgs({
      libDir,
      propertiesFile,
      minHeapMb: 128,
      maxHeapMb: 384,
      quickStart: true,
      archiveArgs: archive.args,
    }),
    { cwd, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(child);
  let output = '';
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (_code, signal) => {
      children.delete(child);
      // A broker stopped by SIGTERM exits by itself (143): its class archive, if it wrote one, is whole.
      archive.settle(signal === null);
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
    const timer = setTimeout(
      () => {
        child.kill('SIGKILL');
        settle(new Error(`the private Kafka did not start in time; output:\n${output}`));
      },
      Math.max(0, deadline - Date.now()),
    );
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      if (output.includes(STARTED_LINE)) settle();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', (error) => settle(new Error(`cannot run java: ${error.message}`)));
    void exited.then(() => {
      const message = `the private Kafka exited before it started; output:\n${output}`;
      settle(
        output.includes('Address already in use') ? new PortTaken(message) : new Error(message),
      );
    });
  });
}

/**
 * Starts a private single-node Kafka on 127.0.0.1 (a free port pair, a fresh temporary data
 * directory); resolves once an Admin call with the right credentials succeeds.
 */
export async function startPrivateKafka(options: PrivateKafkaOptions = {}): Promise<PrivateKafka> {
  const libDir = await kafkaRuntime();
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
  const users = options.users ?? { tributary: 'tributary-secret' };
  const dir = mkdtempSync(path.join(tmpdir(), 'tributary-kafka-'));
  openDirs.add(dir);
  const dataDir = path.join(dir, 'data');
  const propertiesFile = path.join(dir, 'server.properties');

  let current: Started | undefined;
  let port = 0;
  let controllerPort = 0;
  let setup: SecuritySetup;
  const [first] = Object.entries(users);
  const sasl = (): SASLOptions | undefined =>
    options.sasl === undefined || first === undefined
      ? undefined
      : saslCredentials(options.sasl, first[0], first[1]);
  const clientConfig = (overrides: Partial<KafkaConfig> = {}): KafkaConfig => {
    const credentials = sasl();
    const tls = setup.tls;
    return {
      clientId: 'tributary-test',
      brokers: [`127.0.0.1:${port}`],
      logLevel: logLevel.NOTHING,
      ...(credentials === undefined ? {} : { sasl: credentials }),
      ...(tls === undefined
        ? {}
        : { ssl: { ca: [tls.ca], ...(tls.clientAuth ? { cert: tls.cert, key: tls.key } : {}) } }),
      ...overrides,
    };
  };
  /** Starts the process and waits for it to answer an Admin call. */
  const launch = async (): Promise<Started> => {
    const deadline = Date.now() + readyTimeoutMs;
    const started = await spawnBroker(libDir, propertiesFile, dir, deadline);
    try {
      await waitForKafka(clientConfig(), {
        timeoutMs: Math.max(1_000, deadline - Date.now()),
        gone: () =>
          started.child.exitCode !== null || started.child.signalCode !== null
            ? `the private Kafka exited; output:\n${started.output()}`
            : undefined,
      });
    } catch (error) {
      started.child.kill('SIGKILL');
      await started.exited;
      throw new Error(`${reasonOf(error)}\noutput:\n${started.output()}`);
    }
    return started;
  };

  try {
    setup = await securitySetup(options, users, dir);
    // A port found free can be taken before the broker binds it: try other ports a few times.
    for (let attempt = 1; current === undefined; attempt++) {
      [port, controllerPort] = await freePortPair();
      rmSync(dataDir, { recursive: true, force: true });
      writeFileSync(
        propertiesFile,
        serverProperties({
          port,
          controllerPort,
          dataDir,
          protocol: setup.protocol,
          properties: { ...setup.properties, ...options.properties },
        }),
        'utf8',
      );
      await formatStorage({ libDir, propertiesFile, dataDir, scram: setup.scram });
      try {
        current = await launch();
      } catch (error) {
        if (!(error instanceof PortTaken) || attempt >= 5) throw error;
      }
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    openDirs.delete(dir);
    throw error;
  }

  return {
    port,
    controllerPort,
    bootstrap: `127.0.0.1:${port}`,
    protocol: setup.protocol,
    sasl: sasl(),
    users,
    tls: setup.tls,
    dir,
    dataDir,
    clientConfig,
    ...manageProcess(current, {
      what: 'the Kafka broker',
      launch,
      remove: () => {
        rmSync(dir, { recursive: true, force: true });
        openDirs.delete(dir);
      },
    }),
  };
}
