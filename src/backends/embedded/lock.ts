/**
 * One process per data dir: a lock file holding the owner's pid, created exclusively. A lock left
 * by a process that is gone (crash, kill -9) is taken over.
 */
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TributaryError } from '../../core/errors.js';

export const LOCK_FILE = 'tributary.lock';

/** Lock files this process holds: a lock naming our own pid but not held here is stale. */
const held = new Set<string>();

export interface DataDirLock {
  readonly path: string;
  release(): void;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function inUse(dataDir: string, path: string, pid: number): TributaryError {
  const who = pid === process.pid ? `process ${pid} (this process)` : `process ${pid}`;
  return new TributaryError(
    'BACKEND_UNAVAILABLE',
    `data dir ${dataDir} is in use by ${who}; if no Tributary runs there, delete ${path}`,
  );
}

export function acquireDataDirLock(dataDir: string): DataDirLock {
  const path = join(dataDir, LOCK_FILE);
  if (held.has(path)) throw inUse(dataDir, path, process.pid);
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx' });
      held.add(path);
      return { path, release: () => releaseLock(path) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = readOwner(path);
    if (owner !== undefined && owner !== process.pid && isAlive(owner)) {
      throw inUse(dataDir, path, owner);
    }
    // Stale: its process is gone (or it is ours from a previous life with the same pid).
    try {
      unlinkSync(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  throw new TributaryError('BACKEND_UNAVAILABLE', `could not take the lock ${path}`);
}

function releaseLock(path: string): void {
  if (!held.delete(path)) return;
  try {
    if (readOwner(path) === process.pid) unlinkSync(path);
  } catch {
    // Already gone.
  }
}
