import { readFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { loadModelFolder } from '../engine/model-folder.js';
import { generate } from '../engine/pipeline.js';
import { makeGrid } from '../engine/images.js';
import type { RgbImage } from '../engine/types.js';
import { appendBenchmarkRow, machineDescription } from './report.js';

/**
 * `npm run eval:model -- [--model DIR] [--concepts 200] [--seeds 4] [--paraphrases N] [--steps N] [--guidance F]
 *   [--grid docs/model-samples.png] [--json]`
 *
 * Does the model draw the emoji it is asked for? For `--concepts` base emoji spread evenly over the classifier's label
 * list, the prompt is the emoji's name; each is generated at `--seeds` seeds through our own pipeline and scored by
 * models/eval/classifier.onnx, a classifier trained only on the real emoji images (never on generated ones). Top-1 and
 * top-5 are over all base emoji (chance: 1/1911 and 5/1911); categoryTop1 counts a top-1 guess in the right category
 * (a face for a face). The held-out paraphrases (models/train/heldout_paraphrases.json, never seen as captions in
 * training) are scored the same way, separately.
 */
const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/default' },
    classifier: { type: 'string', default: 'models/eval/classifier.onnx' },
    labels: { type: 'string', default: 'models/eval/labels.json' },
    paraphrasesFile: { type: 'string', default: 'models/train/heldout_paraphrases.json' },
    concepts: { type: 'string', default: '200' },
    seeds: { type: 'string', default: '4' },
    paraphrases: { type: 'string' },
    steps: { type: 'string' },
    guidance: { type: 'string' },
    threads: { type: 'string' },
    grid: { type: 'string' },
    record: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});

interface ClassifierLabels {
  input: { name: string; size: number; range: [number, number] };
  labels: { name: string; unified: string; category: string }[];
}
interface Paraphrase {
  phrase: string;
  unified: string;
  name: string;
}
interface Prompt {
  text: string;
  label: number;
}
interface Score {
  prompts: number;
  images: number;
  top1: number;
  top5: number;
  categoryTop1: number;
}

const GRID_CONCEPTS = 36;

const labels: ClassifierLabels = JSON.parse(await readFile(values.labels, 'utf8'));
const labelOfUnified = new Map(labels.labels.map((label, index) => [label.unified, index]));
const conceptCount = Math.min(Number(values.concepts), labels.labels.length);
const seeds = Number(values.seeds);
const conceptPrompts: Prompt[] = Array.from({ length: conceptCount }, (_, k) => {
  const label = Math.floor((k * labels.labels.length) / conceptCount);
  return { text: labels.labels[label].name, label };
});
const paraphrases: Paraphrase[] = JSON.parse(await readFile(values.paraphrasesFile, 'utf8'));
const paraphrasePrompts: Prompt[] = paraphrases
  .filter((entry) => labelOfUnified.has(entry.unified))
  .slice(0, values.paraphrases === undefined ? undefined : Number(values.paraphrases))
  .map((entry) => ({ text: entry.phrase, label: labelOfUnified.get(entry.unified)! }));

const model = await loadModelFolder(values.model, { intraOpNumThreads: values.threads ? Number(values.threads) : undefined });
const classifier = await ort.InferenceSession.create(values.classifier);
const started = performance.now();
const gridImages: RgbImage[] = [];

const concepts = await evaluate(conceptPrompts, gridImages);
const heldOut = await evaluate(paraphrasePrompts);
const figures = {
  model: model.name,
  steps: values.steps ?? 'default',
  guidance: values.guidance ?? 'default',
  seeds,
  concepts: concepts.prompts,
  top1: concepts.top1,
  top5: concepts.top5,
  categoryTop1: concepts.categoryTop1,
  paraphrases: heldOut.prompts,
  paraphraseTop1: heldOut.top1,
  paraphraseTop5: heldOut.top5,
  minutes: Math.round((performance.now() - started) / 600) / 100,
  machine: machineDescription(),
  date: new Date().toISOString().slice(0, 10),
};
if (values.grid) {
  await mkdir(dirname(values.grid), { recursive: true });
  const grid = makeGrid(gridImages);
  await sharp(Buffer.from(grid.data), { raw: { width: grid.width, height: grid.height, channels: 3 } }).png().toFile(values.grid);
}
await model.release();
await classifier.release();
await appendBenchmarkRow('model-eval', figures);
process.stdout.write(values.json ? `${JSON.stringify(figures)}\n` : `${JSON.stringify(figures, null, 2)}\n`);

async function evaluate(prompts: Prompt[], keepForGrid?: RgbImage[]): Promise<Score> {
  let top1 = 0;
  let top5 = 0;
  let categoryTop1 = 0;
  for (const [k, prompt] of prompts.entries()) {
    const result = await generate(model, {
      prompt: prompt.text,
      seed: 1,
      batch: seeds,
      steps: values.steps ? Number(values.steps) : undefined,
      guidance: values.guidance ? Number(values.guidance) : undefined,
    });
    if (keepForGrid && k < GRID_CONCEPTS) keepForGrid.push(result.images[0]);
    for (const ranked of await classify(result.images)) {
      if (ranked[0] === prompt.label) top1++;
      if (ranked.slice(0, 5).includes(prompt.label)) top5++;
      if (labels.labels[ranked[0]].category === labels.labels[prompt.label].category) categoryTop1++;
    }
  }
  const images = prompts.length * seeds;
  const rate = (hits: number) => (images === 0 ? 0 : Math.round((hits / images) * 10000) / 10000);
  return { prompts: prompts.length, images, top1: rate(top1), top5: rate(top5), categoryTop1: rate(categoryTop1) };
}

/** Label indices of each image, best first (the top five). */
async function classify(images: RgbImage[]): Promise<number[][]> {
  const side = labels.input.size;
  const [low, high] = labels.input.range;
  const plane = side * side;
  const input = new Float32Array(images.length * 3 * plane);
  images.forEach((image, n) => {
    if (image.width !== side || image.height !== side) {
      throw new Error(`The classifier reads ${side}x${side} images; the model made ${image.width}x${image.height}. Generate at ${side}x${side}.`);
    }
    for (let pixel = 0; pixel < plane; pixel++) {
      for (let channel = 0; channel < 3; channel++) {
        input[(n * 3 + channel) * plane + pixel] = low + ((high - low) * image.data[pixel * 3 + channel]) / 255;
      }
    }
  });
  const outputs = await classifier.run({ [labels.input.name]: new ort.Tensor('float32', input, [images.length, 3, side, side]) });
  const logits = outputs[classifier.outputNames[0]].data as Float32Array;
  const classes = labels.labels.length;
  return images.map((_, n) => {
    const row = logits.subarray(n * classes, (n + 1) * classes);
    return Array.from(row.keys())
      .sort((a, b) => row[b] - row[a])
      .slice(0, 5);
  });
}
