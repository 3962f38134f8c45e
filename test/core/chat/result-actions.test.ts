import { describe, expect, it } from 'vitest';
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
} from '../../../src/core/chat/result-actions.js';
import { RecordingImagineService, TEST_CHAT_CONFIG } from '../../support/recording-imagine-service.js';

const owner: Requester = { platform: 'discord', workspaceId: 'g1', userId: 'u-owner', isAdmin: false };
const stranger: Requester = { ...owner, userId: 'u-stranger' };
const generationId = 'gen_0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab';

async function serviceWithResult(batch: number) {
  const service = new RecordingImagineService();
  await service.submit({
    generationId,
    kind: 'imagine',
    params: { prompt: 'fox', negativePrompt: '', width: 512, height: 512, steps: 30, guidance: 7, sampler: 'euler-a', seed: 100, batch, model: 'emoji-tiny' },
    requester: owner,
    mode: 'relax',
    replyTarget: '{}',
  });
  service.finish(generationId, Array.from({ length: batch }, (_, k) => `img-${k}`), batch > 1 ? 'grid' : undefined);
  return service;
}

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

describe('planResultAction', () => {
  it('upscales image k of the parent with its own seed, charged to whoever clicked', async () => {
    const service = await serviceWithResult(4);
    const plan = await planResultAction({ action: 'upscale', generationId, imageIndex: 2 }, stranger, service, TEST_CHAT_CONFIG);
    expect(plan.type).toBe('generate');
    if (plan.type !== 'generate') return;
    expect(plan.draft).toMatchObject({ kind: 'upscale', requester: stranger, mode: 'relax', parent: { generationId, imageIndex: 2 } });
    expect(plan.draft.params).toMatchObject({ batch: 1, seed: 102, prompt: 'fox' });
    expect(plan.draft.generationId).not.toBe(generationId);
  });

  it('rerolls with a new seed', async () => {
    const service = await serviceWithResult(4);
    const plan = await planResultAction({ action: 'reroll', generationId, imageIndex: 0 }, owner, service, TEST_CHAT_CONFIG, () => 555);
    expect(plan.type === 'generate' && plan.draft.params.seed).toBe(555);
    expect(plan.type === 'generate' && plan.draft.params.batch).toBe(4);
  });

  it('refuses an image index past the batch', async () => {
    const service = await serviceWithResult(1);
    await expect(planResultAction({ action: 'vary-subtle', generationId, imageIndex: 1 }, owner, service, TEST_CHAT_CONFIG)).rejects.toThrow(/no image 2/);
  });

  it('lets the requester delete, and refuses a stranger', async () => {
    const service = await serviceWithResult(1);
    expect((await planResultAction({ action: 'delete', generationId, imageIndex: 0 }, owner, service, TEST_CHAT_CONFIG)).type).toBe('delete');
    const refused = await planResultAction({ action: 'delete', generationId, imageIndex: 0 }, stranger, service, TEST_CHAT_CONFIG).catch((error) => error);
    expect(isImagineError(refused) && refused.kind).toBe('forbidden');
  });

  it('lets an admin delete anyone’s result', async () => {
    const service = await serviceWithResult(1);
    const plan = await planResultAction({ action: 'delete', generationId, imageIndex: 0 }, { ...stranger, isAdmin: true }, service, TEST_CHAT_CONFIG);
    expect(plan.type).toBe('delete');
  });

  it('says the image is gone when the generation was forgotten', async () => {
    const service = new RecordingImagineService();
    const error = await planResultAction({ action: 'dm', generationId, imageIndex: 0 }, owner, service, TEST_CHAT_CONFIG).catch((caught) => caught);
    expect(isImagineError(error) && error.kind).toBe('not_found');
  });

  it('varies an upscale as the picture it came from, enlarged again, rerolls it at the model\'s size, and offers no upscale past the largest side', async () => {
    const service = await serviceWithResult(4);
    const plan = await planResultAction({ action: 'upscale', generationId, imageIndex: 2 }, owner, service, TEST_CHAT_CONFIG);
    if (plan.type !== 'generate') throw new Error('expected a generation');
    await service.submit({ ...plan.draft, replyTarget: '{}' });
    service.finish(plan.draft.generationId, ['up']);
    // 512×512 made 2048×2048; another 4× would be 8192 a side.
    expect(canUpscale(plan.draft)).toBe(false);
    expect(resultButtonRows(plan.draft.generationId, 1, 'upscale', false)[0].map((button) => button.label)).toEqual(['Vary (subtle)', 'Vary (strong)']);

    for (const action of ['vary-subtle', 'vary-strong', 'reroll'] as const) {
      const again = await planResultAction({ action, generationId: plan.draft.generationId, imageIndex: 0 }, owner, service, TEST_CHAT_CONFIG, () => 7);
      if (again.type !== 'generate') throw new Error('expected a generation');
      expect(again.draft).toMatchObject({ kind: action, parent: { generationId, imageIndex: 2 }, params: { width: 512, height: 512, batch: 4 } });
      // A Vary is enlarged again to the upscale's size within its job; a reroll draws new pictures at the model's size.
      expect(again.draft.params.upscalePasses).toBe(action === 'reroll' ? undefined : 1);
    }
    await expect(planResultAction({ action: 'upscale', generationId: plan.draft.generationId, imageIndex: 0 }, owner, service, TEST_CHAT_CONFIG)).rejects.toThrow(
      '2048×2048 is as large as I make images',
    );
  });
});
