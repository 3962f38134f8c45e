import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImageEngine, type ImageEngine } from '../../src/engine/image-engine.js';
import type { EngineJob } from '../../src/engine/jobs.js';
import { loadModelFolder, type ModelFolder } from '../../src/engine/model-folder.js';
import { parseParameters } from '../../src/engine/parameters.js';
import { readTextChunks } from '../../src/engine/png-text.js';

let model: ModelFolder;
let engine: ImageEngine;
let picture: Buffer;

const job = (kind: EngineJob['kind'], params: Partial<EngineJob['params']> = {}): EngineJob => ({
  kind,
  params: { prompt: 'a red fox', negativePrompt: '', width: 64, height: 64, steps: 3, guidance: 5, sampler: 'euler', seed: 9, batch: 1, ...params },
});
const parametersOf = (png: Buffer) => parseParameters(readTextChunks(png).parameters);

beforeAll(async () => {
  model = await loadModelFolder('test/fixtures/models/tiny-sd', { intraOpNumThreads: 1 });
  engine = createImageEngine(model);
  picture = (await engine.generate(job('imagine'), {})).images[0];
});
afterAll(async () => {
  await model?.release();
});

describe('edit jobs', () => {
  it('runs Vary (Region) from a region and hands back the mask to store', async () => {
    const output = await engine.generate(job('vary-region', { region: 'top', maskBlur: 2 }), { parentImage: picture });
    expect(parametersOf(output.images[0])).toMatchObject({ edit: 'vary region top', maskBlur: 2, seed: 9 });
    expect(output.edit).toMatchObject({ kind: 'vary-region', maskBlurPx: 2 });
    expect(await sharp(output.edit!.mask!).metadata()).toMatchObject({ format: 'png', width: 64, height: 64 });
  });

  it('runs Vary (Region) from a mask image', async () => {
    const mask = await sharp({ create: { width: 64, height: 64, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } })
      .composite([{ input: { create: { width: 16, height: 16, channels: 4, background: '#fff' } }, left: 8, top: 8 }])
      .png()
      .toBuffer();
    const output = await engine.generate(job('vary-region'), { parentImage: picture, maskImage: mask });
    expect(output.edit).toMatchObject({ description: 'vary region mask' });
  });

  it('runs Zoom Out, Pan and a blend of a batch', async () => {
    const zoomed = await engine.generate(job('zoom-out', { zoomOut: 1.5 }), { parentImage: picture });
    const panned = await engine.generate(job('pan', { pan: 'right' }), { parentImage: picture });
    const blended = await engine.generate(job('blend', { batch: 2 }), { blendImages: [picture, zoomed.images[0]] });
    expect(parametersOf(zoomed.images[0])).toMatchObject({ edit: 'zoom out 1.5', width: 64 });
    expect(parametersOf(panned.images[0])).toMatchObject({ edit: 'pan right', width: 128, height: 64 });
    expect(blended.images).toHaveLength(2);
    expect(blended.grid).toBeDefined();
    expect(blended.edit?.parents).toHaveLength(2);
  });

  it.each([
    ['a vary-region without mask or region', job('vary-region'), /needs a mask image or a region/],
    ['a zoom-out without a factor', job('zoom-out'), /factor from 1.1 to 2/],
    ['a pan without a direction', job('pan'), /direction: left, right, up or down/],
  ])('refuses %s', async (_label, edit, message) => {
    await expect(engine.generate(edit, { parentImage: picture })).rejects.toMatchObject({ kind: 'invalid_input', userMessage: expect.stringMatching(message) });
  });

  it('refuses an edit whose picture is gone', async () => {
    await expect(engine.generate(job('zoom-out', { zoomOut: 2 }), {})).rejects.toMatchObject({ userMessage: expect.stringMatching(/no longer available/) });
  });
});
