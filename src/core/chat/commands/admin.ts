import { ImagineError, invalidInput } from '../../errors.js';
import type { QuotaStatus } from '../service.js';
import { describeQuota, textView } from '../views.js';
import type { ChatCommand, CommandOptionDefinition } from './command.js';
import { stringOption } from './command.js';

const user: CommandOptionDefinition = { name: 'user', description: 'The member', type: 'user', required: true };
const units = (description: string): CommandOptionDefinition => ({ name: 'units', description, type: 'integer', required: true, minValue: 0 });

const quotaText = (userId: string, quota: QuotaStatus) => `${userId}: ${describeQuota(quota)}`;

export const adminCommand: ChatCommand = {
  definition: {
    name: 'admin',
    description: 'Quotas, bans and statistics (admins only)',
    adminOnly: true,
    subcommands: [
      {
        name: 'quota',
        description: 'Change a member’s quota',
        subcommands: [
          { name: 'set', description: 'Set the quota limit', options: [user, units('New limit per period')] },
          { name: 'grant', description: 'Give extra images this period', options: [user, units('Extra units this period')] },
          { name: 'reset', description: 'Restore the full quota now', options: [user] },
        ],
      },
      { name: 'ban', description: 'Stop a member from making images', options: [user] },
      { name: 'unban', description: 'Let a banned member make images again', options: [user] },
      { name: 'stats', description: 'Queue and usage statistics' },
    ],
  },
  ephemeral: () => true,
  async handle({ requester, subcommand, options, service }) {
    if (!requester.isAdmin) throw new ImagineError('forbidden', 'Only admins can use /admin.');
    const userId = stringOption(options, 'user');
    const path = subcommand.join(' ');
    if (path === 'stats') {
      const stats = await service.stats(requester);
      return textView(
        `Queued ${stats.queued}, running ${stats.running}; today ${stats.succeededToday} done, ${stats.failedToday} failed, ${stats.activeUsersToday} active users.`,
      );
    }
    if (!userId) throw invalidInput(`/admin ${path} needs a user.`);
    const count = typeof options.units === 'number' && Number.isInteger(options.units) && options.units >= 0 ? options.units : undefined;
    switch (path) {
      case 'quota set':
        if (count === undefined) throw invalidInput('Units must be a whole number, 0 or more (see /quota for what things cost).');
        return textView(quotaText(userId, await service.setQuota(requester, userId, count)));
      case 'quota grant':
        if (count === undefined) throw invalidInput('Units must be a whole number, 0 or more (see /quota for what things cost).');
        return textView(quotaText(userId, await service.grantQuota(requester, userId, count)));
      case 'quota reset':
        return textView(quotaText(userId, await service.resetQuota(requester, userId)));
      case 'ban':
      case 'unban':
        await service.setBanned(requester, userId, path === 'ban');
        return textView(path === 'ban' ? `${userId} is banned.` : `${userId} is no longer banned.`);
      default:
        throw invalidInput(`/admin has no subcommand "${path}".`);
    }
  },
};
