import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.js';
import { createRandom, philoxBlock, randomSeed, slerp } from '../../src/engine/random.js';

// Random123's tests/kat_vectors, the three "philox4x32 10" lines: counter, key → words.
const PHILOX_KNOWN_ANSWERS = [
  { counter: [0, 0, 0, 0], key: [0, 0], words: [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8] },
  {
    counter: [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
    key: [0xffffffff, 0xffffffff],
    words: [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
  },
  {
    counter: [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
    key: [0xa4093822, 0x299f31d0],
    words: [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
  },
];

// First values of our streams, cross-checked with an independent Python (float64 math, numpy float32 rounding)
// implementation of docs/RANDOMNESS.md.
const KNOWN_STREAMS = [
  {
    seed: 0,
    firstBlock: [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
    firstUniform: 0.39904647231489565,
    firstNormals: [-0.09047304838895798, -1.0051318407058716, -0.9238336086273193, -2.512953758239746, 0.1254250854253769, 0.153462216258049],
  },
  {
    seed: 1,
    firstBlock: [0xe3e80670, 0xe50a0ebc, 0x95f222c0, 0xb615aa27],
    firstUniform: 0.8902591757080309,
    firstNormals: [-1.8045566082000732, -1.0783519744873047, -1.4756191968917847, 0.22808027267456055, -0.17310521006584167, -0.7338128685951233],
  },
  {
    seed: 4294967295,
    firstBlock: [0xf60ba7e1, 0xfb0bd7a0, 0xc70cbd2d, 0x7dad399c],
    firstUniform: 0.9611153601158369,
    firstNormals: [0.43874454498291016, -2.5103416442871094, -0.7675350308418274, -0.9605475664138794, -2.5544652938842773, 0.21883797645568848],
  },
];

describe('philoxBlock', () => {
  it.each(PHILOX_KNOWN_ANSWERS)('matches Random123 known answer for key $key', ({ counter, key, words }) => {
    expect(philoxBlock(counter, key)).toEqual(words);
  });
});

describe('createRandom', () => {
  it.each(KNOWN_STREAMS)('gives the documented first numbers for seed $seed', ({ seed, firstBlock, firstUniform, firstNormals }) => {
    expect(philoxBlock([0, 0, 0, 0], [seed, 0])).toEqual(firstBlock);
    expect(createRandom(seed).nextUniform()).toBe(firstUniform);
    expect(Array.from(createRandom(seed).randn(6))).toEqual(firstNormals);
  });

  it('gives the same stream however the normals are requested, odd counts included', () => {
    const whole = createRandom(42).randn(11);
    const random = createRandom(42);
    const pieces = [random.randn(3), random.randn(0), random.randn(5), random.randn(3)];
    expect(Array.from(pieces.flatMap((piece) => Array.from(piece)))).toEqual(Array.from(whole));
  });

  it('crosses block boundaries and counter words without repeating', () => {
    const random = createRandom(9);
    const uniforms = Array.from({ length: 1000 }, () => random.nextUniform());
    expect(new Set(uniforms).size).toBe(1000);
    expect(uniforms.every((u) => u >= 0 && u < 1)).toBe(true);
  });

  it('produces standard normal noise', () => {
    const noise = createRandom(123).randn(200_000);
    let sum = 0;
    let squares = 0;
    for (const value of noise) {
      sum += value;
      squares += value * value;
    }
    const mean = sum / noise.length;
    // Standard errors are 1/√n ≈ 0.0022 for the mean and √(2/n) ≈ 0.0032 for the variance: 5σ bounds.
    expect(Math.abs(mean)).toBeLessThan(0.012);
    expect(Math.abs(squares / noise.length - mean * mean - 1)).toBeLessThan(0.016);
  });

  it('gives different noise for neighbouring seeds', () => {
    expect(Array.from(createRandom(1000).randn(8))).not.toEqual(Array.from(createRandom(1001).randn(8)));
  });

  it.each([-1, 1.5, 4294967296, Number.NaN, Number.POSITIVE_INFINITY])('refuses the seed %s', (seed) => {
    expect(() => createRandom(seed)).toThrow(EngineError);
    expect(() => createRandom(seed)).toThrow('seed must be a whole number from 0 to 4294967295');
  });
});

describe('randomSeed', () => {
  it('returns whole numbers in the seed range that createRandom accepts', () => {
    for (let i = 0; i < 100; i++) {
      const seed = randomSeed();
      expect(Number.isInteger(seed) && seed >= 0 && seed <= 4294967295).toBe(true);
      expect(() => createRandom(seed)).not.toThrow();
    }
  });
});

describe('slerp', () => {
  const a = createRandom(1).randn(4096);
  const b = createRandom(2).randn(4096);
  const norm = (v: Float32Array) => Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));

  it('returns the first noise at 0 and the second at 1', () => {
    expect(Array.from(slerp(0, a, b))).toEqual(Array.from(a));
    slerp(1, a, b).forEach((value, i) => expect(value).toBeCloseTo(b[i], 5));
  });

  it('keeps the norm of Gaussian noise half-way, where a linear mix shrinks it by about √2', () => {
    const mixed = slerp(0.5, a, b);
    expect(norm(mixed) / Math.sqrt((norm(a) ** 2 + norm(b) ** 2) / 2)).toBeCloseTo(1, 1);
  });

  it('falls back to a linear mix for parallel or zero vectors', () => {
    const doubled = a.map((x) => 2 * x);
    slerp(0.25, a, doubled).forEach((value, i) => expect(value).toBeCloseTo(1.25 * a[i], 5));
    expect(Array.from(slerp(0.5, new Float32Array(3), Float32Array.of(2, 4, 6)))).toEqual([1, 2, 3]);
  });

  it('refuses a strength outside 0…1 and noises of different sizes', () => {
    expect(() => slerp(1.5, a, b)).toThrow(EngineError);
    expect(() => slerp(0.5, a, b.subarray(1))).toThrow(EngineError);
  });
});
