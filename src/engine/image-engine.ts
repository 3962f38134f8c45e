import { resultToPngs, upscaledResultToPngs, upscalePng, varyImage, VARIATION_STRENGTH } from './actions.js';
import { blendPictures, pan, varyRegion, zoomOut, type EditLineage, type EditOptions } from './edits.js';
import { invalidInput } from './errors.js';
import { loadImageFile } from './images.js';
import { LIMITS } from './limits.js';
import type { EngineJob } from './jobs.js';
import type { ModelFolder } from './model-folder.js';
import { generate, type GenerateOptions, type GenerateResult, type StepEvent } from './pipeline.js';
import { UPSCALE_FACTOR } from './upscale.js';

/**
 * The engine behind a job queue: one job — a kind and its parameters, as src/engine/jobs.ts defines them — in, PNG
 * files out, for one loaded model folder. The application's own request type carries more (who asked, where to
 * answer); anything shaped like an EngineJob runs.
 */

export interface EngineHooks {
  signal?: AbortSignal;
  /** The PNG an upscale / vary / img2img / edit acts on. */
  parentImage?: Buffer;
  /** vary-region: what to repaint, as an image (white or opaque = repaint); without it, `params.region` says. */
  maskImage?: Buffer;
  /** blend: the 2–4 PNGs to blend. */
  blendImages?: Buffer[];
  onStep?: (event: StepEvent) => void;
}

export interface EngineOutput {
  /** PNG files (with their A1111 `parameters` chunk), one per image, in batch order. */
  images: Buffer[];
  /** A 2×2 (or smaller) PNG grid when the batch has more than one image. */
  grid?: Buffer;
  seeds: number[];
  timingsMs: Record<string, number>;
  /** What the user should know about how the request was read (a prompt cut at the token limit). */
  warnings?: string[];
  /** Edits: what was done to what, and the mask PNG to store beside the result. */
  edit?: EditLineage;
}

export interface ImageEngine {
  readonly modelName: string;
  generate(job: EngineJob, hooks: EngineHooks): Promise<EngineOutput>;
}

const NEEDS_PARENT = new Set<EngineJob['kind']>(['upscale', 'vary-subtle', 'vary-strong', 'img2img', 'vary-region', 'zoom-out', 'pan']);

export function createImageEngine(model: ModelFolder): ImageEngine {
  return {
    modelName: model.name,
    async generate(job, hooks): Promise<EngineOutput> {
      const { params } = job;
      if (NEEDS_PARENT.has(job.kind) && !hooks.parentImage) {
        throw invalidInput(`The picture this ${job.kind} works on is no longer available: it was deleted before the job ran.`);
      }
      const parent = hooks.parentImage!;
      const passes = params.upscalePasses ?? 0;
      if (passes > 0 && job.kind !== 'vary-subtle' && job.kind !== 'vary-strong') {
        throw invalidInput(`Only a Vary is upscaled within its job; a ${job.kind} takes no upscale passes.`);
      }
      if (Math.max(params.width, params.height) * UPSCALE_FACTOR ** passes > LIMITS.sidePx.max) {
        throw invalidInput(`${passes} upscale(s) of ${params.width}x${params.height} would pass ${LIMITS.sidePx.max} pixels a side.`);
      }
      if (job.kind === 'upscale') {
        const upscaled = await upscalePng(model, parent);
        return { images: [upscaled.png], seeds: [params.seed], timingsMs: {} };
      }
      const common = {
        prompt: params.prompt,
        negativePrompt: params.negativePrompt,
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
      const options: GenerateOptions = { ...common, width: params.width, height: params.height };
      // An edit's size follows from its picture (src/engine/edit-sizes.ts), not from the job.
      const edit: EditOptions = { ...common, strength: params.strength, maskBlurPx: params.maskBlur };
      let result: GenerateResult & { edit?: EditLineage };
      switch (job.kind) {
        case 'vary-subtle':
        case 'vary-strong': {
          const kind = job.kind === 'vary-subtle' ? 'subtle' : 'strong';
          const workingSize = { width: params.width, height: params.height };
          result = await varyImage(model, parent, kind, { ...options, strength: params.strength ?? VARIATION_STRENGTH[kind], workingSize });
          break;
        }
        case 'img2img': {
          const init = await loadImageFile(parent, { width: params.width, height: params.height });
          result = await generate(model, { ...options, init: { image: init.tensor, strength: params.strength ?? 0.6 } });
          break;
        }
        case 'vary-region': {
          const area = hooks.maskImage ? { maskImage: hooks.maskImage } : params.region !== undefined ? { region: params.region } : undefined;
          if (!area) throw invalidInput('Vary (Region) needs a mask image or a region (left, right, top, bottom, center, border, or x,y,w,h).');
          result = await varyRegion(model, parent, area, edit);
          break;
        }
        case 'zoom-out':
          if (params.zoomOut === undefined) throw invalidInput('Zoom Out needs a factor from 1.1 to 2.');
          result = await zoomOut(model, parent, params.zoomOut, edit);
          break;
        case 'pan':
          if (params.pan === undefined) throw invalidInput('Pan needs a direction: left, right, up or down.');
          result = await pan(model, parent, params.pan, edit);
          break;
        case 'blend':
          result = await blendPictures(model, hooks.blendImages ?? [], edit);
          break;
        case 'imagine':
        case 'reroll':
          result = await generate(model, options);
          break;
      }
      const pngs = passes > 0 ? await upscaledResultToPngs(model, result, passes) : await resultToPngs(result);
      return {
        images: pngs.images,
        grid: pngs.grid,
        seeds: result.seeds,
        timingsMs: { ...result.timingsMs },
        ...(result.warnings.length > 0 && { warnings: result.warnings }),
        ...(result.edit && { edit: result.edit }),
      };
    },
  };
}
