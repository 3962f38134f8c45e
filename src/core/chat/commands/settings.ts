import { invalidInput } from '../../errors.js';
import type { UserSettings } from '../service.js';
import { textView } from '../views.js';
import type { ChatCommand } from './command.js';
import { stringOption } from './command.js';

const describe = (settings: UserSettings, defaultModel: string) =>
  `Your defaults: model ${settings.model ?? defaultModel}, mode ${settings.mode ?? 'fast'}.`;

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
    if (model === undefined && mode === undefined) return textView(describe(await service.settings(requester), config.defaultModel));
    if (model !== undefined && !config.models.some((candidate) => candidate.name === model)) {
      throw invalidInput(`Model "${model}" is not one of ${config.models.map((candidate) => candidate.name).join(', ')}.`);
    }
    if (mode !== undefined && mode !== 'fast' && mode !== 'relax') throw invalidInput('Mode is fast or relax.');
    const changes: UserSettings = { ...(model && { model }), ...(mode && { mode }) };
    return textView(`Saved. ${describe(await service.updateSettings(requester, changes), config.defaultModel)}`);
  },
};
