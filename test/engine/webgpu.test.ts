import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resultToPngs, upscalePng } from '../../src/engine/actions.js';
import { encodePng, loadImageFile } from '../../src/engine/images.js';
import { regionMask } from '../../src/engine/masks.js';
import { loadModelFolder, type Component, type ModelFolder } from '../../src/engine/model-folder.js';
import { generate } from '../../src/engine/pipeline.js';
import { inpaint } from '../../src/engine/pipelines/inpaint.js';
import { createRandom } from '../../src/engine/random.js';
import { startThreadedEngine } from '../../src/engine/threaded-engine.js';
import { loadConfig } from '../../src/service/config.js';
import { parseRegion } from '../../src/engine/regions.js';
import type { DeviceGraphs } from '../../src/engine/device-graphs.js';
import { floatData, floatTensor, hostFloatData, idsTensor, timestepTensor } from '../../src/engine/tensors.js';
import type { RgbImage } from '../../src/engine/types.js';
import { SWIFTSHADER_ICD, useSwiftShaderUnlessConfigured, webgpuEnvironment } from '../support/webgpu.js';

/**
 * The WebGPU execution provider against the CPU provider on the fixture models. In CI (and on any machine without a
 * GPU) WebGPU runs on SwiftShader, Vulkan on the CPU: slow, so the models are tiny and the loops short. What is checked
 * is that every component and every pipeline computes the same thing on both providers.
 *
 * Tolerances: a component's outputs may differ by at most 1e-3 × (1 + the largest |output|) — float32 kernels that sum
 * in a different order — and a finished image by at most 0.5 levels on average and 3 levels anywhere (of 255).
 */
const COMPONENT_TOLERANCE = 1e-3;
const IMAGE_MEAN_LEVELS = 0.5;
const IMAGE_MAX_LEVELS = 3;
/** Inpainting: the mean over the pixels outside the repaint mask. */
const KEPT_REGION_MEAN_LEVELS = 0.1;

const FOLDERS = ['tiny-sd', 'tiny-sd-inpaint'] as const;
type Folder = (typeof FOLDERS)[number];
const cpu = {} as Record<Folder, ModelFolder>;
const webgpu = {} as Record<Folder, ModelFolder>;

beforeAll(async () => {
  useSwiftShaderUnlessConfigured();
  for (const name of FOLDERS) {
    const dir = `test/fixtures/models/${name}`;
    [cpu[name], webgpu[name]] = await Promise.all([
      loadModelFolder(dir, { intraOpNumThreads: 1 }),
      loadModelFolder(dir, { executionProviders: ['webgpu'], intraOpNumThreads: 1 }),
    ]);
  }
}, 300_000);
afterAll(async () => {
  await Promise.all(FOLDERS.flatMap((name) => [cpu[name]?.release(), webgpu[name]?.release()]));
});

/** The same inputs for a component on either provider, shaped from its own ports. */
function feedsFor(model: ModelFolder, component: string): ort.InferenceSession.FeedsType {
  const random = createRandom(11);
  const latents = (channels: number) => random.randn(2 * channels * 8 * 8);
  switch (component) {
    case 'text_encoder':
      return { [model.textEncoder.ids.name]: idsTensor(model.textEncoder.ids, [model.tokenizer.encode('').ids, model.tokenizer.encode('a red fox in the snow').ids]) };
    case 'unet': {
      const { unet } = model;
      return {
        [unet.sample.name]: floatTensor(unet.sample, latents(unet.inChannels), [2, unet.inChannels, 8, 8]),
        [unet.timestep.name]: timestepTensor(unet.timestep, 601, 2),
        [unet.hiddenStates.name]: floatTensor(unet.hiddenStates, random.randn(2 * 77 * 32), [2, 77, 32]),
      };
    }
    case 'vae_decoder':
      return { [model.vaeDecoder.latents.name]: floatTensor(model.vaeDecoder.latents, latents(4), [2, 4, 8, 8]) };
    case 'taesd_decoder':
      return { [model.taesdDecoder!.latents.name]: floatTensor(model.taesdDecoder!.latents, latents(4), [2, 4, 8, 8]) };
    case 'vae_encoder':
      return { [model.vaeEncoder!.image.name]: floatTensor(model.vaeEncoder!.image, random.randn(3 * 64 * 64), [1, 3, 64, 64]) };
    default:
      throw new Error(`no inputs for ${component}`);
  }
}

function sessionOf(model: ModelFolder, component: string): Component {
  const byName: Record<string, Component | undefined> = {
    text_encoder: model.textEncoder,
    unet: model.unet,
    vae_decoder: model.vaeDecoder,
    vae_encoder: model.vaeEncoder,
    taesd_decoder: model.taesdDecoder,
  };
  return byName[component]!;
}

/** max |a − b| / (1 + max |a|) over every output of the component. */
async function componentError(reference: ModelFolder, session: ort.InferenceSession, component: string, device?: DeviceGraphs): Promise<Record<string, number>> {
  const feeds = feedsFor(reference, component);
  const [expected, actual] = await Promise.all([sessionOf(reference, component).session.run(feeds), session.run(feeds)]);
  const outputs = await Promise.all(Object.keys(expected).map(async (output) => [output, await hostFloatData(actual[output], device)] as const));
  return Object.fromEntries(
    outputs.map(([output, b]) => {
      const a = floatData(expected[output]);
      let scale = 0;
      let worst = 0;
      for (let i = 0; i < a.length; i++) {
        scale = Math.max(scale, Math.abs(a[i]));
        worst = Math.max(worst, Math.abs(a[i] - b[i]));
      }
      return [output, worst / (1 + scale)];
    }),
  );
}

/** A copy of a fixture folder in a temporary directory with some scheduler_config.json keys changed. */
function withSchedulerConfig(folder: string, changes: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'imagine-webgpu-'));
  cpSync(folder, dir, { recursive: true });
  const file = join(dir, 'scheduler', 'scheduler_config.json');
  writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), ...changes }));
  return dir;
}

function imageDifference(a: RgbImage, b: RgbImage): { mean: number; max: number } {
  expect([b.width, b.height]).toEqual([a.width, a.height]);
  let sum = 0;
  let max = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = Math.abs(a.data[i] - b.data[i]);
    sum += d;
    max = Math.max(max, d);
  }
  return { mean: sum / a.data.length, max };
}

/** Mean |a − b| in levels over the pixels the repaint mask leaves alone (mask 0). */
function keptRegionDifference(a: RgbImage, b: RgbImage, repaint: Float32Array): number {
  let sum = 0;
  let count = 0;
  for (let pixel = 0; pixel < repaint.length; pixel++) {
    if (repaint[pixel] !== 0) continue;
    for (let channel = 0; channel < 3; channel++) sum += Math.abs(a.data[3 * pixel + channel] - b.data[3 * pixel + channel]);
    count += 3;
  }
  return sum / count;
}

function expectSameImages(expected: RgbImage[], actual: RgbImage[]): void {
  expect(actual).toHaveLength(expected.length);
  expected.forEach((image, k) => {
    const { mean, max } = imageDifference(image, actual[k]);
    expect(mean).toBeLessThanOrEqual(IMAGE_MEAN_LEVELS);
    expect(max).toBeLessThanOrEqual(IMAGE_MAX_LEVELS);
  });
}

describe('the webgpu provider', () => {
  it('opens every session of a folder on WebGPU, not on a CPU fallback', () => {
    for (const name of FOLDERS) expect(webgpu[name].executionProviders).toEqual(['webgpu']);
  });

  it.each([
    ['tiny-sd', ['text_encoder', 'unet', 'vae_decoder', 'vae_encoder']],
    ['tiny-sd-inpaint', ['text_encoder', 'unet', 'vae_decoder', 'vae_encoder']],
  ] as const)('computes every component of %s as the CPU provider does', async (name, components) => {
    for (const component of components) {
      const errors = await componentError(cpu[name], sessionOf(webgpu[name], component).session, component, webgpu[name].device);
      for (const [output, error] of Object.entries(errors)) {
        expect({ component, output, error: error <= COMPONENT_TOLERANCE ? 'within' : error }).toEqual({ component, output, error: 'within' });
      }
    }
  }, 240_000);

  it('computes the float32 components of the newer export conventions (int64 ids, mean ‖ logvar, TAESD) as the CPU provider does', async () => {
    const model = await loadModelFolder('test/fixtures/models/tiny-sd-v2', { intraOpNumThreads: 1 });
    try {
      for (const component of ['text_encoder', 'vae_encoder', 'taesd_decoder'] as const) {
        const session = await ort.InferenceSession.create(`test/fixtures/models/tiny-sd-v2/${component}/model.onnx`, { executionProviders: ['webgpu'], logSeverityLevel: 3 });
        const errors = await componentError(model, session, component).finally(() => session.release());
        for (const [output, error] of Object.entries(errors)) {
          expect({ component, output, error: error <= COMPONENT_TOLERANCE ? 'within' : error }).toEqual({ component, output, error: 'within' });
        }
      }
    } finally {
      await model.release();
    }
  }, 240_000);

  it('refuses a float16 folder at load on an adapter without shader-f16 (SwiftShader), naming the file', async () => {
    if (process.env.VK_ICD_FILENAMES !== SWIFTSHADER_ICD) return;
    await expect(loadModelFolder('test/fixtures/models/tiny-sd-v2', { executionProviders: ['webgpu'] })).rejects.toThrow(
      /tiny-sd-v2\/unet\/model\.onnx takes float16 tensors, and this WebGPU adapter cannot run float16/,
    );
  }, 120_000);

  it('makes the same text-to-image picture as the CPU provider', async () => {
    const options = { prompt: 'a red fox in the snow', seed: 5, steps: 2, width: 64, height: 64 };
    const [expected, actual] = [await generate(cpu['tiny-sd'], options), await generate(webgpu['tiny-sd'], options)];
    expectSameImages(expected.images, actual.images);
  }, 120_000);

  it('counts the tensors crossing between host and GPU at every step of a loop left on the host (clipped x̂0): sample, timestep and prompt up, prediction down', async () => {
    const dir = withSchedulerConfig('test/fixtures/models/tiny-sd', { clip_sample: true });
    const model = await loadModelFolder(dir, { executionProviders: ['webgpu'], intraOpNumThreads: 1 });
    try {
      const steps = 2;
      const { copies } = await generate(model, { prompt: 'a red fox in the snow', seed: 5, steps, width: 64, height: 64, sampler: 'ddim' });
      expect(copies.unetMs).toEqual({ uploads: 3 * steps, downloads: 1 * steps });
      expect(copies.textEncoderMs).toEqual({ uploads: 1, downloads: 2 });
    } finally {
      await model.release();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  // Once: the first sample, the latents and the prompt states up (and, for a sampler that draws noise, all its steps'
  // noise, drawn up front from the same seeded streams as the host loop draws it), the final latents down.
  it.each([
    { sampler: 'ddim', upfront: 3 },
    { sampler: 'euler', upfront: 3 },
    { sampler: 'dpmpp-2m', upfront: 3 },
    { sampler: 'dpmpp-2m-karras', upfront: 3 },
    { sampler: 'euler-a', upfront: 4 },
    { sampler: 'ddim', eta: 0.7, upfront: 4 },
    { sampler: 'ddpm', upfront: 4 },
    { sampler: 'lcm', upfront: 4 },
  ] as const)(
    'keeps the $sampler loop (eta $eta) on the GPU: the CPU provider’s picture, with only the timestep and the step’s coefficients uploaded per step',
    async ({ sampler, eta, upfront }) => {
      const steps = 3;
      const options = { prompt: 'a red fox in the snow', seed: 7, steps, width: 64, height: 64, sampler, eta };
      const [expected, actual] = [await generate(cpu['tiny-sd'], options), await generate(webgpu['tiny-sd'], options)];
      expectSameImages(expected.images, actual.images);
      expect(actual.copies.unetMs).toEqual({ uploads: upfront + 2 * steps, downloads: 1 });
    },
    240_000,
  );

  it('shows previews of the device-side loop, read from the GPU when asked for', async () => {
    const previews: Promise<Buffer>[] = [];
    const result = await generate(webgpu['tiny-sd'], {
      prompt: 'a red fox in the snow', seed: 7, steps: 2, width: 64, height: 64, sampler: 'ddim',
      onStep: (event) => previews.push(event.preview()),
    });
    const images = await Promise.all(previews);
    expect(images).toHaveLength(2);
    for (const webp of images) expect(webp.subarray(8, 12).toString('latin1')).toBe('WEBP');
    expect(result.copies.previewMs.downloads).toBeGreaterThanOrEqual(1);
  }, 240_000);

  it('makes the same image-to-image picture as the CPU provider', async () => {
    const start = (await resultToPngs(await generate(cpu['tiny-sd'], { prompt: 'a cat', seed: 3, steps: 1, width: 64, height: 64 }))).images[0];
    const { tensor } = await loadImageFile(start, { width: 64, height: 64 });
    const options = { prompt: 'a dog', seed: 9, steps: 4, width: 64, height: 64, init: { image: tensor, strength: 0.5 } };
    const [expected, actual] = [await generate(cpu['tiny-sd'], options), await generate(webgpu['tiny-sd'], options)];
    expectSameImages(expected.images, actual.images);
  }, 120_000);

  it('inpaints as the CPU provider does with a 9-channel UNet, its mask and masked picture uploaded once', async () => {
    const image = createRandom(4).randn(3 * 64 * 64).map((value) => Math.tanh(value));
    const mask = regionMask(parseRegion('left'), { width: 64, height: 64 });
    const steps = 2;
    const options = { prompt: 'a red fox', seed: 2, steps, width: 64, height: 64, image, mask, strength: 1 };
    const [expected, actual] = [await inpaint(cpu['tiny-sd-inpaint'], options), await inpaint(webgpu['tiny-sd-inpaint'], options)];
    expectSameImages(expected.images, actual.images);
    // Up once: sample, latents, prompt states, the conditioning channels and the kept region (picture, noise, mask).
    expect(actual.copies.unetMs).toEqual({ uploads: 7 + 2 * steps, downloads: 1 });
  }, 120_000);

  it.each([
    { sampler: 'ddim', strength: 1 },
    { sampler: 'euler', strength: 0.75 },
    { sampler: 'euler-a', strength: 0.75 },
  ] as const)(
    'inpaints with a plain UNet ($sampler, strength $strength) on the GPU, blending the kept region in on the device: the CPU provider’s picture',
    async ({ sampler, strength }) => {
      const image = createRandom(4).randn(3 * 64 * 64).map((value) => Math.tanh(value));
      const mask = regionMask(parseRegion('left'), { width: 64, height: 64 });
      const steps = 4;
      const options = { prompt: 'a red fox', seed: 2, steps, width: 64, height: 64, image, mask, sampler, strength };
      const [expected, actual] = [await inpaint(cpu['tiny-sd'], options), await inpaint(webgpu['tiny-sd'], options)];
      expectSameImages(expected.images, actual.images);
      // The kept region's last latents are the picture's own on both providers, so there the pictures agree closer
      // still: the tiny VAE turns a 10 % error in those latents into about half a level.
      expect(keptRegionDifference(expected.images[0], actual.images[0], mask.data)).toBeLessThanOrEqual(KEPT_REGION_MEAN_LEVELS);
      // Up once: sample, latents, prompt states, the picture's latents, the starting noise and the mask (and the
      // sampler's own noise); per step the timestep and the coefficients.
      const ran = Math.floor(steps * strength);
      expect(actual.copies.unetMs).toEqual({ uploads: 6 + (sampler === 'euler-a' ? 1 : 0) + 2 * ran, downloads: 1 });
    },
    240_000,
  );

  it('upscales with the folder’s ESRGAN model as the CPU provider does', async () => {
    const pixels = Uint8Array.from(createRandom(8).randn(32 * 32 * 3), (value) => Math.max(0, Math.min(255, 128 + 60 * value)));
    const source = await encodePng({ width: 32, height: 32, data: pixels });
    const [expected, actual] = [await upscalePng(cpu['tiny-sd'], source), await upscalePng(webgpu['tiny-sd'], source)];
    expect(actual.method).toBe('model');
    expectSameImages([expected.image], [actual.image]);
  }, 120_000);
});

describe('a worker configured with ORT_PROVIDERS=webgpu', () => {
  it('runs its jobs on WebGPU in the engine thread, with the CPU provider’s pictures', async () => {
    const config = loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379', MODEL_DIR: 'test/fixtures/models/tiny-sd', ORT_PROVIDERS: 'webgpu' }, 'worker');
    expect(config.ortProviders).toEqual(['webgpu']);
    const engine = await startThreadedEngine(config.modelDir, { executionProviders: config.ortProviders, intraOpNumThreads: 1 });
    try {
      const params = { prompt: 'a red fox', negativePrompt: '', width: 64, height: 64, steps: 2, guidance: 5, sampler: 'euler' as const, seed: 4, batch: 1 };
      const output = await engine.generate({ kind: 'imagine', params }, {});
      const expected = await generate(cpu['tiny-sd'], params);
      const { rgb } = await loadImageFile(output.images[0], { width: 64, height: 64 });
      expectSameImages(expected.images, [rgb]);
    } finally {
      await engine.release();
    }
  }, 180_000);
});

describe('without a WebGPU adapter', () => {
  it('refuses to start, saying what to install, instead of running on the CPU', async () => {
    const env = { ...webgpuEnvironment(), VK_ICD_FILENAMES: '/nonexistent/no_icd.json' };
    const failure = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'src/cli.ts', 'generate', 'a fox', '--model', 'test/fixtures/models/tiny-sd', '--steps', '1', '--provider', 'webgpu', '--out', '/nonexistent/never.png'],
      { env },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(failure.code).not.toBe(0);
    expect(failure.stderr).toContain('The webgpu provider found no GPU adapter');
    expect(failure.stderr).toMatch(/libvulkan1.*VK_ICD_FILENAMES=\/usr\/lib\/chromium\/vk_swiftshader_icd\.json/s);
  }, 120_000);
});
