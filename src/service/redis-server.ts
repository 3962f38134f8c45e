import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { ImagineError } from '../core/errors.js';

/**
 * `npm start` must work on a machine where nobody set up Redis: when the default Redis is not answering, the
 * all-in-one role starts `redis-server` from PATH on a private loopback port, persisting to the data directory (append-only
 * file) so queued jobs survive a restart.
 */
export interface RedisEndpoint {
  url: string;
  /** Set when this process started the server. */
  privateServer?: ChildProcess;
  stop(): Promise<void>;
}

export async function redisAnswers(url: string, timeoutMs = 1_000): Promise<boolean> {
  const probe = new Redis(url, { lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => {});
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

export async function ensureRedis(options: { url: string; mayStartPrivate: boolean; dataDir: string }): Promise<RedisEndpoint> {
  if (await redisAnswers(options.url)) return { url: options.url, stop: async () => {} };
  if (!options.mayStartPrivate) {
    throw new ImagineError('transient', `Redis is not answering at ${maskedUrl(options.url)}. Start it, or fix REDIS_URL.`);
  }
  const dir = join(options.dataDir, 'redis');
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const server = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', '--maxmemory-policy', 'noeviction'],
    // Its own process group: a Ctrl-C in the terminal reaches the whole foreground group, and Redis must outlive it
    // until the worker has finished or handed back its job; stop() (or this process's exit) ends it.
    { stdio: 'ignore', detached: true },
  );
  const started = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.once('spawn', () => resolve(true));
  });
  if (!started) {
    throw new ImagineError(
      'transient',
      `No Redis is answering at ${maskedUrl(options.url)} and there is no redis-server on PATH to start one. ` +
        'Install Redis (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set REDIS_URL to a running one.',
    );
  }
  const url = `redis://127.0.0.1:${port}`;
  for (let attempt = 0; attempt < 50 && !(await redisAnswers(url, 200)); attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const endWithThisProcess = () => server.kill('SIGTERM');
  process.once('exit', endWithThisProcess);
  const stop = async () => {
    process.off('exit', endWithThisProcess);
    if (server.exitCode !== null) return;
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
  };
  if (!(await redisAnswers(url))) {
    await stop();
    throw new ImagineError('transient', `redis-server was started on port ${port} but does not answer.`);
  }
  return { url, privateServer: server, stop };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function maskedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '****';
    return parsed.toString();
  } catch {
    return url;
  }
}
