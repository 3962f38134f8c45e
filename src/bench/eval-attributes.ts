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

/**
 * 'small' when the shapes' bounding box spans at most smallMaxExtentPx, 'large' from largeMinExtentPx. Only shapes
 * that readCount counts span the box: a decoder leaves a stray off-white pixel in a corner of pictures, and one such
 * pixel would otherwise stretch a small thing's box across the picture.
 */
export function readSize(image: RgbImage, rules: AttributeRules): 'small' | 'large' | null {
  const counted = shapes(image, rules).filter((shape) => shape.pixels >= rules.minShapePx);
  if (counted.length === 0) return null;
  const top = Math.min(...counted.map((shape) => shape.top));
  const left = Math.min(...counted.map((shape) => shape.left));
  const bottom = Math.max(...counted.map((shape) => shape.bottom));
  const right = Math.max(...counted.map((shape) => shape.right));
  const extent = Math.max(right - left + 1, bottom - top + 1);
  return extent <= rules.smallMaxExtentPx ? 'small' : extent >= rules.largeMinExtentPx ? 'large' : null;
}

/** Shapes of at least minShapePx pixels. */
export function readCount(image: RgbImage, rules: AttributeRules): number {
  return shapes(image, rules).filter((shape) => shape.pixels >= rules.minShapePx).length;
}

interface Shape {
  /** Pixels once one-pixel gaps are closed (each foreground pixel grown into its 4 neighbours). */
  pixels: number;
  /** The box of the shape's own foreground pixels. */
  top: number;
  left: number;
  bottom: number;
  right: number;
}

function shapes(image: RgbImage, rules: AttributeRules): Shape[] {
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
  const found: Shape[] = [];
  for (let start = 0; start < grown.length; start++) {
    if (!grown[start] || seen[start]) continue;
    const shape: Shape = { pixels: 0, top: height, left: width, bottom: -1, right: -1 };
    const stack = [start];
    seen[start] = 1;
    while (stack.length > 0) {
      const k = stack.pop()!;
      shape.pixels++;
      const x = k % width;
      const y = Math.floor(k / width);
      if (mask[k]) [shape.top, shape.left, shape.bottom, shape.right] = [Math.min(shape.top, y), Math.min(shape.left, x), Math.max(shape.bottom, y), Math.max(shape.right, x)];
      const neighbours = [k - width, k + width, x > 0 ? k - 1 : -1, x < width - 1 ? k + 1 : -1];
      for (const n of neighbours) {
        if (n >= 0 && n < grown.length && grown[n] && !seen[n]) {
          seen[n] = 1;
          stack.push(n);
        }
      }
    }
    found.push(shape);
  }
  return found;
}
