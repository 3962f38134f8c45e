import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { z } from 'zod';
import { modelFailure } from './errors.js';
import { readJson, readJsonIfPresent } from './json-files.js';
import { LIMITS } from './limits.js';
import { SAMPLER_NAMES, type SamplerName } from './types.js';
import { vocabularySchema, type Vocabulary } from './vocabulary.js';

/**
 * What a model folder says about itself in its JSON files — model_index.json, imagine.json and the components'
 * config.json — without opening any ONNX session, so a process that runs no model (the bot role) can validate requests
 * for it without loading onnxruntime. src/engine/model-folder.ts opens the sessions this description lists.
 */

/** The ONNX components the engine can run, each in its own folder as `<name>/model.onnx` (Optimum's layout). */
export const COMPONENT_NAMES = ['text_encoder', 'text_encoder_2', 'unet', 'unet_lcm', 'vae_decoder', 'vae_encoder', 'taesd_decoder', 'upscaler'] as const;
export type ComponentName = (typeof COMPONENT_NAMES)[number];

export type PipelineFamily = 'stable-diffusion' | 'stable-diffusion-inpaint' | 'stable-diffusion-xl';

interface PipelineClass {
  family: PipelineFamily;
  /** Components a folder of this class must have; every other known component is opened when the folder has it. */
  required: readonly ComponentName[];
}

const STABLE_DIFFUSION: PipelineClass = { family: 'stable-diffusion', required: ['text_encoder', 'unet', 'vae_decoder'] };
const STABLE_DIFFUSION_IMG2IMG: PipelineClass = { family: 'stable-diffusion', required: ['text_encoder', 'unet', 'vae_decoder', 'vae_encoder'] };
const STABLE_DIFFUSION_XL: PipelineClass = { family: 'stable-diffusion-xl', required: ['text_encoder', 'text_encoder_2', 'unet', 'vae_decoder'] };
const STABLE_DIFFUSION_XL_IMG2IMG: PipelineClass = {
  family: 'stable-diffusion-xl',
  required: ['text_encoder', 'text_encoder_2', 'unet', 'vae_decoder', 'vae_encoder'],
};
const STABLE_DIFFUSION_INPAINT: PipelineClass = {
  family: 'stable-diffusion-inpaint',
  required: ['text_encoder', 'unet', 'vae_decoder', 'vae_encoder'],
};

/**
 * model_index.json's `_class_name` → what to open, as transformers.js picks its sessions from the model type. diffusers
 * names its ONNX pipelines Onnx…, Optimum names them ORT…; a folder saved by either, or by diffusers itself, loads.
 */
const PIPELINE_CLASSES: Record<string, PipelineClass> = {
  StableDiffusionPipeline: STABLE_DIFFUSION,
  OnnxStableDiffusionPipeline: STABLE_DIFFUSION,
  ORTStableDiffusionPipeline: STABLE_DIFFUSION,
  LatentConsistencyModelPipeline: STABLE_DIFFUSION,
  ORTLatentConsistencyModelPipeline: STABLE_DIFFUSION,
  StableDiffusionImg2ImgPipeline: STABLE_DIFFUSION_IMG2IMG,
  OnnxStableDiffusionImg2ImgPipeline: STABLE_DIFFUSION_IMG2IMG,
  ORTStableDiffusionImg2ImgPipeline: STABLE_DIFFUSION_IMG2IMG,
  StableDiffusionInpaintPipeline: STABLE_DIFFUSION_INPAINT,
  OnnxStableDiffusionInpaintPipeline: STABLE_DIFFUSION_INPAINT,
  ORTStableDiffusionInpaintPipeline: STABLE_DIFFUSION_INPAINT,
  StableDiffusionXLPipeline: STABLE_DIFFUSION_XL,
  ORTStableDiffusionXLPipeline: STABLE_DIFFUSION_XL,
  StableDiffusionXLImg2ImgPipeline: STABLE_DIFFUSION_XL_IMG2IMG,
  ORTStableDiffusionXLImg2ImgPipeline: STABLE_DIFFUSION_XL_IMG2IMG,
};

/**
 * SDXL's training buckets at 1024² (Stability's SDXL report, appendix: the aspect ratios it was fine-tuned on), as
 * [width, height]. A folder's buckets are these scaled to the side it was trained at (512 for SDXL-Turbo).
 */
const SDXL_BUCKETS_1024: readonly (readonly [number, number])[] = [
  [1024, 1024],
  [1152, 896],
  [896, 1152],
  [1216, 832],
  [832, 1216],
  [1344, 768],
  [768, 1344],
  [1536, 640],
  [640, 1536],
];

/** Why an SDXL folder needs each of its extra files, for the error that says one is missing. */
const SDXL_FILES: Record<string, string> = {
  [join('text_encoder_2', 'model.onnx')]: "the second text encoder (OpenCLIP ViT-bigG with projection): its penultimate hidden states and pooled text_embeds condition SDXL's UNet",
  [join('tokenizer_2', 'tokenizer.json')]: "the second text encoder's tokenizer (tokenizer.json, or vocab.json and merges.txt)",
};

const LatentRgb = z.object({
  matrix: z.array(z.array(z.number()).length(3)).min(1),
  bias: z.array(z.number()).length(3),
});

/**
 * A folder may carry a second, LCM-distilled UNet (`unet_lcm/`, same interface as `unet/`): the `lcm` sampler runs it
 * instead of the main one, in a few steps and without the unconditional pass (the teacher's guidance is distilled in).
 */
const LcmSettings = z.object({
  steps: z.number().int().min(LIMITS.steps.min).max(8).default(4),
  guidance: z.number().min(LIMITS.guidance.min).max(LIMITS.guidance.max).default(1),
});

const Settings = z.object({
  name: z.string().min(1).max(100).optional(),
  latentRgb: LatentRgb.optional(),
  sizes: z.array(z.tuple([z.number().int().positive(), z.number().int().positive()])).min(1).optional(),
  defaultSize: z.tuple([z.number().int().positive(), z.number().int().positive()]).optional(),
  maxSidePx: z.number().int().positive().max(LIMITS.sidePx.max).optional(),
  defaultSteps: z.number().int().min(LIMITS.steps.min).max(LIMITS.steps.max).optional(),
  defaultSampler: z.enum(SAMPLER_NAMES).optional(),
  defaultGuidance: z.number().min(LIMITS.guidance.min).max(LIMITS.guidance.max).optional(),
  lcm: LcmSettings.optional(),
});
export type ModelSettings = z.infer<typeof Settings>;
export type LatentRgbCoefficients = z.infer<typeof LatentRgb>;

export interface ModelDescription {
  dir: string;
  name: string;
  /** model_index.json's `_class_name`. */
  pipelineClass: string;
  family: PipelineFamily;
  /** The ONNX components this folder has and the loader opens, required ones first. */
  components: readonly ComponentName[];
  settings: ModelSettings;
  /** Pixels per latent cell, from vae_decoder/config.json (diffusers: 2 ** (len(block_out_channels) - 1)). */
  vaeScaleFactor: number;
  /** The VAE's latent scaling factor (0.18215 for SD 1.x): UNet-space latents = VAE latents × this. */
  scalingFactor: number;
  /** Width and height must be multiples of this. */
  sizeMultiple: number;
  /** What a request that names nothing else gets. */
  defaultSize: readonly [number, number];
  /** The only sizes the model makes, when its imagine.json lists them; null when any multiple of sizeMultiple works. */
  sizes: readonly (readonly [number, number])[] | null;
  defaultSteps: number;
  maxSteps: number;
  defaultGuidance: number;
  defaultSampler: SamplerName;
  maxSidePx: number;
  /** It can start from a picture (image-to-image, variations, edits): the folder has a VAE encoder. */
  editsImages: boolean;
  /** The UNet's config says 9 input channels (latents + mask + masked-image latents); the loader confirms it. */
  inpaintingUnet: boolean;
  textEncoderConfig: Record<string, any>;
  /** SDXL: the second text encoder's config.json. */
  textEncoder2Config?: Record<string, any>;
  unetConfig: Record<string, any>;
  /** SDXL: the [width, height] buckets it was trained on, at its own scale; an aspect ratio asks for the nearest. */
  aspectBuckets: readonly (readonly [number, number])[] | null;
  /**
   * SDXL's model_index.json `force_zeros_for_empty_prompt` (true unless it says false): with no negative prompt, the
   * unconditional half of guidance is all zeros, as diffusers does, rather than the encoding of "".
   */
  forceZerosForEmptyPrompt: boolean;
  vaeConfig: Record<string, any>;
  /** What the model was trained to draw (vocabulary.json), or null for a folder that does not say (any SD export). */
  vocabulary: Vocabulary | null;
  /** The folder's LCM-distilled UNet (unet_lcm/) and the steps and guidance it was distilled for; null without one. */
  lcmUnet: { steps: number; guidance: number } | null;
}

export async function describeModelFolder(dirArgument: string): Promise<ModelDescription> {
  const dir = resolve(dirArgument);
  if (!existsSync(dir)) {
    throw modelFailure(
      `The model folder ${dir} does not exist. Pass --model with a folder in the Hugging Face Optimum ONNX layout (model_index.json, tokenizer/, text_encoder/, unet/, vae_decoder/, scheduler/).`,
    );
  }
  const index = await readJson(requireFile(dir, 'model_index.json'));
  const pipelineClass = typeof index?._class_name === 'string' ? index._class_name : '(none)';
  const pipeline = PIPELINE_CLASSES[pipelineClass];
  if (!pipeline) {
    throw modelFailure(
      `${join(dir, 'model_index.json')} describes a ${pipelineClass}; the engine runs ${Object.keys(PIPELINE_CLASSES).join(', ')} folders.` +
        (/XL/.test(pipelineClass) ? ' (SDXL refiner folders, which have no first text encoder, are not run.)' : ''),
      { file: 'model_index.json' },
    );
  }
  const xl = pipeline.family === 'stable-diffusion-xl';
  for (const name of pipeline.required) (xl ? requireSdxlFile : requireFile)(dir, join(name, 'model.onnx'), pipelineClass);
  if (xl && !existsSync(join(dir, 'tokenizer_2', 'vocab.json'))) requireSdxlFile(dir, join('tokenizer_2', 'tokenizer.json'), pipelineClass);
  requireFile(dir, join('scheduler', 'scheduler_config.json'));
  const components = COMPONENT_NAMES.filter((name) => pipeline.required.includes(name) || existsSync(join(dir, name, 'model.onnx')));

  const settings = await readSettings(dir);
  if (settings.lcm && !components.includes('unet_lcm')) requireFile(dir, join('unet_lcm', 'model.onnx'));
  const textEncoderConfig = (await readJsonIfPresent(join(dir, 'text_encoder', 'config.json'))) ?? {};
  const textEncoder2Config = xl ? ((await readJsonIfPresent(join(dir, 'text_encoder_2', 'config.json'))) ?? {}) : undefined;
  const unetConfig = (await readJsonIfPresent(join(dir, 'unet', 'config.json'))) ?? {};
  const vaeConfig = (await readJsonIfPresent(join(dir, 'vae_decoder', 'config.json'))) ?? {};
  const vocabulary = await readVocabulary(dir);
  const vaeScaleFactor = 2 ** ((Array.isArray(vaeConfig.block_out_channels) ? vaeConfig.block_out_channels.length : 4) - 1);
  const unetDownsampling = Array.isArray(unetConfig.block_out_channels) ? 2 ** (unetConfig.block_out_channels.length - 1) : 1;
  const sampleSize = Number(unetConfig.sample_size);
  const trainedSide = Number.isInteger(sampleSize) && sampleSize > 0 ? sampleSize * vaeScaleFactor : xl ? 1024 : 512;
  const sizeMultiple = Math.max(8, vaeScaleFactor * unetDownsampling);
  return {
    dir,
    name: settings.name ?? basename(dir),
    pipelineClass,
    family: pipeline.family,
    components,
    settings,
    vaeScaleFactor,
    scalingFactor: Number(vaeConfig.scaling_factor ?? 0.18215),
    sizeMultiple,
    defaultSize: settings.defaultSize ?? settings.sizes?.[0] ?? [trainedSide, trainedSide],
    sizes: settings.sizes ?? null,
    defaultSteps: settings.defaultSteps ?? 20,
    maxSteps: LIMITS.steps.max,
    // diffusers' defaults: 7.5 for SD 1.x/2.x, 5 for SDXL (SDXL-Turbo folders say 0 in their imagine.json).
    defaultGuidance: settings.defaultGuidance ?? (xl ? 5 : 7),
    defaultSampler: settings.defaultSampler ?? 'euler-a',
    maxSidePx: settings.maxSidePx ?? Math.min(LIMITS.sidePx.max, Math.max(LIMITS.defaultMaxSidePx, ...(settings.sizes ?? []).flat())),
    editsImages: components.includes('vae_encoder'),
    inpaintingUnet: Number(unetConfig.in_channels) === 9 || pipeline.family === 'stable-diffusion-inpaint',
    textEncoderConfig,
    textEncoder2Config,
    unetConfig,
    aspectBuckets: xl ? scaleBuckets(trainedSide, sizeMultiple) : null,
    forceZerosForEmptyPrompt: xl && index.force_zeros_for_empty_prompt !== false,
    vaeConfig,
    vocabulary,
    lcmUnet: components.includes('unet_lcm') ? (settings.lcm ?? LcmSettings.parse({})) : null,
  };
}

async function readVocabulary(dir: string): Promise<Vocabulary | null> {
  const raw = await readJsonIfPresent(join(dir, 'vocabulary.json'));
  if (raw === undefined) return null;
  const parsed = vocabularySchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw modelFailure(`${join(dir, 'vocabulary.json')}: '${issue.path.join('.')}' ${issue.message}.`, { file: 'vocabulary.json' });
  }
  return parsed.data;
}

async function readSettings(dir: string): Promise<ModelSettings> {
  const raw = await readJsonIfPresent(join(dir, 'imagine.json'));
  if (raw === undefined) return {};
  const parsed = Settings.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw modelFailure(`${join(dir, 'imagine.json')}: '${issue.path.join('.')}' ${issue.message}.`);
  }
  return parsed.data;
}

function scaleBuckets(trainedSide: number, sizeMultiple: number): [number, number][] {
  const round = (side: number) => Math.max(sizeMultiple, Math.round((side * trainedSide) / 1024 / sizeMultiple) * sizeMultiple);
  return SDXL_BUCKETS_1024.map(([width, height]) => [round(width), round(height)]);
}

function requireSdxlFile(dir: string, file: string, pipelineClass: string): string {
  const why = SDXL_FILES[file];
  if (why && !existsSync(join(dir, file))) {
    throw modelFailure(`The model folder ${dir} is a ${pipelineClass} folder but has no ${file}: SDXL needs ${why}. Export the whole pipeline (optimum-cli export onnx) into this folder.`, { file });
  }
  return requireFile(dir, file);
}

export function requireFile(dir: string, file: string): string {
  const path = join(dir, file);
  if (!existsSync(path)) {
    throw modelFailure(`The model folder ${dir} has no ${file}; the Optimum ONNX layout needs it.`, { file });
  }
  return path;
}
