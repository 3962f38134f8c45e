import { invalidInput, modelFailure } from '../errors.js';
import type { PredictionType, RandomSource, SamplerName, Scheduler, SchedulerStepResult } from '../types.js';
import {
  assertInferenceSteps,
  assertSameLength,
  noiseSchedule,
  predictOriginal,
  predictionTypeOf,
  type NoiseScheduleDefaults,
  type SchedulerConfig,
} from './config.js';

/** LCMScheduler's own defaults: the SD 1.x betas its distilled models are trained with. */
const LCM_NOISE_DEFAULTS: NoiseScheduleDefaults = { betaStart: 0.00085, betaEnd: 0.012, betaSchedule: 'scaled_linear' };

/** The boundary-condition constant σ_data of Song et al., "Consistency Models" (2023). */
const SIGMA_DATA = 0.5;

/**
 * Luo et al., "Latent Consistency Models" (2023), multistep sampling (diffusers' LCMScheduler): each step maps x_t to
 * its consistency estimate c_skip·x_t + c_out·x̂0, then re-noises it to the next timestep. Timesteps are a subset of
 * the `original_inference_steps`-step schedule the model was distilled on; timestep_spacing and steps_offset do not
 * apply.
 */
export class LcmScheduler implements Scheduler {
  readonly name: SamplerName = 'lcm';
  readonly initNoiseSigma = 1;
  readonly predictionType: PredictionType;
  timesteps: readonly number[] = [];
  private readonly alphasCumprod: Float64Array;
  private readonly numTrainTimesteps: number;
  private readonly finalAlphaCumprod: number;
  private readonly originalInferenceSteps: number;
  private stepIndex: number | undefined;
  private beginIndex: number | undefined;

  constructor(private readonly config: SchedulerConfig) {
    const schedule = noiseSchedule(config, LCM_NOISE_DEFAULTS);
    this.alphasCumprod = schedule.alphasCumprod;
    this.numTrainTimesteps = schedule.numTrainTimesteps;
    this.predictionType = predictionTypeOf(config);
    this.finalAlphaCumprod = (config.set_alpha_to_one ?? true) ? 1 : this.alphasCumprod[0];
    this.originalInferenceSteps = config.original_inference_steps ?? 50;
    if (this.originalInferenceSteps > this.numTrainTimesteps) {
      throw modelFailure(
        `scheduler_config.json: "original_inference_steps" ${this.originalInferenceSteps} exceeds "num_train_timesteps" ${this.numTrainTimesteps}.`,
      );
    }
  }

  setTimesteps(numInferenceSteps: number): void {
    assertInferenceSteps(numInferenceSteps, this.numTrainTimesteps);
    if (numInferenceSteps > this.originalInferenceSteps) {
      throw invalidInput(
        `The lcm sampler takes at most ${this.originalInferenceSteps} steps with this model (its original_inference_steps); got ${numInferenceSteps}.`,
      );
    }
    const stride = Math.floor(this.numTrainTimesteps / this.originalInferenceSteps);
    const distilled = Array.from({ length: this.originalInferenceSteps }, (_, i) => (this.originalInferenceSteps - i) * stride - 1);
    const indexStep = distilled.length / numInferenceSteps;
    this.timesteps = Array.from({ length: numInferenceSteps }, (_, i) => distilled[Math.floor(i * indexStep)]);
    this.stepIndex = undefined;
    this.beginIndex = undefined;
  }

  setBeginIndex(beginIndex: number): void {
    this.beginIndex = beginIndex;
  }

  scaleModelInput(sample: Float32Array): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, random: RandomSource): SchedulerStepResult {
    assertSameLength(modelOutput, sample);
    if (this.timesteps.length === 0) throw new Error('LCM: call setTimesteps before step.');
    this.stepIndex ??= this.beginIndex ?? this.indexForTimestep(timestep);
    const isLast = this.stepIndex === this.timesteps.length - 1;
    const prevTimestep = isLast ? timestep : this.timesteps[this.stepIndex + 1];
    const alphaProd = this.alphasCumprod[timestep];
    const alphaProdPrev = prevTimestep >= 0 ? this.alphasCumprod[prevTimestep] : this.finalAlphaCumprod;
    const scaledTimestep = timestep * (this.config.timestep_scaling ?? 10);
    const cSkip = SIGMA_DATA ** 2 / (scaledTimestep ** 2 + SIGMA_DATA ** 2);
    const cOut = scaledTimestep / Math.sqrt(scaledTimestep ** 2 + SIGMA_DATA ** 2);
    const clipRange = (this.config.clip_sample ?? false) ? (this.config.clip_sample_range ?? 1) : Infinity;

    const denoised = new Float32Array(sample.length);
    for (let i = 0; i < sample.length; i++) {
      const original = predictOriginal(this.predictionType, alphaProd, modelOutput[i], sample[i]);
      const clipped = Math.min(Math.max(original, -clipRange), clipRange);
      denoised[i] = cOut * clipped + cSkip * sample[i];
    }
    let prevSample = denoised;
    if (!isLast) {
      const noise = random.randn(sample.length);
      const signal = Math.sqrt(alphaProdPrev);
      const noiseScale = Math.sqrt(1 - alphaProdPrev);
      prevSample = denoised.map((value, i) => signal * value + noiseScale * noise[i]);
    }
    this.stepIndex += 1;
    return { prevSample, predOriginalSample: denoised };
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    const alphaProd = this.alphasCumprod[timestep];
    const signal = Math.sqrt(alphaProd);
    const noiseScale = Math.sqrt(1 - alphaProd);
    return original.map((value, i) => signal * value + noiseScale * noise[i]);
  }

  /** diffusers takes the second match when a timestep repeats, so an image-to-image start does not skip a step. */
  private indexForTimestep(timestep: number): number {
    const matches = this.timesteps.flatMap((t, i) => (t === timestep ? [i] : []));
    if (matches.length === 0) throw new Error(`LCM: timestep ${timestep} is not in the schedule; use the scheduler's timesteps.`);
    return matches.length > 1 ? matches[1] : matches[0];
  }
}
