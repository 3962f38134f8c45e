import { describeQuota, textView } from '../views.js';
import type { ChatCommand } from './command.js';

export const quotaCommand: ChatCommand = {
  definition: { name: 'quota', description: 'How many images you can still make', adminOnly: false },
  ephemeral: () => true,
  async handle({ requester, service }) {
    const quota = await service.quota(requester);
    if (quota.banned) return textView('You are banned from making images here.');
    const reset = quota.resetsAt ? ` Resets ${quota.resetsAt.toISOString().replace('T', ' ').slice(0, 16)} UTC.` : '';
    return textView(`You have ${describeQuota(quota)}${reset}`);
  },
};
