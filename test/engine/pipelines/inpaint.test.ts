import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resultToPngs } from '../../../src/engine/actions.js';
import { loadImageFile } from '../../../src/engine/images.js';
import { binarize, regionMask, type Mask } from '../../../src/engine/masks.js';
import { parseRegion } from '../../../src/engine/regions.js';
import { loadModelFolder, type ModelFolder } from '../../../src/engine/model-folder.js';
import { parseParameters } from '../../../src/engine/parameters.js';
import { generate } from '../../../src/engine/pipeline.js';
import { inpaint, type InpaintOptions } from '../../../src/engine/pipelines/inpaint.js';
import { vaeRoundTrip } from '../../../src/engine/pipelines/stages.js';
import { readTextChunks } from '../../../src/engine/png-text.js';
import type { RgbImage } from '../../../src/engine/types.js';
import { complement, difference, untouchedCells, untouchedPixels } from '../../support/kept-region.js';

let tinySd: ModelFolder;
let tinyInpaint: ModelFolder;
let defaultModel: ModelFolder;

beforeAll(async () => {
  [tinySd, tinyInpaint, defaultModel] = await Promise.all(
    ['test/fixtures/models/tiny-sd', 'test/fixtures/models/tiny-sd-inpaint', 'models/default'].map((dir) => loadModelFolder(dir, { intraOpNumThreads: 1 })),
  );
});
afterAll(async () => {
  await Promise.all([tinySd, tinyInpaint, defaultModel].map((model) => model?.release()));
});

const size = { width: 64, height: 64 };
const left = regionMask(parseRegion('left'), size);

/** A picture the model made itself, as pixels and as the pipeline's input tensor. */
async function pictureOf(model: ModelFolder, seed = 42): Promise<{ rgb: RgbImage; image: Float32Array }> {
  const png = (await resultToPngs(await generate(model, { prompt: 'a red fox in the snow', seed, ...size }))).images[0];
  const { rgb, tensor } = await loadImageFile(png, size);
  return { rgb, image: tensor };
}

const repaint = (model: ModelFolder, image: Float32Array, mask: Mask, change: Partial<InpaintOptions> = {}) =>
  inpaint(model, { prompt: 'a red fox in the snow', seed: 7, ...size, image, mask, ...change });

describe('with a 9-channel inpainting UNet', () => {
  it('is recognised from the UNet’s input: latents, mask and masked-picture latents', () => {
    expect(tinyInpaint.unet).toMatchObject({ inChannels: 9, inpainting: true });
    expect(tinyInpaint.description).toMatchObject({ family: 'stable-diffusion-inpaint', inpaintingUnet: true });
    expect(tinySd.unet).toMatchObject({ inChannels: 4, inpainting: false });
  });

  it('gives the kept region back as the VAE round trip does — the original within its measured error — and repaints the rest', async () => {
    const { rgb, image } = await pictureOf(tinyInpaint);
    const result = (await repaint(tinyInpaint, image, left)).images[0];
    const roundTrip = await vaeRoundTrip(tinyInpaint, rgb);
    const kept = untouchedCells(left, 4, tinyInpaint.description.vaeScaleFactor);
    const roundTripError = difference(roundTrip, rgb, kept);
    expect(difference(result, roundTrip, kept).max).toBeLessThanOrEqual(1);
    expect(difference(result, rgb, kept).mean).toBeLessThanOrEqual(roundTripError.mean + 0.01);
    const masked = Array.from(binarize(left).data, (value) => value === 1);
    expect(difference(result, roundTrip, masked).mean).toBeGreaterThan(2 * difference(roundTrip, rgb, masked).mean);
  });

  it('paints from the masked picture: changing only the kept part of the picture changes what is painted', async () => {
    const { image } = await pictureOf(tinyInpaint, 42);
    const other = (await pictureOf(tinyInpaint, 43)).image;
    // The same left half, another right half: what the UNet reads as the masked picture differs, nothing else does.
    const plane = 64 * 64;
    const mixed = image.map((value, i) => ((i % plane) % 64 < 32 ? value : other[i]));
    const a = (await repaint(tinyInpaint, image, left)).images[0];
    const b = (await repaint(tinyInpaint, mixed, left)).images[0];
    const masked = Array.from(binarize(left).data, (value) => value === 1);
    expect(difference(a, b, masked).mean).toBeGreaterThan(1);
  });

  it('makes whole pictures too, with everything masked', async () => {
    const result = await generate(tinyInpaint, { prompt: 'a red fox', seed: 1, ...size });
    expect(result.images[0]).toMatchObject(size);
  });
});

describe('with any other UNet: masked latent blending', () => {
  it('keeps the region within the VAE’s measured round-trip error on the default model', async () => {
    const { rgb, image } = await pictureOf(defaultModel);
    const result = (await repaint(defaultModel, image, left, { prompt: 'a green apple' })).images[0];
    const kept = untouchedPixels(left, 4);
    const roundTripError = difference(await vaeRoundTrip(defaultModel, rgb), rgb, kept).mean;
    // The decoder's receptive field spans most of a 64-px picture, so the painted half's latents move the kept half's
    // pixels a little even though its latents are the picture's own: measured 1.0 level above the round trip with the
    // scene-trained VAE. A broken blend is tens of levels off.
    expect(difference(result, rgb, kept).mean).toBeLessThanOrEqual(roundTripError + 1.5);
  });

  it('paints the masked region from the seed and keeps the rest', async () => {
    const { image } = await pictureOf(tinySd);
    const a = (await repaint(tinySd, image, left, { seed: 7 })).images[0];
    const b = (await repaint(tinySd, image, left, { seed: 8 })).images[0];
    const kept = untouchedPixels(left, 4);
    expect(difference(a, b, complement(kept)).mean).toBeGreaterThan(4 * difference(a, b, kept).mean);
  });

  it('starts from the picture at a strength below 1 and runs only that share of the steps', async () => {
    const { image } = await pictureOf(tinySd);
    const steps: number[] = [];
    const result = await repaint(tinySd, image, left, { steps: 10, strength: 0.5, onStep: (event) => steps.push(event.step) });
    expect(steps).toHaveLength(5);
    expect(result.parameters[0].denoisingStrength).toBe(0.5);
  });

  it('writes Mask blur, Inpaint area and Denoising strength into the PNG parameters', async () => {
    const { image } = await pictureOf(tinySd);
    const [png] = (await resultToPngs(await repaint(tinySd, image, left, { maskBlurPx: 6 }))).images;
    expect(readTextChunks(png).parameters).toMatch(/Denoising strength: 1, Mask blur: 6, Inpaint area: Whole picture/);
    expect(parseParameters(readTextChunks(png).parameters)).toMatchObject({ denoisingStrength: 1, maskBlur: 6, inpaintArea: 'Whole picture' });
  });

  it('makes a batch whose images share the kept region', async () => {
    const { image } = await pictureOf(tinyInpaint);
    const { images, seeds } = await repaint(tinyInpaint, image, left, { batch: 2 });
    expect(seeds).toEqual([7, 8]);
    expect(difference(images[0], images[1], untouchedCells(left, 4, 8)).max).toBeLessThanOrEqual(1);
  });
});

describe('bad masks are refused with what to change', () => {
  const cases: [string, Mask, RegExp][] = [
    ['a mask of another size than the picture', regionMask(parseRegion('left'), { width: 32, height: 32 }), /must be 64x64.*it is 32x32/],
    ['an empty mask', { ...size, data: new Float32Array(64 * 64) }, /empty/],
    ['a full mask', { ...size, data: new Float32Array(64 * 64).fill(1) }, /use Vary/],
  ];
  it.each(cases)('refuses %s', async (_label, mask, message) => {
    const image = new Float32Array(3 * 64 * 64);
    await expect(repaint(tinySd, image, mask)).rejects.toMatchObject({ kind: 'invalid_input', userMessage: expect.stringMatching(message) });
  });
});
