import { textView } from '../views.js';
import type { ChatCommand } from './command.js';
import { stringOption } from './command.js';

export const cancelCommand: ChatCommand = {
  definition: {
    name: 'cancel',
    description: 'Cancel your queued or running generation',
    adminOnly: false,
    options: [{ name: 'generation', description: 'Generation id (default: your latest unfinished one)', type: 'string' }],
  },
  ephemeral: () => true,
  async handle({ requester, options, service }) {
    const cancelled = await service.cancel(requester, stringOption(options, 'generation'));
    return textView(cancelled ? `Cancelled ${cancelled}.` : 'You have nothing queued or running.');
  },
};
