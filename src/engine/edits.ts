import { createHash } from 'node:crypto';
import { parametersOfPng } from './actions.js';
import { editSize, planPan } from './edit-sizes.js';
import { invalidInput } from './errors.js';
import { loadImageFile, readImageSize, rgbToTensor } from './images.js';
import { EDIT_DEFAULTS, LIMITS, type PanDirection } from './limits.js';
import { maskFromImage, maskToPng, regionMask } from './masks.js';
import { parseRegion } from './regions.js';
import type { ModelFolder } from './model-folder.js';
import { panCanvas, zoomOutCanvas, type Canvas } from './outpaint.js';
import type { GenerationParameters } from './parameters.js';
import { blend } from './pipelines/blend.js';
import { inpaint } from './pipelines/inpaint.js';
import type { GenerateOptions, GenerateResult } from './pipelines/stages.js';
import type { RgbImage } from './types.js';

/**
 * Editing a finished picture, over PNG files as the CLI and the worker hold them: Vary (Region) repaints a masked
 * area, Zoom Out and Pan paint a new border or side (all three through the inpainting pipeline), /blend mixes 2–4
 * pictures. Each result says what was done to what — its lineage — so history can store it and the PNG carries it.
 */

export const EDIT_KINDS = ['vary-region', 'zoom-out', 'pan', 'blend'] as const;
export type EditKind = (typeof EDIT_KINDS)[number];

export interface ParentPicture {
  width: number;
  height: number;
  /** SHA-256 of the PNG's bytes (hex): the same picture however it was stored. */
  sha256: string;
  /** Its own parameters, when its PNG carries them. */
  parameters?: Partial<GenerationParameters>;
}

export interface EditLineage {
  kind: EditKind;
  /** The picture edited (blend: the pictures blended, in order). */
  parents: ParentPicture[];
  /** What was repainted, at the result's size, before its edge was softened: a greyscale PNG, white = repainted. */
  mask?: Buffer;
  maskBlurPx?: number;
  denoisingStrength: number;
  /** In words, as the PNG's `Edit` field says it: "vary region left", "zoom out 2", "pan right", "blend 3". */
  description: string;
}

export interface EditResult extends GenerateResult {
  edit: EditLineage;
}

/** Everything of a generation but what the edit decides itself; the prompt defaults to the picture's own. */
export type EditOptions = Omit<GenerateOptions, 'init' | 'prompt' | 'width' | 'height'> & {
  prompt?: string;
  strength?: number;
  maskBlurPx?: number;
};

export type RepaintArea = { maskImage: Buffer } | { region: string };

/** Midjourney's Vary (Region): repaint the area a mask image or a region (preset or x,y,w,h in the picture's pixels) marks. */
export async function varyRegion(model: ModelFolder, source: Buffer, area: RepaintArea, options: EditOptions): Promise<EditResult> {
  const picture = await openPicture(model, source);
  const mask =
    'maskImage' in area
      ? await maskFromImage(area.maskImage, picture.parent, picture.size)
      : regionMask(parseRegion(area.region), picture.parent, picture.size);
  const description = `vary region ${'region' in area ? area.region.trim().toLowerCase() : 'mask'}`;
  return repaint(model, picture, { image: picture.rgb, mask }, 'vary-region', description, options);
}

/** Zoom Out by `factor` (1.1–2): the picture shrinks into the centre of a canvas of its size, the border is painted. */
export async function zoomOut(model: ModelFolder, source: Buffer, factor: number, options: EditOptions): Promise<EditResult> {
  const picture = await openPicture(model, source);
  const canvas = await zoomOutCanvas(picture.rgb, factor);
  return repaint(model, picture, canvas, 'zoom-out', `zoom out ${factor}`, options);
}

/** Pan: the canvas grows by half on one side (up to the model's largest size, or the view shifts) and that side is painted. */
export async function pan(model: ModelFolder, source: Buffer, direction: PanDirection, options: EditOptions): Promise<EditResult> {
  const picture = await openPicture(model, source);
  const plan = planPan(model.description, picture.size, direction);
  const canvas = await panCanvas(picture.rgb, direction, plan);
  return repaint(model, picture, canvas, 'pan', `pan ${direction}`, options);
}

/** /blend: 2–4 pictures at the first one's size, their latents slerped, then image-to-image. */
export async function blendPictures(model: ModelFolder, sources: Buffer[], options: EditOptions): Promise<EditResult> {
  const { min, max } = LIMITS.blendImages;
  if (sources.length < min || sources.length > max) throw invalidInput(`/blend takes ${min} to ${max} pictures; got ${sources.length}.`);
  const first = await openPicture(model, sources[0]);
  const { size } = first;
  const others = await Promise.all(sources.slice(1).map(async (source) => ({ parent: await parentPicture(source), ...(await loadImageFile(source, size)) })));
  const parents = [first.parent, ...others.map((picture) => picture.parent)];
  const prompts = [...new Set(parents.map((parent) => parent.parameters?.prompt).filter((prompt) => !!prompt))];
  const prompt = options.prompt ?? (prompts.length > 0 ? prompts.join(', ') : undefined);
  if (!prompt) throw invalidInput('These pictures carry no prompt in their PNG parameters; give a prompt for the blend.');
  const strength = options.strength ?? EDIT_DEFAULTS.blendStrength;
  const description = `blend ${sources.length}`;
  const result = await blend(model, {
    ...inheritedSettings(first),
    ...definedOnly(options),
    seed: options.seed,
    prompt,
    ...size,
    images: [rgbToTensor(first.rgb), ...others.map((picture) => picture.tensor)],
    strength,
  });
  return withLineage(result, { kind: 'blend', parents, denoisingStrength: strength, description });
}

interface OpenedPicture {
  parent: ParentPicture;
  /** The size the model edits it at (src/engine/edit-sizes.ts). */
  size: { width: number; height: number };
  rgb: RgbImage;
}

async function openPicture(model: ModelFolder, source: Buffer): Promise<OpenedPicture> {
  const parent = await parentPicture(source);
  const size = editSize(model.description, parent);
  const { rgb } = await loadImageFile(source, size);
  return { parent, size, rgb };
}

async function parentPicture(source: Buffer): Promise<ParentPicture> {
  const { width, height } = await readImageSize(source, 'The picture');
  const parameters = parametersOfPng(source);
  const sha256 = createHash('sha256').update(source).digest('hex');
  return { width, height, sha256, ...(parameters && { parameters }) };
}

/** Options the caller left undefined do not override what the picture was made with. */
function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}

/** The settings a picture was made with, which an edit keeps unless told otherwise. */
function inheritedSettings({ parent }: OpenedPicture): Partial<GenerateOptions> {
  const { negativePrompt, steps, guidance, sampler } = parent.parameters ?? {};
  return { negativePrompt, steps, guidance, sampler };
}

async function repaint(
  model: ModelFolder,
  picture: OpenedPicture,
  canvas: Canvas,
  kind: EditKind,
  description: string,
  options: EditOptions,
): Promise<EditResult> {
  const prompt = options.prompt ?? picture.parent.parameters?.prompt;
  if (!prompt) throw invalidInput('This picture carries no prompt in its PNG parameters; give the prompt to paint with.');
  const maskBlurPx = options.maskBlurPx ?? EDIT_DEFAULTS.maskBlurPx;
  const strength = options.strength ?? EDIT_DEFAULTS.inpaintStrength;
  const result = await inpaint(model, {
    ...inheritedSettings(picture),
    ...definedOnly(options),
    seed: options.seed,
    prompt,
    width: canvas.image.width,
    height: canvas.image.height,
    image: rgbToTensor(canvas.image),
    mask: canvas.mask,
    maskBlurPx,
    strength,
  });
  return withLineage(result, { kind, parents: [picture.parent], mask: await maskToPng(canvas.mask), maskBlurPx, denoisingStrength: strength, description });
}

function withLineage(result: GenerateResult, edit: EditLineage): EditResult {
  return { ...result, parameters: result.parameters.map((parameters) => ({ ...parameters, edit: edit.description })), edit };
}
