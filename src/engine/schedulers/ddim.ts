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
 * Song et al., "Denoising Diffusion Implicit Models" (2020), formula (12): deterministic at eta = 0, DDPM-like noise
 * at eta = 1 (diffusers' DDIMScheduler).
 */
export class DdimScheduler implements Scheduler {
  readonly name: SamplerName = 'ddim';
  readonly initNoiseSigma = 1;
  readonly predictionType: PredictionType;
  timesteps: readonly number[] = [];
  private readonly alphasCumprod: Float64Array;
  private readonly numTrainTimesteps: number;
  /** ᾱ before the first training step: 1, or ᾱ₀ when set_alpha_to_one is false (as SD 1.x ships). */
  private readonly finalAlphaCumprod: number;
  private readonly eta: number;
  private numInferenceSteps = 0;

  constructor(
    private readonly config: SchedulerConfig,
    options: { eta?: number } = {},
  ) {
    const schedule = noiseSchedule(config, DDPM_NOISE_DEFAULTS);
    this.alphasCumprod = schedule.alphasCumprod;
    this.numTrainTimesteps = schedule.numTrainTimesteps;
    this.predictionType = predictionTypeOf(config);
    this.finalAlphaCumprod = (config.set_alpha_to_one ?? true) ? 1 : this.alphasCumprod[0];
    this.eta = options.eta ?? 0;
    if (!(this.eta >= 0 && this.eta <= 1)) throw invalidInput(`DDIM's eta must be between 0 and 1; got ${options.eta}.`);
  }

  setTimesteps(numInferenceSteps: number): void {
    assertInferenceSteps(numInferenceSteps, this.numTrainTimesteps);
    this.numInferenceSteps = numInferenceSteps;
    this.timesteps = spacedTimesteps(this.config, numInferenceSteps, { spacing: 'leading', fractional: false });
  }

  /** DDIM derives the previous timestep from the current one, so a later start needs no state. */
  setBeginIndex(): void {}

  scaleModelInput(sample: Float32Array): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, random: RandomSource): SchedulerStepResult {
    assertSameLength(modelOutput, sample);
    if (this.numInferenceSteps === 0) throw new Error('DDIM: call setTimesteps before step.');
    // diffusers steps back by the leading-spacing stride whatever the spacing; kept for identical numbers.
    const prevTimestep = timestep - Math.floor(this.numTrainTimesteps / this.numInferenceSteps);
    const alphaProd = this.alphasCumprod[timestep];
    const alphaProdPrev = prevTimestep >= 0 ? this.alphasCumprod[prevTimestep] : this.finalAlphaCumprod;
    const betaProd = 1 - alphaProd;
    const variance = ((1 - alphaProdPrev) / betaProd) * (1 - alphaProd / alphaProdPrev);
    const standardDeviation = this.eta * Math.sqrt(variance);
    const directionScale = Math.sqrt(1 - alphaProdPrev - standardDeviation * standardDeviation);
    const clipRange = (this.config.clip_sample ?? true) ? (this.config.clip_sample_range ?? 1) : Infinity;
    const sqrtAlphaProd = Math.sqrt(alphaProd);
    const sqrtBetaProd = Math.sqrt(betaProd);

    const predOriginalSample = new Float32Array(sample.length);
    const prevSample = new Float32Array(sample.length);
    for (let i = 0; i < sample.length; i++) {
      const output = modelOutput[i];
      const x = sample[i];
      let original: number;
      let epsilon: number;
      if (this.predictionType === 'epsilon') {
        original = (x - sqrtBetaProd * output) / sqrtAlphaProd;
        epsilon = output;
      } else if (this.predictionType === 'sample') {
        original = output;
        epsilon = (x - sqrtAlphaProd * original) / sqrtBetaProd;
      } else {
        original = sqrtAlphaProd * x - sqrtBetaProd * output;
        epsilon = sqrtAlphaProd * output + sqrtBetaProd * x;
      }
      // Clipping changes x̂0 only; ε stays the model's (diffusers' use_clipped_model_output = false).
      original = Math.min(Math.max(original, -clipRange), clipRange);
      predOriginalSample[i] = original;
      prevSample[i] = Math.sqrt(alphaProdPrev) * original + directionScale * epsilon;
    }
    if (this.eta > 0) {
      const noise = random.randn(sample.length);
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
}
