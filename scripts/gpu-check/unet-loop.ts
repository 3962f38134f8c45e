import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { EXECUTION_PROVIDERS, loadModelFolder, type ExecutionProvider } from '../../src/engine/model-folder.js';
import { checkInputs, denoise, encodePrompt, prepareLatents, prepareNoise, prepareTimesteps } from '../../src/engine/pipelines/stages.js';

/**
 * The Node half of the GPU check (scripts/gpu-check/run.sh): the engine's own denoising loop — the stages every
 * pipeline runs, prompt encoding through the last scheduler step — on a model folder, timed per step. The VAE is not
 * run: the check compares UNet steps with PyTorch's.
 *
 *   npx tsx scripts/gpu-check/unet-loop.ts --model DIR [--provider webgpu] [--steps 10] [--warmup-steps 2] [--json FILE]
 *
 * stepMs = wall time of the loop / steps (UNet, guidance, scheduler and every host↔device copy); unetMs = the UNet's
 * ONNX Runtime run() time per step; copies = tensors uploaded / downloaded per UNet step.
 */
const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    provider: { type: 'string', default: 'webgpu' },
    steps: { type: 'string', default: '10' },
    'warmup-steps': { type: 'string', default: '2' },
    sampler: { type: 'string', default: 'ddim' },
    json: { type: 'string' },
  },
});
if (!values.model) throw new Error('--model DIR is required');
if (!(EXECUTION_PROVIDERS as readonly string[]).includes(values.provider)) throw new Error(`--provider must be one of ${EXECUTION_PROVIDERS.join(', ')}`);

const loadStarted = performance.now();
const model = await loadModelFolder(values.model, { executionProviders: [values.provider as ExecutionProvider] });
const loadS = (performance.now() - loadStarted) / 1000;

async function loop(steps: number) {
  const run = checkInputs(model, { prompt: 'a red apple on a wooden table', seed: 1, steps, guidance: 7.5, sampler: values.sampler as 'ddim' });
  const prompt = await encodePrompt(run);
  const noise = prepareNoise(run);
  const schedule = prepareTimesteps(run);
  const latents = prepareLatents(run, schedule, noise);
  const unetBefore = run.timings.unetMs;
  const started = performance.now();
  const out = await denoise(run, { schedule, latents, prompt, noise });
  const loopMs = performance.now() - started;
  if (!out.every(Number.isFinite)) throw new Error('the loop produced non-finite latents');
  return { run, loopMs, unetMs: run.timings.unetMs - unetBefore };
}

// The first steps on a GPU compile shaders and allocate; they are run and not counted.
const warmupStarted = performance.now();
await loop(Number(values['warmup-steps']));
const warmupS = (performance.now() - warmupStarted) / 1000;

const steps = Number(values.steps);
const { run, loopMs, unetMs } = await loop(steps);
const { width, height } = run.settings;
const figures = {
  model: model.name,
  provider: values.provider,
  size: `${width}x${height}`,
  latent: run.latentDims,
  unetDtype: model.unet.sample.type,
  steps,
  sampler: values.sampler,
  loadS: round(loadS),
  warmupS: round(warmupS),
  stepMs: round(loopMs / steps),
  unetMs: round(unetMs / steps),
  uploadsPerStep: round(run.copies.unetMs.uploads / steps),
  downloadsPerStep: round(run.copies.unetMs.downloads / steps),
};
await model.release();
if (values.json) writeFileSync(values.json, `${JSON.stringify(figures, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(figures)}\n`);

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
