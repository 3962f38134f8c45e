import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
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
import { QueueEventBody } from '../queue/events.js';
import { imagineKeys, queueNameForModel } from '../queue/job.js';
import { redisOptions } from '../service/redis.js';
import { redisAnswers } from '../service/redis-server.js';
import { startWorker } from '../service/worker.js';
import { openDatabase, parseDatabaseUrl } from '../store/database.js';
import { createGenerationHistory } from '../store/generations.js';
import { createLocalImageStore } from '../store/images-local.js';
import { PrismaQuotaLedger } from '../store/quota-ledger.js';
import { appendBenchmarkRow, machineDescription } from './report.js';

/**
 * `npm run soak:faults -- [--jobs N] [--workers N] [--deadline-s S] [--database URL] [--json]`
 * Submits N jobs through the real producer, quota ledger (PostgreSQL, a schema of its own) and local image store to
 * worker child processes that are SIGKILLed at random moments and started again, while a private append-only Redis is
 * SIGKILLed and restarted once mid-run. Then counts what every user would have seen: completed, failed with a message,
 * lost (neither), charged twice (more than one commit, or a commit and a refund) and posted twice (more than one
 * terminal event in the events stream). The targets are lost = doubleCharged = doublePosted = 0. recoveredAfterKill
 * counts the jobs BullMQ took back from a killed worker, showing the kills landed mid-job.
 * The same file is the worker child (`--worker`), configured by the SOAK_WORKER JSON.
 */
const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '100' },
    workers: { type: 'string', default: '3' },
    'deadline-s': { type: 'string', default: '240' },
    database: { type: 'string', default: process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/test' },
    json: { type: 'boolean', default: false },
    worker: { type: 'boolean', default: false },
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

interface WorkerConfig {
  redisUrl: string;
  prefix: string;
  databaseUrl: string;
  imageDir: string;
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

async function runWorkerChild(config: WorkerConfig): Promise<void> {
  const database = await openDatabase({ url: config.databaseUrl, poolSize: 4 });
  const worker = await startWorker({
    redisUrl: config.redisUrl,
    prefix: config.prefix,
    engine: await createSoakEngine(),
    ledger: new PrismaQuotaLedger(database.prisma, { defaultPolicy: defaultQuotaPolicy({ unitsPerPeriod: null, period: 'day' }) }),
    history: createGenerationHistory(database.prisma),
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

function spawnWorkerChild(config: WorkerConfig): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--worker'], {
    env: { ...process.env, SOAK_WORKER: JSON.stringify(config) },
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`soak worker exited with ${code} before it was ready`)));
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

/** redis-server on its own loopback port, fsyncing every write to an append-only file so a SIGKILL loses no job. */
async function startSoakRedis(dir: string) {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let server: ChildProcess | undefined;
  const start = async () => {
    server = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always'],
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
  const redis = await startSoakRedis(scratchDir);
  const database = await openDatabase({ url: databaseUrl, poolSize: 4 });
  const ledger = new PrismaQuotaLedger(database.prisma, { defaultPolicy: defaultQuotaPolicy({ unitsPerPeriod: null, period: 'day' }) });
  const history = createGenerationHistory(database.prisma);
  const queue = createGenerationQueue({
    redisUrl: redis.url,
    prefix,
    ledger,
    history,
    caps: { perUser: jobCount + 1, perWorkspace: jobCount + 1 },
    retryDelayMs: 500,
  });
  const watcher = new Redis(redisOptions(redis.url, 'worker'));
  watcher.on('error', () => {});
  const workerConfig: WorkerConfig = { redisUrl: redis.url, prefix, databaseUrl, imageDir };

  const startChild = async () => {
    const child = await spawnWorkerChild(workerConfig);
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
    for (let index = 0; index < jobCount; index += 1) {
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
    const terminalKeys = submitted.map((generationId) => imagineKeys(prefix).terminalEvent(generationId));
    const announced = () => watcher.exists(...terminalKeys).catch(() => 0);
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

    const figures = await countOutcomes({ redisUrl: redis.url, prefix, databaseUrl: values.database, schema, submitted });
    const row = {
      ...figures,
      workers: workerCount,
      workerKills,
      redisRestarts,
      seconds: Math.round((Date.now() - startedAtMs) / 1_000),
      machine: machineDescription(),
      date: new Date().toISOString().slice(0, 10),
    };
    await appendBenchmarkRow('soak-faults', row);
    process.stdout.write(values.json ? `${JSON.stringify(row)}\n` : `${JSON.stringify(row, null, 2)}\n`);
  } finally {
    stopping = true;
    await Promise.all([...children].map((child) => killAndWait(child, 'SIGKILL')));
    await queue.close();
    watcher.disconnect();
    await database.close();
    await redis.kill();
    await dropSchema(values.database, schema);
    await rm(scratchDir, { recursive: true, force: true });
  }
}

async function countOutcomes(options: { redisUrl: string; prefix: string; databaseUrl: string; schema: string; submitted: string[] }) {
  const keys = imagineKeys(options.prefix);
  const client = new Redis(options.redisUrl);
  const terminalEvents = new Map<string, QueueEventBody[]>();
  let recoveredAfterKill = 0;
  const jobStates = new Map<string, Record<string, string | null>>();
  try {
    const queueName = queueNameForModel(MODEL_NAME);
    const entries = await client.xrange(keys.events(queueName), '-', '+');
    for (const [, fields] of entries) {
      const parsed = QueueEventBody.safeParse(JSON.parse(fields[fields.indexOf('event') + 1] ?? 'null'));
      if (!parsed.success || parsed.data.type === 'progress') continue;
      terminalEvents.set(parsed.data.generationId, [...(terminalEvents.get(parsed.data.generationId) ?? []), parsed.data]);
    }
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
  let ledgerRows: { generationId: string; commits: number; refunds: number }[];
  let historyRows: { id: string; status: string; errorMessage: string | null }[];
  try {
    ledgerRows = (
      await sql.query(
        `SELECT "generationId", count(*) FILTER (WHERE kind = 'commit')::int AS commits, count(*) FILTER (WHERE kind = 'refund')::int AS refunds
         FROM "UsageLedger" WHERE "generationId" = ANY($1) GROUP BY "generationId"`,
        [options.submitted],
      )
    ).rows;
    historyRows = (await sql.query(`SELECT id, status::text, "errorMessage" FROM "Generation" WHERE id = ANY($1)`, [options.submitted])).rows;
  } finally {
    await sql.end();
  }

  const statusOf = new Map(historyRows.map((row) => [row.id, row]));
  let completed = 0;
  let failedWithMessage = 0;
  for (const generationId of options.submitted) {
    const events = terminalEvents.get(generationId) ?? [];
    const record = statusOf.get(generationId);
    if (record?.status === 'succeeded' && events.some((event) => event.type === 'completed')) completed += 1;
    else if (
      record?.status === 'failed' &&
      record.errorMessage &&
      events.some((event) => event.type === 'failed' && event.userMessage.length > 0)
    ) {
      failedWithMessage += 1;
    } else {
      // What a lost generation looked like in each store, for whoever has to find out why.
      const ledger = ledgerRows.find((row) => row.generationId === generationId);
      process.stderr.write(
        `lost ${JSON.stringify({ generationId, history: record ?? null, ledger: ledger ?? null, terminalEvents: events, job: jobStates.get(generationId) })}\n`,
      );
    }
  }
  return {
    submitted: options.submitted.length,
    completed,
    failedWithMessage,
    lost: options.submitted.length - completed - failedWithMessage,
    doubleCharged: ledgerRows.filter((row) => row.commits > 1 || (row.commits > 0 && row.refunds > 0)).length,
    doublePosted: [...terminalEvents.values()].filter((events) => events.length > 1).length,
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
else await runSoak();
