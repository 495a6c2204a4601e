/**
 * `npm run services:up` / `npm run services:down` (`status` too): the local services the tests of
 * the Kafka backend and source need, without Docker. Today that is one Kafka broker (KRaft, single
 * node) on 127.0.0.1:9092, from jars resolved once from Maven Central (see scripts/kafka.ts).
 *
 * Environment: TRIBUTARY_SERVICES_KAFKA_PORT (9092), TRIBUTARY_SERVICES_KAFKA_CONTROLLER_PORT (the
 * port + 1), TRIBUTARY_SERVICES_KAFKA_VERSION, TRIBUTARY_SERVICES_CACHE (the jar and state cache,
 * default `${XDG_CACHE_HOME:-~/.cache}/tributary`).
 */
import {
  describeCluster,
  kafkaVersion,
  KafkaSetupError,
  localKafka,
  localKafkaDown,
  localKafkaUp,
} from './kafka.js';

const log = (line: string): void => console.log(`services: ${line}`);

async function up(): Promise<void> {
  const result = await localKafkaUp({ log });
  const { local } = result;
  if (result.started) {
    log(
      `Kafka ${local.version} is up at ${local.bootstrap} (pid ${result.pid}, answered ` +
        `${result.startSeconds?.toFixed(1)} s after the JVM started)`,
    );
  } else if (result.pid !== undefined) {
    log(`Kafka ${local.version} is already running at ${local.bootstrap} (pid ${result.pid})`);
  }
  if (result.pid !== undefined) {
    log(`log ${local.logFile}, data ${local.dataDir}; stop it with npm run services:down`);
  }
  console.log(`KAFKA_BROKERS=${local.bootstrap}`);
}

async function down(): Promise<void> {
  const stopped = await localKafkaDown({ log });
  const local = localKafka();
  log(
    stopped.length === 0
      ? `no Kafka started by services:up runs at ${local.bootstrap}`
      : `Kafka at ${local.bootstrap} stopped`,
  );
}

async function status(): Promise<void> {
  const local = localKafka();
  try {
    const clusterId = await describeCluster({ brokers: [local.bootstrap] });
    log(`Kafka answers at ${local.bootstrap} (cluster ${clusterId})`);
  } catch (error) {
    log(`no Kafka answers at ${local.bootstrap} (${(error as Error).message})`);
    process.exitCode = 1;
  }
}

const commands: Record<string, () => Promise<void>> = { up, down, status };
const name = process.argv[2] ?? '';
const command = commands[name];
if (command === undefined) {
  console.error('usage: node dist-scripts/scripts/services.js up|down|status');
  process.exitCode = 2;
} else {
  try {
    await command();
  } catch (error) {
    const message = error instanceof KafkaSetupError ? error.message : String(error);
    console.error(`services: ${name} failed (Kafka ${kafkaVersion()}): ${message}`);
    process.exitCode = 1;
  }
}
