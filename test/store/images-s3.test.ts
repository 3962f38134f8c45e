import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createS3ImageStore } from '../../src/store/images-s3.js';
import { freePort } from '../support/redis.js';
import { startTestS3Server, type TestS3Server } from '../support/s3-server.js';

describe('the S3 image store, against a real S3-compatible server on loopback', () => {
  let server: TestS3Server;
  let nowMs: number;
  let run = 0;
  // A key prefix per test, so tests sharing the bucket never see each other's objects.
  let prefix: string;
  const store = () => createS3ImageStore({ ...server, now: () => new Date(nowMs) });

  beforeAll(async () => {
    server = await startTestS3Server();
  });
  afterAll(async () => {
    await server.close();
  });
  beforeEach(() => {
    nowMs = Date.parse('2026-11-23T12:00:00Z');
    run += 1;
    prefix = `run-${run}`;
  });

  it('stores bytes under a key and gives them back', async () => {
    const images = store();
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 255]);
    await images.put(`${prefix}/generations/gen-1/0.png`, png, 'image/png');
    expect(await images.get(`${prefix}/generations/gen-1/0.png`)).toEqual(png);
  });

  it('keeps the content type it was given, so the bucket can serve the image directly', async () => {
    await store().put(`${prefix}/previews/gen-1/3.webp`, Buffer.from('webp'), 'image/webp');
    const client = new S3Client({ endpoint: server.endpoint, region: server.region, credentials: server, forcePathStyle: true });
    const head = await client.send(new HeadObjectCommand({ Bucket: server.bucket, Key: `${prefix}/previews/gen-1/3.webp` }));
    expect(head.ContentType).toBe('image/webp');
    client.destroy();
  });

  it('answers null for a key it never stored and deletes idempotently', async () => {
    const images = store();
    expect(await images.get(`${prefix}/gen-2/0.png`)).toBeNull();
    await images.put(`${prefix}/gen-2/0.png`, Buffer.from('x'), 'image/png');
    await images.delete(`${prefix}/gen-2/0.png`);
    await images.delete(`${prefix}/gen-2/0.png`);
    expect(await images.get(`${prefix}/gen-2/0.png`)).toBeNull();
  });

  it('deletes every object under a prefix and nothing beside it', async () => {
    const images = store();
    const keys = Array.from({ length: 3 }, (_, step) => `${prefix}/previews/gen-5/${step + 1}.webp`);
    for (const key of keys) await images.put(key, Buffer.from(key), 'image/webp', { ttlSeconds: 3600 });
    await images.put(`${prefix}/previews/gen-50/1.webp`, Buffer.from('another generation'), 'image/webp');
    await images.deletePrefix(`${prefix}/previews/gen-5/`);
    for (const key of keys) expect(await images.get(key)).toBeNull();
    expect(await images.get(`${prefix}/previews/gen-50/1.webp`)).toEqual(Buffer.from('another generation'));
  });

  it('overwrites an image put again under the same key, as a retried job does', async () => {
    const images = store();
    await images.put(`${prefix}/gen-3/0.png`, Buffer.from('first attempt'), 'image/png');
    await images.put(`${prefix}/gen-3/0.png`, Buffer.from('second attempt'), 'image/png');
    expect(await images.get(`${prefix}/gen-3/0.png`)).toEqual(Buffer.from('second attempt'));
  });

  it('hides an image once its TTL has passed and deletes it from the bucket', async () => {
    const images = store();
    await images.put(`${prefix}/previews/gen-4/1.webp`, Buffer.from('preview'), 'image/webp', { ttlSeconds: 60 });
    await images.put(`${prefix}/generations/gen-4/0.png`, Buffer.from('final'), 'image/png');
    nowMs += 59_000;
    expect(await images.get(`${prefix}/previews/gen-4/1.webp`)).toEqual(Buffer.from('preview'));
    nowMs += 1_000;
    expect(await images.get(`${prefix}/previews/gen-4/1.webp`)).toBeNull();
    expect(await images.get(`${prefix}/generations/gen-4/0.png`)).toEqual(Buffer.from('final'));

    nowMs -= 60_000;
    expect(await images.get(`${prefix}/previews/gen-4/1.webp`)).toBeNull();
  });

  it('drops the TTL when the same key is put again without one', async () => {
    const images = store();
    await images.put(`${prefix}/gen-5/0.png`, Buffer.from('preview'), 'image/png', { ttlSeconds: 10 });
    await images.put(`${prefix}/gen-5/0.png`, Buffer.from('final'), 'image/png');
    nowMs += 3600_000;
    expect(await images.get(`${prefix}/gen-5/0.png`)).toEqual(Buffer.from('final'));
  });

  it('refuses an empty key or one past 1024 bytes', async () => {
    const images = store();
    await expect(images.put('', Buffer.from('x'), 'image/png')).rejects.toThrow(/non-empty relative key/);
    await expect(images.get('k'.repeat(1025))).rejects.toThrow(/at most 1024 bytes/);
  });

  // s3rver checks the access key id but not SigV4 signatures, so a refused key is what the server can show here.
  it('reports credentials the server refuses as an error, not as a missing image', async () => {
    const images = createS3ImageStore({ ...server, accessKeyId: 'NOT-A-KNOWN-KEY' });
    await expect(images.get(`${prefix}/gen-6/0.png`)).rejects.toThrow(/Access Key Id/);
  });

  it('reports a server that does not answer as an error, not as a missing image', async () => {
    const images = createS3ImageStore({ ...server, endpoint: `http://127.0.0.1:${await freePort()}` });
    await expect(images.get(`${prefix}/gen-7/0.png`)).rejects.toThrow(/ECONNREFUSED/);
  });
});
