/**
 * The crash and outage suite (crash.suite.ts) on the NATS backend, with a nats-server of its own:
 * stopping it disturbs no other test.
 */
import { privateKafkaRequired } from '../support/kafka.js';
import { skipWithoutNatsServer, startNatsServer, type NatsServer } from '../support/nats-server.js';
import { CONCURRENCY, crashTests, lazyPrivateKafka } from './crash.suite.js';

let nats: NatsServer | undefined;
const upstream = lazyPrivateKafka();
crashTests({
  name: 'NATS',
  available: !skipWithoutNatsServer,
  upstreamAvailable: await privateKafkaRequired('the NATS crash suite (a KafkaSource upstream)'),
  start: async () => {
    nats = await startNatsServer();
    // A short ack wait: what the killed process had out comes back soon.
    return ['--backend', 'nats', '--nats-url', nats.url, '--nats-ack-wait', '2s'];
  },
  service: { stop: () => nats!.stop(), restart: () => nats!.restart() },
  upstream: upstream.get,
  cleanup: async () => {
    await nats?.close();
    await upstream.close();
  },
  maxDuplicates: {
    // What was out at the kill (at most CONCURRENCY), and acks of deliveries settled just before
    // it that the client had not flushed to the server yet (at most one more CONCURRENCY).
    kill: 2 * CONCURRENCY,
    // What the subscriber held when its port closed: at most CONCURRENCY.
    subscriber: CONCURRENCY,
    // Backend stopped: no bound; what the process had fetched keeps being delivered while the
    // server is away, and those acks may be lost. Upstream: no bound (see crash.suite.ts).
  },
});
