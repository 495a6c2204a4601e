/** A conformance harness for the embedded backend: one fresh data dir per `open()`. */
import type { Backend } from '../../src/backends/contracts.js';
import {
  createEmbeddedBackend,
  type EmbeddedBackend,
  type EmbeddedBackendOptions,
} from '../../src/backends/embedded/index.js';
import type { BackendHarness } from '../conformance/harness.js';
import { removeTempDirs, tempDir } from './temp-dir.js';

export function embeddedHarness(
  options: Omit<EmbeddedBackendOptions, 'dataDir'> = {},
): Omit<BackendHarness, 'open'> & { open(): Promise<EmbeddedBackend> } {
  const open = new Set<Backend>();
  let lastDir: string | undefined;

  async function start(dataDir: string): Promise<EmbeddedBackend> {
    const backend = await createEmbeddedBackend({ ...options, dataDir });
    open.add(backend);
    return backend;
  }

  return {
    open: () => {
      lastDir = tempDir('tributary-embedded-');
      return start(lastDir);
    },
    reopen: async () => {
      if (lastDir === undefined) throw new Error('reopen() before open()');
      return start(lastDir);
    },
    cleanup: async () => {
      for (const backend of open) await backend.close();
      open.clear();
      removeTempDirs();
    },
  };
}
