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
 * Midjourney's /blend as a latent blend: the pictures' latents are mixed by spherical interpolation with equal weights,
 * then image-to-image runs from the mix, so the model redraws one picture where a pixel blend would show two
 * superimposed.
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
  const blended = slerpLatents(pictureLatents);
  const latents = prepareLatents(run, schedule, noise, blended);
  const conditioning = await wholePictureConditioning(run);
  const denoised = await denoise(run, { schedule, latents, prompt, noise, conditioning });
  return finish(run, await decodeLatents(run, denoised), { denoisingStrength: options.strength });
}

/** Equal weights by running slerp: the k-th picture joins the mix of the first k − 1 with weight 1/k. */
export function slerpLatents(latents: Float32Array[]): Float32Array {
  return latents.reduce((mix, next, k) => (k === 0 ? next : slerp(1 / (k + 1), mix, next)));
}
