import { describe, expect, it } from 'vitest';
import { ImagineError } from '../../src/core/errors.js';
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
    expect(() => latentsToRgbPreview(new Float32Array(3), [1, 3, 1, 1], coeffs)).toThrow(ImagineError);
    expect(() => latentsToRgbPreview(new Float32Array(5), [1, 4, 1, 1], coeffs)).toThrow(ImagineError);
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
    expect(() => fitLatentRgb(latents, dims, decoded.slice(1))).toThrow(ImagineError);
    const odd = { width: 60, height: 60, data: new Uint8Array(60 * 60 * 3) };
    expect(() => fitLatentRgb(latents, dims, [odd, odd])).toThrow(ImagineError);
  });
});
