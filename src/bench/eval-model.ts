import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp, { type OverlayOptions } from 'sharp';
import { z } from 'zod';
import { loadModelFolder } from '../engine/model-folder.js';
import { generate } from '../engine/pipeline.js';
import type { RgbImage } from '../engine/types.js';
import { JUDGE_SIDE_PX, loadJudge, spread } from './judge.js';
import { loadAttributeRules, readBackground, readCount, readPosition, readSize } from './eval-attributes.js';
import { appendBenchmarkRow, machineDescription } from './report.js';

/**
 * `npm run eval:model -- [--model DIR] [--concepts N] [--seeds 4] [--attribute-seeds 2] [--guidance 5 | --guidance 3,5,7]
 *   [--steps N] [--sampler S] [--threads N] [--grids] [--record] [--json]`
 *
 * Does the model draw what it is asked for? Through our own pipeline:
 * - top1 / top5: every concept of the folder's vocabulary.json, prompted by its exact label, seeds 1…N; each image is
 *   scored by the judge (models/eval/classifier.onnx: trained on real emoji images only, never on generated ones) —
 *   hit when the concept asked for is its first / among its first five guesses (chance 1/552, 5/552).
 * - paraphraseTop5: the held-out phrasings (models/train/heldout_paraphrases.json: "kitty", "rocket ship"), which no
 *   training caption used.
 * - attributes: background colour, place on a 3×3 grid, small/large and "two X" prompts
 *   (models/eval/attribute_prompts.json), read back by pixel rules (./eval-attributes.ts).
 * - judgeCeilingTop1: the judge's own top-1 on held-out augmentations of real images — no score above can be read.
 * `--grids` writes captioned sample grids to docs/. Several `--guidance` values make a sweep, one row each;
 * `--record` appends the rows to docs/BENCHMARKS.md.
 */
const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/default' },
    classifier: { type: 'string', default: 'models/eval/classifier.onnx' },
    labels: { type: 'string', default: 'models/eval/labels.json' },
    heldoutFile: { type: 'string', default: 'models/train/heldout_paraphrases.json' },
    attributeFile: { type: 'string', default: 'models/eval/attribute_prompts.json' },
    concepts: { type: 'string' },
    seeds: { type: 'string', default: '4' },
    'attribute-seeds': { type: 'string', default: '2' },
    guidance: { type: 'string' },
    steps: { type: 'string' },
    sampler: { type: 'string' },
    threads: { type: 'string' },
    grids: { type: 'boolean', default: false },
    record: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});

const vocabularySchema = z.object({
  concepts: z.array(z.object({ id: z.string(), label: z.string(), category: z.string(), article: z.string(), plural: z.string().nullable() })),
});
const heldoutSchema = z.array(z.object({ phrase: z.string(), id: z.string() }));
const attributePromptsSchema = z.object({
  prompts: z.array(z.object({ attribute: z.enum(['background', 'position', 'size', 'count']), expected: z.union([z.string(), z.number()]), concept: z.string(), prompt: z.string() })),
});

interface Scored {
  prompt: string;
  images: RgbImage[];
  attribute?: string;
}

const readJson = async (file: string): Promise<unknown> => JSON.parse(await readFile(file, 'utf8'));
const vocabulary = vocabularySchema.parse(await readJson(join(values.model, 'vocabulary.json'))).concepts;
const indexOf = new Map(vocabulary.map((concept, index) => [concept.id, index]));
const heldout = heldoutSchema.parse(await readJson(values.heldoutFile));
const attributePrompts = attributePromptsSchema.parse(await readJson(values.attributeFile)).prompts;
const rules = loadAttributeRules();

const seedCount = Number(values.seeds);
const attributeSeeds = Number(values['attribute-seeds']);
const threads = values.threads ? Number(values.threads) : undefined;
const model = await loadModelFolder(values.model, { intraOpNumThreads: threads });
const judge = await loadJudge(values.classifier, values.labels, vocabulary.map((c) => c.id), threads);
const guidances = values.guidance ? values.guidance.split(',').map(Number) : [model.description.defaultGuidance];
const steps = values.steps ? Number(values.steps) : model.description.defaultSteps;
const conceptIndices = spread(vocabulary.length, values.concepts ? Number(values.concepts) : vocabulary.length);

const rows: Record<string, string | number>[] = [];
for (const guidance of guidances) {
  let wallMs = 0;
  let imageCount = 0;
  const draw = async (prompt: string, seeds: number): Promise<RgbImage[]> => {
    const images: RgbImage[] = [];
    for (let first = 1; first <= seeds; first += 4) {
      const batch = Math.min(4, seeds - first + 1);
      const result = await generate(model, { prompt, seed: first, batch, steps, guidance, ...(values.sampler ? { sampler: values.sampler as never } : {}) });
      wallMs += result.timingsMs.wallMs;
      imageCount += batch;
      images.push(...result.images);
    }
    return images;
  };

  let top1 = 0;
  let top5 = 0;
  let categoryTop1 = 0;
  const named: Scored[] = [];
  for (const index of conceptIndices) {
    const images = await draw(vocabulary[index].label, seedCount);
    named.push({ prompt: vocabulary[index].label, images });
    for (const ranking of await judge.rank(images)) {
      if (ranking[0] === index) top1++;
      if (ranking.includes(index)) top5++;
      if (vocabulary[ranking[0]].category === vocabulary[index].category) categoryTop1++;
    }
  }
  const namedImages = conceptIndices.length * seedCount;

  let paraphraseTop1 = 0;
  let paraphraseTop5 = 0;
  const paraphrased: Scored[] = [];
  for (const entry of heldout) {
    const target = indexOf.get(entry.id);
    if (target === undefined) throw new Error(`${values.heldoutFile}: '${entry.id}' is not in the vocabulary`);
    const images = await draw(entry.phrase, seedCount);
    paraphrased.push({ prompt: entry.phrase, images });
    for (const ranking of await judge.rank(images)) {
      if (ranking[0] === target) paraphraseTop1++;
      if (ranking.includes(target)) paraphraseTop5++;
    }
  }

  const hits: Record<string, [number, number]> = { background: [0, 0], position: [0, 0], size: [0, 0], count: [0, 0] };
  const attributed: Scored[] = [];
  for (const entry of attributePrompts) {
    const images = await draw(entry.prompt, attributeSeeds);
    if (attributed.filter((s) => s.prompt.includes(String(entry.expected))).length < 3) attributed.push({ prompt: entry.prompt, images, attribute: entry.attribute });
    for (const image of images) {
      const read = { background: readBackground, position: readPosition, size: readSize, count: readCount }[entry.attribute](image, rules);
      hits[entry.attribute][0] += read === entry.expected ? 1 : 0;
      hits[entry.attribute][1]++;
    }
  }
  const attributeAccuracy = Object.fromEntries(Object.entries(hits).map(([name, [hit, total]]) => [name, round(hit / total)]));

  rows.push({
    model: model.name,
    concepts: conceptIndices.length,
    seeds: seedCount,
    steps,
    guidance,
    top1: round(top1 / namedImages),
    top5: round(top5 / namedImages),
    categoryTop1: round(categoryTop1 / namedImages),
    paraphraseTop1: round(paraphraseTop1 / (heldout.length * seedCount)),
    paraphraseTop5: round(paraphraseTop5 / (heldout.length * seedCount)),
    background: attributeAccuracy.background,
    position: attributeAccuracy.position,
    size: attributeAccuracy.size,
    count: attributeAccuracy.count,
    judgeCeilingTop1: judge.labels.heldout.top1,
    secondsPerImage: round(wallMs / imageCount / 1000),
    machine: machineDescription(),
    date: new Date().toISOString().slice(0, 10),
  });
  if (values.grids && guidance === guidances[0]) {
    const everyday = ['red apple', 'fox', 'rocket', 'cat', 'dog', 'pizza', 'car', 'sun', 'snowman', 'banana', 'house', 'guitar',
      'butterfly', 'rainbow', 'birthday cake', 'bicycle'];
    await writeGrid('docs/default-model-samples.png', everyday.map((label) => named.find((s) => s.prompt === label)).filter((s): s is Scored => !!s));
    await writeGrid('docs/default-model-heldout.png', paraphrased.slice(0, 16));
    // Four prompts of each attribute, so the grid shows size and "two X" as well as background colours.
    await writeGrid('docs/default-model-attributes.png', Object.keys(hits).flatMap((name) => attributed.filter((s) => s.attribute === name).slice(0, 4)));
  }
}
await model.release();
await judge.release();
if (values.record) for (const row of rows) await appendBenchmarkRow('eval-model', row);
const printed = rows.map((row) => ({ ...row, attributes: { background: row.background, position: row.position, size: row.size, count: row.count } }));
process.stdout.write(printed.map((row) => JSON.stringify(row, null, values.json ? undefined : 2)).join('\n') + '\n');

/** One row per prompt: its caption, then its images (4 seeds) at 2×, so a reader can judge them by eye. */
async function writeGrid(file: string, rowsToDraw: Scored[]): Promise<void> {
  const scale = 2;
  const side = JUDGE_SIDE_PX * scale;
  const captionPx = Math.max(220, 16 + 9 * Math.max(...rowsToDraw.map((row) => row.prompt.length)));
  const columns = Math.max(...rowsToDraw.map((row) => row.images.length));
  const width = captionPx + columns * side;
  const composites: OverlayOptions[] = [];
  for (const [r, row] of rowsToDraw.entries()) {
    const text = row.prompt.replace(/&/g, '&amp;').replace(/</g, '&lt;');
    const label = `<svg xmlns="http://www.w3.org/2000/svg" width="${captionPx}" height="${side}"><text x="8" y="${side / 2 + 6}" font-family="DejaVu Sans, sans-serif" font-size="15">${text}</text></svg>`;
    composites.push({ input: Buffer.from(label), left: 0, top: r * side });
    for (const [c, image] of row.images.entries()) {
      const big = await sharp(Buffer.from(image.data), { raw: { width: image.width, height: image.height, channels: 3 } })
        .resize(side, side, { kernel: 'nearest' }).png().toBuffer();
      composites.push({ input: big, left: captionPx + c * side, top: r * side });
    }
  }
  await sharp({ create: { width, height: rowsToDraw.length * side, channels: 3, background: '#ffffff' } }).composite(composites).png().toFile(file);
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
