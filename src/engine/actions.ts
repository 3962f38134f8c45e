import { invalidInput } from './errors.js';
import { encodePng, loadImageFile, makeGrid, readImageSize } from './images.js';
import type { ModelFolder } from './model-folder.js';
import { formatParameters, parseParameters, type GenerationParameters } from './parameters.js';
import { readTextChunks } from './png-text.js';
import { generate, type GenerateOptions, type GenerateResult } from './pipeline.js';
import { UPSCALE_FACTOR, upscaleImage } from './upscale.js';
import type { RgbImage } from './types.js';

/**
 * What a user can do with a finished image — vary it, upscale it, start from it — expressed over PNG files, so the CLI
 * and the worker (which keep images as PNGs in the image store) share one implementation.
 */

/** img2img strengths for "vary (subtle)" and "vary (strong)", the values Fooocus made familiar. */
export const VARIATION_STRENGTH = { subtle: 0.5, strong: 0.85 } as const;
export type VariationKind = keyof typeof VARIATION_STRENGTH;

export interface PngFiles {
  images: Buffer[];
  grid?: Buffer;
}

/** Encodes a result as PNGs carrying A1111 `parameters`, plus a grid when the batch has more than one image. */
export async function resultToPngs(result: GenerateResult): Promise<PngFiles> {
  const images = await Promise.all(result.images.map((image, k) => encodePng(image, formatParameters(result.parameters[k]))));
  const grid = result.images.length > 1 ? await encodePng(makeGrid(result.images), formatParameters(result.parameters[0])) : undefined;
  return { images, grid };
}

/** The generation parameters stored in a PNG we (or AUTOMATIC1111) wrote, if any. */
export function parametersOfPng(png: Buffer): Partial<GenerationParameters> | undefined {
  const text = readTextChunks(png).parameters;
  return text ? parseParameters(text) : undefined;
}

/**
 * Re-renders an image with a new seed, keeping its composition: image-to-image from the image itself, at its own size
 * or at `workingSize` (an upscaled picture brought back to the size the model makes).
 */
export async function varyImage(
  model: ModelFolder,
  source: Buffer,
  kind: VariationKind,
  options: Omit<GenerateOptions, 'init' | 'prompt'> & { prompt?: string; strength?: number; workingSize?: { width: number; height: number } },
): Promise<GenerateResult> {
  const parameters = parametersOfPng(source) ?? {};
  const prompt = options.prompt ?? parameters.prompt;
  if (!prompt) {
    throw invalidInput('This image carries no prompt in its PNG parameters; give the prompt to vary it with.');
  }
  const { workingSize, ...generateOptions } = options;
  const { width, height } = workingSize ?? (await readImageSize(source));
  const init = await loadImageFile(source, { width, height });
  return generate(model, {
    negativePrompt: parameters.negativePrompt,
    steps: parameters.steps,
    guidance: parameters.guidance,
    sampler: parameters.sampler,
    ...generateOptions,
    prompt,
    width,
    height,
    init: { image: init.tensor, strength: options.strength ?? VARIATION_STRENGTH[kind] },
  });
}

export interface UpscaleResult {
  png: Buffer;
  image: RgbImage;
  /** 'model' when the folder's upscaler/model.onnx ran, 'lanczos' when the folder has none. */
  method: 'model' | 'lanczos';
}

/** 4× upscale, keeping the source's parameters and saying which upscaler made it (A1111's postprocessing fields). */
export async function upscalePng(model: ModelFolder, source: Buffer): Promise<UpscaleResult> {
  const { width, height } = await readImageSize(source);
  const { rgb } = await loadImageFile(source, { width, height });
  const { image, method } = await upscaleImage(rgb, model.upscaler?.session ?? null);
  const original = readTextChunks(source).parameters;
  const text = `${original ? `${original}, ` : ''}${postprocessFields(model, 1)}`;
  return { png: await encodePng(image, text), image, method };
}

/**
 * A result with each image enlarged 4× `passes` times, as PNGs (and a grid) whose `parameters` say so: a Vary on an
 * upscale comes back at the size of the picture that was varied.
 */
export async function upscaledResultToPngs(model: ModelFolder, result: GenerateResult, passes: number): Promise<PngFiles> {
  const upscaled: RgbImage[] = [];
  for (const made of result.images) {
    let image = made;
    for (let pass = 0; pass < passes; pass++) image = (await upscaleImage(image, model.upscaler?.session ?? null)).image;
    upscaled.push(image);
  }
  const text = (k: number) => `${formatParameters(result.parameters[k])}, ${postprocessFields(model, passes)}`;
  const images = await Promise.all(upscaled.map((image, k) => encodePng(image, text(k))));
  const grid = upscaled.length > 1 ? await encodePng(makeGrid(upscaled), text(0)) : undefined;
  return { images, grid };
}

/** A1111's postprocessing fields for `passes` 4× upscales by this folder's upscaler (Lanczos when it has none). */
function postprocessFields(model: ModelFolder, passes: number): string {
  const upscaler = model.upscaler ? `${model.name} upscaler` : 'Lanczos';
  return `Postprocess upscale by: ${UPSCALE_FACTOR ** passes}, Postprocess upscaler: ${upscaler}`;
}

