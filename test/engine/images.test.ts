import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.js';
import { decodedToImages, encodePng, encodeWebp, loadImageFile, makeGrid, MAX_IMAGE_FILE_BYTES } from '../../src/engine/images.js';
import { readTextChunks } from '../../src/engine/png-text.js';
import type { RgbImage } from '../../src/engine/types.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'imagine-images-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const solid = (width: number, height: number, [r, g, b]: number[]): RgbImage => {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set([r, g, b], i * 3);
  return { width, height, data };
};
const pixelAt = (img: RgbImage, x: number, y: number) => Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));

describe('decodedToImages', () => {
  it('maps [-1, 1] to 0…255, clamping and rounding, from NCHW planes to interleaved RGB', () => {
    // One 2×1 image: R plane, G plane, B plane.
    const data = Float32Array.of(-1, 1, 0, -2, 2, Number.NaN);
    const [image] = decodedToImages(data, [1, 3, 1, 2], 'minus1to1');
    expect(image.width).toBe(2);
    expect(image.height).toBe(1);
    expect(Array.from(image.data)).toEqual([0, 128, 255, 255, 0, 0]);
  });

  it('maps [0, 1] to 0…255 and splits a batch into images', () => {
    const data = new Float32Array(2 * 3 * 4).fill(0.5);
    data.fill(1, 12);
    const images = decodedToImages(data, [2, 3, 2, 2], 'zero1');
    expect(images).toHaveLength(2);
    expect(Array.from(images[0].data)).toEqual(new Array(12).fill(128));
    expect(Array.from(images[1].data)).toEqual(new Array(12).fill(255));
  });

  it('refuses a tensor that is not [batch, 3, height, width] as a model failure', () => {
    expect(() => decodedToImages(new Float32Array(16), [1, 4, 2, 2], 'zero1')).toThrow(expect.objectContaining({ kind: 'model_failure' }));
    expect(() => decodedToImages(new Float32Array(11), [1, 3, 2, 2], 'zero1')).toThrow(EngineError);
  });
});

describe('encodePng', () => {
  const image = decodedToImages(Float32Array.from({ length: 3 * 8 * 6 }, (_, i) => (i % 7) / 3.5 - 1), [1, 3, 6, 8], 'minus1to1')[0];

  it('encodes the exact pixels, with the parameters text readable', async () => {
    const png = await encodePng(image, 'a fox\nSteps: 4, Sampler: Euler, CFG scale: 5, Seed: 1, Size: 8x6, Model: tiny');
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect(info).toMatchObject({ format: 'raw', width: 8, height: 6, channels: 3 });
    expect(new Uint8Array(data)).toEqual(image.data);
    expect(readTextChunks(png).parameters).toContain('Seed: 1');
  });

  it('gives the same bytes for the same pixels', async () => {
    expect((await encodePng(image, 'x')).equals(await encodePng(image, 'x'))).toBe(true);
  });

  it('writes no text chunk without parameters', async () => {
    expect(readTextChunks(await encodePng(image))).toEqual({});
  });

  it('refuses pixel data of the wrong length', async () => {
    await expect(encodePng({ width: 4, height: 4, data: new Uint8Array(10) })).rejects.toThrow(EngineError);
  });
});

describe('makeGrid', () => {
  const colours = [
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
    [255, 255, 0],
  ];

  it('tiles four images 2×2 without gaps, in reading order', () => {
    const grid = makeGrid(colours.map((colour) => solid(3, 2, colour)));
    expect([grid.width, grid.height]).toEqual([6, 4]);
    expect(pixelAt(grid, 0, 0)).toEqual(colours[0]);
    expect(pixelAt(grid, 5, 1)).toEqual(colours[1]);
    expect(pixelAt(grid, 2, 2)).toEqual(colours[2]);
    expect(pixelAt(grid, 3, 3)).toEqual(colours[3]);
  });

  it('puts two images side by side', () => {
    const grid = makeGrid(colours.slice(0, 2).map((colour) => solid(3, 2, colour)));
    expect([grid.width, grid.height]).toEqual([6, 2]);
  });

  it('leaves the empty cell of three images black', () => {
    const grid = makeGrid(colours.slice(0, 3).map((colour) => solid(3, 2, colour)));
    expect([grid.width, grid.height]).toEqual([6, 4]);
    expect(pixelAt(grid, 4, 3)).toEqual([0, 0, 0]);
  });

  it.each([
    [1, 1, 1],
    [6, 3, 2],
    [9, 3, 3],
  ])('lays out %i images in %i columns and %i rows', (count, columns, rows) => {
    const grid = makeGrid(Array.from({ length: count }, () => solid(2, 2, [9, 9, 9])));
    expect([grid.width, grid.height]).toEqual([columns * 2, rows * 2]);
  });

  it('refuses images of different sizes and an empty list', () => {
    expect(() => makeGrid([solid(2, 2, [0, 0, 0]), solid(3, 2, [0, 0, 0])])).toThrow(EngineError);
    expect(() => makeGrid([])).toThrow(EngineError);
  });
});

describe('encodeWebp', () => {
  it('shrinks to fit maxSide, keeping the aspect ratio', async () => {
    const webp = await encodeWebp(solid(512, 256, [10, 200, 30]), { maxSide: 256, quality: 70 });
    expect(await sharp(webp).metadata()).toMatchObject({ format: 'webp', width: 256, height: 128 });
  });

  it('never enlarges a small preview', async () => {
    const webp = await encodeWebp(solid(8, 8, [10, 200, 30]), { maxSide: 256 });
    expect(await sharp(webp).metadata()).toMatchObject({ width: 8, height: 8 });
  });

  it('refuses a quality outside 1…100', async () => {
    await expect(encodeWebp(solid(8, 8, [0, 0, 0]), { quality: 0 })).rejects.toThrow(EngineError);
  });
});

describe('loadImageFile', () => {
  // 300×100: red, green and blue thirds.
  const stripes = async () => {
    const data = new Uint8Array(300 * 100 * 3);
    for (let y = 0; y < 100; y++) {
      for (let x = 0; x < 300; x++) data.set(x < 100 ? [255, 0, 0] : x < 200 ? [0, 255, 0] : [0, 0, 255], (y * 300 + x) * 3);
    }
    return encodePng({ width: 300, height: 100, data });
  };

  it('scales to cover the target and keeps the centre', async () => {
    const path = join(dir, 'stripes.png');
    await writeFile(path, await stripes());
    const { rgb } = await loadImageFile(path, { width: 32, height: 32 });
    expect([rgb.width, rgb.height, rgb.data.length]).toEqual([32, 32, 32 * 32 * 3]);
    // The green third fills the square exactly; Lanczos blends in a little red and blue at the very edges only.
    expect(pixelAt(rgb, 8, 8)).toEqual([0, 255, 0]);
    expect(pixelAt(rgb, 24, 24)).toEqual([0, 255, 0]);
    expect(pixelAt(rgb, 0, 0)[1]).toBeGreaterThan(200);
  });

  it('gives the tensor as [1, 3, H, W] planes in [-1, 1] matching the pixels', async () => {
    const { rgb, tensor } = await loadImageFile(await stripes(), { width: 16, height: 8 });
    expect(tensor).toHaveLength(3 * 16 * 8);
    const plane = 16 * 8;
    for (const pixel of [0, 77, plane - 1]) {
      for (let channel = 0; channel < 3; channel++) {
        expect(tensor[channel * plane + pixel]).toBeCloseTo(rgb.data[pixel * 3 + channel] / 127.5 - 1, 6);
      }
    }
    expect(Math.min(...tensor)).toBe(-1);
    expect(Math.max(...tensor)).toBe(1);
  });

  it('flattens transparency onto white and turns greyscale into RGB', async () => {
    const transparent = await sharp({ create: { width: 10, height: 10, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).png().toBuffer();
    expect(pixelAt((await loadImageFile(transparent, { width: 8, height: 8 })).rgb, 4, 4)).toEqual([255, 255, 255]);
    const grey = await sharp(Buffer.alloc(100, 90), { raw: { width: 10, height: 10, channels: 1 } }).png().toBuffer();
    const { rgb } = await loadImageFile(grey, { width: 8, height: 8 });
    expect(rgb.data.length).toBe(8 * 8 * 3);
    expect(pixelAt(rgb, 1, 1)).toEqual([90, 90, 90]);
  });

  it('reads JPEG and WebP too', async () => {
    const jpeg = await sharp({ create: { width: 20, height: 20, channels: 3, background: '#808080' } }).jpeg().toBuffer();
    const webp = await sharp({ create: { width: 20, height: 20, channels: 3, background: '#808080' } }).webp({ lossless: true }).toBuffer();
    for (const file of [jpeg, webp]) expect((await loadImageFile(file, { width: 8, height: 8 })).rgb.width).toBe(8);
  });

  it('refuses a file that is not an image', async () => {
    const path = join(dir, 'notes.txt');
    await writeFile(path, 'not an image at all');
    await expect(loadImageFile(path, { width: 8, height: 8 })).rejects.toThrow('notes.txt is not an image sharp can read (PNG, JPEG, WebP, …)');
    await expect(loadImageFile(Buffer.from('GIF89a broken'), { width: 8, height: 8 })).rejects.toThrow(EngineError);
  });

  it('refuses a file over 20 MB before reading it', async () => {
    const path = join(dir, 'huge.png');
    await writeFile(path, '');
    await truncate(path, MAX_IMAGE_FILE_BYTES + 1);
    await expect(loadImageFile(path, { width: 8, height: 8 })).rejects.toThrow('huge.png is 20.0 MB; images over 20 MB are refused');
    await expect(loadImageFile(Buffer.alloc(MAX_IMAGE_FILE_BYTES + 1), { width: 8, height: 8 })).rejects.toThrow('over 20 MB');
  });

  it('says so when there is no such file', async () => {
    await expect(loadImageFile(join(dir, 'missing.png'), { width: 8, height: 8 })).rejects.toThrow('There is no file at');
  });

  it('refuses a target size that is not whole positive pixels', async () => {
    await expect(loadImageFile(await stripes(), { width: 0, height: 8 })).rejects.toThrow(EngineError);
    await expect(loadImageFile(await stripes(), { width: 8.5, height: 8 })).rejects.toThrow(EngineError);
  });
});
