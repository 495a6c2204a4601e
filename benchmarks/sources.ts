/**
 * Sources, as they land: GitHub webhook deliveries per second end to end (issue 8), and Kafka
 * source records per second against a raw kafkajs consumer (issue 9). No source adapter exists yet
 * (sources are stored and report AdapterUnavailable), so every backend is recorded as skipped with
 * the reason; the scenario is written with the first adapter.
 *
 *   npm run bench:sources [-- --backends ...]
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { availability } from './lib/backends.js';
import { options, writeReport } from './lib/harness.js';
import { ROOT } from './lib/paths.js';

const adapters = readdirSync(path.join(ROOT, 'adapters')).filter((f) => f !== 'README.md');
const reason =
  adapters.length === 0
    ? 'no source adapters yet'
    : `source adapters exist (${adapters.join(', ')}) but this scenario does not measure them yet`;

const opts = options();
for (const backend of opts.backends) {
  const started = performance.now();
  const available = await availability(backend);
  const skipped = available.run ? reason : `${available.reason}; ${reason}`;
  writeReport(
    { scenario: 'sources', backend, skipped, markdown: '', goals: [], data: {} },
    opts,
    started,
  );
}
