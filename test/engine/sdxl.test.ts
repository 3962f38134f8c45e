import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeModelFolder } from '../../src/engine/model-description.js';
import { loadModelFolder, type ModelFolder } from '../../src/engine/model-folder.js';
import { generate } from '../../src/engine/pipeline.js';
import { checkInputs, encodePrompt, sdxlConditioning } from '../../src/engine/pipelines/stages.js';
import { floatData, idsTensor } from '../../src/engine/tensors.js';

/**
 * SDXL-class folders (diffusers' StableDiffusionXLPipeline) in the two export conventions the fixtures cover:
 * tiny-sdxl as Optimum writes it (hidden_states.0 … hidden_states.2, int32 ids) and tiny-sdxl-turbo as ONNX Runtime's
 * SDXL tooling writes it (the penultimate state alone as hidden_states, int64 ids) with SDXL-Turbo's settings. Both have
 * a 32-wide and a 48-wide text encoder, the second with a 40-wide projection, so the UNet reads 80-wide states.
 */

const SDXL = 'test/fixtures/models/tiny-sdxl';
const TURBO = 'test/fixtures/models/tiny-sdxl-turbo';
let sdxl: ModelFolder;
let turbo: ModelFolder;
let dir: string;

beforeAll(async () => {
  [sdxl, turbo] = await Promise.all([loadModelFolder(SDXL, { intraOpNumThreads: 1 }), loadModelFolder(TURBO, { intraOpNumThreads: 1 })]);
  dir = await mkdtemp(join(tmpdir(), 'imagine-sdxl-'));
});
afterAll(async () => {
  await Promise.all([sdxl?.release(), turbo?.release()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** What the two encoders give for one prompt, straight from their sessions: penultimate states and text_embeds. */
async function encodersOf(model: ModelFolder, prompt: string) {
  const run = async (encoder: NonNullable<ModelFolder['textEncoder2']>, ids: number[]) =>
    encoder.session.run({ [encoder.ids.name]: idsTensor(encoder.ids, [ids]) });
  const first = await run(model.textEncoder, model.tokenizer.encode(prompt).ids);
  const second = await run(model.textEncoder2!, model.tokenizer2!.encode(prompt).ids);
  return {
    first: floatData(first[model.textEncoder.penultimate!]),
    second: floatData(second[model.textEncoder2!.penultimate!]),
    pooled: floatData(second.text_embeds),
  };
}

describe('an SDXL folder', () => {
  it('is described from its files: two encoders, SDXL guidance, and its trained aspect buckets', async () => {
    const description = await describeModelFolder(SDXL);
    expect(description).toMatchObject({ family: 'stable-diffusion-xl', defaultGuidance: 5, forceZerosForEmptyPrompt: true, defaultSize: [64, 64] });
    expect(description.components).toEqual(['text_encoder', 'text_encoder_2', 'unet', 'vae_decoder', 'vae_encoder']);
    expect(description.aspectBuckets).toContainEqual([64, 64]);
    expect(description.aspectBuckets).toContainEqual([80, 48]);
    expect(await describeModelFolder(TURBO)).toMatchObject({ defaultSteps: 1, defaultGuidance: 0, defaultSampler: 'euler-a' });
  });

  it('finds each encoder’s penultimate hidden states in either export convention, and the UNet’s extra inputs', () => {
    expect([sdxl.textEncoder.penultimate, sdxl.textEncoder2?.penultimate]).toEqual(['hidden_states.1', 'hidden_states.1']);
    expect([turbo.textEncoder.penultimate, turbo.textEncoder2?.penultimate]).toEqual(['hidden_states', 'hidden_states']);
    for (const model of [sdxl, turbo]) expect([model.unet.textEmbeds?.name, model.unet.timeIds?.name]).toEqual(['text_embeds', 'time_ids']);
  });

  it.each([
    ['tiny-sdxl', () => sdxl],
    ['tiny-sdxl-turbo', () => turbo],
  ])('%s: conditions on both penultimate states side by side, token by token, and the second encoder’s text_embeds', async (_, model) => {
    const run = checkInputs(model(), { prompt: 'a red fox in the snow', negativePrompt: 'blurry', guidance: 5, seed: 1, width: 64, height: 64 });
    const embeddings = await encodePrompt(run);
    expect([embeddings.tokens, embeddings.hidden, embeddings.pooled?.width]).toEqual([77, 80, 40]);
    const cond = embeddings.states.subarray(77 * 80);
    const { first, second, pooled } = await encodersOf(model(), 'a red fox in the snow');
    for (const token of [0, 5, 76]) {
      expect(cond.subarray(token * 80, token * 80 + 32)).toEqual(first.subarray(token * 32, token * 32 + 32));
      expect(cond.subarray(token * 80 + 32, token * 80 + 80)).toEqual(second.subarray(token * 48, token * 48 + 48));
    }
    expect(embeddings.pooled?.values.subarray(40)).toEqual(pooled);
    const negative = await encodersOf(model(), 'blurry');
    expect(embeddings.states.subarray(0, 32)).toEqual(negative.first.subarray(0, 32));
  });

  it('makes the unconditional half all zeros when there is no negative prompt (force_zeros_for_empty_prompt)', async () => {
    const run = checkInputs(sdxl, { prompt: 'a red fox', guidance: 5, seed: 1, batch: 2, width: 64, height: 64 });
    const { states, pooled } = await encodePrompt(run);
    const perInput = 77 * 80;
    expect(states.subarray(0, 2 * perInput).every((value) => value === 0)).toBe(true);
    expect(states.subarray(2 * perInput).some((value) => value !== 0)).toBe(true);
    expect(pooled!.values.subarray(0, 80).every((value) => value === 0)).toBe(true);
  });

  it('gives the UNet time_ids of original size, crop top-left and target size, as (height, width)', async () => {
    const run = checkInputs(sdxl, { prompt: 'a red fox', guidance: 5, seed: 1, width: 80, height: 48 });
    const feeds = sdxlConditioning(run, await encodePrompt(run), 0, 2);
    expect(Array.from(feeds.time_ids.data as Float32Array)).toEqual([48, 80, 0, 0, 48, 80, 48, 80, 0, 0, 48, 80]);
    expect(feeds.text_embeds.dims).toEqual([2, 40]);
  });

  it('makes the same picture for the same seed, and SDXL-Turbo’s folder settings apply (1 step, no guidance)', async () => {
    const options = { prompt: 'a red fox in the snow', seed: 3, steps: 2, width: 64, height: 64 };
    const [a, b] = [await generate(sdxl, options), await generate(sdxl, options)];
    expect(a.images[0].data).toEqual(b.images[0].data);
    const turboResult = await generate(turbo, { prompt: 'a red fox', seed: 3 });
    expect(turboResult.parameters[0]).toMatchObject({ steps: 1, guidance: 0, sampler: 'euler-a', width: 64, height: 64 });
  });
});

describe('npm run cli -- generate with an SDXL folder', () => {
  it.each([SDXL, TURBO])('writes a PNG from %s', async (model) => {
    const out = join(dir, `${model.split('/').pop()}.png`);
    await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'generate', 'a red fox', '--model', model, '--seed', '2', '--steps', '2', '--size', '80x48', '--out', out]);
    expect(await sharp(await readFile(out)).metadata()).toMatchObject({ width: 80, height: 48 });
  }, 60_000);
});

describe('an SDXL folder that does not fit together', () => {
  const broken = async (name: string, change: (folder: string) => Promise<void>) => {
    const folder = join(dir, name);
    await cp(SDXL, folder, { recursive: true });
    await change(folder);
    return folder;
  };

  it('without text_encoder_2/ is refused, naming the file and what SDXL needs it for', async () => {
    const folder = await broken('no-second-encoder', (path) => rm(join(path, 'text_encoder_2'), { recursive: true }));
    await expect(describeModelFolder(folder)).rejects.toThrow(
      /is a ORTStableDiffusionXLPipeline folder but has no text_encoder_2\/model\.onnx: SDXL needs the second text encoder/,
    );
  });

  it('without tokenizer_2/ is refused the same way', async () => {
    const folder = await broken('no-second-tokenizer', (path) => rm(join(path, 'tokenizer_2'), { recursive: true }));
    await expect(describeModelFolder(folder)).rejects.toThrow(/has no tokenizer_2\/tokenizer\.json: SDXL needs the second text encoder's tokenizer/);
  });

  it('whose encoders’ hidden sizes do not add up to the UNet’s is refused, naming the UNet, both encoders and the widths', async () => {
    const folder = await broken('mismatched-widths', (path) => cp(join(SDXL, 'text_encoder_2'), join(path, 'text_encoder'), { recursive: true }));
    await expect(loadModelFolder(folder)).rejects.toThrow(
      /unet\/model\.onnx: tensor 'encoder_hidden_states' should be 96 wide: .*text_encoder\/model\.onnx's 48 and .*text_encoder_2\/model\.onnx's 48 hidden states concatenated; it takes 80/,
    );
  });

  it('whose text encoders export no hidden states is refused, saying how to export them', async () => {
    const folder = await broken('no-hidden-states', (path) => cp('test/fixtures/models/tiny-sd-v2/text_encoder', join(path, 'text_encoder'), { recursive: true }));
    await expect(loadModelFolder(folder)).rejects.toThrow(/text_encoder\/model\.onnx: tensor 'hidden_states' should be the penultimate layer's hidden states/);
  });
});
