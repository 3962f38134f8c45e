import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { loadModelFolder } from '../engine/model-folder.js';
import { generate } from '../engine/pipeline.js';
import type { RgbImage } from '../engine/types.js';
import { appendBenchmarkRow, machineDescription } from './report.js';

/**
 * `npm run eval:model -- [--model DIR] [--concepts 200] [--seeds 4] [--guidance 5 | --guidance 2,4,6] [--heldout]
 *   [--steps N] [--grid FILE] [--threads N] [--record] [--json]`
 *
 * Does the model draw the emoji it is asked for? Every concept is generated with seeds 1..N through our own pipeline
 * and each image is scored by models/eval/classifier.onnx, a classifier trained only on the real emoji images (never on
 * generated ones): top-1 / top-5 = how often the emoji asked for is its first / among its first five guesses (chance:
 * 1/1911 and 5/1911); categoryTop1 = how often its first guess is in the right category (a face for a face). Concepts
 * are the base emoji names spread evenly over the whole list; `--heldout` uses the paraphrases kept out of the training
 * captions instead ("rocket ship" → rocket). Several `--guidance` values make a sweep, one row each. `--record` appends
 * the rows to docs/BENCHMARKS.md.
 */
const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/default' },
    classifier: { type: 'string', default: 'models/eval/classifier.onnx' },
    labels: { type: 'string', default: 'models/eval/labels.json' },
    heldoutFile: { type: 'string', default: 'models/train/heldout_paraphrases.json' },
    concepts: { type: 'string', default: '200' },
    seeds: { type: 'string', default: '4' },
    guidance: { type: 'string' },
    steps: { type: 'string' },
    heldout: { type: 'boolean', default: false },
    grid: { type: 'string' },
    threads: { type: 'string' },
    record: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});

interface Label {
  name: string;
  unified: string;
  category: string;
}
interface Concept {
  prompt: string;
  label: number;
}

const CLASSIFIER_SIDE_PX = 64;

const labels: Label[] = JSON.parse(await readFile(values.labels, 'utf8')).labels;
const labelByUnified = new Map(labels.map((label, index) => [label.unified, index]));
const concepts = values.heldout ? await heldoutConcepts(values.heldoutFile) : spreadConcepts(Number(values.concepts));
const seedCount = Number(values.seeds);
const threads = values.threads ? Number(values.threads) : undefined;
const model = await loadModelFolder(values.model, { intraOpNumThreads: threads });
const classifier = await ort.InferenceSession.create(values.classifier, threads ? { intraOpNumThreads: threads } : {});
const guidances = values.guidance ? values.guidance.split(',').map(Number) : [model.description.defaultGuidance];
const steps = values.steps ? Number(values.steps) : model.description.defaultSteps;

const rows: Record<string, string | number>[] = [];
for (const guidance of guidances) {
  let top1 = 0;
  let top5 = 0;
  let categoryTop1 = 0;
  let wallMs = 0;
  const gridImages: RgbImage[] = [];
  for (const concept of concepts) {
    const images: RgbImage[] = [];
    for (let first = 1; first <= seedCount; first += 4) {
      const batch = Math.min(4, seedCount - first + 1);
      const result = await generate(model, { prompt: concept.prompt, seed: first, batch, steps, guidance });
      wallMs += result.timingsMs.wallMs;
      images.push(...result.images);
    }
    for (const ranking of await rankLabels(images)) {
      if (ranking[0] === concept.label) top1++;
      if (ranking.slice(0, 5).includes(concept.label)) top5++;
      if (labels[ranking[0]].category === labels[concept.label].category) categoryTop1++;
    }
    if (gridImages.length < 64) gridImages.push(...images.slice(0, 4));
  }
  const imageCount = concepts.length * seedCount;
  rows.push({
    model: model.name,
    prompts: values.heldout ? 'heldout-paraphrases' : 'names',
    concepts: concepts.length,
    seeds: seedCount,
    steps,
    guidance,
    top1: round(top1 / imageCount),
    top5: round(top5 / imageCount),
    categoryTop1: round(categoryTop1 / imageCount),
    secondsPerImage: round(wallMs / imageCount / 1000),
    machine: machineDescription(),
    date: new Date().toISOString().slice(0, 10),
  });
  if (values.grid && guidance === guidances[0]) await writeGrid(values.grid, gridImages);
}
await model.release();
await classifier.release();
if (values.record) for (const row of rows) await appendBenchmarkRow('eval-model', row);
process.stdout.write(rows.map((row) => JSON.stringify(row, null, values.json ? undefined : 2)).join('\n') + '\n');

/** Base emoji spread evenly over the list, so every category is represented; prompts are the names it was trained on. */
function spreadConcepts(count: number): Concept[] {
  const n = Math.min(count, labels.length);
  return Array.from({ length: n }, (_, k) => {
    const label = Math.floor((k * labels.length) / n);
    return { prompt: labels[label].name, label };
  });
}

async function heldoutConcepts(file: string): Promise<Concept[]> {
  const entries: { phrase: string; unified: string }[] = JSON.parse(await readFile(file, 'utf8'));
  return entries.map((entry) => {
    const label = labelByUnified.get(entry.unified);
    if (label === undefined) throw new Error(`${file}: ${entry.unified} ('${entry.phrase}') is not a classifier label`);
    return { prompt: entry.phrase, label };
  });
}

/** Label indices of each image, best first (five). The classifier takes [N,3,64,64] RGB in [0,1]. */
async function rankLabels(images: RgbImage[]): Promise<number[][]> {
  const side = CLASSIFIER_SIDE_PX;
  const plane = side * side;
  const input = new Float32Array(images.length * 3 * plane);
  images.forEach((image, n) => {
    if (image.width !== side || image.height !== side) {
      throw new Error(`The classifier takes ${side}x${side} images; this model made ${image.width}x${image.height}.`);
    }
    for (let pixel = 0; pixel < plane; pixel++) {
      for (let colour = 0; colour < 3; colour++) input[(n * 3 + colour) * plane + pixel] = image.data[pixel * 3 + colour] / 255;
    }
  });
  const outputs = await classifier.run({ image: new ort.Tensor('float32', input, [images.length, 3, side, side]) });
  const logits = outputs.logits.data as Float32Array;
  return images.map((_, n) => {
    const row = logits.subarray(n * labels.length, (n + 1) * labels.length);
    return [...row.keys()].sort((a, b) => row[b] - row[a]).slice(0, 5);
  });
}

/** Four seeds per row, one row per concept. */
async function writeGrid(file: string, images: RgbImage[]): Promise<void> {
  const side = images[0].width;
  const columns = 4;
  const png = await sharp({
    create: { width: columns * side, height: Math.ceil(images.length / columns) * side, channels: 3, background: '#ffffff' },
  })
    .composite(
      images.map((image, k) => ({
        input: Buffer.from(image.data),
        raw: { width: image.width, height: image.height, channels: 3 as const },
        left: (k % columns) * side,
        top: Math.floor(k / columns) * side,
      })),
    )
    .png()
    .toBuffer();
  await writeFile(file, png);
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
