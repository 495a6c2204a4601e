/**
 * `npm run services:up` / `npm run services:down` (`status` too): the local services the tests of
 * the Kafka backend and source and of the RocketMQ source need, without Docker, from jars resolved
 * once from Maven Central:
 *
 * - Kafka: one broker (KRaft, single node) on 127.0.0.1:9092 (scripts/kafka.ts);
 * - RocketMQ 5: a name server on 127.0.0.1:9876 and one JVM with a broker (127.0.0.1:10911) and the
 *   gRPC proxy in local mode on 127.0.0.1:8081 (scripts/rocketmq.ts).
 *
 * `up` starts whichever does not answer yet, both at once (on two cores the JVMs start about as fast
 * side by side as one after the other, and the waits overlap), and prints KAFKA_BROKERS,
 * ROCKETMQ_ENDPOINTS and ROCKETMQ_NAMESRV_ADDR. A service name after the command (`up rocketmq`)
 * limits it to that service.
 *
 * Environment: TRIBUTARY_SERVICES_KAFKA_PORT (9092), TRIBUTARY_SERVICES_KAFKA_CONTROLLER_PORT (the
 * port + 1), TRIBUTARY_SERVICES_KAFKA_VERSION; TRIBUTARY_SERVICES_ROCKETMQ_GRPC_PORT (8081),
 * TRIBUTARY_SERVICES_ROCKETMQ_PROXY_REMOTING_PORT (the gRPC port + 1),
 * TRIBUTARY_SERVICES_ROCKETMQ_NAMESRV_PORT (9876), TRIBUTARY_SERVICES_ROCKETMQ_BROKER_PORT (10911;
 * the broker also takes the port - 2 and + 1), TRIBUTARY_SERVICES_ROCKETMQ_VERSION;
 * TRIBUTARY_SERVICES_CACHE (the jar and state cache, default `${XDG_CACHE_HOME:-~/.cache}/tributary`).
 */
import {
  describeCluster,
  kafkaVersion,
  localKafka,
  localKafkaDown,
  localKafkaUp,
  ServiceSetupError,
} from './kafka.js';
import {
  localRocketmq,
  localRocketmqDown,
  localRocketmqUp,
  probeRocketmq,
  rocketmqVersion,
} from './rocketmq.js';

const log = (line: string): void => console.log(`services: ${line}`);

interface Service {
  readonly title: () => string;
  readonly up: () => Promise<void>;
  readonly down: () => Promise<void>;
  readonly status: () => Promise<void>;
}

const kafka: Service = {
  title: () => `Kafka ${kafkaVersion()}`,
  up: async () => {
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
  },
  down: async () => {
    const stopped = await localKafkaDown({ log });
    const local = localKafka();
    log(
      stopped.length === 0
        ? `no Kafka started by services:up runs at ${local.bootstrap}`
        : `Kafka at ${local.bootstrap} stopped`,
    );
  },
  status: async () => {
    const local = localKafka();
    try {
      const clusterId = await describeCluster({ brokers: [local.bootstrap] });
      log(`Kafka answers at ${local.bootstrap} (cluster ${clusterId})`);
    } catch (error) {
      log(`no Kafka answers at ${local.bootstrap} (${(error as Error).message})`);
      process.exitCode = 1;
    }
  },
};

const rocketmq: Service = {
  title: () => `RocketMQ ${rocketmqVersion()}`,
  up: async () => {
    const result = await localRocketmqUp({ log });
    const { local, pids } = result;
    const where = `${local.endpoints} (name server ${local.namesrvAddr})`;
    if (result.started && pids !== undefined) {
      log(
        `RocketMQ ${local.version} is up at ${where} (name server pid ${pids.namesrv}, ` +
          `broker and proxy pid ${pids.proxy}; took a message ` +
          `${result.startSeconds?.toFixed(1)} s after the first JVM started)`,
      );
    } else if (pids !== undefined) {
      log(
        `RocketMQ ${local.version} is already running at ${where} (pids ${pids.namesrv}, ${pids.proxy})`,
      );
    }
    if (pids !== undefined) {
      log(
        `output ${local.stateDir}/{namesrv,proxy}.out, logs ${local.logsDir}, store ` +
          `${local.storeDir}; stop it with npm run services:down`,
      );
    }
    console.log(`ROCKETMQ_ENDPOINTS=${local.endpoints}`);
    console.log(`ROCKETMQ_NAMESRV_ADDR=${local.namesrvAddr}`);
  },
  down: async () => {
    const stopped = await localRocketmqDown({ log });
    const local = localRocketmq();
    log(
      stopped.length === 0
        ? `no RocketMQ started by services:up runs at ${local.endpoints}`
        : `RocketMQ at ${local.endpoints} stopped`,
    );
  },
  status: async () => {
    const local = localRocketmq();
    try {
      const messageId = await probeRocketmq(local);
      log(`RocketMQ takes messages at ${local.endpoints} (probe message ${messageId})`);
    } catch (error) {
      log(`RocketMQ does not take messages at ${local.endpoints} (${(error as Error).message})`);
      process.exitCode = 1;
    }
  },
};

const services: Record<string, Service> = { kafka, rocketmq };
const commands = ['up', 'down', 'status'] as const;
type Command = (typeof commands)[number];

const [name = '', ...only] = process.argv.slice(2);
const chosen = only.length === 0 ? Object.keys(services) : only;
if (!(commands as readonly string[]).includes(name) || chosen.some((s) => !(s in services))) {
  console.error('usage: node dist-scripts/scripts/services.js up|down|status [kafka] [rocketmq]');
  process.exitCode = 2;
} else {
  const command = name as Command;
  // Each service has its own ports, state and lock: they start (and stop) side by side.
  const results = await Promise.allSettled(
    chosen.map(async (key) => {
      const service = services[key] as Service;
      try {
        await service[command]();
      } catch (error) {
        const message = error instanceof ServiceSetupError ? error.message : String(error);
        console.error(`services: ${command} failed (${service.title()}): ${message}`);
        throw error;
      }
    }),
  );
  if (results.some((result) => result.status === 'rejected')) process.exitCode = 1;
}
