import { invalidInput } from '../errors.js';
import { EDIT_DEFAULTS } from '../limits.js';
import { blurMask, checkCoverage, latentMask, type Mask } from '../masks.js';
import type { ModelFolder } from '../model-folder.js';
import type { SchedulerStepResult } from '../types.js';
import {
  checkInputs,
  checkStrength,
  decodeLatents,
  denoise,
  encodeImage,
  encodePrompt,
  finish,
  inpaintingConditioning,
  prepareLatents,
  prepareNoise,
  prepareTimesteps,
  repeatForBatch,
  type GenerateOptions,
  type GenerateResult,
  type Noise,
  type PipelineRun,
  type Schedule,
} from './stages.js';

export interface InpaintOptions extends Omit<GenerateOptions, 'init'> {
  /** The picture, [1, 3, height, width] in [-1, 1], at the requested size. */
  image: Float32Array;
  /** What to repaint, at the requested size (1 = repaint); its edge is softened here by `maskBlurPx`. */
  mask: Mask;
  /** Gaussian σ of the soft mask edge in pixels (A1111's "Mask blur"). */
  maskBlurPx?: number;
  /** Share of the schedule that runs; 1 (the default) repaints the masked area from pure noise. */
  strength?: number;
}

/**
 * diffusers' StableDiffusionInpaintPipeline. A 9-channel inpainting UNet reads the mask and the masked picture's
 * latents beside its latents at every step. Any other UNet gets masked latent blending: after every step the kept
 * region is replaced by the picture's own latents, noised to the timestep the loop has reached, through a soft-edged
 * mask. Either way the last latents of the kept region are the picture's own, so it comes back as it went in, up to
 * the VAE's round trip.
 */
export async function inpaint(model: ModelFolder, options: InpaintOptions): Promise<GenerateResult> {
  const run = checkInputs(model, options);
  const { mask, maskBlurPx = EDIT_DEFAULTS.maskBlurPx, strength = EDIT_DEFAULTS.inpaintStrength } = options;
  checkMask(run, mask);
  checkStrength(strength);
  const softMask = blurMask(mask, maskBlurPx);
  const prompt = await encodePrompt(run);
  const noise = prepareNoise(run);
  const schedule = prepareTimesteps(run, strength);
  const imageLatents = await encodeImage(run, options.image);
  const conditioning = run.model.unet.inpainting ? await inpaintingConditioning(run, options.image, mask) : undefined;
  const latents = prepareLatents(run, schedule, noise, strength < 1 ? imageLatents : undefined);
  const keepRegion = keptRegionBlend(run, schedule, noise, imageLatents, softMask, { everyStep: !run.model.unet.inpainting });
  const denoised = await denoise(run, { schedule, latents, prompt, noise, conditioning, afterStep: keepRegion });
  return finish(run, await decodeLatents(run, denoised), { denoisingStrength: strength, maskBlur: maskBlurPx, inpaintArea: 'Whole picture' });
}

function checkMask(run: PipelineRun, mask: Mask): void {
  const { width, height } = run.settings;
  if (mask.width !== width || mask.height !== height || mask.data.length !== width * height) {
    throw invalidInput(`The mask must be ${width}x${height}, the size being painted; it is ${mask.width}x${mask.height}.`);
  }
  checkCoverage(mask);
}

/**
 * latents ← (1 − m) · kept + m · latents, with m the soft mask at latent size and `kept` the picture's latents noised
 * to the next timestep (clean after the last one). Plain UNets get it after every step (diffusers' convention for
 * 4-channel UNets); inpainting UNets keep the region themselves and get it once, after the last step (A1111's). The
 * preview's x̂0 gets the clean picture's latents in the kept region at every step.
 */
function keptRegionBlend(
  run: PipelineRun,
  { scheduler, timesteps }: Schedule,
  { noise }: Noise,
  imageLatents: Float32Array,
  softMask: Mask,
  { everyStep }: { everyStep: boolean },
): (result: SchedulerStepResult, index: number) => SchedulerStepResult {
  const cells = latentMask(softMask, run.model.description.vaeScaleFactor);
  const clean = repeatForBatch(run, imageLatents);
  const mix = (kept: Float32Array, painted: Float32Array) =>
    painted.map((value, i) => {
      const m = cells[i % cells.length];
      return (1 - m) * kept[i] + m * value;
    });
  return (result, index) => {
    const last = index === timesteps.length - 1;
    const predOriginalSample = mix(clean, result.predOriginalSample);
    if (!last && !everyStep) return { ...result, predOriginalSample };
    const kept = last ? clean : scheduler.addNoise(clean, noise, timesteps[index + 1]);
    return { prevSample: mix(kept, result.prevSample), predOriginalSample };
  };
}
