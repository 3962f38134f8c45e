import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resultToPngs } from '../../src/engine/actions.js';
import { loadImageFile } from '../../src/engine/images.js';
import { loadModelFolder, type ModelFolder } from '../../src/engine/model-folder.js';
import { parseParameters } from '../../src/engine/parameters.js';
import { generate, type GenerateOptions } from '../../src/engine/pipeline.js';
import { readTextChunks } from '../../src/engine/png-text.js';
import { SAMPLER_NAMES } from '../../src/engine/types.js';

let tinySd: ModelFolder;
let tinySdV2: ModelFolder;

beforeAll(async () => {
  tinySd = await loadModelFolder('test/fixtures/models/tiny-sd', { intraOpNumThreads: 1 });
  tinySdV2 = await loadModelFolder('test/fixtures/models/tiny-sd-v2', { intraOpNumThreads: 1 });
});

afterAll(async () => {
  await tinySd?.release();
  await tinySdV2?.release();
});

const fox: GenerateOptions = { prompt: 'a red fox in the snow', seed: 42, steps: 4, width: 64, height: 64 };
const maxDifference = (a: Uint8Array, b: Uint8Array) => a.reduce((max, value, i) => Math.max(max, Math.abs(value - b[i])), 0);

describe('text-to-image', () => {
  it('writes a PNG whose parameters chunk holds the prompt, the seed and the settings', async () => {
    const result = await generate(tinySd, { ...fox, negativePrompt: 'blurry', guidance: 6, sampler: 'ddim' });
    const [png] = (await resultToPngs(result)).images;
    const parameters = parseParameters(readTextChunks(png).parameters);
    expect(parameters).toMatchObject({
      prompt: 'a red fox in the snow',
      negativePrompt: 'blurry',
      seed: 42,
      steps: 4,
      guidance: 6,
      sampler: 'ddim',
      width: 64,
      height: 64,
      model: 'tiny-sd',
    });
    expect(await sharp(png).metadata()).toMatchObject({ format: 'png', width: 64, height: 64 });
  });

  it('gives byte-identical PNGs for the same seed and parameters', async () => {
    const first = (await resultToPngs(await generate(tinySd, fox))).images[0];
    const second = (await resultToPngs(await generate(tinySd, fox))).images[0];
    expect(first.equals(second)).toBe(true);
  });

  it('gives a different picture for a different seed', async () => {
    const a = await generate(tinySd, fox);
    const b = await generate(tinySd, { ...fox, seed: 43 });
    expect(Buffer.from(a.images[0].data).equals(Buffer.from(b.images[0].data))).toBe(false);
  });

  it.each(SAMPLER_NAMES)('runs the %s sampler end to end', async (sampler) => {
    const result = await generate(tinySd, { ...fox, sampler, steps: 3 });
    expect(result.images).toHaveLength(1);
    expect(result.parameters[0].sampler).toBe(sampler);
  });

  it('makes a batch of four in which image k is the seed + k image made alone', async () => {
    const batch = await generate(tinySd, { ...fox, batch: 4 });
    expect(batch.seeds).toEqual([42, 43, 44, 45]);
    const alone = await generate(tinySd, { ...fox, seed: 44 });
    // Batched and single ONNX runs may round differently in the last float bits; pixels agree within one level.
    expect(maxDifference(batch.images[2].data, alone.images[0].data)).toBeLessThanOrEqual(1);
    const { grid } = await resultToPngs(batch);
    expect(await sharp(grid!).metadata()).toMatchObject({ width: 128, height: 128 });
  });

  it('ignores the negative prompt at guidance 1, where the unconditional half is skipped', async () => {
    const plain = await generate(tinySd, { ...fox, guidance: 1 });
    const negated = await generate(tinySd, { ...fox, guidance: 1, negativePrompt: 'snow' });
    expect(Buffer.from(plain.images[0].data).equals(Buffer.from(negated.images[0].data))).toBe(true);
  });

  it('lets the negative prompt change the picture when guidance is on', async () => {
    const plain = await generate(tinySd, { ...fox, guidance: 7 });
    const negated = await generate(tinySd, { ...fox, guidance: 7, negativePrompt: 'snow' });
    expect(Buffer.from(plain.images[0].data).equals(Buffer.from(negated.images[0].data))).toBe(false);
  });

  it('runs a float16 UNet with a scalar float timestep and int64 ids', async () => {
    const result = await generate(tinySdV2, { ...fox, sampler: 'euler' });
    expect(result.images[0]).toMatchObject({ width: 64, height: 64 });
  });

  it('reports the stage timings', async () => {
    const { timingsMs } = await generate(tinySd, fox);
    expect(timingsMs.unetMs).toBeGreaterThan(0);
    expect(timingsMs.textEncoderMs).toBeGreaterThan(0);
    expect(timingsMs.vaeMs).toBeGreaterThan(0);
    expect(timingsMs.ortMs).toBeCloseTo(timingsMs.textEncoderMs + timingsMs.unetMs + timingsMs.vaeMs, 5);
    expect(timingsMs.wallMs).toBeGreaterThanOrEqual(timingsMs.ortMs);
  });

  it('copies no tensor between host and device on the cpu provider', async () => {
    const { copies } = await generate(tinySd, fox);
    expect(copies.unetMs).toEqual({ uploads: 0, downloads: 0 });
    expect(copies.textEncoderMs).toEqual({ uploads: 0, downloads: 0 });
  });

  it('warns, naming the ignored words, when the prompt is longer than the text encoder reads', async () => {
    const long = `${Array.from({ length: 80 }, () => 'red').join(' ')} zebra`;
    const result = await generate(tinySd, { ...fox, prompt: long });
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toContain('zebra');
  });
});

describe('previews', () => {
  it('calls back once per step with a WebP of the predicted image, from imagine.json coefficients', async () => {
    const previews: { step: number; totalSteps: number; webp: Promise<Buffer> }[] = [];
    await generate(tinySd, { ...fox, onStep: (event) => previews.push({ ...event, webp: event.preview() }) });
    expect(previews.map((event) => event.step)).toEqual([1, 2, 3, 4]);
    expect(previews.every((event) => event.totalSteps === 4)).toBe(true);
    const metadata = await sharp(await previews[3].webp).metadata();
    expect(metadata).toMatchObject({ format: 'webp', width: 64, height: 64 });
  });

  it('uses the folder’s TAESD decoder when it has one', async () => {
    const webps: Promise<Buffer>[] = [];
    await generate(tinySdV2, { ...fox, batch: 2, onStep: (event) => webps.push(event.preview()) });
    expect(await sharp(await webps[0]).metadata()).toMatchObject({ format: 'webp', width: 128, height: 64 });
  });
});

describe('image-to-image and variations', () => {
  it('starts from an init image and runs only the strength share of the steps', async () => {
    const source = (await resultToPngs(await generate(tinySd, fox))).images[0];
    const init = await loadImageFile(source, { width: 64, height: 64 });
    const steps: number[] = [];
    const result = await generate(tinySd, { ...fox, steps: 10, seed: 7, init: { image: init.tensor, strength: 0.5 }, onStep: (e) => steps.push(e.step) });
    expect(steps).toHaveLength(5);
    expect(result.parameters[0].denoisingStrength).toBe(0.5);
  });

  it('encodes init images with a latent_parameters encoder too', async () => {
    const source = (await resultToPngs(await generate(tinySdV2, fox))).images[0];
    const init = await loadImageFile(source, { width: 64, height: 64 });
    const result = await generate(tinySdV2, { ...fox, init: { image: init.tensor, strength: 0.75 } });
    expect(result.images).toHaveLength(1);
  });

  it('at variation strength 0 gives exactly the seed’s own image', async () => {
    const plain = await generate(tinySd, fox);
    const varied = await generate(tinySd, { ...fox, variation: { seed: 99, strength: 0 } });
    expect(Buffer.from(varied.images[0].data).equals(Buffer.from(plain.images[0].data))).toBe(true);
  });

  it('moves away from the seed’s image as variation strength grows', async () => {
    const plain = await generate(tinySd, fox);
    const subtle = await generate(tinySd, { ...fox, variation: { seed: 99, strength: 0.1 } });
    const strong = await generate(tinySd, { ...fox, variation: { seed: 99, strength: 0.9 } });
    const distance = (a: Uint8Array, b: Uint8Array) => a.reduce((sum, value, i) => sum + Math.abs(value - b[i]), 0);
    expect(distance(subtle.images[0].data, plain.images[0].data)).toBeLessThan(distance(strong.images[0].data, plain.images[0].data));
    expect(strong.parameters[0]).toMatchObject({ variationSeed: 99, variationStrength: 0.9 });
  });
});

describe('bad input is refused with what to change', () => {
  const cases: [string, Partial<GenerateOptions>, RegExp][] = [
    ['an empty prompt', { prompt: '   ' }, /prompt is empty/],
    ['a prompt over 2000 characters', { prompt: 'a'.repeat(2001) }, /at most 2000/],
    ['a width that is not a multiple of the model’s', { width: 70 }, /multiples of 16/],
    ['a size the model does not list', { width: 256, height: 256 }, /Supported sizes|trained for/],
    ['0 steps', { steps: 0 }, /Steps must be a whole number from 1 to 150/],
    ['151 steps', { steps: 151 }, /from 1 to 150/],
    ['negative guidance', { guidance: -1 }, /Guidance/],
    ['a seed above 4294967295', { seed: 4294967296 }, /seed must be a whole number/],
    ['a negative seed', { seed: -1 }, /seed must be a whole number/],
    ['an unknown sampler', { sampler: 'heun' as never }, /Unknown sampler 'heun'/],
    ['a batch of 5', { batch: 5 }, /Batch must be/],
    ['strength 0', { init: { image: new Float32Array(3 * 64 * 64), strength: 0 } }, /Strength must be greater than 0/],
    ['strength above 1', { init: { image: new Float32Array(3 * 64 * 64), strength: 1.5 } }, /at most 1/],
  ];
  it.each(cases)('refuses %s', async (_label, change, message) => {
    await expect(generate(tinySd, { ...fox, ...change })).rejects.toMatchObject({ kind: 'invalid_input', userMessage: expect.stringMatching(message) });
  });

  it('stops between steps when cancelled', async () => {
    const controller = new AbortController();
    const run = generate(tinySd, { ...fox, steps: 10, signal: controller.signal, onStep: (event) => event.step === 2 && controller.abort() });
    await expect(run).rejects.toMatchObject({ kind: 'cancelled' });
  });
});
