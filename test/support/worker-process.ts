import { startWorker } from '../../src/service/worker.js';
import { createDirImageStore } from './dir-image-store.js';
import { createRedisPorts } from './redis-ports.js';
import { createTestEngine } from './test-engine.js';

/**
 * A real worker process for tests that kill workers: the test engine, the Redis-backed ports and the folder image store,
 * configured by the IMAGINE_TEST_WORKER JSON. Prints "ready" once it takes jobs; exits 0 after a graceful SIGTERM.
 */
const config = JSON.parse(process.env.IMAGINE_TEST_WORKER ?? '{}') as {
  redisUrl: string;
  prefix: string;
  portsRedisUrl: string;
  imageDir: string;
  stepDelayMs: number;
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  maxStalledCount?: number;
  shutdownDeadlineMs?: number;
};

const ports = createRedisPorts(config.portsRedisUrl, config.prefix);
const worker = await startWorker({
  redisUrl: config.redisUrl,
  prefix: config.prefix,
  engine: createTestEngine({ stepDelayMs: config.stepDelayMs }),
  ledger: ports.ledger,
  history: ports.history,
  images: createDirImageStore(config.imageDir),
  previewIntervalMs: 0,
  lockDurationMs: config.lockDurationMs,
  stalledIntervalMs: config.stalledIntervalMs,
  maxStalledCount: config.maxStalledCount,
  shutdownDeadlineMs: config.shutdownDeadlineMs,
});
process.once('SIGTERM', () => {
  void worker.stop().then(() => {
    ports.close();
    process.exit(0);
  });
});
process.stdout.write('ready\n');
