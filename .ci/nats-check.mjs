// Checks that a NATS server with JetStream answers at the URL given (default NATS_URL, then
// nats://127.0.0.1:4222). Exit status: 0 it does, 1 nothing answers, 2 a server answers but
// JetStream is not enabled for this account. Used by .ci/run before the tests.
import process from 'node:process';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

const args = process.argv.slice(2);
const quiet = args.includes('--quiet');
const url =
  args.find((a) => !a.startsWith('--')) ?? process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

let nc;
try {
  nc = await connect({ servers: url, timeout: 2000, maxReconnectAttempts: 0, reconnect: false });
} catch (error) {
  if (!quiet) process.stderr.write(`nats-check: nothing answers at ${url}: ${error.message}\n`);
  process.exit(1);
}
try {
  const jsm = await jetstreamManager(nc, { timeout: 2000 });
  const info = await jsm.getAccountInfo();
  process.stdout.write(
    `nats-check: NATS ${nc.info?.version ?? '?'} at ${url}, JetStream on ` +
      `(${info.streams} streams, ${info.storage} bytes stored)\n`,
  );
} catch (error) {
  process.stderr.write(
    `nats-check: NATS at ${url} answers, but JetStream does not: ${error.message}\n`,
  );
  await nc.close();
  process.exit(2);
}
await nc.close();
