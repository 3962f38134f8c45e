import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createGenerationQueue } from '../../src/queue/producer.js';
import { startWorker } from '../../src/service/worker.js';
import { createDirImageStore } from '../support/dir-image-store.js';
import { imagineRequest } from '../support/generation-requests.js';
import { eventsUntil, terminalEventsOf } from '../support/queue-events.js';
import { createRedisPorts, type RecordingPorts } from '../support/redis-ports.js';
import { deletePrefix, sharedRedisUrl, startPrivateRedis, testPrefix } from '../support/redis.js';
import { createTestEngine } from '../support/test-engine.js';
import { exitOf, spawnWorkerProcess } from '../support/worker-processes.js';

let redisUrl: string;
let prefix: string;
let ports: RecordingPorts;
let imageDir: string;
const children: ChildProcess[] = [];

beforeEach(async () => {
  redisUrl = await sharedRedisUrl();
  prefix = testPrefix('recovery');
  ports = createRedisPorts(redisUrl, prefix);
  imageDir = await mkdtemp(join(tmpdir(), 'imagine-images-'));
});

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exitOf(child);
    }
  }
  ports.close();
  await deletePrefix(redisUrl, prefix);
  await rm(imageDir, { recursive: true, force: true });
});

const finished = (generationId: string) => (events: { generationId: string; type: string }[]) =>
  events.some((event) => event.generationId === generationId && event.type !== 'progress');
const running = (events: { type: string }[]) => events.some((event) => event.type === 'progress');

describe('worker processes', () => {
  it('charges quota once and completes once when a worker is SIGKILLed mid-job and another finishes it', async () => {
    const queue = createGenerationQueue({ redisUrl, prefix, ledger: ports.ledger, history: ports.history });
    const config = { redisUrl, prefix, portsRedisUrl: redisUrl, imageDir, stepDelayMs: 20, lockDurationMs: 1_000, stalledIntervalMs: 500 };
    try {
      const doomed = await spawnWorkerProcess(config);
      children.push(doomed);
      const request = imagineRequest({ steps: 60 });
      await queue.enqueue(request, { units: 1 });
      await eventsUntil({ redisUrl, prefix }, running);
      doomed.kill('SIGKILL');
      await exitOf(doomed);
      expect(await ports.historyStatus(request.generationId)).toBe('running');

      children.push(await spawnWorkerProcess(config));
      const events = await eventsUntil({ redisUrl, prefix }, finished(request.generationId));
      expect(terminalEventsOf(events, request.generationId).map((event) => event.type)).toEqual(['completed']);
      expect(await ports.commitCount(request.generationId)).toBe(1);
      expect(await ports.ledgerState(request.generationId)).toBe('committed');
      // Both runs started: the second one really was a recovery, not the first one finishing late.
      expect(events.filter((event) => event.type === 'progress' && event.step === 1).length).toBeGreaterThanOrEqual(2);
    } finally {
      await queue.close();
    }
  });

  it('hands a SIGKILLed worker\'s job to another worker within 15 s with the default lock settings', async () => {
    const queue = createGenerationQueue({ redisUrl, prefix, ledger: ports.ledger, history: ports.history });
    // No lock settings: the worker's defaults are what is under test.
    const config = { redisUrl, prefix, portsRedisUrl: redisUrl, imageDir, stepDelayMs: 200 };
    try {
      const doomed = await spawnWorkerProcess(config);
      children.push(doomed);
      const request = imagineRequest({ steps: 150 });
      await queue.enqueue(request, { units: 1 });
      const before = await eventsUntil({ redisUrl, prefix }, running);
      children.push(await spawnWorkerProcess(config));
      doomed.kill('SIGKILL');
      const killedAtMs = Date.now();
      await exitOf(doomed);

      const restarted = await eventsUntil(
        { redisUrl, prefix, fromId: before.at(-1)!.id },
        (events) => events.some((event) => event.generationId === request.generationId && event.type === 'progress' && event.step === 1),
      );
      const takeoverMs = Date.now() - killedAtMs;
      expect(restarted.length).toBeGreaterThan(0);
      // lockDuration 8 s + up to two stall checks 3 s apart: at most 14 s, 11 s on average.
      expect(takeoverMs).toBeLessThan(15_000);
    } finally {
      await queue.close();
    }
  });

  it('fails and refunds a job whose worker dies more often than allowed, telling the user', async () => {
    const queue = createGenerationQueue({ redisUrl, prefix, ledger: ports.ledger, history: ports.history });
    const config = { redisUrl, prefix, portsRedisUrl: redisUrl, imageDir, stepDelayMs: 20, lockDurationMs: 1_000, stalledIntervalMs: 500, maxStalledCount: 0 };
    try {
      const doomed = await spawnWorkerProcess(config);
      children.push(doomed);
      const request = imagineRequest({ steps: 60 });
      await queue.enqueue(request, { units: 1 });
      await eventsUntil({ redisUrl, prefix }, running);
      doomed.kill('SIGKILL');
      await exitOf(doomed);

      children.push(await spawnWorkerProcess(config));
      const events = await eventsUntil({ redisUrl, prefix }, finished(request.generationId));
      expect(terminalEventsOf(events, request.generationId)).toEqual([
        expect.objectContaining({ type: 'failed', userMessage: 'The worker running this image kept stopping; try again later.' }),
      ]);
      expect(await ports.ledgerState(request.generationId)).toBe('refunded');
      expect(await ports.historyStatus(request.generationId)).toBe('failed');
    } finally {
      await queue.close();
    }
  });

  it('finishes the running job on SIGTERM and exits 0', async () => {
    const queue = createGenerationQueue({ redisUrl, prefix, ledger: ports.ledger, history: ports.history });
    try {
      const child = await spawnWorkerProcess({ redisUrl, prefix, portsRedisUrl: redisUrl, imageDir, stepDelayMs: 20, shutdownDeadlineMs: 30_000 });
      children.push(child);
      const request = imagineRequest({ steps: 20 });
      await queue.enqueue(request, { units: 1 });
      await eventsUntil({ redisUrl, prefix }, running);
      child.kill('SIGTERM');
      expect(await exitOf(child)).toEqual({ code: 0, signal: null });
      expect(await ports.historyStatus(request.generationId)).toBe('succeeded');
      expect(await ports.commitCount(request.generationId)).toBe(1);
    } finally {
      await queue.close();
    }
  });
});

describe('Redis restarts', () => {
  it('completes a job once when Redis is killed and restarted during the run', async () => {
    const redis = await startPrivateRedis();
    const queue = createGenerationQueue({ redisUrl: redis.url, prefix, ledger: ports.ledger, history: ports.history });
    const worker = await startWorker({
      redisUrl: redis.url,
      prefix,
      engine: createTestEngine({ stepDelayMs: 20 }),
      ...ports,
      images: createDirImageStore(imageDir),
      previewIntervalMs: 0,
    });
    try {
      const request = imagineRequest({ steps: 60 });
      await queue.enqueue(request, { units: 1 });
      await eventsUntil({ redisUrl: redis.url, prefix }, running);
      await redis.stop('SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 500));
      await redis.start();

      const events = await eventsUntil({ redisUrl: redis.url, prefix }, finished(request.generationId));
      expect(terminalEventsOf(events, request.generationId).map((event) => event.type)).toEqual(['completed']);
      expect(await ports.commitCount(request.generationId)).toBe(1);

      const next = imagineRequest({ userId: 'user-2' });
      await queue.enqueue(next, { units: 1 });
      await eventsUntil({ redisUrl: redis.url, prefix }, finished(next.generationId));
    } finally {
      await worker.stop();
      await queue.close();
      await redis.dispose();
    }
  });
});
