import { SAMPLER_NAMES, type SamplerName } from './types.js';

/**
 * AUTOMATIC1111's "parameters" text (its `create_infotext`), the de-facto standard that image viewers, civitai and the
 * webui's own "PNG Info" tab read:
 *
 *   <prompt>
 *   Negative prompt: <negative prompt>          (only when there is one)
 *   Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 123, Size: 512x512, Model: name, …
 *
 * A value containing a comma, colon or newline is written as a JSON string, as A1111's `quote` does.
 */

export interface GenerationParameters {
  prompt: string;
  negativePrompt: string;
  steps: number;
  sampler: SamplerName;
  guidance: number;
  seed: number;
  width: number;
  height: number;
  model: string;
  variationSeed?: number;
  variationStrength?: number;
  /** Image-to-image strength. */
  denoisingStrength?: number;
  /** Inpainting: σ of the soft mask edge in pixels. */
  maskBlur?: number;
  /** Inpainting: what was denoised. The engine always denoises the whole picture; A1111 also writes "Only masked". */
  inpaintArea?: InpaintArea;
  /** What was done to a picture to make this one (e.g. "zoom out 2", "pan left", "vary region"): our own field. */
  edit?: string;
}

export const INPAINT_AREAS = ['Whole picture', 'Only masked'] as const;
export type InpaintArea = (typeof INPAINT_AREAS)[number];

/** What a parameters text says: the fields we know (when well-formed), and every other `Key: value` pair as text. */
export type ParsedParameters = Partial<GenerationParameters> & { extra: Record<string, string> };

/** A1111's display names ("Euler a", not "euler-a"); the Karras schedule was part of the name before A1111 1.9. */
export const SAMPLER_DISPLAY_NAMES: Record<SamplerName, string> = {
  ddpm: 'DDPM',
  ddim: 'DDIM',
  euler: 'Euler',
  'euler-a': 'Euler a',
  'dpmpp-2m': 'DPM++ 2M',
  'dpmpp-2m-karras': 'DPM++ 2M Karras',
  lcm: 'LCM',
};

const NEGATIVE_PREFIX = 'Negative prompt:';

export function formatParameters(p: GenerationParameters): string {
  const fields: [string, string | number | undefined][] = [
    ['Steps', p.steps],
    ['Sampler', SAMPLER_DISPLAY_NAMES[p.sampler]],
    ['CFG scale', p.guidance],
    ['Seed', p.seed],
    ['Size', `${p.width}x${p.height}`],
    ['Model', p.model],
    ['Variation seed', p.variationSeed],
    ['Variation seed strength', p.variationSeed === undefined ? undefined : p.variationStrength],
    ['Denoising strength', p.denoisingStrength],
    ['Mask blur', p.maskBlur],
    ['Inpaint area', p.inpaintArea],
    ['Edit', p.edit],
  ];
  const line = fields
    .filter((field): field is [string, string | number] => field[1] !== undefined)
    .map(([key, value]) => `${key}: ${quote(String(value))}`)
    .join(', ');
  const negative = p.negativePrompt ? `\n${NEGATIVE_PREFIX} ${p.negativePrompt}` : '';
  return `${p.prompt}${negative}\n${line}`;
}

const KNOWN_KEYS = new Set([
  'Steps',
  'Sampler',
  'Schedule type',
  'CFG scale',
  'Seed',
  'Size',
  'Model',
  'Variation seed',
  'Variation seed strength',
  'Denoising strength',
  'Mask blur',
  'Inpaint area',
  'Edit',
]);

// A1111's `re_param`: a key of word characters, spaces, '-' and '/', then a JSON-quoted or comma-free value.
const PARAM_PATTERN = /\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)/g;

/** The inverse of formatParameters, and a reader of A1111's own texts, as A1111's `parse_generation_parameters`. */
export function parseParameters(text: string): ParsedParameters {
  const lines = text.trim().split('\n');
  let pairs = [...(lines.at(-1) ?? '').matchAll(PARAM_PATTERN)];
  // A last line with fewer than three pairs is still part of the prompt (A1111's rule).
  if (pairs.length >= 3) lines.pop();
  else pairs = [];

  const promptLines: string[] = [];
  const negativeLines: string[] = [];
  for (const rawLine of lines) {
    const line = rawLine.trim();
    if (negativeLines.length === 0 && line.startsWith(NEGATIVE_PREFIX)) negativeLines.push(line.slice(NEGATIVE_PREFIX.length).trim());
    else (negativeLines.length > 0 ? negativeLines : promptLines).push(line);
  }

  const values = new Map(pairs.map((match) => [match[1], unquote(match[2].trim())]));
  const parsed: ParsedParameters = { prompt: promptLines.join('\n'), negativePrompt: negativeLines.join('\n'), extra: {} };
  for (const [key, value] of values) if (!KNOWN_KEYS.has(key)) parsed.extra[key] = value;

  const steps = wholeNumber(values.get('Steps'));
  const sampler = samplerFromDisplay(values.get('Sampler'), values.get('Schedule type'));
  const guidance = finiteNumber(values.get('CFG scale'));
  const seed = wholeNumber(values.get('Seed'));
  const size = /^(\d+)x(\d+)$/.exec(values.get('Size') ?? '');
  const variationSeed = wholeNumber(values.get('Variation seed'));
  const variationStrength = finiteNumber(values.get('Variation seed strength'));
  const denoisingStrength = finiteNumber(values.get('Denoising strength'));
  const maskBlur = wholeNumber(values.get('Mask blur'));
  const inpaintArea = INPAINT_AREAS.find((area) => area === values.get('Inpaint area'));
  return {
    ...parsed,
    ...(steps !== undefined && { steps }),
    ...(sampler !== undefined && { sampler }),
    ...(guidance !== undefined && { guidance }),
    ...(seed !== undefined && { seed }),
    ...(size && { width: Number(size[1]), height: Number(size[2]) }),
    ...(values.has('Model') && { model: values.get('Model') }),
    ...(variationSeed !== undefined && { variationSeed }),
    ...(variationStrength !== undefined && { variationStrength }),
    ...(denoisingStrength !== undefined && { denoisingStrength }),
    ...(maskBlur !== undefined && { maskBlur }),
    ...(inpaintArea !== undefined && { inpaintArea }),
    ...(values.has('Edit') && { edit: values.get('Edit') }),
  };
}

/** Also reads A1111 ≥ 1.9, which writes "Sampler: DPM++ 2M, Schedule type: Karras". */
function samplerFromDisplay(display: string | undefined, scheduleType: string | undefined): SamplerName | undefined {
  const base = SAMPLER_NAMES.find((name) => SAMPLER_DISPLAY_NAMES[name] === display);
  if (scheduleType === undefined || scheduleType === 'Automatic') return base;
  if (scheduleType === 'Karras' && (base === 'dpmpp-2m' || base === 'dpmpp-2m-karras')) return 'dpmpp-2m-karras';
  // A schedule we do not implement (e.g. Euler with Exponential): no sampler of ours reproduces it.
  return undefined;
}

function quote(value: string): string {
  return /[,:\n]/.test(value) ? JSON.stringify(value) : value;
}

function unquote(value: string): string {
  if (value.length < 2 || !value.startsWith('"') || !value.endsWith('"')) return value;
  try {
    const parsed: unknown = JSON.parse(value);
    return typeof parsed === 'string' ? parsed : value;
  } catch {
    return value;
  }
}

function wholeNumber(value: string | undefined): number | undefined {
  const number = finiteNumber(value);
  return number !== undefined && Number.isSafeInteger(number) && number >= 0 ? number : undefined;
}

function finiteNumber(value: string | undefined): number | undefined {
  if (value === undefined || !/^-?\d+(\.\d+)?(e-?\d+)?$/i.test(value)) return undefined;
  return Number(value);
}
