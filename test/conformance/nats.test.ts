/**
 * The backend conformance suites, run on the NATS JetStream backend against the server at
 * NATS_URL (default nats://127.0.0.1:4222). Without a server the file is skipped, or fails under
 * CI=true.
 */
import { afterAll, describe } from 'vitest';
import { natsHarness, natsRequired } from '../support/nats.js';
import { eventLogConformance } from './event-log.suite.js';
import { leaseConformance } from './lease.suite.js';
import { ledgerConformance } from './ledger.suite.js';
import { resourceStoreConformance } from './resource-store.suite.js';

const available = await natsRequired('the NATS conformance suites');
// A short ack wait: what a closed backend leaves unsettled comes back to the next one soon.
const harness = natsHarness({ streams: { ackWaitMs: 2_000 } });
afterAll(() => (available ? harness.cleanup() : undefined));

describe.skipIf(!available)('NATS backend', () => {
  eventLogConformance('nats', harness);
  resourceStoreConformance('nats', harness);
  ledgerConformance('nats', harness);
  leaseConformance('nats', harness);
});
