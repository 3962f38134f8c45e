import { invalidInput } from '../errors.js';
import type { ModelLimits } from './chat-config.js';

export interface ImageSize {
  width: number;
  height: number;
}

/** Beyond this, latent models trained on near-square images repeat subjects; Midjourney draws the line in the same place. */
const MAX_ASPECT_RATIO = 4;

export function parseAspectRatio(text: string): { w: number; h: number } {
  const match = /^(\d{1,3}):(\d{1,3})$/.exec(text.trim());
  const w = match ? Number(match[1]) : 0;
  const h = match ? Number(match[2]) : 0;
  if (!match || w === 0 || h === 0) {
    throw invalidInput(`"${text}" is not an aspect ratio; write it as W:H, for example 16:9.`);
  }
  if (Math.max(w / h, h / w) > MAX_ASPECT_RATIO) {
    throw invalidInput(`Aspect ratio ${w}:${h} is too extreme; keep it between 1:${MAX_ASPECT_RATIO} and ${MAX_ASPECT_RATIO}:1.`);
  }
  return { w, h };
}

/**
 * The size with the model's base pixel count and the requested shape: width/height = w/h and width × height ≈
 * baseWidth × baseHeight, each side rounded to the nearest multiple of `sizeMultiple` (at least one multiple), so
 * 16:9 on a 512×512 model gives 680×384.
 */
export function sizeForAspectRatio(ratio: { w: number; h: number }, model: ModelLimits): ImageSize {
  if (model.sizes) return listedSizeOfRatio(ratio, model, model.sizes);
  if (model.aspectBuckets) return nearestBucket(ratio, model.aspectBuckets);
  const basePixels = model.baseWidth * model.baseHeight;
  const exactWidth = Math.sqrt((basePixels * ratio.w) / ratio.h);
  const exactHeight = (exactWidth * ratio.h) / ratio.w;
  const roundToMultiple = (side: number) => Math.max(model.sizeMultiple, Math.round(side / model.sizeMultiple) * model.sizeMultiple);
  const size = { width: roundToMultiple(exactWidth), height: roundToMultiple(exactHeight) };
  checkSize(size, model);
  return size;
}

/** The trained size whose shape is closest to the ratio (by |log aspect|, so 2:1 and 1:2 are equally far from 1:1). */
function nearestBucket(ratio: { w: number; h: number }, buckets: readonly (readonly [number, number])[]): ImageSize {
  const distance = ([width, height]: readonly [number, number]) => Math.abs(Math.log(width / height) - Math.log(ratio.w / ratio.h));
  const [width, height] = buckets.reduce((best, bucket) => (distance(bucket) < distance(best) ? bucket : best));
  return { width, height };
}

/**
 * A model that makes a few sizes only: the listed size of exactly this shape nearest the base pixel count, or a refusal
 * that says what to change — anything else would come out as noise, and the user would learn it only after queueing.
 */
function listedSizeOfRatio(ratio: { w: number; h: number }, model: ModelLimits, sizes: readonly (readonly [number, number])[]): ImageSize {
  const basePixels = model.baseWidth * model.baseHeight;
  const sameShape = sizes
    .filter(([width, height]) => width * ratio.h === height * ratio.w)
    .sort(([w1, h1], [w2, h2]) => Math.abs(w1 * h1 - basePixels) - Math.abs(w2 * h2 - basePixels));
  if (sameShape.length > 0) return { width: sameShape[0][0], height: sameShape[0][1] };
  const ratios = supportedAspectRatios(model) ?? [];
  const instead = ratios.length > 1 ? `, use one of ${ratios.map((text) => `--ar ${text}`).join(', ')}` : '';
  throw invalidInput(`${model.name} makes ${sizesText(sizes)} only — remove \`--ar ${ratio.w}:${ratio.h}\`${instead}, or pick a model that supports it`);
}

const sizesText = (sizes: readonly (readonly [number, number])[]) => sizes.map(([width, height]) => `${width}×${height}`).join(', ');

const greatestCommonDivisor = (a: number, b: number): number => (b === 0 ? a : greatestCommonDivisor(b, a % b));

/** The aspect ratios (`W:H`, lowest terms) a model that lists its sizes makes; null when it takes any ratio. */
export function supportedAspectRatios(model: ModelLimits): string[] | null {
  if (!model.sizes) return null;
  const ratios = model.sizes.map(([width, height]) => {
    const divisor = greatestCommonDivisor(width, height);
    return `${width / divisor}:${height / divisor}`;
  });
  return [...new Set(ratios)];
}

/** A size the user typed (`768x512`): checked, never corrected. */
export function parseSize(text: string, model: ModelLimits): ImageSize {
  const match = /^(\d{1,5})\s*[x×]\s*(\d{1,5})$/i.exec(text.trim());
  if (!match) {
    throw invalidInput(`"${text}" is not a size; write it as WIDTHxHEIGHT, for example ${model.baseWidth}x${model.baseHeight}.`);
  }
  const size = { width: Number(match[1]), height: Number(match[2]) };
  if (model.sizes && !model.sizes.some(([width, height]) => width === size.width && height === size.height)) {
    throw invalidInput(`${model.name} makes ${sizesText(model.sizes)} only — ask for one of those sizes, or pick a model that supports ${size.width}×${size.height}`);
  }
  checkSize(size, model);
  return size;
}

function checkSize(size: ImageSize, model: ModelLimits): void {
  const { width, height } = size;
  if (width % model.sizeMultiple !== 0 || height % model.sizeMultiple !== 0) {
    throw invalidInput(`${width}x${height} does not fit ${model.name}: width and height must be multiples of ${model.sizeMultiple}.`);
  }
  if (width > model.maxSide || height > model.maxSide || width < model.sizeMultiple || height < model.sizeMultiple) {
    throw invalidInput(`${width}x${height} does not fit ${model.name}: each side must be between ${model.sizeMultiple} and ${model.maxSide}.`);
  }
}
