import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { z } from 'zod';
import { ImagineError, invalidInput, modelFailure } from '../core/errors.js';
import { SAMPLER_NAMES, type SamplerName } from './types.js';
import { readJson, readJsonIfPresent } from './json-files.js';
import { loadTokenizer, type PromptTokenizer } from './tokenizer.js';

/**
 * Loads a Stable-Diffusion-style pipeline folder in the Hugging Face Optimum ONNX layout and checks, from each ONNX
 * session's own metadata, that it can be driven the way the pipeline needs. Exports differ in small ways (int32 or
 * int64 ids, int64 [B] or float scalar timesteps, fp16 or fp32, latent_sample or latent_parameters); all of those load,
 * anything else is one error naming the file, the tensor and what was expected.
 */

/** Largest width or height for folders that do not declare their own. */
const DEFAULT_MAX_SIDE_PX = 2048;

export const EXECUTION_PROVIDERS = ['cpu', 'cuda', 'tensorrt', 'coreml', 'dml', 'webgpu'] as const;
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];

export interface RuntimeOptions {
  executionProviders?: readonly ExecutionProvider[];
  /** Threads inside one operator; on small CPUs 1 is often as fast as more, with steadier latency. */
  intraOpNumThreads?: number;
}

export type TensorType = 'float32' | 'float16' | 'int32' | 'int64';

export interface TensorPort {
  name: string;
  type: TensorType;
  /** Declared dims: numbers are fixed, strings are dynamic. */
  dims: readonly (number | string)[];
}

export interface Component {
  session: ort.InferenceSession;
  file: string;
}

const LatentRgb = z.object({
  matrix: z.array(z.array(z.number()).length(3)).min(1),
  bias: z.array(z.number()).length(3),
});

const Settings = z.object({
  name: z.string().min(1).max(100).optional(),
  latentRgb: LatentRgb.optional(),
  sizes: z.array(z.tuple([z.number().int().positive(), z.number().int().positive()])).min(1).optional(),
  defaultSize: z.tuple([z.number().int().positive(), z.number().int().positive()]).optional(),
  maxSidePx: z.number().int().positive().optional(),
  defaultSteps: z.number().int().min(1).max(150).optional(),
  defaultSampler: z.enum(SAMPLER_NAMES).optional(),
  defaultGuidance: z.number().min(0).max(30).optional(),
});
export type ModelSettings = z.infer<typeof Settings>;
export type LatentRgbCoefficients = z.infer<typeof LatentRgb>;

export interface ModelFolder {
  dir: string;
  name: string;
  tokenizer: PromptTokenizer;
  textEncoder: Component & { ids: TensorPort; hiddenStates: string };
  unet: Component & { sample: TensorPort; timestep: TensorPort; hiddenStates: TensorPort; output: string; maxBatch: number | null };
  vaeDecoder: Component & { latents: TensorPort; output: string };
  vaeEncoder?: Component & { image: TensorPort; output: string; outputsMeanAndLogvar: boolean };
  /** A TAESD-format tiny decoder: UNet-space latents in, RGB in [0, 1] out. Used for previews when present. */
  taesdDecoder?: Component & { latents: TensorPort; output: string };
  upscaler?: Component;
  schedulerConfig: unknown;
  latentChannels: number;
  /** Pixels per latent cell (8 for Stable Diffusion). */
  vaeScaleFactor: number;
  /** The VAE's latent scaling factor (0.18215 for SD 1.x): UNet-space latents = VAE latents × this. */
  scalingFactor: number;
  /** Width and height must be multiples of this. */
  sizeMultiple: number;
  settings: ModelSettings;
  description: ModelDescription;
  defaultSize: readonly [number, number];
  executionProviders: readonly ExecutionProvider[];
  release(): Promise<void>;
}

export async function loadModelFolder(dirArgument: string, runtime: RuntimeOptions = {}): Promise<ModelFolder> {
  const dir = resolve(dirArgument);
  if (!existsSync(dir)) {
    throw modelFailure(`The model folder ${dir} does not exist. Pass --model with a folder in the Hugging Face Optimum ONNX layout (model_index.json, tokenizer/, text_encoder/, unet/, vae_decoder/, scheduler/).`);
  }
  const executionProviders = runtime.executionProviders ?? ['cpu'];
  for (const provider of executionProviders) {
    if (!(EXECUTION_PROVIDERS as readonly string[]).includes(provider)) {
      throw invalidInput(`Unknown execution provider '${provider}'. Use one of: ${EXECUTION_PROVIDERS.join(', ')}.`);
    }
  }
  const description = await describeModelFolder(dir);
  const { settings, textEncoderConfig, unetConfig } = description;
  const schedulerConfig = await readJson(await requireFile(dir, join('scheduler', 'scheduler_config.json')));

  const open = (file: string) => openSession(dir, file, executionProviders, runtime.intraOpNumThreads);
  const opened: Component[] = [];
  const track = async (file: string) => {
    const component = await open(file);
    opened.push(component);
    return component;
  };

  try {
    const textEncoder = await track(join('text_encoder', 'model.onnx'));
    const ids = requireInput(textEncoder, ['input_ids'], ['int32', 'int64'], 2);
    const hiddenStates = requireOutput(textEncoder, ['last_hidden_state']);
    const positions = Number(textEncoderConfig.max_position_embeddings);
    const fixedLength = typeof ids.dims[1] === 'number' ? ids.dims[1] : undefined;
    const tokenizer = await loadTokenizer(join(dir, 'tokenizer'), fixedLength ?? (Number.isInteger(positions) && positions > 2 ? positions : 77));

    const unetComponent = await track(join('unet', 'model.onnx'));
    const sample = requireInput(unetComponent, ['sample'], ['float32', 'float16'], 4);
    const timestep = requireInput(unetComponent, ['timestep'], ['int64', 'float32', 'float16'], [0, 1]);
    const unetHidden = requireInput(unetComponent, ['encoder_hidden_states'], ['float32', 'float16'], 3);
    const unetOutput = requireOutput(unetComponent, ['out_sample']);
    const latentChannels = typeof sample.dims[1] === 'number' ? sample.dims[1] : Number(unetConfig.in_channels ?? 4);

    const vaeDecoderComponent = await track(join('vae_decoder', 'model.onnx'));
    const vaeLatents = requireInput(vaeDecoderComponent, ['latent_sample'], ['float32', 'float16'], 4);
    const vaeOutput = requireOutput(vaeDecoderComponent, ['sample']);

    let vaeEncoder: ModelFolder['vaeEncoder'];
    if (existsSync(join(dir, 'vae_encoder', 'model.onnx'))) {
      const component = await track(join('vae_encoder', 'model.onnx'));
      const image = requireInput(component, ['sample'], ['float32', 'float16'], 4);
      const output = requireOutput(component, ['latent_sample', 'latent_parameters', 'latent_dist']);
      vaeEncoder = { ...component, image, output, outputsMeanAndLogvar: output !== 'latent_sample' };
    }

    let taesdDecoder: ModelFolder['taesdDecoder'];
    if (existsSync(join(dir, 'taesd_decoder', 'model.onnx'))) {
      const component = await track(join('taesd_decoder', 'model.onnx'));
      const latents = requireInput(component, ['latent_sample', 'latents', 'input'], ['float32', 'float16'], 4);
      taesdDecoder = { ...component, latents, output: component.session.outputNames[0] };
    }

    let upscaler: Component | undefined;
    if (existsSync(join(dir, 'upscaler', 'model.onnx'))) {
      upscaler = await track(join('upscaler', 'model.onnx'));
      const [input] = upscaler.session.inputMetadata;
      if (!input || !input.isTensor || (input.type !== 'float32' && input.type !== 'float16') || input.shape.length !== 4) {
        throw mismatch(dir, upscaler.file, input?.name ?? '(first input)', 'a float32 image tensor [1, 3, height, width] (ESRGAN format)');
      }
    }

    const batchDim = sample.dims[0];
    return {
      dir,
      name: description.name,
      tokenizer,
      textEncoder: { ...textEncoder, ids, hiddenStates },
      unet: {
        ...unetComponent,
        sample,
        timestep,
        hiddenStates: unetHidden,
        output: unetOutput,
        maxBatch: typeof batchDim === 'number' && batchDim > 0 ? batchDim : null,
      },
      vaeDecoder: { ...vaeDecoderComponent, latents: vaeLatents, output: vaeOutput },
      vaeEncoder,
      taesdDecoder,
      upscaler,
      schedulerConfig,
      latentChannels,
      vaeScaleFactor: description.vaeScaleFactor,
      scalingFactor: description.scalingFactor,
      sizeMultiple: description.sizeMultiple,
      settings,
      description,
      defaultSize: description.defaultSize,
      executionProviders,
      release: async () => {
        await Promise.all(opened.map((component) => component.session.release()));
      },
    };
  } catch (error) {
    await Promise.allSettled(opened.map((component) => component.session.release()));
    throw error;
  }
}

export interface ModelDescription {
  dir: string;
  name: string;
  settings: ModelSettings;
  /** Pixels per latent cell, from vae_decoder/config.json (diffusers: 2 ** (len(block_out_channels) - 1)). */
  vaeScaleFactor: number;
  scalingFactor: number;
  sizeMultiple: number;
  /** What a request that names nothing else gets. */
  defaultSize: readonly [number, number];
  defaultSteps: number;
  defaultGuidance: number;
  defaultSampler: SamplerName;
  maxSidePx: number;
  textEncoderConfig: Record<string, any>;
  unetConfig: Record<string, any>;
}

/**
 * What a folder says about itself in its JSON files, without loading any ONNX session: enough for a bot process,
 * which runs no model, to validate requests for it.
 */
export async function describeModelFolder(dirArgument: string): Promise<ModelDescription> {
  const dir = resolve(dirArgument);
  await requireFile(dir, 'model_index.json');
  const settings = await readSettings(dir);
  const textEncoderConfig = (await readJsonIfPresent(join(dir, 'text_encoder', 'config.json'))) ?? {};
  const unetConfig = (await readJsonIfPresent(join(dir, 'unet', 'config.json'))) ?? {};
  const vaeConfig = (await readJsonIfPresent(join(dir, 'vae_decoder', 'config.json'))) ?? {};
  const vaeScaleFactor = 2 ** ((Array.isArray(vaeConfig.block_out_channels) ? vaeConfig.block_out_channels.length : 4) - 1);
  const unetDownsampling = Array.isArray(unetConfig.block_out_channels) ? 2 ** (unetConfig.block_out_channels.length - 1) : 1;
  const sampleSize = Number(unetConfig.sample_size);
  const trainedSide = Number.isInteger(sampleSize) && sampleSize > 0 ? sampleSize * vaeScaleFactor : 512;
  return {
    dir,
    name: settings.name ?? basename(dir),
    settings,
    vaeScaleFactor,
    scalingFactor: Number(vaeConfig.scaling_factor ?? 0.18215),
    sizeMultiple: Math.max(8, vaeScaleFactor * unetDownsampling),
    defaultSize: settings.defaultSize ?? settings.sizes?.[0] ?? [trainedSide, trainedSide],
    defaultSteps: settings.defaultSteps ?? 20,
    defaultGuidance: settings.defaultGuidance ?? 7,
    defaultSampler: settings.defaultSampler ?? 'euler-a',
    maxSidePx: settings.maxSidePx ?? Math.max(DEFAULT_MAX_SIDE_PX, ...(settings.sizes ?? []).flat()),
    textEncoderConfig,
    unetConfig,
  };
}

async function openSession(
  dir: string,
  file: string,
  executionProviders: readonly ExecutionProvider[],
  intraOpNumThreads: number | undefined,
): Promise<Component> {
  const path = await requireFile(dir, file);
  try {
    const session = await ort.InferenceSession.create(path, {
      executionProviders: [...executionProviders],
      // onnxruntime-node rejects an explicit undefined here.
      ...(intraOpNumThreads === undefined ? {} : { intraOpNumThreads }),
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
    return { session, file };
  } catch (error) {
    const message = (error as Error).message;
    const accelerated = executionProviders.filter((provider) => provider !== 'cpu');
    if (accelerated.length > 0 && /provider|backend|cuda|tensorrt|coreml|dml|webgpu|shared library|\.so/i.test(message)) {
      throw new ImagineError(
        'model_failure',
        `The execution provider ${accelerated.join(', ')} could not be loaded by this onnxruntime-node (${message}). ` +
          `Install onnxruntime-node's GPU binaries for it (see docs/ARCHITECTURE.md), or run with --provider cpu.`,
        { file: path },
        { cause: error },
      );
    }
    throw modelFailure(`${path} is not a loadable ONNX model: ${message}`, { file: path }, error);
  }
}

function requireInput(
  component: Component,
  names: readonly string[],
  types: readonly TensorType[],
  rank: number | readonly number[],
): TensorPort {
  const ranks = typeof rank === 'number' ? [rank] : rank;
  const meta = component.session.inputMetadata.find((input) => names.includes(input.name));
  return checkPort(component, meta, names, types, ranks, 'input');
}

function requireOutput(component: Component, names: readonly string[]): string {
  const found = component.session.outputNames.find((name) => names.includes(name));
  if (!found) {
    throw mismatch('', component.file, names.join(' or '), `an output named ${names.join(' or ')} (it has ${component.session.outputNames.join(', ')})`);
  }
  return found;
}

function checkPort(
  component: Component,
  meta: ort.InferenceSession.ValueMetadata | undefined,
  names: readonly string[],
  types: readonly TensorType[],
  ranks: readonly number[],
  side: 'input',
): TensorPort {
  const expected = `${types.join(' or ')} of rank ${ranks.join(' or ')}`;
  if (!meta) {
    const present = component.session.inputNames.join(', ');
    throw mismatch('', component.file, names.join(' or '), `an ${side} named ${names.join(' or ')}, ${expected} (it has ${present})`);
  }
  if (!meta.isTensor || !(types as readonly string[]).includes(meta.type) || !ranks.includes(meta.shape.length)) {
    const actual = meta.isTensor ? `${meta.type} of rank ${meta.shape.length}` : 'not a tensor';
    throw mismatch('', component.file, meta.name, `${expected}, but it is ${actual}`);
  }
  return { name: meta.name, type: meta.type as TensorType, dims: meta.shape };
}

function mismatch(dir: string, file: string, tensor: string, expected: string): ImagineError {
  return modelFailure(`${join(dir, file)}: tensor '${tensor}' should be ${expected}. This folder does not fit the Stable Diffusion ONNX layout the engine runs.`, { file, tensor });
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

async function requireFile(dir: string, file: string): Promise<string> {
  const path = join(dir, file);
  if (!existsSync(path)) {
    throw modelFailure(`The model folder ${dir} has no ${file}; the Optimum ONNX layout needs it.`, { file });
  }
  return path;
}
