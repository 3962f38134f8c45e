import { crc32, deflateSync } from 'node:zlib';
import { z } from 'zod';
import { editSize, planPan, type Size } from '../../engine/edit-sizes.js';
import { LIMITS, REGION_PRESETS, type PanDirection, type RegionPreset } from '../../engine/limits.js';
import { checkRegionInside, parseRegion } from '../../engine/regions.js';
import { ImagineError, invalidInput } from '../errors.js';
import type { GenerationKind, GenerationParams } from '../generation.js';
import { resultSize } from '../quota.js';
import type { ChatConfig } from './chat-config.js';
import type { GenerationRecord } from './service.js';

/**
 * Vary (Region), Zoom Out and Pan from the chat: which results offer them, what size the edit makes (so it is charged
 * like a generation of that size before a worker runs it), and the Vary (Region) form — its fields, and the checks a
 * submission passes before anything is queued or charged. Sizes come from src/engine/edit-sizes.ts, the arithmetic the
 * engine itself uses, so the price and the picture always agree.
 */

/** Results that are one finished picture: an upscale, or an edit of one. */
export const EDITABLE_KINDS: readonly GenerationKind[] = ['upscale', 'vary-region', 'zoom-out', 'pan', 'blend'];

export type ChatEdit =
  | { kind: 'zoom-out'; factor: number }
  | { kind: 'pan'; direction: PanDirection }
  | { kind: 'vary-region'; region?: string; prompt?: string }
  /** /blend, sized and set up by its first picture. */
  | { kind: 'blend'; prompt: string };

/** The size of the picture a result shows (an upscale is its parent's size times the upscaler's factor). */
export function pictureSize(record: GenerationRecord): Size {
  return resultSize(record.request);
}

function sizeRules(record: GenerationRecord, config: ChatConfig) {
  const name = record.request.params.model;
  const model = config.models.find((candidate) => candidate.name === name);
  if (!model) throw invalidInput(`The model ${name} that made this picture is not served here any more, so it cannot be edited.`);
  return { name, sizes: model.sizes ?? null, sizeMultiple: model.sizeMultiple, maxSidePx: model.maxSide, vaeScaleFactor: model.vaeScaleFactor ?? 8 };
}

/** The edit's parameters: the picture's own settings, one image, a new seed, and the size the edit will make. */
export function editParams(record: GenerationRecord, edit: ChatEdit, config: ChatConfig, seed: number): GenerationParams {
  const rules = sizeRules(record, config);
  const working = editSize(rules, pictureSize(record));
  const size = edit.kind === 'pan' ? planPan(rules, working, edit.direction) : working;
  const { prompt, negativePrompt, steps, guidance, sampler, model } = record.request.params;
  return {
    prompt: (edit.kind === 'vary-region' || edit.kind === 'blend') && edit.prompt ? edit.prompt : prompt,
    negativePrompt,
    steps,
    guidance,
    sampler,
    model,
    seed,
    batch: 1,
    width: size.width,
    height: size.height,
    ...(edit.kind === 'zoom-out' && { zoomOut: edit.factor }),
    ...(edit.kind === 'pan' && { pan: edit.direction }),
    ...(edit.kind === 'vary-region' && edit.region !== undefined && { region: edit.region }),
  };
}

/** What a Vary (Region) form shows; each adapter draws it its own way (a Discord modal, a Slack modal view, the web editor). */
export interface RegionForm {
  /** The Vary (Region) button's id: a submission names the result it was opened for. */
  formId: string;
  title: string;
  picture: Size & { imageKey: string };
  presets: readonly RegionPreset[];
  /** The picture's prompt, offered for editing. */
  prompt: string;
}

export function regionForm(formId: string, record: GenerationRecord, imageIndex: number): RegionForm {
  const imageKey = record.result?.imageKeys[imageIndex] ?? record.result?.imageKeys[0] ?? '';
  return { formId, title: 'Vary (Region)', picture: { ...pictureSize(record), imageKey }, presets: REGION_PRESETS, prompt: record.request.params.prompt };
}

/**
 * A mask painted in the web editor, run-length coded over its pixels in reading order: runs alternate keep / repaint,
 * starting with keep (so a mask that starts repainting starts with a 0 run).
 */
export const MaskDrawing = z.object({
  width: z.number().int().min(1).max(LIMITS.sidePx.max),
  height: z.number().int().min(1).max(LIMITS.sidePx.max),
  runs: z.array(z.number().int().min(0)).min(1).max(200_000),
});
export type MaskDrawing = z.infer<typeof MaskDrawing>;

export const RegionSubmission = z.object({
  /** A preset (left, right, top, bottom, centre, border) or a rectangle `x,y,w,h` in the picture's pixels. */
  region: z.string().max(64).optional(),
  mask: MaskDrawing.optional(),
  /** A new prompt for the repainted area; empty keeps the picture's own. */
  prompt: z.string().max(LIMITS.promptChars).optional(),
});
export type RegionSubmission = z.infer<typeof RegionSubmission>;

export interface CheckedRegion {
  region?: string;
  /** The painted mask as a greyscale PNG, white = repaint, at the picture's size. */
  maskPng?: Buffer;
  prompt?: string;
}

const USE_VARY = 'To redraw all of it, use Vary (subtle) or Vary (strong) instead; to change part of it, leave some of it as it is.';

/** Checks a form's answer against the picture it is for; nothing is queued or charged unless it passes. */
export function checkRegionSubmission(submission: RegionSubmission, picture: Size): CheckedRegion {
  const region = submission.region?.trim() || undefined;
  const prompt = submission.prompt?.trim() || undefined;
  if (region && submission.mask) throw invalidInput('Give either a region or a painted mask, not both.');
  if (submission.mask) return { maskPng: maskDrawingToPng(submission.mask, picture), prompt };
  if (!region) {
    throw invalidInput(`Choose what to repaint: a preset (${REGION_PRESETS.join(', ')}) or a rectangle x,y,w,h in the picture's ${picture.width}x${picture.height} pixels.`);
  }
  const parsed = parseRegion(region);
  checkRegionInside(parsed, picture);
  if ('rectangle' in parsed) {
    const { x, y, width, height } = parsed.rectangle;
    if (x === 0 && y === 0 && width === picture.width && height === picture.height) throw invalidInput(`The rectangle covers the whole picture. ${USE_VARY}`);
  }
  return { region, prompt };
}

function maskDrawingToPng(drawing: MaskDrawing, picture: Size): Buffer {
  const { width, height, runs } = drawing;
  if (width !== picture.width || height !== picture.height) {
    throw invalidInput(`The mask is ${width}x${height} but the picture is ${picture.width}x${picture.height}: paint it over the picture itself.`);
  }
  const total = runs.reduce((sum, run) => sum + run, 0);
  if (total !== width * height) throw invalidInput(`The mask's runs cover ${total} pixels, not the picture's ${width * height}: reload the page and paint it again.`);
  const pixels = new Uint8Array(width * height);
  let offset = 0;
  let painted = 0;
  runs.forEach((run, index) => {
    if (index % 2 === 1) {
      pixels.fill(255, offset, offset + run);
      painted += run;
    }
    offset += run;
  });
  if (painted === 0) throw invalidInput('The mask is empty, so nothing would change: paint over the part of the picture to redraw.');
  if (painted === width * height) throw new ImagineError('invalid_input', `The mask covers the whole picture. ${USE_VARY}`);
  return greyscalePng(pixels, width, height);
}

/** A minimal 8-bit greyscale PNG (no filter), so the bot role stores a mask without an image library. */
function greyscalePng(pixels: Uint8Array, width: number, height: number): Buffer {
  const rows = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; y += 1) rows.set(pixels.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 0, 0, 0, 0], 8);
  const chunk = (type: string, data: Buffer) => {
    const framed = Buffer.alloc(12 + data.length);
    framed.writeUInt32BE(data.length, 0);
    framed.write(type, 4, 'ascii');
    data.copy(framed, 8);
    framed.writeUInt32BE(crc32(framed.subarray(4, 8 + data.length)), 8 + data.length);
    return framed;
  };
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk('IHDR', header), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}
