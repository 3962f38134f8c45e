/**
 * What a request may ask of the engine, defined once. The engine's input check (src/engine/pipelines/stages.ts) and
 * the application's option parsing (src/core) both read these numbers, so a limit changed here changes everywhere and
 * the two can never disagree about what is accepted.
 */
export const LIMITS = {
  promptChars: 2000,
  steps: { min: 1, max: 150 },
  /** Seeds are Philox keys: any unsigned 32-bit integer. */
  seed: { min: 0, max: 4_294_967_295 },
  guidance: { min: 0, max: 30 },
  batch: { min: 1, max: 4 },
  /** Image-to-image strength: the share of the schedule that is re-run; 0 would change nothing. */
  strength: { above: 0, max: 1 },
  variationStrength: { min: 0, max: 1 },
  eta: { min: 0, max: 1 },
  /** Any side, in pixels, of any image the engine is asked to make; a model folder may allow less (maxSidePx). */
  sidePx: { min: 8, max: 4096 },
  /** Largest side for folders whose imagine.json does not say. */
  defaultMaxSidePx: 2048,
  /** Zoom Out: the picture shrinks by this factor into the centre of a canvas of the same size. */
  zoomOut: { min: 1.1, max: 2 },
  /** Gaussian σ of the soft mask edge, in pixels (A1111's "Mask blur"). */
  maskBlurPx: { min: 0, max: 64 },
  /** Vary on an upscale: 4× upscales run on each variation within the job; 8 px × 4⁴ is the first side past sidePx.max's reach. */
  upscalePasses: { min: 1, max: 4 },
  /** /blend takes this many pictures. */
  blendImages: { min: 2, max: 4 },
  imageFileBytes: 20 * 1024 * 1024,
} as const;

export const MAX_SEED = LIMITS.seed.max;

/** Midjourney's Vary (Region) presets, plus the rectangle form `x,y,w,h` (pixels of the picture being edited). */
export const REGION_PRESETS = ['left', 'right', 'top', 'bottom', 'center', 'border'] as const;
export type RegionPreset = (typeof REGION_PRESETS)[number];

export const PAN_DIRECTIONS = ['left', 'right', 'up', 'down'] as const;
export type PanDirection = (typeof PAN_DIRECTIONS)[number];

/** Defaults of the edits, stated once for the engine, the CLI and the chat. */
export const EDIT_DEFAULTS = {
  /** A1111's default mask blur. */
  maskBlurPx: 4,
  /** Vary (Region), Zoom Out and Pan repaint their area from noise (diffusers' inpainting default). */
  inpaintStrength: 1,
  /** /blend keeps the blended composition but lets the model redraw most of it. */
  blendStrength: 0.8,
} as const;
