import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { ImagineError, invalidInput } from '../core/errors.js';
import { fromFloat16Bits, toFloat16Bits } from './float16.js';
import { decodedToImages, encodeWebp, makeGrid } from './images.js';
import type { Component, ModelFolder, TensorPort, LatentRgbCoefficients } from './model-folder.js';
import type { GenerationParameters } from './parameters.js';
import { fitLatentRgb, latentsToRgbPreview } from './preview.js';
import { createRandom, MAX_SEED, slerp } from './random.js';
import { createScheduler, parseSchedulerConfig } from './schedulers/index.js';
import { SAMPLER_NAMES, type RandomSource, type RgbImage, type SamplerName } from './types.js';

/**
 * Text-to-image and image-to-image, written out the way diffusers writes its pipelines: encode the prompt, prepare
 * latents, then for each timestep scale → UNet (unconditional and conditional halves in one call) → guidance →
 * scheduler step → preview callback, and finally decode with the VAE.
 */

export interface GenerateOptions {
  prompt: string;
  negativePrompt?: string;
  width?: number;
  height?: number;
  steps?: number;
  guidance?: number;
  sampler?: SamplerName;
  /** Image k of the batch uses seed + k, so any image can be made again alone. */
  seed: number;
  batch?: number;
  /** DDIM's eta (0 = deterministic DDIM). */
  eta?: number;
  /** Image-to-image: the init image as [1, 3, height, width] in [-1, 1] at the requested size. */
  init?: { image: Float32Array; strength: number };
  /** A1111-style seed variation: noise slerped towards the noise of `seed` by `strength`. */
  variation?: { seed: number; strength: number };
  signal?: AbortSignal;
  onStep?: (event: StepEvent) => void;
}

export interface StepEvent {
  step: number;
  totalSteps: number;
  /** A small WebP of the current x̂0 (a grid for batches), made only when called. */
  preview(): Promise<Buffer>;
}

export interface StageTimingsMs {
  textEncoderMs: number;
  unetMs: number;
  vaeMs: number;
  previewMs: number;
  /** Sum of every ONNX Runtime `run()` call. */
  ortMs: number;
  wallMs: number;
}

export interface GenerateResult {
  images: RgbImage[];
  seeds: number[];
  /** What each image was made with, in A1111's terms, for the PNG `parameters` chunk and history. */
  parameters: GenerationParameters[];
  /** Things the user should be told (e.g. the part of a prompt that did not fit). */
  warnings: string[];
  timingsMs: StageTimingsMs;
}

export const MAX_PROMPT_CHARS = 2000;
export const MAX_STEPS = 150;
const PREVIEW_MAX_SIDE_PX = 256;

interface ResolvedOptions {
  prompt: string;
  negativePrompt: string;
  width: number;
  height: number;
  steps: number;
  guidance: number;
  sampler: SamplerName;
  seed: number;
  batch: number;
}

/** Fills in the model's defaults and refuses anything the pipeline cannot honour, saying what to change. */
export function resolveOptions(model: ModelFolder, options: GenerateOptions): ResolvedOptions {
  const [defaultWidth, defaultHeight] = model.defaultSize;
  const resolved: ResolvedOptions = {
    prompt: options.prompt?.trim() ?? '',
    negativePrompt: options.negativePrompt?.trim() ?? '',
    width: options.width ?? defaultWidth,
    height: options.height ?? defaultHeight,
    steps: options.steps ?? model.description.defaultSteps,
    guidance: options.guidance ?? model.description.defaultGuidance,
    sampler: options.sampler ?? model.description.defaultSampler,
    seed: options.seed,
    batch: options.batch ?? 1,
  };
  if (resolved.prompt.length === 0) throw invalidInput('The prompt is empty: describe the picture you want, e.g. "a fox in the snow".');
  for (const [label, text] of [['prompt', resolved.prompt], ['negative prompt', resolved.negativePrompt]] as const) {
    if (text.length > MAX_PROMPT_CHARS) {
      throw invalidInput(`The ${label} is ${text.length} characters long; shorten it to at most ${MAX_PROMPT_CHARS}.`);
    }
  }
  if (!SAMPLER_NAMES.includes(resolved.sampler)) {
    throw invalidInput(`Unknown sampler '${resolved.sampler}'. Use one of: ${SAMPLER_NAMES.join(', ')}.`);
  }
  if (!Number.isInteger(resolved.steps) || resolved.steps < 1 || resolved.steps > MAX_STEPS) {
    throw invalidInput(`Steps must be a whole number from 1 to ${MAX_STEPS}; got ${resolved.steps}.`);
  }
  if (!Number.isFinite(resolved.guidance) || resolved.guidance < 0 || resolved.guidance > 30) {
    throw invalidInput(`Guidance (CFG scale) must be a number from 0 to 30; got ${resolved.guidance}.`);
  }
  if (!Number.isInteger(resolved.seed) || resolved.seed < 0 || resolved.seed > MAX_SEED) {
    throw invalidInput(`The seed must be a whole number from 0 to ${MAX_SEED}; got ${resolved.seed}.`);
  }
  if (!Number.isInteger(resolved.batch) || resolved.batch < 1 || resolved.batch > 4) {
    throw invalidInput(`Batch must be 1, 2, 3 or 4 images; got ${resolved.batch}.`);
  }
  checkSize(model, resolved.width, resolved.height);
  if (options.init && !(options.init.strength > 0 && options.init.strength <= 1)) {
    throw invalidInput(`Strength must be greater than 0 and at most 1; got ${options.init.strength}.`);
  }
  if (options.variation) {
    const { seed, strength } = options.variation;
    if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) {
      throw invalidInput(`The variation seed must be a whole number from 0 to ${MAX_SEED}; got ${seed}.`);
    }
    if (!(strength >= 0 && strength <= 1)) throw invalidInput(`Variation strength must be from 0 to 1; got ${strength}.`);
  }
  return resolved;
}

function checkSize(model: ModelFolder, width: number, height: number): void {
  const sizes = model.settings.sizes;
  const listed = sizes?.map(([w, h]) => `${w}x${h}`).join(', ');
  const multiple = model.sizeMultiple;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width % multiple !== 0 || height % multiple !== 0) {
    throw invalidInput(
      `Width and height must be multiples of ${multiple} for this model; ${width}x${height} is not.` +
        (listed ? ` Supported sizes: ${listed}.` : ` Try ${roundTo(width, multiple)}x${roundTo(height, multiple)}.`),
    );
  }
  if (sizes && !sizes.some(([w, h]) => w === width && h === height)) {
    throw invalidInput(`The model ${model.name} was trained for ${listed} only; ${width}x${height} would come out as noise. Pick one of those sizes.`);
  }
  const maxSide = model.description.maxSidePx;
  if (width > maxSide || height > maxSide || width < multiple || height < multiple) {
    throw invalidInput(`Width and height must be from ${multiple} to ${maxSide} pixels for ${model.name}; got ${width}x${height}.`);
  }
}

const roundTo = (value: number, multiple: number) => Math.max(multiple, Math.round(value / multiple) * multiple);

export async function generate(model: ModelFolder, options: GenerateOptions): Promise<GenerateResult> {
  const started = performance.now();
  const run = resolveOptions(model, options);
  const timings: StageTimingsMs = { textEncoderMs: 0, unetMs: 0, vaeMs: 0, previewMs: 0, ortMs: 0, wallMs: 0 };
  const timed = async (stage: 'textEncoderMs' | 'unetMs' | 'vaeMs' | 'previewMs', component: Component, feeds: ort.InferenceSession.FeedsType) => {
    const before = performance.now();
    const outputs = await component.session.run(feeds);
    const elapsed = performance.now() - before;
    timings[stage] += elapsed;
    timings.ortMs += elapsed;
    return outputs;
  };
  const warnings: string[] = [];
  const { batch } = run;
  const useGuidance = run.guidance > 1;

  // 1. Encode the prompt (and the negative prompt, the unconditional half of classifier-free guidance).
  const cond = model.tokenizer.encode(run.prompt);
  if (cond.droppedTokens > 0) {
    warnings.push(`The prompt is longer than the model reads (${model.tokenizer.maxLength} tokens); this part was ignored: "${cond.droppedText}". Shorten the prompt to use it.`);
  }
  const prompts = [cond.ids];
  if (useGuidance) {
    const uncond = model.tokenizer.encode(run.negativePrompt);
    if (uncond.droppedTokens > 0) warnings.push(`The negative prompt was cut; ignored: "${uncond.droppedText}".`);
    prompts.unshift(uncond.ids);
  }
  const textOutputs = await timed('textEncoderMs', model.textEncoder, {
    [model.textEncoder.ids.name]: idsTensor(model.textEncoder.ids, prompts),
  });
  const promptStates = floatData(textOutputs[model.textEncoder.hiddenStates]);
  const statesPerPrompt = promptStates.length / prompts.length;
  const [, tokens, hidden] = textOutputs[model.textEncoder.hiddenStates].dims;
  // UNet batch order: [uncond × batch, cond × batch].
  const encoderStates = new Float32Array(statesPerPrompt * prompts.length * batch);
  prompts.forEach((_, p) => {
    for (let b = 0; b < batch; b++) {
      encoderStates.set(promptStates.subarray(p * statesPerPrompt, (p + 1) * statesPerPrompt), (p * batch + b) * statesPerPrompt);
    }
  });

  // 2. Prepare latents: one random stream per image, so image k is reproducible alone with seed + k.
  const latentHeight = run.height / model.vaeScaleFactor;
  const latentWidth = run.width / model.vaeScaleFactor;
  const perImage = model.latentChannels * latentHeight * latentWidth;
  const latentDims = [batch, model.latentChannels, latentHeight, latentWidth];
  const seeds = Array.from({ length: batch }, (_, k) => (run.seed + k) % (MAX_SEED + 1));
  const randoms = seeds.map((seed) => createRandom(seed));
  const variationRandoms = options.variation
    ? seeds.map((_, k) => createRandom((options.variation!.seed + k) % (MAX_SEED + 1)))
    : undefined;
  const noise = new Float32Array(perImage * batch);
  randoms.forEach((random, k) => {
    let imageNoise = random.randn(perImage);
    if (variationRandoms && options.variation!.strength > 0) {
      imageNoise = slerp(options.variation!.strength, imageNoise, variationRandoms[k].randn(perImage));
    }
    noise.set(imageNoise, k * perImage);
  });
  const stepRandom = batchRandom(randoms);

  const scheduler = createScheduler(run.sampler, parseSchedulerConfig(model.schedulerConfig), { eta: options.eta });
  scheduler.setTimesteps(run.steps);
  let timesteps = [...scheduler.timesteps];
  let latents: Float32Array;
  if (options.init) {
    // diffusers' img2img convention: strength picks how far into the schedule the init image is noised.
    const initSteps = Math.min(Math.floor(run.steps * options.init.strength), run.steps);
    const startIndex = run.steps - initSteps;
    timesteps = timesteps.slice(startIndex);
    if (timesteps.length === 0) {
      throw invalidInput(`Strength ${options.init.strength} with ${run.steps} steps leaves no step to run; raise the strength or the steps.`);
    }
    scheduler.setBeginIndex(startIndex);
    const initLatents = await encodeImage(model, options.init.image, run.width, run.height, timed);
    const batchedInit = new Float32Array(perImage * batch);
    for (let k = 0; k < batch; k++) batchedInit.set(initLatents, k * perImage);
    latents = scheduler.addNoise(batchedInit, noise, timesteps[0]);
  } else {
    latents = noise.map((value) => value * scheduler.initNoiseSigma);
  }

  // 3. Denoise.
  const guidanceCopies = useGuidance ? 2 : 1;
  const hiddenDims = [0, tokens, hidden];
  for (let i = 0; i < timesteps.length; i++) {
    if (options.signal?.aborted) throw new ImagineError('cancelled', 'The generation was cancelled.');
    const t = timesteps[i];
    const scaled = scheduler.scaleModelInput(latents, t);
    const modelInput = useGuidance ? concat(scaled, scaled) : scaled;
    const prediction = await runUnet(model, modelInput, [guidanceCopies * batch, ...latentDims.slice(1)], t, encoderStates, hiddenDims, timed);
    const guided = useGuidance ? applyGuidance(prediction, run.guidance) : prediction;
    const { prevSample, predOriginalSample } = scheduler.step(guided, t, latents, stepRandom);
    latents = prevSample;
    if (options.onStep) {
      const step = i + 1;
      options.onStep({
        step,
        totalSteps: timesteps.length,
        preview: async () => {
          const before = performance.now();
          const images = await previewImages(model, predOriginalSample, latentDims);
          const grid = images.length > 1 ? makeGrid(images) : images[0];
          // Previews come out at latent size; show them at (at most) the size of the final image or grid.
          const finalSide = Math.max(run.width, run.height) * (images.length > 1 ? 2 : 1);
          const webp = await encodeWebp(grid, { maxSide: Math.min(PREVIEW_MAX_SIDE_PX, finalSide), quality: 70, enlarge: true, effort: 0 });
          timings.previewMs += performance.now() - before;
          return webp;
        },
      });
    }
  }

  // 4. Decode.
  const images = await decodeLatents(model, latents, latentDims, timed);
  timings.wallMs = performance.now() - started;
  return {
    images,
    seeds,
    warnings,
    timingsMs: timings,
    parameters: seeds.map((seed) => ({
      prompt: run.prompt,
      negativePrompt: run.negativePrompt,
      steps: run.steps,
      sampler: run.sampler,
      guidance: run.guidance,
      seed,
      width: run.width,
      height: run.height,
      model: model.name,
      ...(options.variation ? { variationSeed: options.variation.seed, variationStrength: options.variation.strength } : {}),
      ...(options.init ? { denoisingStrength: options.init.strength } : {}),
    })),
  };
}

type Timed = (
  stage: 'textEncoderMs' | 'unetMs' | 'vaeMs' | 'previewMs',
  component: Component,
  feeds: ort.InferenceSession.FeedsType,
) => Promise<ort.InferenceSession.ReturnType>;

async function runUnet(
  model: ModelFolder,
  sample: Float32Array,
  sampleDims: number[],
  timestep: number,
  encoderStates: Float32Array,
  hiddenDims: number[],
  timed: Timed,
): Promise<Float32Array> {
  const { unet } = model;
  const total = sampleDims[0];
  // Exports with a fixed batch dimension are run in chunks of that size; dynamic ones in one call.
  const chunk = unet.maxBatch ?? total;
  if (total % chunk !== 0) {
    throw invalidInput(`This UNet takes batches of exactly ${chunk}; use a batch size that makes ${total} UNet inputs a multiple of it.`);
  }
  const perSample = sample.length / total;
  const perStates = encoderStates.length / total;
  const out = new Float32Array(sample.length);
  for (let start = 0; start < total; start += chunk) {
    const outputs = await timed('unetMs', unet, {
      [unet.sample.name]: floatTensor(unet.sample, sample.subarray(start * perSample, (start + chunk) * perSample), [chunk, ...sampleDims.slice(1)]),
      [unet.timestep.name]: timestepTensor(unet.timestep, timestep, chunk),
      [unet.hiddenStates.name]: floatTensor(unet.hiddenStates, encoderStates.subarray(start * perStates, (start + chunk) * perStates), [chunk, hiddenDims[1], hiddenDims[2]]),
    });
    out.set(floatData(outputs[unet.output]), start * perSample);
  }
  return out;
}

/** ε̂ = ε̂_uncond + g · (ε̂_cond − ε̂_uncond), over [uncond × batch, cond × batch]. */
function applyGuidance(prediction: Float32Array, guidance: number): Float32Array {
  const half = prediction.length / 2;
  const guided = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const uncond = prediction[i];
    guided[i] = uncond + guidance * (prediction[half + i] - uncond);
  }
  return guided;
}

async function encodeImage(model: ModelFolder, image: Float32Array, width: number, height: number, timed: Timed): Promise<Float32Array> {
  const encoder = model.vaeEncoder;
  if (!encoder) {
    throw invalidInput(`The model ${model.name} has no vae_encoder/model.onnx, so it cannot start from an image (image-to-image, variations). Use a model folder that has one.`);
  }
  if (image.length !== 3 * width * height) {
    throw invalidInput(`The init image must be ${width}x${height} RGB to match the requested size.`);
  }
  const outputs = await timed('vaeMs', encoder, { [encoder.image.name]: floatTensor(encoder.image, image, [1, 3, height, width]) });
  const raw = floatData(outputs[encoder.output]);
  // latent_parameters hold mean ‖ log-variance; taking the mean (the distribution's mode) keeps img2img deterministic.
  const mean = encoder.outputsMeanAndLogvar ? raw.subarray(0, raw.length / 2) : raw;
  return mean.map((value) => value * model.scalingFactor);
}

async function decodeLatents(model: ModelFolder, latents: Float32Array, dims: number[], timed: Timed): Promise<RgbImage[]> {
  const { vaeDecoder } = model;
  const unscaled = latents.map((value) => value / model.scalingFactor);
  const outputs = await timed('vaeMs', vaeDecoder, { [vaeDecoder.latents.name]: floatTensor(vaeDecoder.latents, unscaled, dims) });
  const decoded = outputs[vaeDecoder.output];
  return decodedToImages(floatData(decoded), decoded.dims, 'minus1to1');
}

const fittedCoefficients = new WeakMap<ModelFolder, LatentRgbCoefficients>();

async function previewImages(model: ModelFolder, predictedLatents: Float32Array, dims: number[]): Promise<RgbImage[]> {
  if (model.taesdDecoder) {
    const { taesdDecoder } = model;
    const outputs = await taesdDecoder.session.run({ [taesdDecoder.latents.name]: floatTensor(taesdDecoder.latents, predictedLatents, dims) });
    const decoded = outputs[taesdDecoder.output];
    return decodedToImages(floatData(decoded), decoded.dims, 'zero1');
  }
  return latentsToRgbPreview(predictedLatents, dims, await latentRgbCoefficients(model));
}

/**
 * Preview coefficients come from the folder's imagine.json; a folder without them gets a least-squares fit against one
 * small VAE decode of random latents, made once per loaded model (never per preview).
 */
export async function latentRgbCoefficients(model: ModelFolder): Promise<LatentRgbCoefficients> {
  if (model.settings.latentRgb) return model.settings.latentRgb;
  const cached = fittedCoefficients.get(model);
  if (cached) return cached;
  const dims = [1, model.latentChannels, 8, 8];
  const latents = createRandom(0).randn(dims[1] * 64);
  const images = await decodeLatents(model, latents, dims, async (_stage, component, feeds) => component.session.run(feeds));
  const fitted = fitLatentRgb(latents, dims, images);
  fittedCoefficients.set(model, fitted);
  return fitted;
}

/** One scheduler draw over a batch takes each image's share from that image's own stream. */
function batchRandom(randoms: RandomSource[]): RandomSource {
  return {
    nextUniform: () => randoms[0].nextUniform(),
    randn(count: number): Float32Array {
      const per = count / randoms.length;
      const out = new Float32Array(count);
      randoms.forEach((random, k) => out.set(random.randn(per), k * per));
      return out;
    },
  };
}

function concat(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function idsTensor(port: TensorPort, prompts: number[][]): ort.Tensor {
  const flat = prompts.flat();
  const dims = [prompts.length, prompts[0].length];
  return port.type === 'int64'
    ? new ort.Tensor('int64', BigInt64Array.from(flat, (id) => BigInt(id)), dims)
    : new ort.Tensor('int32', Int32Array.from(flat), dims);
}

function floatTensor(port: TensorPort, data: Float32Array, dims: readonly number[]): ort.Tensor {
  return port.type === 'float16' ? new ort.Tensor('float16', toFloat16Bits(data), dims) : new ort.Tensor('float32', data, dims);
}

/** Older exports take int64 [batch] timesteps (truncated, as diffusers' ONNX pipeline casts), newer ones a float. */
function timestepTensor(port: TensorPort, timestep: number, batch: number): ort.Tensor {
  const dims = port.dims.length === 0 ? [] : [batch];
  const count = port.dims.length === 0 ? 1 : batch;
  if (port.type === 'int64') return new ort.Tensor('int64', new BigInt64Array(count).fill(BigInt(Math.trunc(timestep))), dims);
  const values = new Float32Array(count).fill(timestep);
  return port.type === 'float16' ? new ort.Tensor('float16', toFloat16Bits(values), dims) : new ort.Tensor('float32', values, dims);
}

function floatData(tensor: ort.Tensor): Float32Array {
  if (tensor.type === 'float32') return tensor.data as Float32Array;
  if (tensor.type === 'float16') return fromFloat16Bits(tensor.data as Uint16Array);
  throw new ImagineError('model_failure', `A model returned a ${tensor.type} tensor where float32 or float16 was expected.`);
}
