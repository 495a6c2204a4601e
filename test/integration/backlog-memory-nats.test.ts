/**
 * A million events waiting for a slow subscriber on the NATS backend: they stay in JetStream, not
 * in the server's memory (backlog-memory.suite.ts). A private nats-server of the test's own holds
 * them, so that they do not fill the shared server's store; it is closed and its store removed
 * afterwards.
 */
import { backlogMemorySuite } from './backlog-memory.suite.js';
import { startNatsServer, skipWithoutNatsServer, type NatsServer } from '../support/nats-server.js';

let nats: NatsServer | undefined;

backlogMemorySuite({
  name: 'nats',
  available: !skipWithoutNatsServer,
  start: async () => {
    nats = await startNatsServer();
    return ['--backend', 'nats', '--nats-url', nats.url];
  },
  cleanup: async () => {
    await nats?.close();
  },
  timeoutMs: 600_000,
});
