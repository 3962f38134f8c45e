import { LIMITS } from '../engine/limits.js';
import { ImagineError } from './errors.js';
import type { GenerationRequest } from './generation.js';

/**
 * Quota is counted in units of work, so a user's allowance means the same on any model and any size: one unit is one
 * denoising step of one 512×512 image (docs/QUOTA.md). Pure functions only; the ledger that charges them is in src/store.
 */

export const UNIT_PIXELS = 512 * 512;
/** The engine's upscaler always enlarges 4× per side (src/engine/upscale.ts). */
export const UPSCALE_FACTOR = 4;

/**
 * The size of the picture(s) a request makes: an upscale's params describe the picture it enlarges, a Vary of an
 * upscale's the size it is varied at before its upscale passes.
 */
export function resultSize(request: Pick<GenerationRequest, 'kind' | 'params'>): { width: number; height: number } {
  const factor = UPSCALE_FACTOR ** ((request.kind === 'upscale' ? 1 : 0) + (request.params.upscalePasses ?? 0));
  return { width: request.params.width * factor, height: request.params.height * factor };
}

export type QuotaPeriod = 'day' | 'week' | 'month';

/** Every limit that applies to one user in one workspace, after overrides and defaults are merged. */
export interface QuotaPolicy {
  /** null: no limit. */
  unitsPerPeriod: number | null;
  period: QuotaPeriod;
  /** width × height of one image. */
  maxPixels: number;
  maxSteps: number;
  maxBatch: number;
  /** Empty: every installed model. */
  allowedModels: string[];
  fastAllowed: boolean;
  relaxAllowed: boolean;
}

/** A stored policy: null (or an empty model list) means "inherit". */
/** The policy for anyone without a stored workspace or user policy: the configured allowance, the engine's own limits. */
export function defaultQuotaPolicy(allowance: Pick<QuotaPolicy, 'unitsPerPeriod' | 'period'>): QuotaPolicy {
  return {
    ...allowance,
    maxPixels: LIMITS.defaultMaxSidePx * LIMITS.defaultMaxSidePx,
    maxSteps: LIMITS.steps.max,
    maxBatch: LIMITS.batch.max,
    allowedModels: [],
    fastAllowed: true,
    relaxAllowed: true,
  };
}

export type QuotaPolicyOverride = { [K in keyof QuotaPolicy]?: QuotaPolicy[K] | null };

/** The user's override wins field by field over the workspace's policy, which wins over the service's defaults. */
export function effectivePolicy(
  defaults: QuotaPolicy,
  workspace?: QuotaPolicyOverride | null,
  user?: QuotaPolicyOverride | null,
): QuotaPolicy {
  const merged: Record<string, unknown> = { ...defaults };
  for (const layer of [workspace, user]) {
    if (!layer) continue;
    for (const [field, value] of Object.entries(layer)) {
      if (value === null || value === undefined) continue;
      if (field === 'allowedModels' && Array.isArray(value) && value.length === 0) continue;
      merged[field] = value;
    }
  }
  return merged as unknown as QuotaPolicy;
}

/**
 * Units a request costs. Text-to-image: pixels × steps × images. Image-to-image and variations run only the last
 * `strength` of the schedule, as diffusers' img2img does. Upscaling runs one network pass over the output, so it costs
 * one step-equivalent of the output's pixels; a Vary of an upscale adds that for each of its upscale passes and images.
 */
export function generationCost(request: Pick<GenerationRequest, 'kind' | 'params'>): number {
  const { width, height, steps, batch, strength, upscalePasses = 0 } = request.params;
  const upscaleCost = (pass: number) => Math.ceil((width * UPSCALE_FACTOR ** pass * height * UPSCALE_FACTOR ** pass) / UNIT_PIXELS);
  if (request.kind === 'upscale') return upscaleCost(1);
  const partial = request.kind === 'img2img' || request.kind === 'vary-subtle' || request.kind === 'vary-strong';
  const effectiveSteps = partial && strength !== undefined ? Math.max(1, Math.ceil(steps * strength)) : steps;
  const passesCost = Array.from({ length: upscalePasses }, (_, k) => upscaleCost(k + 1) * batch).reduce((sum, units) => sum + units, 0);
  return Math.ceil(((width * height) / UNIT_PIXELS) * effectiveSteps * batch) + passesCost;
}

/** Throws the error the user should see when the request is outside what their policy allows. */
export function checkRequestAgainstPolicy(request: Pick<GenerationRequest, 'kind' | 'params' | 'mode'>, policy: QuotaPolicy): void {
  const { width, height, steps, batch, model } = request.params;
  if (request.kind !== 'upscale' && width * height > policy.maxPixels) {
    throw new ImagineError(
      'forbidden',
      `${width}×${height} is larger than this server allows (at most ${policy.maxPixels} pixels, e.g. ${largestSquare(policy.maxPixels)}×${largestSquare(policy.maxPixels)}).`,
      { width, height, maxPixels: policy.maxPixels },
    );
  }
  if (steps > policy.maxSteps) {
    throw new ImagineError('forbidden', `${steps} steps is more than this server allows (at most ${policy.maxSteps}).`, {
      steps,
      maxSteps: policy.maxSteps,
    });
  }
  if (batch > policy.maxBatch) {
    throw new ImagineError('forbidden', `${batch} images at once is more than this server allows (at most ${policy.maxBatch}).`, {
      batch,
      maxBatch: policy.maxBatch,
    });
  }
  if (policy.allowedModels.length > 0 && !policy.allowedModels.includes(model)) {
    throw new ImagineError('forbidden', `The model ${model} is not available to you here; try ${policy.allowedModels.join(', ')}.`, {
      model,
      allowedModels: policy.allowedModels,
    });
  }
  const modeAllowed = request.mode === 'relax' ? policy.relaxAllowed : policy.fastAllowed;
  if (!modeAllowed) {
    const other = request.mode === 'relax' ? 'fast' : 'relax';
    throw new ImagineError('forbidden', `${request.mode} mode is not available to you here; use ${other} mode.`, {
      mode: request.mode,
    });
  }
}

function largestSquare(pixels: number): number {
  return Math.floor(Math.sqrt(pixels) / 8) * 8;
}

/** The quota period that contains `now`, in UTC: days start at midnight, weeks on Monday, months on the 1st. */
export function quotaPeriodWindow(period: QuotaPeriod, now: Date): { start: Date; end: Date } {
  const year = now.getUTCFullYear();
  const month = now.getUTCMonth();
  const day = now.getUTCDate();
  if (period === 'month') return { start: new Date(Date.UTC(year, month, 1)), end: new Date(Date.UTC(year, month + 1, 1)) };
  const daysSinceMonday = period === 'week' ? (now.getUTCDay() + 6) % 7 : 0;
  const start = new Date(Date.UTC(year, month, day - daysSinceMonday));
  const lengthDays = period === 'week' ? 7 : 1;
  return { start, end: new Date(Date.UTC(year, month, day - daysSinceMonday + lengthDays)) };
}

export function quotaExceeded(details: { costUnits: number; remainingUnits: number; resetsAt: Date; now: Date }): ImagineError {
  const { costUnits, remainingUnits, resetsAt, now } = details;
  return new ImagineError(
    'quota_exceeded',
    `This needs ${costUnits} units and you have ${Math.max(0, remainingUnits)} left; your quota resets ${describeReset(resetsAt, now)}.`,
    { costUnits, remainingUnits, resetsAt: resetsAt.toISOString() },
  );
}

function describeReset(resetsAt: Date, now: Date): string {
  const minutes = Math.max(1, Math.ceil((resetsAt.getTime() - now.getTime()) / 60_000));
  const wait = minutes < 120 ? `${minutes} minutes` : minutes < 48 * 60 ? `${Math.round(minutes / 60)} hours` : `${Math.round(minutes / 1440)} days`;
  return `in ${wait} (${resetsAt.toISOString().slice(0, 16).replace('T', ' ')} UTC)`;
}
