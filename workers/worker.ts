import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { isImagineError } from '../src/core/errors.js';
import type { QuotaPolicy } from '../src/core/quota.js';
import { createImageEngine } from '../src/engine/image-engine.js';
import { loadModelFolder } from '../src/engine/model-folder.js';
import { describeConfig, loadConfig } from '../src/service/config.js';
import { startHealthServer } from '../src/service/http.js';
import { createLogger } from '../src/service/logger.js';
import { createMetrics } from '../src/service/metrics.js';
import { redisOptions } from '../src/service/redis.js';
import { startWorker } from '../src/service/worker.js';
import { openDatabase } from '../src/store/database.js';
import { createGenerationHistory } from '../src/store/generations.js';
import { createLocalImageStore } from '../src/store/images-local.js';
import { PrismaQuotaLedger } from '../src/store/quota-ledger.js';

/**
 * `npm run worker` — one worker process: loads the model folder in MODEL_DIR once, takes jobs from that model's queue,
 * serves /healthz, /readyz and /metrics on HTTP_PORT, and on SIGTERM or SIGINT stops taking jobs, lets the running ones
 * finish within WORKER_SHUTDOWN_DEADLINE_MS (default 240 s, under the 300 s grace period of deploy/), hands back what
 * is still running, and exits 0.
 */

// The worker only commits and refunds reservations the bot made under the real policy; this one is never consulted.
const UNCONSULTED_POLICY: QuotaPolicy = {
  unitsPerPeriod: null,
  period: 'day',
  maxPixels: Number.MAX_SAFE_INTEGER,
  maxSteps: Number.MAX_SAFE_INTEGER,
  maxBatch: Number.MAX_SAFE_INTEGER,
  allowedModels: [],
  fastAllowed: true,
  relaxAllowed: true,
};

function shutdownDeadlineMs(value: string | undefined): number {
  if (value === undefined || value === '') return 240_000;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0) {
    throw new Error(`WORKER_SHUTDOWN_DEADLINE_MS must be a whole number of milliseconds (got ${JSON.stringify(value)})`);
  }
  return parsed;
}

async function main(): Promise<void> {
  const config = loadConfig(process.env, 'worker');
  const logger = createLogger(config);
  logger.info({ config: describeConfig(config) }, 'starting worker');
  if (config.database.kind !== 'postgres') {
    throw new Error(
      'A separate worker process needs DATABASE_URL (PostgreSQL): the embedded PGlite database opens in one process only. Run the all-in-one role to use it.',
    );
  }
  if (config.imageStore.kind !== 'local') {
    throw new Error('The S3 image store is not available yet: unset the S3_* variables to keep images under IMAGE_DIR.');
  }
  const deadlineMs = shutdownDeadlineMs(process.env.WORKER_SHUTDOWN_DEADLINE_MS);

  const metrics = createMetrics({ processMetrics: true });
  const loadStartedMs = performance.now();
  const model = await loadModelFolder(config.modelDir, { executionProviders: config.ortProviders, intraOpNumThreads: config.ortThreads });
  metrics.modelLoadTime.set({ model: model.name, provider: config.ortProviders.join(',') }, (performance.now() - loadStartedMs) / 1_000);
  const database = await openDatabase({ url: config.database.url });
  const ping = new Redis(redisOptions(config.redisUrl, 'producer'));
  ping.on('error', () => {});

  const worker = await startWorker({
    redisUrl: config.redisUrl,
    prefix: config.queuePrefix,
    engine: createImageEngine(model),
    ledger: new PrismaQuotaLedger(database.prisma, { defaultPolicy: UNCONSULTED_POLICY }),
    history: createGenerationHistory(database.prisma),
    images: createLocalImageStore(config.imageStore.dir),
    concurrency: config.workerConcurrency,
    previewIntervalMs: config.previewIntervalMs,
    shutdownDeadlineMs: deadlineMs,
    logger,
    metrics,
  });
  const health = await startHealthServer({
    port: config.httpPort,
    readiness: {
      redis: () => ping.ping(),
      database: () => database.prisma.$queryRaw`SELECT 1`,
    },
    metrics,
    logger,
  });
  logger.info({ queue: worker.queueName, model: model.name, healthUrl: health.url }, 'worker ready');

  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, deadlineMs }, 'stopping: finishing the running jobs');
    await worker.stop();
    await health.close();
    await model.release();
    await database.close();
    ping.disconnect();
    process.exit(0);
  };
  process.once('SIGTERM', (signal) => void stop(signal));
  process.once('SIGINT', (signal) => void stop(signal));
}

main().catch((error: unknown) => {
  process.stderr.write(`${isImagineError(error) ? error.userMessage : error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
