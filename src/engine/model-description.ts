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
export const COMPONENT_NAMES = ['text_encoder', 'unet', 'vae_decoder', 'vae_encoder', 'taesd_decoder', 'upscaler'] as const;
export type ComponentName = (typeof COMPONENT_NAMES)[number];

export type PipelineFamily = 'stable-diffusion' | 'stable-diffusion-inpaint';

interface PipelineClass {
  family: PipelineFamily;
  /** Components a folder of this class must have; every other known component is opened when the folder has it. */
  required: readonly ComponentName[];
}

const STABLE_DIFFUSION: PipelineClass = { family: 'stable-diffusion', required: ['text_encoder', 'unet', 'vae_decoder'] };
const STABLE_DIFFUSION_IMG2IMG: PipelineClass = { family: 'stable-diffusion', required: ['text_encoder', 'unet', 'vae_decoder', 'vae_encoder'] };
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
};

const LatentRgb = z.object({
  matrix: z.array(z.array(z.number()).length(3)).min(1),
  bias: z.array(z.number()).length(3),
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
  unetConfig: Record<string, any>;
  vaeConfig: Record<string, any>;
  /** What the model was trained to draw (vocabulary.json), or null for a folder that does not say (any SD export). */
  vocabulary: Vocabulary | null;
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
        (/XL/.test(pipelineClass) ? ' SDXL needs a second text encoder, which the engine does not run yet.' : ''),
      { file: 'model_index.json' },
    );
  }
  for (const name of pipeline.required) requireFile(dir, join(name, 'model.onnx'));
  requireFile(dir, join('scheduler', 'scheduler_config.json'));
  const components = COMPONENT_NAMES.filter((name) => pipeline.required.includes(name) || existsSync(join(dir, name, 'model.onnx')));

  const settings = await readSettings(dir);
  const textEncoderConfig = (await readJsonIfPresent(join(dir, 'text_encoder', 'config.json'))) ?? {};
  const unetConfig = (await readJsonIfPresent(join(dir, 'unet', 'config.json'))) ?? {};
  const vaeConfig = (await readJsonIfPresent(join(dir, 'vae_decoder', 'config.json'))) ?? {};
  const vocabulary = await readVocabulary(dir);
  const vaeScaleFactor = 2 ** ((Array.isArray(vaeConfig.block_out_channels) ? vaeConfig.block_out_channels.length : 4) - 1);
  const unetDownsampling = Array.isArray(unetConfig.block_out_channels) ? 2 ** (unetConfig.block_out_channels.length - 1) : 1;
  const sampleSize = Number(unetConfig.sample_size);
  const trainedSide = Number.isInteger(sampleSize) && sampleSize > 0 ? sampleSize * vaeScaleFactor : 512;
  return {
    dir,
    name: settings.name ?? basename(dir),
    pipelineClass,
    family: pipeline.family,
    components,
    settings,
    vaeScaleFactor,
    scalingFactor: Number(vaeConfig.scaling_factor ?? 0.18215),
    sizeMultiple: Math.max(8, vaeScaleFactor * unetDownsampling),
    defaultSize: settings.defaultSize ?? settings.sizes?.[0] ?? [trainedSide, trainedSide],
    sizes: settings.sizes ?? null,
    defaultSteps: settings.defaultSteps ?? 20,
    maxSteps: LIMITS.steps.max,
    defaultGuidance: settings.defaultGuidance ?? 7,
    defaultSampler: settings.defaultSampler ?? 'euler-a',
    maxSidePx: settings.maxSidePx ?? Math.min(LIMITS.sidePx.max, Math.max(LIMITS.defaultMaxSidePx, ...(settings.sizes ?? []).flat())),
    editsImages: components.includes('vae_encoder'),
    inpaintingUnet: Number(unetConfig.in_channels) === 9 || pipeline.family === 'stable-diffusion-inpaint',
    textEncoderConfig,
    unetConfig,
    vaeConfig,
    vocabulary,
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

export function requireFile(dir: string, file: string): string {
  const path = join(dir, file);
  if (!existsSync(path)) {
    throw modelFailure(`The model folder ${dir} has no ${file}; the Optimum ONNX layout needs it.`, { file });
  }
  return path;
}
