import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModelFolder, type ModelFolder } from '../../src/engine/model-folder.js';
import { generate, type GenerateOptions } from '../../src/engine/pipeline.js';

const TINY_SD = 'test/fixtures/models/tiny-sd';
const fox: GenerateOptions = { prompt: 'a red fox in the snow', negativePrompt: 'blurry', seed: 42, steps: 3, width: 64, height: 64 };
const maxDifference = (a: Uint8Array, b: Uint8Array) => a.reduce((max, value, i) => Math.max(max, Math.abs(value - b[i])), 0);

let oneSession: ModelFolder;
let twoLanes: ModelFolder;

beforeAll(async () => {
  [oneSession, twoLanes] = await Promise.all([
    loadModelFolder(TINY_SD, { intraOpNumThreads: 2, unetLanes: 1 }),
    loadModelFolder(TINY_SD, { intraOpNumThreads: 2, unetLanes: 2 }),
  ]);
});

afterAll(async () => {
  await Promise.all([oneSession?.release(), twoLanes?.release()]);
});

describe('UNet lanes', () => {
  it('splits each step over a second UNet session on its own thread', () => {
    expect(oneSession.unet.lanes).toHaveLength(0);
    expect(twoLanes.unet.lanes).toHaveLength(1);
  });

  it.each([
    ['a guided batch of three (six UNet inputs, three per lane)', { batch: 3, guidance: 6 }],
    ['an unguided batch of three (three UNet inputs, two and one)', { batch: 3, guidance: 1 }],
    ['a single unguided picture (one UNet input, one lane busy)', { batch: 1, guidance: 1 }],
  ])('makes the same pictures as one session for %s', async (_, settings) => {
    const [alone, split] = [await generate(oneSession, { ...fox, ...settings }), await generate(twoLanes, { ...fox, ...settings })];
    expect(split.images).toHaveLength(settings.batch);
    // Parts of a batch and the whole batch may round differently in the last float bits; pixels agree within one level.
    split.images.forEach((image, k) => expect(maxDifference(image.data, alone.images[k].data)).toBeLessThanOrEqual(1));
  });

  it('opens a second lane by default for a small UNet given two threads, and none given one', async () => {
    const [two, one] = await Promise.all([loadModelFolder(TINY_SD, { intraOpNumThreads: 2 }), loadModelFolder(TINY_SD, { intraOpNumThreads: 1 })]);
    try {
      expect(two.unet.lanes).toHaveLength(1);
      expect(one.unet.lanes).toHaveLength(0);
    } finally {
      await Promise.all([two.release(), one.release()]);
    }
  });

  it('refuses more lanes than threads, saying what to set', async () => {
    await expect(loadModelFolder(TINY_SD, { intraOpNumThreads: 2, unetLanes: 3 })).rejects.toMatchObject({
      kind: 'invalid_input',
      userMessage: expect.stringContaining('set intraOpNumThreads to 3 or more'),
    });
  });

  it('refuses lanes on a GPU provider, saying to set them to 1', async () => {
    await expect(loadModelFolder(TINY_SD, { executionProviders: ['cuda'], intraOpNumThreads: 2, unetLanes: 2 })).rejects.toMatchObject({
      kind: 'invalid_input',
      userMessage: expect.stringContaining('cpu provider only (set it to 1 for cuda)'),
    });
  });
});
