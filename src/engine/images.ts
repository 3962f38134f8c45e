import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { invalidInput, modelFailure } from './errors.js';
import { LIMITS } from './limits.js';
import { withTextChunk } from './png-text.js';
import type { RgbImage } from './types.js';

/** Images in and out of the engine: model tensors ↔ 8-bit RGB, PNG/WebP encoding, grids, and init images. */

export const MAX_IMAGE_FILE_BYTES = LIMITS.imageFileBytes;
/** sharp's own default decompression-bomb limit (16383 × 16383), stated so the error can name it. */
const MAX_INPUT_PIXELS = 268_402_689;
const NOT_AN_IMAGE = 'is not an image sharp can read (PNG, JPEG, WebP, …)';

/**
 * NCHW float images (N × 3 × H × W) to 8-bit RGB: from [-1, 1] (a VAE decoder) or [0, 1] (TAESD), clamped and rounded
 * as diffusers' `(x / 2 + 0.5).clamp(0, 1) * 255` then round.
 */
export function decodedToImages(data: Float32Array, dims: readonly number[], range: 'minus1to1' | 'zero1'): RgbImage[] {
  const [count, channels, height, width] = dims;
  if (dims.length !== 4 || channels !== 3 || data.length !== count * channels * height * width) {
    throw modelFailure(`The decoder returned a tensor of shape [${dims.join(', ')}] with ${data.length} values; expected [batch, 3, height, width].`);
  }
  const plane = width * height;
  return Array.from({ length: count }, (_, n) => {
    const rgb = new Uint8Array(plane * 3);
    const offset = n * 3 * plane;
    for (let channel = 0; channel < 3; channel++) {
      for (let pixel = 0; pixel < plane; pixel++) {
        const value = data[offset + channel * plane + pixel];
        const unit = range === 'minus1to1' ? value / 2 + 0.5 : value;
        // NaN fails both comparisons and becomes 0 through the Uint8Array store.
        rgb[pixel * 3 + channel] = Math.round(255 * (unit < 0 ? 0 : unit > 1 ? 1 : unit));
      }
    }
    return { width, height, data: rgb };
  });
}

/** PNG with fixed encoder settings (same pixels → same bytes), carrying A1111 `parameters` when given. */
export async function encodePng(img: RgbImage, parameters?: string): Promise<Buffer> {
  const png = await rawImage(img).png({ compressionLevel: 6, adaptiveFiltering: false, palette: false }).toBuffer();
  return parameters === undefined ? png : withTextChunk(png, 'parameters', parameters);
}

/** A small WebP for progress previews, fitted inside maxSide × maxSide (enlarged only when asked). */
export async function encodeWebp(
  img: RgbImage,
  options: {
    maxSide?: number;
    quality?: number;
    /** Also scale small images up to maxSide, with nearest-neighbour (latent-size previews: cheap and honest). */
    enlarge?: boolean;
    /** libwebp's effort 0–6: previews are thrown away a second later, so they use 0 (a third of the time of 4). */
    effort?: number;
  } = {},
): Promise<Buffer> {
  const { maxSide, quality = 80, enlarge = false, effort = 4 } = options;
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) throw invalidInput(`WebP quality must be a whole number from 1 to 100 (got ${quality}).`);
  if (maxSide !== undefined && !(Number.isInteger(maxSide) && maxSide > 0)) throw invalidInput(`maxSide must be a positive whole number of pixels (got ${maxSide}).`);
  let pipeline = rawImage(img);
  if (maxSide !== undefined) {
    pipeline = pipeline.resize(maxSide, maxSide, { fit: 'inside', withoutEnlargement: !enlarge, ...(enlarge && { kernel: 'nearest' as const }) });
  }
  return pipeline.webp({ quality, effort }).toBuffer();
}

/**
 * Tiles same-size images edge to edge, no gaps (as A1111's grids): ⌈√n⌉ columns and as many rows as needed, so 2 → 1×2,
 * 3 and 4 → 2×2, 6 → 2×3, 9 → 3×3. Empty cells of the last row stay black.
 */
export function makeGrid(images: RgbImage[]): RgbImage {
  if (images.length === 0) throw invalidInput('A grid needs at least one image.');
  const [{ width, height }] = images;
  if (images.some((image) => image.width !== width || image.height !== height)) {
    throw invalidInput('All images of a grid must have the same size.');
  }
  images.forEach(assertRgbImage);
  const columns = Math.ceil(Math.sqrt(images.length));
  const rows = Math.ceil(images.length / columns);
  const gridWidth = columns * width;
  const data = new Uint8Array(gridWidth * rows * height * 3);
  images.forEach((image, k) => {
    const left = (k % columns) * width;
    const top = Math.floor(k / columns) * height;
    for (let y = 0; y < height; y++) {
      data.set(image.data.subarray(y * width * 3, (y + 1) * width * 3), ((top + y) * gridWidth + left) * 3);
    }
  });
  return { width: gridWidth, height: rows * height, data };
}

/**
 * An init image for image-to-image: any format sharp reads, EXIF orientation applied, transparency flattened onto white
 * (emoji and logos are drawn on transparent backgrounds, and white is what a viewer shows them on), then scaled to
 * cover `width` × `height` and centre-cropped. The tensor is [1, 3, height, width] in [-1, 1].
 */
export async function loadImageFile(
  source: string | Buffer,
  size: { width: number; height: number },
): Promise<{ rgb: RgbImage; tensor: Float32Array }> {
  const { width, height } = size;
  if (![width, height].every((side) => Number.isInteger(side) && side > 0)) {
    throw invalidInput(`The target size must be whole, positive pixels (got ${width}x${height}).`);
  }
  const name = typeof source === 'string' ? basename(source) : 'That file';
  const bytes = typeof source === 'string' ? await readImageFile(source) : source;
  if (bytes.length > MAX_IMAGE_FILE_BYTES) throw tooLarge(name, bytes.length);

  let pixels: number;
  try {
    const metadata = await sharp(bytes).metadata();
    pixels = (metadata.width ?? 0) * (metadata.height ?? 0);
  } catch {
    throw invalidInput(`${name} ${NOT_AN_IMAGE}.`);
  }
  if (pixels > MAX_INPUT_PIXELS) {
    throw invalidInput(`${name} has ${pixels} pixels; images over ${MAX_INPUT_PIXELS} pixels are refused — send a smaller one.`);
  }

  let data: Buffer;
  try {
    data = await sharp(bytes)
      .rotate()
      .flatten({ background: '#ffffff' })
      .resize(width, height, { fit: 'cover', position: 'centre', kernel: 'lanczos3' })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer();
  } catch {
    throw invalidInput(`${name} ${NOT_AN_IMAGE}.`);
  }
  const rgb: RgbImage = { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  assertRgbImage(rgb);
  return { rgb, tensor: rgbToTensor(rgb) };
}

/** The size an image file shows at (EXIF orientation applied), or an error saying it is not an image. */
export async function readImageSize(bytes: Buffer, name = 'That file'): Promise<{ width: number; height: number }> {
  try {
    const { autoOrient } = await sharp(bytes).metadata();
    if (!autoOrient.width || !autoOrient.height) throw new Error('no size');
    return { width: autoOrient.width, height: autoOrient.height };
  } catch {
    throw invalidInput(`${name} ${NOT_AN_IMAGE}.`);
  }
}

async function readImageFile(path: string): Promise<Buffer> {
  const stats = await stat(path).catch((error: NodeJS.ErrnoException) => {
    throw error.code === 'ENOENT' ? invalidInput(`There is no file at ${path}.`) : error;
  });
  if (!stats.isFile()) throw invalidInput(`${path} is not a file; give the path of an image file.`);
  // Checked before reading, so a huge upload is never loaded into memory.
  if (stats.size > MAX_IMAGE_FILE_BYTES) throw tooLarge(basename(path), stats.size);
  return readFile(path);
}

/** Interleaved 8-bit RGB to NCHW [1, 3, H, W] in [-1, 1]. */
export function rgbToTensor(img: RgbImage): Float32Array {
  const plane = img.width * img.height;
  const tensor = new Float32Array(plane * 3);
  for (let pixel = 0; pixel < plane; pixel++) {
    for (let channel = 0; channel < 3; channel++) tensor[channel * plane + pixel] = img.data[pixel * 3 + channel] / 127.5 - 1;
  }
  return tensor;
}

function rawImage(img: RgbImage): Sharp {
  assertRgbImage(img);
  const data = Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  return sharp(data, { raw: { width: img.width, height: img.height, channels: 3 } });
}

function assertRgbImage(img: RgbImage): void {
  if (!(Number.isInteger(img.width) && img.width > 0 && Number.isInteger(img.height) && img.height > 0) || img.data.length !== img.width * img.height * 3) {
    throw invalidInput(`An RGB image of ${img.width}x${img.height} needs ${img.width * img.height * 3} bytes, not ${img.data.length}.`);
  }
}

function tooLarge(name: string, bytes: number) {
  const megabytes = (bytes / (1024 * 1024)).toFixed(1);
  return invalidInput(`${name} is ${megabytes} MB; images over ${MAX_IMAGE_FILE_BYTES / (1024 * 1024)} MB are refused — send a smaller or more compressed file.`);
}
