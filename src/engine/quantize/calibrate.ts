import type * as ort from 'onnxruntime-node';
import { fromFloat16Bits } from '../float16.js';
import type { ModelFolder } from '../model-folder.js';
import { generate } from '../pipeline.js';
import type { ActivationRange } from './int8-graph.js';

/**
 * Activation ranges for the UNet's convolutions, measured where they will be used: the folder's own pipeline (its
 * sampler, steps, guidance and size) draws real prompts, and every UNet call — both halves of the guidance batch, every
 * timestep — widens the min/max of each tensor asked for (onnxruntime's MinMax calibrator does the same).
 */

/** Prompts for folders that do not list what they draw (any Stable Diffusion export). */
const GENERAL_PROMPTS = [
  'a red apple on a wooden table',
  'a portrait photo of an old man, studio lighting',
  'a mountain lake at sunrise',
  'a cat sleeping on a sofa',
  'a city street at night in the rain',
  'a bowl of ramen, top view',
  'an astronaut riding a horse',
  'a watercolor painting of a lighthouse',
  'a cozy cabin in a snowy forest',
  'a bright yellow sports car',
  'a field of sunflowers under a blue sky',
  'a pencil sketch of a dragon',
  'a plate of pancakes with berries',
  'a robot reading a book in a library',
  'a sailing boat on a stormy sea',
  'a colorful parrot on a branch',
];

export interface CalibrationRun {
  images: number;
  prompts: string[];
  steps: number;
  unetCalls: number;
  seconds: number;
}

/** Prompts spread over the folder's vocabulary when it has one, so every category is seen; general ones otherwise. */
export function calibrationPrompts(model: ModelFolder, images: number): string[] {
  const concepts = model.description.vocabulary?.concepts;
  if (!concepts) return Array.from({ length: images }, (_, k) => GENERAL_PROMPTS[k % GENERAL_PROMPTS.length]);
  return Array.from({ length: images }, (_, k) => concepts[Math.floor((k * concepts.length) / images)].label);
}

export async function calibrateUnet(
  model: ModelFolder,
  tensors: readonly string[],
  images: number,
  steps = model.description.defaultSteps,
): Promise<{ ranges: Map<string, ActivationRange>; run: CalibrationRun }> {
  const started = performance.now();
  const ranges = new Map<string, ActivationRange>();
  const wanted = new Set(tensors);
  let unetCalls = 0;
  const widen = (name: string, tensor: ort.Tensor) => {
    const data = tensor.type === 'float16' ? fromFloat16Bits(tensor.data as Uint16Array) : (tensor.data as Float32Array);
    let { min, max } = ranges.get(name) ?? { min: Number.POSITIVE_INFINITY, max: Number.NEGATIVE_INFINITY };
    for (let i = 0; i < data.length; i++) {
      const value = data[i];
      if (value < min) min = value;
      if (value > max) max = value;
    }
    ranges.set(name, { min, max });
  };
  const session = model.unet.session;
  const observed = new Proxy(session, {
    get(target, property) {
      if (property !== 'run') {
        const value = Reflect.get(target, property, target);
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return async (feeds: Record<string, ort.Tensor>) => {
        const outputs = await target.run(feeds);
        unetCalls++;
        for (const [name, tensor] of [...Object.entries(feeds), ...Object.entries(outputs)]) if (wanted.has(name)) widen(name, tensor);
        return outputs;
      };
    },
  });
  // No lanes (src/engine/unet-lane.ts): a part of the batch run on another thread would go unobserved.
  const calibrating: ModelFolder = { ...model, unet: { ...model.unet, session: observed, lanes: [] } };

  const prompts = calibrationPrompts(model, images);
  // One prompt per image, seeds 1…N, through the same pipeline a user's request takes.
  for (const [k, prompt] of prompts.entries()) await generate(calibrating, { prompt, seed: k + 1, steps });
  const missing = tensors.filter((name) => !ranges.has(name));
  if (missing.length > 0) throw new Error(`calibration saw no values for ${missing.join(', ')}`);
  return { ranges, run: { images, prompts, steps, unetCalls, seconds: (performance.now() - started) / 1000 } };
}
