/**
 * A million events waiting for a slow subscriber on the embedded backend (SQLite): they stay in the
 * database, not in the server's memory (backlog-memory.suite.ts).
 */
import { backlogMemorySuite } from './backlog-memory.suite.js';

backlogMemorySuite({
  name: 'embedded',
  available: true,
  start: async () => ['--backend', 'embedded'],
  // The data directory is a temporary one of the suite's, removed with it.
  cleanup: async () => {},
  timeoutMs: 360_000,
});
