import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { Queue, type ConnectionOptions } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type AddressInfo } from 'node:net';
import { WebSocket } from 'ws';
import type { z } from 'zod';
import type { ServerMessage } from '../../src/adapters/web/protocol.js';
import { GenerationRequest } from '../../src/core/generation.js';
import { defaultQuotaPolicy } from '../../src/core/quota.js';
import { queueNameForModel } from '../../src/queue/job.js';
import { createGenerationQueue, type GenerationQueue } from '../../src/queue/producer.js';
import { createGenerationHistory, findGeneration } from '../../src/store/generations.js';
import { redisOptions } from '../../src/service/redis.js';
import { createGenerationIntake } from '../../src/store/intake.js';
import { PrismaQuotaLedger } from '../../src/store/quota-ledger.js';
import { openTestPostgres, type TestDatabase } from '../support/postgres.js';
import { deletePrefix, freePort, startPrivateRedis, testPrefix, type PrivateRedis } from '../support/redis.js';
import { eventually, TINY_SD_DIR } from '../support/service-stack.js';
import { openWebSession } from '../support/web-session.js';

/**
 * Each process role as an operator runs it: `node --import tsx src/service/main.ts <role>` in a child process, with
 * only the environment the test gives it, against a Redis the test owns and PostgreSQL.
 */

// Start-up compiles TypeScript and loads the model on a shared 2-core machine: generous, and only an upper bound.
const START_TIMEOUT_MS = 120_000;
const EXIT_TIMEOUT_MS = 120_000;

interface RoleProcess {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

function runRole(role: string, env: Record<string, string>, nodeFlags: string[] = []): RoleProcess {
  const child = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', 'src/service/main.ts', role], {
    // Nothing from the test runner's environment leaks in (no REDIS_URL, DATABASE_URL or tokens of the developer's).
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** What each role process below runs against: a Redis of its own, a PostgreSQL schema of its own and a data folder. */
interface RoleStores {
  redis: PrivateRedis;
  database: TestDatabase;
  dataDir: string;
  prefix: string;
  /** The environment that points a role at these stores. */
  env: Record<string, string>;
  dispose(): Promise<void>;
}

async function openRoleStores(name: string): Promise<RoleStores> {
  const redis = await startPrivateRedis();
  const database = await openTestPostgres();
  const dataDir = await mkdtemp(join(tmpdir(), `imagine-${name}-`));
  const prefix = testPrefix(name);
  return {
    redis,
    database,
    dataDir,
    prefix,
    env: { REDIS_URL: redis.url, DATABASE_URL: database.url!, QUEUE_PREFIX: prefix, DATA_DIR: dataDir },
    async dispose() {
      await deletePrefix(redis.url, prefix).catch(() => {});
      await redis.dispose();
      await database.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Runs the role and waits until its /readyz answers 200, failing with its output if it exits first. */
async function startRole(role: string, env: Record<string, string>, healthUrl: string, nodeFlags: string[] = []): Promise<RoleProcess> {
  const run = runRole(role, env, nodeFlags);
  await eventually(async () => {
    if (run.child.exitCode !== null) throw new Error(`the ${role} role exited ${run.child.exitCode}:\n${run.output()}`);
    return (await statusOf(`${healthUrl}/readyz`)) === 200 ? true : undefined;
  }, START_TIMEOUT_MS);
  return run;
}

async function killRole(run: RoleProcess | undefined): Promise<void> {
  if (!run || run.child.exitCode !== null || run.child.signalCode !== null) return;
  run.child.kill('SIGKILL');
  await run.exited;
}

async function runToExit(role: string, env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const run = runRole(role, env);
  const code = await within(run.exited, EXIT_TIMEOUT_MS, () => run.child.kill('SIGKILL'));
  return { code, output: run.output() };
}

async function within<T>(promise: Promise<T>, timeoutMs: number, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new Error(`no result within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function statusOf(url: string): Promise<number | undefined> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(5_000) })).status;
  } catch {
    return undefined;
  }
}

/** Prometheus text exposition format 0.0.4: `# HELP` / `# TYPE` comments and `name{labels} value` samples. */
function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})?) (\S+)(?: -?\d+)?$/.exec(line);
    if (!match) throw new Error(`not a Prometheus sample line: ${line}`);
    const value = match[2] === '+Inf' ? Infinity : match[2] === '-Inf' ? -Infinity : Number(match[2]);
    if (Number.isNaN(value) && match[2] !== 'NaN') throw new Error(`not a Prometheus value: ${line}`);
    samples.set(match[1], value);
  }
  return samples;
}

const completedJobs = (samples: Map<string, number>) =>
  [...samples].filter(([name]) => name.startsWith('imagine_jobs_total{') && name.includes('state="completed"')).reduce((sum, [, value]) => sum + value, 0);

function tinySdRequest(options: { steps: number; size: number; batch: number }): z.input<typeof GenerationRequest> {
  return {
    generationId: `gen-${randomUUID()}`,
    kind: 'imagine',
    params: { prompt: 'a red apple', width: options.size, height: options.size, steps: options.steps, guidance: 5, sampler: 'euler', seed: 7, batch: options.batch, model: 'tiny-sd' },
    requester: { platform: 'web', workspaceId: 'local', userId: 'roles-test-user' },
    mode: 'fast',
    replyTarget: 'roles-test',
  };
}

describe('the worker role as a child process (own Redis, PostgreSQL)', () => {
  let stores: RoleStores;
  let redis: PrivateRedis;
  let queue: GenerationQueue;
  let worker: RoleProcess;
  let healthUrl: string;

  beforeAll(async () => {
    stores = await openRoleStores('roles');
    redis = stores.redis;
    const { database, prefix } = stores;
    const ledger = new PrismaQuotaLedger(database.prisma, { defaultPolicy: defaultQuotaPolicy({ unitsPerPeriod: null, period: 'day' }) });
    queue = createGenerationQueue({ redisUrl: redis.url, prefix, ledger, history: createGenerationHistory(database.prisma) });
    const httpPort = await freePort();
    healthUrl = `http://127.0.0.1:${httpPort}`;
    worker = await startRole(
      'worker',
      { ...stores.env, MODEL_DIR: TINY_SD_DIR, HTTP_PORT: String(httpPort), ORT_THREADS: '1', PREVIEW_INTERVAL_MS: '0', WORKER_SHUTDOWN_DEADLINE_MS: '60000' },
      healthUrl,
    );
  }, START_TIMEOUT_MS + 30_000);

  afterAll(async () => {
    await killRole(worker);
    await queue?.close();
    await stores?.dispose();
  });

  it('reports not ready while its Redis is down and ready again once it is back, without a restart', async () => {
    await redis.stop();
    await eventually(async () => ((await statusOf(`${healthUrl}/readyz`)) === 503 ? true : undefined), 60_000);
    const body = (await (await fetch(`${healthUrl}/readyz`)).json()) as { checks: Record<string, { ok: boolean }> };
    expect(body.checks.redis.ok).toBe(false);
    expect(body.checks.database.ok).toBe(true);

    await redis.start();
    await eventually(async () => ((await statusOf(`${healthUrl}/readyz`)) === 200 ? true : undefined), 60_000);
    expect(worker.child.exitCode).toBeNull();
    // The next tests enqueue through this test's own producer, which refuses at once while it is still reconnecting.
    await eventually(
      () => queue.position('no-such-generation').then(() => true, (error: { kind?: string }) => (error.kind === 'transient' ? undefined : true)),
      60_000,
    );
  }, 150_000);

  it('serves /metrics as Prometheus text whose completed-jobs counter moves when a job runs', async () => {
    const before = parsePrometheus(await (await fetch(`${healthUrl}/metrics`)).text());
    expect(before.has('process_cpu_seconds_total')).toBe(true);

    const receipt = await queue.enqueue(tinySdRequest({ steps: 2, size: 64, batch: 1 }), { units: 1 });
    await eventually(async () => ((await queue.position(receipt.generationId)).state === 'finished' ? true : undefined), 120_000);

    const after = await eventually(async () => {
      const samples = parsePrometheus(await (await fetch(`${healthUrl}/metrics`)).text());
      return completedJobs(samples) >= completedJobs(before) + 1 ? samples : undefined;
    }, 30_000);
    expect(completedJobs(after)).toBe(completedJobs(before) + 1);
  }, 180_000);

  it('drains on SIGTERM: the running job finishes or is handed back, and the process exits 0', async () => {
    const receipt = await queue.enqueue(tinySdRequest({ steps: 150, size: 128, batch: 4 }), { units: 1 });
    // 150 steps of four 128×128 images keep the tiny model busy for seconds, so the signal lands mid-job.
    await eventually(async () => ((await queue.position(receipt.generationId)).state === 'running' ? true : undefined), 120_000);
    worker.child.kill('SIGTERM');
    const code = await within(worker.exited, EXIT_TIMEOUT_MS, () => worker.child.kill('SIGKILL'));
    expect(code).toBe(0);
    expect(worker.output()).toContain('SIGTERM: stopping');

    // Finished within the deadline, or handed back to the queue for another worker: never lost, never left "running".
    const after = await queue.position(receipt.generationId);
    expect(['finished', 'waiting']).toContain(after.state);
    if (after.state === 'finished') expect((await findGeneration(stores.database.prisma, receipt.generationId))?.status).toBe('succeeded');
  }, EXIT_TIMEOUT_MS + 150_000);
});

/**
 * Kills the engine thread of a role process from outside, as a native crash or a bug would, through the inspector the
 * process opened with `--inspect=127.0.0.1:0`: the Chrome DevTools Protocol on the URL it prints reaches each of its
 * worker threads. The engine thread is the one whose workerData names the model folder (Node's module loader threads
 * and the UNet lanes have none); it is made to throw an uncaught error once `trigger` exists.
 *
 * The throw waits for the file, not for the call, so that the session is detached and closed before the replacement
 * engine thread starts: it then starts as it would in production, with no debugger attached to it.
 */
async function armEngineThreadCrash(run: RoleProcess, modelDir: string, trigger: string): Promise<void> {
  const url = await eventually(async () => /Debugger listening on (ws:\/\/\S+)/.exec(run.output())?.[1], 30_000);
  const socket = new WebSocket(url);
  await once(socket, 'open');
  try {
    interface Answer {
      id?: number;
      error?: { message: string };
      result?: { result?: { value?: unknown } };
    }
    const threads = new Set<string>();
    const answers = new Map<string, (message: Answer) => void>();
    socket.on('message', (data) => {
      const message = JSON.parse(data.toString()) as Answer & { method?: string; params?: { sessionId: string; message?: string } };
      if (message.id !== undefined) answers.get(`main:${message.id}`)?.(message);
      if (message.method === 'NodeWorker.attachedToWorker') threads.add(message.params!.sessionId);
      if (message.method === 'NodeWorker.receivedMessageFromWorker') {
        const inner = JSON.parse(message.params!.message!) as Answer;
        if (inner.id !== undefined) answers.get(`${message.params!.sessionId}:${inner.id}`)?.(inner);
      }
    });
    let lastId = 0;
    const answerTo = (key: string, send: () => void, timeoutMs: number) =>
      new Promise<Answer | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), timeoutMs);
        answers.set(key, (answer) => {
          clearTimeout(timer);
          resolve(answer);
        });
        send();
      });
    const post = async (method: string, params: Record<string, unknown>) => {
      const id = (lastId += 1);
      const answer = await answerTo(`main:${id}`, () => socket.send(JSON.stringify({ id, method, params })), 10_000);
      if (!answer || answer.error) throw new Error(`${method}: ${answer?.error?.message ?? 'no answer'}`);
    };
    // A thread busy in native code may not answer; it is then not the idle engine thread the test looks for.
    const evaluate = async (sessionId: string, expression: string) => {
      const id = (lastId += 1);
      const message = JSON.stringify({ id, method: 'Runtime.evaluate', params: { expression, returnByValue: true } });
      const answer = await answerTo(`${sessionId}:${id}`, () => void post('NodeWorker.sendMessageToWorker', { sessionId, message }), 2_000);
      return answer?.result?.result?.value;
    };

    await post('NodeWorker.enable', { waitForDebuggerOnStart: false });
    const isEngine = `process.getBuiltinModule('node:worker_threads').workerData?.modelDir === ${JSON.stringify(modelDir)}`;
    // Asked until one thread says it is the engine thread, rather than once per thread reported by enable's answer.
    const engine = await eventually(async () => {
      for (const sessionId of threads) if ((await evaluate(sessionId, isEngine)) === true) return sessionId;
      return undefined;
    }, 30_000);
    const armed = await evaluate(
      engine,
      `const timer = setInterval(() => {
        if (!process.getBuiltinModule('node:fs').existsSync(${JSON.stringify(trigger)})) return;
        clearInterval(timer);
        throw new Error('engine thread crashed on purpose');
      }, 50); 'armed'`,
    );
    expect(armed).toBe('armed');
    await post('NodeWorker.disable', {});
  } finally {
    socket.close();
    await once(socket, 'close');
  }
}

describe('the worker role whose engine thread dies (own Redis, PostgreSQL)', () => {
  let stores: RoleStores;
  let modelDir: string;
  let worker: RoleProcess;
  let healthUrl: string;

  beforeAll(async () => {
    stores = await openRoleStores('roles-engine');
    // A copy of the model folder, so the test can stall the reload without touching the fixture.
    modelDir = join(stores.dataDir, 'model');
    await cp(TINY_SD_DIR, modelDir, { recursive: true });
    const httpPort = await freePort();
    healthUrl = `http://127.0.0.1:${httpPort}`;
    worker = await startRole('worker', { ...stores.env, MODEL_DIR: modelDir, HTTP_PORT: String(httpPort), ORT_THREADS: '1' }, healthUrl, ['--inspect=127.0.0.1:0']);
  }, START_TIMEOUT_MS + 30_000);

  afterAll(async () => {
    await killRole(worker);
    await stores?.dispose();
  });

  it('reports the model not ready while its engine thread is being replaced, and ready again once the new one has loaded', async () => {
    const modelIndex = join(modelDir, 'model_index.json');
    const indexText = await readFile(modelIndex);
    // Reloading the tiny model takes too little time to be seen reliably. A named pipe in place of the first file the
    // new thread reads holds the reload until the test writes the file into it, as a stalled model volume would.
    await rm(modelIndex);
    execFileSync('mkfifo', [modelIndex]);

    const trigger = join(stores.dataDir, 'crash-now');
    await armEngineThreadCrash(worker, modelDir, trigger);
    await writeFile(trigger, '');

    await eventually(async () => ((await statusOf(`${healthUrl}/readyz`)) === 503 ? true : undefined), 60_000);
    const notReady = (await (await fetch(`${healthUrl}/readyz`)).json()) as { status: string; checks: Record<string, { ok: boolean; error?: string }> };
    expect(notReady.status).toBe('not_ready');
    expect(notReady.checks.model).toEqual({ ok: false, error: 'the engine is restarting' });
    expect(notReady.checks.redis.ok).toBe(true);
    expect(notReady.checks.database.ok).toBe(true);

    // The reload waits on the pipe: open it for writing once the new thread has it open for reading.
    const pipe = await eventually(async () => {
      try {
        return openSync(modelIndex, constants.O_WRONLY | constants.O_NONBLOCK);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENXIO') return undefined;
        throw error;
      }
    }, 90_000).catch(async (error: unknown) => {
      const readiness = await fetch(`${healthUrl}/readyz`).then((response) => response.text(), String);
      throw new Error(`the new engine thread never opened model_index.json; /readyz says ${readiness}; the worker printed:\n${worker.output().slice(-3000)}`, { cause: error });
    });
    writeSync(pipe, indexText);
    closeSync(pipe);

    await eventually(async () => ((await statusOf(`${healthUrl}/readyz`)) === 200 ? true : undefined), 120_000);
    const ready = (await (await fetch(`${healthUrl}/readyz`)).json()) as { checks: Record<string, { ok: boolean }> };
    expect(ready.checks.model).toEqual({ ok: true });
    expect(worker.child.exitCode).toBeNull();
  }, 240_000);
});

describe('the bot role with no chat platform configured (own Redis, PostgreSQL)', () => {
  let stores: RoleStores;
  let redis: PrivateRedis;
  let database: TestDatabase;
  let bot: RoleProcess;
  let webUrl: string;
  const lostByRedis = tinySdRequest({ steps: 2, size: 64, batch: 1 });
  const neverRecorded = tinySdRequest({ steps: 2, size: 64, batch: 1 });

  beforeAll(async () => {
    stores = await openRoleStores('roles-bot');
    ({ redis, database } = stores);
    // What a Redis restarted without persistence and a bot killed mid-submit leave behind, two minutes ago: an accepted
    // generation that no queue holds, and a reservation whose generation was never recorded.
    const twoMinutesAgo = () => new Date(Date.now() - 120_000);
    const ledgerOptions = { defaultPolicy: defaultQuotaPolicy({ unitsPerPeriod: 10, period: 'day' }), now: twoMinutesAgo };
    await createGenerationIntake(database.prisma, ledgerOptions).accept(GenerationRequest.parse(lostByRedis), 1);
    await new PrismaQuotaLedger(database.prisma, ledgerOptions).reserve(GenerationRequest.parse(neverRecorded), 1);
    await database.prisma.$executeRaw`UPDATE "UsageLedger" SET "createdAt" = ${twoMinutesAgo()}::timestamp(3)`;
    const [httpPort, webPort] = [await freePort(), await freePort()];
    webUrl = `http://127.0.0.1:${webPort}`;
    bot = await startRole('bot', { ...stores.env, MODEL_DIR: TINY_SD_DIR, HTTP_PORT: String(httpPort), WEB_PORT: String(webPort) }, `http://127.0.0.1:${httpPort}`);
  }, START_TIMEOUT_MS + 30_000);

  afterAll(async () => {
    await killRole(bot);
    await stores?.dispose();
  });

  it('serves the web chat alone: a visitor gets a session and the chat answers /quota', async () => {
    const socket = new WebSocket(`${webUrl.replace('http:', 'ws:')}/chat`, { origin: webUrl, headers: { cookie: await openWebSession(webUrl) } });
    const texts: string[] = [];
    socket.on('message', (data) => {
      const message = JSON.parse(data.toString()) as ServerMessage;
      if (message.type === 'upsert') texts.push(message.message.text);
    });
    await once(socket, 'open');
    socket.send(JSON.stringify({ type: 'command', text: '/quota' }));
    const answer = await eventually(async () => texts.find((text) => text.startsWith('You have')), 30_000);
    expect(answer).toContain('units left');
    socket.close();
  }, 60_000);

  it('repairs on start what PostgreSQL says was accepted: queues the generation Redis lost and refunds the unrecorded reservation', async () => {
    const queue = new Queue(queueNameForModel('tiny-sd'), { connection: redisOptions(redis.url, 'worker') as ConnectionOptions, prefix: stores.prefix });
    try {
      const requeued = await eventually(async () => (await queue.getJob(lostByRedis.generationId)) ?? undefined, 30_000);
      expect(requeued.data).toMatchObject({ generationId: lostByRedis.generationId, params: { prompt: 'a red apple' } });
    } finally {
      await queue.close();
    }
    const settled = await eventually(async () => {
      const rows = await database.prisma.usageLedger.findMany({ where: { generationId: neverRecorded.generationId }, orderBy: { id: 'asc' } });
      return rows.length === 2 ? rows : undefined;
    }, 30_000);
    expect(settled.map((row) => row.kind)).toEqual(['reserve', 'refund']);
    expect(await findGeneration(database.prisma, neverRecorded.generationId)).toBeNull();
  }, 90_000);
});

describe('start-up refusals', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'imagine-roles-refusals-'));
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('exits 1 naming HTTP_PORT when it is not a number', async () => {
    const { code, output } = await runToExit('all', { HTTP_PORT: 'abc', DATA_DIR: dataDir, MODEL_DIR: TINY_SD_DIR });
    expect(code).toBe(1);
    expect(output).toContain('HTTP_PORT');
    expect(output).toContain('"abc"');
  }, EXIT_TIMEOUT_MS + 10_000);

  it('exits 1 naming HTTP_PORT when another program holds that port, and takes PORT for the web chat', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const heldPort = (holder.address() as AddressInfo).port;
    const redis = await startPrivateRedis();
    try {
      const webPort = await freePort();
      const { code, output } = await runToExit('all', {
        HTTP_PORT: String(heldPort),
        PORT: String(webPort),
        REDIS_URL: redis.url,
        DATA_DIR: join(dataDir, 'port-clash'),
        MODEL_DIR: TINY_SD_DIR,
        ORT_THREADS: '1',
        LOG_LEVEL: 'info',
      });
      expect(code).toBe(1);
      expect(output).toContain(`Port ${heldPort} is already in use: set HTTP_PORT to a free port, or to 0 to pick one.`);
      expect(output).toContain(`"webPort":${webPort}`);
    } finally {
      await redis.dispose();
      await new Promise((resolve) => holder.close(resolve));
    }
  }, EXIT_TIMEOUT_MS + 10_000);

  it('never prints a secret value while refusing a configuration', async () => {
    const password = `pw${randomUUID().slice(0, 8)}`;
    const { code, output } = await runToExit('all', { ADMIN_USER: 'ops', ADMIN_PASSWORD: password, DATA_DIR: dataDir, MODEL_DIR: TINY_SD_DIR });
    expect(code).toBe(1);
    expect(output).toContain('ADMIN_PASSWORD must be at least 12 characters long (value hidden)');
    expect(output).not.toContain(password);
  }, EXIT_TIMEOUT_MS + 10_000);

  it('refuses to start the worker role without DATABASE_URL, explaining that the embedded database is single-process', async () => {
    const { code, output } = await runToExit('worker', { DATA_DIR: dataDir, MODEL_DIR: TINY_SD_DIR });
    expect(code).toBe(1);
    expect(output).toContain('The worker role needs DATABASE_URL');
    expect(output).toContain('embedded database');
  }, EXIT_TIMEOUT_MS + 10_000);
});
