import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isImagineError } from '../../../src/core/errors.js';
import type { Requester } from '../../../src/core/generation.js';
import {
  actionForReaction,
  encodeActionId,
  parseActionId,
  canUpscale,
  planResultAction,
  resultButtonRows,
  resultReactions,
  type ResultAction,
} from '../../../src/core/chat/result-actions.js';
import type { GenerationRecord } from '../../../src/core/chat/service.js';
import { GENERATION_TIMEOUT_MS, startServiceStack, type ServiceStack } from '../../support/service-stack.js';
import { imagined, queuedAndCharged, upscaled } from '../../support/stack-results.js';

const generationId = 'gen_0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab';

describe('result action ids', () => {
  it('round-trips through a custom id no longer than 100 characters', () => {
    const action = { action: 'vary-strong' as const, generationId, imageIndex: 3 };
    const id = encodeActionId(action);
    expect(id.length).toBeLessThanOrEqual(100);
    expect(parseActionId(id)).toEqual(action);
  });

  it('ignores ids it did not make or that were tampered with', () => {
    expect(parseActionId('other:upscale:abcdefgh:0')).toBeNull();
    expect(parseActionId('ib1:explode:abcdefgh:0')).toBeNull();
    expect(parseActionId('ib1:upscale:abcdefgh:7')).toBeNull();
    expect(parseActionId('ib1:upscale:bad id!:0')).toBeNull();
  });

  it('offers U1–U4 and V1–V4 on a grid and single-image buttons on one image', () => {
    const labels = (batch: number) => resultButtonRows(generationId, batch).map((row) => row.map((button) => button.label));
    expect(labels(4)[0]).toEqual(['U1', 'U2', 'U3', 'U4']);
    expect(labels(4)[1]).toEqual(['V1', 'V2', 'V3', 'V4']);
    expect(labels(1)[0]).toEqual(['Upscale', 'Vary (subtle)', 'Vary (strong)']);
  });

  it('maps reactions to actions, with or without the emoji presentation selector and by Slack name', () => {
    expect(actionForReaction('🔍', generationId)).toEqual({ action: 'upscale', generationId, imageIndex: 0 });
    expect(actionForReaction('✉', generationId)?.action).toBe('dm');
    expect(actionForReaction('✉️', generationId)?.action).toBe('dm');
    expect(actionForReaction('repeat', generationId)?.action).toBe('reroll');
    expect(actionForReaction('x', generationId)?.action).toBe('delete');
    expect(actionForReaction('🎉', generationId)).toBeNull();
  });

  it('offers 🔍 and 🔀 only on a single image', () => {
    expect(resultReactions(1)).toEqual(['🔍', '🔀', '🔄', '✉️', '❌']);
    expect(resultReactions(4)).toEqual(['🔄', '✉️', '❌']);
  });
});

/**
 * What a result button plans, on results the real worker made with the tiny-sd fixture (64x64 to 128x128; its upscaler
 * enlarges 4×), and what a refusal leaves in the real queue, history and ledger.
 */
describe('planResultAction', () => {
  let stack: ServiceStack;

  beforeAll(async () => {
    stack = await startServiceStack({ name: 'core-result-actions' });
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
  });

  const person = (userId: string, isAdmin = false): Requester => ({ platform: 'discord', workspaceId: 'g1', userId, isAdmin });
  const on = (record: GenerationRecord, action: ResultAction['action'], imageIndex = 0): ResultAction => ({ action, generationId: record.request.generationId, imageIndex });
  const errorOf = (promise: Promise<unknown>) => promise.then(() => undefined, (error: unknown) => error);

  it('upscales image k of the parent with its own seed, charged to whoever clicked', async () => {
    const owner = person('u-upscale-owner');
    const clicker = person('u-upscale-clicker');
    const grid = await imagined(stack, owner, { prompt: 'fox', seed: 100, batch: 4 }, 'relax');
    expect(grid.result!.seeds).toEqual([100, 101, 102, 103]);
    const plan = await planResultAction(on(grid, 'upscale', 2), clicker, stack.service, stack.chatConfig);
    if (plan.type !== 'generate') throw new Error(`expected a generation, got ${plan.type}`);
    expect(plan.draft).toMatchObject({ kind: 'upscale', requester: clicker, mode: 'relax', parent: { generationId: grid.request.generationId, imageIndex: 2 } });
    expect(plan.draft.params).toMatchObject({ batch: 1, seed: 102, prompt: 'fox' });
    expect(plan.draft.generationId).not.toBe(grid.request.generationId);
  }, GENERATION_TIMEOUT_MS);

  it('rerolls with a new seed', async () => {
    const owner = person('u-reroll-owner');
    const grid = await imagined(stack, owner, { seed: 100, batch: 4 });
    const plan = await planResultAction(on(grid, 'reroll'), owner, stack.service, stack.chatConfig, () => 555);
    expect(plan.type === 'generate' && plan.draft.params.seed).toBe(555);
    expect(plan.type === 'generate' && plan.draft.params.batch).toBe(4);
  }, GENERATION_TIMEOUT_MS);

  it('refuses an image index past the batch, and queues and charges nothing', async () => {
    const owner = person('u-index-owner');
    const single = await imagined(stack, owner);
    const before = await queuedAndCharged(stack, owner);
    await expect(planResultAction(on(single, 'vary-subtle', 1), owner, stack.service, stack.chatConfig)).rejects.toThrow(/no image 2/);
    expect(await queuedAndCharged(stack, owner)).toEqual(before);
  }, GENERATION_TIMEOUT_MS);

  it('lets the requester delete, and refuses a stranger, who deletes, queues and is charged nothing', async () => {
    const owner = person('u-delete-owner');
    const stranger = person('u-delete-stranger');
    const single = await imagined(stack, owner);
    const [imageKey] = single.result!.imageKeys;
    const before = await queuedAndCharged(stack, stranger);

    const refused = await errorOf(planResultAction(on(single, 'delete'), stranger, stack.service, stack.chatConfig));
    expect(isImagineError(refused) && refused.kind).toBe('forbidden');
    expect((await stack.service.findGeneration(single.request.generationId))?.deletedAt).toBeUndefined();
    expect(await stack.service.readImage(imageKey)).toBeInstanceOf(Buffer);
    expect(await queuedAndCharged(stack, stranger)).toEqual(before);

    expect((await planResultAction(on(single, 'delete'), owner, stack.service, stack.chatConfig)).type).toBe('delete');
    expect((await stack.service.findGeneration(single.request.generationId))?.deletedAt).toBeInstanceOf(Date);
    await expect(stack.service.readImage(imageKey)).rejects.toThrow();
  }, GENERATION_TIMEOUT_MS);

  it('lets an admin delete anyone’s result', async () => {
    const owner = person('u-admin-delete-owner');
    const single = await imagined(stack, owner);
    const plan = await planResultAction(on(single, 'delete'), person('u-admin', true), stack.service, stack.chatConfig);
    expect(plan.type).toBe('delete');
    expect((await stack.service.findGeneration(single.request.generationId))?.deletedAt).toBeInstanceOf(Date);
  }, GENERATION_TIMEOUT_MS);

  it('says the image is gone when the generation was forgotten, and queues and charges nothing', async () => {
    const owner = person('u-gone-owner');
    const before = await queuedAndCharged(stack, owner);
    const error = await errorOf(planResultAction({ action: 'dm', generationId, imageIndex: 0 }, owner, stack.service, stack.chatConfig));
    expect(isImagineError(error) && error.kind).toBe('not_found');
    expect(await queuedAndCharged(stack, owner)).toEqual(before);
  });

  it('varies an upscale as the picture it came from, enlarged again, rerolls it at the model\'s size, and offers no upscale past the largest side', async () => {
    const owner = person('u-vary-upscale-owner');
    const grid = await imagined(stack, owner, { width: 128, height: 128, batch: 4 });
    const upscale = await upscaled(stack, owner, grid, 2);
    const twice = await upscaled(stack, owner, upscale);
    // 128×128 made 512×512, then 2048×2048; another 4× would be 8192 a side.
    expect(await sharp(await stack.service.readImage(twice.result!.imageKeys[0])).metadata()).toMatchObject({ width: 2048, height: 2048 });
    expect(canUpscale(twice.request)).toBe(false);
    expect(resultButtonRows(twice.request.generationId, 1, 'upscale', false)[0].map((button) => button.label)).toEqual(['Vary (subtle)', 'Vary (strong)']);

    for (const action of ['vary-subtle', 'vary-strong', 'reroll'] as const) {
      const again = await planResultAction(on(twice, action), owner, stack.service, stack.chatConfig, () => 7);
      if (again.type !== 'generate') throw new Error('expected a generation');
      expect(again.draft).toMatchObject({ kind: action, parent: { generationId: grid.request.generationId, imageIndex: 2 }, params: { width: 128, height: 128, batch: 4 } });
      // A Vary is enlarged again to the upscale's size within its job, once per upscale; a reroll draws new pictures at the model's size.
      expect(again.draft.params.upscalePasses).toBe(action === 'reroll' ? undefined : 2);
    }
    const before = await queuedAndCharged(stack, owner);
    await expect(planResultAction(on(twice, 'upscale'), owner, stack.service, stack.chatConfig)).rejects.toThrow('2048×2048 is as large as I make images');
    expect(await queuedAndCharged(stack, owner)).toEqual(before);
  }, 2 * GENERATION_TIMEOUT_MS);
});
