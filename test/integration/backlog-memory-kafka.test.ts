/**
 * A million events waiting for a slow subscriber on the Kafka backend: they stay in the topic, not
 * in the server's memory (backlog-memory.suite.ts). The shared cluster holds them under a prefix
 * of the file's own; its topics and consumer groups are deleted afterwards.
 */
import { backlogMemorySuite } from './backlog-memory.suite.js';
import {
  removeKafkaPrefix,
  KAFKA_BROKERS,
  kafkaRequired,
  uniqueTopicPrefix,
} from '../support/kafka.js';

const prefix = uniqueTopicPrefix();

backlogMemorySuite({
  name: 'kafka',
  available: await kafkaRequired('the backlog memory test on Kafka'),
  start: async () => [
    '--backend',
    'kafka',
    '--kafka-brokers',
    KAFKA_BROKERS.join(','),
    '--kafka-prefix',
    prefix,
  ],
  cleanup: () => removeKafkaPrefix(prefix),
  timeoutMs: 600_000,
});
