import type { ModelFolder } from '../model-folder.js';
import {
  checkInputs,
  decodeLatents,
  denoise,
  encodePrompt,
  finish,
  prepareLatents,
  prepareNoise,
  prepareTimesteps,
  wholePictureConditioning,
  type GenerateOptions,
  type GenerateResult,
} from './stages.js';

/** diffusers' StableDiffusionPipeline: a picture from a prompt and a seed. */
export async function textToImage(model: ModelFolder, options: Omit<GenerateOptions, 'init'>): Promise<GenerateResult> {
  const run = checkInputs(model, options);
  const prompt = await encodePrompt(run);
  const noise = prepareNoise(run);
  const schedule = prepareTimesteps(run);
  const latents = prepareLatents(run, schedule, noise);
  const conditioning = await wholePictureConditioning(run);
  const denoised = await denoise(run, { schedule, latents, prompt, noise, conditioning });
  return finish(run, await decodeLatents(run, denoised));
}
