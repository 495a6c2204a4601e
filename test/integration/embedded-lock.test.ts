/** The embedded backend takes its data dir for one process at a time. */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createEmbeddedBackend, LOCK_FILE } from '../../src/backends/embedded/index.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

afterAll(() => removeTempDirs());

/** The pid of a process that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  expect(child.status).toBe(0);
  return child.pid;
}

describe('embedded backend: data dir lock', () => {
  it('refuses a second open of the same data dir while the first is open', async () => {
    const dataDir = tempDir();
    const first = await createEmbeddedBackend({ dataDir });
    try {
      await expect(createEmbeddedBackend({ dataDir })).rejects.toThrow(
        new RegExp(`data dir ${dataDir} is in use by process ${process.pid}`),
      );
      await expect(createEmbeddedBackend({ dataDir })).rejects.toMatchObject({
        code: 'BACKEND_UNAVAILABLE',
      });
      // The failed attempts did not disturb the open backend.
      await first.eventLog.ensureBroker({ namespace: 'default', name: 'b' });
    } finally {
      await first.close();
    }
    const second = await createEmbeddedBackend({ dataDir });
    await second.close();
  });

  it('names the live process that holds the lock', async () => {
    const dataDir = tempDir();
    // Our parent (the test runner) is alive and is not this process.
    writeFileSync(join(dataDir, LOCK_FILE), `${process.ppid}\n`);
    await expect(createEmbeddedBackend({ dataDir })).rejects.toThrow(
      `data dir ${dataDir} is in use by process ${process.ppid}`,
    );
  });

  it('takes over a lock left by a process that is gone', async () => {
    const dataDir = tempDir();
    const lock = join(dataDir, LOCK_FILE);
    writeFileSync(lock, `${deadPid()}\n`);
    const backend = await createEmbeddedBackend({ dataDir });
    expect(readFileSync(lock, 'utf8').trim()).toBe(String(process.pid));
    await backend.close();
  });

  it('takes over a lock naming this pid that this process does not hold (a previous life)', async () => {
    const dataDir = tempDir();
    const lock = join(dataDir, LOCK_FILE);
    writeFileSync(lock, `${process.pid}\n`);
    const backend = await createEmbeddedBackend({ dataDir });
    await backend.close();
    writeFileSync(lock, 'garbage');
    const again = await createEmbeddedBackend({ dataDir });
    await again.close();
  });

  it('releases the lock on close, and close is idempotent', async () => {
    const dataDir = tempDir();
    const backend = await createEmbeddedBackend({ dataDir });
    expect(existsSync(join(dataDir, LOCK_FILE))).toBe(true);
    await Promise.all([backend.close(), backend.close()]);
    await backend.close();
    expect(existsSync(join(dataDir, LOCK_FILE))).toBe(false);
  });
});
