import { randomInt } from 'node:crypto';
import { z } from 'zod';
import { LIMITS, MAX_SEED } from '../../engine/limits.js';
import { promptTextProblem } from '../../engine/prompt-text.js';
import { SAMPLER_NAMES, type SamplerName } from '../../engine/types.js';
import { isImagineError, invalidInput } from '../errors.js';
import type { GenerationParams } from '../generation.js';
import { MAX_PERMUTATIONS } from '../permutations.js';
import { parseAspectRatio, parseSize, sizeForAspectRatio, supportedAspectRatios, type ImageSize } from './aspect.js';
import type { ChatConfig, ModelLimits } from './chat-config.js';
import type { UserSettings } from './service.js';

/** The options of `/imagine` as a platform hands them over (Discord types them; Slack gives only `prompt`). */
export const ImagineOptions = z.object({
  prompt: z.string(),
  negative: z.string().optional(),
  size: z.string().optional(),
  aspect: z.string().optional(),
  seed: z.number().optional(),
  steps: z.number().optional(),
  guidance: z.number().optional(),
  sampler: z.string().optional(),
  model: z.string().optional(),
  batch: z.number().optional(),
  mode: z.enum(['fast', 'relax']).optional(),
  draft: z.boolean().optional(),
  private: z.boolean().optional(),
});
export type ImagineOptions = z.infer<typeof ImagineOptions>;

export interface ParsedImagine {
  params: GenerationParams;
  mode: 'fast' | 'relax';
  private: boolean;
}

const FLAG_FIELDS = ['aspect', 'seed', 'negative', 'steps', 'guidance', 'sampler', 'model', 'mode', 'draft'] as const;
type FlagField = (typeof FLAG_FIELDS)[number];

interface InlineFlag {
  field: FlagField;
  /** 'word': one value; 'words': the rest up to the next flag; a literal: a switch that sets the field to it. */
  value: 'word' | 'words' | { set: string };
}

/** Midjourney's spellings first, then the long names people also type. */
const INLINE_FLAGS: Record<string, InlineFlag> = {
  ar: { field: 'aspect', value: 'word' },
  aspect: { field: 'aspect', value: 'word' },
  seed: { field: 'seed', value: 'word' },
  no: { field: 'negative', value: 'words' },
  steps: { field: 'steps', value: 'word' },
  cfg: { field: 'guidance', value: 'word' },
  guidance: { field: 'guidance', value: 'word' },
  sampler: { field: 'sampler', value: 'word' },
  model: { field: 'model', value: 'word' },
  fast: { field: 'mode', value: { set: 'fast' } },
  relax: { field: 'mode', value: { set: 'relax' } },
  draft: { field: 'draft', value: { set: 'true' } },
};

// Phones turn "--" into an em or en dash; accept what the user meant.
const FLAG_TOKEN = /^(?:--|—|–)([a-z][a-z-]*)$/i;

/** `--ar …` as the model takes it: any W:H, the few ratios of its listed sizes, or nothing when it makes one shape. */
function aspectFlagText(model: ModelLimits | undefined): string | undefined {
  const ratios = model && supportedAspectRatios(model);
  if (!ratios) return '--ar W:H';
  return ratios.length > 1 ? `--ar ${ratios.join('|')}` : undefined;
}

/** The flags `/imagine` accepts for a model (the user's, or the default), with the ranges that model takes. */
export function acceptedFlagsText(config: ChatConfig, model: ModelLimits | undefined = modelOf(config)): string {
  const steps = model?.maxSteps ?? Math.max(...config.models.map((candidate) => candidate.maxSteps));
  return [
    aspectFlagText(model),
    `--seed 0–${MAX_SEED}`,
    '--no WORDS',
    `--steps 1–${steps}`,
    `--cfg ${LIMITS.guidance.min}–${LIMITS.guidance.max}`,
    `--sampler ${SAMPLER_NAMES.join('|')}`,
    `--model ${config.models.map((candidate) => candidate.name).join('|')}`,
    config.models.some((candidate) => candidate.draft) ? '--draft' : undefined,
    '--fast',
    '--relax',
  ]
    .filter((flag) => flag !== undefined)
    .join(', ');
}

const modelOf = (config: ChatConfig, name: string = config.defaultModel) => config.models.find((candidate) => candidate.name === name);

/**
 * What a chat box shows before anything is typed: an example `/imagine` line and a one-line summary of the commands,
 * both only with options the user's model honours (an example that fails would be the first thing a newcomer tries).
 */
export function composerHints(config: ChatConfig, settings: UserSettings = {}): { example: string; help: string } {
  const model = modelOf(config, settings.model) ?? modelOf(config);
  const ratios = model && supportedAspectRatios(model);
  const exampleRatio = ratios ? ratios.find((ratio) => ratio !== '1:1') : '16:9';
  const aspect = aspectFlagText(model);
  return {
    example: `/imagine a fox in the snow${exampleRatio ? ` --ar ${exampleRatio}` : ''}`,
    help: `/imagine PROMPT [${[aspect, '--seed N', '--no WORDS', `--steps 1–${model?.maxSteps ?? LIMITS.steps.max}`, '--cfg N', model?.draft ? '--draft' : undefined]
      .filter((flag) => flag !== undefined)
      .join(' ')}] · a {red, green} apple: one job per option, at most ${MAX_PERMUTATIONS}, each charged · /quota · /history · /info SEED · /cancel · /settings · /blend ID ID [ID ID] · on an upscale: 🖌️ Vary (Region), 🔍 Zoom Out, ⬅️ ➡️ ⬆️ ⬇️`,
  };
}

/**
 * Turns `/imagine` options plus Midjourney-style flags inside the prompt into generation parameters. Every problem is
 * collected and reported in one `invalid_input` error that also lists what is accepted, so the user fixes all at once.
 */
export function parseImagine(
  options: ImagineOptions,
  config: ChatConfig,
  settings: UserSettings = {},
  randomSeed: () => number = () => randomInt(0, MAX_SEED + 1),
): ParsedImagine {
  const problems: string[] = [];
  const { prompt, flags } = splitInlineFlags(options.prompt, problems);

  const fromOptions: Partial<Record<FlagField, string>> = {
    aspect: options.aspect,
    seed: options.seed?.toString(),
    negative: options.negative,
    steps: options.steps?.toString(),
    guidance: options.guidance?.toString(),
    sampler: options.sampler,
    model: options.model,
    mode: options.mode,
    draft: options.draft ? 'true' : undefined,
  };
  const raw: Partial<Record<FlagField, string>> = {};
  for (const field of FLAG_FIELDS) {
    const optionValue = fromOptions[field];
    const flagValue = flags[field];
    if (optionValue !== undefined && flagValue !== undefined && optionValue !== flagValue) {
      problems.push(`${field} is given twice (option "${optionValue}", flag "${flagValue}")`);
    }
    raw[field] = flagValue ?? optionValue;
  }

  const modelName = raw.model ?? settings.model ?? config.defaultModel;
  const model = config.models.find((candidate) => candidate.name === modelName);
  if (!model) {
    problems.push(`model "${modelName}" is not one of ${config.models.map((m) => m.name).join(', ')}`);
  }

  if (prompt.length === 0) problems.push('the prompt is empty');
  if (prompt.length > LIMITS.promptChars) problems.push(`the prompt is ${prompt.length} characters (at most ${LIMITS.promptChars})`);
  const promptProblem = prompt.length === 0 ? undefined : promptTextProblem(prompt);
  if (promptProblem) problems.push(`the prompt ${promptProblem}`);
  if ((raw.negative ?? '').length > LIMITS.promptChars) problems.push(`the negative prompt is longer than ${LIMITS.promptChars} characters`);
  const negativeProblem = promptTextProblem(raw.negative ?? '', { mayBeBlank: true });
  if (negativeProblem) problems.push(`the negative prompt ${negativeProblem}`);

  const size = model ? readSize(options.size, raw.aspect, model, problems) : undefined;
  const seed = raw.seed === undefined ? randomSeed() : readInteger('seed', raw.seed, LIMITS.seed.min, LIMITS.seed.max, problems);
  const draft = raw.draft === 'true';
  if (draft && model && !model.draft) problems.push(`${model.name} has no draft version: remove --draft`);
  if (draft && raw.sampler !== undefined && raw.sampler !== 'lcm') problems.push(`--draft runs the lcm sampler: remove --sampler ${raw.sampler}`);
  const sampler = draft ? 'lcm' : (raw.sampler ?? settings.sampler ?? model?.defaultSampler);
  // The lcm sampler runs the model's distilled UNet when it has one, which wants its own few steps and no guidance.
  const distilled = sampler === 'lcm' && model?.draft ? model.draft : undefined;
  // A /settings default was checked when it was saved, but maybe against another model than this request's.
  let steps: number | undefined;
  if (model && raw.steps === undefined && settings.steps !== undefined && !distilled) {
    if (settings.steps <= model.maxSteps) steps = settings.steps;
    else problems.push(`your /settings steps (${settings.steps}) is more than ${model.name} takes (at most ${model.maxSteps}): give --steps, or change it with /settings steps=N`);
  } else if (model) {
    steps = readInteger('steps', raw.steps ?? String(distilled?.steps ?? model.defaultSteps), LIMITS.steps.min, model.maxSteps, problems);
  }
  const guidance = readNumber('cfg', raw.guidance ?? String(distilled?.guidance ?? model?.defaultGuidance ?? 0), LIMITS.guidance.min, LIMITS.guidance.max, problems);
  const batch = readInteger('batch', String(options.batch ?? config.defaultBatch), LIMITS.batch.min, config.maxBatch, problems);
  if (sampler !== undefined && !(SAMPLER_NAMES as readonly string[]).includes(sampler)) {
    problems.push(`sampler "${sampler}" is not one of ${SAMPLER_NAMES.join(', ')}`);
  }

  if (problems.length > 0 || !model || !size || steps === undefined || seed === undefined) {
    throw invalidInput(
      `I couldn't read your request: ${problems.join('; ')}.\nAccepted flags: ${acceptedFlagsText(config, model)}.`,
      { problems },
    );
  }
  return {
    params: {
      prompt,
      negativePrompt: raw.negative ?? '',
      width: size.width,
      height: size.height,
      steps,
      guidance: guidance!,
      sampler: sampler as SamplerName,
      seed,
      batch: batch!,
      model: model.name,
    },
    mode: (raw.mode as 'fast' | 'relax' | undefined) ?? settings.mode ?? 'fast',
    private: options.private ?? false,
  };
}

function splitInlineFlags(text: string, problems: string[]): { prompt: string; flags: Partial<Record<FlagField, string>> } {
  const promptWords: string[] = [];
  const flags: Partial<Record<FlagField, string>> = {};
  const tokens = text.split(/\s+/).filter((token) => token.length > 0);
  let index = 0;
  while (index < tokens.length) {
    const match = FLAG_TOKEN.exec(tokens[index]);
    if (!match) {
      promptWords.push(tokens[index]);
      index += 1;
      continue;
    }
    const name = match[1].toLowerCase();
    const values: string[] = [];
    index += 1;
    while (index < tokens.length && !FLAG_TOKEN.test(tokens[index])) {
      values.push(tokens[index]);
      index += 1;
    }
    const flag = INLINE_FLAGS[name];
    if (!flag) {
      problems.push(`--${name} is not a flag I know`);
      continue;
    }
    if (flags[flag.field] !== undefined) {
      problems.push(`--${name} is given twice`);
      continue;
    }
    if (typeof flag.value === 'object') {
      if (values.length > 0) problems.push(`--${name} takes no value (got "${values.join(' ')}")`);
      flags[flag.field] = flag.value.set;
    } else if (values.length === 0) {
      problems.push(`--${name} needs a value`);
    } else if (flag.value === 'word' && values.length > 1) {
      problems.push(`--${name} takes one value (got "${values.join(' ')}"); put flags after the prompt`);
    } else {
      flags[flag.field] = values.join(' ');
    }
  }
  return { prompt: promptWords.join(' '), flags };
}

function readSize(size: string | undefined, aspect: string | undefined, model: ModelLimits, problems: string[]): ImageSize | undefined {
  if (size !== undefined && aspect !== undefined) {
    problems.push('give either a size or an aspect ratio, not both');
    return undefined;
  }
  try {
    if (size !== undefined) return parseSize(size, model);
    if (aspect !== undefined) return sizeForAspectRatio(parseAspectRatio(aspect), model);
    return { width: model.baseWidth, height: model.baseHeight };
  } catch (error) {
    if (!isImagineError(error)) throw error;
    problems.push(error.userMessage.replace(/\.$/, ''));
    return undefined;
  }
}

function readNumber(name: string, text: string, min: number, max: number, problems: string[]): number | undefined {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < min || value > max) {
    problems.push(`${name} "${text}" is not a number from ${min} to ${max}`);
    return undefined;
  }
  return value;
}

function readInteger(name: string, text: string, min: number, max: number, problems: string[]): number | undefined {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value < min || value > max) {
    problems.push(`${name} "${text}" is not a whole number from ${min} to ${max}`);
    return undefined;
  }
  return value;
}
