/** The replica tests (replicas.suite.ts) with `--backend nats`. */
import { natsRequired, NATS_URL, removeStreams, uniquePrefix } from '../support/nats.js';
import { replicaTests } from './replicas.suite.js';

const prefix = uniquePrefix();
replicaTests({
  name: 'NATS',
  available: await natsRequired('the NATS replica tests'),
  // A short ack wait, so that a killed replica's deliveries come back soon.
  args: [
    '--backend',
    'nats',
    '--nats-url',
    NATS_URL,
    '--nats-prefix',
    prefix,
    '--nats-ack-wait',
    '2s',
  ],
  // Only what the killed replica had out comes again.
  maxDuplicates: 8,
  cleanup: async () => {
    await removeStreams(prefix);
  },
});
