import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { RgbImage } from '../engine/types.js';

/**
 * The pixel rules that read a picture's background colour, place, size and count — the same rules, from the same
 * constants (models/eval/attributes.json), that models/train/scenes.py checks the training scenes with, so the eval
 * never asks the model for an attribute the rules cannot read on real pictures.
 */
const rulesSchema = z.object({
  palette: z.record(z.string(), z.tuple([z.number(), z.number(), z.number()])),
  positions: z.array(z.array(z.string()).length(3)).length(3),
  ringPx: z.number().int().positive(),
  foregroundDistance: z.number().positive(),
  minForegroundPx: z.number().int().positive(),
  smallMaxExtentPx: z.number().int().positive(),
  largeMinExtentPx: z.number().int().positive(),
  minShapePx: z.number().int().positive(),
});
export type AttributeRules = z.infer<typeof rulesSchema>;

export function loadAttributeRules(file = 'models/eval/attributes.json'): AttributeRules {
  return rulesSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
}

function ringPixels(image: RgbImage, ringPx: number): number[][] {
  const pixels: number[][] = [];
  const { width, height, data } = image;
  const take = (x: number, y: number) => pixels.push([data[(y * width + x) * 3], data[(y * width + x) * 3 + 1], data[(y * width + x) * 3 + 2]]);
  // The same order as scenes.ring: top rows, bottom rows, left columns, right columns (corners counted twice).
  for (let y = 0; y < ringPx; y++) for (let x = 0; x < width; x++) take(x, y);
  for (let y = height - ringPx; y < height; y++) for (let x = 0; x < width; x++) take(x, y);
  for (let y = 0; y < height; y++) for (let x = 0; x < ringPx; x++) take(x, y);
  for (let y = 0; y < height; y++) for (let x = width - ringPx; x < width; x++) take(x, y);
  return pixels;
}

/** numpy's median: the mean of the two middle values for an even count. */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function ringMedian(image: RgbImage, rules: AttributeRules): [number, number, number] {
  const ring = ringPixels(image, rules.ringPx);
  return [0, 1, 2].map((channel) => median(ring.map((pixel) => pixel[channel]))) as [number, number, number];
}

export function readBackground(image: RgbImage, rules: AttributeRules): string {
  const colour = ringMedian(image, rules);
  let best = '';
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const [name, rgb] of Object.entries(rules.palette)) {
    const distance = (rgb[0] - colour[0]) ** 2 + (rgb[1] - colour[1]) ** 2 + (rgb[2] - colour[2]) ** 2;
    if (distance < bestDistance) [best, bestDistance] = [name, distance];
  }
  return best;
}

export function foregroundMask(image: RgbImage, rules: AttributeRules): Uint8Array {
  const background = ringMedian(image, rules);
  const mask = new Uint8Array(image.width * image.height);
  for (let k = 0; k < mask.length; k++) {
    const d = Math.hypot(image.data[k * 3] - background[0], image.data[k * 3 + 1] - background[1], image.data[k * 3 + 2] - background[2]);
    mask[k] = d > rules.foregroundDistance ? 1 : 0;
  }
  return mask;
}

export function readPosition(image: RgbImage, rules: AttributeRules): string | null {
  const mask = foregroundMask(image, rules);
  let count = 0;
  let sumX = 0;
  let sumY = 0;
  mask.forEach((on, k) => {
    if (!on) return;
    count++;
    sumX += k % image.width;
    sumY += Math.floor(k / image.width);
  });
  if (count < rules.minForegroundPx) return null;
  const row = Math.min(Math.floor(((sumY / count) * 3) / image.height), 2);
  const column = Math.min(Math.floor(((sumX / count) * 3) / image.width), 2);
  return rules.positions[row][column];
}

export function readSize(image: RgbImage, rules: AttributeRules): 'small' | 'large' | null {
  const mask = foregroundMask(image, rules);
  let count = 0;
  let [minX, minY, maxX, maxY] = [Infinity, Infinity, -Infinity, -Infinity];
  mask.forEach((on, k) => {
    if (!on) return;
    count++;
    const x = k % image.width;
    const y = Math.floor(k / image.width);
    [minX, minY, maxX, maxY] = [Math.min(minX, x), Math.min(minY, y), Math.max(maxX, x), Math.max(maxY, y)];
  });
  if (count < rules.minForegroundPx) return null;
  const extent = Math.max(maxX - minX + 1, maxY - minY + 1);
  return extent <= rules.smallMaxExtentPx ? 'small' : extent >= rules.largeMinExtentPx ? 'large' : null;
}

/** Shapes of at least minShapePx pixels after closing one-pixel gaps (each foreground pixel grows into its 4 neighbours). */
export function readCount(image: RgbImage, rules: AttributeRules): number {
  const { width, height } = image;
  const mask = foregroundMask(image, rules);
  const grown = new Uint8Array(mask);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!mask[y * width + x]) continue;
      if (y > 0) grown[(y - 1) * width + x] = 1;
      if (y < height - 1) grown[(y + 1) * width + x] = 1;
      if (x > 0) grown[y * width + x - 1] = 1;
      if (x < width - 1) grown[y * width + x + 1] = 1;
    }
  }
  const seen = new Uint8Array(grown.length);
  let shapes = 0;
  for (let start = 0; start < grown.length; start++) {
    if (!grown[start] || seen[start]) continue;
    let size = 0;
    const stack = [start];
    seen[start] = 1;
    while (stack.length > 0) {
      const k = stack.pop()!;
      size++;
      const x = k % width;
      const neighbours = [k - width, k + width, x > 0 ? k - 1 : -1, x < width - 1 ? k + 1 : -1];
      for (const n of neighbours) {
        if (n >= 0 && n < grown.length && grown[n] && !seen[n]) {
          seen[n] = 1;
          stack.push(n);
        }
      }
    }
    if (size >= rules.minShapePx) shapes++;
  }
  return shapes;
}
