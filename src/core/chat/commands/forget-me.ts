import { textView } from '../views.js';
import type { ChatCommand } from './command.js';

export const forgetMeCommand: ChatCommand = {
  definition: {
    name: 'forget-me',
    description: 'Delete your history, images and settings',
    adminOnly: false,
    options: [{ name: 'confirm', description: 'Yes, delete everything I made', type: 'boolean', required: true }],
  },
  ephemeral: () => true,
  async handle({ requester, options, service }) {
    if (options.confirm !== true) return textView('Nothing deleted: set confirm to true to delete your history and images.');
    const removed = await service.forgetUser(requester);
    return textView(
      `Done: ${removed} generation(s), their prompts, images and previews and your settings are deleted; unfinished jobs were cancelled and refunded. ` +
        'Your quota use this period, any limit an admin set and any ban stay.',
    );
  },
};
