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

const describe = (settings: UserSettings, config: ChatConfig) =>
  [`Your defaults: model ${settings.model ?? config.defaultModel}, mode ${settings.mode ?? 'fast'}.`, ...modelSummaries(config)].join('\n');

export const settingsCommand: ChatCommand = {
  definition: {
    name: 'settings',
    description: 'Show or change your defaults for /imagine',
    adminOnly: false,
    options: [
      { name: 'model', description: 'Default model', type: 'string' },
      { name: 'mode', description: 'Default mode', type: 'string', choices: ['fast', 'relax'] },
    ],
  },
  ephemeral: () => true,
  async handle({ requester, options, service, config }) {
    const model = stringOption(options, 'model');
    const mode = stringOption(options, 'mode');
    if (model === undefined && mode === undefined) return textView(describe(await service.settings(requester), config));
    if (model !== undefined && !config.models.some((candidate) => candidate.name === model)) {
      throw invalidInput(`Model "${model}" is not one of ${config.models.map((candidate) => candidate.name).join(', ')}.`);
    }
    if (mode !== undefined && mode !== 'fast' && mode !== 'relax') throw invalidInput('Mode is fast or relax.');
    const changes: UserSettings = { ...(model && { model }), ...(mode && { mode }) };
    return textView(`Saved. ${describe(await service.updateSettings(requester, changes), config)}`);
  },
};
