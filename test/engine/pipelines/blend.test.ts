import { describe, expect, it } from 'vitest';
import { sphericalMean } from '../../../src/engine/pipelines/blend.js';
import { createRandom, slerp } from '../../../src/engine/random.js';

const norm = (v: Float32Array) => Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));
const cosine = (a: Float32Array, b: Float32Array) => a.reduce((sum, x, i) => sum + x * b[i], 0) / (norm(a) * norm(b));

describe('the latent mix of a blend', () => {
  const [a, b, c, d] = [1, 2, 3, 4].map((seed) => createRandom(seed).randn(256));

  it('is the slerp at ½ for two pictures', () => {
    expect(sphericalMean([a, b])).toEqual(slerp(0.5, a, b));
  });

  it('weighs three or four pictures equally: the same at the same angle to each, whatever their order', () => {
    const mix = sphericalMean([a, b, c, d]);
    const angles = [a, b, c, d].map((latent) => cosine(mix, latent));
    for (const angle of angles) expect(angle).toBeCloseTo(angles[0], 1);
    const reordered = sphericalMean([d, b, a, c]);
    mix.forEach((value, i) => expect(reordered[i]).toBeCloseTo(value, 5));
  });

  it('keeps the pictures’ mean length, as slerp keeps a Gaussian sample’s', () => {
    expect(norm(sphericalMean([a, b, c]))).toBeCloseTo((norm(a) + norm(b) + norm(c)) / 3, 3);
  });
});
