import { Queue, type ConnectionOptions } from 'bullmq';
import { Redis } from 'ioredis';
import type { GenerationHistory, QuotaLedger } from '../core/ports.js';
import { BOOKKEEPING_TTL_SECONDS, imagineKeys, queueNameForModel, QueuedGeneration } from '../queue/job.js';
import { generationJobOptions } from '../queue/producer.js';
import type { PrismaClient } from '../store/database.js';
import { reservationsWithoutGeneration, unfinishedGenerations, unsettledOutcomes } from '../store/generations.js';
import type { Logger } from './logger.js';
import { redisOptions } from './redis.js';

/**
 * PostgreSQL is the record of accepted work; Redis only carries it to the workers. The reconciler makes Redis and the
 * ledger agree with that record again after anything that broke the chain: a Redis restarted without persistence (every
 * waiting and running job gone), a bot killed between accepting and queueing, a worker killed between recording an
 * outcome and charging or refunding it. Every step is idempotent, so any number of processes may run it at once.
 */
export interface ReconcilerOptions {
  prisma: PrismaClient;
  ledger: QuotaLedger;
  history: GenerationHistory;
  redisUrl: string;
  prefix: string;
  /**
   * Work younger than this is left alone: a producer is between its database commit and its queue add, or a worker
   * between recording and settling (default 60 s).
   */
  graceMs?: number;
  /** Unfinished longer than this and still in the queue: reported as stuck (default 1 h). */
  stuckAfterMs?: number;
  logger?: Logger;
  now?: () => Date;
}

export interface ReconcileReport {
  /** Accepted, unfinished, and missing from Redis: queued again. */
  requeued: string[];
  /** Failed for good in BullMQ while the database still said unfinished: recorded as failed and refunded. */
  failed: string[];
  /** Reservations with no generation, and failed or cancelled generations never refunded. */
  refunded: string[];
  /** Succeeded generations never charged. */
  committed: string[];
  /** In the queue but unfinished for longer than stuckAfterMs. */
  stuck: string[];
}

export interface Reconciler {
  run(): Promise<ReconcileReport>;
  /** Runs now and then every `intervalMs`, logging what it repaired; one run at a time. */
  start(intervalMs: number): void;
  close(): Promise<void>;
}

const BATCH = 500;
const LOST_JOB_MESSAGE = 'This image could not be finished; your quota was refunded. Please try again.';

export function createReconciler(options: ReconcilerOptions): Reconciler {
  const now = options.now ?? (() => new Date());
  const graceMs = options.graceMs ?? 60_000;
  const stuckAfterMs = options.stuckAfterMs ?? 3_600_000;
  const keys = imagineKeys(options.prefix);
  const connection = redisOptions(options.redisUrl, 'worker');
  const redis = new Redis(connection);
  redis.on('error', () => {});
  const queues = new Map<string, Queue>();
  const queueNamed = (queueName: string) => {
    let queue = queues.get(queueName);
    if (!queue) {
      queue = new Queue(queueName, { connection: connection as ConnectionOptions, prefix: options.prefix });
      queue.on('error', () => {});
      queues.set(queueName, queue);
    }
    return queue;
  };

  const run = async (): Promise<ReconcileReport> => {
    const report: ReconcileReport = { requeued: [], failed: [], refunded: [], committed: [], stuck: [] };
    const settledBefore = new Date(now().getTime() - graceMs);

    for (const record of await unfinishedGenerations(options.prisma, { acceptedBefore: settledBefore, limit: BATCH })) {
      const { generationId } = record.request;
      const queueName = queueNameForModel(record.request.params.model);
      const queue = queueNamed(queueName);
      const job = await queue.getJob(generationId);
      if (!job) {
        const request = QueuedGeneration.parse({ ...record.request, enqueuedAt: record.createdAt.getTime() });
        await queue.add('generate', request, generationJobOptions(request));
        await redis.set(keys.queueOf(generationId), queueName, 'EX', BOOKKEEPING_TTL_SECONDS);
        report.requeued.push(generationId);
        continue;
      }
      const state = await job.getState();
      if (state === 'failed') {
        // The worker that failed it died before recording that; the bot's sweep of unposted outcomes tells the user.
        if ((await options.history.markFailed(generationId, 'failed', LOST_JOB_MESSAGE)) === 'failed') {
          await options.ledger.refund(generationId, 'failed: reconciled');
          report.failed.push(generationId);
        }
      } else if (now().getTime() - record.createdAt.getTime() > stuckAfterMs) {
        report.stuck.push(generationId);
      }
    }

    for (const generationId of await reservationsWithoutGeneration(options.prisma, { reservedBefore: settledBefore, limit: BATCH })) {
      await options.ledger.refund(generationId, 'no generation recorded');
      report.refunded.push(generationId);
    }

    for (const { generationId, status } of await unsettledOutcomes(options.prisma, { finishedBefore: settledBefore, limit: BATCH })) {
      if (status === 'succeeded') {
        await options.ledger.commit(generationId);
        report.committed.push(generationId);
      } else {
        await options.ledger.refund(generationId, `${status}: reconciled`);
        report.refunded.push(generationId);
      }
    }
    return report;
  };

  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const runLogged = () => {
    running ??= run()
      .then(
        (report) => {
          const repaired = report.requeued.length + report.failed.length + report.refunded.length + report.committed.length;
          if (repaired > 0 || report.stuck.length > 0) options.logger?.warn({ report }, 'reconciler repaired accepted work');
        },
        (error: unknown) => options.logger?.warn({ error: String(error) }, 'reconciler run failed; the next one tries again'),
      )
      .finally(() => {
        running = undefined;
      });
  };

  return {
    run,
    start(intervalMs) {
      runLogged();
      timer = setInterval(runLogged, intervalMs);
      timer.unref();
    },
    async close() {
      clearInterval(timer);
      await Promise.all([...queues.values()].map((queue) => queue.close()));
      redis.disconnect();
    },
  };
}
