import { invalidInput } from '../errors.js';
import type { SamplerName, Scheduler } from '../types.js';
import type { SchedulerConfig } from './config.js';
import { DdimScheduler } from './ddim.js';
import { DdpmScheduler } from './ddpm.js';
import { DpmPlusPlus2mScheduler } from './dpmpp-2m.js';
import { EulerAncestralScheduler } from './euler-ancestral.js';
import { EulerScheduler } from './euler.js';
import { LcmScheduler } from './lcm.js';

export { parseSchedulerConfig, type SchedulerConfig } from './config.js';

/**
 * A fresh scheduler for one generation. The model's scheduler_config.json supplies the noise schedule and what the
 * model predicts; the sampler name fixes the algorithm (DPM++ 2M's order and solver, Karras σ or not), whatever the
 * config's own solver keys say.
 */
export function createScheduler(name: SamplerName, config: SchedulerConfig, options: { eta?: number } = {}): Scheduler {
  if (options.eta !== undefined && options.eta !== 0 && name !== 'ddim') {
    throw invalidInput(`eta applies only to the ddim sampler; ${name} was chosen.`);
  }
  switch (name) {
    case 'ddpm':
      return new DdpmScheduler(config);
    case 'ddim':
      return new DdimScheduler(config, options);
    case 'euler':
      return new EulerScheduler(config);
    case 'euler-a':
      return new EulerAncestralScheduler(config);
    case 'dpmpp-2m':
      return new DpmPlusPlus2mScheduler(config, false);
    case 'dpmpp-2m-karras':
      return new DpmPlusPlus2mScheduler(config, true);
    case 'lcm':
      return new LcmScheduler(config);
    default:
      throw invalidInput(`Unknown sampler "${String(name)}".`);
  }
}
