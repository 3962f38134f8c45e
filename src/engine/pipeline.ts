import type { ModelFolder } from './model-folder.js';
import { imageToImage } from './pipelines/image-to-image.js';
import type { GenerateOptions, GenerateResult } from './pipelines/stages.js';
import { textToImage } from './pipelines/text-to-image.js';

export type { GenerateOptions, GenerateResult, StageTimingsMs, StepEvent } from './pipelines/stages.js';

/**
 * The pipeline a set of options asks for, as diffusers' AutoPipeline picks one: image-to-image when they carry an init
 * picture, text-to-image otherwise. Inpainting, outpainting and blends are asked for by name (src/engine/edits.ts).
 */
export function generate(model: ModelFolder, options: GenerateOptions): Promise<GenerateResult> {
  return options.init ? imageToImage(model, { ...options, init: options.init }) : textToImage(model, options);
}
