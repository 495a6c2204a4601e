/**
 * The Kafka side of the benchmarks: the cluster they use (KAFKA_BROKERS, comma separated, default
 * 127.0.0.1:9092, the broker of `npm run services:up`), the partitions of every broker topic the
 * servers create, and the removal of what a server (or a raw baseline) left behind. Every topic a
 * `tributary serve --backend kafka --kafka-prefix <prefix>` creates starts with the prefix
 * (`<prefix>.default.default`, `.redrive`, `<prefix>.resources`, `<prefix>.notes`,
 * `<prefix>.dead`), and so does every consumer group (`<prefix>.default.default.<trigger uid>`,
 * and the groups of the resource readers), so deleting what starts with it removes all of it.
 * (test/support/kafka.ts does the same for the tests; importing it would compile the tests'
 * harness into dist-bench.)
 */
import { Kafka, logLevel, type Admin } from 'kafkajs';

export const KAFKA_BROKERS: readonly string[] = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092')
  .split(',')
  .map((b) => b.trim())
  .filter((b) => b !== '');

/** Partitions of a broker's topic (`--kafka-partitions`), and of the raw baseline's topic. */
export const KAFKA_PARTITIONS = 4;

/** A quiet kafkajs client of the benchmark cluster, failing fast when it does not answer. */
export function kafkaClient(clientId = 'tributary-bench', brokers = KAFKA_BROKERS): Kafka {
  return new Kafka({
    clientId,
    brokers: [...brokers],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 2_000,
    requestTimeout: 30_000,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 2_000 },
  });
}

async function withAdmin<T>(use: (admin: Admin) => Promise<T>, kafka = kafkaClient()): Promise<T> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await use(admin);
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** Why Kafka cannot be used at `brokers`, or undefined when it answers a describeCluster. */
export async function kafkaProblem(brokers = KAFKA_BROKERS): Promise<string | undefined> {
  const kafka = new Kafka({
    clientId: 'tributary-bench-check',
    brokers: [...brokers],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1_000,
    requestTimeout: 2_000,
    retry: { retries: 0 },
  });
  try {
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error('no answer in 3 s')), 3_000).unref(),
    );
    await Promise.race([withAdmin((admin) => admin.describeCluster(), kafka), timeout]);
    return undefined;
  } catch (error) {
    return `no Kafka answers at ${brokers.join(',')} (KAFKA_BROKERS; ${(error as Error).message})`;
  }
}

/**
 * Deletes every topic and consumer group whose name starts with `prefix` (the groups must have no
 * members left: the server has stopped); their names. A group that cannot be deleted is reported
 * on stderr, not thrown: the next run's prefix is a fresh one anyway.
 */
export async function removeKafkaPrefix(
  prefix: string,
): Promise<{ topics: string[]; groups: string[] }> {
  return withAdmin(async (admin) => {
    const { groups: all } = await admin.listGroups();
    const groups = all.map((g) => g.groupId).filter((id) => id.startsWith(prefix));
    if (groups.length > 0) {
      try {
        await admin.deleteGroups(groups);
      } catch (error) {
        process.stderr.write(
          `  kafka: some of ${groups.length} groups ${prefix}* not deleted: ${(error as Error).message}\n`,
        );
      }
    }
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(prefix));
    if (topics.length > 0) await admin.deleteTopics({ topics, timeout: 30_000 });
    return { topics, groups };
  });
}
