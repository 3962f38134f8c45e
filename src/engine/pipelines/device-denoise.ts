import * as ort from 'onnxruntime-node';
import { EngineError } from '../errors.js';
import type { ElementType } from '../onnx-graph.js';
import { createScheduler, parseSchedulerConfig } from '../schedulers/index.js';
import { floatTensor, timestepTensor } from '../tensors.js';
import type { RandomSource, SamplerName } from '../types.js';
import { concat, reportStep, sdxlConditioning, toHost, type DenoiseInputs, type PipelineRun, type Schedule, type Stage } from './stages.js';

/**
 * The denoising loop with its tensors kept on the GPU (webgpu provider). Without it every step uploads the UNet's
 * sample, timestep and prompt states and downloads its prediction, and guidance and the scheduler step run on the host.
 * Here the prompt states and the first sample go up once; each step then uploads only the timestep and six numbers
 * (the step's coefficients), the UNet's prediction goes straight into a small guidance + scheduler graph
 * (src/engine/device-graphs.ts) whose next sample goes straight back into the UNet, and the latents come down once,
 * at the end. A preview downloads x̂0 only when it is asked for.
 *
 * Only samplers whose step is linear in (latents, prediction) qualify; their coefficients are read off a second
 * instance of the engine's own scheduler stepped in lockstep on probe values, so the TypeScript schedulers stay the
 * one definition of each sampler.
 */

const LINEAR_SAMPLERS: readonly SamplerName[] = ['ddim', 'euler'];
const STAGE: Stage = 'unetMs';

export interface DeviceStepPlan {
  /** Per step: [a, b, p, q] — x_next = a·x + b·ε̂, x̂0 = p·x + q·ε̂. */
  steps: [number, number, number, number][];
  /** The UNet input scale at each timestep (scaleModelInput of 1), plus 1 after the last. */
  inputScales: number[];
}

const NO_RANDOMNESS: RandomSource = {
  nextUniform: () => {
    throw new Error('a linear sampler drew a random number');
  },
  randn: () => {
    throw new Error('a linear sampler drew a random number');
  },
};

/** The coefficients of every step, or undefined when this run cannot keep its loop on the device. */
export function deviceStepPlan(run: PipelineRun, schedule: Schedule): DeviceStepPlan | undefined {
  const { model, settings, options } = run;
  if (!model.device || !LINEAR_SAMPLERS.includes(settings.sampler) || (options.eta ?? 0) !== 0) return undefined;
  const total = settings.batch * (settings.guidance > 1 ? 2 : 1);
  if (model.unet.maxBatch !== null && model.unet.maxBatch !== total) return undefined;
  const probe = createScheduler(settings.sampler, parseSchedulerConfig(model.schedulerConfig), { eta: options.eta });
  probe.setTimesteps(settings.steps);
  const skipped = settings.steps - schedule.timesteps.length;
  if (skipped > 0) probe.setBeginIndex(skipped);
  const steps: DeviceStepPlan['steps'] = [];
  const inputScales: number[] = [];
  // Element 0 reads the latents' coefficient, 1 the prediction's; 2 and 3 check that the step is linear with no
  // constant term (DDIM's clip_sample, for one, is not).
  const latents = Float32Array.of(1, 0, 0.5, 0);
  const prediction = Float32Array.of(0, 1, -0.25, 0);
  const linear = (values: Float32Array) => {
    const [x, e] = [values[0], values[1]];
    const tolerance = 1e-5 * (1 + Math.abs(x) + Math.abs(e));
    return Math.abs(values[2] - (0.5 * x - 0.25 * e)) <= tolerance && Math.abs(values[3]) <= tolerance;
  };
  for (const t of schedule.timesteps) {
    inputScales.push(probe.scaleModelInput(Float32Array.of(1), t)[0]);
    const result = probe.step(prediction, t, latents.slice(), NO_RANDOMNESS);
    if (!linear(result.prevSample) || !linear(result.predOriginalSample)) return undefined;
    steps.push([result.prevSample[0], result.prevSample[1], result.predOriginalSample[0], result.predOriginalSample[1]]);
  }
  inputScales.push(1);
  return { steps, inputScales };
}

export async function denoiseOnDevice(run: PipelineRun, inputs: DenoiseInputs, plan: DeviceStepPlan): Promise<Float32Array> {
  const { model, settings, latentDims } = run;
  const { unet } = model;
  const device = model.device!;
  const { prompt, schedule } = inputs;
  const { signal, onStep } = run.options;
  const [batch, channels, h, w] = latentDims;
  const total = batch * (prompt.guided ? 2 : 1);
  const upload = (tensor: ort.Tensor) => {
    run.copies[STAGE].uploads += 1;
    return device.upload(tensor);
  };

  const outputType = unet.session.outputMetadata.find((output) => output.name === unet.output);
  const predictionType = (outputType?.isTensor ? outputType.type : unet.sample.type) as ElementType;
  const stepSession = await device.step(prompt.guided, predictionType, unet.sample.type as ElementType);
  const step = { session: stepSession, file: '(guidance and scheduler step graph)' };

  const firstScaled = inputs.latents.map((value) => value * plan.inputScales[0]);
  let sample = await upload(floatTensor(unet.sample, concat(prompt.guided ? [firstScaled, firstScaled] : [firstScaled]), [total, unet.inChannels, h, w]));
  let latents = await upload(new ort.Tensor('float32', inputs.latents, [batch, channels, h, w]));
  const constants: Record<string, ort.Tensor> = {
    [unet.hiddenStates.name]: await upload(floatTensor(unet.hiddenStates, prompt.states, [total, prompt.tokens, prompt.hidden])),
  };
  for (const [name, tensor] of Object.entries(sdxlConditioning(run, prompt, 0, total))) constants[name] = await upload(tensor as ort.Tensor);

  // The latest x̂0 stays on the device until a preview asks for it (an older step's preview shows the latest one); once
  // the loop is over, previews show the final latents.
  let denoised: ort.Tensor | Float32Array | undefined;
  const latestPrediction = () => (denoised instanceof Float32Array ? Promise.resolve(denoised) : toHost(run, 'previewMs', denoised!));
  const release = (tensor: ort.Tensor | Float32Array | undefined) => {
    if (tensor instanceof ort.Tensor) tensor.dispose();
  };
  try {
    for (let i = 0; i < schedule.timesteps.length; i++) {
      if (signal?.aborted) throw new EngineError('cancelled', 'The generation was cancelled.');
      const t = schedule.timesteps[i];
      const outputs = await run.run(STAGE, unet, { [unet.sample.name]: sample, [unet.timestep.name]: timestepTensor(unet.timestep, t, total), ...constants });
      const [a, b, p, q] = plan.steps[i];
      const coefficients = new ort.Tensor('float32', Float32Array.of(settings.guidance, a, b, plan.inputScales[i + 1], p, q), [6]);
      const stepped = await run.run(STAGE, step, { prediction: outputs[unet.output], latents, coefficients });
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
    for (const tensor of Object.values(constants)) release(tensor);
  }
}
