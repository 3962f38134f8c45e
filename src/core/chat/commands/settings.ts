import { LIMITS } from '../../../engine/limits.js';
import { SAMPLER_NAMES, type SamplerName } from '../../../engine/types.js';
import { invalidInput } from '../../errors.js';
import type { ChatConfig } from '../chat-config.js';
import type { UserSettings } from '../service.js';
import { textView } from '../views.js';
import type { ChatCommand } from './command.js';
import { stringOption } from './command.js';

/** A line for each model whose folder lists what it draws, so a new user knows what to ask for. */
export function modelSummaries(config: ChatConfig): string[] {
  return config.models.flatMap((model) =>
    model.knows ? [`${model.name} knows ${model.knows.count} things, for example: ${model.knows.sample.join(', ')}.`] : [],
  );
}

const modelNamed = (config: ChatConfig, name: string | undefined) => config.models.find((candidate) => candidate.name === (name ?? config.defaultModel));

function describe(settings: UserSettings, config: ChatConfig): string {
  const model = modelNamed(config, settings.model);
  const sampler = settings.sampler ?? `${model?.defaultSampler} (model default)`;
  const steps = settings.steps ?? `${model?.defaultSteps} (model default)`;
  return [
    `Your defaults: model ${settings.model ?? config.defaultModel}, mode ${settings.mode ?? 'fast'}, sampler ${sampler}, steps ${steps}.`,
    ...modelSummaries(config),
  ].join('\n');
}

export const settingsCommand: ChatCommand = {
  definition: {
    name: 'settings',
    description: 'Show or change your defaults for /imagine',
    adminOnly: false,
    options: [
      { name: 'model', description: 'Default model', type: 'string' },
      { name: 'mode', description: 'Default mode', type: 'string', choices: ['fast', 'relax'] },
      { name: 'sampler', description: 'Default sampler', type: 'string', choices: SAMPLER_NAMES },
      { name: 'steps', description: 'Default denoising steps', type: 'integer', minValue: LIMITS.steps.min, maxValue: LIMITS.steps.max },
    ],
  },
  ephemeral: () => true,
  async handle({ requester, options, service, config }) {
    const model = stringOption(options, 'model');
    const mode = stringOption(options, 'mode');
    const sampler = stringOption(options, 'sampler');
    const steps = options.steps;
    if (model === undefined && mode === undefined && sampler === undefined && steps === undefined) {
      return textView(describe(await service.settings(requester), config));
    }
    if (model !== undefined && !config.models.some((candidate) => candidate.name === model)) {
      throw invalidInput(`Model "${model}" is not one of ${config.models.map((candidate) => candidate.name).join(', ')}.`);
    }
    if (mode !== undefined && mode !== 'fast' && mode !== 'relax') throw invalidInput(`Mode "${mode}" is not one of fast, relax.`);
    if (sampler !== undefined && !(SAMPLER_NAMES as readonly string[]).includes(sampler)) {
      throw invalidInput(`Sampler "${sampler}" is not one of ${SAMPLER_NAMES.join(', ')}.`);
    }
    if (steps !== undefined) {
      // Checked against the model the steps will be used with: the one named here, else the one already chosen.
      const stepsModel = modelNamed(config, model ?? (await service.settings(requester)).model);
      const maxSteps = stepsModel?.maxSteps ?? LIMITS.steps.max;
      if (typeof steps !== 'number' || !Number.isInteger(steps) || steps < LIMITS.steps.min || steps > maxSteps) {
        throw invalidInput(`Steps "${steps}" is not a whole number from ${LIMITS.steps.min} to ${maxSteps} (the most ${stepsModel?.name ?? 'any model'} takes).`);
      }
    }
    const changes: UserSettings = {
      ...(model && { model }),
      ...(mode && { mode }),
      ...(sampler && { sampler: sampler as SamplerName }),
      ...(typeof steps === 'number' && { steps }),
    };
    return textView(`Saved. ${describe(await service.updateSettings(requester, changes), config)}`);
  },
};
