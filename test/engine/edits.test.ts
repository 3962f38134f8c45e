import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resultToPngs } from '../../src/engine/actions.js';
import { planPan } from '../../src/engine/edit-sizes.js';
import { blendPictures, pan, varyRegion, zoomOut, type EditOptions } from '../../src/engine/edits.js';
import { loadImageFile } from '../../src/engine/images.js';
import { maskFromImage, regionMask } from '../../src/engine/masks.js';
import { parseRegion } from '../../src/engine/regions.js';
import { loadModelFolder, type ModelFolder } from '../../src/engine/model-folder.js';
import { panCanvas, zoomOutCanvas } from '../../src/engine/outpaint.js';
import { parseParameters } from '../../src/engine/parameters.js';
import { generate } from '../../src/engine/pipeline.js';
import { vaeRoundTrip } from '../../src/engine/pipelines/stages.js';
import { readTextChunks } from '../../src/engine/png-text.js';
import { complement, difference, untouchedPixels } from '../support/kept-region.js';

let tinySd: ModelFolder;
let defaultModel: ModelFolder;
let tinyPicture: Buffer;
let defaultPicture: Buffer;
const seed: EditOptions = { seed: 7 };

const pictureOf = async (model: ModelFolder) => (await resultToPngs(await generate(model, { prompt: 'a red fox in the snow', seed: 42 }))).images[0];
const solidPng = (width: number, height: number, background: string) => sharp({ create: { width, height, channels: 3, background } }).png().toBuffer();

beforeAll(async () => {
  [tinySd, defaultModel] = await Promise.all(['test/fixtures/models/tiny-sd', 'models/default'].map((dir) => loadModelFolder(dir, { intraOpNumThreads: 1 })));
  [tinyPicture, defaultPicture] = await Promise.all([pictureOf(tinySd), pictureOf(defaultModel)]);
});
afterAll(async () => {
  await Promise.all([tinySd, defaultModel].map((model) => model?.release()));
});

describe('Vary (Region)', () => {
  it('repaints what a mask image marks, with the picture’s own prompt and settings unless told otherwise', async () => {
    const mask = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#000' } })
      .composite([{ input: await solidPng(32, 64, '#fff'), left: 32, top: 0 }])
      .png()
      .toBuffer();
    const result = await varyRegion(tinySd, tinyPicture, { maskImage: mask }, seed);
    expect(result.parameters[0]).toMatchObject({ prompt: 'a red fox in the snow', steps: 4, width: 64, height: 64, edit: 'vary region mask' });
    expect(result.edit.mask).toBeDefined();
    const stored = await maskFromImage(result.edit.mask!, { width: 64, height: 64 });
    expect(Array.from(stored.data)).toEqual(Array.from(regionMask(parseRegion('right'), { width: 64, height: 64 }).data));
  });

  it('takes a new prompt and a rectangle in the picture’s pixels', async () => {
    const result = await varyRegion(tinySd, tinyPicture, { region: '8,8,16,24' }, { ...seed, prompt: 'a blue bird' });
    expect(result.parameters[0]).toMatchObject({ prompt: 'a blue bird', edit: 'vary region 8,8,16,24' });
  });

  it('works on a 4× upscale at the size the model makes, reading the mask at the upscale’s size', async () => {
    const big = await sharp(defaultPicture).resize(256, 256).png().toBuffer();
    const mask = await sharp({ create: { width: 256, height: 256, channels: 3, background: '#000' } })
      .composite([{ input: await solidPng(128, 256, '#fff'), left: 0, top: 0 }])
      .png()
      .toBuffer();
    const result = await varyRegion(defaultModel, big, { maskImage: mask }, { ...seed, prompt: 'a red fox' });
    expect(result.images[0]).toMatchObject({ width: 64, height: 64 });
    expect(result.edit.parents[0]).toMatchObject({ width: 256, height: 256 });
  });
});

describe('Zoom Out', () => {
  it.each([2, 1.5])('keeps the shrunk picture within the VAE’s measured round-trip error (×%s, default model)', async (factor) => {
    const { rgb } = await loadImageFile(defaultPicture, { width: 64, height: 64 });
    const canvas = await zoomOutCanvas(rgb, factor);
    const result = (await zoomOut(defaultModel, defaultPicture, factor, seed)).images[0];
    const kept = untouchedPixels(canvas.mask, 4);
    const roundTripError = difference(await vaeRoundTrip(defaultModel, canvas.image), canvas.image, kept).mean;
    expect(result).toMatchObject({ width: 64, height: 64 });
    expect(difference(result, canvas.image, kept).mean).toBeLessThanOrEqual(roundTripError + 1);
  });

  it('paints the border from the seed (tiny-sd)', async () => {
    const a = (await zoomOut(tinySd, tinyPicture, 2, { seed: 1 })).images[0];
    const b = (await zoomOut(tinySd, tinyPicture, 2, { seed: 2 })).images[0];
    const { rgb } = await loadImageFile(tinyPicture, { width: 64, height: 64 });
    const kept = untouchedPixels((await zoomOutCanvas(rgb, 2)).mask, 4);
    expect(difference(a, b, complement(kept)).mean).toBeGreaterThan(2 * difference(a, b, kept).mean);
  });
});

describe('Pan', () => {
  it('shifts the view of a one-size model and keeps the half that stays within the round-trip error (default model)', async () => {
    const { rgb } = await loadImageFile(defaultPicture, { width: 64, height: 64 });
    const plan = planPan(defaultModel.description, { width: 64, height: 64 }, 'right');
    expect(plan.mode).toBe('shift');
    const canvas = await panCanvas(rgb, 'right', plan);
    const result = (await pan(defaultModel, defaultPicture, 'right', seed)).images[0];
    const kept = untouchedPixels(canvas.mask, 4);
    const roundTripError = difference(await vaeRoundTrip(defaultModel, canvas.image), canvas.image, kept).mean;
    expect(difference(result, canvas.image, kept).mean).toBeLessThanOrEqual(roundTripError + 1);
  });

  it('paints the new strip from the seed and keeps the picture (tiny-sd)', async () => {
    const a = (await pan(tinySd, tinyPicture, 'up', { seed: 1 })).images[0];
    const b = (await pan(tinySd, tinyPicture, 'up', { seed: 2 })).images[0];
    const { rgb } = await loadImageFile(tinyPicture, { width: 64, height: 64 });
    const kept = untouchedPixels((await panCanvas(rgb, 'up', planPan(tinySd.description, { width: 64, height: 64 }, 'up'))).mask, 4);
    expect(difference(a, b, complement(kept)).mean).toBeGreaterThan(2 * difference(a, b, kept).mean);
  });

  it('grows the canvas by half on that side to the model’s next listed size', async () => {
    const result = await pan(tinySd, tinyPicture, 'up', seed);
    expect(result.images[0]).toMatchObject({ width: 64, height: 128 });
    expect(result.parameters[0]).toMatchObject({ width: 64, height: 128, edit: 'pan up' });
  });
});

describe('lineage', () => {
  it('says what was done to which picture, with the mask and A1111’s inpainting fields in the PNG', async () => {
    const result = await zoomOut(tinySd, tinyPicture, 2, { ...seed, maskBlurPx: 2 });
    expect(result.edit).toMatchObject({
      kind: 'zoom-out',
      description: 'zoom out 2',
      maskBlurPx: 2,
      denoisingStrength: 1,
      parents: [{ width: 64, height: 64, sha256: createHash('sha256').update(tinyPicture).digest('hex'), parameters: { prompt: 'a red fox in the snow', seed: 42 } }],
    });
    expect(await sharp(result.edit.mask!).metadata()).toMatchObject({ width: 64, height: 64 });
    const [png] = (await resultToPngs(result)).images;
    expect(parseParameters(readTextChunks(png).parameters)).toMatchObject({ seed: 7, denoisingStrength: 1, maskBlur: 2, inpaintArea: 'Whole picture', edit: 'zoom out 2' });
  });
});

describe('/blend', () => {
  it('blends two pictures at the first one’s size, with their prompts unless given one', async () => {
    const other = (await resultToPngs(await generate(tinySd, { prompt: 'a green frog', seed: 3 }))).images[0];
    const result = await blendPictures(tinySd, [tinyPicture, other], seed);
    expect(result.images[0]).toMatchObject({ width: 64, height: 64 });
    expect(result.parameters[0]).toMatchObject({ prompt: 'a red fox in the snow, a green frog', denoisingStrength: 0.8, edit: 'blend 2' });
    expect(result.edit).toMatchObject({ kind: 'blend', parents: [{ parameters: { seed: 42 } }, { parameters: { seed: 3 } }] });
    expect(result.edit.mask).toBeUndefined();
  });

  it('blends four', async () => {
    const result = await blendPictures(tinySd, [tinyPicture, tinyPicture, tinyPicture, tinyPicture], { ...seed, prompt: 'a fox' });
    expect(result.edit.parents).toHaveLength(4);
  });
});

describe('bad input is refused with what to change', () => {
  it.each([
    ['a mask that is not an image', () => varyRegion(tinySd, tinyPicture, { maskImage: Buffer.from('hello') }, seed), /mask is not an image/],
    ['a mask of another aspect ratio', async () => varyRegion(tinySd, tinyPicture, { maskImage: await solidPng(64, 32, '#fff') }, seed), /mask is 64x32 but the picture is 64x64/],
    ['an empty mask', async () => varyRegion(tinySd, tinyPicture, { maskImage: await solidPng(64, 64, '#000') }, seed), /empty/],
    ['a full mask', async () => varyRegion(tinySd, tinyPicture, { maskImage: await solidPng(64, 64, '#fff') }, seed), /use Vary/],
    ['a region outside the picture', () => varyRegion(tinySd, tinyPicture, { region: '40,0,32,32' }, seed), /reaches outside the 64x64 picture/],
    ['a zoom below 1.1', () => zoomOut(tinySd, tinyPicture, 1, seed), /from 1.1 to 2/],
    ['a zoom above 2', () => zoomOut(tinySd, tinyPicture, 4, seed), /from 1.1 to 2/],
    ['a pan past the model’s largest size', async () => pan(tinySd, await wide(), 'right', seed), /already 128 px wide/],
    ['a blend of one picture', () => blendPictures(tinySd, [tinyPicture], seed), /2 to 4 pictures/],
    ['a blend of five', () => blendPictures(tinySd, Array(5).fill(tinyPicture), seed), /2 to 4 pictures/],
    ['a picture that is not an image', () => zoomOut(tinySd, Buffer.from('nope'), 2, seed), /not an image/],
    ['a picture without a prompt and none given', async () => zoomOut(tinySd, await solidPng(64, 64, '#888'), 2, seed), /carries no prompt/],
  ])('refuses %s', async (_label, edit, message) => {
    await expect(edit()).rejects.toMatchObject({ kind: 'invalid_input', userMessage: expect.stringMatching(message) });
  });
});

/** A 128x64 picture: as wide as tiny-sd makes at height 64. */
async function wide(): Promise<Buffer> {
  return (await resultToPngs(await generate(tinySd, { prompt: 'a red fox', seed: 1, width: 128, height: 64 }))).images[0];
}
