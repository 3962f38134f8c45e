import * as ort from 'onnxruntime-node';
import { STEP_COEFFICIENTS, type StepCoefficient } from '../device-graphs.js';
import { EngineError } from '../errors.js';
import type { ElementType } from '../onnx-graph.js';
import { createScheduler, parseSchedulerConfig } from '../schedulers/index.js';
import { floatTensor, timestepTensor } from '../tensors.js';
import type { RandomSource } from '../types.js';
import {
  blendKeptRegion,
  concat,
  repeatForBatch,
  reportStep,
  sdxlConditioning,
  toHost,
  type DenoiseInputs,
  type PipelineRun,
  type Stage,
} from './stages.js';

/**
 * The denoising loop with its tensors kept on the GPU (webgpu provider). Without it every step uploads the UNet's
 * sample, timestep and prompt states and downloads its prediction, and guidance and the scheduler step run on the host.
 * Here the prompt states, the first sample and whatever the loop reads at every step (all its noise, drawn up front;
 * inpainting's picture and mask) go up once; each step then uploads only the timestep and twelve numbers (the step's
 * coefficients), the UNet's prediction goes straight into a small guidance + scheduler graph
 * (src/engine/device-graphs.ts) whose next sample goes straight back into the UNet, and the latents come down once,
 * at the end. A preview downloads x̂0 only when it is asked for.
 *
 * Every sampler qualifies whose step is linear in (latents, prediction, the previous step's x̂0, fresh noise) — all of
 * ours unless x̂0 is clipped (clip_sample) — and its coefficients are read off a second instance of the engine's own
 * scheduler stepped in lockstep on probe values, so the TypeScript schedulers stay the one definition of each sampler.
 */

const STAGE: Stage = 'unetMs';

export interface DeviceStepPlan {
  /** Per step, the step graph's coefficients except g and s (filled in by the loop). */
  steps: Record<Exclude<StepCoefficient, 'g' | 's'>, number>[];
  /** The UNet input scale at each timestep (scaleModelInput of 1), plus 1 after the last. */
  inputScales: number[];
  /** Some step reads the previous step's x̂0. */
  previous: boolean;
  /** How many steps draw noise (each `latents`-sized, in step order, from the run's step random stream). */
  noiseDraws: number;
}

/**
 * The probe: two blocks of five values, the current step's inputs in block (step mod 2) and zeros in the other, so
 * that the other block's output shows the previous step's x̂0 alone. In a block: x only, ε̂ only, a mix of both and
 * of noise (checks linearity), nothing (checks there is no constant term), noise only. The values are large so that a
 * clipped x̂0 shows as not linear.
 */
const PROBE = 1000;
const BLOCK = 5;
const PROBE_LATENTS = [1, 0, 0.5, 0, 0].map((v) => v * PROBE);
const PROBE_PREDICTION = [0, 1, -0.25, 0, 0].map((v) => v * PROBE);
const PROBE_NOISE = [0, 0, 0.75, 0, 1].map((v) => v * PROBE);

/** The coefficients of every step, or undefined when this run cannot keep its loop on the device. */
export function deviceStepPlan(run: PipelineRun, inputs: DenoiseInputs): DeviceStepPlan | undefined {
  const { model, settings, options } = run;
  const { schedule, keptRegion } = inputs;
  if (!model.device) return undefined;
  const total = settings.batch * (settings.guidance > 1 ? 2 : 1);
  if (model.unet.maxBatch !== null && model.unet.maxBatch !== total) return undefined;
  const probe = createScheduler(settings.sampler, parseSchedulerConfig(model.schedulerConfig), { eta: options.eta });
  probe.setTimesteps(settings.steps);
  const skipped = settings.steps - schedule.timesteps.length;
  if (skipped > 0) probe.setBeginIndex(skipped);

  const steps: DeviceStepPlan['steps'] = [];
  const inputScales: number[] = [];
  let previousDenoised = new Float32Array(2 * BLOCK);
  let previous = false;
  let noiseDraws = 0;
  for (let i = 0; i < schedule.timesteps.length; i++) {
    const t = schedule.timesteps[i];
    const current = (i % 2) * BLOCK;
    const other = BLOCK - current;
    const latents = new Float32Array(2 * BLOCK);
    const prediction = new Float32Array(2 * BLOCK);
    latents.set(PROBE_LATENTS, current);
    prediction.set(PROBE_PREDICTION, current);
    let draws = 0;
    const random: RandomSource = {
      nextUniform: () => {
        draws = Infinity;
        return 0;
      },
      randn: (count) => {
        draws += 1;
        const noise = new Float32Array(count);
        if (count === 2 * BLOCK) noise.set(PROBE_NOISE, current);
        else draws = Infinity;
        return noise;
      },
    };
    inputScales.push(probe.scaleModelInput(Float32Array.of(1), t)[0]);
    const result = probe.step(prediction, t, latents, random);
    if (draws > 1) return undefined;
    const x = result.prevSample;
    const x0 = result.predOriginalSample;
    const [a, b, d] = [x[current] / PROBE, x[current + 1] / PROBE, x[current + 4] / PROBE];
    const [p, q] = [x0[current] / PROBE, x0[current + 1] / PROBE];
    const near = (value: number, expected: number, scale: number) => Math.abs(value - expected) <= 1e-5 * PROBE * (1 + scale);
    const linear =
      near(x[current + 2], PROBE * (0.5 * a - 0.25 * b + 0.75 * d), Math.abs(a) + Math.abs(b) + Math.abs(d)) &&
      near(x[current + 3], 0, Math.abs(a) + Math.abs(b) + Math.abs(d)) &&
      near(x0[current + 2], PROBE * (0.5 * p - 0.25 * q), Math.abs(p) + Math.abs(q)) &&
      near(x0[current + 3], 0, Math.abs(p) + Math.abs(q)) &&
      near(x0[current + 4], 0, Math.abs(p) + Math.abs(q)) &&
      (draws === 1 || d === 0);
    if (!linear) return undefined;
    // The other block held zeros this step: what came out there is c · (the previous step's x̂0) and nothing else.
    let largest = other;
    for (let k = other; k < other + BLOCK; k++) if (Math.abs(previousDenoised[k]) > Math.abs(previousDenoised[largest])) largest = k;
    const c = previousDenoised[largest] === 0 ? 0 : x[largest] / previousDenoised[largest];
    for (let k = other; k < other + BLOCK; k++) {
      if (!near(x[k], c * previousDenoised[k], Math.abs(c)) || !near(x0[k], 0, 0)) return undefined;
    }
    previous ||= c !== 0;
    previousDenoised = x0.slice();

    const last = i === schedule.timesteps.length - 1;
    // The kept region noised to the next timestep, read off the probe at the point where the host loop asks for it.
    const [u, v] = last ? [1, 0] : keptRegion ? probe.addNoise(Float32Array.of(1, 0), Float32Array.of(0, 1), schedule.timesteps[i + 1]) : [0, 0];
    const k = keptRegion && (last || keptRegion.everyStep) ? 1 : 0;
    steps.push({ a, b, c, d, p, q, noise_index: draws === 1 ? noiseDraws : 0, u, v, k });
    if (draws === 1) noiseDraws += 1;
  }
  inputScales.push(1);
  return { steps, inputScales, previous, noiseDraws };
}

export async function denoiseOnDevice(run: PipelineRun, inputs: DenoiseInputs, plan: DeviceStepPlan): Promise<Float32Array> {
  const { model, settings, latentDims } = run;
  const { unet } = model;
  const device = model.device!;
  const { prompt, schedule, keptRegion, conditioning } = inputs;
  const { signal, onStep } = run.options;
  const [batch, channels, h, w] = latentDims;
  const total = batch * (prompt.guided ? 2 : 1);
  const upload = (tensor: ort.Tensor) => {
    run.copies[STAGE].uploads += 1;
    return device.upload(tensor);
  };
  const latentTensor = (values: Float32Array) => new ort.Tensor('float32', values, [batch, channels, h, w]);

  const outputType = unet.session.outputMetadata.find((output) => output.name === unet.output);
  const predictionType = (outputType?.isTensor ? outputType.type : unet.sample.type) as ElementType;
  const stepSession = await device.step({
    guided: prompt.guided,
    predictionType,
    sampleType: unet.sample.type as ElementType,
    previous: plan.previous,
    noise: plan.noiseDraws > 0,
    keptRegion: keptRegion !== undefined,
    conditioning: conditioning !== undefined,
  });
  const step = { session: stepSession, file: '(guidance and scheduler step graph)' };

  // The host loop draws each step's noise inside the scheduler's step; drawn here in the same order from the same
  // stream, it is the same noise.
  const perDraw = batch * channels * h * w;
  const drawn = new Float32Array(plan.noiseDraws * perDraw);
  for (let k = 0; k < plan.noiseDraws; k++) drawn.set(inputs.noise.stepRandom.randn(perDraw), k * perDraw);

  const constants: Record<string, ort.Tensor> = {
    [unet.hiddenStates.name]: await upload(floatTensor(unet.hiddenStates, prompt.states, [total, prompt.tokens, prompt.hidden])),
  };
  for (const [name, tensor] of Object.entries(sdxlConditioning(run, prompt, 0, total))) constants[name] = await upload(tensor as ort.Tensor);
  const stepConstants: Record<string, ort.Tensor> = {};
  if (plan.noiseDraws > 0) stepConstants.noise = await upload(new ort.Tensor('float32', drawn, [plan.noiseDraws, batch, channels, h, w]));
  if (keptRegion) {
    stepConstants.clean = await upload(latentTensor(keptRegion.clean));
    stepConstants.initial_noise = await upload(latentTensor(inputs.noise.noise));
    stepConstants.keep = await upload(new ort.Tensor('float32', keptRegion.mask.map((m) => 1 - m), [1, 1, h, w]));
  }
  const extraChannels = conditioning ? conditioning.length / (h * w) : 0;
  if (conditioning) stepConstants.conditioning = await upload(new ort.Tensor('float32', repeatForBatch(run, conditioning), [batch, extraChannels, h, w]));

  const firstScaled = inputs.latents.map((value) => value * plan.inputScales[0]);
  const firstInputs = conditioning
    ? Array.from({ length: batch }, (_, k) => concat([firstScaled.subarray(k * (perDraw / batch), (k + 1) * (perDraw / batch)), conditioning]))
    : [firstScaled];
  const firstSample = concat(prompt.guided ? [...firstInputs, ...firstInputs] : firstInputs);
  let sample = await upload(floatTensor(unet.sample, firstSample, [total, unet.inChannels, h, w]));
  let latents = await upload(latentTensor(inputs.latents));

  // The latest x̂0 stays on the device until a preview asks for it (an older step's preview shows the latest one); once
  // the loop is over, previews show the final latents.
  let denoised: ort.Tensor | Float32Array | undefined;
  const latestPrediction = async () => {
    if (denoised instanceof Float32Array) return denoised;
    const predicted = await toHost(run, 'previewMs', denoised!);
    return keptRegion ? blendKeptRegion(keptRegion, keptRegion.clean, predicted) : predicted;
  };
  const release = (tensor: ort.Tensor | Float32Array | undefined) => {
    if (tensor instanceof ort.Tensor) tensor.dispose();
  };
  try {
    for (let i = 0; i < schedule.timesteps.length; i++) {
      if (signal?.aborted) throw new EngineError('cancelled', 'The generation was cancelled.');
      const t = schedule.timesteps[i];
      const outputs = await run.run(STAGE, unet, { [unet.sample.name]: sample, [unet.timestep.name]: timestepTensor(unet.timestep, t, total), ...constants });
      const values = { ...plan.steps[i], g: settings.guidance, s: plan.inputScales[i + 1] };
      const coefficients = new ort.Tensor('float32', Float32Array.from(STEP_COEFFICIENTS, (name) => values[name]), [STEP_COEFFICIENTS.length]);
      const feeds: Record<string, ort.Tensor> = { prediction: outputs[unet.output], latents, coefficients, ...stepConstants };
      // The first step's c is 0; any latents-shaped tensor stands in for the x̂0 there is not yet.
      if (plan.previous) feeds.previous = denoised instanceof ort.Tensor ? denoised : latents;
      const stepped = await run.run(STAGE, step, feeds);
      release(outputs[unet.output]);
      release(sample);
      release(latents);
      release(denoised);
      sample = stepped.next_sample;
      latents = stepped.next_latents;
      denoised = stepped.denoised;
      if (onStep) reportStep(run, i + 1, schedule.timesteps.length, latestPrediction);
    }
    const finalLatents = await toHost(run, STAGE, latents);
    release(denoised);
    denoised = finalLatents;
    return finalLatents;
  } finally {
    release(sample);
    release(latents);
    if (!(denoised instanceof Float32Array)) release(denoised);
    for (const tensor of [...Object.values(constants), ...Object.values(stepConstants)]) release(tensor);
  }
}
