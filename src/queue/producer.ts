import { Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { ImagineError, invalidInput, isImagineError } from '../core/errors.js';
import type { GenerationRequest, Requester } from '../core/generation.js';
import type { GenerationHistory, GenerationIntake, QuotaLedger } from '../core/ports.js';
import { redisOptions } from '../service/redis.js';
import { claimJobSlot, DEFAULT_JOB_CAPS, releaseJobSlot, type JobCaps } from './claims.js';
import { publishTerminalEvent } from './events.js';
import { imagineKeys, priorityFor, queueNameForModel, QueuedGeneration } from './job.js';
import { averageRunTimeMs, estimateWaitMs } from './wait-estimate.js';

export interface GenerationQueueOptions {
  redisUrl: string;
  /** BullMQ key prefix; every key this module writes lives under it. */
  prefix?: string;
  ledger: QuotaLedger;
  history: GenerationHistory;
  /** Reserves and records in one transaction; without it (stores that have none) the ledger reserves, then history records. */
  intake?: GenerationIntake;
  caps?: Partial<JobCaps>;
  /** Attempts for transient failures (first run included), with exponential backoff from `retryDelayMs`. */
  attempts?: number;
  retryDelayMs?: number;
}

export interface EnqueueReceipt {
  generationId: string;
  queueName: string;
  /** 1-based place among waiting jobs of the same model. */
  position?: number;
  /** Absent until the model's workers have finished a job to average over. */
  estimatedWaitMs?: number;
}

export type QueuePosition =
  | { state: 'waiting'; position: number; estimatedWaitMs?: number }
  | { state: 'running' }
  | { state: 'retrying' }
  | { state: 'finished' };

export interface GenerationQueue {
  /**
   * Validates, checks the caps, reserves quota, records history and queues. Quota is reserved only after the Redis cap
   * check succeeded, and refunded if the add itself fails, so an unreachable queue never charges anyone.
   */
  enqueue(request: z.input<typeof GenerationRequest>, options: { units: number }): Promise<EnqueueReceipt>;
  /** 'removed': it was still waiting (refunded now). 'signalled': it is running; the worker stops between steps. */
  cancel(generationId: string, requester: Requester): Promise<'removed' | 'signalled'>;
  /** The requester's waiting and running generations, newest first (for a /cancel that names none). */
  unfinished(requester: Requester): Promise<string[]>;
  /** Where a generation stands: its 1-based place and estimated wait while waiting, else running, retrying or finished. */
  position(generationId: string): Promise<QueuePosition>;
  close(): Promise<void>;
}

/** The BullMQ options of a generation's job, the same whether the producer or the reconciler queues it. */
export function generationJobOptions(
  request: QueuedGeneration,
  retry: Pick<GenerationQueueOptions, 'attempts' | 'retryDelayMs'> = {},
): JobsOptions {
  return {
    jobId: request.generationId,
    priority: priorityFor(request),
    attempts: retry.attempts ?? 3,
    backoff: { type: 'exponential', delay: retry.retryDelayMs ?? 2_000 },
    removeOnComplete: { age: 24 * 3600, count: 10_000 },
    removeOnFail: { age: 7 * 24 * 3600 },
  };
}

const queueUnavailable = (cause: unknown) =>
  new ImagineError('transient', 'The queue is unavailable, try again shortly.', {}, { cause });

/** The chat side's handle on the queues: one BullMQ queue per model, opened on first use. */
export function createGenerationQueue(options: GenerationQueueOptions): GenerationQueue {
  const prefix = options.prefix ?? 'imagine';
  const keys = imagineKeys(prefix);
  const caps = { ...DEFAULT_JOB_CAPS, ...options.caps };
  const redisConnection = redisOptions(options.redisUrl, 'producer');
  const redis = new Redis(redisConnection);
  const connection = redisConnection as ConnectionOptions;
  redis.on('error', () => {});
  const queues = new Map<string, Queue>();

  const queueNamed = (queueName: string): Queue => {
    let queue = queues.get(queueName);
    if (!queue) {
      queue = new Queue(queueName, { connection, prefix });
      queue.on('error', () => {});
      queues.set(queueName, queue);
    }
    return queue;
  };

  // With the offline queue off, a command sent before the first connect completes fails; wait for that connect only,
  // never for a reconnect (Redis known to be down must answer at once).
  const connected = () =>
    new Promise<void>((resolve, reject) => {
      if (redis.status === 'ready') return resolve();
      if (redis.status !== 'wait' && redis.status !== 'connecting' && redis.status !== 'connect') {
        return reject(new Error(`Redis connection is ${redis.status}`));
      }
      const settle = (error?: Error) => {
        redis.off('ready', settle);
        redis.off('error', settle);
        if (error) reject(error);
        else resolve();
      };
      redis.once('ready', settle);
      redis.once('error', settle);
    });

  const failFast = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      await connected();
      return await work();
    } catch (error) {
      throw isImagineError(error) ? error : queueUnavailable(error);
    }
  };

  const findJob = async (generationId: string) => {
    const queueName = await failFast(() => redis.get(keys.queueOf(generationId)));
    const job = queueName ? await failFast(() => queueNamed(queueName).getJob(generationId)) : undefined;
    if (!queueName || !job) {
      throw new ImagineError('not_found', 'There is no such job in the queue; it may have finished already.');
    }
    return { queueName, job, request: QueuedGeneration.parse(job.data) };
  };

  const positionOf = async (queueName: string, generationId: string): Promise<QueuePosition> => {
    const queue = queueNamed(queueName);
    const job = await queue.getJob(generationId);
    if (!job) return { state: 'finished' };
    const state = await job.getState();
    if (state === 'active') return { state: 'running' };
    if (state === 'delayed') return { state: 'retrying' };
    if (state !== 'prioritized' && state !== 'waiting') return { state: 'finished' };
    const rank = await redis.zrank(queue.keys.prioritized, generationId);
    const [active, workers, averageMs] = await Promise.all([
      queue.getActiveCount(),
      queue.getWorkersCount().catch(() => 1),
      averageRunTimeMs(redis, keys, queueName),
    ]);
    const jobsAhead = (rank ?? 0) + active;
    return {
      state: 'waiting',
      position: (rank ?? 0) + 1,
      estimatedWaitMs: averageMs === undefined ? undefined : estimateWaitMs(jobsAhead, workers, averageMs),
    };
  };

  return {
    async enqueue(input, { units }) {
      const parsed = QueuedGeneration.safeParse({ ...input, enqueuedAt: Date.now() });
      if (!parsed.success) {
        throw invalidInput(`That request is not valid: ${z.prettifyError(parsed.error)}`, { issues: parsed.error.issues });
      }
      const request = parsed.data;
      const { generationId } = request;
      const queueName = queueNameForModel(request.params.model);
      const queue = queueNamed(queueName);
      const jobKey = queue.toKey(generationId);

      const verdict = await failFast(() => claimJobSlot(redis, keys, { requester: request.requester, jobKey, generationId, queueName }, caps));
      if (!verdict.claimed) {
        const whose = verdict.cap === 'user' ? 'You have' : 'This workspace has';
        throw new ImagineError('busy', `${whose} ${verdict.count} jobs queued — wait for one to finish or /cancel one.`, {
          cap: verdict.cap,
          count: verdict.count,
        });
      }
      const releaseClaim = () => releaseJobSlot(redis, keys, request.requester, jobKey).catch(() => {});

      try {
        if (options.intake) await options.intake.accept(request, units);
        else await options.ledger.reserve(request, units);
      } catch (error) {
        await releaseClaim();
        throw error;
      }
      try {
        if (!options.intake) await options.history.recordQueued(request);
        // A crash from here until the add leaves an accepted generation that is not queued: the reconciler queues it.
        await failFast(() =>
          queue.add('generate', request, generationJobOptions(request, options)),
        );
      } catch (error) {
        const failure = isImagineError(error) ? error : queueUnavailable(error);
        await options.ledger.refund(generationId, 'not queued').catch(() => {});
        await options.history.markFailed(generationId, 'failed', failure.userMessage, { announced: true }).catch(() => {});
        await releaseClaim();
        throw failure;
      }
      const placed = await positionOf(queueName, generationId).catch(() => undefined);
      return {
        generationId,
        queueName,
        position: placed?.state === 'waiting' ? placed.position : undefined,
        estimatedWaitMs: placed?.state === 'waiting' ? placed.estimatedWaitMs : undefined,
      };
    },

    async cancel(generationId, requester) {
      const { queueName, job, request } = await findJob(generationId);
      const owner = request.requester;
      const sameWorkspace = owner.platform === requester.platform && owner.workspaceId === requester.workspaceId;
      if (!sameWorkspace || (owner.userId !== requester.userId && !requester.isAdmin)) {
        throw new ImagineError('forbidden', 'You can only cancel your own jobs.');
      }
      const state = await failFast(() => job.getState());
      if (state === 'completed' || state === 'failed') {
        throw new ImagineError('not_found', 'That job has already finished.');
      }
      if (state !== 'active') {
        const removed = await job.remove().then(
          () => true,
          // A worker took it between the two calls: it is running now, so signal it instead.
          () => false,
        );
        if (removed) {
          const userMessage = 'Cancelled before it started.';
          await options.ledger.refund(generationId, 'cancelled');
          await options.history.markFailed(generationId, 'cancelled', userMessage);
          await publishTerminalEvent(redis, keys, queueName, {
            type: 'cancelled',
            generationId,
            platform: owner.platform,
            replyTarget: request.replyTarget,
            userMessage,
          });
          await releaseJobSlot(redis, keys, owner, queueNamed(queueName).toKey(generationId)).catch(() => {});
          return 'removed';
        }
      }
      await failFast(() => redis.multi().set(keys.cancelRequested(generationId), '1', 'EX', 24 * 3600).publish(keys.cancelChannel, generationId).exec());
      return 'signalled';
    },

    async position(generationId) {
      const queueName = await failFast(() => redis.get(keys.queueOf(generationId)));
      if (!queueName) return { state: 'finished' };
      return failFast(() => positionOf(queueName, generationId));
    },

    async unfinished(requester) {
      const jobKeys = await failFast(() => redis.zrevrange(keys.userClaims(requester), 0, -1));
      if (jobKeys.length === 0) return [];
      const pipeline = redis.pipeline();
      for (const jobKey of jobKeys) pipeline.exists(jobKey).hexists(jobKey, 'finishedOn');
      const replies = (await failFast(() => pipeline.exec())) ?? [];
      return jobKeys
        .filter((_, index) => replies[2 * index]?.[1] === 1 && replies[2 * index + 1]?.[1] === 0)
        .map((jobKey) => jobKey.slice(jobKey.lastIndexOf(':') + 1));
    },

    async close() {
      await Promise.all([...queues.values()].map((queue) => queue.close()));
      redis.disconnect();
    },
  };
}
