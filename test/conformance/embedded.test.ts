/** The backend conformance suites, run on the embedded (SQLite) backend. */
import { afterAll } from 'vitest';
import { embeddedHarness } from '../support/embedded.js';
import { eventLogConformance } from './event-log.suite.js';
import { leaseConformance } from './lease.suite.js';
import { ledgerConformance } from './ledger.suite.js';
import { resourceStoreConformance } from './resource-store.suite.js';

const harness = embeddedHarness();
afterAll(() => harness.cleanup());

eventLogConformance('embedded', harness);
resourceStoreConformance('embedded', harness);
ledgerConformance('embedded', harness);
leaseConformance('embedded', harness);
