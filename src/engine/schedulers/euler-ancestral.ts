import { invalidInput } from '../errors.js';
import type { PredictionType, RandomSource, SamplerName, Scheduler, SchedulerStepResult } from '../types.js';
import {
  DDPM_NOISE_DEFAULTS,
  assertInferenceSteps,
  assertSameLength,
  noiseSchedule,
  predictionTypeOf,
  spacedTimesteps,
  type SchedulerConfig,
} from './config.js';

/**
 * Euler ancestral (k-diffusion's `sample_euler_ancestral`, diffusers' EulerAncestralDiscreteScheduler): an Euler step
 * down to σ_down, then fresh noise of σ_up, with σ_down² + σ_up² = σ_next². Every step draws noise, the last included,
 * so the random stream stays aligned with diffusers'.
 */
export class EulerAncestralScheduler implements Scheduler {
  readonly name: SamplerName = 'euler-a';
  readonly predictionType: PredictionType;
  timesteps: readonly number[] = [];
  initNoiseSigma: number;
  private readonly trainingSigmas: Float64Array;
  private readonly numTrainTimesteps: number;
  private sigmas: Float64Array;
  private stepIndex: number | undefined;
  private beginIndex: number | undefined;

  constructor(private readonly config: SchedulerConfig) {
    this.predictionType = predictionTypeOf(config);
    if (this.predictionType === 'sample') {
      throw invalidInput('The euler-a sampler does not support models that predict the sample (prediction_type "sample"); choose euler, ddim or dpmpp-2m.');
    }
    const schedule = noiseSchedule(config, DDPM_NOISE_DEFAULTS);
    // Zero terminal SNR would make the first σ infinite; diffusers uses float16's smallest subnormal instead.
    if (config.rescale_betas_zero_snr) schedule.alphasCumprod[schedule.alphasCumprod.length - 1] = 2 ** -24;
    this.trainingSigmas = schedule.alphasCumprod.map((alphaProd) => Math.sqrt((1 - alphaProd) / alphaProd));
    this.numTrainTimesteps = schedule.numTrainTimesteps;
    this.sigmas = Float64Array.from([...this.trainingSigmas].reverse().concat(0));
    this.initNoiseSigma = this.noiseSigmaFor(this.sigmas);
  }

  setTimesteps(numInferenceSteps: number): void {
    assertInferenceSteps(numInferenceSteps, this.numTrainTimesteps);
    const timesteps = spacedTimesteps(this.config, numInferenceSteps, { spacing: 'linspace', fractional: true });
    const sigmas = timesteps.map((t) => Math.fround(interpolate(this.trainingSigmas, t)));
    this.timesteps = timesteps;
    this.sigmas = Float64Array.from([...sigmas, 0]);
    this.initNoiseSigma = this.noiseSigmaFor(this.sigmas);
    this.stepIndex = undefined;
    this.beginIndex = undefined;
  }

  setBeginIndex(beginIndex: number): void {
    this.beginIndex = beginIndex;
  }

  scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    this.stepIndex ??= this.initialStepIndex(timestep);
    const sigma = this.sigmas[this.stepIndex];
    const scale = 1 / Math.sqrt(sigma * sigma + 1);
    return sample.map((value) => value * scale);
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, random: RandomSource): SchedulerStepResult {
    assertSameLength(modelOutput, sample);
    this.stepIndex ??= this.initialStepIndex(timestep);
    const sigma = this.sigmas[this.stepIndex];
    const sigmaNext = this.sigmas[this.stepIndex + 1];
    const sigmaUpSquared = (sigmaNext * sigmaNext * (sigma * sigma - sigmaNext * sigmaNext)) / (sigma * sigma);
    const sigmaUp = Math.sqrt(sigmaUpSquared);
    // Never negative in exact arithmetic; the clamp keeps a last-bit rounding from turning into NaN.
    const sigmaDown = Math.sqrt(Math.max(sigmaNext * sigmaNext - sigmaUpSquared, 0));
    const dt = sigmaDown - sigma;
    const noise = random.randn(sample.length);
    const predOriginalSample = new Float32Array(sample.length);
    const prevSample = new Float32Array(sample.length);
    for (let i = 0; i < sample.length; i++) {
      const x = sample[i];
      const output = modelOutput[i];
      const original =
        this.predictionType === 'epsilon'
          ? x - sigma * output
          : output * (-sigma / Math.sqrt(sigma * sigma + 1)) + x / (sigma * sigma + 1);
      predOriginalSample[i] = original;
      const derivative = (x - original) / sigma;
      prevSample[i] = x + derivative * dt + noise[i] * sigmaUp;
    }
    this.stepIndex += 1;
    return { prevSample, predOriginalSample };
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    const index = this.beginIndex === undefined ? this.indexForTimestep(timestep) : (this.stepIndex ?? this.beginIndex);
    const sigma = this.sigmas[index];
    return original.map((value, i) => value + noise[i] * sigma);
  }

  /** Leading spacing never reaches the last training timestep, so its initial noise also carries the unit signal. */
  private noiseSigmaFor(sigmas: Float64Array): number {
    const maxSigma = Math.max(...sigmas);
    const spacing = this.config.timestep_spacing ?? 'linspace';
    return spacing === 'leading' ? Math.sqrt(maxSigma * maxSigma + 1) : maxSigma;
  }

  private initialStepIndex(timestep: number): number {
    return this.beginIndex ?? this.indexForTimestep(timestep);
  }

  /** diffusers takes the second match when a timestep repeats, so an image-to-image start does not skip a sigma. */
  private indexForTimestep(timestep: number): number {
    const matches = this.timesteps.flatMap((t, i) => (t === timestep ? [i] : []));
    if (matches.length === 0) throw new Error(`Euler ancestral: timestep ${timestep} is not in the schedule; use the scheduler's timesteps.`);
    return matches.length > 1 ? matches[1] : matches[0];
  }
}

/** numpy's `interp` on the grid 0, 1, …, n − 1. */
function interpolate(values: Float64Array, position: number): number {
  if (position <= 0) return values[0];
  if (position >= values.length - 1) return values[values.length - 1];
  const low = Math.floor(position);
  const fraction = position - low;
  return values[low] + (values[low + 1] - values[low]) * fraction;
}
