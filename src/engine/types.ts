/**
 * The engine's internal contracts. Latents and images are plain Float32Arrays in NCHW order with their shape beside
 * them; nothing here knows about ONNX Runtime.
 */

/** A deterministic random source (see src/engine/random.ts for the algorithm). */
export interface RandomSource {
  /** Uniform float64 in [0, 1). */
  nextUniform(): number;
  /** `count` standard normal samples as float32. */
  randn(count: number): Float32Array;
}

export interface SchedulerStepResult {
  prevSample: Float32Array;
  /** x̂0, the model's current estimate of the clean latents (used for previews). */
  predOriginalSample: Float32Array;
}

/**
 * One interface, one file per implementation (diffusers' single-file policy). Call `setTimesteps(n)` first, then for
 * each `t` of `timesteps`: `scaleModelInput`, run the model, `step`.
 */
export interface Scheduler {
  readonly name: SamplerName;
  /** The timesteps to feed the UNet, in order (float for sigma-based schedulers, integral for the others). */
  readonly timesteps: readonly number[];
  /** Standard deviation of the initial noise: 1 for DDPM/DDIM/LCM, the largest sigma for Euler-type samplers. */
  readonly initNoiseSigma: number;
  /** Prediction type the model was trained with (from scheduler_config.json). */
  readonly predictionType: PredictionType;
  setTimesteps(numInferenceSteps: number): void;
  /** For image-to-image: start the loop at `timesteps[beginIndex]` (diffusers' `set_begin_index`). */
  setBeginIndex(beginIndex: number): void;
  scaleModelInput(sample: Float32Array, timestep: number): Float32Array;
  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, random: RandomSource): SchedulerStepResult;
  /** Forward-diffuse clean latents to `timestep` (image-to-image). */
  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array;
}

export const SAMPLER_NAMES = ['ddpm', 'ddim', 'euler', 'euler-a', 'dpmpp-2m', 'dpmpp-2m-karras', 'lcm'] as const;
export type SamplerName = (typeof SAMPLER_NAMES)[number];

export type PredictionType = 'epsilon' | 'v_prediction' | 'sample';
export type TimestepSpacing = 'leading' | 'trailing' | 'linspace';
export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';

/** An RGB image, float32 in [0, 1], NCHW with N = 1, or raw interleaved 8-bit RGB for encoding. */
export interface RgbImage {
  width: number;
  height: number;
  /** Interleaved RGB, 8 bits per channel, length width * height * 3. */
  data: Uint8Array;
}
