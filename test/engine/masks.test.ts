import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.js';
import { binarize, blurMask, checkCoverage, latentMask, maskFromImage, maskToPng, regionMask, type Mask } from '../../src/engine/masks.js';
import { parseRegion } from '../../src/engine/regions.js';

const picture = { width: 8, height: 4 };
/** The mask as rows of 0/1 digits, for readable expectations. */
const rows = (mask: Mask) =>
  Array.from({ length: mask.height }, (_, y) => Array.from(mask.data.subarray(y * mask.width, (y + 1) * mask.width), (v) => (v >= 0.5 ? 1 : 0)).join(''));
const region = (text: string, target = picture) => rows(regionMask(parseRegion(text), picture, target));

describe('regions', () => {
  it.each([
    ['left', ['11110000', '11110000', '11110000', '11110000']],
    ['right', ['00001111', '00001111', '00001111', '00001111']],
    ['top', ['11111111', '11111111', '00000000', '00000000']],
    ['bottom', ['00000000', '00000000', '11111111', '11111111']],
    ['center', ['00000000', '00111100', '00111100', '00000000']],
    ['border', ['11111111', '11000011', '11000011', '11111111']],
    ['1,1,3,2', ['00000000', '01110000', '01110000', '00000000']],
  ])('%s marks its part of the picture', (text, expected) => {
    expect(region(text)).toEqual(expected);
  });

  it('accepts centre and any letter case for presets', () => {
    expect(region('Centre')).toEqual(region('center'));
  });

  it('draws a rectangle given in the picture’s pixels at the size the model works at', () => {
    expect(rows(regionMask(parseRegion('0,0,4,2'), { width: 16, height: 8 }, picture))).toEqual(['11000000', '00000000', '00000000', '00000000']);
  });

  it.each([
    ['a rectangle reaching past the right edge', '6,0,3,2', /reaches outside the 8x4 picture.*x \+ w ≤ 8/],
    ['a rectangle below the picture', '0,4,2,2', /reaches outside/],
  ])('refuses %s', (_label, text, message) => {
    expect(() => region(text)).toThrow(expect.objectContaining({ kind: 'invalid_input', userMessage: expect.stringMatching(message) }));
  });

  it.each([
    ['an unknown preset', 'middle', /not a region.*left, right, top, bottom, center, border.*x,y,w,h/],
    ['a rectangle of width 0', '1,1,0,2', /empty: give it a width and a height/],
    ['negative numbers', '-1,0,2,2', /not a region/],
  ])('refuses %s with the accepted forms', (_label, text, message) => {
    expect(() => parseRegion(text)).toThrow(expect.objectContaining({ kind: 'invalid_input', userMessage: expect.stringMatching(message) }));
  });
});

describe('masks from images', () => {
  const halfWhite = (width: number, height: number) =>
    sharp({ create: { width, height, channels: 3, background: '#000' } })
      .composite([{ input: { create: { width: width / 2, height, channels: 3, background: '#fff' } }, left: 0, top: 0 }])
      .png()
      .toBuffer();

  it('repaints where the mask is white', async () => {
    expect(rows(await maskFromImage(await halfWhite(8, 4), picture))).toEqual(region('left'));
  });

  it('reads a mask of another resolution but the same shape at the working size', async () => {
    expect(rows(await maskFromImage(await halfWhite(32, 16), picture))).toEqual(region('left'));
  });

  it('reads painted strokes on a transparent layer from their opacity, whatever their colour', async () => {
    const strokes = await sharp({ create: { width: 8, height: 4, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } })
      .composite([{ input: { create: { width: 4, height: 4, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 1 } } }, left: 4, top: 0 }])
      .png()
      .toBuffer();
    expect(rows(await maskFromImage(strokes, picture))).toEqual(region('right'));
  });

  it('refuses a file that is not an image', async () => {
    await expect(maskFromImage(Buffer.from('not a png'), picture)).rejects.toMatchObject({ kind: 'invalid_input', userMessage: expect.stringMatching(/not an image/) });
  });

  it('refuses a mask whose aspect ratio differs from the picture’s, naming both sizes', async () => {
    await expect(maskFromImage(await halfWhite(8, 8), picture)).rejects.toMatchObject({
      kind: 'invalid_input',
      userMessage: expect.stringMatching(/mask is 8x8 but the picture is 8x4/),
    });
  });

  it('stores as a greyscale PNG that reads back as the same mask', async () => {
    const mask = regionMask(parseRegion('border'), picture);
    const png = await maskToPng(mask);
    expect(await sharp(png).metadata()).toMatchObject({ format: 'png', width: 8, height: 4, channels: 1 });
    expect(rows(await maskFromImage(png, picture))).toEqual(rows(mask));
  });
});

describe('coverage, soft edges and latent size', () => {
  it('refuses an empty mask: nothing would change', () => {
    const empty: Mask = { ...picture, data: new Float32Array(32) };
    expect(() => checkCoverage(empty)).toThrow(expect.objectContaining({ kind: 'invalid_input', userMessage: expect.stringMatching(/empty/) }));
  });

  it('refuses a full mask and says to use Vary', () => {
    const full: Mask = { ...picture, data: new Float32Array(32).fill(1) };
    expect(() => checkCoverage(full)).toThrow(expect.objectContaining({ userMessage: expect.stringMatching(/use Vary/) }));
  });

  it('softens the edge without moving it, and leaves pixels beyond 3σ untouched', () => {
    const mask = regionMask(parseRegion('left'), { width: 32, height: 1 });
    const soft = blurMask(mask, 2);
    expect(soft.data[15]).toBeGreaterThan(0.5);
    expect(soft.data[16]).toBeLessThan(0.5);
    expect(soft.data[16]).toBeGreaterThan(0);
    expect(soft.data[16 + 6]).toBe(0);
    expect(soft.data[0]).toBeCloseTo(1, 6);
    expect(binarize(soft).data).toEqual(mask.data);
  });

  it('leaves the mask as it is at blur 0, and refuses a blur past the limit', () => {
    const mask = regionMask(parseRegion('left'), picture);
    expect(blurMask(mask, 0)).toBe(mask);
    expect(() => blurMask(mask, 65)).toThrow(EngineError);
  });

  it('shrinks to latent cells as the share of each cell that is repainted', () => {
    const mask = regionMask(parseRegion('3,0,2,4'), picture);
    expect(Array.from(latentMask(mask, 4))).toEqual([0.25, 0.25]);
  });
});
