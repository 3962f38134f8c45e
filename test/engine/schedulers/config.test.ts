import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePythonJson, readJson } from '../../../src/engine/json-files.js';
import { createScheduler } from '../../../src/engine/schedulers/index.js';
import { EngineError } from '../../../src/engine/errors.js';
import {
  DDPM_NOISE_DEFAULTS,
  noiseSchedule,
  parseSchedulerConfig,
  roundHalfEven,
} from '../../../src/engine/schedulers/config.js';

/** Stable Diffusion 1.5's scheduler/scheduler_config.json as diffusers saved it. */
const SD15_PNDM = {
  _class_name: 'PNDMScheduler',
  _diffusers_version: '0.6.0',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
};

function refusal(json: unknown): EngineError {
  try {
    parseSchedulerConfig(json);
  } catch (error) {
    expect(error).toBeInstanceOf(EngineError);
    return error as EngineError;
  }
  throw new Error('the config was accepted');
}

describe('parseSchedulerConfig', () => {
  it('reads a diffusers scheduler_config.json and ignores the keys it does not use', () => {
    expect(parseSchedulerConfig(SD15_PNDM)).toEqual({
      beta_end: 0.012,
      beta_schedule: 'scaled_linear',
      beta_start: 0.00085,
      num_train_timesteps: 1000,
      set_alpha_to_one: false,
      steps_offset: 1,
      trained_betas: null,
    });
  });

  it('loads a DPM++ config that Python\'s json wrote with "lambda_min_clipped": -Infinity, as no clipping', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'imagine-scheduler-'));
    try {
      const path = join(dir, 'scheduler_config.json');
      // Byte for byte what diffusers' save_config writes for DPMSolverMultistepScheduler (json.dumps allows -Infinity).
      await writeFile(path, '{\n  "_class_name": "DPMSolverMultistepScheduler",\n  "beta_schedule": "scaled_linear",\n  "lambda_min_clipped": -Infinity,\n  "variance_type": null\n}\n');
      const config = parseSchedulerConfig(await readJson(path));
      expect(config.lambda_min_clipped).toBe(Number.NEGATIVE_INFINITY);
      const unclipped = createScheduler('dpmpp-2m', { beta_schedule: 'scaled_linear' });
      const clippedAtMinusInfinity = createScheduler('dpmpp-2m', config);
      unclipped.setTimesteps(20);
      clippedAtMinusInfinity.setTimesteps(20);
      expect([...clippedAtMinusInfinity.timesteps]).toEqual([...unclipped.timesteps]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('still refuses NaN where a number must be finite, naming the key', () => {
    expect(refusal(parsePythonJson('{"beta_start": NaN}')).message).toMatch(/"beta_start"/);
  });

  it('leaves absent keys absent, so each scheduler applies its own class defaults', () => {
    expect(parseSchedulerConfig({})).toEqual({});
  });

  it('refuses a beta_schedule it cannot compute, naming the key, the value and the accepted ones', () => {
    const error = refusal({ ...SD15_PNDM, beta_schedule: 'sigmoid' });
    expect(error.kind).toBe('model_failure');
    expect(error.userMessage).toContain('"beta_schedule"');
    expect(error.userMessage).toContain('"sigmoid"');
    expect(error.userMessage).toContain('scaled_linear');
    expect(error.userMessage).toContain('squaredcos_cap_v2');
  });

  it('refuses a prediction_type other than epsilon, v_prediction or sample', () => {
    const error = refusal({ prediction_type: 'flow_prediction' });
    expect(error.kind).toBe('model_failure');
    expect(error.userMessage).toContain('"prediction_type"');
    expect(error.userMessage).toContain('v_prediction');
  });

  it('refuses a timestep_spacing other than leading, trailing or linspace', () => {
    expect(refusal({ timestep_spacing: 'karras' }).userMessage).toContain('"timestep_spacing"');
  });

  it('refuses features meant for pixel-space or learned-variance models instead of ignoring them', () => {
    expect(refusal({ thresholding: true }).userMessage).toContain('"thresholding"');
    expect(refusal({ variance_type: 'learned_range' }).userMessage).toContain('"variance_type"');
  });

  it('refuses numbers of the wrong kind', () => {
    expect(refusal({ num_train_timesteps: 999.5 }).userMessage).toContain('"num_train_timesteps"');
    expect(refusal({ steps_offset: -1 }).userMessage).toContain('"steps_offset"');
    expect(refusal({ beta_start: 'small' }).userMessage).toContain('"beta_start"');
  });

  it('refuses trained_betas whose count differs from num_train_timesteps', () => {
    const error = refusal({ num_train_timesteps: 4, trained_betas: [0.1, 0.2, 0.3] });
    expect(error.kind).toBe('model_failure');
    expect(error.userMessage).toContain('"trained_betas" has 3 values');
  });

  it('refuses a file that is not a JSON object', () => {
    expect(refusal([1, 2]).kind).toBe('model_failure');
    expect(refusal(null).userMessage).toContain('JSON object');
  });
});

describe('noiseSchedule', () => {
  it('builds the linear schedule from beta_start to beta_end inclusive', () => {
    const { betas } = noiseSchedule({ num_train_timesteps: 3 }, DDPM_NOISE_DEFAULTS);
    expect([...betas]).toEqual([0.0001, 0.01005, 0.02]);
  });

  it('multiplies the alphas 1 − β rounded to float32, as diffusers forms them', () => {
    const { alphasCumprod } = noiseSchedule({ num_train_timesteps: 3 }, DDPM_NOISE_DEFAULTS);
    const alphas = [1 - 0.0001, 1 - 0.01005, 1 - 0.02].map(Math.fround);
    expect([...alphasCumprod]).toEqual([alphas[0], alphas[0] * alphas[1], alphas[0] * alphas[1] * alphas[2]]);
  });

  it('makes scaled_linear linear in the square root of beta', () => {
    const { betas } = noiseSchedule({ num_train_timesteps: 3, beta_start: 0.01, beta_end: 0.09, beta_schedule: 'scaled_linear' }, DDPM_NOISE_DEFAULTS);
    expect(betas[0]).toBeCloseTo(0.01, 15);
    expect(betas[1]).toBeCloseTo(0.04, 15);
    expect(betas[2]).toBeCloseTo(0.09, 15);
  });

  it('uses trained_betas as given', () => {
    const { betas } = noiseSchedule({ num_train_timesteps: 2, trained_betas: [0.1, 0.5] }, DDPM_NOISE_DEFAULTS);
    expect([...betas]).toEqual([0.1, 0.5]);
  });

  it('rescales to zero terminal SNR: the last alpha-bar becomes 0 and the first is kept', () => {
    const plain = noiseSchedule({}, DDPM_NOISE_DEFAULTS);
    const rescaled = noiseSchedule({ rescale_betas_zero_snr: true }, DDPM_NOISE_DEFAULTS);
    expect(rescaled.alphasCumprod[999]).toBeCloseTo(0, 12);
    expect(rescaled.alphasCumprod[0]).toBeCloseTo(plain.alphasCumprod[0], 12);
  });
});

describe('roundHalfEven', () => {
  it('rounds halves to the even neighbour as numpy does', () => {
    expect([0.5, 1.5, 2.5, 937.5, 812.5, -0.5, 2.4, 2.6].map(roundHalfEven)).toEqual([0, 2, 2, 938, 812, 0, 2, 3]);
  });
});
