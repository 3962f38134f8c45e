import { z } from 'zod';
import { LIMITS, PAN_DIRECTIONS } from './limits.js';
import { promptTextProblem } from './prompt-text.js';
import { SAMPLER_NAMES } from './types.js';

/**
 * The engine's job boundary, as plain data and types only (no ONNX Runtime behind this import), so the application
 * can build its queue payload schema on it: src/engine/image-engine.ts runs these jobs.
 */

export const ENGINE_JOB_KINDS = ['imagine', 'upscale', 'vary-subtle', 'vary-strong', 'reroll', 'img2img', 'vary-region', 'zoom-out', 'pan', 'blend'] as const;
export type EngineJobKind = (typeof ENGINE_JOB_KINDS)[number];

/**
 * One job's parameters: what every caller — the worker's queue payload included — must satisfy. The application
 * extends the schema with its own fields.
 */
const promptText = (label: string, options: { mayBeBlank?: boolean } = {}) =>
  z
    .string()
    .max(LIMITS.promptChars)
    .superRefine((text, context) => {
      if (text.length === 0 && !options.mayBeBlank) {
        context.addIssue({ code: 'custom', message: `the ${label} is empty` });
        return;
      }
      const problem = promptTextProblem(text, options);
      if (problem) context.addIssue({ code: 'custom', message: `the ${label} ${problem}` });
    });

export const EngineJobParams = z.object({
  prompt: promptText('prompt'),
  negativePrompt: promptText('negative prompt', { mayBeBlank: true }).default(''),
  width: z.number().int().min(LIMITS.sidePx.min).max(LIMITS.sidePx.max),
  height: z.number().int().min(LIMITS.sidePx.min).max(LIMITS.sidePx.max),
  steps: z.number().int().min(LIMITS.steps.min).max(LIMITS.steps.max),
  guidance: z.number().min(LIMITS.guidance.min).max(LIMITS.guidance.max),
  sampler: z.enum(SAMPLER_NAMES),
  seed: z.number().int().min(LIMITS.seed.min).max(LIMITS.seed.max),
  batch: z.number().int().min(LIMITS.batch.min).max(LIMITS.batch.max),
  /** image-to-image / variation / edit strength in (0, 1]. */
  strength: z.number().gt(LIMITS.strength.above).lte(LIMITS.strength.max).optional(),
  /** A1111-style seed variation: a second seed slerped in with this strength. */
  variationSeed: z.number().int().min(LIMITS.seed.min).max(LIMITS.seed.max).optional(),
  variationStrength: z.number().min(LIMITS.variationStrength.min).max(LIMITS.variationStrength.max).optional(),
  /** vary-region without a mask image: a preset (left, right, top, bottom, center, border) or `x,y,w,h`. */
  region: z.string().max(64).optional(),
  /** vary-region, zoom-out, pan: σ of the soft mask edge in pixels. */
  maskBlur: z.number().int().min(LIMITS.maskBlurPx.min).max(LIMITS.maskBlurPx.max).optional(),
  /** zoom-out: the factor the picture shrinks by. */
  zoomOut: z.number().min(LIMITS.zoomOut.min).max(LIMITS.zoomOut.max).optional(),
  /** pan: the side the picture grows on. */
  pan: z.enum(PAN_DIRECTIONS).optional(),
  /**
   * vary-subtle / vary-strong of an upscaled picture: the variations are made at width × height (the model's size)
   * and then enlarged 4× this many times, so they come out at the size of the picture that was varied.
   */
  upscalePasses: z.number().int().min(LIMITS.upscalePasses.min).max(LIMITS.upscalePasses.max).optional(),
});
export type EngineJobParams = z.infer<typeof EngineJobParams>;

export interface EngineJob {
  kind: EngineJobKind;
  params: EngineJobParams;
}
