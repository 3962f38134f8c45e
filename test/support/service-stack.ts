import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, type ConnectionOptions } from 'bullmq';
import type { ChatConfig } from '../../src/core/chat/chat-config.js';
import { defaultQuotaPolicy } from '../../src/core/quota.js';
import { describeModelFolder } from '../../src/engine/model-description.js';
import { startThreadedEngine } from '../../src/engine/threaded-engine.js';
import { queueNameForModel } from '../../src/queue/job.js';
import type { JobCaps } from '../../src/queue/claims.js';
import { createGenerationQueue } from '../../src/queue/producer.js';
import { createImagineService, type RunningImagineService } from '../../src/service/imagine-service.js';
import { chatConfigFor } from '../../src/service/main.js';
import { redisOptions } from '../../src/service/redis.js';
import { startWorker } from '../../src/service/worker.js';
import { openDatabase, type Database } from '../../src/store/database.js';
import { createGenerationHistory } from '../../src/store/generations.js';
import { createLocalImageStore } from '../../src/store/images-local.js';
import { createGenerationIntake } from '../../src/store/intake.js';
import { PrismaQuotaLedger } from '../../src/store/quota-ledger.js';
import { openTestPostgres, type TestDatabase } from './postgres.js';
import { deletePrefix, freePort, sharedRedisUrl, testPrefix } from './redis.js';

export const TINY_SD_DIR = 'test/fixtures/models/tiny-sd';
/** A whole generation on a slow, shared 2-core machine, model warm-up included. */
export const GENERATION_TIMEOUT_MS = 90_000;

/** Polls an async probe until it gives a value (the async sibling of waitFor). */
export async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = GENERATION_TIMEOUT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('eventually: condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export interface ServiceStackOptions {
  /** The model folder the worker runs (default: the tiny-sd fixture). */
  modelDir?: string;
  /** The default allowance in ledger units per day; null is unlimited (the default). */
  quotaUnitsPerPeriod?: number | null;
  adminUserIds?: string[];
  discordAdminRoleIds?: string[];
  jobCaps?: Partial<JobCaps>;
  previewIntervalMs?: number;
  /** PGlite in memory (the default, as `npm start` has it) or the test PostgreSQL in a schema of its own. */
  database?: 'pglite' | 'postgres';
  /**
   * The worker in this process (the default, as `npm start` has it) or in a child process running the worker role of
   * src/service/main.ts, which needs PostgreSQL.
   */
  worker?: 'in-process' | 'child-process';
  /** Names the Redis prefix, so leftovers of a crashed run say which test made them. */
  name?: string;
}

export interface ServiceStack {
  service: RunningImagineService;
  chatConfig: ChatConfig;
  database: Database;
  ledger: PrismaQuotaLedger;
  /** A read-only handle on the model's BullMQ queue, to count what was queued. */
  modelQueue: Queue;
  redisUrl: string;
  prefix: string;
  stop(): Promise<void>;
}

/**
 * The all-in-one process's wiring (src/service/main.ts) for one test file: real Redis under a fresh prefix, an in-memory
 * PGlite (or PostgreSQL), a local image store in a temp dir, the real worker running the tiny-sd fixture model, the real
 * queue and the real ImagineService. Chat adapters are left to the test, which points them at protocol fakes.
 */
export async function startServiceStack(options: ServiceStackOptions = {}): Promise<ServiceStack> {
  const closers: (() => Promise<unknown>)[] = [];
  const stop = async () => {
    for (const close of closers.reverse()) await close().catch(() => {});
  };
  try {
    const redisUrl = await sharedRedisUrl();
    const prefix = testPrefix(options.name ?? 'stack');
    closers.push(() => deletePrefix(redisUrl, prefix));
    const imageDir = await mkdtemp(join(tmpdir(), 'imagine-stack-'));
    closers.push(() => rm(imageDir, { recursive: true, force: true }));

    const database: TestDatabase = options.database === 'postgres' ? await openTestPostgres() : await openDatabase({ dataDir: 'memory://' });
    closers.push(database.close);
    const images = createLocalImageStore(imageDir);
    const ledgerOptions = { defaultPolicy: defaultQuotaPolicy({ unitsPerPeriod: options.quotaUnitsPerPeriod ?? null, period: 'day' }) };
    const ledger = new PrismaQuotaLedger(database.prisma, ledgerOptions);
    const history = createGenerationHistory(database.prisma);
    const modelDir = options.modelDir ?? TINY_SD_DIR;
    const description = await describeModelFolder(modelDir);
    const modelQueue = new Queue(queueNameForModel(description.name), { connection: redisOptions(redisUrl, 'worker') as ConnectionOptions, prefix });
    modelQueue.on('error', () => {});
    closers.push(() => modelQueue.close());

    const previewIntervalMs = options.previewIntervalMs ?? 50;
    if (options.worker === 'child-process') {
      if (!database.url) throw new Error('A worker in a child process needs database: postgres (PGlite opens in one process only)');
      const worker = await spawnWorkerRole({
        REDIS_URL: redisUrl,
        QUEUE_PREFIX: prefix,
        DATABASE_URL: database.url,
        IMAGE_DIR: imageDir,
        MODEL_DIR: modelDir,
        ORT_THREADS: '1',
        PREVIEW_INTERVAL_MS: String(previewIntervalMs),
        QUOTA_UNITS_PER_PERIOD: String(options.quotaUnitsPerPeriod ?? 'unlimited'),
        HTTP_PORT: String(await freePort()),
        WORKER_SHUTDOWN_DEADLINE_MS: '5000',
        LOG_LEVEL: 'warn',
      });
      closers.push(worker.stop);
    } else {
      const engine = await startThreadedEngine(modelDir, { intraOpNumThreads: 1 });
      closers.push(engine.release);
      const worker = await startWorker({ redisUrl, prefix, engine, ledger, history, images, previewIntervalMs, shutdownDeadlineMs: 5_000 });
      closers.push(worker.stop);
    }

    const intake = createGenerationIntake(database.prisma, ledgerOptions);
    const queue = createGenerationQueue({ redisUrl, prefix, ledger, history, intake, caps: options.jobCaps });
    closers.push(queue.close);
    const service = createImagineService({ prisma: database.prisma, ledger, history, queue, images, redisUrl, queuePrefix: prefix, models: [description.name] });
    closers.push(service.close);

    const chatConfig = chatConfigFor(description, { userIds: options.adminUserIds ?? [], discordRoleIds: options.discordAdminRoleIds ?? [] });
    return { service, chatConfig, database, ledger, modelQueue, redisUrl, prefix, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** `main.ts worker` as a child process; resolves once its health server answers ready (the model is loaded). */
async function spawnWorkerRole(env: Record<string, string>): Promise<{ stop(): Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/service/main.ts', 'worker'], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = once(child, 'exit');
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the worker role exited with ${child.exitCode} before it was ready`);
    const ready = await fetch(`http://127.0.0.1:${env.HTTP_PORT}/readyz`).then((response) => response.ok, () => false);
    if (ready) return { stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error('the worker role was not ready within 60 s');
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
