import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { loadModelFolder } from '../engine/model-folder.js';
import { generate } from '../engine/pipeline.js';
import { appendBenchmarkRow, machineDescription } from './report.js';

/**
 * `npm run bench:model -- [--prompt P] [--steps 20] [--batch 4] [--threads 2] [--repeats 5] [--json]`
 * Our Node/onnxruntime pipeline against the PyTorch reference sampler (models/train/sample_torch.py) on the same
 * weights, prompt, steps, batch, guidance and thread count, side by side. Both sides are measured alike: loaded once,
 * one untimed warm-up generation, then the best of --repeats timed ones in the same process (ours: the pipeline's
 * wall time; PyTorch's: its `denoise_s` — text encoder, denoising loop and VAE decode). Our --threads are split over the
 * engine's two UNet lanes (one thread each at 2) for a small UNet, as a worker with ORT_THREADS=2 runs. It needs Debian's
 * python3-torch; the PyTorch weights come from the committed training state (models/train/state), so it runs on a
 * fresh clone.
 */
const { values } = parseArgs({
  options: {
    prompt: { type: 'string', default: 'a red apple' },
    steps: { type: 'string', default: '20' },
    batch: { type: 'string', default: '4' },
    threads: { type: 'string', default: '2' },
    repeats: { type: 'string', default: '5' },
    guidance: { type: 'string', default: '5' },
    model: { type: 'string', default: 'models/default' },
    json: { type: 'boolean', default: false },
  },
});
const steps = Number(values.steps);
const batch = Number(values.batch);
const threads = Number(values.threads);
const repeats = Number(values.repeats);
const guidance = Number(values.guidance);

const model = await loadModelFolder(values.model, { intraOpNumThreads: threads });
const options = { prompt: values.prompt, steps, batch, guidance, sampler: 'ddim' as const, seed: 1 };
await generate(model, options);
let oursSeconds = Number.POSITIVE_INFINITY;
for (let i = 0; i < repeats; i++) oursSeconds = Math.min(oursSeconds, (await generate(model, { ...options, seed: 1 + i })).timingsMs.wallMs / 1000);
await model.release();

const run = promisify(execFile);
const out = await mkdtemp(join(tmpdir(), 'imagine-bench-model-'));
let torchSeconds: number;
try {
  const { stdout } = await run('/usr/bin/python3', [
    'sample_torch.py',
    '--prompt', values.prompt,
    '--seed', '1',
    '--steps', String(steps),
    '--batch', String(batch),
    '--guidance', String(guidance),
    '--threads', String(threads),
    '--repeats', String(repeats),
    '--out', out,
  ], { cwd: 'models/train', env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' } });
  torchSeconds = JSON.parse(stdout.trim().split('\n').at(-1)!).denoise_s;
} finally {
  await rm(out, { recursive: true, force: true });
}

const figures = {
  model: model.name,
  steps,
  batch,
  threads,
  oursSeconds: Math.round(oursSeconds * 1000) / 1000,
  torchSeconds: Math.round(torchSeconds * 1000) / 1000,
  ortVsTorch: Math.round((oursSeconds / torchSeconds) * 1000) / 1000,
  machine: machineDescription(),
  date: new Date().toISOString().slice(0, 10),
};
await appendBenchmarkRow('model', figures);
process.stdout.write(values.json ? `${JSON.stringify(figures)}\n` : `${JSON.stringify(figures, null, 2)}\n`);
