import { invalidInput } from './errors.js';
import type { RgbImage } from './types.js';

/**
 * Cheap progress previews: each latent pixel maps to an RGB pixel by one affine map (A1111's "Approx cheap" preview,
 * ComfyUI's latent_rgb_factors), so a preview costs a few multiply-adds per latent pixel and never runs the VAE. The
 * preview is at latent resolution (1/8 of the image's side for SD-style VAEs).
 *
 * Coefficients come from a model folder's imagine.json. A folder without them gets `fitLatentRgb`: the pipeline decodes
 * one small batch of latents with the real VAE once per loaded model and fits the map by least squares against the
 * decoded image shrunk to latent size; every later preview uses the fit.
 */

/** One [r, g, b] row per latent channel, and an [r, g, b] bias; RGB comes out in [-1, 1]. */
export interface LatentRgb {
  matrix: number[][];
  bias: number[];
}

/** Latents [N, C, H, W] (x̂0, already in UNet space) to N RGB images of H × W. */
export function latentsToRgbPreview(latents: Float32Array, dims: readonly number[], coeffs: LatentRgb): RgbImage[] {
  const [count, channels, height, width] = assertLatentDims(latents, dims);
  if (coeffs.matrix.length !== channels || coeffs.matrix.some((row) => row.length !== 3) || coeffs.bias.length !== 3) {
    throw invalidInput(`Preview coefficients need one [r, g, b] row per latent channel (${channels}) and an [r, g, b] bias.`);
  }
  const plane = width * height;
  return Array.from({ length: count }, (_, n) => {
    const data = new Uint8Array(plane * 3);
    for (let pixel = 0; pixel < plane; pixel++) {
      for (let colour = 0; colour < 3; colour++) {
        let value = coeffs.bias[colour];
        for (let channel = 0; channel < channels; channel++) {
          value += latents[(n * channels + channel) * plane + pixel] * coeffs.matrix[channel][colour];
        }
        data[pixel * 3 + colour] = Math.round(127.5 * (Math.min(1, Math.max(-1, value)) + 1));
      }
    }
    return { width, height, data };
  });
}

/**
 * Least-squares latent → RGB coefficients from latents [N, C, H, W] and the N images the VAE decoded from them (any
 * whole multiple of the latent size; each is box-averaged down to H × W first).
 */
export function fitLatentRgb(latents: Float32Array, dims: readonly number[], images: RgbImage[]): LatentRgb {
  const [count, channels, height, width] = assertLatentDims(latents, dims);
  if (images.length !== count) throw invalidInput(`Fitting preview coefficients needs one decoded image per latent (${count}), not ${images.length}.`);
  const factor = images[0].width / width;
  if (!Number.isInteger(factor) || images.some((image) => image.width !== width * factor || image.height !== height * factor)) {
    throw invalidInput(`Decoded images must all be a whole multiple of the ${width}x${height} latent size.`);
  }
  const unknowns = channels + 1;
  if (count * width * height < unknowns) {
    throw invalidInput(`Fitting ${unknowns} preview coefficients needs at least ${unknowns} latent pixels.`);
  }

  // Normal equations (XᵀX) β = XᵀY with rows x = [latent channels…, 1] and y = [r, g, b] in [-1, 1].
  const gram = Array.from({ length: unknowns }, () => new Array<number>(unknowns).fill(0));
  const moment = Array.from({ length: unknowns }, () => [0, 0, 0]);
  const plane = width * height;
  const x = new Array<number>(unknowns).fill(1);
  images.forEach((image, n) => {
    const small = boxDownsample(image, factor);
    for (let pixel = 0; pixel < plane; pixel++) {
      for (let channel = 0; channel < channels; channel++) x[channel] = latents[(n * channels + channel) * plane + pixel];
      for (let i = 0; i < unknowns; i++) {
        for (let j = 0; j < unknowns; j++) gram[i][j] += x[i] * x[j];
        for (let colour = 0; colour < 3; colour++) moment[i][colour] += x[i] * (small[pixel * 3 + colour] / 127.5 - 1);
      }
    }
  });
  // A tiny ridge keeps the system solvable when a latent channel is constant in the sample.
  const ridge = 1e-9 * gram.reduce((sum, row, i) => sum + row[i], 0);
  for (let i = 0; i < unknowns; i++) gram[i][i] += ridge;
  const solution = solveLinear(gram, moment);
  return { matrix: solution.slice(0, channels), bias: solution[channels] };
}

function assertLatentDims(latents: Float32Array, dims: readonly number[]): [number, number, number, number] {
  const [count, channels, height, width] = dims;
  if (dims.length !== 4 || latents.length !== count * channels * height * width || latents.length === 0) {
    throw invalidInput(`Latents of shape [${dims.join(', ')}] cannot hold ${latents.length} values; expected [batch, channels, height, width].`);
  }
  return [count, channels, height, width];
}

/** Mean of each factor × factor block, as float RGB interleaved. */
function boxDownsample(image: RgbImage, factor: number): Float64Array {
  const width = image.width / factor;
  const height = image.height / factor;
  const out = new Float64Array(width * height * 3);
  for (let y = 0; y < image.height; y++) {
    for (let x = 0; x < image.width; x++) {
      const target = (Math.floor(y / factor) * width + Math.floor(x / factor)) * 3;
      for (let colour = 0; colour < 3; colour++) out[target + colour] += image.data[(y * image.width + x) * 3 + colour];
    }
  }
  return out.map((sum) => sum / (factor * factor));
}

/** Gaussian elimination with partial pivoting for A X = B (A square, B with several columns). */
function solveLinear(a: number[][], b: number[][]): number[][] {
  const size = a.length;
  const m = a.map((row, i) => [...row, ...b[i]]);
  for (let col = 0; col < size; col++) {
    let pivot = col;
    for (let row = col + 1; row < size; row++) if (Math.abs(m[row][col]) > Math.abs(m[pivot][col])) pivot = row;
    if (m[pivot][col] === 0) throw invalidInput('Preview coefficients cannot be fitted from these latents and images.');
    [m[col], m[pivot]] = [m[pivot], m[col]];
    for (let row = 0; row < size; row++) {
      if (row === col) continue;
      const scale = m[row][col] / m[col][col];
      for (let k = col; k < m[row].length; k++) m[row][k] -= scale * m[col][k];
    }
  }
  return m.map((row, i) => row.slice(size).map((value) => value / m[i][i]));
}
