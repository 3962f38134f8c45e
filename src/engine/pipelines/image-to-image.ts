import type { ModelFolder } from '../model-folder.js';
import {
  checkInputs,
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

export type ImageToImageOptions = GenerateOptions & Required<Pick<GenerateOptions, 'init'>>;

/**
 * diffusers' StableDiffusionImg2ImgPipeline: the init picture's latents are noised to the point of the schedule that
 * `strength` picks, and only the rest of the schedule runs.
 */
export async function imageToImage(model: ModelFolder, options: ImageToImageOptions): Promise<GenerateResult> {
  const run = checkInputs(model, options);
  const prompt = await encodePrompt(run);
  const noise = prepareNoise(run);
  const schedule = prepareTimesteps(run, options.init.strength);
  const imageLatents = await encodeImage(run, options.init.image);
  const latents = prepareLatents(run, schedule, noise, imageLatents);
  const conditioning = await wholePictureConditioning(run);
  const denoised = await denoise(run, { schedule, latents, prompt, noise, conditioning });
  return finish(run, await decodeLatents(run, denoised), { denoisingStrength: options.init.strength });
}
