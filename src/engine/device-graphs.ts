import * as ort from 'onnxruntime-node';
import { encodeModel, type ElementType } from './onnx-graph.js';

/**
 * The engine's own small graphs for keeping the denoising loop's tensors on a WebGPU device (onnxruntime-node 1.30):
 * an upload (host tensor in, `gpu-buffer` tensor out), a download (`gpu-buffer` in, host tensor out) and the per-step
 * guidance + scheduler graph. A `gpu-buffer` tensor can be fed to any WebGPU session, but reading it on the host with
 * `getData()` aborts the process in this version ("terminate called after throwing an instance of 'char const*'"),
 * so every read goes through the download graph.
 */
export interface DeviceGraphs {
  upload(tensor: ort.Tensor): Promise<ort.Tensor>;
  download(tensor: ort.Tensor): Promise<ort.Tensor>;
  /** Guidance and one scheduler step; see stepGraph. */
  step(shape: StepGraphShape): Promise<ort.InferenceSession>;
  release(): Promise<void>;
}

/** What a run's step graph takes beyond the prediction and the latents (each adds an input; see stepGraph). */
export interface StepGraphShape {
  guided: boolean;
  predictionType: ElementType;
  sampleType: ElementType;
  /** The step reads the previous step's x̂0 (DPM++ 2M's second order): input `previous`. */
  previous: boolean;
  /** The step adds fresh noise (ancestral samplers, DDPM, LCM): input `noise`, every step's noise at once. */
  noise: boolean;
  /** Inpainting's masked latent blending: inputs `clean`, `initial_noise` and `keep`. */
  keptRegion: boolean;
  /** 9-channel UNets: input `conditioning`, put after the latents of every UNet input. */
  conditioning: boolean;
}

export function createDeviceGraphs(): DeviceGraphs {
  const sessions = new Map<string, Promise<ort.InferenceSession>>();
  const open = (key: string, model: () => Uint8Array, outputsOnDevice: boolean) => {
    let session = sessions.get(key);
    if (!session) {
      session = ort.InferenceSession.create(model(), {
        executionProviders: ['webgpu'],
        logSeverityLevel: 3,
        ...(outputsOnDevice && { preferredOutputLocation: 'gpu-buffer' as const }),
      });
      sessions.set(key, session);
    }
    return session;
  };
  const copy = async (tensor: ort.Tensor, toDevice: boolean) => {
    const type = tensor.type as ElementType;
    const session = await open(`${toDevice ? 'upload' : 'download'}-${type}`, () => identityGraph(type), toDevice);
    return (await session.run({ x: tensor })).y;
  };
  return {
    upload: (tensor) => copy(tensor, true),
    download: (tensor) => copy(tensor, false),
    step: (shape) => open(`step-${JSON.stringify(shape)}`, () => stepGraph(shape), true),
    release: async () => {
      const opened = await Promise.allSettled(sessions.values());
      sessions.clear();
      await Promise.all(opened.map((outcome) => outcome.status === 'fulfilled' && outcome.value.release()));
    },
  };
}

function identityGraph(type: ElementType): Uint8Array {
  return encodeModel({
    name: `copy_${type}`,
    inputs: [{ name: 'x', type }],
    outputs: [{ name: 'y', type }],
    nodes: [{ op: 'Identity', inputs: ['x'], outputs: ['y'] }],
  });
}

const ONNX_FLOAT = 1;
const ONNX_INT64 = 7;
const ONNX_FLOAT16 = 10;

/** The order of the numbers in the step graph's `coefficients` input (float32 [12]), one set per step. */
export const STEP_COEFFICIENTS = ['g', 'a', 'b', 's', 'p', 'q', 'c', 'd', 'noise_index', 'u', 'v', 'k'] as const;
export type StepCoefficient = (typeof STEP_COEFFICIENTS)[number];

/**
 * Classifier-free guidance and one step of a sampler that is linear in (latents, ε̂, the previous step's x̂0, fresh
 * noise) — every sampler here with its x̂0 unclipped (diffusers' formulas with the step's σ or ᾱ folded into numbers),
 * for ε-, v- and sample-prediction alike:
 *
 *   ε̂ = ε̂_uncond + g · (ε̂_cond − ε̂_uncond)          (guided: prediction is [uncond × B, cond × B])
 *   x̂0 = p · x + q · ε̂
 *   x' = a · x + b · ε̂ + c · x̂0_previous + d · z      z = noise[noise_index], drawn on the host before the loop
 *   x_next = x' + k · keep · (u · clean + v · z0 − x')  inpainting: the kept region noised to the next timestep
 *   next UNet sample = [s · x_next ‖ conditioning] (twice when guided)
 *
 * The engine reads every number off its own scheduler (src/engine/pipelines/device-denoise.ts), so the graph holds no
 * scheduler arithmetic to drift from the TypeScript one.
 */
function stepGraph(shape: StepGraphShape): Uint8Array {
  const { guided, predictionType, sampleType } = shape;
  const nodes: { op: string; inputs: string[]; outputs: string[]; attributes?: Record<string, number> }[] = [];
  const prediction = predictionType === 'float16' ? 'prediction_f32' : 'prediction';
  if (predictionType === 'float16') nodes.push({ op: 'Cast', inputs: ['prediction'], outputs: ['prediction_f32'], attributes: { to: ONNX_FLOAT } });
  // Two halves first: a Split into twelve would bind 13 storage buffers in one shader, past WebGPU's limit (8 by
  // default, 12 on SwiftShader).
  nodes.push(
    { op: 'Split', inputs: ['coefficients'], outputs: ['coefficients_0', 'coefficients_1'], attributes: { axis: 0 } },
    { op: 'Split', inputs: ['coefficients_0'], outputs: STEP_COEFFICIENTS.slice(0, 6), attributes: { axis: 0 } },
    { op: 'Split', inputs: ['coefficients_1'], outputs: STEP_COEFFICIENTS.slice(6), attributes: { axis: 0 } },
  );
  if (guided) {
    nodes.push(
      { op: 'Split', inputs: [prediction], outputs: ['uncond', 'cond'], attributes: { axis: 0 } },
      { op: 'Sub', inputs: ['cond', 'uncond'], outputs: ['difference'] },
      { op: 'Mul', inputs: ['difference', 'g'], outputs: ['scaled_difference'] },
      { op: 'Add', inputs: ['uncond', 'scaled_difference'], outputs: ['epsilon'] },
    );
  } else {
    nodes.push({ op: 'Identity', inputs: [prediction], outputs: ['epsilon'] });
  }
  /** Σ tensor_i · coefficient_i, named `out`. */
  const weightedSum = (out: string, terms: [string, string][]) => {
    terms.forEach(([tensor, coefficient], i) => nodes.push({ op: 'Mul', inputs: [tensor, coefficient], outputs: [`${out}_${i}`] }));
    for (let i = 1; i < terms.length; i++) {
      nodes.push({ op: 'Add', inputs: [i === 1 ? `${out}_0` : `${out}_sum${i - 1}`, `${out}_${i}`], outputs: [i === terms.length - 1 ? out : `${out}_sum${i}`] });
    }
  };
  weightedSum('denoised', [['latents', 'p'], ['epsilon', 'q']]);
  const stepTerms: [string, string][] = [['latents', 'a'], ['epsilon', 'b']];
  if (shape.previous) stepTerms.push(['previous', 'c']);
  if (shape.noise) {
    // Gather keeps the drawn axis ([1, B, C, h, w]); the reshape drops it.
    nodes.push(
      { op: 'Cast', inputs: ['noise_index'], outputs: ['noise_index_int'], attributes: { to: ONNX_INT64 } },
      { op: 'Gather', inputs: ['noise', 'noise_index_int'], outputs: ['noise_drawn'], attributes: { axis: 0 } },
      { op: 'Shape', inputs: ['latents'], outputs: ['latent_shape'] },
      { op: 'Reshape', inputs: ['noise_drawn', 'latent_shape'], outputs: ['step_noise'] },
    );
    stepTerms.push(['step_noise', 'd']);
  }
  weightedSum(shape.keptRegion ? 'stepped' : 'next_latents', stepTerms);
  if (shape.keptRegion) {
    weightedSum('kept', [['clean', 'u'], ['initial_noise', 'v']]);
    nodes.push(
      { op: 'Sub', inputs: ['kept', 'stepped'], outputs: ['kept_gap'] },
      { op: 'Mul', inputs: ['kept_gap', 'keep'], outputs: ['kept_share'] },
      { op: 'Mul', inputs: ['kept_share', 'k'], outputs: ['kept_change'] },
      { op: 'Add', inputs: ['stepped', 'kept_change'], outputs: ['next_latents'] },
    );
  }
  nodes.push({ op: 'Mul', inputs: ['next_latents', 's'], outputs: ['scaled'] });
  let sample32 = 'scaled';
  if (shape.conditioning) {
    nodes.push({ op: 'Concat', inputs: ['scaled', 'conditioning'], outputs: ['conditioned'], attributes: { axis: 1 } });
    sample32 = 'conditioned';
  }
  if (guided) {
    nodes.push({ op: 'Concat', inputs: [sample32, sample32], outputs: ['sample_pair'], attributes: { axis: 0 } });
    sample32 = 'sample_pair';
  }
  if (sampleType === 'float16') nodes.push({ op: 'Cast', inputs: [sample32], outputs: ['next_sample'], attributes: { to: ONNX_FLOAT16 } });
  else nodes.push({ op: 'Identity', inputs: [sample32], outputs: ['next_sample'] });
  const latentDims = ['batch', 'channels', 'height', 'width'];
  const latentInput = (name: string) => ({ name, type: 'float32' as const, dims: latentDims });
  return encodeModel({
    name: 'guided_scheduler_step',
    inputs: [
      { name: 'prediction', type: predictionType, dims: [guided ? 'pair_batch' : 'batch', 'channels', 'height', 'width'] },
      latentInput('latents'),
      { name: 'coefficients', type: 'float32', dims: [STEP_COEFFICIENTS.length] },
      ...(shape.previous ? [latentInput('previous')] : []),
      ...(shape.noise ? [{ name: 'noise', type: 'float32' as const, dims: ['draws', ...latentDims] }] : []),
      ...(shape.keptRegion
        ? [latentInput('clean'), latentInput('initial_noise'), { name: 'keep', type: 'float32' as const, dims: [1, 1, 'height', 'width'] }]
        : []),
      ...(shape.conditioning ? [{ name: 'conditioning', type: 'float32' as const, dims: ['batch', 'extra_channels', 'height', 'width'] }] : []),
    ],
    outputs: [
      latentInput('next_latents'),
      { name: 'next_sample', type: sampleType, dims: [guided ? 'pair_batch' : 'batch', 'unet_channels', 'height', 'width'] },
      latentInput('denoised'),
    ],
    nodes,
  });
}
