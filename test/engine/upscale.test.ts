import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.js';
import { encodeModel } from '../../src/engine/onnx-graph.js';
import { createRandom } from '../../src/engine/random.js';
import type { RgbImage } from '../../src/engine/types.js';
import { tileStarts, upscaleImage } from '../../src/engine/upscale.js';

const FIXTURE_UPSCALER = join(import.meta.dirname, '..', 'fixtures', 'models', 'tiny-sd', 'upscaler', 'model.onnx');

/** Noise-like test picture, so every tile differs. */
const noiseImage = (width: number, height: number, seed: number): RgbImage => {
  const random = createRandom(seed);
  return { width, height, data: Uint8Array.from({ length: width * height * 3 }, () => Math.floor(random.nextUniform() * 256)) };
};

const maxDifference = (a: Uint8Array, b: Uint8Array) => a.reduce((max, value, i) => Math.max(max, Math.abs(value - b[i])), 0);

let fixture: ort.InferenceSession;
let pixelLocal: ort.InferenceSession;

beforeAll(async () => {
  fixture = await ort.InferenceSession.create(FIXTURE_UPSCALER, { intraOpNumThreads: 1 });
  pixelLocal = await ort.InferenceSession.create(pixelShuffleUpscalerOnnx(), { intraOpNumThreads: 1 });
});

afterAll(async () => {
  await fixture?.release();
  await pixelLocal?.release();
});

describe('tileStarts', () => {
  it('steps by tile minus overlap and ends flush with the far edge', () => {
    expect(tileStarts(300, 128, 16)).toEqual([0, 112, 172]);
    expect(tileStarts(128, 128, 16)).toEqual([0]);
    expect(tileStarts(50, 128, 16)).toEqual([0]);
    expect(tileStarts(129, 128, 16)).toEqual([0, 1]);
  });
});

describe('upscaleImage with a model', () => {
  it('gives exactly the single-pass result for an image smaller than one tile', async () => {
    const image = noiseImage(40, 24, 1);
    const tiled = await upscaleImage(image, fixture);
    const whole = await upscaleImage(image, fixture, { tileSize: 4096, overlapPx: 0 });
    expect(tiled.method).toBe('model');
    expect(tiled.scale).toBe(4);
    expect([tiled.image.width, tiled.image.height]).toEqual([160, 96]);
    expect(tiled.image.data).toEqual(whole.image.data);
  });

  it('upscales a 300×200 image to 1200×800 in tiles', async () => {
    const { image, method } = await upscaleImage(noiseImage(300, 200, 2), fixture);
    expect(method).toBe('model');
    expect([image.width, image.height, image.data.length]).toEqual([1200, 800, 1200 * 800 * 3]);
  });

  it('places and blends tiles so a pixel-wise model gives the single-pass image', async () => {
    const image = noiseImage(300, 200, 3);
    const whole = await upscaleImage(image, pixelLocal, { tileSize: 4096, overlapPx: 0 });
    const tiled = await upscaleImage(image, pixelLocal, { tileSize: 64, overlapPx: 16 });
    // Blending equal values only differs by float rounding, which can move a byte across a .5 boundary.
    expect(maxDifference(tiled.image.data, whole.image.data)).toBeLessThanOrEqual(1);
  });

  it('hides tile seams of a model with a receptive field, keeping the result close to a single pass', async () => {
    const image = noiseImage(300, 200, 4);
    const whole = await upscaleImage(image, fixture, { tileSize: 4096, overlapPx: 0 });
    const tiled = await upscaleImage(image, fixture, { tileSize: 64, overlapPx: 16 });
    let sum = 0;
    tiled.image.data.forEach((value, i) => (sum += Math.abs(value - whole.image.data[i])));
    // Measured: unblended tiles (overlap 0) differ by 0.03 on average and up to 3; blended ones by 0.002 and 1.
    expect(sum / tiled.image.data.length).toBeLessThan(0.01);
    expect(maxDifference(tiled.image.data, whole.image.data)).toBeLessThanOrEqual(1);
  });

  it('refuses a tile overlap as large as the tile', async () => {
    await expect(upscaleImage(noiseImage(8, 8, 5), fixture, { tileSize: 16, overlapPx: 16 })).rejects.toThrow(EngineError);
  });
});

describe('upscaleImage without a model', () => {
  it('falls back to a Lanczos 4× that keeps a flat colour flat', async () => {
    const image: RgbImage = { width: 30, height: 20, data: new Uint8Array(30 * 20 * 3).fill(77) };
    const { image: large, method, scale } = await upscaleImage(image, null);
    expect([method, scale, large.width, large.height]).toEqual(['lanczos', 4, 120, 80]);
    expect(large.data.every((value) => value === 77)).toBe(true);
  });
});

/**
 * A pixel-wise 4× upscaler built in memory: 1×1 convolution to 48 channels, DepthToSpace(4), Sigmoid. Each output pixel
 * depends on one input pixel only, so tiling must reproduce the single pass exactly; written with the engine's own ONNX
 * writer so the test needs no Python.
 */
function pixelShuffleUpscalerOnnx(): Uint8Array {
  const random = createRandom(11);
  const weights = new Float32Array(48 * 3).map(() => random.nextUniform() * 4 - 2);
  return encodeModel({
    name: 'pixel_shuffle_upscaler',
    opset: 13,
    inputs: [{ name: 'input', type: 'float32', dims: [1, 3, 'height', 'width'] }],
    outputs: [{ name: 'output', type: 'float32', dims: [1, 3, 'out_height', 'out_width'] }],
    initializers: [{ name: 'weight', values: weights, dims: [48, 3, 1, 1] }],
    nodes: [
      { op: 'Conv', inputs: ['input', 'weight'], outputs: ['features'] },
      { op: 'DepthToSpace', inputs: ['features'], outputs: ['shuffled'], attributes: { blocksize: 4 } },
      { op: 'Sigmoid', inputs: ['shuffled'], outputs: ['output'] },
    ],
  });
}
