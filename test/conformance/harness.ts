/**
 * What a backend gives the conformance suites. The suites use only the contracts in
 * src/backends/contracts.ts, so every backend (embedded, NATS, Kafka) runs the same tests.
 */
import type { Backend } from '../../src/backends/contracts.js';

export interface BackendHarness {
  /**
   * A ready backend. Tests use their own broker names and namespaces, so backends opened by
   * different tests may share data (one server), or not (one data dir each).
   */
  open(): Promise<Backend>;
  /**
   * Durability tests: a new instance over the same data as the latest `open()` or `reopen()`, which
   * the test has closed first. Absent: the durability tests are skipped.
   */
  reopen?(): Promise<Backend>;
  /** Releases everything the harness created (closes what is still open, removes data). */
  cleanup(): Promise<void>;
  /**
   * How the members of one subscription share its events. `event` (the default): any member with
   * room takes the next event, as from a queue (embedded, NATS). `partition`: each member owns
   * some partitions of the log and only it takes their events, as in a Kafka consumer group; an
   * event waits for its partition's owner even when another member has room.
   */
  readonly sharing?: 'event' | 'partition';
}
