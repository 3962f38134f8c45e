import { resultToPngs, upscalePng, varyImage, VARIATION_STRENGTH } from './actions.js';
import { invalidInput } from './errors.js';
import { loadImageFile } from './images.js';
import type { EngineJob } from './jobs.js';
import type { ModelFolder } from './model-folder.js';
import { generate, type GenerateOptions, type StepEvent } from './pipeline.js';

/**
 * The engine behind a job queue: one job — a kind and its parameters, as src/engine/jobs.ts defines them — in, PNG
 * files out, for one loaded model folder. The application's own request type carries more
 * (who asked, where to answer); anything shaped like an EngineJob runs.
 */
export interface EngineHooks {
  signal?: AbortSignal;
  /** The PNG an upscale / vary / img2img acts on. */
  parentImage?: Buffer;
  onStep?: (event: StepEvent) => void;
}

export interface EngineOutput {
  /** PNG files (with their A1111 `parameters` chunk), one per image, in batch order. */
  images: Buffer[];
  /** A 2×2 (or smaller) PNG grid when the batch has more than one image. */
  grid?: Buffer;
  seeds: number[];
  timingsMs: Record<string, number>;
}

export interface ImageEngine {
  readonly modelName: string;
  generate(job: EngineJob, hooks: EngineHooks): Promise<EngineOutput>;
}

export function createImageEngine(model: ModelFolder): ImageEngine {
  return {
    modelName: model.name,
    async generate(job, hooks): Promise<EngineOutput> {
      const { params } = job;
      const needsParent = job.kind === 'upscale' || job.kind === 'vary-subtle' || job.kind === 'vary-strong' || job.kind === 'img2img';
      if (needsParent && !hooks.parentImage) {
        throw invalidInput(`A ${job.kind} needs the image it acts on, and it is no longer available.`);
      }
      if (job.kind === 'upscale') {
        const upscaled = await upscalePng(model, hooks.parentImage!);
        return { images: [upscaled.png], seeds: [params.seed], timingsMs: {} };
      }
      const options: GenerateOptions = {
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
      if (job.kind === 'vary-subtle' || job.kind === 'vary-strong') {
        const kind = job.kind === 'vary-subtle' ? 'subtle' : 'strong';
        result = await varyImage(model, hooks.parentImage!, kind, { ...options, strength: params.strength ?? VARIATION_STRENGTH[kind] });
      } else if (job.kind === 'img2img') {
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
