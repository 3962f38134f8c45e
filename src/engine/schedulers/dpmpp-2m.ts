import type { PredictionType, RandomSource, SamplerName, Scheduler, SchedulerStepResult } from '../types.js';
import {
  DDPM_NOISE_DEFAULTS,
  assertInferenceSteps,
  assertSameLength,
  linspace,
  noiseSchedule,
  numpyArangeDelta,
  predictionTypeOf,
  roundHalfEven,
  type SchedulerConfig,
} from './config.js';

/**
 * Lu et al., "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models" (2022): the multistep
 * second-order data-prediction solver, midpoint variant (diffusers' DPMSolverMultistepScheduler with solver_order 2,
 * algorithm_type "dpmsolver++", solver_type "midpoint"). `karras` spaces σ as in Karras et al. (2022), ρ = 7.
 */
export class DpmPlusPlus2mScheduler implements Scheduler {
  readonly name: SamplerName;
  readonly initNoiseSigma = 1;
  readonly predictionType: PredictionType;
  timesteps: readonly number[] = [];
  private readonly alphasCumprod: Float64Array;
  private readonly numTrainTimesteps: number;
  private sigmas = new Float64Array(0);
  private stepIndex: number | undefined;
  private beginIndex: number | undefined;
  /** The data predictions x̂0 of the previous and the current step, oldest first. */
  private dataPredictions: (Float64Array | undefined)[] = [undefined, undefined];
  private lowerOrderSteps = 0;

  constructor(
    private readonly config: SchedulerConfig,
    private readonly karras: boolean,
  ) {
    this.name = karras ? 'dpmpp-2m-karras' : 'dpmpp-2m';
    const schedule = noiseSchedule(config, DDPM_NOISE_DEFAULTS);
    // Zero terminal SNR would make the first σ infinite; diffusers uses float16's smallest subnormal instead.
    if (config.rescale_betas_zero_snr) schedule.alphasCumprod[schedule.alphasCumprod.length - 1] = 2 ** -24;
    this.alphasCumprod = schedule.alphasCumprod;
    this.numTrainTimesteps = schedule.numTrainTimesteps;
    this.predictionType = predictionTypeOf(config);
  }

  setTimesteps(numInferenceSteps: number): void {
    assertInferenceSteps(numInferenceSteps, this.numTrainTimesteps);
    const trainingSigmas = this.alphasCumprod.map((alphaProd) => Math.sqrt((1 - alphaProd) / alphaProd));
    let timesteps: number[];
    let sigmas: number[];
    if (this.karras) {
      sigmas = karrasSigmas(trainingSigmas[0], trainingSigmas[trainingSigmas.length - 1], numInferenceSteps);
      const logSigmas = trainingSigmas.map(Math.log);
      // diffusers rounds to the nearest timestep, except for the cosine schedule where the int cast truncates.
      const toInteger = this.config.beta_schedule === 'squaredcos_cap_v2' ? Math.trunc : roundHalfEven;
      timesteps = sigmas.map((sigma) => toInteger(sigmaToTimestep(sigma, logSigmas)));
    } else {
      timesteps = this.spacedTimesteps(numInferenceSteps);
      sigmas = timesteps.map((t) => trainingSigmas[t]);
    }
    const finalSigma = this.config.final_sigmas_type === 'sigma_min' ? trainingSigmas[0] : 0;
    this.sigmas = Float64Array.from([...sigmas, finalSigma], Math.fround);
    this.timesteps = timesteps;
    this.dataPredictions = [undefined, undefined];
    this.lowerOrderSteps = 0;
    this.stepIndex = undefined;
    this.beginIndex = undefined;
  }

  setBeginIndex(beginIndex: number): void {
    this.beginIndex = beginIndex;
  }

  scaleModelInput(sample: Float32Array): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, _random: RandomSource): SchedulerStepResult {
    assertSameLength(modelOutput, sample);
    if (this.timesteps.length === 0) throw new Error('DPM++ 2M: call setTimesteps before step.');
    this.stepIndex ??= this.beginIndex ?? this.indexForTimestep(timestep);
    const index = this.stepIndex;
    const count = this.timesteps.length;
    const lowerOrderFinal = this.config.lower_order_final ?? true;
    // Second order needs a previous x̂0, and near the end (below 15 steps, or into σ = 0) first order is the stabler.
    const firstOrder =
      this.lowerOrderSteps < 1 ||
      (index === count - 1 && ((lowerOrderFinal && count < 15) || (this.config.final_sigmas_type ?? 'zero') === 'zero'));

    const [alphaS0, sigmaS0] = alphaSigma(this.sigmas[index]);
    const [alphaT, sigmaT] = alphaSigma(this.sigmas[index + 1]);
    const dataPrediction = new Float64Array(sample.length);
    for (let i = 0; i < sample.length; i++) {
      const output = modelOutput[i];
      const x = sample[i];
      if (this.predictionType === 'epsilon') dataPrediction[i] = (x - sigmaS0 * output) / alphaS0;
      else if (this.predictionType === 'sample') dataPrediction[i] = output;
      else dataPrediction[i] = alphaS0 * x - sigmaS0 * output;
    }
    this.dataPredictions = [this.dataPredictions[1], dataPrediction];

    const lambdaT = Math.log(alphaT) - Math.log(sigmaT);
    const lambdaS0 = Math.log(alphaS0) - Math.log(sigmaS0);
    const h = lambdaT - lambdaS0;
    const sampleScale = sigmaT / sigmaS0;
    const dataScale = alphaT * (Math.exp(-h) - 1);
    const prevSample = new Float32Array(sample.length);
    if (firstOrder) {
      for (let i = 0; i < sample.length; i++) prevSample[i] = sampleScale * sample[i] - dataScale * dataPrediction[i];
    } else {
      const [alphaS1, sigmaS1] = alphaSigma(this.sigmas[index - 1]);
      const lambdaS1 = Math.log(alphaS1) - Math.log(sigmaS1);
      const r0 = (lambdaS0 - lambdaS1) / h;
      const previous = this.dataPredictions[0]!;
      for (let i = 0; i < sample.length; i++) {
        const d1 = (dataPrediction[i] - previous[i]) / r0;
        prevSample[i] = sampleScale * sample[i] - dataScale * dataPrediction[i] - 0.5 * dataScale * d1;
      }
    }
    this.lowerOrderSteps = Math.min(this.lowerOrderSteps + 1, 2);
    this.stepIndex += 1;
    return { prevSample, predOriginalSample: Float32Array.from(dataPrediction) };
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    const index = this.beginIndex === undefined ? this.indexForTimestep(timestep) : (this.stepIndex ?? this.beginIndex);
    const [alpha, sigma] = alphaSigma(this.sigmas[index]);
    return original.map((value, i) => alpha * value + sigma * noise[i]);
  }

  /** Integer timesteps over [0, last), where `last` drops the steps whose log-SNR is below lambda_min_clipped. */
  private spacedTimesteps(numInferenceSteps: number): number[] {
    const lastTimestep = this.numTrainTimesteps - this.clippedSteps();
    const spacing = this.config.timestep_spacing ?? 'linspace';
    if (spacing === 'linspace') {
      return Array.from(linspace(0, lastTimestep - 1, numInferenceSteps + 1), roundHalfEven).reverse().slice(0, -1);
    }
    if (spacing === 'leading') {
      const stepRatio = Math.floor(lastTimestep / (numInferenceSteps + 1));
      const offset = this.config.steps_offset ?? 0;
      return Array.from({ length: numInferenceSteps }, (_, i) => (numInferenceSteps - i) * stepRatio + offset);
    }
    const stepRatio = this.numTrainTimesteps / numInferenceSteps;
    // numpy's arange(last, 0, -ratio): fewer steps when lambda_min_clipped shortened the range; the tolerance keeps
    // 1000 / (1000 / n) from counting an extra step that is only floating-point noise.
    const count = Math.ceil(lastTimestep / stepRatio - 1e-9);
    const delta = numpyArangeDelta(lastTimestep, -stepRatio);
    return Array.from({ length: count }, (_, i) => roundHalfEven(lastTimestep + i * delta) - 1);
  }

  /** How many of the noisiest training timesteps have λ = log(α/σ) below lambda_min_clipped (none by default). */
  private clippedSteps(): number {
    const minimum = this.config.lambda_min_clipped ?? -Infinity;
    let clipped = 0;
    for (let t = this.alphasCumprod.length - 1; t >= 0; t--) {
      const alphaProd = this.alphasCumprod[t];
      const lambda = 0.5 * Math.log(alphaProd) - 0.5 * Math.log(1 - alphaProd);
      if (lambda >= minimum) break;
      clipped += 1;
    }
    return clipped;
  }

  /** A timestep missing from the schedule starts at the last step, as diffusers does; a repeated one at its second. */
  private indexForTimestep(timestep: number): number {
    const matches = this.timesteps.flatMap((t, i) => (t === timestep ? [i] : []));
    if (matches.length === 0) return this.timesteps.length - 1;
    return matches.length > 1 ? matches[1] : matches[0];
  }
}

/** Variance-preserving α and σ from the variance-exploding σ. */
function alphaSigma(sigma: number): [number, number] {
  const alpha = 1 / Math.sqrt(sigma * sigma + 1);
  return [alpha, sigma * alpha];
}

function karrasSigmas(sigmaMin: number, sigmaMax: number, count: number): number[] {
  const rho = 7;
  const minInvRho = sigmaMin ** (1 / rho);
  const maxInvRho = sigmaMax ** (1 / rho);
  return Array.from(linspace(0, 1, count), (ramp) => (maxInvRho + ramp * (minInvRho - maxInvRho)) ** rho);
}

/** The fractional training timestep whose log σ matches, by linear interpolation (diffusers' `_sigma_to_t`). */
function sigmaToTimestep(sigma: number, logSigmas: Float64Array): number {
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  let low = 0;
  for (let i = 0; i < logSigmas.length; i++) if (logSigmas[i] <= logSigma) low = i;
  low = Math.min(low, logSigmas.length - 2);
  const lowValue = logSigmas[low];
  const highValue = logSigmas[low + 1];
  const weight = Math.min(Math.max((lowValue - logSigma) / (lowValue - highValue), 0), 1);
  return (1 - weight) * low + weight * (low + 1);
}
