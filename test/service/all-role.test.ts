import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startPrivateRedis, type PrivateRedis } from '../support/redis.js';
import { eventually, TINY_SD_DIR } from '../support/service-stack.js';
import { openWebChatPage, type WebChatPage } from '../support/web-chat-client.js';

/**
 * `npm start`'s role (`all`) as a child process, driven the way a person drives it: commands typed into the web chat
 * over its WebSocket. It checks that the abuse rules configured in the environment are enforced on the way in.
 */

const START_TIMEOUT_MS = 120_000;

describe('the all-in-one role behind its web chat (own Redis, embedded PGlite)', () => {
  let redis: PrivateRedis;
  let dataDir: string;
  let child: ChildProcess;
  let output = '';
  let healthUrl: string;
  let webUrl: string;
  let page: WebChatPage;

  const botSays = (fragment: string) =>
    eventually(async () => [...page.shown.values()].find((message) => message.author === 'bot' && message.text.includes(fragment)), 120_000);
  const type = (text: string) => page.send({ type: 'command', text });
  const completedJobs = async () => {
    const text = await (await fetch(`${healthUrl}/metrics`)).text();
    return [...text.matchAll(/^imagine_jobs_total\{[^}]*state="completed"[^}]*\} (\S+)$/gm)].reduce((sum, match) => sum + Number(match[1]), 0);
  };

  beforeAll(async () => {
    redis = await startPrivateRedis();
    dataDir = await mkdtemp(join(tmpdir(), 'imagine-all-role-'));
    const [httpPort, webPort] = [await freePort(), await freePort()];
    healthUrl = `http://127.0.0.1:${httpPort}`;
    webUrl = `http://127.0.0.1:${webPort}`;
    child = spawn(process.execPath, ['--import', 'tsx', 'src/service/main.ts', 'all'], {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? tmpdir(),
        LOG_LEVEL: 'warn',
        REDIS_URL: redis.url,
        QUEUE_PREFIX: 'all-role-test',
        MODEL_DIR: TINY_SD_DIR,
        DATA_DIR: dataDir,
        HTTP_PORT: String(httpPort),
        WEB_PORT: String(webPort),
        ORT_THREADS: '1',
        PROMPT_BLOCKLIST: 'gore, blood bath',
        RATE_LIMIT_USER_PER_MINUTE: '2',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await eventually(async () => {
      if (child.exitCode !== null) throw new Error(`the service exited ${child.exitCode}:\n${output}`);
      const status = await fetch(`${healthUrl}/readyz`).then((response) => response.status, () => undefined);
      return status === 200 ? true : undefined;
    }, START_TIMEOUT_MS);

    page = await openWebChatPage(webUrl);
  }, START_TIMEOUT_MS + 30_000);

  afterAll(async () => {
    page?.socket.close();
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
    await redis?.dispose();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('refuses a prompt with a blocked phrase, naming it', async () => {
    type('/imagine the Blood   Bath of a tomato sauce');
    const refusal = await botSays('blocked term');
    expect(refusal.text).toContain('"blood bath"');
  }, 150_000);

  it('runs an allowed prompt, and the worker counts the completed job and its steps per second in /metrics', async () => {
    const before = await completedJobs();
    type('/imagine a red apple');
    await eventually(async () => ((await completedJobs()) > before ? true : undefined), 150_000);
    const metrics = await (await fetch(`${healthUrl}/metrics`)).text();
    expect(metrics).toMatch(/^imagine_denoise_steps_per_second\{queue="images\.tiny-sd",provider="cpu"\} [\d.]+$/m);
  }, 180_000);

  it('tells the user to slow down once over RATE_LIMIT_USER_PER_MINUTE', async () => {
    // The two commands above (the refused one counts too) used this minute's allowance of 2.
    type('/imagine a green apple');
    const refusal = await botSays('slow down');
    expect(refusal.text).toMatch(/slow down: you can run 2 commands a minute; try again in \d+ s/);
    const metrics = await (await fetch(`${healthUrl}/metrics`)).text();
    expect(metrics).toMatch(/^imagine_quota_refusals_total\{platform="web",reason="busy"\} 1$/m);
  }, 150_000);
});
