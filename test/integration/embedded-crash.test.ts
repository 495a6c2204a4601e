/**
 * Crash durability: a child process appends events and prints each one whose append resolved;
 * it is killed with SIGKILL mid-stream; reopening the data dir must show every printed event.
 *
 * The child is a plain .mjs script that imports the compiled backend from dist/ (`npm test` builds
 * it first; otherwise run `npx tsc -p tsconfig.build.json`).
 */
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { LogMessage } from '../../src/backends/contracts.js';
import { createEmbeddedBackend } from '../../src/backends/embedded/index.js';
import { Collector } from '../support/collector.js';
import { deferred } from '../support/deferred.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

afterAll(() => removeTempDirs());

const compiled = resolve(import.meta.dirname, '../../dist/backends/embedded/index.js');

const childScript = (moduleUrl: string) => `
import { createEmbeddedBackend } from ${JSON.stringify(moduleUrl)};
const backend = await createEmbeddedBackend({ dataDir: process.argv[2] });
const broker = { namespace: 'crash', name: 'log' };
await backend.eventLog.ensureBroker(broker);
let next = 0;
async function producer(batch) {
  for (;;) {
    const ids = Array.from({ length: batch }, () => 'e-' + next++);
    const events = ids.map((id) => ({
      attributes: { specversion: '1.0', id, source: 'crash-test', type: 'crash', n: next },
      data: { kind: 'json', text: JSON.stringify({ id }) },
    }));
    await backend.eventLog.append(broker, events);
    process.stdout.write(ids.map((id) => 'ok ' + id + '\\n').join(''));
  }
}
for (let i = 0; i < 8; i++) void producer(1);
for (let i = 0; i < 2; i++) void producer(5);
`;

describe('embedded backend: crash', () => {
  it('keeps every event whose append resolved when the process is killed', async () => {
    if (!existsSync(compiled)) {
      throw new Error(
        `${compiled} is missing: build first with "npx tsc -p tsconfig.build.json" (npm test does)`,
      );
    }
    const dataDir = tempDir();
    const script = join(tempDir(), 'child.mjs');
    writeFileSync(script, childScript(pathToFileURL(compiled).href));

    const child = spawn(process.execPath, [script, dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const printed = new Set<string>();
    let stderr = '';
    let partial = '';
    const enough = deferred();
    const exited = deferred<NodeJS.Signals | null>();
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (line.startsWith('ok ')) printed.add(line.slice(3));
      if (printed.size >= 2000) enough.resolve();
    });
    child.on('exit', (_code, signal) => {
      exited.resolve(signal);
      enough.reject(new Error(`the child exited before the kill: ${stderr}`));
    });
    await enough.promise;
    child.kill('SIGKILL');
    expect(await exited.promise).toBe('SIGKILL');

    // The dead child's lock is stale: taken over.
    const backend = await createEmbeddedBackend({ dataDir });
    try {
      const broker = { namespace: 'crash', name: 'log' };
      const messages = new Collector<LogMessage>('after the crash', 20_000);
      const handle = await backend.eventLog.subscribe(
        { id: 'check', broker, start: { from: 'earliest' }, maxInFlight: 1000 },
        (message) => {
          messages.push(message);
          void message.ack();
        },
      );
      await backend.eventLog.append(broker, [
        { attributes: { specversion: '1.0', id: 'marker', source: 'crash-test', type: 'marker' } },
      ]);
      await messages.until(
        (items) => items.length > 0 && items[items.length - 1]!.event.attributes.id === 'marker',
        'the marker after the recovered events',
      );
      await handle.close();
      const ids = messages.items.map((message) => String(message.event.attributes.id));
      const stored = new Set(ids);
      const missing = [...printed].filter((id) => !stored.has(id));
      expect(missing, 'events whose append resolved before the kill').toEqual([]);
      expect(stored.size, 'no event is stored twice').toBe(ids.length);
      for (const message of messages.items.slice(0, -1)) {
        const id = String(message.event.attributes.id);
        expect(message.event.data).toEqual({ kind: 'json', text: JSON.stringify({ id }) });
      }
    } finally {
      await backend.close();
    }
  });
});
