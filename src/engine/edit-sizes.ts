import { invalidInput } from './errors.js';
import { LIMITS, type PanDirection } from './limits.js';
import type { ModelDescription } from './model-description.js';

/**
 * What size an edit works at and what size it makes: arithmetic over a model's description only (no image, no ONNX
 * Runtime), so the chat side can tell and charge for an edit's result before a worker runs it.
 */

export interface Size {
  width: number;
  height: number;
}

type SizeRules = Pick<ModelDescription, 'name' | 'sizes' | 'sizeMultiple' | 'maxSidePx' | 'vaeScaleFactor'>;

/**
 * The size a picture is edited at: its own when the model makes it; otherwise the model's size of the same shape (the
 * largest listed one not bigger than the picture, say a 4× upscale brought back to 64x64), or the picture scaled to fit
 * the model's largest side on multiples of its size step.
 */
export function editSize(model: SizeRules, picture: Size): Size {
  const { width, height } = picture;
  const { sizes, sizeMultiple: step, maxSidePx } = model;
  if (sizes) {
    if (sizes.some(([w, h]) => w === width && h === height)) return picture;
    const sameShape = sizes.filter(([w, h]) => Math.abs(w * height - h * width) <= Math.max(w, h, width, height));
    if (sameShape.length === 0) {
      throw invalidInput(
        `${model.name} makes only ${sizes.map(([w, h]) => `${w}x${h}`).join(', ')}; a ${width}x${height} picture has another shape. Crop it to one of those shapes first.`,
      );
    }
    const byArea = [...sameShape].sort(([aw, ah], [bw, bh]) => aw * ah - bw * bh);
    const [w, h] = byArea.filter(([lw, lh]) => lw * lh <= width * height).at(-1) ?? byArea[0];
    return { width: w, height: h };
  }
  const largest = Math.floor(maxSidePx / step) * step;
  const scale = Math.min(1, largest / Math.max(width, height));
  const round = (side: number) => Math.min(largest, Math.max(step, Math.round((side * scale) / step) * step));
  return { width: round(width), height: round(height) };
}

/** The picture's size inside a Zoom Out canvas of its own size. */
export function zoomedOutSize(picture: Size, factor: number): Size {
  const { min, max } = LIMITS.zoomOut;
  if (!(Number.isFinite(factor) && factor >= min && factor <= max)) {
    throw invalidInput(`Zoom Out takes a factor from ${min} to ${max} (e.g. 1.5 or 2); got ${factor}.`);
  }
  return { width: Math.round(picture.width / factor), height: Math.round(picture.height / factor) };
}

export interface PanPlan extends Size {
  /** 'grow': the canvas gets larger on that side; 'shift': same size, the view moves (one-size models). */
  mode: 'grow' | 'shift';
  /** Pixels of new picture on the panned side. */
  newPx: number;
}

/**
 * How far a pan goes for this model: half the side more, up to its largest size. A model that lists its sizes grows
 * to the listed size (same other side) nearest 1.5 ×; one that lists a single size shifts the view by half instead.
 */
export function planPan(model: SizeRules, size: Size, direction: PanDirection): PanPlan {
  const horizontal = direction === 'left' || direction === 'right';
  const side = horizontal ? size.width : size.height;
  const across = horizontal ? size.height : size.width;
  const sized = (grown: number): Size => (horizontal ? { width: grown, height: across } : { width: across, height: grown });
  if (model.sizes?.length === 1) {
    const newPx = Math.max(model.vaeScaleFactor, Math.round(side / 2 / model.vaeScaleFactor) * model.vaeScaleFactor);
    return { ...size, mode: 'shift', newPx };
  }
  let grown: number | undefined;
  if (model.sizes) {
    const larger = model.sizes.map(([w, h]) => (horizontal ? [w, h] : [h, w])).filter(([s, a]) => a === across && s > side).map(([s]) => s);
    grown = larger.sort((a, b) => Math.abs(a - 1.5 * side) - Math.abs(b - 1.5 * side) || a - b)[0];
  } else {
    const largest = Math.floor(model.maxSidePx / model.sizeMultiple) * model.sizeMultiple;
    const wanted = Math.round((1.5 * side) / model.sizeMultiple) * model.sizeMultiple;
    grown = side < largest ? Math.min(wanted, largest) : undefined;
  }
  if (grown === undefined) {
    const axis = horizontal ? 'wide' : 'tall';
    const other = horizontal ? 'up or down' : 'left or right';
    throw invalidInput(
      `The picture is already ${side} px ${axis}, the most ${model.name} makes at this ${horizontal ? 'height' : 'width'}: pan ${other}, or zoom out instead.`,
    );
  }
  return { ...sized(grown), mode: 'grow', newPx: grown - side };
}

