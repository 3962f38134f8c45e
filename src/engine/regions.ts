import { invalidInput } from './errors.js';
import { REGION_PRESETS, type RegionPreset } from './limits.js';

/**
 * The regions Vary (Region) takes as text — a preset or a rectangle `x,y,w,h` in the picture's pixels — parsed and
 * checked without drawing anything (no sharp, no ONNX Runtime), so a chat form can be checked before a job is queued.
 */

export interface Rectangle {
  x: number;
  y: number;
  width: number;
  height: number;
}

export type Region = { preset: RegionPreset } | { rectangle: Rectangle };

const REGION_HELP = `Use one of ${REGION_PRESETS.join(', ')}, or a rectangle x,y,w,h in pixels (e.g. 16,16,32,32).`;

/** `left` … `border`, or `x,y,w,h`. */
export function parseRegion(text: string): Region {
  const trimmed = text.trim().toLowerCase();
  const preset = REGION_PRESETS.find((name) => name === trimmed || (trimmed === 'centre' && name === 'center'));
  if (preset) return { preset };
  const match = /^(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)$/.exec(trimmed);
  if (!match) throw invalidInput(`'${text}' is not a region. ${REGION_HELP}`);
  const [x, y, width, height] = match.slice(1).map(Number);
  if (width === 0 || height === 0) throw invalidInput(`The rectangle ${text} is empty: give it a width and a height of at least 1 pixel.`);
  return { rectangle: { x, y, width, height } };
}

/** A rectangle must lie inside the picture it repaints; presets always do. */
export function checkRegionInside(region: Region, picture: { width: number; height: number }): void {
  if (!('rectangle' in region)) return;
  const { x, y, width, height } = region.rectangle;
  if (x + width > picture.width || y + height > picture.height) {
    throw invalidInput(
      `The rectangle ${x},${y},${width},${height} reaches outside the ${picture.width}x${picture.height} picture: keep x + w ≤ ${picture.width} and y + h ≤ ${picture.height}.`,
    );
  }
}
