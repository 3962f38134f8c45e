import { invalidInput } from '../core/errors.js';
import type { GenerationRequest } from '../core/generation.js';
import type { EngineOutput, ImageEngine } from '../core/ports.js';
import { resultToPngs, upscalePng, varyImage, VARIATION_STRENGTH } from './actions.js';
import { loadImageFile } from './images.js';
import type { ModelFolder } from './model-folder.js';
import { generate, type GenerateOptions } from './pipeline.js';

/** The engine as the worker sees it: a GenerationRequest in, PNG files out, for one loaded model folder. */
export function createImageEngine(model: ModelFolder): ImageEngine {
  return {
    modelName: model.name,
    async generate(request, hooks): Promise<EngineOutput> {
      const { params } = request;
      const needsParent = request.kind === 'upscale' || request.kind === 'vary-subtle' || request.kind === 'vary-strong' || request.kind === 'img2img';
      if (needsParent && !hooks.parentImage) {
        throw invalidInput(`A ${request.kind} needs the image it acts on, and it is no longer available.`);
      }
      if (request.kind === 'upscale') {
        const upscaled = await upscalePng(model, hooks.parentImage!);
        return { images: [upscaled.png], seeds: [params.seed], timingsMs: {} };
      }
      const options: Omit<GenerateOptions, 'prompt'> & { prompt: string } = {
        prompt: params.prompt,
        negativePrompt: params.negativePrompt,
        width: params.width,
        height: params.height,
        steps: params.steps,
        guidance: params.guidance,
        sampler: params.sampler,
        seed: params.seed,
        batch: params.batch,
        variation:
          params.variationSeed !== undefined && params.variationStrength !== undefined
            ? { seed: params.variationSeed, strength: params.variationStrength }
            : undefined,
        signal: hooks.signal,
        onStep: hooks.onStep,
      };
      let result;
      if (request.kind === 'vary-subtle' || request.kind === 'vary-strong') {
        const kind = request.kind === 'vary-subtle' ? 'subtle' : 'strong';
        result = await varyImage(model, hooks.parentImage!, kind, { ...options, strength: params.strength ?? VARIATION_STRENGTH[kind] });
      } else if (request.kind === 'img2img') {
        const init = await loadImageFile(hooks.parentImage!, { width: params.width, height: params.height });
        result = await generate(model, { ...options, init: { image: init.tensor, strength: params.strength ?? 0.6 } });
      } else {
        result = await generate(model, options);
      }
      const pngs = await resultToPngs(result);
      return { images: pngs.images, grid: pngs.grid, seeds: result.seeds, timingsMs: { ...result.timingsMs } };
    },
  };
}
