import { getRandomValues } from 'node:crypto';
import { invalidInput } from './errors.js';
import { MAX_SEED } from './limits.js';
import type { RandomSource } from './types.js';

/**
 * Seeded noise that is the same bit for bit on every machine: Philox4x32-10 (Salmon et al., "Parallel random numbers:
 * as easy as 1, 2, 3", SC 2011 — the generator behind cuRAND's and PyTorch's CUDA streams) in 32-bit integer math,
 * uniforms from 53 bits, normals by Box–Muller. docs/RANDOMNESS.md states the exact algorithm for other
 * implementations.
 */

const PHILOX_M0 = 0xd2511f53;
const PHILOX_M1 = 0xcd9e8d57;
const PHILOX_W0 = 0x9e3779b9;
const PHILOX_W1 = 0xbb67ae85;
const PHILOX_ROUNDS = 10;
const TWO_POW_26 = 67108864;
const TWO_POW_53 = 9007199254740992;

export type PhiloxWords = [number, number, number, number];

/** One Philox4x32-10 block: four uint32 words from a 128-bit counter and a 64-bit key (Random123's word order). */
export function philoxBlock(counter: readonly number[], key: readonly number[]): PhiloxWords {
  let [c0, c1, c2, c3] = counter.map((word) => word >>> 0);
  let k0 = key[0] >>> 0;
  let k1 = key[1] >>> 0;
  for (let round = 0; round < PHILOX_ROUNDS; round++) {
    if (round > 0) {
      k0 = (k0 + PHILOX_W0) >>> 0;
      k1 = (k1 + PHILOX_W1) >>> 0;
    }
    const hi0 = mulHigh32(PHILOX_M0, c0);
    const lo0 = Math.imul(PHILOX_M0, c0) >>> 0;
    const hi1 = mulHigh32(PHILOX_M1, c2);
    const lo1 = Math.imul(PHILOX_M1, c2) >>> 0;
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
  }
  return [c0, c1, c2, c3];
}

/** The high 32 bits of a 32×32-bit product, from 16-bit halves so every partial product is exact. */
function mulHigh32(a: number, b: number): number {
  const aLow = a & 0xffff;
  const aHigh = a >>> 16;
  const bLow = b & 0xffff;
  const bHigh = b >>> 16;
  const lowLow = Math.imul(aLow, bLow) >>> 0;
  const lowHigh = Math.imul(aLow, bHigh) >>> 0;
  const highLow = Math.imul(aHigh, bLow) >>> 0;
  const highHigh = Math.imul(aHigh, bHigh) >>> 0;
  const middle = (lowLow >>> 16) + (lowHigh & 0xffff) + (highLow & 0xffff);
  return (highHigh + (lowHigh >>> 16) + (highLow >>> 16) + (middle >>> 16)) >>> 0;
}

/** A stream keyed by `seed`: blocks for counters 0, 1, 2, … read word by word. */
export function createRandom(seed: number): RandomSource {
  assertSeed(seed);
  const key = [seed, 0];
  const counter = [0, 0, 0, 0];
  let block: PhiloxWords = [0, 0, 0, 0];
  let wordIndex = 4;
  let spareNormal: number | undefined;

  const nextWord = (): number => {
    if (wordIndex === 4) {
      block = philoxBlock(counter, key);
      incrementCounter(counter);
      wordIndex = 0;
    }
    return block[wordIndex++];
  };

  const nextUniform = (): number => {
    const high = nextWord() >>> 5;
    const low = nextWord() >>> 6;
    return (high * TWO_POW_26 + low) / TWO_POW_53;
  };

  return {
    nextUniform,
    randn(count: number): Float32Array {
      const out = new Float32Array(count);
      let i = 0;
      if (spareNormal !== undefined && count > 0) {
        out[i++] = spareNormal;
        spareNormal = undefined;
      }
      while (i < count) {
        // 1 − u lies in (0, 1], so the logarithm is finite.
        const radius = Math.sqrt(-2 * Math.log(1 - nextUniform()));
        const angle = 2 * Math.PI * nextUniform();
        out[i++] = radius * Math.cos(angle);
        const second = radius * Math.sin(angle);
        if (i < count) out[i++] = second;
        else spareNormal = second;
      }
      return out;
    },
  };
}

function incrementCounter(counter: number[]): void {
  for (let word = 0; word < 4; word++) {
    counter[word] = (counter[word] + 1) >>> 0;
    if (counter[word] !== 0) return;
  }
}

function assertSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) {
    throw invalidInput(`seed must be a whole number from 0 to ${MAX_SEED}`, { seed });
  }
}

/** A fresh seed from the operating system's cryptographic generator, covering the whole seed range. */
export function randomSeed(): number {
  return getRandomValues(new Uint32Array(1))[0];
}

/** Vectors closer than this (cosine) are treated as parallel: the slerp formula divides by sin of a tiny angle. */
const PARALLEL_DOT = 0.9995;

/**
 * Spherical interpolation from `a` (t = 0) to `b` (t = 1), as AUTOMATIC1111 mixes the noise of a seed with that of its
 * variation seed: the result keeps the norm a Gaussian sample should have, where a straight mix would shrink it.
 * Nearly parallel (or zero) vectors fall back to a straight linear mix.
 */
export function slerp(t: number, a: Float32Array, b: Float32Array): Float32Array {
  if (!(t >= 0 && t <= 1)) throw invalidInput(`Variation strength must be from 0 to 1 (got ${t}).`, { t });
  if (a.length !== b.length) {
    throw invalidInput(`Cannot mix noise of ${a.length} values with noise of ${b.length}; the sizes must match.`);
  }
  let dot = 0;
  let normA = 0;
  let normB = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    normA += a[i] * a[i];
    normB += b[i] * b[i];
  }
  const out = new Float32Array(a.length);
  const cosine = normA > 0 && normB > 0 ? dot / Math.sqrt(normA * normB) : 1;
  if (Math.abs(cosine) > PARALLEL_DOT) {
    for (let i = 0; i < a.length; i++) out[i] = (1 - t) * a[i] + t * b[i];
    return out;
  }
  const omega = Math.acos(cosine);
  const sinOmega = Math.sin(omega);
  const weightA = Math.sin((1 - t) * omega) / sinOmega;
  const weightB = Math.sin(t * omega) / sinOmega;
  for (let i = 0; i < a.length; i++) out[i] = weightA * a[i] + weightB * b[i];
  return out;
}
