import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadModelFolder, type ModelFolder } from '../engine/model-folder.js';
import { generate } from '../engine/pipeline.js';
import { DEFAULT_CALIBRATION_IMAGES, folderSize, quantizeFolder } from '../engine/quantize/quantize-folder.js';
import type { RgbImage, SamplerName } from '../engine/types.js';
import { loadJudge, spread } from './judge.js';
import { appendBenchmarkRow, machineDescription } from './report.js';

/**
 * `npm run bench:fast -- [--model DIR] [--int8 DIR] [--student DIR] [--concepts 24] [--seeds 2] [--steps 20]
 *   [--threads 2] [--calibration-images 8] [--json]`
 *
 * The fast CPU paths against the float32 model at 20 steps, in one run on the same prompts, seeds and threads:
 * - int8: the folder quantized by `quantize` (made here in a temporary folder unless --int8 names one), 20 steps;
 * - a few-step student with the lcm sampler at 1, 2 and 4 steps: the folder's own LCM-distilled UNet (unet_lcm/), or
 *   a folder given with --student (e.g. a fresh export of models/train/distill_lcm.py's state); without either its rows
 *   say "no student".
 * Every variant is loaded at once and warmed with one untimed picture; then each prompt is drawn by every variant in
 * turn, so a busy machine slows them alike. Each picture is scored by the eval's judge (./judge.ts): top-1 / top-5 of
 * the concept asked for. Prints seconds per image (and UNet seconds per image) for each, int8Speedup,
 * speedupVs20Steps and the quality ratios against float32, and how closely int8 follows float32 picture by picture
 * (same judge top-1, mean pixel difference in levels of 255); appends one row per variant to docs/BENCHMARKS.md.
 */
const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/default' },
    int8: { type: 'string' },
    student: { type: 'string' },
    classifier: { type: 'string', default: 'models/eval/classifier.onnx' },
    labels: { type: 'string', default: 'models/eval/labels.json' },
    concepts: { type: 'string', default: '24' },
    seeds: { type: 'string', default: '2' },
    steps: { type: 'string', default: '20' },
    threads: { type: 'string', default: '2' },
    'calibration-images': { type: 'string', default: String(DEFAULT_CALIBRATION_IMAGES) },
    json: { type: 'boolean', default: false },
  },
});
const threads = Number(values.threads);
const seeds = Number(values.seeds);
const steps = Number(values.steps);
const STUDENT_STEPS = [1, 2, 4] as const;

interface Variant {
  name: string;
  model: ModelFolder;
  dir: string;
  steps: number;
  sampler: SamplerName;
  guidance: number;
  wallMs: number;
  unetMs: number;
  images: number;
  top1: number;
  top5: number;
}

const scratch = await mkdtemp(join(tmpdir(), 'imagine-bench-fast-'));
const loaded: ModelFolder[] = [];
try {
  const load = async (dir: string) => {
    const model = await loadModelFolder(dir, { intraOpNumThreads: threads });
    loaded.push(model);
    return model;
  };
  const float32 = await load(values.model);
  const vocabulary = float32.description.vocabulary?.concepts;
  if (!vocabulary) throw new Error(`${values.model} has no vocabulary.json: bench:fast scores pictures with the judge, which knows that vocabulary only.`);
  const judge = await loadJudge(values.classifier, values.labels, vocabulary.map((c) => c.id), threads);

  let quantizeSeconds: number | null = null;
  let int8Dir = values.int8;
  if (!int8Dir) {
    int8Dir = join(scratch, 'int8');
    const report = await quantizeFolder(values.model, int8Dir, { calibrationImages: Number(values['calibration-images']), intraOpNumThreads: threads });
    quantizeSeconds = report.seconds;
  }
  const int8 = await load(int8Dir);
  // Without --student, the folder's own LCM-distilled UNet (unet_lcm/), which its lcm sampler runs.
  const student = values.student ? await load(values.student) : float32.lcmUnet ? float32 : undefined;
  const studentDir = values.student ?? values.model;
  const studentGuidance = student && (student.description.lcmUnet?.guidance ?? student.description.defaultGuidance);

  const variant = (name: string, model: ModelFolder, dir: string, variantSteps: number, sampler: SamplerName, guidance: number): Variant => ({
    name,
    model,
    dir,
    steps: variantSteps,
    sampler,
    guidance,
    wallMs: 0,
    unetMs: 0,
    images: 0,
    top1: 0,
    top5: 0,
  });
  const { defaultSampler, defaultGuidance } = float32.description;
  const variants: Variant[] = [
    variant('fp32', float32, values.model, steps, defaultSampler, defaultGuidance),
    variant('int8', int8, int8Dir, steps, defaultSampler, defaultGuidance),
    ...(student ? STUDENT_STEPS.map((n) => variant(`student-${n}`, student, studentDir, n, 'lcm', studentGuidance!)) : []),
  ];

  const draw = (v: Variant, prompt: string) => generate(v.model, { prompt, seed: 1, batch: seeds, steps: v.steps, sampler: v.sampler, guidance: v.guidance });
  for (const v of variants) await draw(v, 'warm-up');
  const conceptIndices = spread(vocabulary.length, Number(values.concepts));
  // How closely int8 follows float32 on the same seed, which still reads when the judge finds few hits in either.
  let sameTop1 = 0;
  let pixelDifference = 0;
  for (const index of conceptIndices) {
    const drawn = new Map<string, { images: RgbImage[]; rankings: number[][] }>();
    for (const v of variants) {
      const result = await draw(v, vocabulary[index].label);
      v.wallMs += result.timingsMs.wallMs;
      v.unetMs += result.timingsMs.unetMs;
      v.images += result.images.length;
      const rankings = await judge.rank(result.images);
      drawn.set(v.name, { images: result.images, rankings });
      for (const ranking of rankings) {
        if (ranking[0] === index) v.top1++;
        if (ranking.includes(index)) v.top5++;
      }
    }
    const [reference, quantized] = [drawn.get('fp32')!, drawn.get('int8')!];
    reference.images.forEach((image, k) => {
      if (reference.rankings[k][0] === quantized.rankings[k][0]) sameTop1++;
      const other = quantized.images[k].data;
      pixelDifference += image.data.reduce((sum, value, i) => sum + Math.abs(value - other[i]), 0) / image.data.length;
    });
  }
  await judge.release();

  const round = (value: number) => Math.round(value * 1000) / 1000;
  const summary = async (v: Variant) => ({
    variant: v.name,
    steps: v.steps,
    sampler: v.sampler,
    secondsPerImage: round(v.wallMs / v.images / 1000),
    unetSecondsPerImage: round(v.unetMs / v.images / 1000),
    top1: round(v.top1 / v.images),
    top5: round(v.top5 / v.images),
    folderMB: round((await folderSize(v.dir)) / 1024 ** 2),
  });
  const [fp32Row, int8Row, ...studentRows] = await Promise.all(variants.map(summary));
  const ratio = (a: number, b: number) => (b > 0 ? round(a / b) : null);
  const figures = {
    model: float32.name,
    concepts: conceptIndices.length,
    seeds,
    threads,
    fp32: fp32Row,
    int8: int8Row,
    student: studentRows.length > 0 ? studentRows : 'no student',
    int8Speedup: ratio(fp32Row.secondsPerImage, int8Row.secondsPerImage),
    int8UnetSpeedup: ratio(fp32Row.unetSecondsPerImage, int8Row.unetSecondsPerImage),
    int8Top1Ratio: ratio(int8Row.top1, fp32Row.top1),
    int8Top5Ratio: ratio(int8Row.top5, fp32Row.top5),
    int8SameTop1AsFp32: round(sameTop1 / variants[1].images),
    int8MeanPixelDifference: round(pixelDifference / variants[1].images),
    speedupVs20Steps:
      studentRows.length > 0 ? Object.fromEntries(studentRows.map((row) => [row.steps, ratio(fp32Row.secondsPerImage, row.secondsPerImage)])) : 'no student',
    studentTop5Ratio: studentRows.length > 0 ? Object.fromEntries(studentRows.map((row) => [row.steps, ratio(row.top5, fp32Row.top5)])) : 'no student',
    quantizeSeconds: quantizeSeconds === null ? null : round(quantizeSeconds),
    machine: machineDescription(),
    date: new Date().toISOString().slice(0, 10),
  };

  const tableRow = (row: typeof fp32Row | null, name: string) => ({
    variant: name,
    steps: row?.steps ?? '–',
    sampler: row?.sampler ?? '–',
    secondsPerImage: row?.secondsPerImage ?? '–',
    unetSecondsPerImage: row?.unetSecondsPerImage ?? '–',
    speedupVsFp32At20Steps: row ? (ratio(fp32Row.secondsPerImage, row.secondsPerImage) ?? '–') : '–',
    unetSpeedup: row ? (ratio(fp32Row.unetSecondsPerImage, row.unetSecondsPerImage) ?? '–') : '–',
    top1: row?.top1 ?? '–',
    top5: row?.top5 ?? '–',
    top5Ratio: row ? (ratio(row.top5, fp32Row.top5) ?? '–') : '–',
    sameTop1AsFp32: row?.variant === 'fp32' ? 1 : row?.variant === 'int8' ? figures.int8SameTop1AsFp32 : '–',
    meanPixelDifference: row?.variant === 'fp32' ? 0 : row?.variant === 'int8' ? figures.int8MeanPixelDifference : '–',
    folderMB: row?.folderMB ?? '–',
    images: `${conceptIndices.length}×${seeds}`,
    threads,
    model: float32.name,
    machine: figures.machine,
    date: figures.date,
  });
  for (const row of [fp32Row, int8Row]) await appendBenchmarkRow('fast', tableRow(row, row.variant));
  if (studentRows.length > 0) for (const row of studentRows) await appendBenchmarkRow('fast', tableRow(row, row.variant));
  else for (const n of STUDENT_STEPS) await appendBenchmarkRow('fast', tableRow(null, `no student (${n} steps)`));
  process.stdout.write(values.json ? `${JSON.stringify(figures)}\n` : `${JSON.stringify(figures, null, 2)}\n`);
} finally {
  await Promise.all(loaded.map((model) => model.release()));
  await rm(scratch, { recursive: true, force: true });
}
