import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ImageStore } from '../../src/core/ports.js';

/** An ImageStore in a folder (keys are relative paths), shared by the test and its worker processes. TTLs are ignored. */
export function createDirImageStore(root: string): ImageStore {
  return {
    async put(key, bytes) {
      const path = join(root, key);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, bytes);
    },
    async get(key) {
      return readFile(join(root, key)).catch(() => null);
    },
    async delete(key) {
      await rm(join(root, key), { force: true });
    },
    async deletePrefix(prefix) {
      await rm(join(root, prefix), { recursive: true, force: true });
    },
  };
}
