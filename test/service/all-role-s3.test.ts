import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startPrivateRedis, type PrivateRedis } from '../support/redis.js';
import { startTestS3Server, type TestS3Server } from '../support/s3-server.js';
import { eventually, TINY_SD_DIR } from '../support/service-stack.js';
import { openWebChatPage, type WebChatPage } from '../support/web-chat-client.js';

/**
 * `npm start`'s role with the S3_* variables set, as docs/DEPLOY.md offers: the worker writes finished images to the
 * bucket (a real S3-compatible server, s3rver, on loopback), the web chat reads them back from it, and nothing is
 * written under IMAGE_DIR.
 */

const START_TIMEOUT_MS = 120_000;
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe('the all-in-one role with images in S3', () => {
  let redis: PrivateRedis;
  let s3: TestS3Server;
  let client: S3Client;
  let dataDir: string;
  let child: ChildProcess;
  let output = '';
  let webUrl: string;
  let page: WebChatPage;

  beforeAll(async () => {
    [redis, s3] = await Promise.all([startPrivateRedis(), startTestS3Server('imagine-all-role')]);
    client = new S3Client({ endpoint: s3.endpoint, region: s3.region, credentials: s3, forcePathStyle: true });
    dataDir = await mkdtemp(join(tmpdir(), 'imagine-all-role-s3-'));
    const [httpPort, webPort] = [await freePort(), await freePort()];
    webUrl = `http://127.0.0.1:${webPort}`;
    child = spawn(process.execPath, ['--import', 'tsx', 'src/service/main.ts', 'all'], {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? tmpdir(),
        LOG_LEVEL: 'warn',
        REDIS_URL: redis.url,
        QUEUE_PREFIX: 'all-role-s3-test',
        MODEL_DIR: TINY_SD_DIR,
        DATA_DIR: dataDir,
        HTTP_PORT: String(httpPort),
        WEB_PORT: String(webPort),
        ORT_THREADS: '1',
        S3_ENDPOINT: s3.endpoint,
        S3_BUCKET: s3.bucket,
        S3_REGION: s3.region,
        S3_ACCESS_KEY_ID: s3.accessKeyId,
        S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await eventually(async () => {
      if (child.exitCode !== null) throw new Error(`the service exited ${child.exitCode}:\n${output}`);
      const status = await fetch(`http://127.0.0.1:${httpPort}/readyz`).then((response) => response.status, () => undefined);
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
    client?.destroy();
    await Promise.all([redis?.dispose(), s3?.close()]);
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('writes a finished image to the bucket, serves it in the web chat from there, and keeps nothing under IMAGE_DIR', async () => {
    page.send({ type: 'command', text: '/imagine a red apple --steps 2' });
    const result = await eventually(async () => [...page.shown.values()].find((message) => message.author === 'bot' && message.images.some((image) => image.key.startsWith('generations/'))), 150_000);
    const image = result.images.find((candidate) => candidate.key.startsWith('generations/'))!;

    const listed = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'generations/' }));
    expect(listed.Contents?.map((object) => object.Key)).toContain(image.key);
    const stored = Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: image.key }))).Body!.transformToByteArray());
    expect(stored.subarray(0, 8)).toEqual(PNG_SIGNATURE);

    const served = await fetch(new URL(image.url, webUrl), { headers: { cookie: page.cookie } });
    expect(served.status).toBe(200);
    expect(Buffer.from(await served.arrayBuffer())).toEqual(stored);

    const local = await readdir(join(dataDir, 'images')).catch(() => []);
    expect(local).toEqual([]);
  }, 180_000);
});
