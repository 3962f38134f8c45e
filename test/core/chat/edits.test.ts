import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { encodeActionId, planRegionEdit, planResultAction, resultButtonRows, type ResultAction } from '../../../src/core/chat/result-actions.js';
import { isImagineError } from '../../../src/core/errors.js';
import type { GenerationKind, Requester } from '../../../src/core/generation.js';
import { generationCost } from '../../../src/core/quota.js';
import { maskDrawing as drawing } from '../../support/mask-drawing.js';
import { RecordingImagineService, TEST_CHAT_CONFIG } from '../../support/recording-imagine-service.js';

const owner: Requester = { platform: 'web', workspaceId: 'local', userId: 'web-owner', isAdmin: false };
const stranger: Requester = { ...owner, userId: 'web-stranger' };
const generationId = 'gen_edits_0123456789abcdef';

/** A finished single picture of `kind` made by pixel-32 (32x32; largest side 64), e.g. an upscale of a 32x32 image. */
async function serviceWith(kind: GenerationKind, size = 32) {
  const service = new RecordingImagineService();
  await service.submit({
    generationId,
    kind,
    params: { prompt: 'a red fox', negativePrompt: 'blur', width: size, height: size, steps: 20, guidance: 5, sampler: 'ddim', seed: 7, batch: 1, model: 'pixel-32', strength: 0.3 },
    requester: owner,
    mode: 'fast',
    replyTarget: '{}',
  });
  service.finish(generationId, ['img-0']);
  return service;
}

const action = (name: ResultAction['action']): ResultAction => ({ action: name, generationId, imageIndex: 0 });
const formId = encodeActionId(action('vary-region'));
const errorOf = (promise: Promise<unknown>) => promise.then(() => undefined, (error: unknown) => error);

describe('edit buttons', () => {
  it('offers Vary (Region), Zoom Out 2× and 1.5× and the four pans on an upscaled result and on edits, not on other results', () => {
    const labels = (kind: GenerationKind, batch = 1) => resultButtonRows(generationId, batch, kind).map((row) => row.map((button) => `${button.emoji ?? ''}${button.label}`));
    expect(labels('upscale')).toEqual([
      ['🔍Upscale', '🔀Vary (subtle)', 'Vary (strong)'],
      ['🖌️Vary (Region)', '🔍Zoom Out 2×', 'Zoom Out 1.5×'],
      ['⬅️Pan left', '➡️Pan right', '⬆️Pan up', '⬇️Pan down'],
      ['🔄Reroll', '✉️DM me the parameters', '❌Delete'],
    ]);
    expect(labels('zoom-out')[1][0]).toBe('🖌️Vary (Region)');
    expect(labels('imagine')).toHaveLength(2);
    expect(labels('upscale', 4).flat()).not.toContain('🖌️Vary (Region)');
  });
});

describe('Zoom Out and Pan from the chat', () => {
  it('zooms out an upscale at the size the model edits it at, as a new one-image generation of its own, priced like an imagine of that size', async () => {
    const service = await serviceWith('upscale');
    const plan = await planResultAction(action('zoom-out-2'), stranger, service, TEST_CHAT_CONFIG, () => 99);
    if (plan.type !== 'generate') throw new Error(`expected a generation, got ${plan.type}`);
    // The upscale shows a 128x128 picture; pixel-32 edits at most 64 px a side.
    expect(plan.draft).toMatchObject({
      kind: 'zoom-out',
      requester: stranger,
      parent: { generationId, imageIndex: 0 },
      params: { prompt: 'a red fox', negativePrompt: 'blur', width: 64, height: 64, batch: 1, seed: 99, zoomOut: 2, model: 'pixel-32' },
    });
    expect(plan.draft.params.strength).toBeUndefined();
    const imagine = { kind: 'imagine' as const, params: { ...plan.draft.params, zoomOut: undefined } };
    expect(generationCost(plan.draft)).toBe(generationCost(imagine));
  });

  it('pans right by half the width, up to the model’s largest side, and says what to do instead once there', async () => {
    const plan = await planResultAction(action('pan-right'), owner, await serviceWith('zoom-out', 32), TEST_CHAT_CONFIG);
    expect(plan).toMatchObject({ type: 'generate', draft: { kind: 'pan', params: { pan: 'right', width: 48, height: 32 } } });
    const error = await errorOf(planResultAction(action('pan-left'), owner, await serviceWith('upscale'), TEST_CHAT_CONFIG));
    expect(isImagineError(error) && error.kind).toBe('invalid_input');
    expect((error as Error).message).toMatch(/already 64 px wide.*pan up or down, or zoom out instead/);
  });
});

describe('the Vary (Region) form', () => {
  it('opens for the picture’s owner with the presets, the picture’s size and its prompt; someone else is told why not', async () => {
    const service = await serviceWith('upscale');
    expect(await planResultAction(action('vary-region'), owner, service, TEST_CHAT_CONFIG)).toEqual({
      type: 'form',
      form: { formId, title: 'Vary (Region)', picture: { width: 128, height: 128, imageKey: 'img-0' }, presets: ['left', 'right', 'top', 'bottom', 'center', 'border'], prompt: 'a red fox' },
    });
    const refused = await errorOf(planResultAction(action('vary-region'), stranger, service, TEST_CHAT_CONFIG));
    expect(refused).toMatchObject({ kind: 'forbidden', userMessage: expect.stringMatching(/^Only the person who asked for this picture can vary a region of it/) });
  });

  it('plans a preset or a rectangle with an optional new prompt as a vary-region of the picture', async () => {
    const service = await serviceWith('upscale');
    const preset = await planRegionEdit(formId, { region: ' left ', prompt: '' }, owner, service, TEST_CHAT_CONFIG);
    expect(preset.draft).toMatchObject({ kind: 'vary-region', parent: { generationId }, params: { region: 'left', prompt: 'a red fox', width: 64, height: 64, batch: 1 } });
    expect(preset.maskPng).toBeUndefined();
    const rectangle = await planRegionEdit(formId, { region: '0,0,64,32', prompt: 'a blue hat' }, owner, service, TEST_CHAT_CONFIG);
    expect(rectangle.draft.params).toMatchObject({ region: '0,0,64,32', prompt: 'a blue hat' });
  });

  it('turns a painted mask into a greyscale PNG at the picture’s size, white where painted', async () => {
    const mask = drawing(128, 128, (x, y) => x >= 32 && x < 96 && y < 16);
    const plan = await planRegionEdit(formId, { mask }, owner, await serviceWith('upscale'), TEST_CHAT_CONFIG);
    expect(await sharp(plan.maskPng!).metadata()).toMatchObject({ format: 'png', width: 128, height: 128, channels: 1 });
    const data = await sharp(plan.maskPng!).extractChannel(0).raw().toBuffer();
    expect([data[5 * 128 + 40], data[5 * 128 + 20], data[20 * 128 + 40]]).toEqual([255, 0, 0]);
    expect(data.reduce((sum, value) => sum + (value === 255 ? 1 : 0), 0)).toBe(64 * 16);
  });

  it.each([
    ['nothing chosen', { region: '  ' }, /^Choose what to repaint: a preset \(left, right, top, bottom, center, border\) or a rectangle x,y,w,h in the picture's 128x128 pixels\.$/],
    ['a rectangle outside the picture', { region: '100,0,64,64' }, /reaches outside the 128x128 picture: keep x \+ w ≤ 128/],
    ['a rectangle over the whole picture', { region: '0,0,128,128' }, /covers the whole picture\. To redraw all of it, use Vary/],
    ['an empty mask', { mask: drawing(128, 128, () => false) }, /^The mask is empty, so nothing would change/],
    ['a full mask', { mask: drawing(128, 128, () => true) }, /^The mask covers the whole picture\. To redraw all of it, use Vary/],
    ['a mask of another size', { mask: drawing(64, 64, (x) => x < 8) }, /^The mask is 64x64 but the picture is 128x128/],
    ['both a region and a mask', { region: 'left', mask: drawing(128, 128, (x) => x < 8) }, /^Give either a region or a painted mask, not both\.$/],
  ])('refuses %s with what to change, and queues and stores nothing', async (_name, submission, message) => {
    const service = await serviceWith('upscale');
    const error = await errorOf(planRegionEdit(formId, submission, owner, service, TEST_CHAT_CONFIG));
    expect(isImagineError(error) && error.kind).toBe('invalid_input');
    expect((error as Error).message).toMatch(message);
    expect(service.submitted).toHaveLength(1);
  });

  it('refuses a form for someone else’s picture, or for a picture that is gone', async () => {
    const service = await serviceWith('upscale');
    expect(await errorOf(planRegionEdit(formId, { region: 'left' }, stranger, service, TEST_CHAT_CONFIG))).toMatchObject({ kind: 'forbidden' });
    service.records.delete(generationId);
    expect(await errorOf(planRegionEdit(formId, { region: 'left' }, owner, service, TEST_CHAT_CONFIG))).toMatchObject({
      kind: 'not_found',
      userMessage: 'That image is gone: it was deleted, or its owner asked to be forgotten.',
    });
  });
});
