import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { GenerationEvent } from '../../src/core/chat/service.js';
import { GenerationRequest } from '../../src/core/generation.js';
import { defaultQuotaPolicy } from '../../src/core/quota.js';
import { imagineKeys, queueNameForModel } from '../../src/queue/job.js';
import { createGenerationQueue, type GenerationQueue } from '../../src/queue/producer.js';
import { createImagineService, type RunningImagineService } from '../../src/service/imagine-service.js';
import { startWorker, type RunningWorker } from '../../src/service/worker.js';
import { openDatabase, type Database } from '../../src/store/database.js';
import { createGenerationHistory, findGeneration } from '../../src/store/generations.js';
import { createGenerationIntake } from '../../src/store/intake.js';
import { PrismaQuotaLedger } from '../../src/store/quota-ledger.js';
import { createDirImageStore } from '../support/dir-image-store.js';
import { imagineRequest } from '../support/generation-requests.js';
import { deletePrefix, sharedRedisUrl, testPrefix } from '../support/redis.js';
import { eventually } from '../support/service-stack.js';
import { createTestEngine } from '../support/test-engine.js';

/**
 * The bot's side of "nothing posted late, never or twice": a real ImagineService over real Redis, PGlite and the real
 * worker (running the test engine), stopped and started again like a restarted bot process.
 */

let redisUrl: string;
let prefix: string;
let imageDir: string;
let database: Database;
let queue: GenerationQueue;
let worker: RunningWorker;
const services: RunningImagineService[] = [];

beforeEach(async () => {
  redisUrl = await sharedRedisUrl();
  prefix = testPrefix('announce');
  imageDir = await mkdtemp(join(tmpdir(), 'imagine-announce-'));
  database = await openDatabase({ dataDir: 'memory://' });
  const ledgerOptions = { defaultPolicy: defaultQuotaPolicy({ unitsPerPeriod: null, period: 'day' }) };
  const ledger = new PrismaQuotaLedger(database.prisma, ledgerOptions);
  const history = createGenerationHistory(database.prisma);
  const images = createDirImageStore(imageDir);
  queue = createGenerationQueue({ redisUrl, prefix, ledger, history, intake: createGenerationIntake(database.prisma, ledgerOptions) });
  worker = await startWorker({ redisUrl, prefix, engine: createTestEngine({ stepDelayMs: 10 }), ledger, history, images, previewIntervalMs: 0 });
});

afterEach(async () => {
  for (const service of services.splice(0)) await service.close();
  await worker.stop();
  await queue.close();
  await database.close();
  await deletePrefix(redisUrl, prefix);
  await rm(imageDir, { recursive: true, force: true });
});

/**
 * A bot process: the service plus what its Discord adapter would have been asked to render; `poster` stands for the
 * adapter's posting (by default done at once).
 */
function startBot(
  options: { announceSweep?: { intervalMs: number; graceMs: number; leaseMs?: number }; poster?: (event: GenerationEvent) => Promise<void> | void } = {},
): { service: RunningImagineService; events: GenerationEvent[] } {
  const ledger = new PrismaQuotaLedger(database.prisma, { defaultPolicy: defaultQuotaPolicy({ unitsPerPeriod: null, period: 'day' }) });
  const history = createGenerationHistory(database.prisma);
  const service = createImagineService({
    prisma: database.prisma,
    ledger,
    history,
    queue,
    images: createDirImageStore(imageDir),
    redisUrl,
    queuePrefix: prefix,
    models: ['test-model'],
    announceSweep: options.announceSweep,
  });
  services.push(service);
  const events: GenerationEvent[] = [];
  service.subscribe('discord', (event) => {
    events.push(event);
    return options.poster?.(event);
  });
  return { service, events };
}

const request = () => GenerationRequest.parse(imagineRequest());
const outcomesOf = (events: GenerationEvent[], generationId: string) =>
  events.filter((event) => event.generationId === generationId && event.type !== 'progress').map((event) => event.type);
const posted = (events: GenerationEvent[], generationId: string) => async () =>
  outcomesOf(events, generationId).length > 0 ? true : undefined;
const finishedInDatabase = (generationId: string) => async () => {
  const record = await findGeneration(database.prisma, generationId);
  return record?.status === 'succeeded' ? true : undefined;
};

async function stopBot(bot: { service: RunningImagineService }): Promise<void> {
  services.splice(services.indexOf(bot.service), 1);
  await bot.service.close();
}

describe('results across bot restarts', () => {
  it('posts a result that finished while the bot was stopped once it starts again, resuming at its saved stream position', async () => {
    const first = startBot();
    const before = request();
    await first.service.submit(before);
    await eventually(posted(first.events, before.generationId));
    await stopBot(first);

    const whileDown = imagineRequest({ steps: 6 });
    await queue.enqueue(whileDown, { units: 1 });
    await eventually(finishedInDatabase(whileDown.generationId));

    const second = startBot();
    await eventually(posted(second.events, whileDown.generationId));
    // A later job as a fence: everything the restarted bot was going to replay comes before its result.
    const after = request();
    await second.service.submit(after);
    await eventually(posted(second.events, after.generationId));

    expect(outcomesOf(first.events, before.generationId)).toEqual(['succeeded']);
    expect(outcomesOf(second.events, whileDown.generationId)).toEqual(['succeeded']);
    expect(outcomesOf(second.events, before.generationId)).toEqual([]);
    // The progress published while it was down reached it too: it read from its saved position, not from "newest".
    expect(second.events.some((event) => event.generationId === whileDown.generationId && event.type === 'progress')).toBe(true);
  });

  it('posts from the database a result whose event Redis lost (a restart without persistence)', async () => {
    const first = startBot();
    await stopBot(first);
    const whileDown = imagineRequest();
    await queue.enqueue(whileDown, { units: 1 });
    await eventually(finishedInDatabase(whileDown.generationId));
    const redis = new Redis(redisUrl);
    await redis.del(imagineKeys(prefix).events(queueNameForModel('test-model')), `${prefix}:chat-cursor:test-model`);
    redis.disconnect();

    const second = startBot();
    await eventually(posted(second.events, whileDown.generationId));
    const after = request();
    await second.service.submit(after);
    await eventually(posted(second.events, after.generationId));

    expect(outcomesOf(second.events, whileDown.generationId)).toEqual(['succeeded']);
    const record = await database.prisma.generation.findUnique({ where: { id: whileDown.generationId } });
    expect(record?.announcedAt).toBeInstanceOf(Date);
  });

  it('posts again a result whose bot died after taking it and before posting it, once its claim lapses', async () => {
    let unblock = () => {};
    const neverPosts = new Promise<void>((resolve) => (unblock = resolve));
    // Its own sweep is slow, so only the second bot can take the result over once the 1 s claim lapses.
    const dying = startBot({
      announceSweep: { intervalMs: 60_000, graceMs: 30_000, leaseMs: 1_000 },
      poster: (event) => (event.type === 'progress' ? undefined : neverPosts),
    });
    try {
      const job = request();
      await dying.service.submit(job);
      await eventually(posted(dying.events, job.generationId));

      const second = startBot({ announceSweep: { intervalMs: 200, graceMs: 0 } });
      await eventually(posted(second.events, job.generationId));
      expect(outcomesOf(second.events, job.generationId)).toEqual(['succeeded']);
      await eventually(async () => ((await database.prisma.generation.findUnique({ where: { id: job.generationId } }))?.announcedAt ? true : undefined));
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(outcomesOf(second.events, job.generationId)).toEqual(['succeeded']);
      expect(outcomesOf(dying.events, job.generationId)).toEqual(['succeeded']);
    } finally {
      unblock();
    }
  });

  it('lets one of two bots following the same queue post each result', async () => {
    const one = startBot();
    const other = startBot();
    const requests = [request(), request(), request()];
    for (const request of requests) await one.service.submit(request);
    for (const request of requests) {
      await eventually(async () => ([...one.events, ...other.events].some((event) => event.generationId === request.generationId && event.type !== 'progress') ? true : undefined));
    }
    for (const request of requests) {
      expect([...outcomesOf(one.events, request.generationId), ...outcomesOf(other.events, request.generationId)]).toEqual(['succeeded']);
    }
  });
});
