import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { EXECUTION_PROVIDERS, loadModelFolder, type ExecutionProvider } from '../engine/model-folder.js';
import { generate, type GenerateOptions } from '../engine/pipeline.js';
import type { SamplerName } from '../engine/types.js';
import { appendBenchmarkRow, machineDescription } from './report.js';

/**
 * `npm run bench:engine -- [--model DIR] [--steps N] [--threads N] [--provider cpu|webgpu|…] [--sampler NAME] [--json]`
 * overheadRatio = pipeline wall time / summed ORT run() time at batch 1 (what our TypeScript costs around the models);
 * batchSpeedup = images/s at batch 4 ÷ images/s at batch 1; previewCostRatio = preview time per step ÷ UNet time per
 * step, measured as the wall time previews add; peakRssMiB = the process's high-water mark; unetUploadsPerStep / unetDownloadsPerStep = tensors
 * uploaded to / downloaded from the provider's device per UNet step at batch 1 (0 on the cpu provider).
 */
const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    steps: { type: 'string', default: '20' },
    threads: { type: 'string' },
    provider: { type: 'string', default: 'cpu' },
    sampler: { type: 'string' },
    repeats: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
});

const modelDir = values.model ?? (existsSync('models/default/model_index.json') ? 'models/default' : 'test/fixtures/models/tiny-sd');
const steps = Number(values.steps);
const repeats = Number(values.repeats);
if (!(EXECUTION_PROVIDERS as readonly string[]).includes(values.provider)) {
  throw new Error(`--provider must be one of ${EXECUTION_PROVIDERS.join(', ')}; got ${values.provider}.`);
}
const provider = values.provider as ExecutionProvider;
const model = await loadModelFolder(modelDir, { executionProviders: [provider], intraOpNumThreads: values.threads ? Number(values.threads) : undefined });
const base: GenerateOptions = { prompt: 'a red fox in the snow', seed: 1, steps, ...(values.sampler && { sampler: values.sampler as SamplerName }) };

await generate(model, base); // warm-up: first runs allocate and pick kernels

let wallMs = 0;
let ortMs = 0;
let unetCopies = { uploads: 0, downloads: 0 };
for (let i = 0; i < repeats; i++) {
  const result = await generate(model, { ...base, seed: 1 + i });
  wallMs += result.timingsMs.wallMs;
  ortMs += result.timingsMs.ortMs;
  unetCopies = result.copies.unetMs;
}
const batch1ImagesPerSecond = (repeats * 1000) / wallMs;

let batch4WallMs = 0;
for (let i = 0; i < repeats; i++) {
  batch4WallMs += (await generate(model, { ...base, batch: 4, seed: 1 + i })).timingsMs.wallMs;
}
const batch4ImagesPerSecond = (repeats * 4 * 1000) / batch4WallMs;

// A preview's own stopwatch would also count the UNet step it waits behind (ORT runs on this thread), so its cost is
// measured as what previews add to the wall time of the same generations.
let withPreviewsWallMs = 0;
let unetMs = 0;
for (let i = 0; i < repeats; i++) {
  const previews: Promise<Buffer>[] = [];
  const started = performance.now();
  const result = await generate(model, { ...base, seed: 1 + i, onStep: (event) => previews.push(event.preview()) });
  await Promise.all(previews);
  withPreviewsWallMs += performance.now() - started;
  unetMs += result.timingsMs.unetMs;
}
const previewCostRatio = Math.max(0, withPreviewsWallMs - wallMs) / unetMs;

const figures = {
  model: model.name,
  provider,
  sampler: values.sampler ?? model.description.defaultSampler,
  steps,
  overheadRatio: round(wallMs / ortMs),
  batchSpeedup: round(batch4ImagesPerSecond / batch1ImagesPerSecond),
  previewCostRatio: round(previewCostRatio),
  batch1SecondsPerImage: round(1 / batch1ImagesPerSecond),
  batch4Seconds: round(batch4WallMs / repeats / 1000),
  peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
  unetUploadsPerStep: round(unetCopies.uploads / steps),
  unetDownloadsPerStep: round(unetCopies.downloads / steps),
  machine: machineDescription(),
  date: new Date().toISOString().slice(0, 10),
};
await model.release();
await appendBenchmarkRow('engine', figures);
process.stdout.write(values.json ? `${JSON.stringify(figures)}\n` : `${JSON.stringify(figures, null, 2)}\n`);

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
