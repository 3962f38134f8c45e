import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Queue, type ConnectionOptions } from 'bullmq';
import { Redis } from 'ioredis';
import type { ChatConfig, ModelLimits } from '../core/chat/chat-config.js';
import type { ImagineService } from '../core/chat/service.js';
import type { GenerationRequest } from '../core/generation.js';
import type { ImageStore } from '../core/ports.js';
import { ImagineError, isImagineError } from '../core/errors.js';
import { defaultQuotaPolicy } from '../core/quota.js';
import { withSafety } from '../core/safety.js';
import { startDiscordBot } from '../adapters/discord/bot.js';
import { startSlackBot } from '../adapters/slack/bot.js';
import { startWebChat } from '../adapters/web/server.js';
import { describeModelFolder, type ModelDescription } from '../engine/model-description.js';
import { vocabularySample } from '../engine/vocabulary.js';
import { startThreadedEngine } from '../engine/threaded-engine.js';
import { createGenerationQueue } from '../queue/producer.js';
import { queueNameForModel } from '../queue/job.js';
import { openDatabase } from '../store/database.js';
import { createGenerationHistory } from '../store/generations.js';
import { createLocalImageStore, startExpirySweep, type LocalImageStore } from '../store/images-local.js';
import { createS3ImageStore } from '../store/images-s3.js';
import { createGenerationIntake } from '../store/intake.js';
import { PrismaQuotaLedger } from '../store/quota-ledger.js';
import { createWebTranscriptStore } from '../store/web-transcripts.js';
import { describeConfig, loadConfig, ROLES, type Config, type Role } from './config.js';
import { startHealthServer } from './http.js';
import { createImagineService } from './imagine-service.js';
import { createLogger } from './logger.js';
import { createRedisDeliveryLog } from './delivery-log.js';
import { createRedisRateLimiter } from './rate-limit.js';
import { bullQueueDepths, createMetrics, type Metrics } from './metrics.js';
import { createReconciler } from './reconciler.js';
import { redisOptions } from './redis.js';
import { ensureRedis } from './redis-server.js';
import { startWorker } from './worker.js';

/** Previews live an hour (the worker's previewTtlSeconds); a sweep every 10 minutes keeps at most 70 minutes of them. */
const PREVIEW_SWEEP_INTERVAL_MS = 10 * 60_000;
const RECONCILE_INTERVAL_MS = 60_000;

/**
 * `npm start` (role `all`), or `node --import tsx src/service/main.ts bot|worker`: one code base, three process roles.
 * Everything a role needs is opened here, in dependency order, and closed in reverse on SIGTERM / SIGINT.
 */
export interface RunningService {
  /** Stops in reverse start order; a running job finishes within WORKER_SHUTDOWN_DEADLINE_MS, else is handed back. */
  stop(): Promise<void>;
  /** Hands the running jobs back to the queue now (a second Ctrl-C), without waiting for the deadline. */
  handBackRunningJobs(): void;
}

export async function startService(role: Role, env: NodeJS.ProcessEnv = process.env): Promise<RunningService> {
  const config = loadConfig(env, role);
  const logger = createLogger(config);
  logger.info({ config: describeConfig(config) }, `starting imagine-bot (${role})`);
  const closers: (() => Promise<unknown>)[] = [];
  let handBackRunningJobs = () => {};
  const stop = async () => {
    for (const close of closers.reverse()) await close().catch((error) => logger.error({ err: error }, 'error while stopping'));
  };

  try {
    if (role !== 'all' && config.database.kind === 'pglite') {
      throw new Error(`The ${role} role needs DATABASE_URL (PostgreSQL): the embedded database opens in one process only. Run the all-in-one role (npm start) to use it.`);
    }
    // The all-in-one role may start a private Redis when the default one is not there; an explicit REDIS_URL must answer.
    const redis = await ensureRedis({ url: config.redisUrl, mayStartPrivate: role === 'all' && !env.REDIS_URL, dataDir: config.dataDir });
    closers.push(redis.stop);
    const redisUrl = redis.url;

    const database = await openDatabase(config.database.kind === 'postgres' ? { url: config.database.url } : { dataDir: config.database.dir });
    closers.push(database.close);
    const images = openImageStore(config.imageStore);
    const ledgerOptions = { defaultPolicy: defaultQuotaPolicy(config.quota) };
    const ledger = new PrismaQuotaLedger(database.prisma, ledgerOptions);
    const history = createGenerationHistory(database.prisma);
    const description = await describeModelFolder(config.modelDir);
    // A read-only handle on the model's queue: its depth for /metrics and KEDA-style watchers, and the dashboard.
    const modelQueue = new Queue(queueNameForModel(description.name), {
      connection: redisOptions(redisUrl, 'worker') as ConnectionOptions,
      prefix: config.queuePrefix,
    });
    modelQueue.on('error', () => {});
    closers.push(() => modelQueue.close());
    const metrics = createMetrics({ processMetrics: true, queueDepths: bullQueueDepths([modelQueue]) });

    const ping = new Redis(redisOptions(redisUrl, 'producer'));
    ping.on('error', () => {});
    closers.push(async () => ping.disconnect());
    const readiness: Record<string, () => Promise<unknown>> = {
      redis: () => ping.ping(),
      database: () => database.prisma.$queryRaw`SELECT 1`,
    };

    if (role !== 'bot') {
      const loadStartedMs = performance.now();
      const engine = await startThreadedEngine(config.modelDir, {
        executionProviders: config.ortProviders,
        intraOpNumThreads: config.ortThreads,
        providerOptions: config.gpuProviderOptions,
      });
      metrics.modelLoadTime.set({ model: engine.modelName, provider: config.ortProviders.join(',') }, (performance.now() - loadStartedMs) / 1000);
      closers.push(engine.release);
      const worker = await startWorker({
        redisUrl,
        prefix: config.queuePrefix,
        engine,
        ledger,
        history,
        images,
        concurrency: config.workerConcurrency,
        previewIntervalMs: config.previewIntervalMs,
        shutdownDeadlineMs: config.workerShutdownDeadlineMs,
        logger,
        metrics,
        provider: config.ortProviders.join(','),
      });
      closers.push(worker.stop);
      // Previews are stored with a TTL (an hour); whoever writes them also deletes them once it has passed. A bucket
      // deletes them itself by a lifecycle rule (docs/DEPLOY.md), and hides them from readers at once.
      if ('sweepExpired' in images) {
        const stopSweep = startExpirySweep(images, PREVIEW_SWEEP_INTERVAL_MS, (error) => logger.warn({ err: error }, 'preview sweep failed'));
        closers.push(async () => stopSweep());
      }
      readiness.model = async () => {
        // A dead engine thread is being replaced (or could not be): take no traffic meanwhile; 'failed' stays not ready.
        if (engine.health() !== 'ready') throw new Error(`the engine is ${engine.health()}`);
      };
      handBackRunningJobs = worker.handBackRunningJobs;
      logger.info({ queue: worker.queueName, model: engine.modelName }, 'worker taking jobs');
    }

    // Every role repairs what a crash or a Redis without persistence left behind, on start and then every minute.
    const reconciler = createReconciler({ prisma: database.prisma, ledger, history, redisUrl, prefix: config.queuePrefix, logger });
    reconciler.start(RECONCILE_INTERVAL_MS);
    closers.push(reconciler.close);

    let webUrl: string | undefined;
    if (role !== 'worker') {
      const intake = createGenerationIntake(database.prisma, ledgerOptions);
      const queue = createGenerationQueue({ redisUrl, prefix: config.queuePrefix, ledger, history, intake, caps: config.jobCaps });
      closers.push(queue.close);
      const limits = new Redis(redisOptions(redisUrl, 'producer'));
      limits.on('error', () => {});
      closers.push(async () => limits.disconnect());
      const rateLimiter = (scope: string, commandsPerMinute: number) =>
        createRedisRateLimiter({ redis: limits, keyPrefix: `${config.queuePrefix}:rate-${scope}`, commandsPerMinute });
      const service = countRefusals(metrics, withSafety(createImagineService({
        prisma: database.prisma,
        ledger,
        history,
        queue,
        images,
        redisUrl,
        queuePrefix: config.queuePrefix,
        models: [description.name],
      }), {
        blocklist: config.promptBlocklist,
        perUser: rateLimiter('user', config.rateLimits.userPerMinute),
        perWorkspace: rateLimiter('workspace', config.rateLimits.workspacePerMinute),
      }));
      closers.push(service.close);
      const chatConfig = chatConfigFor(description, config.chatAdmins);
      const adapterHooks = (platform: 'discord' | 'slack' | 'web') => ({
        onError: (error: unknown, context: string) => {
          const status = chatApiStatus(error);
          if (status !== undefined) metrics.chatApiErrors.inc({ platform, status: String(status) });
          if (status === 429) metrics.chatApiRateLimited.inc({ platform });
          logger.error({ err: error, context, platform }, 'chat adapter error');
        },
        onEditOutcome: (outcome: 'sent' | 'throttled') => metrics.previewEdits.inc({ platform, outcome }),
      });

      const web = await startWebChat({
        service,
        config: chatConfig,
        port: config.webPort,
        host: config.host,
        session: { secret: await webSessionSecret(config), adminToken: config.web.adminToken },
        transcriptStore: createWebTranscriptStore(database.prisma),
        onError: adapterHooks('web').onError,
      }).catch(portInUse('WEB_PORT', config.webPort));
      closers.push(web.close);
      webUrl = web.url;
      const deliveries = createRedisDeliveryLog(limits, `${config.queuePrefix}:deliveries`);
      if (config.discord) {
        const { token, publicKey } = config.discord;
        const interactions = publicKey ? { publicKeyHex: publicKey, port: config.discordInteractionsPort, host: config.host, deliveries } : undefined;
        const discord = await startDiscordBot({ token, service, config: chatConfig, interactions, ...adapterHooks('discord') });
        closers.push(discord.stop);
      }
      if (config.slack) {
        const connection = config.slack.appToken
          ? ({ mode: 'socket', appToken: config.slack.appToken } as const)
          : ({ mode: 'http', signingSecret: config.slack.signingSecret!, port: config.slackPort, host: config.host } as const);
        const slack = await startSlackBot({ botToken: config.slack.botToken, connection, service, config: chatConfig, deliveries, ...adapterHooks('slack') });
        closers.push(slack.stop);
      }
    }

    const health = await startHealthServer({
      port: config.httpPort,
      host: config.host,
      readiness,
      metrics,
      dashboard: config.admin ? { admin: config.admin, queues: [modelQueue] } : undefined,
      logger,
    }).catch(portInUse('HTTP_PORT', config.httpPort));
    closers.push(health.close);

    logger.info({ webUrl, healthUrl: health.url }, 'ready');
    if (webUrl) process.stdout.write(`\nimagine-bot is running: open ${webUrl} and type /imagine a red apple\n\n`);
    return { stop, handBackRunningJobs: () => handBackRunningJobs() };
  } catch (error) {
    await stop();
    throw error;
  }
}

function openImageStore(store: Config['imageStore']): ImageStore | LocalImageStore {
  if (store.kind === 'local') return createLocalImageStore(store.dir);
  const { endpoint, bucket, region, accessKeyId, secretAccessKey } = store;
  return createS3ImageStore({ endpoint, bucket, region, accessKeyId, secretAccessKey });
}

/**
 * The key that signs web chat sessions. Without WEB_SESSION_SECRET one is made once and kept in DATA_DIR, so that a
 * restart keeps everyone's identity (and with it their quota and history); several bot processes need the variable.
 */
async function webSessionSecret(config: Config): Promise<Buffer> {
  if (config.web.sessionSecret) return Buffer.from(config.web.sessionSecret);
  const path = join(config.dataDir, 'web-session-secret');
  const kept = await readFile(path, 'utf8').catch(() => '');
  if (/^[0-9a-f]{64}$/.test(kept.trim())) return Buffer.from(kept.trim(), 'hex');
  const secret = randomBytes(32);
  await mkdir(config.dataDir, { recursive: true });
  await writeFile(path, secret.toString('hex'), { mode: 0o600 });
  return secret;
}

/** A port another program holds: one line that names the variable to change, instead of Node's EADDRINUSE. */
function portInUse(variable: 'WEB_PORT' | 'HTTP_PORT', port: number) {
  return (error: unknown): never => {
    if ((error as NodeJS.ErrnoException | undefined)?.code !== 'EADDRINUSE') throw error;
    const alias = variable === 'WEB_PORT' ? ' (or PORT)' : '';
    throw new ImagineError('invalid_input', `Port ${port} is already in use: set ${variable}${alias} to a free port, or to 0 to pick one.`, { variable });
  };
}

/** Counts what the chat side refused before queueing (quota, bans, caps, rate limits) by reason, for /metrics. */
function countRefusals<S extends ImagineService>(metrics: Metrics, service: S): S {
  const submit = service.submit.bind(service);
  return Object.assign(Object.create(service) as S, {
    async submit(request: GenerationRequest) {
      try {
        return await submit(request);
      } catch (error) {
        if (isImagineError(error) && ['quota_exceeded', 'forbidden', 'busy'].includes(error.kind)) {
          metrics.quotaRefusals.inc({ platform: request.requester.platform, reason: error.kind });
        }
        throw error;
      }
    },
  });
}

/** The HTTP status of a failed chat API call, as discord.js and the Slack Web API client report it (0: no answer). */
function chatApiStatus(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const candidate = error as { status?: unknown; code?: unknown; statusCode?: unknown; data?: { statusCode?: unknown } };
  for (const value of [candidate.status, candidate.statusCode, candidate.data?.statusCode]) {
    if (typeof value === 'number') return value;
  }
  if (candidate.code === 'slack_webapi_rate_limited_error') return 429;
  if (candidate.code === 'slack_webapi_request_error' || candidate.code === 'ECONNREFUSED') return 0;
  return undefined;
}

/** The chat side's view of a model folder: the limits its requests are validated against. */
export function chatConfigFor(model: ModelDescription, admins: ChatConfig['admins']): ChatConfig {
  const limits: ModelLimits = {
    name: model.name,
    baseWidth: model.defaultSize[0],
    baseHeight: model.defaultSize[1],
    sizeMultiple: model.sizeMultiple,
    maxSide: model.maxSidePx,
    ...(model.aspectBuckets && { aspectBuckets: model.aspectBuckets.map(([width, height]): [number, number] => [width, height]) }),
    ...(model.sizes && { sizes: model.sizes.map(([width, height]): [number, number] => [width, height]) }),
    vaeScaleFactor: model.vaeScaleFactor,
    defaultSteps: model.defaultSteps,
    maxSteps: model.maxSteps,
    defaultGuidance: model.defaultGuidance,
    defaultSampler: model.defaultSampler,
    ...(model.lcmUnet && { draft: { ...model.lcmUnet } }),
    ...(model.vocabulary && { knows: { count: model.vocabulary.concepts.length, sample: vocabularySample(model.vocabulary) } }),
  };
  return {
    models: [limits],
    defaultModel: model.name,
    maxBatch: 4,
    defaultBatch: 4,
    admins,
  };
}

function roleFrom(argument: string | undefined): Role {
  const role = argument ?? process.env.ROLE ?? 'all';
  if (!(ROLES as readonly string[]).includes(role)) {
    throw new Error(`Unknown role '${role}': use one of ${ROLES.join(', ')} (as the first argument or ROLE).`);
  }
  return role as Role;
}

/**
 * A Ctrl-C in a terminal reaches every process of the foreground group, and `npm start` passes its own copy on: one key
 * press is several SIGINTs within milliseconds. Signals this close to the first are echoes of it, not a second request.
 */
export const SIGNAL_ECHO_WINDOW_MS = 250;

/**
 * Runs a role until SIGTERM / SIGINT. The first stops it gracefully (the running job finishes within
 * WORKER_SHUTDOWN_DEADLINE_MS, else goes back to the queue); a second, after the echo window, hands the running job back
 * now; a third exits at once and says what that leaves behind. A start-up failure is one clear line and exit 1.
 */
export function runMain(argument: string | undefined, env: NodeJS.ProcessEnv = process.env): void {
  const starting = startService(roleFrom(argument), env);
  let service: RunningService | undefined;
  let firstSignalAtMs: number | undefined;
  let requests = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    const nowMs = Date.now();
    if (firstSignalAtMs !== undefined && nowMs - firstSignalAtMs < SIGNAL_ECHO_WINDOW_MS) return;
    firstSignalAtMs ??= nowMs;
    requests += 1;
    if (requests === 1) {
      const deadlineS = Math.round(Number(env.WORKER_SHUTDOWN_DEADLINE_MS ?? 30_000) / 1_000);
      process.stderr.write(
        `${signal}: stopping — a running job may finish (up to ${deadlineS} s), else it goes back to the queue. ` +
          'Press Ctrl-C again to hand it back now.\n',
      );
      // A signal during start-up stops what has started once it is up, rather than leaving it half open.
      starting.then((started) => started.stop()).then(
        () => {
          process.stderr.write('imagine-bot stopped.\n');
          process.exit(0);
        },
        () => process.exit(1),
      );
    } else if (requests === 2) {
      process.stderr.write(`${signal} again: handing the running job back to the queue now. Press Ctrl-C once more to force the exit.\n`);
      service?.handBackRunningJobs();
    } else {
      process.stderr.write(
        `${signal} a third time: forcing the exit. A job still running is taken up again once the queue notices its lost lock (about a minute).\n`,
      );
      process.exit(130);
    }
  };
  // Listening with `on`, not `once`, and from the start: any later signal meeting Node's default handler would exit
  // at once and leave the running job marked running.
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  starting.then(
    (started) => {
      service = started;
    },
    (error: unknown) => {
      process.stderr.write(`${isImagineError(error) ? error.userMessage : error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    },
  );
}

if (import.meta.url === `file://${process.argv[1]}`) runMain(process.argv[2]);
