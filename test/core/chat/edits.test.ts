import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeActionId, planRegionEdit, planResultAction, resultButtonRows, type ResultAction } from '../../../src/core/chat/result-actions.js';
import type { GenerationRecord } from '../../../src/core/chat/service.js';
import { isImagineError } from '../../../src/core/errors.js';
import type { GenerationKind, Requester } from '../../../src/core/generation.js';
import { generationCost } from '../../../src/core/quota.js';
import { maskDrawing as drawing } from '../../support/mask-drawing.js';
import { GENERATION_TIMEOUT_MS, startServiceStack, type ServiceStack } from '../../support/service-stack.js';
import { imagined, queuedAndCharged, upscaled } from '../../support/stack-results.js';

/**
 * Vary (Region), Zoom Out and Pan as the chat plans them, on pictures the real worker made with the tiny-sd fixture
 * (sizes 64x64, 128x128, 64x128 and 128x64; its upscaler enlarges 4×). The e2e edits test runs the planned edits
 * through each platform; this one pins what is planned and refused.
 */

let stack: ServiceStack;

beforeAll(async () => {
  stack = await startServiceStack({ name: 'core-edits' });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

const person = (userId: string): Requester => ({ platform: 'web', workspaceId: 'local', userId, isAdmin: false });
const action = (name: ResultAction['action'], record: GenerationRecord): ResultAction => ({ action: name, generationId: record.request.generationId, imageIndex: 0 });
const formFor = (record: GenerationRecord) => encodeActionId(action('vary-region', record));
const errorOf = (promise: Promise<unknown>) => promise.then(() => undefined, (error: unknown) => error);

/** `owner`'s 64x64 imagine, upscaled: a 256x256 picture. */
const upscaleOf64 = async (owner: Requester) => upscaled(stack, owner, await imagined(stack, owner));

describe('edit buttons', () => {
  it('offers Vary (Region), Zoom Out 2× and 1.5× and the four pans on an upscaled result and on edits, not on other results', () => {
    const generationId = 'gen_edits_0123456789abcdef';
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
    const owner = person('web-zoom-owner');
    const clicker = person('web-zoom-clicker');
    const upscale = await upscaleOf64(owner);
    expect(await sharp(await stack.service.readImage(upscale.result!.imageKeys[0])).metadata()).toMatchObject({ width: 256, height: 256 });

    const plan = await planResultAction(action('zoom-out-2', upscale), clicker, stack.service, stack.chatConfig, () => 99);
    if (plan.type !== 'generate') throw new Error(`expected a generation, got ${plan.type}`);
    // tiny-sd's largest square is 128x128, so the 256x256 upscale is zoomed out at that size.
    expect(plan.draft).toMatchObject({
      kind: 'zoom-out',
      requester: clicker,
      parent: { generationId: upscale.request.generationId, imageIndex: 0 },
      params: { prompt: 'a red fox', negativePrompt: 'blur', width: 128, height: 128, steps: 2, batch: 1, seed: 99, zoomOut: 2, model: 'tiny-sd' },
    });
    expect(plan.draft.generationId).not.toBe(upscale.request.generationId);
    expect(plan.draft.params.strength).toBeUndefined();
    const imagine = { kind: 'imagine' as const, params: { ...plan.draft.params, zoomOut: undefined } };
    expect(generationCost(plan.draft)).toBe(generationCost(imagine));
  }, GENERATION_TIMEOUT_MS);

  it('pans right to the listed width nearest half as wide again, and says what to do instead once the picture is as tall as the model makes it', async () => {
    const owner = person('web-pan-owner');
    // A 64x128 picture upscaled to 256x512 is edited at 64x128; tiny-sd makes 128x128, but nothing taller.
    const upscale = await upscaled(stack, owner, await imagined(stack, owner, { width: 64, height: 128 }));
    const plan = await planResultAction(action('pan-right', upscale), owner, stack.service, stack.chatConfig);
    expect(plan).toMatchObject({ type: 'generate', draft: { kind: 'pan', params: { pan: 'right', width: 128, height: 128 } } });

    const before = await queuedAndCharged(stack, owner);
    const error = await errorOf(planResultAction(action('pan-up', upscale), owner, stack.service, stack.chatConfig));
    expect(isImagineError(error) && error.kind).toBe('invalid_input');
    expect((error as Error).message).toMatch(/already 128 px tall.*pan left or right, or zoom out instead/);
    expect(await queuedAndCharged(stack, owner)).toEqual(before);
  }, GENERATION_TIMEOUT_MS);
});

describe('the Vary (Region) form', () => {
  it('opens for the picture’s owner with the presets, the picture’s size and its prompt; someone else is told why not', async () => {
    const owner = person('web-form-owner');
    const upscale = await upscaleOf64(owner);
    expect(await planResultAction(action('vary-region', upscale), owner, stack.service, stack.chatConfig)).toEqual({
      type: 'form',
      form: {
        formId: formFor(upscale),
        title: 'Vary (Region)',
        picture: { width: 256, height: 256, imageKey: upscale.result!.imageKeys[0] },
        presets: ['left', 'right', 'top', 'bottom', 'center', 'border'],
        prompt: 'a red fox',
      },
    });
    const refused = await errorOf(planResultAction(action('vary-region', upscale), person('web-form-stranger'), stack.service, stack.chatConfig));
    expect(refused).toMatchObject({ kind: 'forbidden', userMessage: expect.stringMatching(/^Only the person who asked for this picture can vary a region of it/) });
  }, GENERATION_TIMEOUT_MS);

  it('answers a form sent for a picture deleted after it opened with that the picture was deleted', async () => {
    const owner = person('web-form-deleted');
    const upscale = await upscaleOf64(owner);
    const form = formFor(upscale);
    await stack.service.deleteGeneration(upscale.request.generationId);
    const error = await errorOf(planRegionEdit(form, { region: 'left' }, owner, stack.service, stack.chatConfig));
    expect(error).toMatchObject({ kind: 'not_found', userMessage: 'That image was deleted.' });
  }, GENERATION_TIMEOUT_MS);

  it('plans a preset or a rectangle with an optional new prompt as a vary-region of the picture', async () => {
    const owner = person('web-region-owner');
    const upscale = await upscaleOf64(owner);
    const preset = await planRegionEdit(formFor(upscale), { region: ' left ', prompt: '' }, owner, stack.service, stack.chatConfig);
    expect(preset.draft).toMatchObject({
      kind: 'vary-region',
      parent: { generationId: upscale.request.generationId, imageIndex: 0 },
      params: { region: 'left', prompt: 'a red fox', width: 128, height: 128, batch: 1 },
    });
    expect(preset.maskPng).toBeUndefined();
    const rectangle = await planRegionEdit(formFor(upscale), { region: '0,0,128,64', prompt: 'a blue hat' }, owner, stack.service, stack.chatConfig);
    expect(rectangle.draft.params).toMatchObject({ region: '0,0,128,64', prompt: 'a blue hat' });
  }, GENERATION_TIMEOUT_MS);

  it('turns a painted mask into a greyscale PNG at the picture’s size, white where painted', async () => {
    const owner = person('web-mask-owner');
    const upscale = await upscaleOf64(owner);
    const mask = drawing(256, 256, (x, y) => x >= 64 && x < 192 && y < 32);
    const plan = await planRegionEdit(formFor(upscale), { mask }, owner, stack.service, stack.chatConfig);
    expect(await sharp(plan.maskPng!).metadata()).toMatchObject({ format: 'png', width: 256, height: 256, channels: 1 });
    const data = await sharp(plan.maskPng!).extractChannel(0).raw().toBuffer();
    expect([data[10 * 256 + 80], data[10 * 256 + 40], data[40 * 256 + 80]]).toEqual([255, 0, 0]);
    expect(data.reduce((sum, value) => sum + (value === 255 ? 1 : 0), 0)).toBe(128 * 32);
  }, GENERATION_TIMEOUT_MS);

  it.each([
    ['nothing chosen', { region: '  ' }, /^Choose what to repaint: a preset \(left, right, top, bottom, center, border\) or a rectangle x,y,w,h in the picture's 256x256 pixels\.$/],
    ['a rectangle outside the picture', { region: '200,0,64,64' }, /reaches outside the 256x256 picture: keep x \+ w ≤ 256/],
    ['a rectangle over the whole picture', { region: '0,0,256,256' }, /covers the whole picture\. To redraw all of it, use Vary/],
    ['an empty mask', { mask: drawing(256, 256, () => false) }, /^The mask is empty, so nothing would change/],
    ['a full mask', { mask: drawing(256, 256, () => true) }, /^The mask covers the whole picture\. To redraw all of it, use Vary/],
    ['a mask of another size', { mask: drawing(64, 64, (x) => x < 8) }, /^The mask is 64x64 but the picture is 256x256/],
    ['both a region and a mask', { region: 'left', mask: drawing(256, 256, (x) => x < 8) }, /^Give either a region or a painted mask, not both\.$/],
  ])('refuses %s with what to change, and queues and charges nothing', async (name, submission, message) => {
    const owner = person(`web-refused-${name.replace(/\W+/g, '-')}`);
    const upscale = await upscaleOf64(owner);
    const before = await queuedAndCharged(stack, owner);
    // The imagine and its upscale, both queued and charged: a refusal that queued or charged anything would show here.
    expect(before.generationIds).toHaveLength(2);
    expect(before.usedUnits).toBeGreaterThan(0);
    const error = await errorOf(planRegionEdit(formFor(upscale), submission, owner, stack.service, stack.chatConfig));
    expect(isImagineError(error) && error.kind).toBe('invalid_input');
    expect((error as Error).message).toMatch(message);
    expect(await queuedAndCharged(stack, owner)).toEqual(before);
  }, GENERATION_TIMEOUT_MS);
});
