import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.js';
import { decodedToImages } from '../../src/engine/images.js';
import { fitLatentRgb, latentsToRgbPreview, type LatentRgb } from '../../src/engine/preview.js';
import { createRandom } from '../../src/engine/random.js';
import type { RgbImage } from '../../src/engine/types.js';

const coeffs: LatentRgb = {
  matrix: [
    [0.3, 0.2, 0.1],
    [-0.1, 0.25, 0.05],
    [0.05, -0.2, 0.3],
    [-0.15, 0.1, -0.25],
  ],
  bias: [0.1, -0.05, 0.02],
};

/** Nearest-neighbour enlargement, standing in for a VAE decode that is `factor` times larger. */
const enlarge = (image: RgbImage, factor: number): RgbImage => {
  const width = image.width * factor;
  const height = image.height * factor;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const source = (Math.floor(y / factor) * image.width + Math.floor(x / factor)) * 3;
      data.set(image.data.subarray(source, source + 3), (y * width + x) * 3);
    }
  }
  return { width, height, data };
};

describe('latentsToRgbPreview', () => {
  it('applies the affine map per latent pixel, at latent resolution', () => {
    // Two 1×2 latents with 4 channels, NCHW.
    const latents = Float32Array.of(1, 0, 0, 0, 0, 0, 0, 0, /* second image */ 0, 0, 0, 0, 0, 0, 2, -2);
    const images = latentsToRgbPreview(latents, [2, 4, 1, 2], coeffs);
    expect(images.map((image) => [image.width, image.height])).toEqual([
      [2, 1],
      [2, 1],
    ]);
    const expectByte = (value: number) => Math.round(127.5 * (value + 1));
    // First image, first pixel: bias + row 0.
    expect(Array.from(images[0].data.subarray(0, 3))).toEqual([0.4, 0.15, 0.12].map(expectByte));
    // First image, second pixel: bias only.
    expect(Array.from(images[0].data.subarray(3, 6))).toEqual(coeffs.bias.map(expectByte));
    // Second image: only channel 3 is set, to 2 and −2, so bias ± 2·row 3.
    expect(Array.from(images[1].data.subarray(0, 3))).toEqual([0.1 - 0.3, -0.05 + 0.2, 0.02 - 0.5].map(expectByte));
    expect(Array.from(images[1].data.subarray(3, 6))).toEqual([0.1 + 0.3, -0.05 - 0.2, 0.02 + 0.5].map(expectByte));
  });

  it('clamps colours outside [-1, 1]', () => {
    const [image] = latentsToRgbPreview(Float32Array.of(100, 0, 0, -100), [1, 4, 1, 1], coeffs);
    expect(Array.from(image.data)).toEqual([255, 255, 255]);
  });

  it('refuses coefficients that do not match the latent channels', () => {
    expect(() => latentsToRgbPreview(new Float32Array(3), [1, 3, 1, 1], coeffs)).toThrow(EngineError);
    expect(() => latentsToRgbPreview(new Float32Array(5), [1, 4, 1, 1], coeffs)).toThrow(EngineError);
  });
});

describe('fitLatentRgb', () => {
  const dims = [2, 4, 8, 8];
  const latents = createRandom(5).randn(2 * 4 * 8 * 8).map((value) => value * 0.5);

  it('recovers the coefficients that made the images, from images 8× the latent size', () => {
    const decoded = latentsToRgbPreview(latents, dims, coeffs).map((image) => enlarge(image, 8));
    const fitted = fitLatentRgb(latents, dims, decoded);
    // 8-bit rounding of the images limits the fit to about 1/255 per coefficient.
    fitted.matrix.forEach((row, channel) => row.forEach((value, colour) => expect(Math.abs(value - coeffs.matrix[channel][colour])).toBeLessThan(0.01)));
    fitted.bias.forEach((value, colour) => expect(Math.abs(value - coeffs.bias[colour])).toBeLessThan(0.01));
  });

  it('gives previews that match the decoded images shrunk to latent size', () => {
    const decoded = latentsToRgbPreview(latents, dims, coeffs);
    const previews = latentsToRgbPreview(latents, dims, fitLatentRgb(latents, dims, decoded));
    previews.forEach((preview, n) => preview.data.forEach((byte, i) => expect(Math.abs(byte - decoded[n].data[i])).toBeLessThanOrEqual(1)));
  });

  it('fits even when a latent channel never varies', () => {
    const flat = latents.slice();
    flat.fill(0, 0, 64);
    flat.fill(0, 256, 320);
    const decoded = latentsToRgbPreview(flat, dims, coeffs);
    const fitted = fitLatentRgb(flat, dims, decoded);
    expect(fitted.matrix.flat().every(Number.isFinite)).toBe(true);
  });

  it('refuses images that are not a whole multiple of the latent size, or one per latent', () => {
    const decoded = latentsToRgbPreview(latents, dims, coeffs).map((image) => enlarge(image, 8));
    expect(() => fitLatentRgb(latents, dims, decoded.slice(1))).toThrow(EngineError);
    const odd = { width: 60, height: 60, data: new Uint8Array(60 * 60 * 3) };
    expect(() => fitLatentRgb(latents, dims, [odd, odd])).toThrow(EngineError);
  });
});

describe('fitLatentRgb against a real VAE decoder', () => {
  it("fits tiny-sd's decoder from one 8×8 decode well enough to preview other latents", async () => {
    const folder = join(import.meta.dirname, '..', 'fixtures', 'models', 'tiny-sd', 'vae_decoder');
    const { scaling_factor: scalingFactor } = JSON.parse(readFileSync(join(folder, 'config.json'), 'utf8')) as { scaling_factor: number };
    const session = await ort.InferenceSession.create(join(folder, 'model.onnx'), { intraOpNumThreads: 1 });
    const decode = async (latents: Float32Array, dims: number[]) => {
      const outputs = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', latents.map((v) => v / scalingFactor), dims) });
      const decoded = outputs[session.outputNames[0]];
      return decodedToImages(decoded.data as Float32Array, decoded.dims, 'minus1to1');
    };
    try {
      // As the pipeline does for a folder without coefficients: one decode of seed-0 noise at 8×8 latents.
      const fitDims = [1, 4, 8, 8];
      const fitLatents = createRandom(0).randn(4 * 64);
      const fitted = fitLatentRgb(fitLatents, fitDims, await decode(fitLatents, fitDims));

      const dims = [2, 4, 16, 16];
      const latents = createRandom(9).randn(2 * 4 * 256);
      const decoded = await decode(latents, dims);
      const previews = latentsToRgbPreview(latents, dims, fitted);
      let previewError = 0;
      let greyError = 0;
      // Compare at latent resolution: each decoded image box-averaged over 8×8 blocks.
      decoded.forEach((image, n) => {
        for (let i = 0; i < 256 * 3; i++) {
          const pixel = Math.floor(i / 3);
          const [x, y, colour] = [pixel % 16, Math.floor(pixel / 16), i % 3];
          let sum = 0;
          for (let dy = 0; dy < 8; dy++) for (let dx = 0; dx < 8; dx++) sum += image.data[((y * 8 + dy) * 128 + x * 8 + dx) * 3 + colour];
          previewError += (previews[n].data[i] - sum / 64) ** 2;
          greyError += (128 - sum / 64) ** 2;
        }
      });
      // Measured: RMS error 23 for the fitted preview against 82 for a flat grey one.
      expect(Math.sqrt(previewError / greyError)).toBeLessThan(0.5);
    } finally {
      await session.release();
    }
  });
});
