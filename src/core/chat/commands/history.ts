import { textView } from '../views.js';
import type { ChatCommand } from './command.js';

export const historyCommand: ChatCommand = {
  definition: {
    name: 'history',
    description: 'Your latest generations',
    adminOnly: false,
    options: [{ name: 'count', description: 'How many (1-25)', type: 'integer', minValue: 1, maxValue: 25 }],
  },
  ephemeral: () => true,
  async handle({ requester, options, service }) {
    const count = typeof options.count === 'number' ? Math.min(25, Math.max(1, options.count)) : 10;
    const records = await service.history(requester, count);
    if (records.length === 0) return textView('You have not made any images yet. Try /imagine.');
    const lines = records.map((record) => {
      const { params, generationId, kind } = record.request;
      const day = record.createdAt.toISOString().slice(0, 10);
      return `${day} ${kind} “${params.prompt.slice(0, 80)}” seed ${params.seed} — ${record.status} (${generationId})`;
    });
    return textView(lines.join('\n'));
  },
};
