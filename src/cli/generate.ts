import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join, parse as parsePath } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { ImagineError, invalidInput, isImagineError } from '../core/errors.js';
import { parametersOfPng, resultToPngs, upscalePng, varyImage, VARIATION_STRENGTH } from '../engine/actions.js';
import { blendPictures, pan, varyRegion, zoomOut, type EditLineage, type EditOptions, type EditResult } from '../engine/edits.js';
import { loadImageFile } from '../engine/images.js';
import { LIMITS, MAX_SEED, PAN_DIRECTIONS, REGION_PRESETS } from '../engine/limits.js';
import { EXECUTION_PROVIDERS, loadModelFolder } from '../engine/model-folder.js';
import { generate, type GenerateOptions, type GenerateResult } from '../engine/pipeline.js';
import { randomSeed } from '../engine/random.js';
import { SAMPLER_NAMES } from '../engine/types.js';
import { formatHelp, joinNegativeValues, wantsHelp, type CliOption } from './help.js';

export const DEFAULT_MODEL_DIR = 'models/default';
const MAX_INIT_BYTES = LIMITS.imageFileBytes;

const USAGE = `Usage: npm run cli -- generate "<prompt>" [--model DIR] [--negative TEXT] [--seed N] [--steps N]
  [--guidance F] [--sampler ${SAMPLER_NAMES.join('|')}] [--size WxH] [--batch 1-4]
  [--init FILE --strength F] [--vary subtle|strong --from FILE] [--variation-seed N --variation-strength F]
  [--init FILE (--mask FILE | --region ${REGION_PRESETS.join('|')}|x,y,w,h) [--mask-blur N] [--strength F]]
  [--zoom-out ${LIMITS.zoomOut.min}-${LIMITS.zoomOut.max} --from FILE] [--pan ${PAN_DIRECTIONS.join('|')} --from FILE] [--blend A.png,B.png[,C.png[,D.png]]]
  [--upscale FILE] [--previews DIR] [--out FILE] [--provider cpu|cuda|tensorrt|coreml|dml|webgpu] [--threads N] [--json]
  Edits (--mask/--region, --zoom-out, --pan, --blend) take the picture's own prompt when none is given.`;

/** Every option of `generate`, with what --help says about it; the parser is built from the same table. */
export const GENERATE_OPTIONS: readonly CliOption[] = [
  { name: 'model', value: 'DIR', description: 'Model folder (Optimum ONNX layout)', default: DEFAULT_MODEL_DIR },
  { name: 'negative', value: 'TEXT', description: 'What to keep out of the image', default: 'none' },
  { name: 'seed', value: 'N', description: `Seed, ${LIMITS.seed.min}–${MAX_SEED}, for a repeatable image`, default: 'random' },
  { name: 'steps', value: 'N', description: `Denoising steps, ${LIMITS.steps.min}–${LIMITS.steps.max}`, default: "the model's (imagine.json)" },
  { name: 'guidance', value: 'F', description: `How closely to follow the prompt (cfg), ${LIMITS.guidance.min}–${LIMITS.guidance.max}`, default: "the model's" },
  { name: 'sampler', value: SAMPLER_NAMES.join('|'), description: 'Sampler', default: "the model's" },
  { name: 'size', value: 'WxH', description: 'Image size in pixels', default: "the model's trained size" },
  { name: 'batch', value: 'N', description: `Images at once, ${LIMITS.batch.min}–${LIMITS.batch.max} (a grid is written too)`, default: '1' },
  { name: 'init', value: 'FILE', description: 'Start from this picture (image-to-image; with --mask/--region: inpaint)' },
  { name: 'strength', value: 'F', description: 'How much of --init (or --from) to redraw, above 0 up to 1; required with --init alone' },
  { name: 'vary', value: 'subtle|strong', description: 'A variation of --from', default: `strength ${VARIATION_STRENGTH.subtle} / ${VARIATION_STRENGTH.strong}` },
  { name: 'from', value: 'FILE', description: 'The picture --vary, --zoom-out and --pan act on' },
  { name: 'variation-seed', value: 'N', description: 'A second seed blended in (A1111 seed variation)' },
  { name: 'variation-strength', value: 'F', description: 'How much of --variation-seed, 0–1 (give both or neither)' },
  { name: 'mask', value: 'FILE', description: 'What to repaint in --init (white = repaint)' },
  { name: 'region', value: `${REGION_PRESETS.join('|')}|x,y,w,h`, description: 'What to repaint in --init, without a mask file' },
  { name: 'mask-blur', value: 'N', description: `Soft mask edge in pixels, ${LIMITS.maskBlurPx.min}–${LIMITS.maskBlurPx.max}`, default: 'the edit\'s own' },
  { name: 'zoom-out', value: 'F', description: `Zoom --from out by ${LIMITS.zoomOut.min}–${LIMITS.zoomOut.max} and fill the border` },
  { name: 'pan', value: PAN_DIRECTIONS.join('|'), description: 'Extend --from on one side' },
  { name: 'blend', value: 'A.png,B.png[,…]', description: `Blend ${LIMITS.blendImages.min}–${LIMITS.blendImages.max} pictures` },
  { name: 'upscale', value: 'FILE', description: 'Upscale this picture 4× (no prompt needed)' },
  { name: 'previews', value: 'DIR', description: 'Write a preview per step here' },
  { name: 'out', value: 'FILE', description: 'Where to write the image', default: 'out/<seed>.png' },
  { name: 'provider', value: 'cpu|cuda|tensorrt|coreml|dml|webgpu', description: 'ONNX Runtime execution providers, comma-separated', default: 'cpu' },
  { name: 'threads', value: 'N', description: 'CPU threads for ONNX Runtime', default: "onnxruntime's" },
  { name: 'json', description: 'Print one JSON report instead of lines', default: 'off' },
];
const VALUE_OPTIONS = GENERATE_OPTIONS.filter((option) => option.value).map((option) => option.name);

export const GENERATE_HELP = formatHelp(USAGE, GENERATE_OPTIONS);

const numberFlag = (flag: string, integer = false) =>
  z
    .string()
    .optional()
    .transform((value, context) => {
      if (value === undefined) return undefined;
      const parsed = Number(value);
      if (value.trim() === '' || !Number.isFinite(parsed) || (integer && !Number.isInteger(parsed))) {
        context.addIssue({ code: 'custom', message: `${flag} expects ${integer ? 'a whole number' : 'a number'}, got '${value}'` });
        return z.NEVER;
      }
      return parsed;
    });

const GenerateFlags = z.object({
  prompt: z.string().optional(),
  model: z.string().default(DEFAULT_MODEL_DIR),
  negative: z.string().optional(),
  seed: numberFlag('--seed', true),
  steps: numberFlag('--steps', true),
  guidance: numberFlag('--guidance'),
  sampler: z
    .string()
    .optional()
    .refine((value) => value === undefined || (SAMPLER_NAMES as readonly string[]).includes(value), {
      message: `--sampler must be one of ${SAMPLER_NAMES.join(', ')}`,
    })
    .transform((value) => value as (typeof SAMPLER_NAMES)[number] | undefined),
  size: z
    .string()
    .optional()
    .transform((value, context) => {
      if (value === undefined) return undefined;
      const match = /^(\d+)x(\d+)$/.exec(value);
      if (!match) {
        context.addIssue({ code: 'custom', message: `--size expects WIDTHxHEIGHT such as 512x512, got '${value}'` });
        return z.NEVER;
      }
      return { width: Number(match[1]), height: Number(match[2]) };
    }),
  batch: numberFlag('--batch', true),
  init: z.string().optional(),
  strength: numberFlag('--strength'),
  vary: z.enum(['subtle', 'strong'], { message: '--vary must be subtle or strong' }).optional(),
  from: z.string().optional(),
  'variation-seed': numberFlag('--variation-seed', true),
  'variation-strength': numberFlag('--variation-strength'),
  mask: z.string().optional(),
  region: z.string().optional(),
  'mask-blur': numberFlag('--mask-blur', true),
  'zoom-out': numberFlag('--zoom-out'),
  pan: z.enum(PAN_DIRECTIONS, { message: `--pan must be one of ${PAN_DIRECTIONS.join(', ')}` }).optional(),
  blend: z
    .string()
    .optional()
    .transform((value) => value?.split(',').map((path) => path.trim())),
  upscale: z.string().optional(),
  previews: z.string().optional(),
  out: z.string().optional(),
  provider: z
    .string()
    .optional()
    .transform((value) => value?.split(',').map((name) => name.trim()))
    .refine((names) => names === undefined || names.every((name) => (EXECUTION_PROVIDERS as readonly string[]).includes(name)), {
      message: `--provider must be one or more of ${EXECUTION_PROVIDERS.join(', ')} (comma-separated)`,
    })
    .transform((names) => names as (typeof EXECUTION_PROVIDERS)[number][] | undefined),
  threads: numberFlag('--threads', true),
  json: z.boolean().default(false),
});
type GenerateFlags = z.infer<typeof GenerateFlags>;

export async function generateCommand(args: string[]): Promise<number> {
  if (wantsHelp(args)) {
    process.stdout.write(GENERATE_HELP);
    return 0;
  }
  let json = args.includes('--json');
  try {
    const flags = parseFlags(args);
    json = flags.json;
    const report = await runGenerate(flags);
    if (json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
    } else {
      for (const warning of report.warnings) process.stderr.write(`warning: ${warning}\n`);
      for (const file of report.files) process.stdout.write(`${file.path}${file.seed === undefined ? '' : `  (seed ${file.seed})`}\n`);
      if (report.grid) process.stdout.write(`${report.grid}  (grid)\n`);
      if (report.edit?.mask) process.stdout.write(`${report.edit.mask}  (mask: ${report.edit.description})\n`);
      if (report.upscaler) process.stdout.write(`upscaled with ${report.upscaler}\n`);
      process.stdout.write(`done in ${(report.timingsMs.wallMs / 1000).toFixed(2)} s\n`);
    }
    return 0;
  } catch (error) {
    if (!isImagineError(error)) throw error;
    if (json) process.stdout.write(`${JSON.stringify({ error: { kind: error.kind, message: error.userMessage } })}\n`);
    else process.stderr.write(`error: ${error.userMessage}\n`);
    return error.kind === 'invalid_input' ? 2 : 1;
  }
}

function parseFlags(args: string[]): GenerateFlags {
  let parsed;
  try {
    parsed = parseArgs({
      args: joinNegativeValues(args, VALUE_OPTIONS),
      allowPositionals: true,
      strict: true,
      options: Object.fromEntries(GENERATE_OPTIONS.map((option) => [option.name, { type: option.value ? ('string' as const) : ('boolean' as const) }])),
    });
  } catch (error) {
    throw invalidInput(`${(error as Error).message}\n${USAGE}`);
  }
  if (parsed.positionals.length > 1) {
    throw invalidInput(`Put the prompt in quotes: got ${parsed.positionals.length} separate words.\n${USAGE}`);
  }
  const result = GenerateFlags.safeParse({ ...parsed.values, prompt: parsed.positionals[0] });
  if (!result.success) throw invalidInput(`${result.error.issues.map((issue) => issue.message).join('; ')}\n${USAGE}`);
  const flags = result.data;
  const mode = modeOf(flags);
  if (mode === 'img2img' && flags.strength === undefined) throw invalidInput('--init needs --strength (0 < F <= 1), e.g. --strength 0.6.');
  if ((mode === 'vary' || mode === 'zoom-out' || mode === 'pan') && flags.from === undefined) {
    throw invalidInput(`--${mode} needs --from FILE: the picture to ${mode === 'vary' ? 'vary' : mode === 'pan' ? 'pan' : 'zoom out of'}.`);
  }
  if (mode === 'vary-region' && flags.init === undefined) throw invalidInput('--mask and --region need --init FILE: the picture to repaint.');
  if (flags.mask !== undefined && flags.region !== undefined) throw invalidInput('Give either --mask FILE or --region, not both.');
  if (flags['mask-blur'] !== undefined && !['vary-region', 'zoom-out', 'pan'].includes(mode)) {
    throw invalidInput('--mask-blur goes with --mask, --region, --zoom-out or --pan.');
  }
  if ((flags['variation-seed'] === undefined) !== (flags['variation-strength'] === undefined)) {
    throw invalidInput('--variation-seed and --variation-strength go together.');
  }
  if (flags.prompt === undefined && (mode === 'txt2img' || mode === 'img2img')) {
    throw invalidInput(`Give a prompt in quotes.\n${USAGE}`);
  }
  return flags;
}

type Mode = 'txt2img' | 'img2img' | 'vary' | 'vary-region' | 'zoom-out' | 'pan' | 'blend' | 'upscale';

/** What the flags ask for; two asks at once are refused by name. */
function modeOf(flags: GenerateFlags): Mode {
  const asked: [Mode, string, boolean][] = [
    ['upscale', '--upscale', flags.upscale !== undefined],
    ['vary', '--vary', flags.vary !== undefined],
    ['vary-region', '--mask/--region', flags.mask !== undefined || flags.region !== undefined],
    ['zoom-out', '--zoom-out', flags['zoom-out'] !== undefined],
    ['pan', '--pan', flags.pan !== undefined],
    ['blend', '--blend', flags.blend !== undefined],
  ];
  const chosen = asked.filter(([, , given]) => given);
  if (chosen.length > 1) throw invalidInput(`${chosen.map(([, flag]) => flag).join(' and ')} ask for different things; give one of them.`);
  if (chosen.length === 1) return chosen[0][0];
  return flags.init !== undefined ? 'img2img' : 'txt2img';
}

export interface GenerateReport {
  files: { path: string; seed?: number }[];
  grid?: string;
  /** Edits: what was done to which file, and where the mask was written. */
  edit?: Omit<EditLineage, 'mask' | 'parents'> & { mask?: string; parents: (EditLineage['parents'][number] & { path: string })[] };
  upscaler?: 'model' | 'lanczos';
  previews: string[];
  warnings: string[];
  timingsMs: { textEncoderMs: number; unetMs: number; vaeMs: number; previewMs: number; ortMs: number; wallMs: number };
}

async function runGenerate(flags: GenerateFlags): Promise<GenerateReport> {
  const started = performance.now();
  const model = await loadModelFolder(flags.model, { executionProviders: flags.provider, intraOpNumThreads: flags.threads }).catch((error) => {
    if (flags.model === DEFAULT_MODEL_DIR && isImagineError(error) && /does not exist|has no/.test(error.userMessage)) {
      throw new ImagineError('model_failure', `The default model is missing or incomplete. ${error.userMessage}`);
    }
    throw error;
  });
  try {
    if (flags.upscale !== undefined) {
      const source = await readInputImage(flags.upscale);
      const upscaled = await upscalePng(model, source);
      const path = flags.out ?? defaultOutPath(parsePath(flags.upscale).name + '-x4');
      await writeOut(path, upscaled.png);
      const wallMs = performance.now() - started;
      return { files: [{ path }], upscaler: upscaled.method, previews: [], warnings: [], timingsMs: { ...zeroTimings(), wallMs } };
    }

    const seed = flags.seed ?? randomSeed();
    if (seed < 0 || seed > MAX_SEED) throw invalidInput(`The seed must be a whole number from 0 to ${MAX_SEED}; got ${seed}.`);
    const previews: string[] = [];
    const previewWrites: Promise<void>[] = [];
    const options: Omit<GenerateOptions, 'prompt'> = {
      seed,
      negativePrompt: flags.negative,
      steps: flags.steps,
      guidance: flags.guidance,
      sampler: flags.sampler,
      width: flags.size?.width,
      height: flags.size?.height,
      batch: flags.batch,
      variation:
        flags['variation-seed'] !== undefined ? { seed: flags['variation-seed'], strength: flags['variation-strength']! } : undefined,
      onStep: flags.previews
        ? (event) => {
            const path = join(flags.previews!, `step-${String(event.step).padStart(3, '0')}.webp`);
            previews.push(path);
            previewWrites.push(event.preview().then((webp) => writeOut(path, webp)));
          }
        : undefined,
    };

    const mode = modeOf(flags);
    const edit: EditOptions = { ...options, prompt: flags.prompt, strength: flags.strength, maskBlurPx: flags['mask-blur'] };
    const editInputs: string[] = [];
    const readEditInput = (path: string) => {
      editInputs.push(path);
      return readInputImage(path);
    };
    let result: GenerateResult | EditResult;
    if (mode === 'vary-region') {
      const source = await readEditInput(flags.init!);
      const area = flags.mask !== undefined ? { maskImage: await readInputImage(flags.mask) } : { region: flags.region! };
      result = await varyRegion(model, source, area, edit);
    } else if (mode === 'zoom-out') {
      result = await zoomOut(model, await readEditInput(flags.from!), flags['zoom-out']!, edit);
    } else if (mode === 'pan') {
      result = await pan(model, await readEditInput(flags.from!), flags.pan!, edit);
    } else if (mode === 'blend') {
      const sources: Buffer[] = [];
      for (const path of flags.blend!) sources.push(await readEditInput(path));
      result = await blendPictures(model, sources, edit);
    } else if (flags.vary !== undefined) {
      const source = await readInputImage(flags.from!);
      result = await varyImage(model, source, flags.vary, { ...options, prompt: flags.prompt, strength: flags.strength ?? VARIATION_STRENGTH[flags.vary] });
    } else if (flags.init !== undefined) {
      const source = await readInputImage(flags.init);
      const stored = parametersOfPng(source);
      const width = flags.size?.width ?? stored?.width;
      const height = flags.size?.height ?? stored?.height;
      const size = width && height ? { width, height } : { width: model.description.defaultSize[0], height: model.description.defaultSize[1] };
      const init = await loadImageFile(source, size);
      result = await generate(model, { ...options, ...size, prompt: flags.prompt!, init: { image: init.tensor, strength: flags.strength! } });
    } else {
      result = await generate(model, { ...options, prompt: flags.prompt! });
    }
    await Promise.all(previewWrites);

    const pngs = await resultToPngs(result);
    const base = flags.out ?? defaultOutPath(`${result.seeds[0]}`);
    const files = await Promise.all(
      pngs.images.map(async (png, k) => {
        const path = pngs.images.length === 1 ? base : suffixed(base, `-${k + 1}`);
        await writeOut(path, png);
        return { path, seed: result.seeds[k] };
      }),
    );
    let grid: string | undefined;
    if (pngs.grid) {
      grid = suffixed(base, '-grid');
      await writeOut(grid, pngs.grid);
    }
    let editReport: GenerateReport['edit'];
    if ('edit' in result) {
      const { mask, parents, ...lineage } = result.edit;
      const maskPath = mask && suffixed(base, '-mask');
      if (mask && maskPath) await writeOut(maskPath, mask);
      editReport = { ...lineage, ...(maskPath && { mask: maskPath }), parents: parents.map((parent, k) => ({ path: editInputs[k], ...parent })) };
    }
    const wallMs = performance.now() - started;
    return { files, grid, ...(editReport && { edit: editReport }), previews, warnings: result.warnings, timingsMs: { ...result.timingsMs, wallMs } };
  } finally {
    await model.release();
  }
}

async function readInputImage(path: string): Promise<Buffer> {
  const info = await stat(path).catch(() => {
    throw invalidInput(`Cannot read ${path}: no such file.`);
  });
  if (info.size > MAX_INIT_BYTES) {
    throw invalidInput(`${path} is ${(info.size / 1024 / 1024).toFixed(1)} MB; images up to ${MAX_INIT_BYTES / 1024 / 1024} MB are accepted. Resize or recompress it.`);
  }
  return readFile(path);
}

const zeroTimings = () => ({ textEncoderMs: 0, unetMs: 0, vaeMs: 0, previewMs: 0, ortMs: 0, wallMs: 0 });
const defaultOutPath = (name: string) => join('out', `${name}.png`);
const suffixed = (path: string, suffix: string) => {
  const { dir, name, ext } = parsePath(path);
  return join(dir, `${name}${suffix}${ext || '.png'}`);
};

async function writeOut(path: string, bytes: Buffer): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
}
