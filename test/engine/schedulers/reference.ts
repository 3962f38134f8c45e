import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { createScheduler, parseSchedulerConfig } from '../../../src/engine/schedulers/index.js';
import type { RandomSource, SamplerName } from '../../../src/engine/types.js';

/**
 * Replays test/fixtures/schedulers/reference.json, recorded from diffusers' own scheduler classes by
 * make_reference.py, through our schedulers. Every recorded number must agree as
 *
 *   |ours − diffusers| ≤ 1e-4 · max(1, |diffusers|) + 2⁻²² · M
 *
 * where M is the largest |value| the trajectory has held so far. The second term, four float32 ulps of M, is
 * diffusers' own rounding: it computes in float32, and where σ is in the thousands (zero terminal SNR, the cosine
 * schedule) a result near 1 is the difference of terms near M, so float32 gets its fourth decimal wrong; we compute in
 * float64. With SD-like schedules (σ ≤ 15, M ≲ 60) the term is below 1.5e-5; only the zero-terminal-SNR Euler cases
 * (σ_max = 4096) need it to pass.
 */
export const RELATIVE_TOLERANCE = 1e-4;
export const FLOAT32_ROUNDING_FLOOR = 2 ** -22;

interface ReferenceStep {
  timestep: number;
  prevSample: number[];
  predOriginalSample: number[];
  noise: number[][];
}

export interface ReferenceCase {
  name: string;
  sampler: SamplerName;
  config: Record<string, unknown>;
  steps: number;
  eta?: number;
  timesteps: number[];
  initNoiseSigma: number;
  initialSample?: number[];
  beginIndex?: number;
  addNoise?: { original: number[]; noise: number[]; noisy: number[] };
  trajectory: ReferenceStep[];
}

const fixture = JSON.parse(
  readFileSync(new URL('../../fixtures/schedulers/reference.json', import.meta.url), 'utf8'),
) as { cases: ReferenceCase[] };

export function referenceCases(sampler: SamplerName): ReferenceCase[] {
  return fixture.cases.filter((c) => c.sampler === sampler);
}

/** The stand-in UNet of make_reference.py: 0.9·input + 0.1·sin(0.7·i + 0.003·t), rounded to float32. */
export function fakeModelOutput(modelInput: Float32Array, timestep: number): Float32Array {
  return modelInput.map((value, i) => 0.9 * value + 0.1 * Math.sin(0.7 * i + 0.003 * timestep));
}

/** Hands out exactly the noise diffusers drew at this step, and fails on any draw diffusers did not make. */
class RecordedNoise implements RandomSource {
  private pending: number[][] = [];

  load(draws: number[][]): void {
    this.pending = [...draws];
  }

  randn(count: number): Float32Array {
    const next = this.pending.shift();
    if (!next) throw new Error('the scheduler drew noise where diffusers drew none');
    expect(count, 'size of the noise draw').toBe(next.length);
    return Float32Array.from(next);
  }

  nextUniform(): number {
    throw new Error('schedulers draw Gaussian noise only');
  }

  expectAllDrawn(what: string): void {
    expect(this.pending.length, `${what}: noise draws diffusers made that the scheduler did not`).toBe(0);
  }
}

export function expectClose(actual: ArrayLike<number>, expected: readonly number[], what: string, magnitude = 0): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const error = Math.abs(actual[i] - expected[i]);
    const tolerance = RELATIVE_TOLERANCE * Math.max(1, Math.abs(expected[i])) + FLOAT32_ROUNDING_FLOOR * magnitude;
    if (!(error <= tolerance)) {
      expect.fail(`${what}[${i}]: ours ${actual[i]}, diffusers ${expected[i]} (|difference| ${error} > ${tolerance})`);
    }
  }
}

const largestMagnitude = (values: readonly number[]) => values.reduce((max, value) => Math.max(max, Math.abs(value)), 0);

/** Runs the pipeline's loop (src/engine/pipeline.ts) on one recorded case and compares every recorded value. */
export function replay(reference: ReferenceCase): void {
  const scheduler = createScheduler(
    reference.sampler,
    parseSchedulerConfig(reference.config),
    reference.eta === undefined ? {} : { eta: reference.eta },
  );
  scheduler.setTimesteps(reference.steps);
  expectClose(scheduler.timesteps, reference.timesteps, 'timesteps');
  expectClose([scheduler.initNoiseSigma], [reference.initNoiseSigma], 'initNoiseSigma');

  let timesteps = [...scheduler.timesteps];
  let sample: Float32Array;
  let magnitude: number;
  if (reference.beginIndex === undefined) {
    sample = Float32Array.from(reference.initialSample!);
    magnitude = largestMagnitude(reference.initialSample!);
  } else {
    const { original, noise, noisy } = reference.addNoise!;
    timesteps = timesteps.slice(reference.beginIndex);
    scheduler.setBeginIndex(reference.beginIndex);
    sample = scheduler.addNoise(Float32Array.from(original), Float32Array.from(noise), timesteps[0]);
    magnitude = largestMagnitude(noisy);
    expectClose(sample, noisy, 'addNoise', magnitude);
  }
  expect(timesteps.length, 'steps run').toBe(reference.trajectory.length);

  const random = new RecordedNoise();
  timesteps.forEach((t, i) => {
    const recorded = reference.trajectory[i];
    const modelInput = scheduler.scaleModelInput(sample, t);
    random.load(recorded.noise);
    const { prevSample, predOriginalSample } = scheduler.step(fakeModelOutput(modelInput, t), t, sample, random);
    random.expectAllDrawn(`step ${i}`);
    expectClose(predOriginalSample, recorded.predOriginalSample, `step ${i} (t=${t}) predOriginalSample`, magnitude);
    expectClose(prevSample, recorded.prevSample, `step ${i} (t=${t}) prevSample`, magnitude);
    magnitude = Math.max(magnitude, largestMagnitude(recorded.prevSample), largestMagnitude(recorded.predOriginalSample));
    sample = prevSample;
  });
}

/** Every sampler has its reference cases, so a sampler whose test file forgets it cannot pass by having none. */
export const SAMPLERS_WITH_REFERENCES = [...new Set(fixture.cases.map((c) => c.sampler))].sort();
