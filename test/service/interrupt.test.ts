import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, type ConnectionOptions } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queueNameForModel } from '../../src/queue/job.js';
import { SIGNAL_ECHO_WINDOW_MS } from '../../src/service/main.js';
import { redisOptions } from '../../src/service/redis.js';
import { openDatabase } from '../../src/store/database.js';
import { freePort, startPrivateRedis, type PrivateRedis } from '../support/redis.js';
import { eventually, TINY_SD_DIR } from '../support/service-stack.js';
import { openWebChatPage } from '../support/web-chat-client.js';

/**
 * Ctrl-C on `npm start` in a terminal: the terminal sends SIGINT to every process of the foreground group (npm, node)
 * and npm passes its own copy on, so the service meets several SIGINTs for one key press. It must stop exactly as on
 * one SIGTERM — the running job finished or handed back to the queue, never left `running` for a restart to redo.
 */

const START_TIMEOUT_MS = 120_000;
/** BullMQ's states of a job back in the queue (jobs with a priority wait in 'prioritized'). */
const WAITING = ['waiting', 'prioritized'];

interface Started {
  child: ChildProcess;
  output: () => string;
  /** Resolves once npm and the service have both exited (every holder of the output pipes is gone). */
  closed: Promise<unknown>;
  /** Waits until the job typed into the web chat reports a step, i.e. is running on the worker. */
  startLongJob(): Promise<void>;
  pressCtrlC(times: number): void;
}

describe('npm start interrupted with Ctrl-C while a job runs', () => {
  let redis: PrivateRedis;
  let dataRoot: string;
  const children: ChildProcess[] = [];

  /** Each start gets a data directory and a queue prefix of its own: nothing of one test is left for the next. */
  const startNpm = async (name: string, extraEnv: Record<string, string> = {}): Promise<Started> => {
    const dataDir = join(dataRoot, name);
    const [httpPort, webPort] = [await freePort(), await freePort()];
    const webUrl = `http://127.0.0.1:${webPort}`;
    const child = spawn('npm', ['start', '--silent'], {
      // Its own process group, as a terminal's foreground job: process.kill(-pid) then reaches npm and node alike.
      detached: true,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? tmpdir(),
        LOG_LEVEL: 'warn',
        REDIS_URL: redis.url,
        QUEUE_PREFIX: `interrupt-${name}`,
        MODEL_DIR: TINY_SD_DIR,
        DATA_DIR: dataDir,
        HTTP_PORT: String(httpPort),
        WEB_PORT: String(webPort),
        ORT_THREADS: '1',
        PREVIEW_INTERVAL_MS: '0',
        ...extraEnv,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const closed = once(child, 'close');
    await eventually(async () => {
      if (child.exitCode !== null) throw new Error(`the service exited ${child.exitCode}:\n${output}`);
      return output.includes('imagine-bot is running') ? true : undefined;
    }, START_TIMEOUT_MS);
    return {
      child,
      output: () => output,
      closed,
      async startLongJob() {
        const { socket, shown, send } = await openWebChatPage(webUrl);
        // The service is about to be interrupted under it.
        socket.on('error', () => {});
        send({ type: 'command', text: '/imagine a red apple --steps 150' });
        await eventually(async () => ([...shown.values()].some((message) => /step \d+\/150/.test(message.text)) ? true : undefined), 120_000);
        void closed.then(() => socket.terminate());
      },
      pressCtrlC(times: number) {
        for (let press = 0; press < times; press++) process.kill(-child.pid!, 'SIGINT');
      },
    };
  };

  /** The newest generation's row and its BullMQ job, read once the service is gone. */
  const lastJob = async (name: string) => {
    const dataDir = join(dataRoot, name);
    const database = await openDatabase({ dataDir: join(dataDir, 'pglite') });
    const queue = new Queue(queueNameForModel('tiny-sd'), { connection: redisOptions(redis.url, 'worker') as ConnectionOptions, prefix: `interrupt-${name}` });
    try {
      const [generation] = await database.prisma.generation.findMany({ orderBy: { createdAt: 'desc' }, take: 1 });
      return { status: generation.status, jobState: await (await queue.getJob(generation.id))?.getState() };
    } finally {
      await queue.close();
      await database.close();
    }
  };

  beforeAll(async () => {
    redis = await startPrivateRedis();
    dataRoot = await mkdtemp(join(tmpdir(), 'imagine-interrupt-'));
  });

  afterAll(async () => {
    for (const child of children) {
      if (child.pid && child.exitCode === null && child.signalCode === null) process.kill(-child.pid, 'SIGKILL');
    }
    await redis?.dispose();
    if (dataRoot) await rm(dataRoot, { recursive: true, force: true });
  });

  it('finishes or hands back the running job on a burst of SIGINTs to the whole process group, and says it stopped', async () => {
    const service = await startNpm('burst');
    await service.startLongJob();
    service.pressCtrlC(3);
    await service.closed;

    expect(service.output()).toContain('SIGINT: stopping');
    expect(service.output()).not.toContain('SIGINT again');
    expect(service.output()).toContain('imagine-bot stopped');
    // Finished within the deadline, or back in the queue for the next start: neither leaves the job stuck in `active`.
    expect(await lastJob('burst')).toSatisfy(
      ({ status, jobState }: { status: string; jobState?: string }) => (status === 'succeeded' && jobState === 'completed') || WAITING.includes(jobState ?? ''),
    );
  }, START_TIMEOUT_MS + 150_000);

  it('hands the running job back at once on a second Ctrl-C after the echo window, saying so', async () => {
    // A deadline no test waits for: only the second Ctrl-C can end this job before it finishes.
    const service = await startNpm('second-press', { WORKER_SHUTDOWN_DEADLINE_MS: '600000' });
    await service.startLongJob();
    service.pressCtrlC(3);
    await new Promise((resolve) => setTimeout(resolve, SIGNAL_ECHO_WINDOW_MS + 100));
    service.pressCtrlC(1);
    await service.closed;

    expect(service.output()).toContain('SIGINT again: handing the running job back to the queue now');
    expect(service.output()).toContain('imagine-bot stopped');
    expect(WAITING).toContain((await lastJob('second-press')).jobState);
  }, START_TIMEOUT_MS + 150_000);
});
