import { statSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { EngineError, invalidInput, modelFailure } from './errors.js';
import { readJson } from './json-files.js';
import { describeModelFolder, requireFile, type ComponentName, type ModelDescription } from './model-description.js';
import { createDeviceGraphs, type DeviceGraphs } from './device-graphs.js';
import { encodeModel } from './onnx-graph.js';
import { bindingProviderConfig, checkProviderOptions, type GpuProviderOptions } from './provider-options.js';
import { loadTokenizer, type PromptTokenizer } from './tokenizer.js';
import { openUnetLane, type UnetLane } from './unet-lane.js';

/**
 * Opens the ONNX sessions of a model folder in the Hugging Face Optimum layout — the components its description
 * (src/engine/model-description.ts) lists, all at once — and checks, from each session's own metadata, that it can be
 * driven the way the pipelines need. Exports differ in small ways (int32 or int64 ids, int64 [B] or float scalar
 * timesteps, fp16 or fp32, latent_sample or latent_parameters, 4 or 9 UNet channels); all of those load, anything
 * else is one error naming the file, the tensor and what was expected.
 */

export const EXECUTION_PROVIDERS = ['cpu', 'cuda', 'tensorrt', 'coreml', 'dml', 'webgpu'] as const;
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];

export interface RuntimeOptions {
  executionProviders?: readonly ExecutionProvider[];
  /** Threads inside one operator; on small CPUs 1 is often as fast as more, with steadier latency. */
  intraOpNumThreads?: number;
  /**
   * CPU only: the UNet's batch split over this many sessions that run at once, each on its own thread with
   * intraOpNumThreads / unetLanes threads (src/engine/unet-lane.ts). Each lane holds its own copy of the UNet's weights.
   * Default: 2 for a small UNet (at most 64 MB) given 2 or more threads, 1 otherwise.
   */
  unetLanes?: number;
  /** CUDA/TensorRT settings; one the binding cannot pass is refused at load (src/engine/provider-options.ts). */
  providerOptions?: GpuProviderOptions;
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

export type TextEncoder = Component & {
  ids: TensorPort;
  hiddenStates: string;
  /** CLIP's pooled output (`pooler_output`, or `text_embeds` for projection models) when the export has one. */
  pooled?: string;
  /**
   * The penultimate layer's hidden states, which SDXL conditions on: Optimum exports every layer as hidden_states.0 …
   * hidden_states.L (the penultimate is L − 1); ONNX Runtime's SDXL tooling exports it alone as hidden_states.
   */
  penultimate?: string;
  /** Width of the hidden states, when the export fixes it. */
  hiddenSize?: number;
};
export type Unet = Component & {
  sample: TensorPort;
  timestep: TensorPort;
  hiddenStates: TensorPort;
  output: string;
  maxBatch: number | null;
  /** Channels of `sample`: the latent channels, or latents + 1 mask channel + masked-image latents for inpainting. */
  inChannels: number;
  /** A 9-channel inpainting UNet (diffusers' StableDiffusionInpaintPipeline convention). */
  inpainting: boolean;
  /** SDXL's extra conditioning (addition_embed_type "text_time"): the pooled prompt and the size/crop ids. */
  textEmbeds?: TensorPort;
  timeIds?: TensorPort;
  /** More copies of this UNet on their own threads (RuntimeOptions.unetLanes); a step splits its batch over all of them. */
  lanes: UnetLane[];
};
export type VaeDecoder = Component & { latents: TensorPort; output: string };
export type VaeEncoder = Component & { image: TensorPort; output: string; outputsMeanAndLogvar: boolean };
/** A TAESD-format tiny decoder: UNet-space latents in, RGB in [0, 1] out. Used for previews when present. */
export type TaesdDecoder = Component & { latents: TensorPort; output: string };

export interface ModelFolder {
  dir: string;
  name: string;
  description: ModelDescription;
  tokenizer: PromptTokenizer;
  textEncoder: TextEncoder;
  /** SDXL: tokenizer_2/ and text_encoder_2/ (CLIPTextModelWithProjection). */
  tokenizer2?: PromptTokenizer;
  textEncoder2?: TextEncoder;
  unet: Unet;
  /** The LCM-distilled UNet (unet_lcm/) the `lcm` sampler runs instead of `unet`, when the folder has one. */
  lcmUnet?: Unet;
  vaeDecoder: VaeDecoder;
  vaeEncoder?: VaeEncoder;
  taesdDecoder?: TaesdDecoder;
  upscaler?: Component;
  schedulerConfig: unknown;
  /** Channels of the VAE's latents (4 for Stable Diffusion). */
  latentChannels: number;
  executionProviders: readonly ExecutionProvider[];
  /**
   * On the webgpu provider: the upload/download/step graphs that keep the denoising loop on the GPU. The UNet's outputs
   * then stay on the device (`gpu-buffer`); read them with hostFloatData (src/engine/tensors.ts).
   */
  device?: DeviceGraphs;
  release(): Promise<void>;
}

/** How each component's ports are found and checked, once its session is open. */
const BIND = {
  text_encoder: (component: Component): TextEncoder => {
    const hiddenStates = requireOutput(component, ['last_hidden_state']);
    const width = component.session.outputMetadata.find((output) => output.name === hiddenStates);
    const hiddenSize = width?.isTensor && typeof width.shape[2] === 'number' ? width.shape[2] : undefined;
    return {
      ...component,
      ids: requireInput(component, ['input_ids'], ['int32', 'int64'], 2),
      hiddenStates,
      pooled: component.session.outputNames.find((name) => name === 'pooler_output' || name === 'text_embeds'),
      penultimate: penultimateOutput(component.session.outputNames),
      hiddenSize,
    };
  },
  unet: (component: Component, description: ModelDescription, latentChannels: number): Unet => {
    const sample = requireInput(component, ['sample'], ['float32', 'float16'], 4);
    const batchDim = sample.dims[0];
    // Optimum leaves the channel axis dynamic ('num_channels'); its config.json then says what the weights take.
    const inChannels = typeof sample.dims[1] === 'number' ? sample.dims[1] : Number(description.unetConfig.in_channels ?? latentChannels);
    const inpainting = inChannels === 2 * latentChannels + 1;
    if (inChannels !== latentChannels && !inpainting) {
      throw mismatch(
        component.file,
        sample.name,
        `${latentChannels} channels (latents) or ${2 * latentChannels + 1} (inpainting: latents, mask, masked-image latents); it takes ${inChannels}`,
      );
    }
    return {
      ...component,
      sample,
      timestep: requireInput(component, ['timestep'], ['int64', 'float32', 'float16'], [0, 1]),
      hiddenStates: requireInput(component, ['encoder_hidden_states'], ['float32', 'float16'], 3),
      output: requireOutput(component, ['out_sample']),
      maxBatch: typeof batchDim === 'number' && batchDim > 0 ? batchDim : null,
      lanes: [],
      inChannels,
      inpainting,
      ...(component.session.inputNames.includes('text_embeds') && { textEmbeds: requireInput(component, ['text_embeds'], ['float32', 'float16'], 2) }),
      ...(component.session.inputNames.includes('time_ids') && { timeIds: requireInput(component, ['time_ids'], ['float32', 'float16'], 2) }),
    };
  },
  vae_decoder: (component: Component): VaeDecoder => ({
    ...component,
    latents: requireInput(component, ['latent_sample'], ['float32', 'float16'], 4),
    output: requireOutput(component, ['sample']),
  }),
  vae_encoder: (component: Component): VaeEncoder => {
    const output = requireOutput(component, ['latent_sample', 'latent_parameters', 'latent_dist']);
    return { ...component, image: requireInput(component, ['sample'], ['float32', 'float16'], 4), output, outputsMeanAndLogvar: output !== 'latent_sample' };
  },
  taesd_decoder: (component: Component): TaesdDecoder => ({
    ...component,
    latents: requireInput(component, ['latent_sample', 'latents', 'input'], ['float32', 'float16'], 4),
    output: component.session.outputNames[0],
  }),
  upscaler: (component: Component): Component => {
    const [input] = component.session.inputMetadata;
    if (!input || !input.isTensor || (input.type !== 'float32' && input.type !== 'float16') || input.shape.length !== 4) {
      throw mismatch(component.file, input?.name ?? '(first input)', 'a float32 image tensor [1, 3, height, width] (ESRGAN format)');
    }
    return component;
  },
} as const;

export async function loadModelFolder(dirArgument: string, runtime: RuntimeOptions = {}): Promise<ModelFolder> {
  const executionProviders = runtime.executionProviders ?? ['cpu'];
  for (const provider of executionProviders) {
    if (!(EXECUTION_PROVIDERS as readonly string[]).includes(provider)) {
      throw invalidInput(`Unknown execution provider '${provider}'. Use one of: ${EXECUTION_PROVIDERS.join(', ')}.`);
    }
  }
  const providerOptions = runtime.providerOptions ?? {};
  checkProviderOptions(executionProviders, providerOptions);
  const description = await describeModelFolder(dirArgument);
  const { dir } = description;
  const schedulerConfig = await readJson(requireFile(dir, join('scheduler', 'scheduler_config.json')));

  const unetLanes = runtime.unetLanes ?? defaultUnetLanes(dir, executionProviders, runtime.intraOpNumThreads);
  checkUnetLanes(unetLanes, executionProviders, runtime.intraOpNumThreads);
  const laneThreads = runtime.intraOpNumThreads === undefined ? undefined : Math.floor(runtime.intraOpNumThreads / unetLanes);

  // transformers.js' constructSessions: every session of the folder is created at once, not one after another.
  const onWebgpu = executionProviders[0] === 'webgpu';
  const opening = description.components.map((name) =>
    openSession(
      dir,
      join(name, 'model.onnx'),
      providerConfigs(executionProviders, providerOptions, name, description),
      name === 'unet' || name === 'unet_lcm' ? laneThreads : runtime.intraOpNumThreads,
      onWebgpu && (name === 'unet' || name === 'unet_lcm'),
    ),
  );
  const settled = await Promise.allSettled(opening);
  const sessions = new Map<ComponentName, Component>();
  settled.forEach((outcome, k) => outcome.status === 'fulfilled' && sessions.set(description.components[k], outcome.value));
  const releaseAll = () => Promise.allSettled([...sessions.values()].map((component) => component.session.release()));
  const failed = settled.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
  if (failed) {
    await releaseAll();
    throw failed.reason;
  }

  const device = onWebgpu ? createDeviceGraphs() : undefined;
  const lanes: UnetLane[] = [];
  const releaseLanes = () => Promise.allSettled(lanes.map((lane) => lane.release()));
  try {
    if (onWebgpu) await checkWebgpuFloat16(dir, [...sessions.values()]);
    const textEncoder = BIND.text_encoder(sessions.get('text_encoder')!);
    const vaeDecoder = BIND.vae_decoder(sessions.get('vae_decoder')!);
    const latentChannels = typeof vaeDecoder.latents.dims[1] === 'number' ? vaeDecoder.latents.dims[1] : Number(description.vaeConfig.latent_channels ?? 4);
    const unet = BIND.unet(sessions.get('unet')!, description, latentChannels);
    const laneOptions = sessionOptions(providerConfigs(executionProviders, providerOptions, 'unet', description), laneThreads, false);
    const openLanes = async (component: 'unet' | 'unet_lcm'): Promise<UnetLane[]> => {
      const path = join(dir, component, 'model.onnx');
      const opened = await Promise.allSettled(Array.from({ length: unetLanes - 1 }, () => openUnetLane({ path, options: laneOptions })));
      const ready = opened.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
      lanes.push(...ready);
      const laneFailure = opened.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
      if (laneFailure) throw laneFailure.reason;
      return ready;
    };
    unet.lanes = await openLanes('unet');
    const optional = <T>(name: ComponentName, bind: (component: Component) => T): T | undefined => {
      const component = sessions.get(name);
      return component && bind(component);
    };
    const vaeEncoder = optional('vae_encoder', BIND.vae_encoder);
    const lcmUnet = optional('unet_lcm', (component) => BIND.unet(component, description, latentChannels));
    if (lcmUnet && (lcmUnet.inChannels !== unet.inChannels || lcmUnet.hiddenStates.dims[2] !== unet.hiddenStates.dims[2])) {
      throw mismatch(lcmUnet.file, lcmUnet.sample.name, `the same inputs as ${unet.file} (it is that UNet distilled for the lcm sampler)`);
    }
    if (lcmUnet) lcmUnet.lanes = await openLanes('unet_lcm');
    if (unet.inpainting && !vaeEncoder) {
      throw modelFailure(`${join(dir, 'unet', 'model.onnx')} is an inpainting UNet, which needs the masked picture's latents: add vae_encoder/model.onnx.`);
    }

    const tokenizerFor = (encoder: TextEncoder, config: Record<string, any>, folder: string) => {
      const positions = Number(config.max_position_embeddings);
      const fixedLength = typeof encoder.ids.dims[1] === 'number' ? encoder.ids.dims[1] : undefined;
      return loadTokenizer(join(dir, folder), fixedLength ?? (Number.isInteger(positions) && positions > 2 ? positions : 77));
    };
    const tokenizer = await tokenizerFor(textEncoder, description.textEncoderConfig, 'tokenizer');
    const textEncoder2 = optional('text_encoder_2', BIND.text_encoder);
    if (description.family === 'stable-diffusion-xl') checkSdxl(dir, textEncoder, textEncoder2!, unet, description);
    const tokenizer2 = textEncoder2 && (await tokenizerFor(textEncoder2, description.textEncoder2Config ?? {}, 'tokenizer_2'));

    return {
      dir,
      name: description.name,
      description,
      tokenizer,
      textEncoder,
      tokenizer2,
      textEncoder2,
      unet,
      lcmUnet,
      vaeDecoder,
      vaeEncoder,
      taesdDecoder: optional('taesd_decoder', BIND.taesd_decoder),
      upscaler: optional('upscaler', BIND.upscaler),
      schedulerConfig,
      latentChannels,
      executionProviders,
      device,
      release: async () => {
        await Promise.all([...sessions.values()].map((component) => component.session.release()));
        await Promise.all(lanes.map((lane) => lane.release()));
        await device?.release();
      },
    };
  } catch (error) {
    await releaseAll();
    await releaseLanes();
    await device?.release();
    throw error;
  }
}

/**
 * ONNX Runtime's WebGPU provider (Dawn) reaches the GPU through Vulkan on Linux: the Vulkan loader, and a driver ("ICD")
 * that Dawn accepts. Mesa's lavapipe is refused; SwiftShader (shipped in Debian's chromium) is accepted.
 */
export const NO_WEBGPU_ADAPTER =
  'The webgpu provider found no GPU adapter: ONNX Runtime reaches the GPU through Vulkan, and no usable Vulkan driver was found. ' +
  "Install the Vulkan loader (Debian/Ubuntu: libvulkan1) and your GPU's Vulkan driver (NVIDIA: the proprietary driver's Vulkan ICD; " +
  "in a container, NVIDIA_DRIVER_CAPABILITIES must include 'graphics'; AMD/Intel: mesa-vulkan-drivers). " +
  'On a machine without a GPU, Debian\'s chromium package ships SwiftShader: set VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json ' +
  'and XDG_RUNTIME_DIR to a writable folder. Or run with --provider cpu (ORT_PROVIDERS=cpu for workers).';

type ProviderConfig = ort.InferenceSession.ExecutionProviderConfig;

/**
 * What each provider is given for one component. WebGPU's default NHWC layout computes 3×3 convolutions over exactly 9
 * input channels wrongly in onnxruntime 1.30 (max |Δ| ≈ 2.4 against the CPU provider; 3–8, 12, 16, 17 and 320
 * channels are right), and that is the first layer of every inpainting UNet (latents, mask, masked-picture latents):
 * those run in NCHW, which is right.
 */
function providerConfigs(
  executionProviders: readonly ExecutionProvider[],
  options: GpuProviderOptions,
  component: ComponentName,
  description: ModelDescription,
): ProviderConfig[] {
  return executionProviders.map((provider) =>
    provider === 'webgpu' && component === 'unet' && description.inpaintingUnet ? { name: 'webgpu', preferredLayout: 'NCHW' } : bindingProviderConfig(provider, options),
  );
}

/**
 * WebGPU runs float16 tensors only on adapters with the shader-f16 feature (most desktop GPUs; not SwiftShader). A
 * folder with float16 components is checked once at load with a one-node Cast graph, so a missing feature is a startup
 * error naming the files, not a failure in the middle of the first job.
 */
async function checkWebgpuFloat16(dir: string, components: readonly Component[]): Promise<void> {
  const usesFloat16 = (component: Component) =>
    [...component.session.inputMetadata, ...component.session.outputMetadata].some((port) => port.isTensor && port.type === 'float16');
  const files = components.filter(usesFloat16).map((component) => join(dir, component.file));
  if (files.length === 0) return;
  const probe = await ort.InferenceSession.create(
    encodeModel({
      name: 'float16_check',
      inputs: [{ name: 'x', type: 'float16', dims: [4] }],
      outputs: [{ name: 'y', type: 'float32', dims: [4] }],
      nodes: [{ op: 'Cast', inputs: ['x'], outputs: ['y'], attributes: { to: 1 } }],
    }),
    { executionProviders: ['webgpu'], logSeverityLevel: 3 },
  );
  try {
    await probe.run({ x: new ort.Tensor('float16', new Uint16Array(4), [4]) });
  } catch (error) {
    if (!/f16/i.test((error as Error).message)) throw error;
    throw new EngineError(
      'model_failure',
      `${files.join(', ')} ${files.length === 1 ? 'takes' : 'take'} float16 tensors, and this WebGPU adapter cannot run float16 (it lacks the shader-f16 feature). ` +
        'Use a float32 export of the model on this machine, a GPU whose Vulkan driver has shader-f16, or --provider cpu.',
      { file: files[0], setting: 'webgpu' },
      { cause: error },
    );
  } finally {
    await probe.release();
  }
}

/**
 * Past this size a UNet's operators are large enough for one session to keep every thread busy, and a second copy of
 * its weights (a lane) costs more memory than it saves time.
 */
const SMALL_UNET_BYTES = 64 * 1024 * 1024;

/** Two lanes for a small UNet on the CPU given two threads or more: see src/engine/unet-lane.ts for why. */
function defaultUnetLanes(dir: string, executionProviders: readonly ExecutionProvider[], intraOpNumThreads: number | undefined): number {
  if (executionProviders.some((provider) => provider !== 'cpu') || intraOpNumThreads === undefined || intraOpNumThreads < 2) return 1;
  const unetBytes = statSync(join(dir, 'unet', 'model.onnx'), { throwIfNoEntry: false })?.size;
  return unetBytes !== undefined && unetBytes <= SMALL_UNET_BYTES ? 2 : 1;
}

function checkUnetLanes(lanes: number, executionProviders: readonly ExecutionProvider[], intraOpNumThreads: number | undefined): void {
  if (!Number.isInteger(lanes) || lanes < 1 || lanes > MAX_UNET_LANES) {
    throw invalidInput(`unetLanes must be a whole number from 1 to ${MAX_UNET_LANES}; got ${lanes}.`);
  }
  if (lanes === 1) return;
  if (executionProviders.some((provider) => provider !== 'cpu')) {
    throw invalidInput(`unetLanes ${lanes} splits the UNet over CPU threads; it works with the cpu provider only (set it to 1 for ${executionProviders.join(', ')}).`);
  }
  if (intraOpNumThreads === undefined || intraOpNumThreads < lanes) {
    throw invalidInput(`unetLanes ${lanes} needs at least one thread per lane: set intraOpNumThreads to ${lanes} or more (it is ${intraOpNumThreads ?? 'unset'}).`);
  }
}

const MAX_UNET_LANES = 8;

function sessionOptions(
  executionProviders: readonly ProviderConfig[],
  intraOpNumThreads: number | undefined,
  outputsOnDevice: boolean,
): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: [...executionProviders],
    // onnxruntime-node rejects an explicit undefined here.
    ...(intraOpNumThreads === undefined ? {} : { intraOpNumThreads }),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    ...(outputsOnDevice && { preferredOutputLocation: 'gpu-buffer' as const }),
  };
}

async function openSession(
  dir: string,
  file: string,
  executionProviders: readonly ProviderConfig[],
  intraOpNumThreads: number | undefined,
  outputsOnDevice = false,
): Promise<Component> {
  const path = requireFile(dir, file);
  const providerNames = executionProviders.map((provider) => (typeof provider === 'string' ? provider : provider.name));
  try {
    const session = await ort.InferenceSession.create(path, sessionOptions(executionProviders, intraOpNumThreads, outputsOnDevice));
    return { session, file };
  } catch (error) {
    const message = (error as Error).message;
    if (providerNames.includes('webgpu') && /WebGPU adapter|libvulkan/i.test(message)) {
      throw new EngineError('model_failure', NO_WEBGPU_ADAPTER, { file: path, setting: 'webgpu' }, { cause: error });
    }
    const accelerated = providerNames.filter((provider) => provider !== 'cpu');
    if (accelerated.length > 0 && /provider|backend|cuda|tensorrt|coreml|dml|webgpu|shared library|\.so/i.test(message)) {
      throw new EngineError(
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

function penultimateOutput(outputNames: readonly string[]): string | undefined {
  const layers = outputNames.map((name) => /^hidden_states\.(\d+)$/.exec(name)).filter((match) => match !== null);
  if (layers.length > 1) return `hidden_states.${Math.max(...layers.map((match) => Number(match[1]))) - 1}`;
  return outputNames.includes('hidden_states') ? 'hidden_states' : undefined;
}

/**
 * An SDXL folder's parts must fit together before anything runs: both encoders give penultimate hidden states, the
 * second a pooled text_embeds, and the UNet takes their concatenation, text_embeds of that width, and six time_ids.
 */
function checkSdxl(dir: string, first: TextEncoder, second: TextEncoder, unet: Unet, description: ModelDescription): void {
  for (const encoder of [first, second]) {
    if (!encoder.penultimate) {
      throw mismatch(
        encoder.file,
        'hidden_states',
        `the penultimate layer's hidden states, which SDXL conditions on: outputs hidden_states.0 … hidden_states.N (Optimum, --task stable-diffusion-xl) or hidden_states (it has ${encoder.session.outputNames.join(', ')})`,
      );
    }
  }
  if (second.pooled !== 'text_embeds') {
    throw mismatch(second.file, 'text_embeds', `an output named text_embeds (CLIPTextModelWithProjection's pooled projection) (it has ${second.session.outputNames.join(', ')})`);
  }
  if (!unet.textEmbeds || !unet.timeIds) {
    throw mismatch(unet.file, 'text_embeds and time_ids', `inputs of an SDXL UNet (addition_embed_type "text_time") (it has ${unet.session.inputNames.join(', ')})`);
  }
  const width = (encoder: TextEncoder, config: Record<string, any> | undefined) => encoder.hiddenSize ?? Number(config?.hidden_size);
  const [firstWidth, secondWidth] = [width(first, description.textEncoderConfig), width(second, description.textEncoder2Config)];
  const states = unet.hiddenStates.dims[2];
  const takes = typeof states === 'number' ? states : Number(description.unetConfig.cross_attention_dim);
  if (Number.isFinite(firstWidth) && Number.isFinite(secondWidth) && Number.isFinite(takes) && firstWidth + secondWidth !== takes) {
    throw mismatch(
      unet.file,
      unet.hiddenStates.name,
      `${firstWidth + secondWidth} wide: ${join(dir, first.file)}'s ${firstWidth} and ${join(dir, second.file)}'s ${secondWidth} hidden states concatenated; it takes ${takes}`,
    );
  }
  const pooledMeta = second.session.outputMetadata.find((output) => output.name === 'text_embeds');
  const pooledWidth = pooledMeta?.isTensor && typeof pooledMeta.shape[1] === 'number' ? pooledMeta.shape[1] : Number(description.textEncoder2Config?.projection_dim);
  const embedsWidth = unet.textEmbeds.dims[1];
  if (typeof embedsWidth === 'number' && Number.isFinite(pooledWidth) && embedsWidth !== pooledWidth) {
    throw mismatch(unet.file, 'text_embeds', `${pooledWidth} wide, the width of ${join(dir, second.file)}'s text_embeds; it takes ${embedsWidth}`);
  }
  const idsWidth = unet.timeIds.dims[1];
  if (typeof idsWidth === 'number' && idsWidth !== 6) {
    throw mismatch(unet.file, 'time_ids', `6 wide (original height and width, crop top and left, target height and width); it takes ${idsWidth} (an SDXL refiner's 5 with an aesthetic score is not run)`);
  }
}

function requireInput(component: Component, names: readonly string[], types: readonly TensorType[], rank: number | readonly number[]): TensorPort {
  const ranks = typeof rank === 'number' ? [rank] : rank;
  const meta = component.session.inputMetadata.find((input) => names.includes(input.name));
  const expected = `${types.join(' or ')} of rank ${ranks.join(' or ')}`;
  if (!meta) {
    const present = component.session.inputNames.join(', ');
    throw mismatch(component.file, names.join(' or '), `an input named ${names.join(' or ')}, ${expected} (it has ${present})`);
  }
  if (!meta.isTensor || !(types as readonly string[]).includes(meta.type) || !ranks.includes(meta.shape.length)) {
    const actual = meta.isTensor ? `${meta.type} of rank ${meta.shape.length}` : 'not a tensor';
    throw mismatch(component.file, meta.name, `${expected}, but it is ${actual}`);
  }
  return { name: meta.name, type: meta.type as TensorType, dims: meta.shape };
}

function requireOutput(component: Component, names: readonly string[]): string {
  const found = component.session.outputNames.find((name) => names.includes(name));
  if (!found) {
    throw mismatch(component.file, names.join(' or '), `an output named ${names.join(' or ')} (it has ${component.session.outputNames.join(', ')})`);
  }
  return found;
}

function mismatch(file: string, tensor: string, expected: string): EngineError {
  return modelFailure(`${file}: tensor '${tensor}' should be ${expected}. This folder does not fit the Stable Diffusion ONNX layout the engine runs.`, {
    file,
    tensor,
  });
}
