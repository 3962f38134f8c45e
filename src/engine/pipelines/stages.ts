import { performance } from 'node:perf_hooks';
import type * as ort from 'onnxruntime-node';
import { EngineError, invalidInput } from '../errors.js';
import { decodedToImages, encodeWebp, makeGrid, rgbToTensor } from '../images.js';
import { LIMITS, MAX_SEED } from '../limits.js';
import { promptTextProblem } from '../prompt-text.js';
import { binarize, latentMask, type Mask } from '../masks.js';
import type { LatentRgbCoefficients } from '../model-description.js';
import type { Component, ModelFolder } from '../model-folder.js';
import type { GenerationParameters } from '../parameters.js';
import { fitLatentRgb, latentsToRgbPreview } from '../preview.js';
import { createRandom, slerp } from '../random.js';
import { createScheduler, parseSchedulerConfig } from '../schedulers/index.js';
import { floatData, floatTensor, hostFloatData, idsTensor, timestepTensor } from '../tensors.js';
import { denoiseOnDevice, deviceStepPlan } from './device-denoise.js';
import { checkVocabulary } from './vocabulary-check.js';
import { SAMPLER_NAMES, type RandomSource, type RgbImage, type SamplerName, type Scheduler, type SchedulerStepResult } from '../types.js';

/**
 * The named stages every pipeline in this folder is assembled from, in the order diffusers' StableDiffusionPipeline
 * runs them: checkInputs → encodePrompt → prepareNoise / prepareTimesteps / prepareLatents → denoise → decodeLatents →
 * finish. Each pipeline file (text-to-image.ts, image-to-image.ts, inpaint.ts, blend.ts) is a short list of these.
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

/**
 * Tensors that crossed between host memory and an accelerator, per stage: each feed handed over from host memory is an
 * upload, each output that comes back in host memory a download. Zero on the cpu provider, where nothing moves.
 */
export type HostDeviceCopies = Record<Stage, { uploads: number; downloads: number }>;

export interface GenerateResult {
  images: RgbImage[];
  seeds: number[];
  /** What each image was made with, in A1111's terms, for the PNG `parameters` chunk and history. */
  parameters: GenerationParameters[];
  /** Things the user should be told (e.g. the part of a prompt that did not fit). */
  warnings: string[];
  timingsMs: StageTimingsMs;
  copies: HostDeviceCopies;
}

const PREVIEW_MAX_SIDE_PX = 256;

export interface ResolvedOptions {
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

export type Stage = 'textEncoderMs' | 'unetMs' | 'vaeMs' | 'previewMs';

/** One pipeline call: the checked settings and what every stage reads and adds to. */
export interface PipelineRun {
  model: ModelFolder;
  settings: ResolvedOptions;
  options: GenerateOptions;
  /** [batch, latent channels, height / f, width / f]. */
  latentDims: [number, number, number, number];
  seeds: number[];
  warnings: string[];
  timings: StageTimingsMs;
  copies: HostDeviceCopies;
  startedMs: number;
  run(stage: Stage, component: Component, feeds: ort.InferenceSession.FeedsType): Promise<ort.InferenceSession.ReturnType>;
  /** Runs that go at once (the UNet's lanes, all on the cpu provider), timed as one. */
  runTogether(stage: Stage, calls: readonly (() => Promise<ort.InferenceSession.ReturnType>)[]): Promise<ort.InferenceSession.ReturnType[]>;
}

/** Fills in the model's defaults and refuses anything the pipeline cannot honour, saying what to change. */
export function checkInputs(model: ModelFolder, options: GenerateOptions): PipelineRun {
  const startedMs = performance.now();
  const { description } = model;
  const [defaultWidth, defaultHeight] = description.defaultSize;
  const sampler = options.sampler ?? description.defaultSampler;
  // The lcm sampler runs the folder's distilled UNet when it has one, at the steps and guidance it was distilled for.
  const lcmUnet = sampler === 'lcm' ? model.lcmUnet : undefined;
  const lcmDefaults = lcmUnet ? description.lcmUnet : null;
  const settings: ResolvedOptions = {
    prompt: options.prompt?.trim() ?? '',
    negativePrompt: options.negativePrompt?.trim() ?? '',
    width: options.width ?? defaultWidth,
    height: options.height ?? defaultHeight,
    steps: options.steps ?? lcmDefaults?.steps ?? description.defaultSteps,
    guidance: options.guidance ?? lcmDefaults?.guidance ?? description.defaultGuidance,
    sampler,
    seed: options.seed,
    batch: options.batch ?? 1,
  };
  const { steps, guidance, seed, batch } = LIMITS;
  if (settings.prompt.length === 0) throw invalidInput('The prompt is empty: describe the picture you want, e.g. "a fox in the snow".');
  for (const [label, text] of [['prompt', settings.prompt], ['negative prompt', settings.negativePrompt]] as const) {
    if (text.length > LIMITS.promptChars) {
      throw invalidInput(`The ${label} is ${text.length} characters long; shorten it to at most ${LIMITS.promptChars}.`);
    }
    const problem = promptTextProblem(text, { mayBeBlank: label === 'negative prompt' });
    if (problem) throw invalidInput(`The ${label} ${problem}.`);
  }
  if (!SAMPLER_NAMES.includes(settings.sampler)) {
    throw invalidInput(`Unknown sampler '${settings.sampler}'. Use one of: ${SAMPLER_NAMES.join(', ')}.`);
  }
  if (!Number.isInteger(settings.steps) || settings.steps < steps.min || settings.steps > steps.max) {
    throw invalidInput(`Steps must be a whole number from ${steps.min} to ${steps.max}; got ${settings.steps}.`);
  }
  if (!Number.isFinite(settings.guidance) || settings.guidance < guidance.min || settings.guidance > guidance.max) {
    throw invalidInput(`Guidance (CFG scale) must be a number from ${guidance.min} to ${guidance.max}; got ${settings.guidance}.`);
  }
  if (!Number.isInteger(settings.seed) || settings.seed < seed.min || settings.seed > seed.max) {
    throw invalidInput(`The seed must be a whole number from ${seed.min} to ${seed.max}; got ${settings.seed}.`);
  }
  if (!Number.isInteger(settings.batch) || settings.batch < batch.min || settings.batch > batch.max) {
    throw invalidInput(`Batch must be 1, 2, 3 or 4 images; got ${settings.batch}.`);
  }
  checkSize(model, settings.width, settings.height);
  if (options.init) checkStrength(options.init.strength);
  if (options.variation) {
    const { seed: variationSeed, strength } = options.variation;
    if (!Number.isInteger(variationSeed) || variationSeed < seed.min || variationSeed > seed.max) {
      throw invalidInput(`The variation seed must be a whole number from ${seed.min} to ${seed.max}; got ${variationSeed}.`);
    }
    if (!(strength >= LIMITS.variationStrength.min && strength <= LIMITS.variationStrength.max)) {
      throw invalidInput(`Variation strength must be from 0 to 1; got ${strength}.`);
    }
  }

  const timings: StageTimingsMs = { textEncoderMs: 0, unetMs: 0, vaeMs: 0, previewMs: 0, ortMs: 0, wallMs: 0 };
  const none = () => ({ uploads: 0, downloads: 0 });
  const copies: HostDeviceCopies = { textEncoderMs: none(), unetMs: none(), vaeMs: none(), previewMs: none() };
  const onDevice = model.executionProviders[0] !== 'cpu';
  const f = description.vaeScaleFactor;
  return {
    model: lcmUnet ? { ...model, unet: lcmUnet } : model,
    settings,
    options,
    latentDims: [settings.batch, model.latentChannels, settings.height / f, settings.width / f],
    seeds: Array.from({ length: settings.batch }, (_, k) => (settings.seed + k) % (MAX_SEED + 1)),
    warnings: [],
    timings,
    copies,
    startedMs,
    async run(stage, component, feeds) {
      const before = performance.now();
      const outputs = await component.session.run(feeds);
      const elapsed = performance.now() - before;
      timings[stage] += elapsed;
      timings.ortMs += elapsed;
      if (onDevice) {
        copies[stage].uploads += Object.values(feeds).filter((tensor) => tensor.location === 'cpu').length;
        copies[stage].downloads += Object.values(outputs).filter((tensor) => tensor.location === 'cpu').length;
      }
      return outputs;
    },
    async runTogether(stage, calls) {
      const before = performance.now();
      // The last call starts first: the first runs on this thread's own session, whose run() holds the thread until done.
      const started = new Array<Promise<ort.InferenceSession.ReturnType>>(calls.length);
      for (let k = calls.length - 1; k >= 0; k--) started[k] = calls[k]();
      const outputs = await Promise.all(started);
      const elapsed = performance.now() - before;
      timings[stage] += elapsed;
      timings.ortMs += elapsed;
      return outputs;
    },
  };
}

export function checkStrength(strength: number): void {
  if (!(strength > LIMITS.strength.above && strength <= LIMITS.strength.max)) {
    throw invalidInput(`Strength must be greater than 0 and at most 1; got ${strength}.`);
  }
}

/** A size the model makes, or an error that lists the ones it does. */
export function checkSize(model: Pick<ModelFolder, 'name' | 'description'>, width: number, height: number): void {
  const { sizes, sizeMultiple: multiple, maxSidePx: maxSide } = model.description;
  const listed = sizes?.map(([w, h]) => `${w}x${h}`).join(', ');
  if (!Number.isInteger(width) || !Number.isInteger(height) || width % multiple !== 0 || height % multiple !== 0) {
    throw invalidInput(
      `Width and height must be multiples of ${multiple} for this model; ${width}x${height} is not.` +
        (listed ? ` Supported sizes: ${listed}.` : ` Try ${roundTo(width, multiple)}x${roundTo(height, multiple)}.`),
    );
  }
  if (sizes && !sizes.some(([w, h]) => w === width && h === height)) {
    throw invalidInput(`The model ${model.name} was trained for ${listed} only; ${width}x${height} would come out as noise. Pick one of those sizes.`);
  }
  if (width > maxSide || height > maxSide || width < multiple || height < multiple) {
    throw invalidInput(`Width and height must be from ${multiple} to ${maxSide} pixels for ${model.name}; got ${width}x${height}.`);
  }
}

const roundTo = (value: number, multiple: number) => Math.max(multiple, Math.round(value / multiple) * multiple);

export interface PromptEmbeddings {
  /** Text-encoder states for every UNet input, in UNet batch order [uncond × batch, cond × batch]. */
  states: Float32Array;
  tokens: number;
  hidden: number;
  /** Classifier-free guidance is on (guidance > 1): every UNet call carries an unconditional half. */
  guided: boolean;
  /** SDXL: the second encoder's pooled text_embeds for every UNet input, in the same order, and their width. */
  pooled?: { values: Float32Array; width: number };
}

/** The prompt (and the negative prompt, the unconditional half of classifier-free guidance) through the text encoder. */
export async function encodePrompt(run: PipelineRun): Promise<PromptEmbeddings> {
  const { model, settings } = run;
  const guided = settings.guidance > 1;
  const texts = guided ? [settings.negativePrompt, settings.prompt] : [settings.prompt];
  const prompts = texts.map((text) => model.tokenizer.encode(text));
  const cond = prompts[prompts.length - 1];
  if (cond.droppedTokens > 0) {
    run.warnings.push(
      `The prompt is longer than the model reads (${model.tokenizer.maxLength} tokens); this part was ignored: "${cond.droppedText}". Shorten the prompt to use it.`,
    );
  }
  if (guided && prompts[0].droppedTokens > 0) run.warnings.push(`The negative prompt was cut; ignored: "${prompts[0].droppedText}".`);
  const ids = prompts.map((prompt) => prompt.ids);
  const outputs = await run.run('textEncoderMs', model.textEncoder, { [model.textEncoder.ids.name]: idsTensor(model.textEncoder.ids, ids) });
  await checkVocabulary(run, outputs, prompts.length - 1);
  if (model.textEncoder2) return encodeSecondPrompt(run, texts, outputs, guided);
  const hiddenStates = outputs[model.textEncoder.hiddenStates];
  const [, tokens, hidden] = hiddenStates.dims;
  return { states: repeatPerImage(run, floatData(hiddenStates), prompts.length), tokens, hidden, guided };
}

/**
 * SDXL (diffusers' StableDiffusionXLPipeline.encode_prompt): both encoders' penultimate hidden states, concatenated
 * token by token, and the second encoder's pooled text_embeds. With no negative prompt the unconditional half is all
 * zeros when the folder says force_zeros_for_empty_prompt, as SDXL's does.
 */
async function encodeSecondPrompt(run: PipelineRun, texts: string[], firstOutputs: ort.InferenceSession.ReturnType, guided: boolean): Promise<PromptEmbeddings> {
  const { model, settings } = run;
  const encoder = model.textEncoder2!;
  const ids = texts.map((text) => model.tokenizer2!.encode(text).ids);
  const secondOutputs = await run.run('textEncoderMs', encoder, { [encoder.ids.name]: idsTensor(encoder.ids, ids) });
  const first = firstOutputs[model.textEncoder.penultimate!];
  const second = secondOutputs[encoder.penultimate!];
  const [count, tokens, firstWidth] = first.dims;
  const secondWidth = second.dims[2];
  const hidden = firstWidth + secondWidth;
  const [a, b] = [floatData(first), floatData(second)];
  const states = new Float32Array(count * tokens * hidden);
  for (let row = 0; row < count * tokens; row++) {
    states.set(a.subarray(row * firstWidth, (row + 1) * firstWidth), row * hidden);
    states.set(b.subarray(row * secondWidth, (row + 1) * secondWidth), row * hidden + firstWidth);
  }
  const pooledTensor = secondOutputs[encoder.pooled!];
  const pooled = floatData(pooledTensor).slice();
  const width = pooledTensor.dims[1];
  if (guided && settings.negativePrompt === '' && model.description.forceZerosForEmptyPrompt) {
    states.fill(0, 0, tokens * hidden);
    pooled.fill(0, 0, width);
  }
  return {
    states: repeatPerImage(run, states, count),
    tokens,
    hidden,
    guided,
    pooled: { values: repeatPerImage(run, pooled, count), width },
  };
}

/** Per-prompt rows [uncond, cond] as UNet batch order [uncond × batch, cond × batch]. */
function repeatPerImage(run: PipelineRun, perPromptRows: Float32Array, promptCount: number): Float32Array {
  const { batch } = run.settings;
  const perPrompt = perPromptRows.length / promptCount;
  const out = new Float32Array(perPrompt * promptCount * batch);
  for (let p = 0; p < promptCount; p++) {
    for (let k = 0; k < batch; k++) out.set(perPromptRows.subarray(p * perPrompt, (p + 1) * perPrompt), (p * batch + k) * perPrompt);
  }
  return out;
}

export interface Noise {
  /** The starting noise of every image, [batch, C, h, w]. */
  noise: Float32Array;
  /** What the scheduler draws from during the loop: each image's share from that image's own stream. */
  stepRandom: RandomSource;
}

/** One random stream per image, so image k is reproducible alone with seed + k; variation seeds slerp in. */
export function prepareNoise(run: PipelineRun): Noise {
  const { variation } = run.options;
  const [batch, ...perImageDims] = run.latentDims;
  const perImage = perImageDims.reduce((a, b) => a * b, 1);
  const randoms = run.seeds.map((seed) => createRandom(seed));
  const variationRandoms = variation ? run.seeds.map((_, k) => createRandom((variation.seed + k) % (MAX_SEED + 1))) : undefined;
  const noise = new Float32Array(perImage * batch);
  randoms.forEach((random, k) => {
    let imageNoise = random.randn(perImage);
    if (variationRandoms && variation!.strength > 0) imageNoise = slerp(variation!.strength, imageNoise, variationRandoms[k].randn(perImage));
    noise.set(imageNoise, k * perImage);
  });
  return { noise, stepRandom: batchRandom(randoms) };
}

export interface Schedule {
  scheduler: Scheduler;
  /** The timesteps this call runs, in order. */
  timesteps: number[];
}

/**
 * A fresh scheduler for this call. With a strength (image-to-image, inpainting) only the last `strength` share of the
 * schedule runs — diffusers' convention — and the scheduler is told where it begins.
 */
export function prepareTimesteps(run: PipelineRun, strength?: number): Schedule {
  const { settings, model } = run;
  const scheduler = createScheduler(settings.sampler, parseSchedulerConfig(model.schedulerConfig), { eta: run.options.eta });
  scheduler.setTimesteps(settings.steps);
  const timesteps = [...scheduler.timesteps];
  if (strength === undefined) return { scheduler, timesteps };
  const initSteps = Math.min(Math.floor(settings.steps * strength), settings.steps);
  const startIndex = settings.steps - initSteps;
  if (initSteps === 0) {
    throw invalidInput(`Strength ${strength} with ${settings.steps} steps leaves no step to run; raise the strength or the steps.`);
  }
  scheduler.setBeginIndex(startIndex);
  return { scheduler, timesteps: timesteps.slice(startIndex) };
}

/**
 * The latents the loop starts from: pure noise at the scheduler's initial σ, or — starting from a picture — its
 * latents (one copy per image) forward-diffused to the first timestep that runs.
 */
export function prepareLatents(run: PipelineRun, schedule: Schedule, { noise }: Noise, imageLatents?: Float32Array): Float32Array {
  if (!imageLatents) return noise.map((value) => value * schedule.scheduler.initNoiseSigma);
  return schedule.scheduler.addNoise(repeatForBatch(run, imageLatents), noise, schedule.timesteps[0]);
}

/** One image's tensor repeated for every image of the batch. */
export function repeatForBatch(run: PipelineRun, single: Float32Array): Float32Array {
  const batch = run.settings.batch;
  const out = new Float32Array(single.length * batch);
  for (let k = 0; k < batch; k++) out.set(single, k * single.length);
  return out;
}

/** A picture [1, 3, H, W] in [-1, 1] to UNet-space latents [1, C, H / f, W / f] through the VAE encoder. */
export async function encodeImage(run: PipelineRun, image: Float32Array): Promise<Float32Array> {
  const { width, height } = run.settings;
  return encodeWith(run.model, image, width, height, (component, feeds) => run.run('vaeMs', component, feeds));
}

type RunSession = (component: Component, feeds: ort.InferenceSession.FeedsType) => Promise<ort.InferenceSession.ReturnType>;

async function encodeWith(model: ModelFolder, image: Float32Array, width: number, height: number, runSession: RunSession): Promise<Float32Array> {
  const encoder = model.vaeEncoder;
  if (!encoder) {
    throw invalidInput(
      `The model ${model.name} has no vae_encoder/model.onnx, so it cannot start from an image (image-to-image, variations, edits). Use a model folder that has one.`,
    );
  }
  if (image.length !== 3 * width * height) {
    throw invalidInput(`The init image must be ${width}x${height} RGB to match the requested size.`);
  }
  const outputs = await runSession(encoder, { [encoder.image.name]: floatTensor(encoder.image, image, [1, 3, height, width]) });
  const raw = floatData(outputs[encoder.output]);
  // latent_parameters hold mean ‖ log-variance; taking the mean (the distribution's mode) keeps img2img deterministic.
  const mean = encoder.outputsMeanAndLogvar ? raw.subarray(0, raw.length / 2) : raw;
  return mean.map((value) => value * model.description.scalingFactor);
}

/**
 * A picture through the VAE encoder and decoder: the best an edit's kept region can come back as, since every edit's
 * result is decoded from latents.
 */
export async function vaeRoundTrip(model: ModelFolder, picture: RgbImage): Promise<RgbImage> {
  const { width, height } = picture;
  const runSession: RunSession = (component, feeds) => component.session.run(feeds);
  const latents = await encodeWith(model, rgbToTensor(picture), width, height, runSession);
  const f = model.description.vaeScaleFactor;
  const [decoded] = await decodeWith(model, latents, [1, model.latentChannels, height / f, width / f], runSession);
  return decoded;
}

/**
 * What a 9-channel inpainting UNet reads beside the latents, for one image: the repaint mask at latent size and the
 * latents of the picture with the repainted area blanked, [1 + C, h, w] (diffusers' prepare_mask_latents: the mask is
 * binarised at 0.5, the masked picture is picture × (mask < 0.5)).
 */
export async function inpaintingConditioning(run: PipelineRun, image: Float32Array, mask: Mask): Promise<Float32Array> {
  const repaint = binarize(mask);
  const plane = repaint.data.length;
  const masked = image.map((value, i) => (repaint.data[i % plane] === 1 ? 0 : value));
  const maskedLatents = await encodeImage(run, masked);
  const cells = latentMask(repaint, run.model.description.vaeScaleFactor).map((share) => (share >= 0.5 ? 1 : 0));
  const channels = new Float32Array(cells.length + maskedLatents.length);
  channels.set(cells);
  channels.set(maskedLatents, cells.length);
  return channels;
}

/**
 * For a 9-channel inpainting UNet asked for a whole picture (text-to-image, image-to-image): everything masked and a
 * blank (grey) masked picture, as A1111 conditions inpainting models outside inpainting. Nothing for other UNets.
 */
export async function wholePictureConditioning(run: PipelineRun): Promise<Float32Array | undefined> {
  if (!run.model.unet.inpainting) return undefined;
  const { width, height } = run.settings;
  const everything: Mask = { width, height, data: new Float32Array(width * height).fill(1) };
  return inpaintingConditioning(run, new Float32Array(3 * width * height), everything);
}

export interface DenoiseInputs {
  schedule: Schedule;
  latents: Float32Array;
  prompt: PromptEmbeddings;
  noise: Noise;
  /** 9-channel UNets: one image's mask and masked-picture latents, put after the scaled latents of every UNet input. */
  conditioning?: Float32Array;
  /** Inpainting with masked latent blending: the part of the picture that is kept. */
  keptRegion?: KeptRegion;
}

export interface KeptRegion {
  /** The picture's latents, one copy per image, [batch, C, h, w]. */
  clean: Float32Array;
  /** The soft repaint mask at latent size, [h, w]: 1 = repainted, 0 = the picture's own latents. */
  mask: Float32Array;
  /** Blend after every step (plain UNets), or only after the last one (inpainting UNets keep the region themselves). */
  everyStep: boolean;
}

/**
 * The loop, as diffusers writes it: for each timestep scale → UNet (unconditional and conditional halves in one call)
 * → guidance → scheduler step → (inpainting: kept region) → preview callback. On the webgpu provider, with a sampler
 * whose step is linear in the latents, the prediction, the previous x̂0 and fresh noise (every one of ours unless x̂0
 * is clipped), the same loop runs with the latents kept on the GPU (device-denoise.ts).
 */
export async function denoise(run: PipelineRun, inputs: DenoiseInputs): Promise<Float32Array> {
  const plan = deviceStepPlan(run, inputs);
  if (plan) return denoiseOnDevice(run, inputs, plan);
  const { schedule, prompt, noise, conditioning, keptRegion } = inputs;
  const { scheduler, timesteps } = schedule;
  const { signal, onStep } = run.options;
  let latents = inputs.latents;
  for (let i = 0; i < timesteps.length; i++) {
    if (signal?.aborted) throw new EngineError('cancelled', 'The generation was cancelled.');
    const t = timesteps[i];
    const scaled = scheduler.scaleModelInput(latents, t);
    const copies = prompt.guided ? [scaled, scaled] : [scaled];
    const modelInput = conditioning ? copies.flatMap((copy) => withConditioning(run, copy, conditioning)) : copies;
    const prediction = await runUnet(run, concat(modelInput), t, prompt);
    const guided = prompt.guided ? applyGuidance(prediction, run.settings.guidance) : prediction;
    let result = scheduler.step(guided, t, latents, noise.stepRandom);
    if (keptRegion) result = keepRegion(keptRegion, schedule, noise, i, result);
    latents = result.prevSample;
    if (onStep) reportStep(run, i + 1, timesteps.length, result.predOriginalSample);
  }
  return latents;
}

/**
 * latents ← (1 − m) · kept + m · latents, with m the soft mask at latent size and `kept` the picture's latents noised
 * to the next timestep (clean after the last one). Plain UNets get it after every step (diffusers' convention for
 * 4-channel UNets); inpainting UNets keep the region themselves and get it once, after the last step (A1111's). The
 * preview's x̂0 gets the clean picture's latents in the kept region at every step.
 */
function keepRegion(region: KeptRegion, { scheduler, timesteps }: Schedule, { noise }: Noise, index: number, result: SchedulerStepResult): SchedulerStepResult {
  const last = index === timesteps.length - 1;
  const predOriginalSample = blendKeptRegion(region, region.clean, result.predOriginalSample);
  if (!last && !region.everyStep) return { ...result, predOriginalSample };
  const kept = last ? region.clean : scheduler.addNoise(region.clean, noise, timesteps[index + 1]);
  return { prevSample: blendKeptRegion(region, kept, result.prevSample), predOriginalSample };
}

/** (1 − m) · kept + m · painted, the mask repeated over images and channels. */
export function blendKeptRegion({ mask }: KeptRegion, kept: Float32Array, painted: Float32Array): Float32Array {
  return painted.map((value, i) => {
    const m = mask[i % mask.length];
    return (1 - m) * kept[i] + m * value;
  });
}

/** Tells the caller a step is done; its preview reads x̂0 (`predicted`, or what `predicted()` resolves to) only when asked. */
export function reportStep(run: PipelineRun, step: number, totalSteps: number, predicted: Float32Array | (() => Promise<Float32Array>)): void {
  const { settings, timings } = run;
  run.options.onStep!({
    step,
    totalSteps,
    preview: async () => {
      const before = performance.now();
      const predictedLatents = typeof predicted === 'function' ? await predicted() : predicted;
      const images = await previewImages(run.model, predictedLatents, run.latentDims);
      const grid = images.length > 1 ? makeGrid(images) : images[0];
      // Previews come out at latent size; show them at (at most) the size of the final image or grid.
      const finalSide = Math.max(settings.width, settings.height) * (images.length > 1 ? 2 : 1);
      const webp = await encodeWebp(grid, { maxSide: Math.min(PREVIEW_MAX_SIDE_PX, finalSide), quality: 70, enlarge: true, effort: 0 });
      timings.previewMs += performance.now() - before;
      return webp;
    },
  });
}

/** [batch, C, h, w] latents with one image's conditioning channels after each, as [batch, C + extra, h, w]. */
function withConditioning(run: PipelineRun, latents: Float32Array, channels: Float32Array): Float32Array[] {
  const [batch] = run.latentDims;
  const perImage = latents.length / batch;
  return Array.from({ length: batch }, (_, k) => concat([latents.subarray(k * perImage, (k + 1) * perImage), channels]));
}

async function runUnet(run: PipelineRun, sample: Float32Array, timestep: number, prompt: PromptEmbeddings): Promise<Float32Array> {
  const { unet } = run.model;
  const [batch, , h, w] = run.latentDims;
  const total = batch * (prompt.guided ? 2 : 1);
  // Exports with a fixed batch dimension are run in chunks of that size; dynamic ones in one part per lane.
  const lanes = Math.min(1 + unet.lanes.length, total);
  const chunk = unet.maxBatch ?? Math.ceil(total / lanes);
  if (total % chunk !== 0 && unet.maxBatch !== null) {
    throw invalidInput(`This UNet takes batches of exactly ${chunk}; use a batch size that makes ${total} UNet inputs a multiple of it.`);
  }
  const perSample = sample.length / total;
  const perOutput = run.model.latentChannels * h * w;
  const perStates = prompt.states.length / total;
  const feeds = (start: number, size: number): ort.InferenceSession.FeedsType => ({
    [unet.sample.name]: floatTensor(unet.sample, sample.subarray(start * perSample, (start + size) * perSample), [size, unet.inChannels, h, w]),
    [unet.timestep.name]: timestepTensor(unet.timestep, timestep, size),
    [unet.hiddenStates.name]: floatTensor(unet.hiddenStates, prompt.states.subarray(start * perStates, (start + size) * perStates), [size, prompt.tokens, prompt.hidden]),
    ...sdxlConditioning(run, prompt, start, size),
  });
  const out = new Float32Array(total * perOutput);
  if (lanes === 1) {
    for (let start = 0; start < total; start += chunk) {
      const prediction = (await run.run('unetMs', unet, feeds(start, chunk)))[unet.output];
      out.set(await toHost(run, 'unetMs', prediction), start * perOutput);
      if (prediction.location !== 'cpu') prediction.dispose();
    }
    return out;
  }
  const runners = [unet.session, ...unet.lanes];
  for (let wave = 0; wave < total; wave += chunk * lanes) {
    const starts = runners.map((_, k) => wave + k * chunk).filter((start) => start < total);
    const outputs = await run.runTogether(
      'unetMs',
      starts.map((start, k) => () => runners[k].run(feeds(start, Math.min(chunk, total - start)))),
    );
    outputs.forEach((output, k) => out.set(floatData(output[unet.output]), starts[k] * perOutput));
  }
  return out;
}

/** A float tensor's values on the host, counting the download when it comes from the device. */
export async function toHost(run: PipelineRun, stage: Stage, tensor: ort.Tensor): Promise<Float32Array> {
  if (tensor.location !== 'cpu') run.copies[stage].downloads += 1;
  return hostFloatData(tensor, run.model.device);
}

/**
 * SDXL's extra UNet inputs for UNet inputs [start, start + chunk): the pooled prompt, and time_ids = original size,
 * crop top-left, target size as (height, width) pairs in pixels — the picture's own size, uncropped, as diffusers
 * defaults to.
 */
export function sdxlConditioning(run: PipelineRun, prompt: PromptEmbeddings, start: number, chunk: number): ort.InferenceSession.FeedsType {
  const { unet } = run.model;
  if (!unet.textEmbeds || !unet.timeIds || !prompt.pooled) return {};
  const { width, height } = run.settings;
  const { values, width: pooledWidth } = prompt.pooled;
  const timeIds = new Float32Array(chunk * 6);
  for (let k = 0; k < chunk; k++) timeIds.set([height, width, 0, 0, height, width], k * 6);
  return {
    [unet.textEmbeds.name]: floatTensor(unet.textEmbeds, values.subarray(start * pooledWidth, (start + chunk) * pooledWidth), [chunk, pooledWidth]),
    [unet.timeIds.name]: floatTensor(unet.timeIds, timeIds, [chunk, 6]),
  };
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

export async function decodeLatents(run: PipelineRun, latents: Float32Array): Promise<RgbImage[]> {
  return decodeWith(run.model, latents, run.latentDims, (component, feeds) => run.run('vaeMs', component, feeds));
}

async function decodeWith(model: ModelFolder, latents: Float32Array, dims: readonly number[], runSession: RunSession): Promise<RgbImage[]> {
  const { vaeDecoder } = model;
  const unscaled = latents.map((value) => value / model.description.scalingFactor);
  const outputs = await runSession(vaeDecoder, { [vaeDecoder.latents.name]: floatTensor(vaeDecoder.latents, unscaled, dims) });
  const decoded = outputs[vaeDecoder.output];
  return decodedToImages(floatData(decoded), decoded.dims, 'minus1to1');
}

/** The result with each image's A1111 parameters; `extra` adds what this pipeline did beyond text-to-image. */
export function finish(run: PipelineRun, images: RgbImage[], extra: Partial<GenerationParameters> = {}): GenerateResult {
  const { settings, options, model } = run;
  run.timings.wallMs = performance.now() - run.startedMs;
  return {
    images,
    seeds: run.seeds,
    warnings: run.warnings,
    timingsMs: run.timings,
    copies: run.copies,
    parameters: run.seeds.map((seed) => ({
      prompt: settings.prompt,
      negativePrompt: settings.negativePrompt,
      steps: settings.steps,
      sampler: settings.sampler,
      guidance: settings.guidance,
      seed,
      width: settings.width,
      height: settings.height,
      model: model.name,
      ...(options.variation ? { variationSeed: options.variation.seed, variationStrength: options.variation.strength } : {}),
      ...extra,
    })),
  };
}

const fittedCoefficients = new WeakMap<ModelFolder, LatentRgbCoefficients>();

async function previewImages(model: ModelFolder, predictedLatents: Float32Array, dims: readonly number[]): Promise<RgbImage[]> {
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
  if (model.description.settings.latentRgb) return model.description.settings.latentRgb;
  const cached = fittedCoefficients.get(model);
  if (cached) return cached;
  const dims = [1, model.latentChannels, 8, 8];
  const latents = createRandom(0).randn(dims[1] * 64);
  const images = await decodeWith(model, latents, dims, (component, feeds) => component.session.run(feeds));
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

export function concat(parts: readonly Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
