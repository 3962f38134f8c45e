import { blurMask, latentMask, type Mask } from '../../src/engine/masks.js';
import type { RgbImage } from '../../src/engine/types.js';

/** Pixels an edit must give back: those its softened mask does not reach at all. */
export function untouchedPixels(mask: Mask, blurPx: number): boolean[] {
  return Array.from(blurMask(mask, blurPx).data, (value) => value === 0);
}

/** Pixels whose whole latent cell the softened mask leaves alone: with a patch-local VAE they come back exactly. */
export function untouchedCells(mask: Mask, blurPx: number, factor: number): boolean[] {
  const cells = latentMask(blurMask(mask, blurPx), factor);
  const cellsPerRow = mask.width / factor;
  return Array.from({ length: mask.width * mask.height }, (_, pixel) => {
    const x = pixel % mask.width;
    const y = Math.floor(pixel / mask.width);
    return cells[Math.floor(y / factor) * cellsPerRow + Math.floor(x / factor)] === 0;
  });
}

export const complement = (pixels: boolean[]) => pixels.map((selected) => !selected);

/** Mean and largest absolute difference in 8-bit levels over the selected pixels. */
export function difference(a: RgbImage, b: RgbImage, pixels: boolean[]): { mean: number; max: number } {
  let sum = 0;
  let max = 0;
  let count = 0;
  pixels.forEach((selected, pixel) => {
    if (!selected) return;
    for (let channel = 0; channel < 3; channel++) {
      const d = Math.abs(a.data[pixel * 3 + channel] - b.data[pixel * 3 + channel]);
      sum += d;
      max = Math.max(max, d);
      count += 1;
    }
  });
  if (count === 0) throw new Error('no pixels selected');
  return { mean: sum / count, max };
}
