import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createGenerationQueue, type GenerationQueue } from '../../src/queue/producer.js';
import { createLogger } from '../../src/service/logger.js';
import { createMetrics } from '../../src/service/metrics.js';
import { startWorker, type RunningWorker, type WorkerOptions } from '../../src/service/worker.js';
import { createDirImageStore } from '../support/dir-image-store.js';
import { imagineRequest } from '../support/generation-requests.js';
import { eventsUntil, terminalEventsOf } from '../support/queue-events.js';
import { createRedisPorts, type RecordingPorts } from '../support/redis-ports.js';
import { deletePrefix, sharedRedisUrl, testPrefix } from '../support/redis.js';
import { eventually } from '../support/service-stack.js';
import { createTestEngine } from '../support/test-engine.js';

let redisUrl: string;
let prefix: string;
let ports: RecordingPorts;
let queue: GenerationQueue;
let imageDir: string;
const workers: RunningWorker[] = [];

beforeEach(async () => {
  redisUrl = await sharedRedisUrl();
  prefix = testPrefix('worker');
  ports = createRedisPorts(redisUrl, prefix);
  queue = createGenerationQueue({ redisUrl, prefix, ledger: ports.ledger, history: ports.history, attempts: 3, retryDelayMs: 50 });
  imageDir = await mkdtemp(join(tmpdir(), 'imagine-images-'));
});

afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.stop()));
  await queue.close();
  ports.close();
  await deletePrefix(redisUrl, prefix);
  await rm(imageDir, { recursive: true, force: true });
});

async function worker(options: Partial<WorkerOptions> = {}) {
  const engine = createTestEngine({ stepDelayMs: 20 });
  const running = await startWorker({ redisUrl, prefix, engine, ...ports, images: createDirImageStore(imageDir), previewIntervalMs: 0, ...options });
  workers.push(running);
  return { engine, running };
}

const finished = (generationId: string) => (events: { generationId: string; type: string }[]) =>
  events.some((event) => event.generationId === generationId && event.type !== 'progress');

describe('a generation job', () => {
  it('stores a PNG per image and the grid under keys from the generation id, charges once and announces completion', async () => {
    await worker();
    const request = imagineRequest({ params: { ...imagineRequest().params, batch: 4, seed: 7 } });
    await queue.enqueue(request, { units: 4 });
    const events = await eventsUntil({ redisUrl, prefix }, finished(request.generationId));

    const id = request.generationId;
    const completed = terminalEventsOf(events, id);
    expect(completed).toEqual([
      expect.objectContaining({
        type: 'completed',
        imageKeys: [0, 1, 2, 3].map((index) => `generations/${id}/${index}.png`),
        gridKey: `generations/${id}/grid.png`,
        seeds: [7, 8, 9, 10],
      }),
    ]);
    const metadata = await sharp(await readFile(join(imageDir, `generations/${id}/2.png`))).metadata();
    expect(metadata.format).toBe('png');
    expect(await ports.ledgerState(id)).toBe('committed');
    expect(await ports.historyStatus(id)).toBe('succeeded');
    expect(await queue.position(id)).toEqual({ state: 'finished' });
  });

  it('charges and announces a generation whose last worker died right after recording its success', async () => {
    const request = imagineRequest();
    await queue.enqueue(request, { units: 1 });
    // What a worker SIGKILLed between recording success and settling leaves behind: history finished, ledger reserved,
    // no terminal event. The job itself is still in the queue, so the next worker runs it again.
    const id = request.generationId;
    expect(await ports.history.markSucceeded({ generationId: id, imageKeys: [], seeds: [request.params.seed], timingsMs: {} })).toBe('succeeded');
    await worker();
    const events = await eventsUntil({ redisUrl, prefix }, finished(id));
    expect(terminalEventsOf(events, id).map((event) => event.type)).toEqual(['completed']);
    expect(await ports.commitCount(id)).toBe(1);
    expect(await ports.ledgerState(id)).toBe('committed');
  });

  it('publishes progress with a WebP preview key before the result', async () => {
    await worker();
    const request = imagineRequest({ steps: 3 });
    await queue.enqueue(request, { units: 1 });
    const events = await eventsUntil({ redisUrl, prefix }, finished(request.generationId));
    const progress = events.filter((event) => event.type === 'progress');
    expect(progress.map((event) => event.type === 'progress' && event.step)).toEqual([1, 2, 3]);
    const last = progress[2];
    const previewKey = last.type === 'progress' ? last.previewKey : undefined;
    expect(previewKey).toBe(`previews/${request.generationId}/3.webp`);
    expect((await sharp(await readFile(join(imageDir, previewKey!))).metadata()).format).toBe('webp');
    expect(events.at(-1)?.type).toBe('completed');
  });

  it('throttles previews to one per interval', async () => {
    await worker({ previewIntervalMs: 60_000 });
    const request = imagineRequest({ steps: 5 });
    await queue.enqueue(request, { units: 1 });
    const events = await eventsUntil({ redisUrl, prefix }, finished(request.generationId));
    expect(events.filter((event) => event.type === 'progress')).toHaveLength(1);
  });

  it('runs as many jobs at once as its concurrency allows', async () => {
    await worker({ concurrency: 2 });
    const [one, two] = [imagineRequest({ steps: 20 }), imagineRequest({ steps: 20 })];
    await queue.enqueue(one, { units: 1 });
    await queue.enqueue(two, { units: 1 });
    const events = await eventsUntil({ redisUrl, prefix }, (seen) => seen.some((event) => event.type === 'completed'));
    const started = new Set(events.filter((event) => event.type === 'progress').map((event) => event.generationId));
    expect(started).toEqual(new Set([one.generationId, two.generationId]));
  });

  it('counts finished jobs and their run and wait times in the metrics', async () => {
    const metrics = createMetrics();
    await worker({ metrics });
    const request = imagineRequest({ prompt: 'fail: model' });
    const done = imagineRequest();
    await queue.enqueue(request, { units: 1 });
    await queue.enqueue(done, { units: 1 });
    await eventsUntil({ redisUrl, prefix }, finished(done.generationId));
    const text = await metrics.registry.metrics();
    expect(text).toContain('imagine_jobs_total{kind="imagine",state="failed"} 1');
    expect(text).toContain('imagine_jobs_total{kind="imagine",state="completed"} 1');
    expect(text).toContain('imagine_job_run_seconds_count{queue="images.test-model",kind="imagine"} 1');
    expect(text).toContain('imagine_job_wait_seconds_count{queue="images.test-model"} 2');
  });

  it('gives an estimated wait from the average run time once a job has run', async () => {
    await worker();
    const first = imagineRequest();
    await queue.enqueue(first, { units: 1 });
    await eventsUntil({ redisUrl, prefix }, finished(first.generationId));
    await workers.pop()!.stop();
    await queue.enqueue(imagineRequest(), { units: 1 });
    const receipt = await queue.enqueue(imagineRequest(), { units: 1 });
    expect(receipt.position).toBe(2);
    expect(receipt.estimatedWaitMs).toBeGreaterThan(0);
  });
});

describe('failures', () => {
  it('logs one info line per finished job with its id, user, seconds and outcome', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({ logLevel: 'info', logRedactPrompts: true, role: 'worker' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    await worker({ logger });
    const succeeding = imagineRequest();
    const failing = imagineRequest({ prompt: 'fail: model' });
    for (const request of [succeeding, failing]) {
      await queue.enqueue(request, { units: 1 });
      await eventsUntil({ redisUrl, prefix }, finished(request.generationId));
    }
    await eventually(async () => (lines.filter((line) => line.msg === 'job finished').length === 2 ? true : undefined), 10_000);
    expect(lines.filter((line) => line.msg === 'job finished')).toEqual([
      expect.objectContaining({ level: 'info', generationId: succeeding.generationId, user: 'discord:user-1', seconds: expect.any(Number), outcome: 'succeeded' }),
      expect.objectContaining({ level: 'info', generationId: failing.generationId, user: 'discord:user-1', outcome: 'failed', errorKind: 'model_failure' }),
    ]);
  });

  it('fails a model failure at once, refunds it and tells the user why', async () => {
    const { engine } = await worker();
    const request = imagineRequest({ prompt: 'fail: model' });
    await queue.enqueue(request, { units: 1 });
    const events = await eventsUntil({ redisUrl, prefix }, finished(request.generationId));
    expect(terminalEventsOf(events, request.generationId)).toEqual([
      expect.objectContaining({ type: 'failed', errorKind: 'model_failure', userMessage: 'The model produced NaNs for this prompt.' }),
    ]);
    expect(engine.generateCalls).toEqual([request.generationId]);
    expect(await ports.ledgerState(request.generationId)).toBe('refunded');
    expect(await ports.historyStatus(request.generationId)).toBe('failed');
  });

  it('retries a transient failure and charges the successful retry once', async () => {
    const { engine } = await worker();
    const request = imagineRequest({ prompt: 'fail: transient once' });
    await queue.enqueue(request, { units: 1 });
    const events = await eventsUntil({ redisUrl, prefix }, finished(request.generationId));
    expect(terminalEventsOf(events, request.generationId).map((event) => event.type)).toEqual(['completed']);
    expect(engine.generateCalls).toEqual([request.generationId, request.generationId]);
    expect(await ports.commitCount(request.generationId)).toBe(1);
  });

  it('still charges and announces a finished image when the ledger fails once at commit time, without running it again', async () => {
    let commitFailures = 0;
    const flakyLedger = {
      ...ports.ledger,
      async commit(generationId: string) {
        if (commitFailures === 0) {
          commitFailures += 1;
          throw new Error('Connection terminated unexpectedly');
        }
        await ports.ledger.commit(generationId);
      },
    };
    const { engine } = await worker({ ledger: flakyLedger });
    const request = imagineRequest();
    await queue.enqueue(request, { units: 1 });
    const events = await eventsUntil({ redisUrl, prefix }, finished(request.generationId));
    expect(terminalEventsOf(events, request.generationId).map((event) => event.type)).toEqual(['completed']);
    expect(await ports.commitCount(request.generationId)).toBe(1);
    expect(engine.generateCalls).toHaveLength(1);
  });

  it('retries an out-of-memory error until the attempts run out, then refunds', async () => {
    const { engine } = await worker();
    const request = imagineRequest({ prompt: 'fail: oom' });
    await queue.enqueue(request, { units: 1 });
    const events = await eventsUntil({ redisUrl, prefix }, finished(request.generationId));
    expect(terminalEventsOf(events, request.generationId)).toEqual([
      expect.objectContaining({ type: 'failed', errorKind: 'transient', userMessage: expect.stringMatching(/out of memory/) }),
    ]);
    expect(engine.generateCalls).toHaveLength(3);
    expect(await ports.ledgerState(request.generationId)).toBe('refunded');
  });
});

describe('cancel and shutdown', () => {
  it('stops a running job between steps, refunds it and announces the cancellation', async () => {
    await worker();
    const request = imagineRequest({ steps: 150 });
    await queue.enqueue(request, { units: 1 });
    await eventsUntil({ redisUrl, prefix }, (events) => events.some((event) => event.type === 'progress'));
    expect(await queue.position(request.generationId)).toEqual({ state: 'running' });

    expect(await queue.cancel(request.generationId, { ...request.requester, isAdmin: false })).toBe('signalled');
    const events = await eventsUntil({ redisUrl, prefix }, finished(request.generationId));
    expect(terminalEventsOf(events, request.generationId)).toEqual([expect.objectContaining({ type: 'cancelled' })]);
    expect(events.filter((event) => event.type === 'progress').length).toBeLessThan(150);
    expect(await ports.ledgerState(request.generationId)).toBe('refunded');
    expect(await ports.historyStatus(request.generationId)).toBe('cancelled');
  });

  it('hands a job that outlives the shutdown deadline back to the queue, where another worker finishes it', async () => {
    const first = await worker({ shutdownDeadlineMs: 100 });
    const request = imagineRequest({ steps: 150 });
    await queue.enqueue(request, { units: 1 });
    await eventsUntil({ redisUrl, prefix }, (events) => events.some((event) => event.type === 'progress'));
    await first.running.stop();
    workers.splice(workers.indexOf(first.running), 1);

    expect(await queue.position(request.generationId)).toMatchObject({ state: 'waiting', position: 1 });
    expect(await ports.ledgerState(request.generationId)).toBe('reserved');
    await worker({});
    const events = await eventsUntil({ redisUrl, prefix }, finished(request.generationId));
    expect(terminalEventsOf(events, request.generationId).map((event) => event.type)).toEqual(['completed']);
    expect(await ports.commitCount(request.generationId)).toBe(1);
  });

  it('lets the running job finish when it ends within the shutdown deadline', async () => {
    await worker({ shutdownDeadlineMs: 30_000 });
    const request = imagineRequest({ steps: 10 });
    await queue.enqueue(request, { units: 1 });
    await eventsUntil({ redisUrl, prefix }, (events) => events.some((event) => event.type === 'progress'));
    await workers.pop()!.stop();
    expect(await ports.historyStatus(request.generationId)).toBe('succeeded');
  });
});
