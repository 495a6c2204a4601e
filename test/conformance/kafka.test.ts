/**
 * The backend conformance suites on the Kafka backend, against the cluster of test/support/kafka.ts
 * (KAFKA_BROKERS, or the local Kafka of `npm run services:up`). Broker topics have one partition
 * here, so that the suite's ordering checks hold for events without a partitionkey; sharing
 * across partitions is in test/integration/kafka-replicas.test.ts.
 */
import { afterAll, describe } from 'vitest';
import type { Backend } from '../../src/backends/contracts.js';
import { createKafkaBackend } from '../../src/backends/kafka/index.js';
import {
  removeKafkaPrefix,
  KAFKA_BROKERS,
  kafkaRequired,
  uniqueTopicPrefix,
} from '../support/kafka.js';
import type { BackendHarness } from './harness.js';
import { eventLogConformance } from './event-log.suite.js';
import { leaseConformance } from './lease.suite.js';
import { ledgerConformance } from './ledger.suite.js';
import { resourceStoreConformance } from './resource-store.suite.js';

const available = await kafkaRequired('the Kafka conformance suites');
const prefix = uniqueTopicPrefix();
const opened = new Set<Backend>();

async function open(): Promise<Backend> {
  const backend = await createKafkaBackend({
    brokers: KAFKA_BROKERS,
    prefix,
    topics: { partitions: 1 },
  });
  opened.add(backend);
  return backend;
}

const harness: BackendHarness = {
  open,
  // Everything lives in the cluster: a new backend with the same prefix sees it all.
  reopen: open,
  sharing: 'partition',
  cleanup: async () => {
    for (const backend of opened) await backend.close().catch(() => {});
    opened.clear();
    await removeKafkaPrefix(prefix);
  },
};
afterAll(() => (available ? harness.cleanup() : undefined));

describe.skipIf(!available)('Kafka backend', () => {
  eventLogConformance('kafka', harness);
  resourceStoreConformance('kafka', harness);
  ledgerConformance('kafka', harness);
  leaseConformance('kafka', harness);
});
