/**
 * The crash and outage suite (crash.suite.ts) on the Kafka backend, with a Kafka of its own. That
 * one Kafka is also the KafkaSource's upstream in case 4 (another topic): stopping it takes the
 * source's upstream and the broker's store away together, which starting a second JVM on this
 * small machine would not add much to.
 */
import { privateKafkaRequired, startPrivateKafka, type PrivateKafka } from '../support/kafka.js';
import { CONCURRENCY, crashTests } from './crash.suite.js';

const available = await privateKafkaRequired('the Kafka crash suite');
let kafka: PrivateKafka | undefined;
crashTests({
  name: 'Kafka',
  available,
  upstreamAvailable: available,
  start: async () => {
    kafka = await startPrivateKafka();
    return ['--backend', 'kafka', '--kafka-brokers', kafka.bootstrap, '--kafka-partitions', '2'];
  },
  service: { stop: () => kafka!.stop(), restart: () => kafka!.restart() },
  upstream: async () => kafka!,
  cleanup: async () => {
    await kafka?.close();
  },
  maxDuplicates: {
    // kill -9 and the backend stopped: no bound; what was done but not committed (offsets are
    // committed in order, one commit at a time per partition) comes again.
    // What the subscriber held when its port closed: at most CONCURRENCY.
    subscriber: CONCURRENCY,
  },
});
