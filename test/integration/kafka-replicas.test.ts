/**
 * The replica tests (replicas.suite.ts) with `--backend kafka`: topics of three partitions, so
 * that the two replicas' consumers share each trigger's partitions.
 */
import {
  removeKafkaPrefix,
  KAFKA_BROKERS,
  kafkaRequired,
  uniqueTopicPrefix,
} from '../support/kafka.js';
import { replicaTests } from './replicas.suite.js';

const prefix = uniqueTopicPrefix();
replicaTests({
  name: 'Kafka',
  available: await kafkaRequired('the Kafka replica tests'),
  args: [
    '--backend',
    'kafka',
    '--kafka-brokers',
    KAFKA_BROKERS.join(','),
    '--kafka-prefix',
    prefix,
    '--kafka-partitions',
    '3',
  ],
  // The rebalance after the kill takes every partition back (kafkajs's eager protocol): what
  // either replica had out and not yet committed comes again.
  maxDuplicates: 16,
  cleanup: () => removeKafkaPrefix(prefix),
});
