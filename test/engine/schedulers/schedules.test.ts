import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createScheduler, parseSchedulerConfig } from '../../../src/engine/schedulers/index.js';
import type { SamplerName } from '../../../src/engine/types.js';
import { expectClose } from './reference.js';

/**
 * schedules.json (make_reference.py) holds diffusers' timesteps and initial noise scale for every sampler, four noise
 * schedules, three spacings and 22 step counts. Integer timesteps must be identical: they are where numpy's
 * round-half-to-even, its arange stride and float32 alphas decide which integer the UNet sees.
 */
interface RecordedSchedule {
  sampler: SamplerName;
  config: number;
  spacing: string;
  steps: number;
  timesteps: number[];
  initNoiseSigma: number;
}

const { configs, schedules } = JSON.parse(
  readFileSync(new URL('../../fixtures/schedulers/schedules.json', import.meta.url), 'utf8'),
) as { configs: Record<string, unknown>[]; schedules: RecordedSchedule[] };

const INTEGRAL_SAMPLERS: readonly SamplerName[] = ['ddpm', 'ddim', 'dpmpp-2m', 'dpmpp-2m-karras', 'lcm'];

describe('timestep schedules against diffusers', () => {
  const groups = new Map<string, RecordedSchedule[]>();
  for (const schedule of schedules) {
    const name = `${schedule.sampler} with ${JSON.stringify(configs[schedule.config])}`;
    groups.set(name, [...(groups.get(name) ?? []), schedule]);
  }
  it.each([...groups.entries()])('match for %s, every spacing and step count', (_name, recorded) => {
    for (const schedule of recorded) {
      const what = `${schedule.spacing} ${schedule.steps} steps`;
      const config = parseSchedulerConfig({ ...configs[schedule.config], timestep_spacing: schedule.spacing });
      const scheduler = createScheduler(schedule.sampler, config);
      scheduler.setTimesteps(schedule.steps);
      if (INTEGRAL_SAMPLERS.includes(schedule.sampler)) {
        expect(scheduler.timesteps, what).toEqual(schedule.timesteps);
      } else {
        expectClose(scheduler.timesteps, schedule.timesteps, `${what}: timesteps`);
      }
      expectClose([scheduler.initNoiseSigma], [schedule.initNoiseSigma], `${what}: initNoiseSigma`);
    }
  });
});
