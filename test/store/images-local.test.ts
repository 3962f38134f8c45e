import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLocalImageStore, startExpirySweep } from '../../src/store/images-local.js';

describe('the local image store', () => {
  let root: string;
  let nowMs: number;
  const store = () => createLocalImageStore(root, { now: () => new Date(nowMs) });

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'imagine-images-'));
    nowMs = Date.parse('2026-11-23T12:00:00Z');
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('stores bytes under a relative key and gives them back', async () => {
    const images = store();
    await images.put('gen-1/0.png', Buffer.from('png bytes'), 'image/png');
    expect(await images.get('gen-1/0.png')).toEqual(Buffer.from('png bytes'));
    expect(await readdir(join(root, 'gen-1'))).toEqual(['0.png']);
  });

  it('answers null for a key it never stored and deletes idempotently', async () => {
    const images = store();
    expect(await images.get('gen-2/0.png')).toBeNull();
    await images.put('gen-2/0.png', Buffer.from('x'), 'image/png');
    await images.delete('gen-2/0.png');
    await images.delete('gen-2/0.png');
    expect(await images.get('gen-2/0.png')).toBeNull();
  });

  it('hides an image once its TTL has passed and sweeps it from disk', async () => {
    const images = store();
    await images.put('gen-3/preview.webp', Buffer.from('preview'), 'image/webp', { ttlSeconds: 60 });
    await images.put('gen-3/0.png', Buffer.from('final'), 'image/png');
    nowMs += 59_000;
    expect(await images.get('gen-3/preview.webp')).toEqual(Buffer.from('preview'));
    expect(await images.sweepExpired()).toBe(0);
    nowMs += 1_000;
    expect(await images.sweepExpired()).toBe(1);
    expect(await readdir(join(root, 'gen-3'))).toEqual(['0.png']);
    expect(await images.get('gen-3/0.png')).toEqual(Buffer.from('final'));
  });

  it("deletes a generation's folder of previews, expiring or not, and nothing beside it", async () => {
    const images = store();
    await images.put('previews/gen-5/1.webp', Buffer.from('step 1'), 'image/webp', { ttlSeconds: 3600 });
    await images.put('previews/gen-5/2.webp', Buffer.from('step 2'), 'image/webp');
    await images.put('previews/gen-50/1.webp', Buffer.from('another generation'), 'image/webp', { ttlSeconds: 3600 });
    await images.deletePrefix('previews/gen-5/');
    await images.deletePrefix('previews/gen-5/');
    expect(await images.get('previews/gen-5/1.webp')).toBeNull();
    expect(await images.get('previews/gen-5/2.webp')).toBeNull();
    expect(await images.get('previews/gen-50/1.webp')).toEqual(Buffer.from('another generation'));
    nowMs += 7_200_000;
    expect(await images.sweepExpired()).toBe(1);
    await expect(images.deletePrefix('previews/gen-5')).rejects.toThrow(/must name a folder/);
    await expect(images.deletePrefix('../')).rejects.toThrow(/must be a relative path/);
  });

  it('sweeps expired previews from disk on a timer, and reports a failed sweep without stopping', async () => {
    const images = store();
    await images.put('previews/gen-6/1.webp', Buffer.from('preview'), 'image/webp', { ttlSeconds: 60 });
    await images.put('generations/gen-6/0.png', Buffer.from('final'), 'image/png');
    const errors: unknown[] = [];
    let failNext = true;
    const flaky = { sweepExpired: () => (failNext ? ((failNext = false), Promise.reject(new Error('disk busy'))) : images.sweepExpired()) };
    const stop = startExpirySweep(flaky, 20, (error) => errors.push(error));
    try {
      nowMs += 61_000;
      await expect.poll(() => readdir(join(root, 'previews', 'gen-6')), { timeout: 5_000 }).toEqual([]);
      expect(errors).toEqual([new Error('disk busy')]);
      expect(await images.get('generations/gen-6/0.png')).toEqual(Buffer.from('final'));
    } finally {
      stop();
    }
  });

  it('forgets the TTL when the same key is stored again without one', async () => {
    const images = store();
    await images.put('gen-4/0.png', Buffer.from('draft'), 'image/png', { ttlSeconds: 1 });
    await images.put('gen-4/0.png', Buffer.from('kept'), 'image/png');
    nowMs += 10_000;
    expect(await images.get('gen-4/0.png')).toEqual(Buffer.from('kept'));
  });

  it('refuses keys that would leave its folder or reach its bookkeeping', async () => {
    const images = store();
    for (const key of ['../escape.png', '/etc/passwd', 'a//b.png', '.expiry/gen-1/0.png', 'gen/../../x.png', '']) {
      await expect(images.put(key, Buffer.from('x'), 'image/png'), key).rejects.toThrow(/must be a relative path/);
    }
  });
});
