import { UnrecoverableError, WaitingError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { isImagineError } from '../core/errors.js';
import type { EngineStepEvent, GenerationHistory, GenerationResult, ImageEngine, ImageStore, QuotaLedger } from '../core/ports.js';
import { releaseJobSlot } from '../queue/claims.js';
import { publishEvent, publishTerminalEvent } from '../queue/events.js';
import { classifyFailure, type FailureVerdict } from '../queue/failures.js';
import { editMaskKey, finalImageKey, gridImageKey, imagineKeys, previewImageKey, queueNameForModel, QueuedGeneration } from '../queue/job.js';
import { recordRunTime } from '../queue/wait-estimate.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { redisOptions } from './redis.js';

export interface WorkerOptions {
  redisUrl: string;
  /** BullMQ key prefix; must match the producer's. */
  prefix?: string;
  /** Loaded once by the caller; the worker takes jobs only from this model's queue. */
  engine: ImageEngine;
  ledger: QuotaLedger;
  history: GenerationHistory;
  images: ImageStore;
  /** Jobs run at once in this process (default 1: one model instance, one job). */
  concurrency?: number;
  /** At most one preview (and progress event) per this many ms (default 1500). */
  previewIntervalMs?: number;
  previewTtlSeconds?: number;
  /** On stop(): how long the running job may take to finish before it is handed back to the queue (default 30 s). */
  shutdownDeadlineMs?: number;
  /**
   * BullMQ lock: a worker that dies is noticed after at most lockDurationMs + 2 × stalledIntervalMs (default 8 s and
   * 3 s: at most 14 s, about 11 s on average). See DEFAULT_LOCK_DURATION_MS for the trade-off.
   */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** Times a job may be recovered from a lost worker before it fails (default 2). */
  maxStalledCount?: number;
  logger?: Logger;
  metrics?: Metrics;
  /** The engine's execution providers, as a metrics label. */
  provider?: string;
}

export interface RunningWorker {
  readonly queueName: string;
  /** Stops taking jobs, lets the running ones finish within the deadline, hands back the rest, closes connections. */
  stop(): Promise<void>;
  /** Hands the running jobs back to the queue now, as stop() does once its deadline passes. */
  handBackRunningJobs(): void;
}

type JobResult = { imageKeys: string[]; gridKey?: string; seeds: number[] } | { cancelled: true };

/**
 * Once history has recorded the outcome, this worker alone will ever charge or refund and announce it (a retry finds
 * the generation finished and does neither), so those steps are retried in place through a database or Redis blip.
 */
async function settle(operation: () => Promise<unknown>): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      await operation();
      return;
    } catch (error) {
      if (attempt >= SETTLE_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(200 * 2 ** attempt, 5_000)));
    }
  }
}
const SETTLE_ATTEMPTS = 8;

/**
 * How long a dead worker's job waits for another worker (BullMQ renews the lock every lockDuration / 2 and each live
 * worker checks for stalled jobs every stalledInterval; a job is moved back on the second check that finds it unlocked).
 * The price of a short lock: a worker whose event loop stalls for longer than lockDuration / 2 (the engine runs in its
 * own thread, so only a long GC pause or a starved CPU could do that) loses its job to another worker, which then runs
 * it a second time; the outcome is still recorded, charged and posted once. Each worker also sends one stall check
 * every 3 s and one lock renewal per running job every 4 s to Redis: a few commands a second, even for 100 workers.
 */
const DEFAULT_LOCK_DURATION_MS = 8_000;
const DEFAULT_STALLED_INTERVAL_MS = 3_000;

const CANCELLED = 'cancelled';
const SHUTDOWN = 'shutdown';
// BullMQ's reasons for failing a job whose workers kept dying mid-run (maxStalledCount, maxStartedAttempts).
const LOST_WORKER = /stalled more than allowable limit|started more than allowable limit/;

/** Runs generation jobs for one loaded model until stop(). */
export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const prefix = options.prefix ?? 'imagine';
  const keys = imagineKeys(prefix);
  const queueName = queueNameForModel(options.engine.modelName);
  const previewIntervalMs = options.previewIntervalMs ?? 1_500;
  const { ledger, history, images, engine, metrics } = options;
  const log = (level: 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown> = {}) => options.logger?.[level](fields, message);
  const countJob = (kind: string, state: 'completed' | 'failed' | 'cancelled' | 'retried') => metrics?.jobs.inc({ kind, state });

  const redis = new Redis(redisOptions(options.redisUrl, 'worker'));
  const cancellations = new Redis(redisOptions(options.redisUrl, 'subscriber'));
  for (const client of [redis, cancellations]) client.on('error', () => {});
  const running = new Map<string, AbortController>();
  cancellations.on('message', (_channel: string, generationId: string) => running.get(generationId)?.abort(CANCELLED));
  await cancellations.subscribe(keys.cancelChannel);

  // Best effort: a claim whose job has finished is dropped by the next cap check anyway.
  const releaseSlot = (request: QueuedGeneration, jobKey: string) =>
    releaseJobSlot(redis, keys, request.requester, jobKey).catch((error: unknown) =>
      log('warn', 'job slot not released', { generationId: request.generationId, error: String(error) }),
    );

  const endGeneration = async (
    request: QueuedGeneration,
    status: 'failed' | 'cancelled',
    verdict: Pick<FailureVerdict, 'kind' | 'userMessage'>,
    jobKey: string,
  ) => {
    const { generationId } = request;
    const target = { generationId, platform: request.requester.platform, replyTarget: request.replyTarget };
    // Settle by the outcome on record, not by who recorded it: a worker that died between recording and settling leaves
    // the refund and the announcement to this one (both are idempotent).
    if ((await history.markFailed(generationId, status, verdict.userMessage)) === status) {
      await settle(() => ledger.refund(generationId, status === 'cancelled' ? 'cancelled' : `failed: ${verdict.kind}`));
      const event =
        status === 'cancelled'
          ? { type: 'cancelled' as const, ...target, userMessage: verdict.userMessage }
          : { type: 'failed' as const, ...target, errorKind: verdict.kind, userMessage: verdict.userMessage };
      await settle(() => publishTerminalEvent(redis, keys, queueName, event));
    }
    await releaseSlot(request, jobKey);
  };

  const runGeneration = async (job: Job, token: string | undefined): Promise<JobResult> => {
    const parsed = QueuedGeneration.safeParse(job.data);
    if (!parsed.success) {
      // Only a producer of another version can send this; nothing about it can be trusted enough to post a reply.
      await ledger.refund(String(job.id), 'unreadable job');
      throw new UnrecoverableError(`job payload does not match the schema: ${parsed.error.message}`);
    }
    const request = parsed.data;
    const { generationId } = request;
    const target = { generationId, platform: request.requester.platform, replyTarget: request.replyTarget };
    const jobKey = `${prefix}:${queueName}:${generationId}`;
    const controller = new AbortController();
    running.set(generationId, controller);
    let stage: 'engine' | 'bookkeeping' = 'bookkeeping';
    let previews: Promise<void> = Promise.resolve();
    const takenAtMs = Date.now();
    // One line per finished job, whatever its outcome: what an operator greps for when a user asks "where is my image".
    const logFinished = (outcome: 'succeeded' | 'failed' | 'cancelled', fields: Record<string, unknown> = {}) =>
      log('info', 'job finished', {
        generationId,
        kind: request.kind,
        user: `${request.requester.platform}:${request.requester.userId}`,
        seconds: Math.round((Date.now() - takenAtMs) / 100) / 10,
        outcome,
        ...fields,
      });
    metrics?.waitTime.observe({ queue: queueName }, Math.max(0, Date.now() - request.enqueuedAt) / 1_000);
    try {
      if (await redis.exists(keys.cancelRequested(generationId))) controller.abort(CANCELLED);
      controller.signal.throwIfAborted();
      await history.markRunning(generationId);
      const parentImage = request.parent
        ? ((await images.get(finalImageKey(request.parent.generationId, request.parent.imageIndex))) ?? undefined)
        : undefined;
      const maskImage = request.maskKey ? ((await images.get(request.maskKey)) ?? undefined) : undefined;
      // A picture deleted since is left out; the engine then says how many pictures a blend needs.
      const blendImages = request.blendParents
        ? (await Promise.all(request.blendParents.map((parent) => images.get(finalImageKey(parent.generationId, parent.imageIndex))))).filter((png) => png !== null)
        : undefined;

      let lastPreviewAtMs = 0;
      const onStep = (event: EngineStepEvent) => {
        const nowMs = Date.now();
        if (nowMs - lastPreviewAtMs < previewIntervalMs) return;
        lastPreviewAtMs = nowMs;
        // Encode now, while the engine's x̂0 is this step's; store and announce it off the denoising loop.
        const preview = event.preview();
        // The chain below awaits it only after earlier previews are stored; a cancel in between rejects it first.
        preview.catch(() => {});
        previews = previews
          .then(async () => {
            const previewKey = previewImageKey(generationId, event.step);
            await images.put(previewKey, await preview, 'image/webp', { ttlSeconds: options.previewTtlSeconds ?? 3_600 });
            await publishEvent(redis, keys, queueName, { type: 'progress', ...target, step: event.step, totalSteps: event.totalSteps, previewKey });
          })
          .catch((error: unknown) => log('warn', 'preview not published', { generationId, error: String(error) }));
      };

      stage = 'engine';
      const startedAtMs = Date.now();
      const output = await engine.generate(request, { signal: controller.signal, parentImage, maskImage, blendImages, onStep });
      const runTimeMs = Date.now() - startedAtMs;
      stage = 'bookkeeping';
      await previews;

      const imageKeys = output.images.map((_, index) => finalImageKey(generationId, index));
      await Promise.all(output.images.map((png, index) => images.put(imageKeys[index], png, 'image/png')));
      const gridKey = output.grid ? gridImageKey(generationId) : undefined;
      if (output.grid && gridKey) await images.put(gridKey, output.grid, 'image/png');
      const maskKey = output.edit?.mask ? editMaskKey(generationId) : undefined;
      if (output.edit?.mask && maskKey) await images.put(maskKey, output.edit.mask, 'image/png');
      const warnings = output.warnings && output.warnings.length > 0 ? { warnings: output.warnings } : {};
      const result: GenerationResult = {
        generationId,
        imageKeys,
        gridKey,
        seeds: output.seeds,
        timingsMs: output.timingsMs,
        ...(maskKey && { maskKey }),
        ...warnings,
      };
      metrics?.runTime.observe({ queue: queueName, kind: request.kind }, runTimeMs / 1_000);
      if (request.kind !== 'upscale' && runTimeMs > 0) {
        metrics?.stepsPerSecond.set({ queue: queueName, provider: options.provider ?? 'cpu' }, (request.params.steps * 1_000) / runTimeMs);
      }
      // Exactly once, however many workers reach this line for the same job: history keeps the first outcome, and the
      // charge and the announcement follow that outcome idempotently (the ledger's unique key, the terminal event's
      // claim), so a worker that died right after recording success leaves them to the next one, not to nobody.
      if ((await history.markSucceeded(result)) === 'succeeded') {
        countJob(request.kind, 'completed');
        logFinished('succeeded');
        await settle(() => ledger.commit(generationId));
        await settle(() =>
          publishTerminalEvent(redis, keys, queueName, { type: 'completed', ...target, imageKeys, gridKey, seeds: output.seeds, timingsMs: output.timingsMs, ...warnings }),
        );
      }
      await Promise.all([recordRunTime(redis, keys, queueName, runTimeMs), releaseSlot(request, jobKey)]).catch((error: unknown) =>
        log('warn', 'wait estimate not updated', { generationId, error: String(error) }),
      );
      return { imageKeys, gridKey, seeds: output.seeds };
    } catch (error) {
      await previews;
      if (controller.signal.aborted && controller.signal.reason === SHUTDOWN) {
        await job.moveToWait(token);
        throw new WaitingError();
      }
      if (controller.signal.aborted && controller.signal.reason === CANCELLED) {
        await endGeneration(request, 'cancelled', { kind: 'cancelled', userMessage: 'Cancelled.' }, jobKey);
        countJob(request.kind, 'cancelled');
        logFinished('cancelled');
        return { cancelled: true };
      }
      const verdict: FailureVerdict =
        stage === 'engine' || isImagineError(error)
          ? classifyFailure(error)
          : // Our own stores failing (database or Redis blip) says nothing about the request: try it again.
            { retry: true, kind: 'transient', userMessage: 'Saving the result failed; try again shortly.' };
      const attempts = job.opts.attempts ?? 1;
      if (verdict.retry && job.attemptsMade + 1 < attempts) {
        log('warn', 'generation will be retried', { generationId, attempt: job.attemptsMade + 1, error: String(error) });
        countJob(request.kind, 'retried');
        throw error;
      }
      log('warn', 'generation failed', { generationId, kind: verdict.kind, error: String(error) });
      await endGeneration(request, 'failed', verdict, jobKey);
      countJob(request.kind, 'failed');
      logFinished('failed', { errorKind: verdict.kind });
      throw new UnrecoverableError(verdict.userMessage);
    } finally {
      running.delete(generationId);
    }
  };

  const worker = new Worker(queueName, runGeneration, {
    connection: redisOptions(options.redisUrl, 'worker') as ConnectionOptions,
    prefix,
    concurrency: options.concurrency ?? 1,
    lockDuration: options.lockDurationMs ?? DEFAULT_LOCK_DURATION_MS,
    stalledInterval: options.stalledIntervalMs ?? DEFAULT_STALLED_INTERVAL_MS,
    maxStalledCount: options.maxStalledCount ?? 2,
  });
  worker.on('error', (error) => log('warn', 'worker connection error', { error: String(error) }));
  // A job whose workers kept dying is failed by BullMQ itself when it is next taken, before any processor runs, so no
  // catch above sees it: the refund and the failed event are sent from here.
  worker.on('failed', (job, error) => {
    if (!job || !LOST_WORKER.test(error.message)) return;
    const parsed = QueuedGeneration.safeParse(job.data);
    if (!parsed.success) return;
    const userMessage = 'The worker running this image kept stopping; try again later.';
    endGeneration(parsed.data, 'failed', { kind: 'transient', userMessage }, `${prefix}:${queueName}:${job.id}`)
      .then(() => countJob(parsed.data.kind, 'failed'))
      .catch((failure: unknown) => log('error', 'could not end a lost job', { generationId: job.id, error: String(failure) }));
  });

  await worker.waitUntilReady();
  log('info', 'worker started', { queueName, concurrency: worker.concurrency });

  const handBackRunningJobs = () => {
    for (const controller of running.values()) controller.abort(SHUTDOWN);
  };
  return {
    queueName,
    handBackRunningJobs,
    async stop() {
      const deadline = setTimeout(handBackRunningJobs, options.shutdownDeadlineMs ?? 30_000);
      try {
        await worker.close();
      } finally {
        clearTimeout(deadline);
        cancellations.disconnect();
        redis.disconnect();
      }
      log('info', 'worker stopped', { queueName });
    },
  };
}
