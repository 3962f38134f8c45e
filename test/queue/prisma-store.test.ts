import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QuotaPolicy } from '../../src/core/quota.js';
import { createGenerationQueue, type GenerationQueue } from '../../src/queue/producer.js';
import { startWorker, type RunningWorker } from '../../src/service/worker.js';
import { openDatabase, type Database } from '../../src/store/database.js';
import { createGenerationHistory, findGeneration } from '../../src/store/generations.js';
import { createLocalImageStore } from '../../src/store/images-local.js';
import { PrismaQuotaLedger } from '../../src/store/quota-ledger.js';
import { imagineRequest } from '../support/generation-requests.js';
import { eventsUntil } from '../support/queue-events.js';
import { deletePrefix, sharedRedisUrl, testPrefix } from '../support/redis.js';
import { createTestEngine } from '../support/test-engine.js';

const POLICY: QuotaPolicy = {
  unitsPerPeriod: 3,
  period: 'day',
  maxPixels: 1024 * 1024,
  maxSteps: 150,
  maxBatch: 4,
  allowedModels: [],
  fastAllowed: true,
  relaxAllowed: true,
};

let redisUrl: string;
let prefix: string;
let database: Database;
let ledger: PrismaQuotaLedger;
let queue: GenerationQueue;
let worker: RunningWorker;
let imageDir: string;

beforeAll(async () => {
  redisUrl = await sharedRedisUrl();
  prefix = testPrefix('prisma');
  database = await openDatabase({ dataDir: 'memory://' });
  ledger = new PrismaQuotaLedger(database.prisma, { defaultPolicy: POLICY });
  const history = createGenerationHistory(database.prisma);
  imageDir = await mkdtemp(join(tmpdir(), 'imagine-images-'));
  queue = createGenerationQueue({ redisUrl, prefix, ledger, history });
  worker = await startWorker({ redisUrl, prefix, engine: createTestEngine(), ledger, history, images: createLocalImageStore(imageDir) });
});

afterAll(async () => {
  await worker?.stop();
  await queue?.close();
  await database?.close();
  await deletePrefix(redisUrl, prefix);
  await rm(imageDir, { recursive: true, force: true });
});

const finished = (generationId: string) => (events: { generationId: string; type: string }[]) =>
  events.some((event) => event.generationId === generationId && event.type !== 'progress');

describe('the queue over the Prisma store (embedded PGlite)', () => {
  it('charges a completed generation, refunds a failed one, and refuses what the quota no longer covers', async () => {
    const done = imagineRequest({ userId: 'prisma-user' });
    await queue.enqueue(done, { units: 2 });
    await eventsUntil({ redisUrl, prefix }, finished(done.generationId));
    expect(await ledger.settlement(done.generationId)).toBe('committed');
    expect((await findGeneration(database.prisma, done.generationId))?.status).toBe('succeeded');

    const failing = imagineRequest({ userId: 'prisma-user', prompt: 'fail: model' });
    await queue.enqueue(failing, { units: 1 });
    await eventsUntil({ redisUrl, prefix }, finished(failing.generationId));
    expect(await ledger.settlement(failing.generationId)).toBe('refunded');
    expect((await findGeneration(database.prisma, failing.generationId))?.status).toBe('failed');

    const tooMuch = imagineRequest({ userId: 'prisma-user' });
    await expect(queue.enqueue(tooMuch, { units: 2 })).rejects.toMatchObject({ kind: 'quota_exceeded' });
    expect(await queue.position(tooMuch.generationId)).toEqual({ state: 'finished' });
    expect(await ledger.settlement(tooMuch.generationId)).toBeNull();
  });
});
