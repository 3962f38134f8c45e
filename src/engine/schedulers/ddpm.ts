import { invalidInput } from '../errors.js';
import type { PredictionType, RandomSource, SamplerName, Scheduler, SchedulerStepResult } from '../types.js';
import {
  DDPM_NOISE_DEFAULTS,
  assertInferenceSteps,
  assertSameLength,
  noiseSchedule,
  predictOriginal,
  predictionTypeOf,
  spacedTimesteps,
  type SchedulerConfig,
} from './config.js';

/**
 * Ho et al., "Denoising Diffusion Probabilistic Models" (2020): ancestral sampling with the posterior variance
 * β̃ₜ = (1 − ᾱₜ₋₁)/(1 − ᾱₜ)·βₜ (diffusers' DDPMScheduler, variance_type "fixed_small").
 */
export class DdpmScheduler implements Scheduler {
  readonly name: SamplerName = 'ddpm';
  readonly initNoiseSigma = 1;
  readonly predictionType: PredictionType;
  timesteps: readonly number[] = [];
  private readonly alphasCumprod: Float64Array;
  private readonly numTrainTimesteps: number;

  constructor(private readonly config: SchedulerConfig) {
    if ((config.variance_type ?? 'fixed_small') !== 'fixed_small') {
      throw invalidInput(
        `The ddpm sampler supports only variance_type "fixed_small"; this model's scheduler_config.json asks for "${config.variance_type}". Choose another sampler.`,
      );
    }
    const schedule = noiseSchedule(config, DDPM_NOISE_DEFAULTS);
    this.alphasCumprod = schedule.alphasCumprod;
    this.numTrainTimesteps = schedule.numTrainTimesteps;
    this.predictionType = predictionTypeOf(config);
  }

  setTimesteps(numInferenceSteps: number): void {
    assertInferenceSteps(numInferenceSteps, this.numTrainTimesteps);
    this.timesteps = spacedTimesteps(this.config, numInferenceSteps, { spacing: 'leading', fractional: false });
  }

  /** DDPM finds its place in the schedule from the timestep value itself, so a later start needs no state. */
  setBeginIndex(): void {}

  scaleModelInput(sample: Float32Array): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, random: RandomSource): SchedulerStepResult {
    assertSameLength(modelOutput, sample);
    const prevTimestep = this.previousTimestep(timestep);
    const alphaProd = this.alphasCumprod[timestep];
    const alphaProdPrev = prevTimestep >= 0 ? this.alphasCumprod[prevTimestep] : 1;
    const betaProd = 1 - alphaProd;
    const betaProdPrev = 1 - alphaProdPrev;
    const currentAlpha = alphaProd / alphaProdPrev;
    const currentBeta = 1 - currentAlpha;
    // Formula (7) of the paper: the mean of q(x_{t-1} | x_t, x_0).
    const originalCoefficient = (Math.sqrt(alphaProdPrev) * currentBeta) / betaProd;
    const sampleCoefficient = (Math.sqrt(currentAlpha) * betaProdPrev) / betaProd;
    const clipRange = (this.config.clip_sample ?? true) ? (this.config.clip_sample_range ?? 1) : Infinity;

    const predOriginalSample = new Float32Array(sample.length);
    const prevSample = new Float32Array(sample.length);
    for (let i = 0; i < sample.length; i++) {
      const original = predictOriginal(this.predictionType, alphaProd, modelOutput[i], sample[i]);
      const clipped = Math.min(Math.max(original, -clipRange), clipRange);
      predOriginalSample[i] = clipped;
      prevSample[i] = originalCoefficient * clipped + sampleCoefficient * sample[i];
    }
    if (timestep > 0) {
      const noise = random.randn(sample.length);
      const variance = Math.max((betaProdPrev / betaProd) * currentBeta, 1e-20);
      const standardDeviation = Math.sqrt(variance);
      for (let i = 0; i < sample.length; i++) prevSample[i] += standardDeviation * noise[i];
    }
    return { prevSample, predOriginalSample };
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    const alphaProd = this.alphasCumprod[timestep];
    const signal = Math.sqrt(alphaProd);
    const noiseScale = Math.sqrt(1 - alphaProd);
    return original.map((value, i) => signal * value + noiseScale * noise[i]);
  }

  private previousTimestep(timestep: number): number {
    const index = this.timesteps.indexOf(timestep);
    if (index < 0) throw new Error(`DDPM: timestep ${timestep} is not in the schedule; call setTimesteps and use its timesteps.`);
    return index === this.timesteps.length - 1 ? -1 : this.timesteps[index + 1];
  }
}
