import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UnrecoverableError, Worker, type ConnectionOptions } from 'bullmq';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GenerationRequest } from '../../src/core/generation.js';
import { defaultQuotaPolicy } from '../../src/core/quota.js';
import { queueNameForModel } from '../../src/queue/job.js';
import { createGenerationQueue, type GenerationQueue } from '../../src/queue/producer.js';
import { createReconciler, type Reconciler } from '../../src/service/reconciler.js';
import { redisOptions } from '../../src/service/redis.js';
import { startWorker } from '../../src/service/worker.js';
import { createGenerationHistory, findGeneration } from '../../src/store/generations.js';
import { createGenerationIntake } from '../../src/store/intake.js';
import { PrismaQuotaLedger } from '../../src/store/quota-ledger.js';
import { createDirImageStore } from '../support/dir-image-store.js';
import { imagineRequest } from '../support/generation-requests.js';
import { TEST_BACKENDS, type TestDatabase } from '../support/postgres.js';
import { deletePrefix, sharedRedisUrl, testPrefix } from '../support/redis.js';
import { eventually } from '../support/service-stack.js';
import { createTestEngine } from '../support/test-engine.js';

/** PostgreSQL (or PGlite) holds what was accepted; the reconciler brings Redis and the ledger back in line with it. */
describe.each(TEST_BACKENDS)('the reconciler on %s', (_backend, open) => {
  const ledgerOptions = { defaultPolicy: defaultQuotaPolicy({ unitsPerPeriod: 10, period: 'day' }) };
  let database: TestDatabase;
  let ledger: PrismaQuotaLedger;
  let redisUrl: string;
  let prefix: string;
  let imageDir: string;
  let queue: GenerationQueue;
  const closers: (() => Promise<unknown>)[] = [];

  const history = () => createGenerationHistory(database.prisma);
  const reconcilerAt = (offsetMs: number): Reconciler => {
    const reconciler = createReconciler({
      prisma: database.prisma,
      ledger,
      history: history(),
      redisUrl,
      prefix,
      now: () => new Date(Date.now() + offsetMs),
    });
    closers.push(reconciler.close);
    return reconciler;
  };
  /** After the grace period: what a run a couple of minutes later sees. */
  const later = () => reconcilerAt(120_000);
  let users = 0;
  const request = () => GenerationRequest.parse(imagineRequest({ userId: `reconciled-${(users += 1)}` }));
  const usedUnits = async (input: GenerationRequest) => (await ledger.standing(input.requester)).usedUnits;

  beforeEach(async () => {
    database = await open();
    ledger = new PrismaQuotaLedger(database.prisma, ledgerOptions);
    redisUrl = await sharedRedisUrl();
    prefix = testPrefix('reconcile');
    imageDir = await mkdtemp(join(tmpdir(), 'imagine-reconcile-'));
    queue = createGenerationQueue({ redisUrl, prefix, ledger, history: history(), intake: createGenerationIntake(database.prisma, ledgerOptions) });
  });

  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
    await queue.close();
    await database.close();
    await deletePrefix(redisUrl, prefix);
    await rm(imageDir, { recursive: true, force: true });
  });

  it('queues again the accepted generations a Redis without persistence lost, and each is made and charged once', async () => {
    const accepted = [request(), request(), request()];
    for (const input of accepted) await queue.enqueue(input, { units: 2 });
    // A Redis restart without AOF: every key gone, PostgreSQL untouched.
    await deletePrefix(redisUrl, prefix);

    expect((await reconcilerAt(0).run()).requeued).toEqual([]);
    const report = await later().run();
    expect(report.requeued.sort()).toEqual(accepted.map((input) => input.generationId).sort());
    expect((await later().run()).requeued).toEqual([]);

    const engine = createTestEngine();
    const worker = await startWorker({ redisUrl, prefix, engine, ledger, history: history(), images: createDirImageStore(imageDir) });
    closers.push(worker.stop);
    for (const input of accepted) {
      await eventually(async () => ((await findGeneration(database.prisma, input.generationId))?.status === 'succeeded' ? true : undefined));
      // The worker stores the result, then settles the charge: wait for the second write as well.
      await eventually(async () => ((await ledger.settlement(input.generationId)) === 'reserved' ? undefined : true));
      expect(await ledger.settlement(input.generationId)).toBe('committed');
      expect(await usedUnits(input)).toBe(2);
    }
    expect(engine.generateCalls.sort()).toEqual(accepted.map((input) => input.generationId).sort());
  });

  it('refunds a reservation whose generation was never recorded, once the grace period has passed', async () => {
    const orphan = request();
    await ledger.reserve(orphan, 3);

    expect((await reconcilerAt(0).run()).refunded).toEqual([]);
    expect(await usedUnits(orphan)).toBe(3);
    expect((await later().run()).refunded).toEqual([orphan.generationId]);
    expect(await ledger.settlement(orphan.generationId)).toBe('refunded');
    expect(await usedUnits(orphan)).toBe(0);
    expect((await later().run()).refunded).toEqual([]);
  });

  it('retries the refund of a failed generation and the charge of a succeeded one that a dying worker left open', async () => {
    const failed = request();
    const succeeded = request();
    const intake = createGenerationIntake(database.prisma, ledgerOptions);
    for (const input of [failed, succeeded]) await intake.accept(input, 2);
    await history().markFailed(failed.generationId, 'failed', 'The model produced NaNs for this prompt.');
    await history().markSucceeded({ generationId: succeeded.generationId, imageKeys: ['a.png'], seeds: [1], timingsMs: {} });

    const report = await later().run();
    expect(report.refunded).toEqual([failed.generationId]);
    expect(report.committed).toEqual([succeeded.generationId]);
    expect(await ledger.settlement(failed.generationId)).toBe('refunded');
    expect(await usedUnits(failed)).toBe(0);
    expect(await ledger.settlement(succeeded.generationId)).toBe('committed');
    expect(await usedUnits(succeeded)).toBe(2);
  });

  it('records as failed and refunds a job BullMQ gave up on while the database still had it unfinished', async () => {
    const abandoned = request();
    await queue.enqueue(abandoned, { units: 2 });
    // A processor that fails the job for good without recording anything: a worker that died between the two.
    const careless = new Worker(queueNameForModel('test-model'), async () => {
      throw new UnrecoverableError('lost between failing and recording');
    }, { connection: redisOptions(redisUrl, 'worker') as ConnectionOptions, prefix });
    closers.push(() => careless.close());
    await new Promise((resolve) => careless.once('failed', resolve));

    const report = await later().run();
    expect(report.failed).toEqual([abandoned.generationId]);
    expect((await findGeneration(database.prisma, abandoned.generationId))?.status).toBe('failed');
    expect(await ledger.settlement(abandoned.generationId)).toBe('refunded');
    expect(await usedUnits(abandoned)).toBe(0);
  });

  it('reports a generation still waiting in the queue after an hour as stuck, and leaves it queued and charged', async () => {
    const waiting = request();
    await queue.enqueue(waiting, { units: 2 });

    expect((await later().run()).stuck).toEqual([]);
    const report = await reconcilerAt(2 * 3_600_000).run();
    expect(report.stuck).toEqual([waiting.generationId]);
    expect(report.requeued).toEqual([]);
    expect(await queue.position(waiting.generationId)).toMatchObject({ state: 'waiting' });
    expect(await ledger.settlement(waiting.generationId)).toBe('reserved');
  });

  it('reserves and records in one transaction: a generation the database refuses leaves no charge behind', async () => {
    const intake = createGenerationIntake(database.prisma, ledgerOptions);
    const refused = request();
    // PostgreSQL text cannot hold NUL, so recording fails after the reservation was made in the same transaction.
    const unstorable = { ...refused, params: { ...refused.params, prompt: 'a lighthouse\u0000' } };
    await expect(intake.accept(unstorable, 4)).rejects.toThrow();
    expect(await ledger.settlement(refused.generationId)).toBeNull();
    expect(await usedUnits(refused)).toBe(0);
    expect(await findGeneration(database.prisma, refused.generationId)).toBeNull();
  });
});
