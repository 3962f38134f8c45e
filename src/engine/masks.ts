import sharp, { type Metadata, type Stats } from 'sharp';
import { invalidInput } from './errors.js';
import { LIMITS, type RegionPreset } from './limits.js';
import { checkRegionInside, type Rectangle, type Region } from './regions.js';

/**
 * Masks say what an edit repaints: 1 = repaint, 0 = keep, soft values in between, one float per pixel, row-major.
 * They come from a picture (white = repaint, or the opacity of painted strokes on a transparent layer, as A1111 reads
 * a sketch), from a region preset, or from a rectangle; the inpainting pipeline softens their edge and shrinks them to
 * latent size.
 */
export interface Mask {
  width: number;
  height: number;
  data: Float32Array;
}

/** The threshold at which a soft mask value counts as repainted (diffusers binarises at 0.5 too). */
const REPAINT_THRESHOLD = 0.5;

/**
 * A region of a `width` × `height` picture, drawn at `target` size (the size the model works at). Halves, the centre
 * (the middle half of each side) and the border (everything outside the centre) are fractions of the picture; a
 * rectangle is in the picture's own pixels and must lie inside it.
 */
export function regionMask(region: Region, picture: { width: number; height: number }, target = picture): Mask {
  const { width, height } = picture;
  let rectangle: Rectangle;
  let inverted = false;
  checkRegionInside(region, picture);
  if ('rectangle' in region) {
    rectangle = region.rectangle;
  } else {
    const half = { width: width / 2, height: height / 2 };
    const quarter = { width: width / 4, height: height / 4 };
    const presets: Record<RegionPreset, Rectangle> = {
      left: { x: 0, y: 0, width: half.width, height },
      right: { x: half.width, y: 0, width: half.width, height },
      top: { x: 0, y: 0, width, height: half.height },
      bottom: { x: 0, y: half.height, width, height: half.height },
      center: { x: quarter.width, y: quarter.height, width: half.width, height: half.height },
      border: { x: quarter.width, y: quarter.height, width: half.width, height: half.height },
    };
    rectangle = presets[region.preset];
    inverted = region.preset === 'border';
  }
  const scaleX = target.width / width;
  const scaleY = target.height / height;
  return rectangleMask(target, scaleRectangle(rectangle, scaleX, scaleY), inverted);
}

/** 1 inside `rectangle` (0 inside it when `inverted`), with edges rounded to whole pixels. */
export function rectangleMask(size: { width: number; height: number }, rectangle: Rectangle, inverted = false): Mask {
  const data = new Float32Array(size.width * size.height).fill(inverted ? 1 : 0);
  const x0 = Math.max(0, Math.round(rectangle.x));
  const y0 = Math.max(0, Math.round(rectangle.y));
  const x1 = Math.min(size.width, Math.round(rectangle.x + rectangle.width));
  const y1 = Math.min(size.height, Math.round(rectangle.y + rectangle.height));
  for (let y = y0; y < y1; y++) data.fill(inverted ? 0 : 1, y * size.width + x0, y * size.width + x1);
  return { width: size.width, height: size.height, data };
}

const scaleRectangle = (r: Rectangle, sx: number, sy: number): Rectangle => ({ x: r.x * sx, y: r.y * sy, width: r.width * sx, height: r.height * sy });

/**
 * A mask from an image file, for a `picture`-sized image, drawn at `target` size. Its aspect ratio must be the
 * picture's (any resolution); a mask with transparency is read from its alpha channel (painted = repaint), any other
 * from its brightness (white = repaint).
 */
export async function maskFromImage(bytes: Buffer, picture: { width: number; height: number }, target = picture): Promise<Mask> {
  let metadata: Metadata;
  let stats: Stats;
  try {
    metadata = await sharp(bytes).metadata();
    stats = await sharp(bytes).stats();
  } catch {
    throw invalidInput('The mask is not an image sharp can read: send a PNG (white where the picture should change, black elsewhere).');
  }
  const { width = 0, height = 0 } = metadata;
  // One pixel of rounding either way is the same shape (a 64x43 mask for a 96x64 picture).
  if (Math.abs(width * picture.height - height * picture.width) > Math.max(picture.width, picture.height, width, height)) {
    throw invalidInput(
      `The mask is ${width}x${height} but the picture is ${picture.width}x${picture.height}: draw the mask at the picture's size (or the same aspect ratio).`,
    );
  }
  const alpha = metadata.hasAlpha ? stats.channels[stats.channels.length - 1] : undefined;
  const fromAlpha = alpha !== undefined && alpha.min < 255;
  const image = sharp(bytes).resize(target.width, target.height, { fit: 'fill', kernel: 'linear' });
  const raw = fromAlpha
    ? await image.ensureAlpha().extractChannel('alpha').raw().toBuffer()
    : await image.flatten({ background: '#000000' }).greyscale().raw().toBuffer();
  const data = new Float32Array(target.width * target.height);
  for (let i = 0; i < data.length; i++) data[i] = raw[i] / 255;
  return { width: target.width, height: target.height, data };
}

/** Refuses a mask that leaves nothing to repaint or repaints everything, saying what to do instead. */
export function checkCoverage(mask: Mask): void {
  let repainted = 0;
  for (const value of mask.data) if (value >= REPAINT_THRESHOLD) repainted++;
  if (repainted === 0) {
    throw invalidInput('The mask is empty, so nothing would change: paint white (or opaque) where the picture should be redrawn.');
  }
  if (repainted === mask.data.length) {
    throw invalidInput('The mask covers the whole picture: to redraw all of it, use Vary instead; to change part of it, leave some of the mask black.');
  }
}

/** A soft edge: a Gaussian blur with σ = `sigmaPx` (A1111's "Mask blur"), clamped at the picture's edges. */
export function blurMask(mask: Mask, sigmaPx: number): Mask {
  if (!Number.isInteger(sigmaPx) || sigmaPx < LIMITS.maskBlurPx.min || sigmaPx > LIMITS.maskBlurPx.max) {
    throw invalidInput(`The mask blur must be a whole number of pixels from ${LIMITS.maskBlurPx.min} to ${LIMITS.maskBlurPx.max}; got ${sigmaPx}.`);
  }
  if (sigmaPx === 0) return mask;
  const radius = Math.ceil(3 * sigmaPx);
  const kernel = Float32Array.from({ length: 2 * radius + 1 }, (_, i) => Math.exp(-((i - radius) ** 2) / (2 * sigmaPx * sigmaPx)));
  const total = kernel.reduce((sum, value) => sum + value, 0);
  for (let i = 0; i < kernel.length; i++) kernel[i] /= total;
  const { width, height } = mask;
  const pass = (source: Float32Array, horizontal: boolean) => {
    const out = new Float32Array(source.length);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        let sum = 0;
        for (let k = -radius; k <= radius; k++) {
          const sx = horizontal ? Math.min(width - 1, Math.max(0, x + k)) : x;
          const sy = horizontal ? y : Math.min(height - 1, Math.max(0, y + k));
          sum += kernel[k + radius] * source[sy * width + sx];
        }
        out[y * width + x] = sum;
      }
    }
    return out;
  };
  return { width, height, data: pass(pass(mask.data, true), false) };
}

/** Each `factor` × `factor` block's mean: the share of a latent cell that is repainted. */
export function latentMask(mask: Mask, factor: number): Float32Array {
  const width = mask.width / factor;
  const height = mask.height / factor;
  if (!Number.isInteger(width) || !Number.isInteger(height)) {
    throw invalidInput(`A ${mask.width}x${mask.height} mask does not divide into ${factor}-pixel latent cells.`);
  }
  const out = new Float32Array(width * height);
  for (let y = 0; y < mask.height; y++) {
    for (let x = 0; x < mask.width; x++) out[Math.floor(y / factor) * width + Math.floor(x / factor)] += mask.data[y * mask.width + x];
  }
  return out.map((sum) => sum / (factor * factor));
}

/** 1 where the mask repaints, 0 elsewhere. */
export function binarize(mask: Mask): Mask {
  return { ...mask, data: mask.data.map((value) => (value >= REPAINT_THRESHOLD ? 1 : 0)) };
}

/** A greyscale PNG of the mask (white = repainted), for storing beside the result. */
export async function maskToPng(mask: Mask): Promise<Buffer> {
  const bytes = Buffer.from(Uint8Array.from(mask.data, (value) => Math.round(255 * Math.min(1, Math.max(0, value)))));
  return sharp(bytes, { raw: { width: mask.width, height: mask.height, channels: 1 } })
    .toColourspace('b-w')
    .png({ compressionLevel: 6, adaptiveFiltering: false, palette: false })
    .toBuffer();
}
