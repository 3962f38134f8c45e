import { invalidInput } from '../errors.js';
import { LIMITS } from '../limits.js';
import type { ModelFolder } from '../model-folder.js';
import { slerp } from '../random.js';
import {
  checkInputs,
  checkStrength,
  decodeLatents,
  denoise,
  encodeImage,
  encodePrompt,
  finish,
  prepareLatents,
  prepareNoise,
  prepareTimesteps,
  wholePictureConditioning,
  type GenerateOptions,
  type GenerateResult,
} from './stages.js';

export interface BlendOptions extends Omit<GenerateOptions, 'init'> {
  /** 2–4 pictures, each [1, 3, height, width] in [-1, 1] at the requested size. */
  images: Float32Array[];
  strength: number;
}

/**
 * Midjourney's /blend as a latent blend: the pictures' latents are mixed on the sphere with equal weights
 * (sphericalMean), then image-to-image runs from the mix, so the model redraws one picture where a pixel blend would
 * show two superimposed.
 */
export async function blend(model: ModelFolder, options: BlendOptions): Promise<GenerateResult> {
  const run = checkInputs(model, options);
  const { min, max } = LIMITS.blendImages;
  if (options.images.length < min || options.images.length > max) {
    throw invalidInput(`A blend takes ${min} to ${max} pictures; got ${options.images.length}.`);
  }
  checkStrength(options.strength);
  const prompt = await encodePrompt(run);
  const noise = prepareNoise(run);
  const schedule = prepareTimesteps(run, options.strength);
  const pictureLatents: Float32Array[] = [];
  for (const image of options.images) pictureLatents.push(await encodeImage(run, image));
  const blended = sphericalMean(pictureLatents);
  const latents = prepareLatents(run, schedule, noise, blended);
  const conditioning = await wholePictureConditioning(run);
  const denoised = await denoise(run, { schedule, latents, prompt, noise, conditioning });
  return finish(run, await decodeLatents(run, denoised), { denoisingStrength: options.strength });
}

/**
 * Two latents: their slerp at ½. More: the direction of their sum at their mean length — what slerp at ½ is for two of
 * the same length, and unlike chained slerps the same whatever the pictures' order.
 */
export function sphericalMean(latents: Float32Array[]): Float32Array {
  if (latents.length === 2) return slerp(0.5, latents[0], latents[1]);
  const sum = new Float32Array(latents[0].length);
  let meanNorm = 0;
  for (const latent of latents) {
    let squares = 0;
    for (let i = 0; i < latent.length; i++) {
      sum[i] += latent[i];
      squares += latent[i] * latent[i];
    }
    meanNorm += Math.sqrt(squares) / latents.length;
  }
  const sumNorm = Math.sqrt(sum.reduce((total, value) => total + value * value, 0));
  const scale = sumNorm > 0 ? meanNorm / sumNorm : 1 / latents.length;
  return sum.map((value) => value * scale);
}
