import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { ImageStore } from '../core/ports.js';

/**
 * Images in a local folder: a key is a relative path ("gen-123/0.png"). A TTL is written as an expiry time (ms since
 * the epoch) in a sidecar under `.expiry/<key>`, so that `get` can refuse an expired image and `sweepExpired` can find
 * every expiring one without reading the images themselves.
 */

const EXPIRY_DIR = '.expiry';

export interface LocalImageStore extends ImageStore {
  readonly root: string;
  /** Deletes every image whose TTL has passed; returns how many. Expired images are already invisible to `get`. */
  sweepExpired(): Promise<number>;
}

/**
 * Sweeps expired images (previews) every `intervalMs` until the returned function is called. A failed sweep is
 * reported and the next one runs; the timer does not keep the process alive.
 */
export function startExpirySweep(store: Pick<LocalImageStore, 'sweepExpired'>, intervalMs: number, onError: (error: unknown) => void): () => void {
  const timer = setInterval(() => void store.sweepExpired().catch(onError), intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** Keys come from our own code, but they become paths: refuse anything that could leave the folder. */
function checkKey(key: string): void {
  const segments = key.split('/');
  const valid =
    key.length > 0 &&
    key.length <= 512 &&
    !key.includes('\\') &&
    !key.includes('\0') &&
    segments.every((segment) => segment.length > 0 && !segment.startsWith('.'));
  if (!valid) throw new Error(`image key ${JSON.stringify(key)} must be a relative path of names that do not start with "."`);
}

async function writeFileAtomically(path: string, bytes: Buffer | string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  // Readers never see half an image: the bytes land under a temporary name and are renamed into place.
  const temporary = `${path}.${randomBytes(6).toString('hex')}.partial`;
  await writeFile(temporary, bytes);
  await rename(temporary, path);
}

export function createLocalImageStore(rootDir: string, options: { now?: () => Date } = {}): LocalImageStore {
  const root = resolve(rootDir);
  const now = options.now ?? (() => new Date());
  const imagePath = (key: string) => join(root, ...key.split('/'));
  const expiryPath = (key: string) => join(root, EXPIRY_DIR, ...key.split('/'));

  const readExpiryMs = async (key: string): Promise<number | null> => {
    const text = await readFile(expiryPath(key), 'utf8').catch(() => null);
    return text === null ? null : Number(text);
  };

  const remove = async (key: string) => {
    await rm(imagePath(key), { force: true });
    await rm(expiryPath(key), { force: true });
  };

  return {
    root,

    async put(key, bytes, _contentType, putOptions) {
      checkKey(key);
      const ttlSeconds = putOptions?.ttlSeconds;
      if (ttlSeconds !== undefined) {
        await writeFileAtomically(expiryPath(key), String(now().getTime() + ttlSeconds * 1000));
      } else {
        await rm(expiryPath(key), { force: true });
      }
      await writeFileAtomically(imagePath(key), bytes);
    },

    async get(key) {
      checkKey(key);
      const expiresAtMs = await readExpiryMs(key);
      if (expiresAtMs !== null && expiresAtMs <= now().getTime()) {
        await remove(key);
        return null;
      }
      return readFile(imagePath(key)).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return null;
        throw error;
      });
    },

    async delete(key) {
      checkKey(key);
      await remove(key);
    },

    async deletePrefix(prefix) {
      checkKey(prefix.replace(/\/$/, ''));
      if (!prefix.endsWith('/')) throw new Error(`image key prefix ${JSON.stringify(prefix)} must name a folder (end with "/")`);
      await rm(imagePath(prefix), { recursive: true, force: true });
      await rm(expiryPath(prefix), { recursive: true, force: true });
    },

    async sweepExpired() {
      const expiryRoot = join(root, EXPIRY_DIR);
      const entries = await readdir(expiryRoot, { recursive: true, withFileTypes: true }).catch(() => []);
      let removed = 0;
      for (const entry of entries) {
        if (!entry.isFile() || entry.name.endsWith('.partial')) continue;
        const key = relative(expiryRoot, join(entry.parentPath, entry.name)).split(sep).join('/');
        const expiresAtMs = await readExpiryMs(key);
        if (expiresAtMs !== null && expiresAtMs <= now().getTime()) {
          await remove(key);
          removed += 1;
        }
      }
      return removed;
    },
  };
}
