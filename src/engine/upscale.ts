import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { invalidInput, modelFailure } from './errors.js';
import type { RgbImage } from './types.js';

/**
 * 4× upscaling. With an ESRGAN-format ONNX model ([1, 3, h, w] in [0, 1] → [1, 3, 4h, 4w]) the image is cut into
 * overlapping tiles, so the model's activations stay the size of one tile whatever the image size; overlaps are
 * blended with linear ramps so no seam shows. Tiles are run one tile-row at a time and finished output rows are written
 * out as soon as no later tile touches them, so the float accumulator holds only one tile-row of output. Without a
 * model, sharp's Lanczos3.
 */

export const UPSCALE_FACTOR = 4;
const DEFAULT_TILE_PX = 128;
const DEFAULT_OVERLAP_PX = 16;

export interface UpscaleOptions {
  /** Side of the square tiles fed to the model, in input pixels. */
  tileSize?: number;
  /** Overlap between neighbouring tiles, in input pixels; blended linearly. */
  overlapPx?: number;
}

export async function upscaleImage(
  img: RgbImage,
  upscaler: ort.InferenceSession | null,
  options: UpscaleOptions = {},
): Promise<{ image: RgbImage; method: 'model' | 'lanczos'; scale: 4 }> {
  if (img.data.length !== img.width * img.height * 3 || img.width < 1 || img.height < 1) {
    throw invalidInput(`An RGB image of ${img.width}x${img.height} needs ${img.width * img.height * 3} bytes, not ${img.data.length}.`);
  }
  if (!upscaler) return { image: await lanczosUpscale(img), method: 'lanczos', scale: UPSCALE_FACTOR };
  const { tileSize = DEFAULT_TILE_PX, overlapPx = DEFAULT_OVERLAP_PX } = options;
  if (!Number.isInteger(tileSize) || tileSize < 1) throw invalidInput(`The upscale tile size must be a positive whole number of pixels (got ${tileSize}).`);
  if (!Number.isInteger(overlapPx) || overlapPx < 0 || overlapPx >= tileSize) {
    throw invalidInput(`The upscale tile overlap must be a whole number of pixels from 0 to ${tileSize - 1} (got ${overlapPx}).`);
  }
  return { image: await tiledUpscale(img, upscaler, tileSize, overlapPx), method: 'model', scale: UPSCALE_FACTOR };
}

async function lanczosUpscale(img: RgbImage): Promise<RgbImage> {
  const width = img.width * UPSCALE_FACTOR;
  const height = img.height * UPSCALE_FACTOR;
  const data = await sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), {
    raw: { width: img.width, height: img.height, channels: 3 },
  })
    .resize(width, height, { kernel: 'lanczos3', fit: 'fill' })
    .raw()
    .toBuffer();
  return { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/** Tile origins along one axis: every `tileSize − overlapPx`, the last one flush with the far edge. */
export function tileStarts(length: number, tileSize: number, overlapPx: number): number[] {
  if (length <= tileSize) return [0];
  const starts: number[] = [];
  for (let start = 0; start + tileSize < length; start += tileSize - overlapPx) starts.push(start);
  starts.push(length - tileSize);
  return starts;
}

async function tiledUpscale(img: RgbImage, session: ort.InferenceSession, tileSize: number, overlapPx: number): Promise<RgbImage> {
  const tileWidth = Math.min(tileSize, img.width);
  const tileHeight = Math.min(tileSize, img.height);
  const xStarts = tileStarts(img.width, tileSize, overlapPx);
  const yStarts = tileStarts(img.height, tileSize, overlapPx);
  const outWidth = img.width * UPSCALE_FACTOR;
  const outHeight = img.height * UPSCALE_FACTOR;
  const rampPx = overlapPx * UPSCALE_FACTOR;
  const out = new Uint8Array(outWidth * outHeight * 3);

  // Output rows [accumulatorTop, accumulatorTop + capacityRows) as weighted sums and weights.
  const capacityRows = tileHeight * UPSCALE_FACTOR;
  const sums = new Float32Array(capacityRows * outWidth * 3);
  const weights = new Float32Array(capacityRows * outWidth);
  let accumulatorTop = 0;
  const finishRowsBefore = (row: number) => {
    const count = row - accumulatorTop;
    for (let i = 0; i < count * outWidth; i++) {
      for (let colour = 0; colour < 3; colour++) {
        const value = sums[i * 3 + colour] / weights[i];
        out[(accumulatorTop * outWidth + i) * 3 + colour] = Math.round(255 * (value < 0 ? 0 : value > 1 ? 1 : value));
      }
    }
    sums.copyWithin(0, count * outWidth * 3).fill(0, (capacityRows - count) * outWidth * 3);
    weights.copyWithin(0, count * outWidth).fill(0, (capacityRows - count) * outWidth);
    accumulatorTop = row;
  };

  for (const [row, y0] of yStarts.entries()) {
    finishRowsBefore(y0 * UPSCALE_FACTOR);
    const yWeights = rampWeights(tileHeight * UPSCALE_FACTOR, rampPx, row > 0, row < yStarts.length - 1);
    for (const [column, x0] of xStarts.entries()) {
      const xWeights = rampWeights(tileWidth * UPSCALE_FACTOR, rampPx, column > 0, column < xStarts.length - 1);
      const tile = await runTile(session, cropTile(img, x0, y0, tileWidth, tileHeight), tileWidth, tileHeight);
      const tileOutWidth = tileWidth * UPSCALE_FACTOR;
      const plane = tileOutWidth * tileHeight * UPSCALE_FACTOR;
      for (let ty = 0; ty < tileHeight * UPSCALE_FACTOR; ty++) {
        for (let tx = 0; tx < tileOutWidth; tx++) {
          const weight = yWeights[ty] * xWeights[tx];
          const target = ty * outWidth + x0 * UPSCALE_FACTOR + tx;
          weights[target] += weight;
          for (let colour = 0; colour < 3; colour++) sums[target * 3 + colour] += weight * tile[colour * plane + ty * tileOutWidth + tx];
        }
      }
    }
  }
  finishRowsBefore(outHeight);
  return { width: outWidth, height: outHeight, data: out };
}

/** Per-pixel blend weights along one tile axis: ramps up from an edge shared with an earlier tile, down to a later one. */
function rampWeights(length: number, rampPx: number, rampStart: boolean, rampEnd: boolean): Float32Array {
  const weights = new Float32Array(length).fill(1);
  if (rampPx === 0) return weights;
  for (let i = 0; i < length; i++) {
    if (rampStart) weights[i] = Math.min(weights[i], (i + 0.5) / rampPx);
    if (rampEnd) weights[i] = Math.min(weights[i], (length - i - 0.5) / rampPx);
  }
  return weights;
}

/** [1, 3, height, width] float32 in [0, 1] from a region of the image. */
function cropTile(img: RgbImage, x0: number, y0: number, width: number, height: number): Float32Array {
  const plane = width * height;
  const tile = new Float32Array(plane * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const source = ((y0 + y) * img.width + x0 + x) * 3;
      for (let colour = 0; colour < 3; colour++) tile[colour * plane + y * width + x] = img.data[source + colour] / 255;
    }
  }
  return tile;
}

async function runTile(session: ort.InferenceSession, tile: Float32Array, width: number, height: number): Promise<Float32Array> {
  const [inputName] = session.inputNames;
  const [outputName] = session.outputNames;
  const outputs = await session.run({ [inputName]: new ort.Tensor('float32', tile, [1, 3, height, width]) });
  const output = outputs[outputName];
  const expected = [1, 3, height * UPSCALE_FACTOR, width * UPSCALE_FACTOR];
  if (output.type !== 'float32' || output.dims.join() !== expected.join()) {
    throw modelFailure(
      `The upscaler returned a ${output.type} [${output.dims.join(', ')}] tensor for a ${width}x${height} tile; a 4× upscaler must return float32 [${expected.join(', ')}].`,
    );
  }
  return output.data as Float32Array;
}
