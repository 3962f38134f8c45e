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
  /** Guidance and one linear scheduler step; see stepGraph. */
  step(guided: boolean, predictionType: ElementType, sampleType: ElementType): Promise<ort.InferenceSession>;
  release(): Promise<void>;
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
    step: (guided, predictionType, sampleType) =>
      open(`step-${guided}-${predictionType}-${sampleType}`, () => stepGraph(guided, predictionType, sampleType), true),
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
const ONNX_FLOAT16 = 10;

/**
 * Classifier-free guidance and one step of a sampler that is linear in (latents, ε̂) — DDIM with η = 0 and Euler are
 * (diffusers' formulas with the step's σ or ᾱ folded into two numbers), for ε- and v-prediction alike:
 *
 *   ε̂ = ε̂_uncond + g · (ε̂_cond − ε̂_uncond)          (guided: prediction is [uncond × B, cond × B])
 *   x_next = a · x + b · ε̂        x̂0 = p · x + q · ε̂        next UNet sample = s · x_next (twice when guided)
 *
 * coefficients = [g, a, b, s, p, q] for this step (float32 [6]); the engine reads them off its own scheduler
 * (src/engine/pipelines/device-denoise.ts), so the graph holds no scheduler arithmetic to drift from the TypeScript one.
 */
function stepGraph(guided: boolean, predictionType: ElementType, sampleType: ElementType): Uint8Array {
  const nodes: { op: string; inputs: string[]; outputs: string[]; attributes?: Record<string, number> }[] = [];
  const prediction = predictionType === 'float16' ? 'prediction_f32' : 'prediction';
  if (predictionType === 'float16') nodes.push({ op: 'Cast', inputs: ['prediction'], outputs: ['prediction_f32'], attributes: { to: ONNX_FLOAT } });
  nodes.push({ op: 'Split', inputs: ['coefficients'], outputs: ['g', 'a', 'b', 's', 'p', 'q'], attributes: { axis: 0 } });
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
  const linear = (x: string, y: string, out: string) => [
    { op: 'Mul', inputs: ['latents', x], outputs: [`${out}_x`] },
    { op: 'Mul', inputs: ['epsilon', y], outputs: [`${out}_e`] },
    { op: 'Add', inputs: [`${out}_x`, `${out}_e`], outputs: [out] },
  ];
  nodes.push(...linear('a', 'b', 'next_latents'), ...linear('p', 'q', 'denoised'));
  nodes.push({ op: 'Mul', inputs: ['next_latents', 's'], outputs: ['scaled'] });
  const sample32 = guided ? 'scaled_pair' : 'scaled';
  if (guided) nodes.push({ op: 'Concat', inputs: ['scaled', 'scaled'], outputs: ['scaled_pair'], attributes: { axis: 0 } });
  if (sampleType === 'float16') nodes.push({ op: 'Cast', inputs: [sample32], outputs: ['next_sample'], attributes: { to: ONNX_FLOAT16 } });
  else nodes.push({ op: 'Identity', inputs: [sample32], outputs: ['next_sample'] });
  const latentDims = ['batch', 'channels', 'height', 'width'];
  return encodeModel({
    name: 'guided_scheduler_step',
    inputs: [
      { name: 'prediction', type: predictionType, dims: [guided ? 'pair_batch' : 'batch', 'channels', 'height', 'width'] },
      { name: 'latents', type: 'float32', dims: latentDims },
      { name: 'coefficients', type: 'float32', dims: [6] },
    ],
    outputs: [
      { name: 'next_latents', type: 'float32', dims: latentDims },
      { name: 'next_sample', type: sampleType, dims: [guided ? 'pair_batch' : 'batch', 'channels', 'height', 'width'] },
      { name: 'denoised', type: 'float32', dims: latentDims },
    ],
    nodes,
  });
}
