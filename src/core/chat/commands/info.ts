import { ImagineError, invalidInput } from '../../errors.js';
import { parametersView } from '../views.js';
import type { ChatCommand } from './command.js';
import { stringOption } from './command.js';

const GENERATION_ID = /^[A-Za-z0-9_-]{8,64}$/;

export const infoCommand: ChatCommand = {
  definition: {
    name: 'info',
    description: 'Full parameters of an image, by seed, message link or generation id',
    adminOnly: false,
    options: [{ name: 'target', description: 'A seed, a link to the bot’s message, or a generation id', type: 'string', required: true }],
  },
  ephemeral: () => true,
  async handle({ requester, options, service, generationIdOfMessageLink }) {
    const target = (stringOption(options, 'target') ?? '').trim();
    let record;
    if (/^\d{1,10}$/.test(target)) {
      record = await service.findBySeed(requester, Number(target));
    } else if (/^https?:\/\//.test(target)) {
      const generationId = await generationIdOfMessageLink(target);
      if (!generationId) throw invalidInput('That link does not point to one of my images.');
      record = await service.findGeneration(generationId);
    } else if (GENERATION_ID.test(target)) {
      record = await service.findGeneration(target);
    } else {
      throw invalidInput('Give a seed (a whole number), a link to one of my messages, or a generation id.');
    }
    if (!record) throw new ImagineError('not_found', `I found no image for "${target}".`);
    return parametersView(record);
  },
};
