import { appendFile } from 'node:fs/promises';
import sharp from 'sharp';
import { z } from 'zod';
import { isImagineError, modelFailure } from '../core/errors.js';
import { GenerationRequest } from '../core/generation.js';
import type { ImageEngine } from '../core/ports.js';
import type { JobCaps } from '../queue/claims.js';
import { createGenerationQueue } from '../queue/producer.js';
import { createImagineService } from '../service/imagine-service.js';
import { startWorker } from '../service/worker.js';
import { createLocalImageStore } from '../store/images-local.js';
import { openUnlimitedStores } from './stores.js';

/**
 * The child processes of `npm run soak:faults` (src/bench/soak-faults.ts starts them with `--worker` or `--bot`): a
 * worker on a stand-in engine, and the bot — the chat side's ImagineService — which takes the users' requests over its
 * IPC channel and appends what it posts to a file. Both open the same stores as the parent, and both can be SIGKILLed
 * at any moment.
 */

export const MODEL_NAME = 'soak-model';
export const STEPS = 12;
const STEP_DELAY_MS = 80;
// Short locks so a killed worker's job is taken again within seconds instead of BullMQ's default 30 s.
const LOCK_DURATION_MS = 3_000;
const STALLED_INTERVAL_MS = 1_500;
/** The soak engine fails this prompt on purpose, so a run also exercises the path that fails with a message. */
export const FAILING_PROMPT = 'soak: model failure';
// The reconciler's and the bot's database sweep's timings, shortened from a minute to fit a soak run.
export const RECONCILE_GRACE_MS = 5_000;
export const RECONCILE_INTERVAL_MS = 3_000;
/** A claim to post that a killed bot left behind lapses after this, and the restarted bot posts the outcome. */
export const ANNOUNCE_LEASE_MS = 5_000;
const RETRY_DELAY_MS = 500;

export interface WorkerConfig {
  redisUrl: string;
  prefix: string;
  databaseUrl: string;
  imageDir: string;
}

export interface BotConfig extends WorkerConfig {
  /** Where the bot's poster appends one `generationId outcome postedAtMs` line per outcome it is handed. */
  postedFile: string;
  /** Raised above the run's job count: a soak user is never told to wait for their queued jobs. */
  caps: JobCaps;
}

/** What a soak user sends the bot: one request, as a chat command would hand it to ImagineService.submit. */
export const SubmitMessage = z.object({ request: GenerationRequest });
/** The bot's answer once submit resolved (the "queued" reply) or threw (the refusal a user reads). */
export const SubmitAnswer = z.discriminatedUnion('accepted', [
  z.object({ generationId: z.string(), accepted: z.literal(true) }),
  z.object({ generationId: z.string(), accepted: z.literal(false), kind: z.string(), userMessage: z.string() }),
]);
export type SubmitAnswer = z.infer<typeof SubmitAnswer>;

/** A stand-in engine that takes STEPS × STEP_DELAY_MS, checks the abort signal between steps, and returns a 16×16 PNG. */
async function createSoakEngine(): Promise<ImageEngine> {
  const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#3a6' } }).png().toBuffer();
  const preview = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#3a6' } }).webp().toBuffer();
  return {
    modelName: MODEL_NAME,
    async generate(request, hooks) {
      if (request.params.prompt === FAILING_PROMPT) throw modelFailure('The soak engine fails this prompt on purpose.');
      for (let step = 1; step <= request.params.steps; step += 1) {
        hooks.signal?.throwIfAborted();
        await new Promise((resolve) => setTimeout(resolve, STEP_DELAY_MS));
        hooks.onStep?.({ step, totalSteps: request.params.steps, preview: async () => preview });
      }
      return { images: [png], seeds: [request.params.seed], timingsMs: {} };
    },
  };
}

/** A soak run that crashes must not leave children behind: the parent's end closes this pipe. */
function exitWithParent(): void {
  process.stdin.once('close', () => process.exit(1));
  process.stdin.resume();
}

export async function runWorkerChild(config: WorkerConfig): Promise<void> {
  const { database, ledger, history } = await openUnlimitedStores(config.databaseUrl);
  const worker = await startWorker({
    redisUrl: config.redisUrl,
    prefix: config.prefix,
    engine: await createSoakEngine(),
    ledger,
    history,
    images: createLocalImageStore(config.imageDir),
    previewIntervalMs: 300,
    lockDurationMs: LOCK_DURATION_MS,
    stalledIntervalMs: STALLED_INTERVAL_MS,
  });
  process.once('SIGTERM', () => {
    void worker
      .stop()
      .then(() => database.close())
      .then(() => process.exit(0));
  });
  exitWithParent();
  process.stdout.write('ready\n');
}

/**
 * The bot as the `bot` role runs it, on the same stores: requests arrive over IPC and go through ImagineService.submit,
 * the path a chat command takes, and its poster appends to a file the parent audits.
 */
export async function runBotChild(config: BotConfig): Promise<void> {
  const { database, ledger, history, intake } = await openUnlimitedStores(config.databaseUrl);
  const queue = createGenerationQueue({
    redisUrl: config.redisUrl,
    prefix: config.prefix,
    ledger,
    history,
    intake,
    caps: config.caps,
    retryDelayMs: RETRY_DELAY_MS,
  });
  const service = createImagineService({
    prisma: database.prisma,
    ledger,
    history,
    queue,
    images: createLocalImageStore(config.imageDir),
    redisUrl: config.redisUrl,
    queuePrefix: config.prefix,
    models: [MODEL_NAME],
    announceSweep: { intervalMs: RECONCILE_INTERVAL_MS, graceMs: RECONCILE_GRACE_MS, leaseMs: ANNOUNCE_LEASE_MS },
  });
  // One short line per append: what the user saw is exactly what reached this file. Posting is confirmed once the
  // append resolves, as an adapter's once the platform answered.
  service.subscribe('cli', async (event) => {
    if (event.type !== 'progress') await appendFile(config.postedFile, `${event.generationId} ${event.type} ${Date.now()}\n`);
  });
  process.on('message', (message) => {
    const { request } = SubmitMessage.parse(message);
    const { generationId } = request;
    service.submit(request).then(
      () => process.send?.({ generationId, accepted: true } satisfies SubmitAnswer),
      (error: unknown) =>
        process.send?.({
          generationId,
          accepted: false,
          kind: isImagineError(error) ? error.kind : 'unexpected',
          userMessage: isImagineError(error) ? error.userMessage : String(error),
        } satisfies SubmitAnswer),
    );
  });
  exitWithParent();
  process.stdout.write('ready\n');
}
