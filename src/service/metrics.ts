import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The job states a BullMQ queue holds work in; `prioritized` is where jobs with a priority wait. */
export const QUEUE_STATES = ['waiting', 'prioritized', 'active', 'delayed', 'failed'] as const;
export type QueueState = (typeof QUEUE_STATES)[number];

export interface QueueDepth {
  queue: string;
  state: QueueState;
  count: number;
}

export interface MetricsOptions {
  /** Read at every scrape, so the depth is never stale; omit it in a process that holds no queue. */
  queueDepths?: () => Promise<QueueDepth[]>;
  /** Node's own process metrics (CPU, heap, event-loop lag) beside ours. */
  processMetrics?: boolean;
}

// Diffusion jobs take seconds to minutes, queue waits up to tens of minutes: the default buckets (5 ms–10 s) miss both.
const WAIT_BUCKETS_SECONDS = [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800];
const RUN_BUCKETS_SECONDS = [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300];

/**
 * Every metric this service exports, on a registry of its own (tests and two roles in one process never collide on
 * prom-client's global one). Names follow Prometheus conventions: base units, `_total` for counters.
 */
export function createMetrics(options: MetricsOptions = {}) {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry });
  const { queueDepths } = options;
  // One read per scrape, shared by the two gauges below. A failed read (Redis down) yields undefined instead of failing
  // the scrape: the other metrics matter most during an outage.
  let depthRead: Promise<QueueDepth[] | undefined> | undefined;
  const readDepths = () => queueDepths?.().catch(() => undefined) ?? Promise.resolve(undefined);
  const queueDepth = new Gauge({
    name: 'imagine_queue_depth',
    help: 'Jobs held in each queue, by BullMQ state, read at scrape time.',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    async collect() {
      if (!queueDepths) return;
      depthRead = readDepths();
      const depths = await depthRead;
      this.reset();
      for (const depth of depths ?? []) this.set({ queue: depth.queue, state: depth.state }, depth.count);
    },
  });
  // Registered after imagine_queue_depth, whose collect starts the read this one waits for.
  const queueDepthReadable = new Gauge({
    name: 'imagine_queue_depth_readable',
    help: '1 when this scrape could read the queue depths, 0 when Redis could not be reached.',
    // A process without queues has nothing to report here, rather than a misleading 0.
    registers: queueDepths ? [registry] : [],
    async collect() {
      this.set((await (depthRead ?? readDepths())) ? 1 : 0);
    },
  });

  return {
    registry,
    queueDepthReadable,
    jobs: new Counter({
      name: 'imagine_jobs_total',
      help: 'Jobs that reached a state, by kind (generate, vary, upscale) and state (completed, failed, cancelled, retried).',
      labelNames: ['kind', 'state'] as const,
      registers: [registry],
    }),
    queueDepth,
    waitTime: new Histogram({
      name: 'imagine_job_wait_seconds',
      help: 'Time from enqueue to a worker starting the job.',
      labelNames: ['queue'] as const,
      buckets: WAIT_BUCKETS_SECONDS,
      registers: [registry],
    }),
    runTime: new Histogram({
      name: 'imagine_job_run_seconds',
      help: 'Time a worker spent on a job, from start to stored result.',
      labelNames: ['queue', 'kind'] as const,
      buckets: RUN_BUCKETS_SECONDS,
      registers: [registry],
    }),
    stepsPerSecond: new Gauge({
      name: 'imagine_denoise_steps_per_second',
      help: 'Denoising steps per second of the last finished job, per model queue and execution provider.',
      labelNames: ['queue', 'provider'] as const,
      registers: [registry],
    }),
    previewEdits: new Counter({
      name: 'imagine_preview_edits_total',
      help: 'Progress preview message edits, sent or dropped by the throttle.',
      labelNames: ['platform', 'outcome'] as const,
      registers: [registry],
    }),
    quotaRefusals: new Counter({
      name: 'imagine_quota_refusals_total',
      help: 'Requests refused for quota or rate limits, by reason.',
      labelNames: ['platform', 'reason'] as const,
      registers: [registry],
    }),
    chatApiErrors: new Counter({
      name: 'imagine_chat_api_errors_total',
      help: 'Failed calls to a chat platform API, by HTTP status (0 when no response came).',
      labelNames: ['platform', 'status'] as const,
      registers: [registry],
    }),
    chatApiRateLimited: new Counter({
      name: 'imagine_chat_api_rate_limited_total',
      help: 'Chat platform API calls answered 429 Too Many Requests.',
      labelNames: ['platform'] as const,
      registers: [registry],
    }),
    modelLoadTime: new Gauge({
      name: 'imagine_model_load_seconds',
      help: 'Time the worker took to load its model folder into ONNX Runtime sessions.',
      labelNames: ['model', 'provider'] as const,
      registers: [registry],
    }),
    workerRss: new Gauge({
      name: 'imagine_worker_rss_bytes',
      help: 'Resident set size of this process, where the model sessions live.',
      registers: [registry],
      collect() {
        this.set(process.memoryUsage.rss());
      },
    }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;

/** Reads the depths `createMetrics` wants from BullMQ queues (anything with BullMQ's `getJobCounts`). */
export function bullQueueDepths(
  queues: ReadonlyArray<{ name: string; getJobCounts(...types: string[]): Promise<Record<string, number>> }>,
): () => Promise<QueueDepth[]> {
  return async () => {
    const perQueue = await Promise.all(
      queues.map(async (queue) => {
        const counts = await queue.getJobCounts(...QUEUE_STATES);
        return QUEUE_STATES.map((state) => ({ queue: queue.name, state, count: counts[state] ?? 0 }));
      }),
    );
    return perQueue.flat();
  };
}
