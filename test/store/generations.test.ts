import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GenerationRequest } from '../../src/core/generation.js';
import type { GenerationHistory } from '../../src/core/ports.js';
import {
  ancestorGenerations,
  childGenerations,
  claimAnnouncement,
  confirmAnnouncement,
  createGenerationHistory,
  eraseUser,
  findByMessageRef,
  findBySeed,
  findGeneration,
  recentGenerations,
  recordMessageRef,
  unannouncedGenerations,
} from '../../src/store/generations.js';
import { createLocalImageStore, type LocalImageStore } from '../../src/store/images-local.js';
import { PrismaQuotaLedger } from '../../src/store/quota-ledger.js';
import { imagineRequest } from '../support/generation-requests.js';
import { TEST_BACKENDS, type TestDatabase } from '../support/postgres.js';

describe.each(TEST_BACKENDS)('generation history on %s', (_backend, open) => {
  let database: TestDatabase;
  let history: GenerationHistory;
  let images: LocalImageStore;
  let imageDir: string;
  let clockMs = Date.parse('2026-11-23T12:00:00Z');
  let userCount = 0;
  const newUser = () => `history-user-${(userCount += 1)}`;
  const request = (userId: string, overrides: Parameters<typeof imagineRequest>[0] = {}) =>
    GenerationRequest.parse(imagineRequest({ userId, ...overrides }));

  /** Records a generation and finishes it with images stored under its id. */
  async function generate(input: GenerationRequest, seeds = [input.params.seed]): Promise<GenerationRequest> {
    await history.recordQueued(input);
    await history.markRunning(input.generationId);
    const imageKeys = seeds.map((_seed, index) => `${input.generationId}/${index}.png`);
    for (const key of imageKeys) await images.put(key, Buffer.from(key), 'image/png');
    await history.markSucceeded({ generationId: input.generationId, imageKeys, seeds, timingsMs: { totalMs: 12 } });
    return input;
  }

  beforeAll(async () => {
    database = await open();
    // Each row gets its own second, so "most recent first" is well defined.
    history = createGenerationHistory(database.prisma, () => new Date((clockMs += 1000)));
    imageDir = await mkdtemp(join(tmpdir(), 'imagine-history-'));
    images = createLocalImageStore(imageDir);
  });
  afterAll(async () => {
    await database?.close();
    if (imageDir) await rm(imageDir, { recursive: true, force: true });
  });

  it('lists finished, unposted outcomes of a platform until one caller claims each, and never a refusal already answered', async () => {
    const user = newUser();
    const done = await generate(request(user));
    const refused = request(user);
    await history.recordQueued(refused);
    await history.markFailed(refused.generationId, 'failed', 'The queue is unavailable, try again shortly.', { announced: true });
    const waiting = request(user);
    await history.recordQueued(waiting);
    const unposted = async () =>
      (await unannouncedGenerations(database.prisma, 'discord', { finishedBefore: new Date(clockMs + 1), limit: 1000 }))
        .map((record) => record.request.generationId)
        .filter((id) => [done, refused, waiting].some((input) => input.generationId === id));

    expect(await unposted()).toEqual([done.generationId]);
    expect(await unannouncedGenerations(database.prisma, 'slack', { finishedBefore: new Date(clockMs + 1), limit: 1000 })).toEqual([]);
    expect(await claimAnnouncement(database.prisma, waiting.generationId)).toBe(false);
    expect(await Promise.all([claimAnnouncement(database.prisma, done.generationId), claimAnnouncement(database.prisma, done.generationId)])).toEqual(
      expect.arrayContaining([true, false]),
    );
    expect(await unposted()).toEqual([]);
  });

  it('hands an outcome to another poster when the bot that claimed it died before confirming, and to none once confirmed', async () => {
    const done = await generate(request(newUser()));
    const unposted = async (now: Date) =>
      (await unannouncedGenerations(database.prisma, 'discord', { finishedBefore: new Date(clockMs + 1), limit: 1000, now })).some(
        (record) => record.request.generationId === done.generationId,
      );
    const claimedAt = new Date();
    const lapsedAt = new Date(claimedAt.getTime() + 60_001);

    expect(await claimAnnouncement(database.prisma, done.generationId, claimedAt, 60_000)).toBe(true);
    expect(await claimAnnouncement(database.prisma, done.generationId, new Date(claimedAt.getTime() + 59_000))).toBe(false);
    expect(await unposted(new Date(claimedAt.getTime() + 59_000))).toBe(false);
    // Its bot was SIGKILLed between claiming and posting: the claim lapses and the outcome is offered again.
    expect(await unposted(lapsedAt)).toBe(true);
    expect(await claimAnnouncement(database.prisma, done.generationId, lapsedAt, 60_000)).toBe(true);
    await confirmAnnouncement(database.prisma, done.generationId);
    const later = new Date(lapsedAt.getTime() + 3_600_000);
    expect(await unposted(later)).toBe(false);
    expect(await claimAnnouncement(database.prisma, done.generationId, later)).toBe(false);
  });

  it('keeps every parameter of a request and the result of its run', async () => {
    const input = request(newUser(), {
      kind: 'img2img',
      params: {
        prompt: 'a red fox',
        negativePrompt: 'blurry',
        width: 640,
        height: 384,
        steps: 30,
        guidance: 6.5,
        sampler: 'dpmpp-2m-karras',
        seed: 4294967295,
        batch: 2,
        model: 'tiny-sd',
        strength: 0.6,
        variationSeed: 7,
        variationStrength: 0.25,
      },
      mode: 'relax',
    });
    await generate(input, [4294967295, 1]);
    const record = await findGeneration(database.prisma, input.generationId);
    expect(record?.request).toEqual(input);
    expect(record?.status).toBe('succeeded');
    expect(record?.result).toEqual({
      generationId: input.generationId,
      imageKeys: [`${input.generationId}/0.png`, `${input.generationId}/1.png`],
      seeds: [4294967295, 1],
      timingsMs: { totalMs: 12 },
    });
  });

  it('records a retried enqueue once and answers a second finish with the outcome already on record', async () => {
    const input = request(newUser());
    await history.recordQueued(input);
    await history.recordQueued(input);
    expect(await history.markFailed(input.generationId, 'failed', 'The model ran out of memory.')).toBe('failed');
    expect(await history.markSucceeded({ generationId: input.generationId, imageKeys: [], seeds: [], timingsMs: {} })).toBe('failed');
    expect(await history.markFailed(input.generationId, 'cancelled', 'Cancelled.')).toBe('failed');
    expect(await findGeneration(database.prisma, input.generationId)).toMatchObject({
      status: 'failed',
      userMessage: 'The model ran out of memory.',
    });
  });

  it("finds a user's generations by seed, by message and most recent first", async () => {
    const user = newUser();
    const first = await generate(request(user, { params: { ...request(user).params, seed: 1234 } }));
    const second = await generate(request(user, { params: { ...request(user).params, seed: 99 } }), [99, 100]);
    await generate(request(newUser(), { params: { ...request(user).params, seed: 1234 } }));
    await recordMessageRef(database.prisma, first.generationId, 'discord:channel-9/message-77');
    const identity = first.requester;

    expect((await findBySeed(database.prisma, identity, 1234))?.request.generationId).toBe(first.generationId);
    expect((await findBySeed(database.prisma, identity, 100))?.request.generationId).toBe(second.generationId);
    expect(await findBySeed(database.prisma, identity, 5)).toBeNull();
    expect((await findByMessageRef(database.prisma, 'discord:channel-9/message-77'))?.request.generationId).toBe(first.generationId);
    expect((await recentGenerations(database.prisma, identity, 10)).map((record) => record.request.generationId)).toEqual([
      second.generationId,
      first.generationId,
    ]);
  });

  it('follows lineage from an upscale back to its prompt and from a prompt to its variations', async () => {
    const user = newUser();
    const original = await generate(request(user));
    const variation = await generate(request(user, { kind: 'vary-subtle', parent: { generationId: original.generationId, imageIndex: 2 } }));
    const reroll = await generate(request(user, { kind: 'reroll', parent: { generationId: original.generationId, imageIndex: 0 } }));
    const upscale = await generate(request(user, { kind: 'upscale', parent: { generationId: variation.generationId, imageIndex: 1 } }));

    const ancestors = await ancestorGenerations(database.prisma, upscale.generationId);
    expect(ancestors.map((record) => record.request.generationId)).toEqual([variation.generationId, original.generationId]);
    expect(ancestors[0].request.parent).toEqual({ generationId: original.generationId, imageIndex: 2 });
    const children = await childGenerations(database.prisma, original.generationId);
    expect(children.map((record) => record.request.generationId)).toEqual([variation.generationId, reroll.generationId]);
    expect(await ancestorGenerations(database.prisma, original.generationId)).toEqual([]);
  });

  it('keeps the lineage of edits: what was done to which picture, the masks drawn and made, and the pictures of a blend', async () => {
    const user = newUser();
    const picture = await generate(request(user));
    const parent = { generationId: picture.generationId, imageIndex: 0 };
    const edit = (kind: 'vary-region' | 'zoom-out' | 'pan' | 'blend', params: Partial<GenerationRequest['params']>, extra: Partial<GenerationRequest> = {}) =>
      request(user, { kind, parent, params: { ...request(user).params, ...params }, ...extra });
    const edits = [
      edit('vary-region', { region: '0,0,32,16', maskBlur: 6, prompt: 'a green hat' }),
      edit('vary-region', {}, { maskKey: 'generations/drawn/drawn-mask.png' }),
      edit('zoom-out', { zoomOut: 1.5 }),
      edit('pan', { pan: 'left' }),
    ];
    const other = await generate(request(user));
    edits.push(edit('blend', { strength: 0.8 }, { blendParents: [parent, { generationId: other.generationId, imageIndex: 0 }] }));

    for (const input of edits) {
      await history.recordQueued(input);
      await history.markSucceeded({ generationId: input.generationId, imageKeys: [`${input.generationId}/0.png`], seeds: [1], timingsMs: {}, maskKey: `generations/${input.generationId}/mask.png` });
      const record = await findGeneration(database.prisma, input.generationId);
      expect(record?.request).toEqual(input);
      expect(record?.result?.maskKey).toBe(`generations/${input.generationId}/mask.png`);
    }
    expect((await childGenerations(database.prisma, picture.generationId)).map((record) => record.request.kind)).toEqual(['vary-region', 'vary-region', 'zoom-out', 'pan', 'blend']);
  });

  it("erases a user's generations, images and previews, keeps their ledger rows and balance, and leaves other users alone", async () => {
    const user = newUser();
    const other = newUser();
    const ledger = new PrismaQuotaLedger(database.prisma, {
      defaultPolicy: { unitsPerPeriod: null, period: 'day', maxPixels: 1 << 20, maxSteps: 50, maxBatch: 4, allowedModels: [], fastAllowed: true, relaxAllowed: true },
    });
    const mine = request(user);
    await ledger.reserve(mine, 3);
    await generate(mine, [1, 2]);
    await ledger.commit(mine.generationId);
    await images.put(`previews/${mine.generationId}/3.webp`, Buffer.from('preview'), 'image/webp', { ttlSeconds: 3600 });
    const theirs = await generate(request(other, { parent: { generationId: mine.generationId, imageIndex: 0 }, kind: 'upscale' }));

    expect(await eraseUser(database.prisma, images, mine.requester)).toEqual({ generations: 1, images: 2 });

    expect(await findGeneration(database.prisma, mine.generationId)).toBeNull();
    expect(await images.get(`${mine.generationId}/0.png`)).toBeNull();
    expect(await images.get(`previews/${mine.generationId}/3.webp`)).toBeNull();
    expect(await recentGenerations(database.prisma, mine.requester, 10)).toEqual([]);
    const ledgerRows = await database.prisma.usageLedger.findMany({ where: { generationId: mine.generationId } });
    const userRow = await database.prisma.user.findUniqueOrThrow({ where: { platform_platformUserId: { platform: 'discord', platformUserId: mine.requester.userId } } });
    expect(ledgerRows.map((row) => [row.kind, row.units, row.userId])).toEqual([
      ['reserve', 3, userRow.id],
      ['commit', 3, userRow.id],
    ]);
    expect((await ledger.standing(mine.requester)).usedUnits).toBe(3);
    const survivor = await findGeneration(database.prisma, theirs.generationId);
    expect(survivor?.request.parent).toBeUndefined();
    expect(await images.get(`${theirs.generationId}/0.png`)).not.toBeNull();
    expect(await eraseUser(database.prisma, images, mine.requester)).toEqual({ generations: 0, images: 0 });
  });
});
