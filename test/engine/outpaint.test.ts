import { describe, expect, it } from 'vitest';
import { panCanvas, zoomOutCanvas } from '../../src/engine/outpaint.js';
import type { RgbImage } from '../../src/engine/types.js';

/** A 64×64 picture whose red channel is x × 4 and green channel y × 4, so every pixel says where it came from. */
const gradient: RgbImage = {
  width: 64,
  height: 64,
  data: Uint8Array.from({ length: 64 * 64 * 3 }, (_, i) => {
    const pixel = Math.floor(i / 3);
    return [(pixel % 64) * 4, Math.floor(pixel / 64) * 4, 100][i % 3];
  }),
};
const at = (image: RgbImage, x: number, y: number) => Array.from(image.data.subarray((y * image.width + x) * 3, (y * image.width + x) * 3 + 3));
const maskAt = (mask: { width: number; data: Float32Array }, x: number, y: number) => mask.data[y * mask.width + x];

describe('Zoom Out canvas', () => {
  it('puts the picture, shrunk by the factor, in the centre of a canvas of its size and masks the border', async () => {
    const { image, mask } = await zoomOutCanvas(gradient, 2);
    expect(image).toMatchObject({ width: 64, height: 64 });
    expect([maskAt(mask, 15, 32), maskAt(mask, 16, 32), maskAt(mask, 47, 32), maskAt(mask, 48, 32)]).toEqual([1, 0, 0, 1]);
    expect([maskAt(mask, 32, 15), maskAt(mask, 32, 16), maskAt(mask, 32, 47), maskAt(mask, 32, 48)]).toEqual([1, 0, 0, 1]);
    // The top-left of the picture lands at (16, 16); its middle stays in the middle.
    expect(at(image, 16, 16)[0]).toBeLessThan(12);
    expect(at(image, 32, 32)[0]).toBeGreaterThan(120);
    expect(at(image, 32, 32)[0]).toBeLessThan(136);
  });

  it('fills the new border with the picture’s edge pixels stretched outwards', async () => {
    const { image } = await zoomOutCanvas(gradient, 2);
    expect(at(image, 0, 32)).toEqual(at(image, 16, 32));
    expect(at(image, 63, 32)).toEqual(at(image, 47, 32));
  });
});

describe('Pan canvas', () => {
  it('grows the canvas on the panned side and masks only the new strip', async () => {
    const { image, mask } = await panCanvas(gradient, 'left', { width: 96, height: 64, mode: 'grow', newPx: 32 });
    expect(image).toMatchObject({ width: 96, height: 64 });
    expect([maskAt(mask, 31, 10), maskAt(mask, 32, 10)]).toEqual([1, 0]);
    expect(at(image, 32, 10)).toEqual(at(gradient, 0, 10));
    expect(at(image, 95, 63)).toEqual(at(gradient, 63, 63));
  });

  it('grows downwards below the picture', async () => {
    const { image, mask } = await panCanvas(gradient, 'down', { width: 64, height: 128, mode: 'grow', newPx: 64 });
    expect(at(image, 5, 63)).toEqual(at(gradient, 5, 63));
    expect([maskAt(mask, 5, 63), maskAt(mask, 5, 64)]).toEqual([0, 1]);
  });

  it('shifts the view for a one-size model: the far half of the picture slides over and the near half is new', async () => {
    const { image, mask } = await panCanvas(gradient, 'right', { width: 64, height: 64, mode: 'shift', newPx: 32 });
    expect(image).toMatchObject({ width: 64, height: 64 });
    expect(at(image, 0, 7)).toEqual(at(gradient, 32, 7));
    expect(at(image, 31, 7)).toEqual(at(gradient, 63, 7));
    expect([maskAt(mask, 31, 7), maskAt(mask, 32, 7)]).toEqual([0, 1]);
  });

  it('shifts up by keeping the top of the picture', async () => {
    const { image, mask } = await panCanvas(gradient, 'up', { width: 64, height: 64, mode: 'shift', newPx: 32 });
    expect(at(image, 3, 32)).toEqual(at(gradient, 3, 0));
    expect([maskAt(mask, 3, 31), maskAt(mask, 3, 32)]).toEqual([1, 0]);
  });
});
