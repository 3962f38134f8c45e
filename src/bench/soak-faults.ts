import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { GenerationRequest } from '../core/generation.js';
import { queueNameForModel } from '../queue/job.js';
import { createReconciler } from '../service/reconciler.js';
import { redisAnswers } from '../service/redis-server.js';
import { dropSchema, parseDatabaseUrl, withSchema } from '../store/database.js';
import { appendBenchmarkRow, machineDescription } from './report.js';
import { openUnlimitedStores } from './stores.js';
import {
  FAILING_PROMPT,
  MODEL_NAME,
  RECONCILE_GRACE_MS,
  RECONCILE_INTERVAL_MS,
  runBotChild,
  runWorkerChild,
  STEPS,
  SubmitAnswer,
  type BotConfig,
  type WorkerConfig,
} from './soak-faults-roles.js';

/**
 * `npm run soak:faults -- [--jobs N] [--workers N] [--redis-aof yes|no] [--deadline-s S] [--database URL] [--json]`
 * 10 users send N requests to the bot — a child process running the chat side's ImagineService on the real quota ledger
 * (PostgreSQL, a schema of its own), queue and local image store — which submits each one as a chat command does and
 * answers over its IPC channel. Worker child processes are SIGKILLed at random moments and started again; a private
 * Redis (append-only, or with no persistence at all) is SIGKILLed and restarted once, halfway through the requests; and
 * the bot is SIGKILLed a quarter and three quarters of the way through, a moment after a request was sent, and started
 * again a few seconds later. The reconciler runs as in every role. A user whose request got no answer (its bot was
 * killed) does what a chat user can: once a bot is back, they see their request accepted if PostgreSQL recorded it (its
 * result will be posted), and send it again under a new id if not; a request refused with a message (Redis down) is
 * sent again too. Then counts what every user would have seen, from what the bot handed its poster (a line appended to
 * a file by the bot's listener, which a SIGKILL cannot half-write) and from the ledger:
 * - submitted: requests accepted (answered or found recorded); acceptedUnanswered: of those, recorded but never answered;
 *   refusedByCrash: unanswered and not recorded, sent again; refusedWithMessage: refused with an answer, sent again;
 * - completed / failedWithMessage: the outcome on record, posted exactly once; lost: any other accepted request;
 * - neverPosted: generations whose outcome is on record but that the bot never posted (counted in lost too);
 * - postedLate: outcomes first posted more than POSTED_LATE_MS of bot running time after they were recorded
 *   (Generation.finishedAt), with postDelayP50S and postDelayMaxS over every posted outcome; the time no bot was up
 *   (BOT_DOWN_MS and its start-up, the soak's own doing) does not count;
 * - postedTwice: generations whose outcome the bot was given more than once;
 * - orphanReservations: units reserved under a generation id that no Generation row has and that were never refunded;
 * - doubleCharged: generations charged more than their cost or charged with no image delivered (reserve − refunds, per
 *   ledger row), plus each unit by which a user's balance exceeds the cost of the images they received;
 * - uncharged: images delivered with no charge standing.
 * The targets are lost = postedLate = orphanReservations = doubleCharged = postedTwice = uncharged = 0; acceptedUnanswered
 * + refusedByCrash > 0 shows a bot kill landed mid-submit. recoveredAfterKill counts the jobs BullMQ took back from a
 * killed worker (with AOF only: without it Redis forgets the count), showing the worker kills landed mid-job.
 * The same file is the worker child (`--worker`, configured by the SOAK_WORKER JSON) and the bot child (`--bot`,
 * configured by SOAK_BOT); both live in soak-faults-roles.ts.
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

const USERS = 10;
// A user reads the bot's answer before asking again: about 6 requests a second from 10 users.
const THINK_MIN_MS = 1_000;
const THINK_SPREAD_MS = 1_000;
// Every FAILING_EVERY-th request asks for a model failure, so the run also exercises the path that fails with a message.
const FAILING_EVERY = 20;
const ANNOUNCE_GRACE_MS = 15_000;
const UNITS_PER_JOB = 1;
const BOT_DOWN_MS = 3_000;
// A bot kill lands up to this long after the request that triggers it was sent, while that request (a submit takes
// 20 ms to a second here) and often others are in flight: whether each dies before its transaction commits, after it
// or once answered is left to chance.
const KILL_JITTER_MS = 80;
// The reason src/queue/producer.ts refunds a request it recorded but could not queue (it answers with a refusal).
const REFUSED_AT_SUBMIT_REASON = 'not queued';
/**
 * The longest a running bot may leave an outcome unposted: an outcome whose event never came (Redis lost it, or a
 * worker died between recording and publishing) is taken by the database sweep once older than its grace, and the sweep
 * runs every interval (5 s + 3 s); a claim left by a killed bot lapses ANNOUNCE_LEASE_MS (5 s) after it was made,
 * just before the kill, and the bot restarted BOT_DOWN_MS (3 s) later has it from its sweep within 5 s + 3 s − 3 s of
 * running. The 2 s on top are for this shared 2-core machine (a sweep's query, the append).
 */
const POSTED_LATE_MS = RECONCILE_GRACE_MS + RECONCILE_INTERVAL_MS + 2_000;

function spawnChild(role: 'worker' | 'bot', config: WorkerConfig | BotConfig): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), `--${role}`], {
    env: { ...process.env, [role === 'worker' ? 'SOAK_WORKER' : 'SOAK_BOT']: JSON.stringify(config) },
    stdio: ['pipe', 'pipe', 'ignore', ...(role === 'bot' ? ['ipc' as const] : [])],
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

/** What a user saw after sending a request: the bot's answer, or none because the bot was killed first. */
type SubmitOutcome = { answer: 'accepted' } | { answer: 'refused'; userMessage: string } | { answer: 'none' };

/** When a bot was running: from the moment it had subscribed until it was killed. */
interface BotUpTime {
  fromMs: number;
  untilMs?: number;
}

/**
 * The bot as the users reach it: one child at a time, restarted after each SIGKILL. A request in flight when its bot
 * is killed gets no answer, as a chat command whose bot died; a request sent while no bot runs waits for the next one.
 */
function startSoakBot(config: BotConfig) {
  interface Incarnation {
    child: ChildProcess;
    answering: Map<string, (outcome: SubmitOutcome) => void>;
    exited: boolean;
  }
  const upTimes: BotUpTime[] = [];
  const start = async (): Promise<Incarnation> => {
    const child = await spawnChild('bot', config);
    upTimes.push({ fromMs: Date.now() });
    const incarnation: Incarnation = { child, answering: new Map(), exited: false };
    child.on('message', (message) => {
      const answer = SubmitAnswer.parse(message);
      incarnation.answering.get(answer.generationId)?.(answer.accepted ? { answer: 'accepted' } : { answer: 'refused', userMessage: answer.userMessage });
      incarnation.answering.delete(answer.generationId);
    });
    child.on('error', () => {});
    child.once('exit', () => {
      incarnation.exited = true;
      for (const settle of incarnation.answering.values()) settle({ answer: 'none' });
      incarnation.answering.clear();
    });
    return incarnation;
  };
  let running = start();
  return {
    upTimes,
    /** Settles once a bot is up (at once unless it is being restarted). */
    running: async () => void (await running),
    async submit(request: GenerationRequest, onSent: () => void): Promise<SubmitOutcome> {
      const bot = await running;
      if (bot.exited) return { answer: 'none' };
      const answered = new Promise<SubmitOutcome>((resolve) => {
        bot.answering.set(request.generationId, resolve);
        bot.child.send({ request }, (error) => {
          if (error) bot.answering.get(request.generationId)?.({ answer: 'none' });
        });
      });
      onSent();
      return answered;
    },
    /** SIGKILLs the bot and starts another `downMs` later; requests sent meanwhile wait for it. */
    restart(downMs: number): Promise<void> {
      running = running.then(async (previous) => {
        upTimes.at(-1)!.untilMs = Date.now();
        await killAndWait(previous.child, 'SIGKILL');
        await sleep(downMs);
        return start();
      });
      return running.then(() => {});
    },
    async kill() {
      const bot = await running.catch(() => undefined);
      if (bot) await killAndWait(bot.child, 'SIGKILL');
    },
  };
}

function soakRequest(index: number, userId: string): GenerationRequest {
  return {
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
    requester: { platform: 'cli', workspaceId: 'soak', userId, isAdmin: false },
    replyTarget: 'soak',
  };
}

async function runSoak(): Promise<void> {
  const jobCount = Number(values.jobs);
  const workerCount = Number(values.workers);
  const deadlineMs = Number(values['deadline-s']) * 1_000;
  if (values['redis-aof'] !== 'yes' && values['redis-aof'] !== 'no') throw new Error(`--redis-aof takes yes or no, got ${values['redis-aof']}`);
  const appendOnly = values['redis-aof'] === 'yes';
  const startedAtMs = Date.now();
  const schema = `soak_${randomBytes(6).toString('hex')}`;
  const databaseUrl = withSchema(values.database, schema);
  const prefix = `soak-${randomUUID().slice(0, 8)}`;
  const scratchDir = await mkdtemp(join(tmpdir(), 'imagine-soak-'));
  const imageDir = join(scratchDir, 'images');

  const children = new Set<ChildProcess>();
  let stopping = false;
  let workerKills = 0;
  let redisRestarts = 0;
  let botKills = 0;
  const redis = await startSoakRedis(scratchDir, appendOnly);
  const { database, ledger, history } = await openUnlimitedStores(databaseUrl);
  const reconciler = createReconciler({ prisma: database.prisma, ledger, history, redisUrl: redis.url, prefix, graceMs: RECONCILE_GRACE_MS });
  reconciler.start(RECONCILE_INTERVAL_MS);

  const workerConfig: WorkerConfig = { redisUrl: redis.url, prefix, databaseUrl, imageDir };
  const postedFile = join(scratchDir, 'posted.log');
  const bot = startSoakBot({ ...workerConfig, postedFile, caps: { perUser: jobCount + 1, perWorkspace: jobCount + 1 } });

  const startChild = async () => {
    const child = await spawnChild('worker', workerConfig);
    children.add(child);
    child.once('exit', () => children.delete(child));
  };

  try {
    await Promise.all([bot.running(), ...Array.from({ length: workerCount }, startChild)]);

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

    // The bot is killed a quarter and three quarters of the way through the requests, Redis halfway; one at a time,
    // each a moment after the request that reached its mark was sent, so submissions are in flight when it lands.
    const killBot = async () => {
      botKills += 1;
      await bot.restart(BOT_DOWN_MS);
    };
    const restartRedis = async () => {
      await redis.kill();
      await sleep(1_000);
      await redis.start();
      redisRestarts += 1;
    };
    const disruptions = [
      { atRequest: Math.floor(jobCount / 4), run: killBot },
      { atRequest: Math.floor(jobCount / 2), run: restartRedis },
      { atRequest: Math.floor((jobCount * 3) / 4), run: killBot },
    ];
    let disrupting = Promise.resolve();
    const disruptAfterSending = (index: number) => {
      while (disruptions[0] && index >= disruptions[0].atRequest) {
        const { run } = disruptions.shift()!;
        disrupting = disrupting.then(() => sleep(Math.random() * KILL_JITTER_MS)).then(run);
      }
    };

    const submitted: string[] = [];
    const submissions = { acceptedUnanswered: 0, refusedByCrash: 0, refusedWithMessage: 0 };
    // Whether the users will see an unanswered request's result: PostgreSQL recorded it, and the producer did not
    // refuse it (a refusal's answer died with the bot, and nothing will be posted for it).
    const acceptedOnRecord = async (generationId: string) => {
      const [recorded, refused] = await Promise.all([
        database.prisma.generation.count({ where: { id: generationId } }),
        database.prisma.usageLedger.count({ where: { generationId, kind: 'refund', reason: REFUSED_AT_SUBMIT_REASON } }),
      ]);
      return recorded === 1 && refused === 0;
    };
    /** Sends request `index` until it is accepted, as its user would; returns the accepted generation's id. */
    const submitUntilAccepted = async (index: number, userId: string): Promise<string> => {
      for (let attempt = 0; ; attempt += 1) {
        if (Date.now() - startedAtMs > deadlineMs) throw new Error(`request ${index} was not accepted before the deadline`);
        const request = soakRequest(index, userId);
        const outcome = await bot.submit(request, () => {
          if (attempt === 0) disruptAfterSending(index);
        });
        if (outcome.answer === 'accepted') return request.generationId;
        if (outcome.answer === 'refused') {
          submissions.refusedWithMessage += 1;
          await sleep(250);
          continue;
        }
        // No answer: the dead bot's transaction has settled by the time the next bot is up.
        await bot.running();
        if (await acceptedOnRecord(request.generationId)) {
          submissions.acceptedUnanswered += 1;
          return request.generationId;
        }
        submissions.refusedByCrash += 1;
      }
    };
    let nextRequest = 0;
    await Promise.all(
      Array.from({ length: USERS }, async (_, user) => {
        await sleep(Math.random() * THINK_SPREAD_MS);
        for (let index = nextRequest++; index < jobCount; index = nextRequest++) {
          submitted.push(await submitUntilAccepted(index, `soak-user-${user}`));
          await sleep(THINK_MIN_MS + Math.random() * THINK_SPREAD_MS);
        }
      }),
    );
    await disrupting;

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

    const figures = await countOutcomes({
      redisUrl: redis.url,
      prefix,
      databaseUrl: values.database,
      schema,
      submitted,
      posted: await readPosted(postedFile),
      botUpTimes: bot.upTimes,
    });
    const { submitted: acceptedCount, ...outcomes } = figures;
    const row = {
      redisAof: appendOnly ? 'yes' : 'no',
      submitted: acceptedCount,
      ...submissions,
      ...outcomes,
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
    await Promise.all([...[...children].map((child) => killAndWait(child, 'SIGKILL')), bot.kill()]);
    await reconciler.close();
    await database.close();
    await redis.kill();
    await dropSchema(values.database, schema);
    await rm(scratchDir, { recursive: true, force: true });
  }
}

interface Post {
  outcome: string;
  postedAtMs: number;
}

async function readPosted(file: string): Promise<Map<string, Post[]>> {
  const posted = new Map<string, Post[]>();
  const text = await readFile(file, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [generationId, outcome, postedAtMs] = line.split(' ');
    if (generationId && outcome && postedAtMs) posted.set(generationId, [...(posted.get(generationId) ?? []), { outcome, postedAtMs: Number(postedAtMs) }]);
  }
  return posted;
}

/** How long a bot was running between two moments: the time a post waited that a running bot could have used. */
function botRunningMs(upTimes: readonly BotUpTime[], fromMs: number, toMs: number): number {
  return upTimes.reduce((sum, up) => sum + Math.max(0, Math.min(toMs, up.untilMs ?? Infinity) - Math.max(fromMs, up.fromMs)), 0);
}

const toSeconds = (ms: number) => Math.round(ms / 10) / 100;

async function countOutcomes(options: {
  redisUrl: string;
  prefix: string;
  databaseUrl: string;
  schema: string;
  submitted: string[];
  posted: ReadonlyMap<string, Post[]>;
  botUpTimes: readonly BotUpTime[];
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
  let historyRows: { id: string; status: string; errorMessage: string | null; finishedAtMs: number | null }[];
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
    // Prisma keeps UTC in a timestamp without time zone, which extract(epoch) reads as UTC.
    historyRows = (
      await sql.query(
        `SELECT id, status::text, "errorMessage", (extract(epoch FROM "finishedAt") * 1000)::float8 AS "finishedAtMs" FROM "Generation" WHERE id = ANY($1)`,
        [options.submitted],
      )
    ).rows;
    balances = (await sql.query(`SELECT "userId", sum("usedUnits")::int AS "usedUnits" FROM "QuotaBalance" GROUP BY "userId"`)).rows;
    deliveredByUser = (
      await sql.query(
        `SELECT "userId", (count(*) * ${UNITS_PER_JOB})::int AS units FROM "Generation" WHERE id = ANY($1) AND status = 'succeeded' GROUP BY "userId"`,
        [options.submitted],
      )
    ).rows;
    // Over the whole schema, the requests refused or unanswered and then sent again under a new id included.
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
  const postDelaysMs: number[] = [];
  for (const generationId of options.submitted) {
    const posts = options.posted.get(generationId) ?? [];
    const outcomes = posts.map((post) => post.outcome);
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
    if (record?.finishedAtMs != null && posts.length > 0) {
      const firstPostMs = Math.min(...posts.map((post) => post.postedAtMs));
      postDelaysMs.push(botRunningMs(options.botUpTimes, record.finishedAtMs, firstPostMs));
    }
    if (delivered && outcomes.length === 1 && outcomes[0] === 'succeeded') completed += 1;
    else if (record?.status === 'failed' && record.errorMessage && outcomes.length === 1 && outcomes[0] === 'failed') failedWithMessage += 1;
    else {
      // What a lost generation looked like in each store, for whoever has to find out why.
      process.stderr.write(`lost ${JSON.stringify({ generationId, history: record ?? null, ledger: ledger ?? null, posted: posts, job: jobStates.get(generationId) })}\n`);
    }
  }
  // Per user: the balance the ledger keeps against the images the user received.
  const deliveredUnits = new Map(deliveredByUser.map((row) => [row.userId, row.units]));
  const overchargedUnits = balances.reduce((sum, row) => sum + Math.max(0, row.usedUnits - (deliveredUnits.get(row.userId) ?? 0)), 0);
  postDelaysMs.sort((a, b) => a - b);
  return {
    submitted: options.submitted.length,
    completed,
    failedWithMessage,
    lost: options.submitted.length - completed - failedWithMessage,
    neverPosted,
    postedLate: postDelaysMs.filter((delayMs) => delayMs > POSTED_LATE_MS).length,
    postDelayP50S: toSeconds(postDelaysMs[Math.floor((postDelaysMs.length - 1) / 2)] ?? 0),
    postDelayMaxS: toSeconds(postDelaysMs.at(-1) ?? 0),
    orphanReservations,
    doubleCharged: doubleCharged + overchargedUnits,
    postedTwice,
    uncharged,
    recoveredAfterKill,
  };
}

if (values.worker) await runWorkerChild(JSON.parse(process.env.SOAK_WORKER ?? '{}') as WorkerConfig);
else if (values.bot) await runBotChild(JSON.parse(process.env.SOAK_BOT ?? '{}') as BotConfig);
else await runSoak();
