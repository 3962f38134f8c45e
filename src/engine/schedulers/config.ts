import { z } from 'zod';
import { invalidInput, modelFailure } from '../errors.js';
import type { BetaSchedule, PredictionType, TimestepSpacing } from '../types.js';

/**
 * A model's `scheduler/scheduler_config.json` in diffusers' own key names. Every key is optional because each diffusers
 * scheduler class has its own defaults (DDIM spaces timesteps `leading`, Euler `linspace`; LCM's betas differ), and a
 * config saved by one class is routinely loaded into another; each scheduler file applies its class's defaults.
 * Unknown keys (`_class_name`, `skip_prk_steps`, ...) are ignored, as diffusers' `from_config` does.
 */
const schedulerConfigSchema = z.object({
  num_train_timesteps: z.number().int().min(2).optional(),
  beta_start: z.number().positive().optional(),
  beta_end: z.number().positive().optional(),
  beta_schedule: z.enum(['linear', 'scaled_linear', 'squaredcos_cap_v2']).optional(),
  trained_betas: z.array(z.number().gt(0).lt(1)).nullable().optional(),
  prediction_type: z.enum(['epsilon', 'v_prediction', 'sample']).optional(),
  timestep_spacing: z.enum(['leading', 'trailing', 'linspace']).optional(),
  steps_offset: z.number().int().min(0).optional(),
  clip_sample: z.boolean().optional(),
  clip_sample_range: z.number().positive().optional(),
  set_alpha_to_one: z.boolean().optional(),
  rescale_betas_zero_snr: z.boolean().optional(),
  // Dynamic thresholding and learned variances belong to pixel-space models (DeepFloyd IF), which we cannot run.
  thresholding: z.literal(false).optional(),
  variance_type: z.enum(['fixed_small', 'fixed_small_log', 'fixed_large', 'fixed_large_log']).nullable().optional(),
  interpolation_type: z.enum(['linear', 'log_linear']).optional(),
  timestep_type: z.enum(['discrete', 'continuous']).optional(),
  final_sigmas_type: z.enum(['zero', 'sigma_min']).optional(),
  lower_order_final: z.boolean().optional(),
  // -Infinity (diffusers' default, written by Python's json) means no clipping.
  lambda_min_clipped: z.union([z.number(), z.literal(Number.NEGATIVE_INFINITY)]).optional(),
  original_inference_steps: z.number().int().positive().optional(),
  timestep_scaling: z.number().positive().optional(),
});

export type SchedulerConfig = z.infer<typeof schedulerConfigSchema>;

/** Parse scheduler_config.json; a value we cannot honour is a broken or unsupported model, named by its key. */
export function parseSchedulerConfig(json: unknown): SchedulerConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw modelFailure(`scheduler_config.json must hold a JSON object; it holds ${JSON.stringify(json) ?? 'nothing'}.`);
  }
  const parsed = schedulerConfigSchema.safeParse(json);
  if (parsed.success) {
    const { trained_betas: trainedBetas, num_train_timesteps: trainTimesteps } = parsed.data;
    if (trainedBetas && trainedBetas.length !== (trainTimesteps ?? 1000)) {
      throw modelFailure(
        `scheduler_config.json: "trained_betas" has ${trainedBetas.length} values but "num_train_timesteps" is ${trainTimesteps ?? 1000}; they must match.`,
      );
    }
    return parsed.data;
  }
  const problems = parsed.error.issues.map((issue) => {
    const key = issue.path.join('.');
    return `"${key}" ${issue.message} (got ${JSON.stringify(readPath(json, issue.path))})`;
  });
  throw modelFailure(`scheduler_config.json is not supported: ${problems.join('; ')}.`, { issues: parsed.error.issues });
}

function readPath(value: unknown, path: readonly PropertyKey[]): unknown {
  return path.reduce<unknown>(
    (node, key) => (node && typeof node === 'object' ? (node as Record<PropertyKey, unknown>)[key] : undefined),
    value,
  );
}

/** The class defaults a scheduler file applies where scheduler_config.json is silent. */
export interface NoiseScheduleDefaults {
  betaStart: number;
  betaEnd: number;
  betaSchedule: BetaSchedule;
}

export const DDPM_NOISE_DEFAULTS: NoiseScheduleDefaults = { betaStart: 0.0001, betaEnd: 0.02, betaSchedule: 'linear' };

export interface NoiseSchedule {
  numTrainTimesteps: number;
  betas: Float64Array;
  alphasCumprod: Float64Array;
}

/**
 * Betas from the schedule (diffusers' `__init__`), optionally rescaled to zero terminal SNR, and ᾱ = Π(1 − β).
 * diffusers forms each 1 − β in float32 and torch's cumprod multiplies them in double; we do the same, because near
 * t = 0 that float32 rounding moves σ by ~1e-4, enough to move a Karras σ to a neighbouring integer timestep.
 */
export function noiseSchedule(config: SchedulerConfig, defaults: NoiseScheduleDefaults): NoiseSchedule {
  const numTrainTimesteps = config.num_train_timesteps ?? 1000;
  const betaStart = config.beta_start ?? defaults.betaStart;
  const betaEnd = config.beta_end ?? defaults.betaEnd;
  let betas: Float64Array;
  if (config.trained_betas) {
    betas = Float64Array.from(config.trained_betas);
  } else {
    const schedule = config.beta_schedule ?? defaults.betaSchedule;
    if (schedule === 'linear') {
      betas = linspace(betaStart, betaEnd, numTrainTimesteps);
    } else if (schedule === 'scaled_linear') {
      // The latent-diffusion schedule: linear in √β.
      betas = linspace(Math.sqrt(betaStart), Math.sqrt(betaEnd), numTrainTimesteps).map((root) => root * root);
    } else {
      betas = cosineBetas(numTrainTimesteps);
    }
  }
  if (config.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnr(betas);
  return { numTrainTimesteps, betas, alphasCumprod: cumulativeAlphas(betas) };
}

/** Nichol & Dhariwal's cosine ᾱ(t) discretised into betas capped at 0.999 (diffusers' `betas_for_alpha_bar`). */
function cosineBetas(count: number): Float64Array {
  const alphaBar = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  return Float64Array.from({ length: count }, (_, i) => Math.min(1 - alphaBar((i + 1) / count) / alphaBar(i / count), 0.999));
}

/** Lin et al., "Common Diffusion Noise Schedules and Sample Steps are Flawed" (2023), Algorithm 1. */
export function rescaleZeroTerminalSnr(betas: Float64Array): Float64Array {
  const alphasBarSqrt = cumulativeAlphas(betas).map(Math.sqrt);
  const first = alphasBarSqrt[0];
  const last = alphasBarSqrt[alphasBarSqrt.length - 1];
  const rescaled = alphasBarSqrt.map((value) => ((value - last) * first) / (first - last));
  const alphasBar = rescaled.map((value) => value * value);
  return alphasBar.map((value, i) => 1 - (i === 0 ? value : value / alphasBar[i - 1]));
}

function cumulativeAlphas(betas: Float64Array): Float64Array {
  const out = new Float64Array(betas.length);
  let product = 1;
  betas.forEach((beta, i) => {
    product *= Math.fround(1 - Math.fround(beta));
    out[i] = product;
  });
  return out;
}

/** numpy's `linspace(start, stop, count)` (endpoint included). */
export function linspace(start: number, stop: number, count: number): Float64Array {
  if (count === 1) return Float64Array.of(start);
  const step = (stop - start) / (count - 1);
  return Float64Array.from({ length: count }, (_, i) => (i === count - 1 ? stop : start + i * step));
}

/** numpy's `round`: halves go to the even neighbour, so 937.5 → 938 and 812.5 → 812. */
export function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * The stride numpy's `arange(start, stop, step)` really uses: it fills `start + i·δ` with δ = (start + step) − start,
 * which can differ from `step` in the last bits and so decides which way a half rounds (48 trailing steps: 936).
 */
export function numpyArangeDelta(start: number, step: number): number {
  return start + step - start;
}

/**
 * The descending timesteps that DDPM, DDIM, Euler and Euler ancestral share for `timestep_spacing` (Lin et al. 2023,
 * Table 2). `linspace` keeps fractional timesteps for the sigma-based schedulers (`fractional`), rounds otherwise.
 */
export function spacedTimesteps(
  config: SchedulerConfig,
  numInferenceSteps: number,
  defaults: { spacing: TimestepSpacing; fractional: boolean },
): number[] {
  const numTrainTimesteps = config.num_train_timesteps ?? 1000;
  const spacing = config.timestep_spacing ?? defaults.spacing;
  let timesteps: number[];
  if (spacing === 'linspace') {
    const points = Array.from(linspace(0, numTrainTimesteps - 1, numInferenceSteps)).reverse();
    timesteps = defaults.fractional ? points.map(Math.fround) : points.map(roundHalfEven);
  } else if (spacing === 'leading') {
    const stepRatio = Math.floor(numTrainTimesteps / numInferenceSteps);
    const offset = config.steps_offset ?? 0;
    timesteps = Array.from({ length: numInferenceSteps }, (_, i) => (numInferenceSteps - 1 - i) * stepRatio + offset);
  } else {
    const delta = numpyArangeDelta(numTrainTimesteps, -numTrainTimesteps / numInferenceSteps);
    timesteps = Array.from({ length: numInferenceSteps }, (_, i) => roundHalfEven(numTrainTimesteps + i * delta) - 1);
  }
  if (timesteps[0] >= numTrainTimesteps) {
    throw modelFailure(
      `scheduler_config.json: "steps_offset" ${config.steps_offset} puts timestep ${timesteps[0]} past "num_train_timesteps" ${numTrainTimesteps}.`,
    );
  }
  return timesteps;
}

/** One to num_train_timesteps steps: a schedule cannot have more distinct timesteps than the model was trained on. */
export function assertInferenceSteps(numInferenceSteps: number, numTrainTimesteps: number): void {
  if (!Number.isInteger(numInferenceSteps) || numInferenceSteps < 1 || numInferenceSteps > numTrainTimesteps) {
    throw invalidInput(`Steps must be a whole number from 1 to ${numTrainTimesteps} (this model's training timesteps); got ${numInferenceSteps}.`);
  }
}

export function predictionTypeOf(config: SchedulerConfig): PredictionType {
  return config.prediction_type ?? 'epsilon';
}

/** x̂0 for the ᾱ-parameterised schedulers (DDPM, DDIM, LCM), in float64 per element. */
export function predictOriginal(
  predictionType: PredictionType,
  alphaProd: number,
  modelOutput: number,
  sample: number,
): number {
  const betaProd = 1 - alphaProd;
  if (predictionType === 'epsilon') return (sample - Math.sqrt(betaProd) * modelOutput) / Math.sqrt(alphaProd);
  if (predictionType === 'sample') return modelOutput;
  return Math.sqrt(alphaProd) * sample - Math.sqrt(betaProd) * modelOutput;
}

export function assertSameLength(modelOutput: Float32Array, sample: Float32Array): void {
  if (modelOutput.length !== sample.length) {
    throw modelFailure(`The model returned ${modelOutput.length} values for a sample of ${sample.length}; they must match.`);
  }
}
