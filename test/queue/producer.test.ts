import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ImagineError } from '../../src/core/errors.js';
import { createGenerationQueue, type GenerationQueue } from '../../src/queue/producer.js';
import { startWorker } from '../../src/service/worker.js';
import { createDirImageStore } from '../support/dir-image-store.js';
import { imagineRequest } from '../support/generation-requests.js';
import { eventsUntil } from '../support/queue-events.js';
import { createRedisPorts, type RecordingPorts } from '../support/redis-ports.js';
import { deletePrefix, sharedRedisUrl, startPrivateRedis, testPrefix } from '../support/redis.js';
import { createTestEngine } from '../support/test-engine.js';

let redisUrl: string;
let prefix: string;
let ports: RecordingPorts;
let queue: GenerationQueue;
let imageDir: string;

beforeEach(async () => {
  redisUrl = await sharedRedisUrl();
  prefix = testPrefix('producer');
  ports = createRedisPorts(redisUrl, prefix);
  queue = createGenerationQueue({ redisUrl, prefix, ledger: ports.ledger, history: ports.history });
  imageDir = await mkdtemp(join(tmpdir(), 'imagine-images-'));
});

afterEach(async () => {
  await queue.close();
  ports.close();
  await deletePrefix(redisUrl, prefix);
  await rm(imageDir, { recursive: true, force: true });
});

const rejectionOf = (promise: Promise<unknown>) => promise.then(() => undefined, (error: unknown) => error as ImagineError);

describe('enqueue', () => {
  it('rejects a payload that fails the job schema before anything is queued or charged', async () => {
    const request = imagineRequest();
    const error = await rejectionOf(queue.enqueue({ ...request, params: { ...request.params, steps: 0 } }, { units: 1 }));
    expect(error).toBeInstanceOf(ImagineError);
    expect(error?.kind).toBe('invalid_input');
    expect(error?.userMessage).toMatch(/steps/);
    expect(await ports.ledgerState(request.generationId)).toBeNull();
    expect(await queue.position(request.generationId)).toEqual({ state: 'finished' });
  });

  it('reserves quota and queues a valid request, reporting its place in line', async () => {
    const request = imagineRequest();
    const receipt = await queue.enqueue(request, { units: 1 });
    expect(receipt).toMatchObject({ generationId: request.generationId, queueName: 'images.test-model', position: 1 });
    expect(await ports.ledgerState(request.generationId)).toBe('reserved');
    expect(await ports.historyStatus(request.generationId)).toBe('queued');
  });

  it('queues the same generation once when it is enqueued twice', async () => {
    const request = imagineRequest();
    await queue.enqueue(request, { units: 1 });
    await queue.enqueue(request, { units: 1 });
    const other = await queue.enqueue(imagineRequest({ userId: 'user-2' }), { units: 1 });
    expect(other.position).toBe(2);
  });

  it('refuses a fourth waiting job from one user with a busy error that says how many are queued', async () => {
    for (let index = 0; index < 3; index += 1) await queue.enqueue(imagineRequest(), { units: 1 });
    const request = imagineRequest();
    const error = await rejectionOf(queue.enqueue(request, { units: 1 }));
    expect(error?.kind).toBe('busy');
    expect(error?.userMessage).toBe('You have 3 jobs queued — wait for one to finish or /cancel one.');
    expect(await ports.ledgerState(request.generationId)).toBeNull();
    await expect(queue.enqueue(imagineRequest({ userId: 'user-2' }), { units: 1 })).resolves.toBeDefined();
  });

  it('caps a workspace across its users', async () => {
    const small = createGenerationQueue({ redisUrl, prefix, ledger: ports.ledger, history: ports.history, caps: { perWorkspace: 2 } });
    try {
      await small.enqueue(imagineRequest({ userId: 'a' }), { units: 1 });
      await small.enqueue(imagineRequest({ userId: 'b' }), { units: 1 });
      const error = await rejectionOf(small.enqueue(imagineRequest({ userId: 'c' }), { units: 1 }));
      expect(error?.kind).toBe('busy');
      expect(error?.userMessage).toMatch(/^This workspace has 2 jobs queued/);
    } finally {
      await small.close();
    }
  });

  it('holds no slot for a request the quota refuses', async () => {
    const stingy = createRedisPorts(redisUrl, prefix, { quotaUnits: 1 });
    const limited = createGenerationQueue({ redisUrl, prefix, ledger: stingy.ledger, history: stingy.history });
    try {
      for (let index = 0; index < 3; index += 1) {
        await expect(limited.enqueue(imagineRequest(), { units: 2 })).rejects.toMatchObject({ kind: 'quota_exceeded' });
      }
      await expect(limited.enqueue(imagineRequest(), { units: 1 })).resolves.toMatchObject({ position: 1 });
    } finally {
      await limited.close();
      stingy.close();
    }
  });

  it('frees a slot when a job is cancelled', async () => {
    const requests = [imagineRequest(), imagineRequest(), imagineRequest()];
    for (const request of requests) await queue.enqueue(request, { units: 1 });
    await queue.cancel(requests[0].generationId, { ...requests[0].requester, isAdmin: false });
    await expect(queue.enqueue(imagineRequest(), { units: 1 })).resolves.toBeDefined();
  });

  it('answers "the queue is unavailable" and charges nothing when Redis is down, and works once it comes up', async () => {
    const redis = await startPrivateRedis();
    const port = redis.port;
    await redis.stop('SIGKILL');
    const offline = createGenerationQueue({ redisUrl: `redis://127.0.0.1:${port}`, prefix, ledger: ports.ledger, history: ports.history });
    try {
      const request = imagineRequest();
      const error = await rejectionOf(offline.enqueue(request, { units: 1 }));
      expect(error?.kind).toBe('transient');
      expect(error?.userMessage).toBe('The queue is unavailable, try again shortly.');
      expect(await ports.ledgerState(request.generationId)).toBeNull();

      await redis.start();
      let receipt;
      for (let attempt = 0; attempt < 100 && !receipt; attempt += 1) {
        receipt = await offline.enqueue(imagineRequest(), { units: 1 }).catch(() => new Promise((resolve) => setTimeout(resolve, 100)).then(() => undefined));
      }
      expect(receipt?.position).toBe(1);
    } finally {
      await offline.close();
      await redis.dispose();
    }
  });

  it('enqueues again by itself once Redis is back', async () => {
    const redis = await startPrivateRedis();
    const revived = createGenerationQueue({ redisUrl: redis.url, prefix, ledger: ports.ledger, history: ports.history });
    try {
      await revived.enqueue(imagineRequest(), { units: 1 });
      await redis.stop('SIGKILL');
      const refused = await rejectionOf(revived.enqueue(imagineRequest({ userId: 'user-2' }), { units: 1 }));
      expect(refused?.kind).toBe('transient');
      await redis.start();
      let receipt;
      for (let attempt = 0; attempt < 100 && !receipt; attempt += 1) {
        receipt = await revived.enqueue(imagineRequest({ userId: 'user-3' }), { units: 1 }).catch(() => new Promise((resolve) => setTimeout(resolve, 100)).then(() => undefined));
      }
      expect(receipt?.position).toBe(2);
    } finally {
      await revived.close();
      await redis.dispose();
    }
  });
});

describe('priorities', () => {
  it('runs fast jobs before relax jobs, and an admin fast job after fast jobs queued before it', async () => {
    const relax = imagineRequest({ mode: 'relax', userId: 'relaxed' });
    const fast = imagineRequest({ userId: 'hurried' });
    const admin = imagineRequest({ userId: 'boss', requester: { platform: 'discord', workspaceId: 'guild-1', userId: 'boss', isAdmin: true } });
    const lateFast = imagineRequest({ userId: 'late' });
    for (const request of [relax, fast, admin, lateFast]) await queue.enqueue(request, { units: 1 });

    expect(await queue.position(fast.generationId)).toMatchObject({ state: 'waiting', position: 1 });
    expect(await queue.position(admin.generationId)).toMatchObject({ state: 'waiting', position: 2 });
    expect(await queue.position(relax.generationId)).toMatchObject({ state: 'waiting', position: 4 });

    const engine = createTestEngine();
    const worker = await startWorker({ redisUrl, prefix, engine, ...ports, images: createDirImageStore(imageDir) });
    try {
      await eventsUntil({ redisUrl, prefix }, (events) => events.filter((event) => event.type === 'completed').length === 4);
      expect(engine.generateCalls).toEqual([fast, admin, lateFast, relax].map((request) => request.generationId));
    } finally {
      await worker.stop();
    }
  });
});

describe('cancel', () => {
  it('removes a waiting job, refunds it and announces the cancellation', async () => {
    const request = imagineRequest();
    await queue.enqueue(request, { units: 1 });
    expect(await queue.cancel(request.generationId, { platform: 'discord', workspaceId: 'guild-1', userId: 'user-1', isAdmin: false })).toBe('removed');
    expect(await ports.ledgerState(request.generationId)).toBe('refunded');
    expect(await ports.historyStatus(request.generationId)).toBe('cancelled');
    expect(await queue.position(request.generationId)).toEqual({ state: 'finished' });
    const [event] = await eventsUntil({ redisUrl, prefix }, (events) => events.length === 1);
    expect(event).toMatchObject({ type: 'cancelled', generationId: request.generationId, replyTarget: 'channel-1/message-1' });
  });

  it("lists a user's unfinished generations newest first, for a /cancel that names none", async () => {
    const [older, newer] = [imagineRequest(), imagineRequest()];
    await queue.enqueue(older, { units: 1 });
    await new Promise((resolve) => setTimeout(resolve, 5));
    await queue.enqueue(newer, { units: 1 });
    await queue.enqueue(imagineRequest({ userId: 'someone-else' }), { units: 1 });
    const requester = { platform: 'discord' as const, workspaceId: 'guild-1', userId: 'user-1', isAdmin: false };
    expect(await queue.unfinished(requester)).toEqual([newer.generationId, older.generationId]);
    await queue.cancel(newer.generationId, requester);
    expect(await queue.unfinished(requester)).toEqual([older.generationId]);
  });

  it("refuses to cancel someone else's job", async () => {
    const request = imagineRequest();
    await queue.enqueue(request, { units: 1 });
    const error = await rejectionOf(queue.cancel(request.generationId, { platform: 'discord', workspaceId: 'guild-1', userId: 'intruder', isAdmin: false }));
    expect(error?.kind).toBe('forbidden');
    expect(await ports.ledgerState(request.generationId)).toBe('reserved');
  });
});
