import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import sharp from 'sharp';
import { modelFailure } from '../core/errors.js';
import type { GenerationRequest } from '../core/generation.js';
import type { ImageEngine } from '../core/ports.js';
import { defaultQuotaPolicy } from '../core/quota.js';
import { createGenerationQueue } from '../queue/producer.js';
import { queueNameForModel } from '../queue/job.js';
import { createImagineService } from '../service/imagine-service.js';
import { createReconciler } from '../service/reconciler.js';
import { redisAnswers } from '../service/redis-server.js';
import { startWorker } from '../service/worker.js';
import { openDatabase, parseDatabaseUrl } from '../store/database.js';
import { createGenerationHistory } from '../store/generations.js';
import { createLocalImageStore } from '../store/images-local.js';
import { createGenerationIntake } from '../store/intake.js';
import { PrismaQuotaLedger } from '../store/quota-ledger.js';
import { appendBenchmarkRow, machineDescription } from './report.js';

/**
 * `npm run soak:faults -- [--jobs N] [--workers N] [--redis-aof yes|no] [--deadline-s S] [--database URL] [--json]`
 * Submits N jobs through the real producer, quota ledger (PostgreSQL, a schema of its own) and local image store to
 * worker child processes that are SIGKILLed at random moments and started again, while a private Redis (append-only,
 * or with no persistence at all) is SIGKILLed and restarted once mid-run, and the bot — a child process running the
 * chat side's ImagineService on the same stores — is SIGKILLed twice while results are arriving and started again a few
 * seconds later. The reconciler runs as in every role. Then counts what every user would have seen, from what the bot
 * handed its poster (a line appended to a file by the bot's listener, which a SIGKILL cannot half-write) and from the
 * ledger:
 * - completed / failedWithMessage: the outcome on record, posted exactly once; lost: anything else;
 * - neverPosted: generations whose outcome is on record but that the bot never posted (counted in lost too);
 * - postedTwice: generations whose outcome the bot was given more than once;
 * - orphanReservations: units reserved under a generation id that no Generation row has and that were never refunded;
 * - doubleCharged: generations charged more than their cost or charged with no image delivered (reserve − refunds, per
 *   ledger row), plus each unit by which a user's balance exceeds the cost of the images they received;
 * - uncharged: images delivered with no charge standing.
 * The targets are lost = doubleCharged = postedTwice = uncharged = 0. recoveredAfterKill counts the jobs BullMQ took
 * back from a killed worker (with AOF only: without it Redis forgets the count), showing the kills landed mid-job.
 * The same file is the worker child (`--worker`, configured by the SOAK_WORKER JSON) and the bot child (`--bot`,
 * configured by SOAK_BOT).
 */
const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '100' },
    workers: { type: 'string', default: '3' },
    'redis-aof': { type: 'string', default: 'yes' },
    'deadline-s': { type: 'string', default: '240' },
    database: { type: 'string', default: process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/test' },
    json: { type: 'boolean', default: false },
    worker: { type: 'boolean', default: false },
    bot: { type: 'boolean', default: false },
  },
});

const MODEL_NAME = 'soak-model';
const STEPS = 12;
const STEP_DELAY_MS = 80;
// Short locks so a killed worker's job is taken again within seconds instead of BullMQ's default 30 s.
const LOCK_DURATION_MS = 3_000;
const STALLED_INTERVAL_MS = 1_500;
// Every FAILING_EVERY-th job asks for a model failure, so the run also exercises the path that fails with a message.
const FAILING_EVERY = 20;
const FAILING_PROMPT = 'soak: model failure';
const ANNOUNCE_GRACE_MS = 15_000;
const UNITS_PER_JOB = 1;
// The reconciler's and the bot's database sweep's timings, shortened from a minute to fit a soak run.
const RECONCILE_GRACE_MS = 5_000;
const RECONCILE_INTERVAL_MS = 3_000;
const BOT_DOWN_MS = 3_000;
// A claim to post that a killed bot left behind lapses after this, and the restarted bot posts the outcome.
const ANNOUNCE_LEASE_MS = 5_000;

interface WorkerConfig {
  redisUrl: string;
  prefix: string;
  databaseUrl: string;
  imageDir: string;
}

interface BotConfig extends WorkerConfig {
  /** Where the bot's poster appends one `generationId outcome` line per outcome it is handed. */
  postedFile: string;
}

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

/** The stores every soak process opens: the shared PostgreSQL database, with no quota limit. */
async function openSoakStores(databaseUrl: string) {
  const database = await openDatabase({ url: databaseUrl, poolSize: 4 });
  const ledgerOptions = { defaultPolicy: defaultQuotaPolicy({ unitsPerPeriod: null, period: 'day' }) };
  const ledger = new PrismaQuotaLedger(database.prisma, ledgerOptions);
  return { database, ledgerOptions, ledger, history: createGenerationHistory(database.prisma) };
}

async function runWorkerChild(config: WorkerConfig): Promise<void> {
  const { database, ledger, history } = await openSoakStores(config.databaseUrl);
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
  // A soak run that crashes must not leave workers behind: the parent's end closes this pipe.
  process.stdin.once('close', () => process.exit(1));
  process.stdin.resume();
  process.stdout.write('ready\n');
}

/** The bot as the `bot` role runs it, on the same stores, its poster appending to a file the parent audits. */
async function runBotChild(config: BotConfig): Promise<void> {
  const { database, ledgerOptions, ledger, history } = await openSoakStores(config.databaseUrl);
  const service = createImagineService({
    prisma: database.prisma,
    ledger,
    history,
    queue: createGenerationQueue({ redisUrl: config.redisUrl, prefix: config.prefix, ledger, history, intake: createGenerationIntake(database.prisma, ledgerOptions) }),
    images: createLocalImageStore(config.imageDir),
    redisUrl: config.redisUrl,
    queuePrefix: config.prefix,
    models: [MODEL_NAME],
    announceSweep: { intervalMs: RECONCILE_INTERVAL_MS, graceMs: RECONCILE_GRACE_MS, leaseMs: ANNOUNCE_LEASE_MS },
  });
  // One short line per append: what the user saw is exactly what reached this file. Posting is confirmed once the
  // append resolves, as an adapter's once the platform answered.
  service.subscribe('cli', async (event) => {
    if (event.type !== 'progress') await appendFile(config.postedFile, `${event.generationId} ${event.type}\n`);
  });
  process.stdin.once('close', () => process.exit(1));
  process.stdin.resume();
  process.stdout.write('ready\n');
}

function spawnChild(role: 'worker' | 'bot', config: WorkerConfig | BotConfig): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), `--${role}`], {
    env: { ...process.env, [role === 'worker' ? 'SOAK_WORKER' : 'SOAK_BOT']: JSON.stringify(config) },
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`soak ${role} exited with ${code} before it was ready`)));
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) {
        child.removeAllListeners('exit');
        resolve(child);
      }
    });
  });
}

async function killAndWait(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * redis-server on its own loopback port: fsyncing every write to an append-only file so a SIGKILL loses no job, or
 * keeping nothing (as the Redis `npm start` may find), so a SIGKILL loses every job and event.
 */
async function startSoakRedis(dir: string, appendOnly: boolean) {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let server: ChildProcess | undefined;
  const start = async () => {
    server = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', ...(appendOnly ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'])],
      { stdio: 'ignore' },
    );
    for (let attempt = 0; attempt < 100 && !(await redisAnswers(url, 200)); attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (!(await redisAnswers(url))) throw new Error(`redis-server on port ${port} does not answer`);
  };
  await start();
  return {
    url,
    start,
    kill: async () => {
      if (server) await killAndWait(server, 'SIGKILL');
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function runSoak(): Promise<void> {
  const jobCount = Number(values.jobs);
  const workerCount = Number(values.workers);
  const deadlineMs = Number(values['deadline-s']) * 1_000;
  if (values['redis-aof'] !== 'yes' && values['redis-aof'] !== 'no') throw new Error(`--redis-aof takes yes or no, got ${values['redis-aof']}`);
  const appendOnly = values['redis-aof'] === 'yes';
  const startedAtMs = Date.now();
  const schema = `soak_${randomBytes(6).toString('hex')}`;
  const schemaUrl = new URL(values.database);
  schemaUrl.searchParams.set('schema', schema);
  const databaseUrl = schemaUrl.toString();
  const prefix = `soak-${randomUUID().slice(0, 8)}`;
  const scratchDir = await mkdtemp(join(tmpdir(), 'imagine-soak-'));
  const imageDir = join(scratchDir, 'images');

  const children = new Set<ChildProcess>();
  let stopping = false;
  let workerKills = 0;
  let redisRestarts = 0;
  let botKills = 0;
  const redis = await startSoakRedis(scratchDir, appendOnly);
  const { database, ledgerOptions, ledger, history } = await openSoakStores(databaseUrl);
  const queue = createGenerationQueue({
    redisUrl: redis.url,
    prefix,
    ledger,
    history,
    intake: createGenerationIntake(database.prisma, ledgerOptions),
    caps: { perUser: jobCount + 1, perWorkspace: jobCount + 1 },
    retryDelayMs: 500,
  });
  const reconciler = createReconciler({ prisma: database.prisma, ledger, history, redisUrl: redis.url, prefix, graceMs: RECONCILE_GRACE_MS });
  reconciler.start(RECONCILE_INTERVAL_MS);

  const workerConfig: WorkerConfig = { redisUrl: redis.url, prefix, databaseUrl, imageDir };
  const postedFile = join(scratchDir, 'posted.log');
  let bot = await spawnChild('bot', { ...workerConfig, postedFile });

  const startChild = async () => {
    const child = await spawnChild('worker', workerConfig);
    children.add(child);
    child.once('exit', () => children.delete(child));
  };

  try {
    await Promise.all(Array.from({ length: workerCount }, startChild));

    // One worker at a time is killed at a random moment, then replaced after a short pause.
    const killLoop = (async () => {
      while (!stopping) {
        await sleep(1_500 + Math.random() * 3_000);
        const victim = [...children][Math.floor(Math.random() * children.size)];
        if (stopping || !victim) continue;
        await killAndWait(victim, 'SIGKILL');
        workerKills += 1;
        await sleep(300 + Math.random() * 1_000);
        if (!stopping) await startChild().catch(() => {});
      }
    })();

    const submitted: string[] = [];
    const submitEveryMs = 150;
    let redisKilled = false;
    // The bot is killed a quarter and three quarters of the way through, Redis halfway.
    const botKillsAt = [jobCount / 4, (jobCount * 3) / 4];
    for (let index = 0; index < jobCount; index += 1) {
      if (botKills < botKillsAt.length && index >= botKillsAt[botKills]!) {
        // Killed while results are arriving: those finishing while it is away must be posted when it is back, once.
        await killAndWait(bot, 'SIGKILL');
        botKills += 1;
        await sleep(BOT_DOWN_MS);
        bot = await spawnChild('bot', { ...workerConfig, postedFile });
      }
      if (!redisKilled && index >= jobCount / 2) {
        redisKilled = true;
        await redis.kill();
        await sleep(1_000);
        await redis.start();
        redisRestarts += 1;
      }
      const request: GenerationRequest = {
        generationId: `soak-${index}-${randomUUID().slice(0, 8)}`,
        kind: 'imagine',
        mode: 'fast',
        params: {
          prompt: index % FAILING_EVERY === FAILING_EVERY - 1 ? FAILING_PROMPT : `soak ${index}`,
          negativePrompt: '',
          width: 16,
          height: 16,
          steps: STEPS,
          guidance: 7,
          sampler: 'euler',
          seed: index,
          batch: 1,
          model: MODEL_NAME,
        },
        requester: { platform: 'cli', workspaceId: 'soak', userId: `soak-user-${index % 5}`, isAdmin: false },
        replyTarget: 'soak',
      };
      // The producer fails fast while Redis is down (and refunds): that request was never submitted, so it is tried
      // again under a new id, as a user would.
      for (;;) {
        if (Date.now() - startedAtMs > deadlineMs) throw new Error(`the queue did not take job ${index} before the deadline`);
        try {
          await queue.enqueue(request, { units: 1 });
          submitted.push(request.generationId);
          break;
        } catch {
          await sleep(250);
          request.generationId = `soak-${index}-${randomUUID().slice(0, 8)}`;
        }
      }
      await sleep(submitEveryMs);
    }

    const endedInHistory = async () =>
      database.prisma.generation.count({ where: { id: { in: submitted }, status: { in: ['succeeded', 'failed', 'cancelled'] } } });
    const announced = async () => {
      const posted = await readPosted(postedFile);
      return submitted.filter((generationId) => posted.has(generationId)).length;
    };
    // Done when every generation was announced. A generation whose history ended but that was never announced is
    // what this run looks for, so once history is complete the announcements get a grace period, not the whole deadline.
    let historyCompleteAtMs: number | undefined;
    while (Date.now() - startedAtMs < deadlineMs && (await announced()) < submitted.length) {
      if (historyCompleteAtMs === undefined && (await endedInHistory()) === submitted.length) historyCompleteAtMs = Date.now();
      if (historyCompleteAtMs !== undefined && Date.now() - historyCompleteAtMs > ANNOUNCE_GRACE_MS) break;
      await sleep(1_000);
    }
    stopping = true;
    await killLoop;

    const figures = await countOutcomes({ redisUrl: redis.url, prefix, databaseUrl: values.database, schema, submitted, posted: await readPosted(postedFile) });
    const row = {
      redisAof: appendOnly ? 'yes' : 'no',
      ...figures,
      workers: workerCount,
      workerKills,
      redisRestarts,
      botKills,
      seconds: Math.round((Date.now() - startedAtMs) / 1_000),
      machine: machineDescription(),
      date: new Date().toISOString().slice(0, 10),
    };
    await appendBenchmarkRow('soak-faults', row);
    process.stdout.write(values.json ? `${JSON.stringify(row)}\n` : `${JSON.stringify(row, null, 2)}\n`);
  } finally {
    stopping = true;
    await Promise.all([...children, bot].map((child) => killAndWait(child, 'SIGKILL')));
    await reconciler.close();
    await queue.close();
    await database.close();
    await redis.kill();
    await dropSchema(values.database, schema);
    await rm(scratchDir, { recursive: true, force: true });
  }
}

async function readPosted(file: string): Promise<Map<string, string[]>> {
  const posted = new Map<string, string[]>();
  const text = await readFile(file, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [generationId, outcome] = line.split(' ');
    if (generationId && outcome) posted.set(generationId, [...(posted.get(generationId) ?? []), outcome]);
  }
  return posted;
}

async function countOutcomes(options: {
  redisUrl: string;
  prefix: string;
  databaseUrl: string;
  schema: string;
  submitted: string[];
  posted: ReadonlyMap<string, string[]>;
}) {
  const client = new Redis(options.redisUrl);
  let recoveredAfterKill = 0;
  const jobStates = new Map<string, Record<string, string | null>>();
  try {
    const queueName = queueNameForModel(MODEL_NAME);
    // BullMQ counts in the job hash ("stc") how often it took a job back from a worker that stopped renewing its lock.
    for (const generationId of options.submitted) {
      const [stalledCount, attemptsMade, finishedOn, failedReason] = await client.hmget(
        `${options.prefix}:${queueName}:${generationId}`,
        'stc',
        'atm',
        'finishedOn',
        'failedReason',
      );
      if (Number(stalledCount ?? 0) > 0) recoveredAfterKill += 1;
      jobStates.set(generationId, { stalledCount, attemptsMade, finishedOn, failedReason });
    }
  } finally {
    client.disconnect();
  }

  const sql = new pg.Client({ connectionString: parseDatabaseUrl(options.databaseUrl).connectionString, options: `-c search_path="${options.schema}"` });
  await sql.connect();
  let ledgerRows: { generationId: string; reserved: number; refunded: number; commits: number; refunds: number }[];
  let historyRows: { id: string; status: string; errorMessage: string | null }[];
  let balances: { userId: string; usedUnits: number }[];
  let deliveredByUser: { userId: string; units: number }[];
  let orphanReservations: number;
  try {
    // Summed, not looked up by kind: if a retry ever wrote a second reservation or a refund landed twice, this shows it.
    ledgerRows = (
      await sql.query(
        `SELECT "generationId",
                coalesce(sum(units) FILTER (WHERE kind = 'reserve'), 0)::int AS reserved,
                coalesce(sum(units) FILTER (WHERE kind = 'refund'), 0)::int AS refunded,
                count(*) FILTER (WHERE kind = 'commit')::int AS commits,
                count(*) FILTER (WHERE kind = 'refund')::int AS refunds
         FROM "UsageLedger" WHERE "generationId" = ANY($1) GROUP BY "generationId"`,
        [options.submitted],
      )
    ).rows;
    historyRows = (await sql.query(`SELECT id, status::text, "errorMessage" FROM "Generation" WHERE id = ANY($1)`, [options.submitted])).rows;
    balances = (await sql.query(`SELECT "userId", sum("usedUnits")::int AS "usedUnits" FROM "QuotaBalance" GROUP BY "userId"`)).rows;
    deliveredByUser = (
      await sql.query(
        `SELECT "userId", (count(*) * ${UNITS_PER_JOB})::int AS units FROM "Generation" WHERE id = ANY($1) AND status = 'succeeded' GROUP BY "userId"`,
        [options.submitted],
      )
    ).rows;
    // Over the whole schema, the requests the producer refused and that were tried again under a new id included.
    orphanReservations = (
      await sql.query(
        `SELECT count(*)::int AS orphans FROM (
           SELECT l."generationId" FROM "UsageLedger" l
           WHERE NOT EXISTS (SELECT 1 FROM "Generation" g WHERE g.id = l."generationId")
           GROUP BY l."generationId"
           HAVING coalesce(sum(l.units) FILTER (WHERE l.kind = 'reserve'), 0) > coalesce(sum(l.units) FILTER (WHERE l.kind = 'refund'), 0)
         ) AS unrecorded`,
      )
    ).rows[0].orphans;
  } finally {
    await sql.end();
  }

  const statusOf = new Map(historyRows.map((row) => [row.id, row]));
  const ledgerOf = new Map(ledgerRows.map((row) => [row.generationId, row]));
  let completed = 0;
  let failedWithMessage = 0;
  let postedTwice = 0;
  let doubleCharged = 0;
  let uncharged = 0;
  let neverPosted = 0;
  for (const generationId of options.submitted) {
    const outcomes = options.posted.get(generationId) ?? [];
    if (outcomes.length > 1) postedTwice += 1;
    const record = statusOf.get(generationId);
    const ledger = ledgerOf.get(generationId);
    const delivered = record?.status === 'succeeded';
    const charged = (ledger?.reserved ?? 0) - (ledger?.refunded ?? 0);
    const settledTwice = (ledger?.commits ?? 0) > 1 || ((ledger?.commits ?? 0) > 0 && (ledger?.refunds ?? 0) > 0);
    if (charged > (delivered ? UNITS_PER_JOB : 0) || settledTwice) doubleCharged += 1;
    if (delivered && charged < UNITS_PER_JOB) uncharged += 1;
    const finished = record?.status === 'succeeded' || record?.status === 'failed' || record?.status === 'cancelled';
    if (finished && outcomes.length === 0) neverPosted += 1;
    if (delivered && outcomes.length === 1 && outcomes[0] === 'succeeded') completed += 1;
    else if (record?.status === 'failed' && record.errorMessage && outcomes.length === 1 && outcomes[0] === 'failed') failedWithMessage += 1;
    else {
      // What a lost generation looked like in each store, for whoever has to find out why.
      process.stderr.write(`lost ${JSON.stringify({ generationId, history: record ?? null, ledger: ledger ?? null, posted: outcomes, job: jobStates.get(generationId) })}\n`);
    }
  }
  // Per user: the balance the ledger keeps against the images the user received.
  const deliveredUnits = new Map(deliveredByUser.map((row) => [row.userId, row.units]));
  const overchargedUnits = balances.reduce((sum, row) => sum + Math.max(0, row.usedUnits - (deliveredUnits.get(row.userId) ?? 0)), 0);
  return {
    submitted: options.submitted.length,
    completed,
    failedWithMessage,
    lost: options.submitted.length - completed - failedWithMessage,
    neverPosted,
    orphanReservations,
    doubleCharged: doubleCharged + overchargedUnits,
    postedTwice,
    uncharged,
    recoveredAfterKill,
  };
}

async function dropSchema(databaseUrl: string, schema: string): Promise<void> {
  const sql = new pg.Client({ connectionString: parseDatabaseUrl(databaseUrl).connectionString });
  await sql.connect();
  try {
    await sql.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await sql.end();
  }
}

if (values.worker) await runWorkerChild(JSON.parse(process.env.SOAK_WORKER ?? '{}') as WorkerConfig);
else if (values.bot) await runBotChild(JSON.parse(process.env.SOAK_BOT ?? '{}') as BotConfig);
else await runSoak();
