import { describe, expect, it } from 'vitest';
import { EngineError } from '../../../src/engine/errors.js';
import { createScheduler, parseSchedulerConfig } from '../../../src/engine/schedulers/index.js';
import { SAMPLER_NAMES, type RandomSource } from '../../../src/engine/types.js';
import { SAMPLERS_WITH_REFERENCES } from './reference.js';

const SD15 = parseSchedulerConfig({
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  set_alpha_to_one: false,
  steps_offset: 1,
  clip_sample: false,
});

function refusal(action: () => unknown): EngineError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(EngineError);
    return error as EngineError;
  }
  throw new Error('it was accepted');
}

const noRandomness: RandomSource = {
  randn: () => {
    throw new Error('unexpected noise draw');
  },
  nextUniform: () => {
    throw new Error('unexpected uniform draw');
  },
};

describe('the diffusers reference vectors', () => {
  it('cover every sampler', () => {
    expect(SAMPLERS_WITH_REFERENCES).toEqual([...SAMPLER_NAMES].sort());
  });
});

describe('createScheduler', () => {
  it.each(SAMPLER_NAMES)('makes a %s scheduler that reports its own name', (name) => {
    expect(createScheduler(name, SD15).name).toBe(name);
  });

  it.each(SAMPLER_NAMES)('refuses fewer than one step or a fraction of a step for %s', (name) => {
    for (const steps of [0, -3, 2.5, Number.NaN]) {
      const error = refusal(() => createScheduler(name, SD15).setTimesteps(steps));
      expect(error.kind).toBe('invalid_input');
      expect(error.userMessage).toContain('Steps must be a whole number from 1 to 1000');
    }
  });

  it.each(SAMPLER_NAMES)('refuses more steps than the model has training timesteps for %s', (name) => {
    const error = refusal(() => createScheduler(name, parseSchedulerConfig({ num_train_timesteps: 100 })).setTimesteps(101));
    expect(error.kind).toBe('invalid_input');
    expect(error.userMessage).toContain('from 1 to 100');
  });

  it('refuses more LCM steps than the schedule the model was distilled on', () => {
    const scheduler = createScheduler('lcm', parseSchedulerConfig({ original_inference_steps: 8 }));
    const error = refusal(() => scheduler.setTimesteps(9));
    expect(error.kind).toBe('invalid_input');
    expect(error.userMessage).toContain('at most 8 steps');
    scheduler.setTimesteps(8);
    expect(scheduler.timesteps).toHaveLength(8);
  });

  it('refuses an LCM config whose original_inference_steps exceeds num_train_timesteps', () => {
    const error = refusal(() => createScheduler('lcm', parseSchedulerConfig({ num_train_timesteps: 10, original_inference_steps: 50 })));
    expect(error.kind).toBe('model_failure');
    expect(error.userMessage).toContain('"original_inference_steps"');
  });

  it('refuses euler-a for a model that predicts the sample, as diffusers cannot run it either', () => {
    const error = refusal(() => createScheduler('euler-a', parseSchedulerConfig({ prediction_type: 'sample' })));
    expect(error.kind).toBe('invalid_input');
    expect(error.userMessage).toContain('euler-a');
  });

  it('refuses euler for configs asking for the log-linear or continuous-time variants it does not implement', () => {
    const logLinear = refusal(() => createScheduler('euler', parseSchedulerConfig({ interpolation_type: 'log_linear' })));
    expect(logLinear.kind).toBe('invalid_input');
    expect(logLinear.userMessage).toContain('"log_linear"');
    expect(refusal(() => createScheduler('euler', parseSchedulerConfig({ timestep_type: 'continuous' }))).userMessage).toContain('"continuous"');
    expect(createScheduler('ddim', parseSchedulerConfig({ interpolation_type: 'log_linear' })).name).toBe('ddim');
  });

  it('refuses ddpm for variance types other than fixed_small', () => {
    const error = refusal(() => createScheduler('ddpm', parseSchedulerConfig({ variance_type: 'fixed_large' })));
    expect(error.kind).toBe('invalid_input');
    expect(error.userMessage).toContain('"fixed_large"');
    expect(createScheduler('ddpm', parseSchedulerConfig({ variance_type: null })).name).toBe('ddpm');
  });

  it('accepts eta only for ddim, and only from 0 to 1', () => {
    expect(refusal(() => createScheduler('euler', SD15, { eta: 0.5 })).kind).toBe('invalid_input');
    expect(refusal(() => createScheduler('ddim', SD15, { eta: 1.5 })).userMessage).toContain('between 0 and 1');
    expect(createScheduler('euler', SD15, { eta: 0 }).name).toBe('euler');
    expect(createScheduler('ddim', SD15, { eta: 1 }).name).toBe('ddim');
  });

  it('refuses a steps_offset that pushes a timestep past the training range', () => {
    const scheduler = createScheduler('ddim', parseSchedulerConfig({ steps_offset: 5, num_train_timesteps: 10 }));
    scheduler.setTimesteps(1);
    expect(scheduler.timesteps).toEqual([5]);
    const error = refusal(() => scheduler.setTimesteps(2));
    expect(error.kind).toBe('model_failure');
    expect(error.userMessage).toContain('"steps_offset"');
  });

  it.each(['ddpm', 'ddim', 'dpmpp-2m', 'dpmpp-2m-karras', 'lcm'] as const)(
    'feeds the UNet whole-number timesteps within the training range with %s, for every spacing',
    (name) => {
      for (const spacing of ['leading', 'trailing', 'linspace']) {
        for (const steps of [1, 7, 25, 50]) {
          const scheduler = createScheduler(name, parseSchedulerConfig({ timestep_spacing: spacing, steps_offset: 1 }));
          scheduler.setTimesteps(steps);
          expect(scheduler.timesteps).toHaveLength(steps);
          for (const t of scheduler.timesteps) {
            expect(Number.isInteger(t) && t >= 0 && t < 1000, `${spacing} ${steps}: ${t}`).toBe(true);
          }
        }
      }
    },
  );

  it('gives trailing spacing exactly the steps asked for, where numpy arange would add one (61 steps)', () => {
    const scheduler = createScheduler('ddim', parseSchedulerConfig({ timestep_spacing: 'trailing' }));
    scheduler.setTimesteps(61);
    expect(scheduler.timesteps).toHaveLength(61);
    expect(scheduler.timesteps.at(-1)).toBe(15);
  });

  it('refuses a model output whose size differs from the sample', () => {
    const scheduler = createScheduler('ddim', SD15);
    scheduler.setTimesteps(4);
    const error = refusal(() => scheduler.step(new Float32Array(3), scheduler.timesteps[0], new Float32Array(4), noRandomness));
    expect(error.kind).toBe('model_failure');
  });

  it.each(['ddim', 'euler', 'dpmpp-2m', 'dpmpp-2m-karras'] as const)('never draws noise with the deterministic %s sampler', (name) => {
    const scheduler = createScheduler(name, SD15);
    scheduler.setTimesteps(5);
    let sample: Float32Array = new Float32Array(8).fill(scheduler.initNoiseSigma);
    for (const t of scheduler.timesteps) {
      const modelInput = scheduler.scaleModelInput(sample, t);
      sample = scheduler.step(modelInput.map((value) => 0.5 * value), t, sample, noRandomness).prevSample;
    }
    expect(sample.every(Number.isFinite)).toBe(true);
  });

  it('scales the image-to-image noise by sigma for Euler and by the signal/noise mix for DDIM', () => {
    const euler = createScheduler('euler', SD15);
    euler.setTimesteps(10);
    euler.setBeginIndex(4);
    const eulerNoisy = euler.addNoise(Float32Array.of(1), Float32Array.of(1), euler.timesteps[4]);
    const ddim = createScheduler('ddim', SD15);
    ddim.setTimesteps(10);
    const ddimNoisy = ddim.addNoise(Float32Array.of(1), Float32Array.of(0), ddim.timesteps[4]);
    expect(eulerNoisy[0]).toBeGreaterThan(1);
    expect(ddimNoisy[0]).toBeGreaterThan(0);
    expect(ddimNoisy[0]).toBeLessThan(1);
  });
});

describe('every deterministic sampler, given a model that knows the clean latents', () => {
  it.each(['ddim', 'euler', 'dpmpp-2m', 'dpmpp-2m-karras', 'lcm'] as const)('%s ends on those latents', (name) => {
    const config = parseSchedulerConfig({ prediction_type: 'sample', set_alpha_to_one: true, clip_sample: false, timestep_spacing: 'leading' });
    const clean = Float32Array.of(0.5, -0.25, 1, 0);
    const scheduler = createScheduler(name, config);
    scheduler.setTimesteps(6);
    let sample: Float32Array = Float32Array.of(1.3, -0.7, 0.2, 2.1).map((value) => value * scheduler.initNoiseSigma);
    // LCM re-noises between its consistency estimates; these draws are the noise the clean latents would carry.
    const zeroNoise: RandomSource = { randn: (count) => new Float32Array(count), nextUniform: () => 0 };
    for (const t of scheduler.timesteps) {
      scheduler.scaleModelInput(sample, t);
      sample = scheduler.step(clean, t, sample, zeroNoise).prevSample;
    }
    for (let i = 0; i < clean.length; i++) expect(sample[i]).toBeCloseTo(clean[i], 3);
  });
});
