/** The crash and outage suite (crash.suite.ts) on the embedded backend. */
import { privateKafkaRequired } from '../support/kafka.js';
import { CONCURRENCY, crashTests, lazyPrivateKafka } from './crash.suite.js';

const upstream = lazyPrivateKafka();
crashTests({
  name: 'embedded',
  available: true,
  upstreamAvailable: await privateKafkaRequired(
    'the embedded crash suite (a KafkaSource upstream)',
  ),
  start: async () => [],
  // The store is inside the service process: see case 3 in crash.suite.ts.
  service: undefined,
  upstream: upstream.get,
  cleanup: upstream.close,
  maxDuplicates: {
    // kill -9: no bound. The subscription's cursor is stored lazily with the next group commit,
    // so what was done after the last stored cursor comes again (docs/guarantees.md: duplicates).
    // What the subscriber held when its port closed comes again: at most CONCURRENCY.
    subscriber: CONCURRENCY,
  },
});
