/**
 * Apache Kafka without Docker, for development and tests: the broker's jars resolved once from
 * Maven Central into a cache directory, a single-node KRaft configuration on loopback, storage
 * formatting, the java command line, and readiness through an Admin call.
 *
 * `scripts/services.ts` (`npm run services:up` / `services:down`) runs the shared local broker with
 * it; `test/support/kafka.ts` starts the same broker when tests need it and private brokers of
 * tests' own.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { connect as connectTcp } from 'node:net';
import { homedir } from 'node:os';
import path from 'node:path';
import { Kafka, logLevel, type KafkaConfig } from 'kafkajs';

/**
 * The broker version. 4.4.0 is the newest on Maven Central; kafkajs 2.2.4 (classic consumer group
 * protocol, older API versions negotiated through ApiVersions) produces, consumes in groups,
 * commits and administers topics against it.
 */
export const DEFAULT_KAFKA_VERSION = '4.4.0';
/** Kafka 4.x logs through slf4j-api 1.7.36 and ships no binding in its POM: this is the binding. */
const SLF4J_SIMPLE = 'org.slf4j:slf4j-simple:1.7.36';
const DEPENDENCY_PLUGIN = 'org.apache.maven.plugins:maven-dependency-plugin:3.11.0';
/** Logged at INFO by kafka.server.KafkaRaftServer once the broker serves clients. */
export const STARTED_LINE = 'Kafka Server started';

/**
 * A failure with a message meant for a person: what is missing and what to do. Shared by the
 * services of these scripts (scripts/rocketmq.ts has its own subclass).
 */
export class ServiceSetupError extends Error {
  override readonly name: string = 'ServiceSetupError';
}

/** A ServiceSetupError of the Kafka broker. */
export class KafkaSetupError extends ServiceSetupError {
  override readonly name: string = 'KafkaSetupError';
}

export type Log = (line: string) => void;
const quiet: Log = () => {};

/** An environment variable's value; undefined when it is unset or empty. */
export function env(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value === '' ? undefined : value;
}

/** The Kafka version to run: TRIBUTARY_SERVICES_KAFKA_VERSION, else the default. */
export function kafkaVersion(): string {
  return env('TRIBUTARY_SERVICES_KAFKA_VERSION') ?? DEFAULT_KAFKA_VERSION;
}

/** TRIBUTARY_SERVICES_CACHE, else `${XDG_CACHE_HOME:-~/.cache}/tributary`. */
export function cacheDir(): string {
  const explicit = env('TRIBUTARY_SERVICES_CACHE');
  if (explicit !== undefined) return path.resolve(explicit);
  const xdg = env('XDG_CACHE_HOME');
  const base = xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(homedir(), '.cache');
  return path.join(base, 'tributary');
}

/** Everything of one Kafka version: `lib/` (the jars) and the local broker's state. */
export function kafkaHome(version = kafkaVersion()): string {
  return path.join(cacheDir(), `kafka-${version}`);
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

export interface RunResult {
  readonly code: number | null;
  readonly output: string;
}

/** Runs a command to its end; the output is stdout and stderr together. ENOENT rejects. */
export function run(command: string, args: readonly string[], cwd?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { cwd, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        const output = `${stdout}${stderr}`;
        if (error === null) return resolve({ code: 0, output });
        const code = (error as { code?: unknown }).code;
        if (code === 'ENOENT') return reject(new Error(`${command}: not found`));
        resolve({ code: typeof code === 'number' ? code : null, output });
      },
    );
  });
}

export function lastLines(text: string, count = 40): string {
  return text.trimEnd().split('\n').slice(-count).join('\n');
}

/** The java executable: `$JAVA_HOME/bin/java` when that exists, else `java` on PATH. */
export function javaBinary(): string {
  const home = env('JAVA_HOME');
  if (home !== undefined) {
    const candidate = path.join(home, 'bin', 'java');
    if (existsSync(candidate)) return candidate;
  }
  return 'java';
}

/** Which JVM build `checkJava` found (a hash of its `-version`), for class data archives. */
let javaIdentity: string | undefined;

/**
 * Checks that Java 17 or newer is there (Kafka 4.x brokers need it, RocketMQ runs on it); returns
 * its major version. `what` names the service in the messages.
 */
export async function checkJava(what = `the Kafka ${kafkaVersion()} broker`): Promise<number> {
  const java = javaBinary();
  let result: RunResult;
  try {
    result = await run(java, ['-version']);
  } catch {
    throw new ServiceSetupError(
      `Java is not installed (no \`${java}\` on PATH${env('JAVA_HOME') === undefined ? '' : ' or in JAVA_HOME'}): ` +
        `${what} needs Java 17 or newer (e.g. apt-get install openjdk-17-jre-headless).`,
    );
  }
  const match = /version "(\d+)(?:\.(\d+))?/.exec(result.output);
  if (result.code !== 0 || match === null) {
    throw new ServiceSetupError(`\`${java} -version\` failed:\n${lastLines(result.output)}`);
  }
  javaIdentity = createHash('sha256')
    .update(`${java}\n${result.output}`)
    .digest('hex')
    .slice(0, 16);
  const major = match[1] === '1' ? Number(match[2]) : Number(match[1]);
  if (major < 17) {
    throw new ServiceSetupError(`Java ${major} found (${java}); ${what} needs Java 17 or newer.`);
  }
  return major;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Runs `fn` holding `file` as a lock between processes (created exclusively, holding the pid). A
 * lock whose process is gone is taken over; waits up to `timeoutMs` for a live holder.
 */
export async function withFileLock<T>(
  file: string,
  what: string,
  timeoutMs: number,
  fn: () => Promise<T>,
): Promise<T> {
  mkdirSync(path.dirname(file), { recursive: true });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let fd: number | undefined;
    try {
      fd = openSync(file, 'wx');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    if (fd !== undefined) {
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    }
    let holder = Number.NaN;
    try {
      holder = Number.parseInt(readFileSync(file, 'utf8'), 10);
    } catch {
      continue; // released between our attempt and the read
    }
    // A lock without a pid is being written (or its writer died at once); one whose holder is
    // gone is stale.
    const stale = Number.isInteger(holder)
      ? !isAlive(holder)
      : Date.now() - statSafe(file) > 10_000;
    if (stale) {
      rmSync(file, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new ServiceSetupError(
        `waited ${Math.round(timeoutMs / 1000)} s for ${what}: process ${holder} holds ${file} ` +
          '(remove the file if that process is not a Tributary script or test)',
      );
    }
    await sleep(200);
  }
  try {
    return await fn();
  } finally {
    rmSync(file, { force: true });
  }
}

/** When `file` was last modified (ms since the epoch), or now when it is gone. */
function statSafe(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return Date.now();
  }
}

interface Manifest {
  readonly version: string;
  readonly jars: readonly string[];
}

function completeLibDir(libDir: string, version: string): boolean {
  try {
    const manifest = JSON.parse(
      readFileSync(path.join(libDir, 'manifest.json'), 'utf8'),
    ) as Manifest;
    return (
      manifest.version === version &&
      manifest.jars.length > 0 &&
      manifest.jars.every((jar) => existsSync(path.join(libDir, jar)))
    );
  } catch {
    return false;
  }
}

/** A POM that only declares `coordinates` (`group:artifact:version` each) as dependencies. */
function throwawayPom(name: string, coordinates: readonly string[]): string {
  const dependencies = coordinates.map((coordinate) => {
    const [group, artifact, version] = coordinate.split(':');
    return `    <dependency>
      <groupId>${group}</groupId>
      <artifactId>${artifact}</artifactId>
      <version>${version}</version>
    </dependency>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by Tributary's scripts to resolve a service's jars (${name}); nothing to build. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.tributary</groupId>
  <artifactId>${name}</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
${dependencies.join('\n')}
  </dependencies>
</project>
`;
}

/** What `resolveMavenJars` resolves, and where to. */
export interface MavenJars {
  /** The directory that gets `lib/` (the jars), `pom.xml` and the resolve lock. */
  readonly home: string;
  /** Recorded in `lib/manifest.json`: a `lib/` of another version is resolved again. */
  readonly version: string;
  /** The throwaway POM's artifactId, e.g. `kafka-runtime`. */
  readonly name: string;
  /** For messages, e.g. `the Kafka 4.4.0 broker's jars`. */
  readonly what: string;
  /** `group:artifact:version` of each dependency; the first one is named in errors. */
  readonly coordinates: readonly string[];
  /** A jar file name that must be among the resolved jars (proof that the main one came). */
  readonly requiredJar: string;
  /** Called (under the lock) right before a new `lib/` replaces the old one. */
  readonly onReplace?: () => void;
  readonly log?: Log;
}

/**
 * The `lib/` directory of `spec.home`, resolved from Maven Central with `mvn ... copy-dependencies`
 * (runtime scope) when it is not complete yet, under a file lock. Returns at once when it is.
 */
export async function resolveMavenJars(spec: MavenJars): Promise<string> {
  const { home, version, what } = spec;
  const log = spec.log ?? quiet;
  const libDir = path.join(home, 'lib');
  if (completeLibDir(libDir, version)) return libDir;
  return withFileLock(path.join(home, 'resolve.lock'), what, 10 * 60_000, async () => {
    if (completeLibDir(libDir, version)) return libDir; // another process resolved them meanwhile
    try {
      await run('mvn', ['--version']);
    } catch {
      throw new ServiceSetupError(
        `Maven (mvn) is not installed: it resolves ${what} from Maven Central into ${libDir} ` +
          '(once). Install Maven 3 (e.g. apt-get install maven).',
      );
    }
    const pom = path.join(home, 'pom.xml');
    writeFileSync(pom, throwawayPom(spec.name, spec.coordinates), 'utf8');
    const partial = path.join(home, `lib.partial-${process.pid}`);
    rmSync(partial, { recursive: true, force: true });
    log(`resolving ${what} from Maven Central into ${libDir} ...`);
    const started = Date.now();
    const result = await run('mvn', [
      '-B',
      '-q',
      '-Dstyle.color=never',
      '-f',
      pom,
      `-DoutputDirectory=${partial}`,
      '-DincludeScope=runtime',
      `${DEPENDENCY_PLUGIN}:copy-dependencies`,
    ]);
    const jars = existsSync(partial) ? readdirSync(partial).filter((f) => f.endsWith('.jar')) : [];
    if (result.code !== 0 || !jars.includes(spec.requiredJar)) {
      rmSync(partial, { recursive: true, force: true });
      throw new ServiceSetupError(
        `mvn could not resolve ${spec.coordinates.join(', ')} (exit ${result.code}); is ` +
          `Maven Central reachable?\n${lastLines(result.output)}`,
      );
    }
    const manifest: Manifest = { version, jars: jars.sort() };
    writeFileSync(path.join(partial, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    rmSync(libDir, { recursive: true, force: true });
    spec.onReplace?.();
    renameSync(partial, libDir);
    log(`resolved ${jars.length} jars in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return libDir;
  });
}

/**
 * The directory holding the broker's jars (`<cache>/kafka-<version>/lib`), resolved from Maven
 * Central with `mvn ... copy-dependencies` when it is not complete yet. Returns at once when it is.
 */
export function resolveKafkaJars(
  options: { readonly version?: string; readonly log?: Log } = {},
): Promise<string> {
  const version = options.version ?? kafkaVersion();
  const home = kafkaHome(version);
  return resolveMavenJars({
    home,
    version,
    name: 'kafka-runtime',
    what: `the Kafka ${version} broker's jars`,
    coordinates: [`org.apache.kafka:kafka_2.13:${version}`, SLF4J_SIMPLE],
    requiredJar: `kafka_2.13-${version}.jar`,
    // class data archives of the old jars
    onReplace: () => rmSync(path.join(home, 'cds'), { recursive: true, force: true }),
    log: options.log,
  });
}

/** Listener security of the client listener (the controller listener is always PLAINTEXT). */
export type SecurityProtocol = 'PLAINTEXT' | 'SSL' | 'SASL_PLAINTEXT' | 'SASL_SSL';

export interface BrokerSettings {
  /** The client listener's port on 127.0.0.1. */
  readonly port: number;
  /** The KRaft controller listener's port on 127.0.0.1. */
  readonly controllerPort: number;
  /** Where the broker keeps its data (`log.dirs`). */
  readonly dataDir: string;
  readonly protocol?: SecurityProtocol;
  /** More server properties; they win over the defaults. */
  readonly properties?: Readonly<Record<string, string>>;
}

function propertyValue(value: string): string {
  return value
    .replace(/\\/g, '\\\\')
    .replace(/\n/g, '\\n')
    .replace(/^\s/, (s) => `\\${s}`);
}

/**
 * A single-node KRaft broker and controller on loopback, sized for tests: one partition per topic
 * unless asked, one partition for the offsets topic, no rebalance delay, no topic auto-creation,
 * a small log cleaner buffer (the 128 MiB default does not fit a small heap).
 */
export function serverProperties(settings: BrokerSettings): string {
  const protocol = settings.protocol ?? 'PLAINTEXT';
  const client = `CLIENT://127.0.0.1:${settings.port}`;
  const controller = `CONTROLLER://127.0.0.1:${settings.controllerPort}`;
  const properties: Record<string, string> = {
    'process.roles': 'broker,controller',
    'node.id': '1',
    'controller.quorum.bootstrap.servers': `127.0.0.1:${settings.controllerPort}`,
    listeners: `${client},${controller}`,
    'advertised.listeners': `${client},${controller}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'CLIENT',
    'listener.security.protocol.map': `CLIENT:${protocol},CONTROLLER:PLAINTEXT`,
    'log.dirs': settings.dataDir,
    'num.partitions': '1',
    'default.replication.factor': '1',
    'min.insync.replicas': '1',
    'offsets.topic.replication.factor': '1',
    'offsets.topic.num.partitions': '1',
    'transaction.state.log.replication.factor': '1',
    'transaction.state.log.min.isr': '1',
    'transaction.state.log.num.partitions': '1',
    'share.coordinator.state.topic.replication.factor': '1',
    'share.coordinator.state.topic.min.isr': '1',
    'group.initial.rebalance.delay.ms': '0',
    'auto.create.topics.enable': 'false',
    'log.cleaner.dedupe.buffer.size': String(2 * 1024 * 1024),
    'num.network.threads': '2',
    'num.io.threads': '2',
    'num.recovery.threads.per.data.dir': '1',
    ...settings.properties,
  };
  const lines = Object.entries(properties).map(([key, value]) => `${key}=${propertyValue(value)}`);
  return `# Written by Tributary's scripts/kafka.ts: a single-node KRaft Kafka on loopback.\n${lines.join('\n')}\n`;
}

/** A KRaft cluster id: 16 random bytes, base64url (what `kafka-storage random-uuid` prints). */
export function randomClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id; // a leading '-' would read as an option
  }
}

/**
 * JVM options for a short-lived or test JVM: the client compiler only and the serial collector
 * start a broker in about half the time on two busy cores, at some cost in peak throughput.
 */
const QUICK_START = ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC'];

/** A JVM's use of a class data sharing archive of the Kafka classes (see `classArchive`). */
export interface ClassArchive {
  readonly args: readonly string[];
  /** Call once the JVM exited: keeps the archive it wrote at a clean exit, drops anything else. */
  settle(cleanExit: boolean): void;
}

/**
 * Class data sharing for quick-start JVMs: loading the broker's classes from an archive saves
 * about a second per start. The first JVM of a kind (for one JVM build and jar set) writes the
 * archive when it exits (`-XX:ArchiveClassesAtExit`); later ones map it. A stale or unreadable
 * archive only costs a warning: the JVM then loads classes as usual.
 */
export function classArchive(libDir: string, kind: 'broker' | 'format'): ClassArchive {
  if (javaIdentity === undefined) return { args: [], settle: () => {} };
  const dir = path.join(path.dirname(libDir), 'cds');
  const file = path.join(dir, `${kind}-${javaIdentity}.jsa`);
  if (existsSync(file)) return { args: [`-XX:SharedArchiveFile=${file}`], settle: () => {} };
  mkdirSync(dir, { recursive: true });
  const partial = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.partial`;
  return {
    args: [`-XX:ArchiveClassesAtExit=${partial}`],
    settle: (cleanExit) => {
      try {
        if (cleanExit && existsSync(partial)) renameSync(partial, file);
      } finally {
        rmSync(partial, { force: true });
      }
    },
  };
}

export interface FormatOptions {
  readonly libDir: string;
  readonly propertiesFile: string;
  readonly dataDir: string;
  /** SCRAM users to create: `SCRAM-SHA-256=[name=alice,password=secret]` each. */
  readonly scram?: readonly string[];
}

/** Formats the storage (`kafka.tools.StorageTool format --standalone`) unless it is formatted. */
export async function formatStorage(options: FormatOptions): Promise<boolean> {
  if (existsSync(path.join(options.dataDir, 'meta.properties'))) return false;
  const archive = classArchive(options.libDir, 'format');
  const args = [
    '-Xms64m',
    '-Xmx256m',
    ...QUICK_START,
    ...archive.args,
    '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn',
    '-cp',
    path.join(options.libDir, '*'),
    'kafka.tools.StorageTool',
    'format',
    '--standalone',
    '--cluster-id',
    randomClusterId(),
    '--config',
    options.propertiesFile,
    ...(options.scram ?? []).flatMap((user) => ['--add-scram', user]),
  ];
  const result = await run(javaBinary(), args);
  archive.settle(result.code === 0);
  if (result.code !== 0) {
    throw new KafkaSetupError(
      `formatting the Kafka storage in ${options.dataDir} failed (exit ${result.code}):\n` +
        lastLines(result.output),
    );
  }
  return true;
}

export interface JvmOptions {
  readonly libDir: string;
  readonly propertiesFile: string;
  readonly minHeapMb?: number;
  readonly maxHeapMb?: number;
  /** Favour start-up time over throughput (test brokers). */
  readonly quickStart?: boolean;
  /** JVM options of a class data archive (`classArchive(libDir, 'broker').args`). */
  readonly archiveArgs?: readonly string[];
}

/** The java arguments of a broker: small heap, warnings only (and the "started" line). */
export function brokerJavaArgs(options: JvmOptions): string[] {
  return [
    `-Xms${options.minHeapMb ?? 256}m`,
    `-Xmx${options.maxHeapMb ?? 512}m`,
    '-XX:+ExitOnOutOfMemoryError',
    ...(options.quickStart === true ? QUICK_START : []),
    ...(options.archiveArgs ?? []),
    '-Djava.awt.headless=true',
    '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn',
    '-Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info',
    '-Dorg.slf4j.simpleLogger.showDateTime=true',
    '-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd HH:mm:ss.SSS',
    '-cp',
    path.join(options.libDir, '*'),
    'kafka.Kafka',
    options.propertiesFile,
  ];
}

/** kafkajs options for one quick Admin call: no retries, no logging. */
function probeConfig(config: KafkaConfig): KafkaConfig {
  return {
    clientId: 'tributary-probe',
    connectionTimeout: 2_000,
    requestTimeout: 5_000,
    ...config,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  };
}

/** One Admin call (describeCluster); resolves with the cluster id, rejects with kafkajs' error. */
export async function describeCluster(config: KafkaConfig): Promise<string> {
  const admin = new Kafka(probeConfig(config)).admin();
  try {
    await admin.connect();
    return (await admin.describeCluster()).clusterId;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

export interface WaitOptions {
  readonly timeoutMs: number;
  /** Why waiting is pointless (e.g. the process exited), or undefined while it is worth it. */
  readonly gone?: () => string | undefined;
}

/** Polls an Admin call until it succeeds; rejects at the deadline or once `gone` says so. */
export async function waitForKafka(config: KafkaConfig, options: WaitOptions): Promise<string> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  for (;;) {
    const reason = options.gone?.();
    if (reason !== undefined) throw new KafkaSetupError(reason);
    try {
      return await describeCluster(config);
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? lastError.message : String(lastError);
      throw new KafkaSetupError(
        `Kafka at ${config.brokers.toString()} did not answer an Admin call within ` +
          `${Math.round(options.timeoutMs / 1000)} s (last error: ${detail})`,
      );
    }
    await sleep(250);
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connectTcp({ host: '127.0.0.1', port });
    socket.setTimeout(2_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

// ---------------------------------------------------------------------------------------------
// The shared local broker of `npm run services:up`.

export interface LocalKafka {
  readonly version: string;
  readonly port: number;
  readonly controllerPort: number;
  /** `127.0.0.1:<port>`. */
  readonly bootstrap: string;
  /** `<cache>/kafka-<version>/local-<port>`: properties, data, log and pid file. */
  readonly stateDir: string;
  readonly dataDir: string;
  readonly propertiesFile: string;
  readonly logFile: string;
  readonly pidFile: string;
}

/** A TCP port from the environment variable `name`, else `fallback`. */
export function portFromEnv(name: string, fallback: number): number {
  const text = env(name);
  if (text === undefined) return fallback;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new ServiceSetupError(`${name}=${text} is not a TCP port`);
  }
  return port;
}

/**
 * Where the local broker listens and lives: TRIBUTARY_SERVICES_KAFKA_PORT (default 9092) and
 * TRIBUTARY_SERVICES_KAFKA_CONTROLLER_PORT (default the port + 1) on 127.0.0.1.
 */
export function localKafka(version = kafkaVersion()): LocalKafka {
  const port = portFromEnv('TRIBUTARY_SERVICES_KAFKA_PORT', 9092);
  const controllerPort = portFromEnv('TRIBUTARY_SERVICES_KAFKA_CONTROLLER_PORT', port + 1);
  const stateDir = path.join(kafkaHome(version), `local-${port}`);
  return {
    version,
    port,
    controllerPort,
    bootstrap: `127.0.0.1:${port}`,
    stateDir,
    dataDir: path.join(stateDir, 'data'),
    propertiesFile: path.join(stateDir, 'server.properties'),
    logFile: path.join(stateDir, 'kafka.log'),
    pidFile: path.join(stateDir, 'kafka.pid'),
  };
}

/** The command line of a process, or undefined when it cannot be read (or it is gone). */
export async function commandLine(pid: number): Promise<string | undefined> {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    // no /proc (macOS): ask ps
  }
  try {
    const result = await run('ps', ['-o', 'args=', '-p', String(pid)]);
    return result.code === 0 ? result.output.trim() : undefined;
  } catch {
    return undefined;
  }
}

/** The pid in the pid file when that process is a broker running with these properties. */
async function runningPid(local: LocalKafka): Promise<number | undefined> {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(local.pidFile, 'utf8'), 10);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || !isAlive(pid)) return undefined;
  const args = await commandLine(pid);
  if (args === undefined) return pid; // cannot tell: trust the pid file
  return args.includes('kafka.Kafka') && args.includes(local.propertiesFile) ? pid : undefined;
}

/** The last lines of a log file, or `(no log)`. */
export function logTail(file: string): string {
  try {
    return lastLines(readFileSync(file, 'utf8'));
  } catch {
    return '(no log)';
  }
}

export interface UpResult {
  readonly local: LocalKafka;
  /** The broker's pid; undefined when a Kafka not started by these scripts answers. */
  readonly pid: number | undefined;
  /** Whether this call started it (false: it was running already). */
  readonly started: boolean;
  readonly clusterId: string;
  /** Seconds from spawning the JVM to the first successful Admin call, when started. */
  readonly startSeconds?: number;
}

/**
 * Makes sure the local broker runs and answers: starts it (resolving the jars and formatting the
 * storage on first use) unless it or another Kafka answers at its address already. Processes
 * calling this at once start one broker: the others wait for it.
 */
export async function localKafkaUp(
  options: { readonly log?: Log; readonly timeoutMs?: number } = {},
): Promise<UpResult> {
  const log = options.log ?? quiet;
  const timeoutMs = options.timeoutMs ?? 90_000;
  const local = localKafka();
  const config: KafkaConfig = { brokers: [local.bootstrap] };
  mkdirSync(local.stateDir, { recursive: true });
  return withFileLock(
    path.join(local.stateDir, 'up.lock'),
    'another start of the local Kafka',
    10 * 60_000,
    async () => {
      const existing = await runningPid(local);
      if (existing !== undefined) {
        const clusterId = await waitForKafka(config, {
          timeoutMs,
          gone: () => (isAlive(existing) ? undefined : `the local Kafka (pid ${existing}) exited`),
        }).catch((error: unknown) => {
          throw new KafkaSetupError(
            `the local Kafka (pid ${existing}) runs but does not answer: ${String(error)}\n` +
              `its log (${local.logFile}):\n${logTail(local.logFile)}`,
          );
        });
        return { local, pid: existing, started: false, clusterId };
      }
      rmSync(local.pidFile, { force: true });
      if (await portInUse(local.port)) {
        const clusterId = await waitForKafka(config, { timeoutMs: 5_000 }).catch(() => {
          throw new KafkaSetupError(
            `127.0.0.1:${local.port} is taken by a process that does not answer as Kafka; stop ` +
              'it or choose another port with TRIBUTARY_SERVICES_KAFKA_PORT',
          );
        });
        log(`a Kafka not started by services:up answers at ${local.bootstrap}: using it`);
        return { local, pid: undefined, started: false, clusterId };
      }
      await checkJava();
      const libDir = await resolveKafkaJars({ version: local.version, log });
      mkdirSync(local.dataDir, { recursive: true });
      writeFileSync(
        local.propertiesFile,
        serverProperties({
          port: local.port,
          controllerPort: local.controllerPort,
          dataDir: local.dataDir,
        }),
        'utf8',
      );
      if (
        await formatStorage({
          libDir,
          propertiesFile: local.propertiesFile,
          dataDir: local.dataDir,
        })
      )
        log(`formatted the storage in ${local.dataDir}`);
      if (existsSync(local.logFile) && statSync(local.logFile).size > 0)
        renameSync(local.logFile, `${local.logFile}.1`);
      const out = openSync(local.logFile, 'a');
      let child: ChildProcess;
      try {
        child = spawn(
          javaBinary(),
          brokerJavaArgs({ libDir, propertiesFile: local.propertiesFile }),
          {
            cwd: local.stateDir,
            detached: true,
            stdio: ['ignore', out, out],
          },
        );
      } finally {
        closeSync(out);
      }
      const spawned = Date.now();
      let spawnError: Error | undefined;
      child.once('error', (error) => (spawnError = error));
      child.unref();
      const pid = child.pid;
      if (pid === undefined) {
        await sleep(0); // let the 'error' event arrive
        throw new KafkaSetupError(`cannot run ${javaBinary()}: ${spawnError?.message ?? 'no pid'}`);
      }
      writeFileSync(local.pidFile, `${pid}\n`, 'utf8');
      log(
        `started Kafka ${local.version} (pid ${pid}); waiting for it to answer at ${local.bootstrap}`,
      );
      try {
        const clusterId = await waitForKafka(config, {
          timeoutMs,
          gone: () =>
            child.exitCode !== null || child.signalCode !== null
              ? `Kafka exited (${child.exitCode ?? child.signalCode}) before it answered`
              : undefined,
        });
        return {
          local,
          pid,
          started: true,
          clusterId,
          startSeconds: (Date.now() - spawned) / 1000,
        };
      } catch (error) {
        if (isAlive(pid)) process.kill(pid, 'SIGKILL');
        rmSync(local.pidFile, { force: true });
        const reason = error instanceof Error ? error.message : String(error);
        throw new KafkaSetupError(
          `${reason}\nits log (${local.logFile}):\n${logTail(local.logFile)}\n` +
            `(to start from scratch: npm run services:down, then remove ${local.stateDir})`,
        );
      }
    },
  );
}

/** Waits until `pid` is gone, up to `timeoutMs`; true when it is. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

/**
 * Stops the local broker (of any cached version) on its port: SIGTERM, then SIGKILL after
 * `timeoutMs`; removes the pid file. Returns the pids stopped.
 */
export async function localKafkaDown(
  options: { readonly log?: Log; readonly timeoutMs?: number } = {},
): Promise<number[]> {
  const log = options.log ?? quiet;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const versions = existsSync(cacheDir())
    ? readdirSync(cacheDir())
        .filter((name) => name.startsWith('kafka-'))
        .map((name) => name.slice('kafka-'.length))
    : [];
  const stopped: number[] = [];
  for (const version of versions) {
    const local = localKafka(version);
    if (!existsSync(local.pidFile)) continue;
    const pid = await runningPid(local);
    if (pid !== undefined) {
      log(`stopping Kafka ${version} (pid ${pid}) at ${local.bootstrap}`);
      process.kill(pid, 'SIGTERM');
      if (!(await waitForExit(pid, timeoutMs))) {
        log(`Kafka (pid ${pid}) still runs after ${Math.round(timeoutMs / 1000)} s: SIGKILL`);
        if (isAlive(pid)) process.kill(pid, 'SIGKILL');
        await waitForExit(pid, 10_000);
      }
      stopped.push(pid);
    }
    try {
      unlinkSync(local.pidFile);
    } catch {
      // already gone
    }
  }
  return stopped;
}
