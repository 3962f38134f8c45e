import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { resultToPngs } from '../engine/actions.js';
import { editSize, planPan } from '../engine/edit-sizes.js';
import { blendPictures, pan, varyRegion, zoomOut, type EditResult } from '../engine/edits.js';
import { loadImageFile } from '../engine/images.js';
import { EDIT_DEFAULTS } from '../engine/limits.js';
import { blurMask, regionMask, type Mask } from '../engine/masks.js';
import { parseRegion } from '../engine/regions.js';
import { loadModelFolder } from '../engine/model-folder.js';
import { panCanvas, zoomOutCanvas, type Canvas } from '../engine/outpaint.js';
import { generate } from '../engine/pipeline.js';
import { vaeRoundTrip } from '../engine/pipelines/stages.js';
import type { RgbImage } from '../engine/types.js';
import { appendBenchmarkRow, machineDescription } from './report.js';

/**
 * `npm run bench:edits -- [--model DIR] [--repeats N] [--threads N] [--json]`
 * For each edit on one picture of the model (Vary (Region) of the left half, Zoom Out 2× and 1.5×, Pan right, a blend
 * of two): the median wall time of `repeats` warm runs at the model's default steps — beside a text-to-image run's, so
 * a figure from a busy machine still says what an edit costs over a plain generation — and the kept region's error — the
 * mean absolute difference, in 8-bit levels, between the result and the picture it was painted on, over the pixels
 * the softened mask leaves untouched — beside the VAE's own round-trip error over the same pixels.
 */
const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    repeats: { type: 'string', default: '5' },
    threads: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});

const modelDir = values.model ?? (existsSync('models/default/model_index.json') ? 'models/default' : 'test/fixtures/models/tiny-sd');
const repeats = Number(values.repeats);
const model = await loadModelFolder(modelDir, { intraOpNumThreads: values.threads ? Number(values.threads) : undefined });
const prompt = 'a red apple';
const source = (await resultToPngs(await generate(model, { prompt, seed: 1 }))).images[0];
const other = (await resultToPngs(await generate(model, { prompt: 'a green tree', seed: 2 }))).images[0];
const [width, height] = model.description.defaultSize;
const size = editSize(model.description, { width, height });
const { rgb: picture } = await loadImageFile(source, size);

interface EditCase {
  name: string;
  run(seed: number): Promise<EditResult>;
  /** The picture the edit paints on and what it repaints, to measure the kept region; none for a blend. */
  canvas?: () => Promise<Canvas>;
}

const cases: EditCase[] = [
  {
    name: 'varyRegion',
    run: (seed) => varyRegion(model, source, { region: 'left' }, { seed }),
    canvas: async () => ({ image: picture, mask: regionMask(parseRegion('left'), size) }),
  },
  { name: 'zoomOut2', run: (seed) => zoomOut(model, source, 2, { seed }), canvas: () => zoomOutCanvas(picture, 2) },
  { name: 'zoomOut1.5', run: (seed) => zoomOut(model, source, 1.5, { seed }), canvas: () => zoomOutCanvas(picture, 1.5) },
  {
    name: 'panRight',
    run: (seed) => pan(model, source, 'right', { seed }),
    canvas: () => panCanvas(picture, 'right', planPan(model.description, size, 'right')),
  },
  { name: 'blend2', run: (seed) => blendPictures(model, [source, other], { seed }) },
];

const figures: Record<string, string | number> = { model: model.name, steps: model.description.defaultSteps, size: `${size.width}x${size.height}` };
const imagineTimes: number[] = [];
for (let i = 0; i < repeats; i++) imagineTimes.push((await generate(model, { prompt, seed: 10 + i })).timingsMs.wallMs);
figures.imagineMs = Math.round(median(imagineTimes));
for (const edit of cases) {
  const first = await edit.run(1); // warm-up, and the result whose kept region is measured
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const started = performance.now();
    await edit.run(2 + i);
    times.push(performance.now() - started);
  }
  figures[`${edit.name}Ms`] = Math.round(median(times));
  if (edit.canvas) {
    const canvas = await edit.canvas();
    const kept = keptPixels(canvas.mask, EDIT_DEFAULTS.maskBlurPx);
    const roundTrip = await vaeRoundTrip(model, canvas.image);
    figures[`${edit.name}KeptError`] = round(meanError(first.images[0], canvas.image, kept));
    figures[`${edit.name}RoundTripError`] = round(meanError(roundTrip, canvas.image, kept));
  }
}
figures.machine = machineDescription();
figures.date = new Date().toISOString().slice(0, 10);
await model.release();
await appendBenchmarkRow('edits', figures);
process.stdout.write(values.json ? `${JSON.stringify(figures)}\n` : `${JSON.stringify(figures, null, 2)}\n`);

/** Pixels the softened mask does not reach at all. */
function keptPixels(mask: Mask, blurPx: number): boolean[] {
  return Array.from(blurMask(mask, blurPx).data, (value) => value === 0);
}

function meanError(a: RgbImage, b: RgbImage, kept: boolean[]): number {
  let sum = 0;
  let count = 0;
  kept.forEach((isKept, pixel) => {
    if (!isKept) return;
    for (let channel = 0; channel < 3; channel++) sum += Math.abs(a.data[pixel * 3 + channel] - b.data[pixel * 3 + channel]);
    count += 3;
  });
  return sum / count;
}

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
