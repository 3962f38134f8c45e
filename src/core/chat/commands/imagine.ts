import { LIMITS } from '../../../engine/limits.js';
import { SAMPLER_NAMES } from '../../../engine/types.js';
import { GenerationRequest } from '../../generation.js';
import { expandPermutations } from '../../permutations.js';
import { ImagineOptions, parseImagine, type ParsedImagine } from '../imagine-options.js';
import { newGenerationId } from '../result-actions.js';
import type { UserSettings } from '../service.js';
import { acceptedView, errorView } from '../views.js';
import type { ChatCommand, OptionValues } from './command.js';
import type { ChatConfig } from '../chat-config.js';
import { invalidInput, isImagineError } from '../../errors.js';

const readOptions = (options: OptionValues): ImagineOptions => {
  const parsed = ImagineOptions.safeParse(options);
  if (!parsed.success) throw invalidInput(`I couldn't read the options of /imagine: ${parsed.error.issues.map((issue) => issue.path.join('.')).join(', ')}.`);
  return parsed.data;
};

export const imagineCommand: ChatCommand = {
  definition: {
    name: 'imagine',
    description: 'Make images from a prompt (flags such as --ar 16:9 --seed 1 --no trees work inside the prompt)',
    adminOnly: false,
    options: [
      { name: 'prompt', description: 'What to draw, optionally followed by --flags; a {red, green} apple makes one job per option', type: 'string', required: true },
      { name: 'negative', description: 'What to keep out of the image', type: 'string' },
      { name: 'aspect', description: 'Aspect ratio W:H, e.g. 16:9', type: 'string' },
      { name: 'size', description: 'Exact size WIDTHxHEIGHT, e.g. 512x768', type: 'string' },
      { name: 'seed', description: 'Seed for a repeatable result', type: 'integer', minValue: LIMITS.seed.min, maxValue: LIMITS.seed.max },
      { name: 'steps', description: 'Denoising steps', type: 'integer', minValue: LIMITS.steps.min, maxValue: LIMITS.steps.max },
      { name: 'guidance', description: 'How closely to follow the prompt (cfg)', type: 'number', minValue: LIMITS.guidance.min, maxValue: LIMITS.guidance.max },
      { name: 'sampler', description: 'Sampler', type: 'string', choices: SAMPLER_NAMES },
      { name: 'model', description: 'Model name', type: 'string' },
      { name: 'batch', description: 'How many images (1-4)', type: 'integer', minValue: LIMITS.batch.min, maxValue: LIMITS.batch.max },
      { name: 'mode', description: 'fast, or relax: same quota cost, runs when no fast job waits', type: 'string', choices: ['fast', 'relax'] },
      { name: 'draft', description: 'A quick draft: the model distilled for 4 steps (where it has one)', type: 'boolean' },
      { name: 'private', description: 'Only you see the result', type: 'boolean' },
    ],
  },
  ephemeral: (options) => options.private === true,
  check(options: OptionValues, config: ChatConfig) {
    parseCombinations(readOptions(options), config, {}, () => 0);
  },
  async handle({ requester, options, service, config, openGenerationMessage, openAnotherGenerationMessage }) {
    const settings = await service.settings(requester);
    const [first, ...others] = parseCombinations(readOptions(options), config, settings);
    const requestFor = (parsed: ParsedImagine, replyTarget: string) =>
      GenerationRequest.parse({ generationId: newGenerationId(), kind: 'imagine', params: parsed.params, requester, mode: parsed.mode, replyTarget });
    const request = requestFor(first, await openGenerationMessage(first.private));
    const placement = await service.submit(request);
    for (const parsed of others) {
      const message = await openAnotherGenerationMessage(parsed.private);
      const next = requestFor(parsed, message.replyTarget);
      try {
        await message.show({ ...acceptedView(next, await service.submit(next)), ephemeral: parsed.private });
      } catch (error) {
        if (!isImagineError(error)) throw error;
        // The combinations before this one are queued and charged already; this one, and any after it, are not.
        await message.show({ ...errorView(error), ephemeral: parsed.private });
        break;
      }
    }
    return { ...acceptedView(request, placement), ephemeral: first.private };
  },
};

/** Midjourney's permutation prompts: one generation per combination of `{…}` options, each checked before any is queued. */
function parseCombinations(options: ImagineOptions, config: ChatConfig, settings: UserSettings, randomSeed?: () => number): ParsedImagine[] {
  return expandPermutations(options.prompt).map((prompt) => parseImagine({ ...options, prompt }, config, settings, randomSeed));
}
