import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandContext, OptionValues } from '../../src/core/chat/commands/command.js';
import { findCommand, runCommand } from '../../src/core/chat/commands/index.js';
import type { Requester } from '../../src/core/generation.js';
import { ImagineError } from '../../src/core/errors.js';
import type { GenerationRequest } from '../../src/core/generation.js';
import { imagineRequest } from '../support/generation-requests.js';
import { startServiceStack, type ServiceStack } from '../support/service-stack.js';

const member: Requester = { platform: 'web', workspaceId: 'local', userId: 'web-prompt-writer', isAdmin: false };

/** Prompts that reached PostgreSQL and came back as "the queue is unavailable", or were charged for drawing nothing. */
const REFUSED: [string, string, RegExp][] = [
  ['a NUL character', 'a fox\u0000 in the snow', /the prompt holds a control character \(U\+0000 at character 6\); remove it/],
  ['an escape character', 'a fox \u001b[31m', /control character \(U\+001B at character 7\)/],
  ['a C1 control character', 'a fox\u0085', /control character \(U\+0085/],
  ['only zero-width spaces', '\u200b\u200b\u200b', /the prompt has no visible character/],
  ['only a right-to-left override', '\u202e', /no visible character/],
  ['only combining marks', '\u0301\u0308\u0327', /no visible character/],
  ['only Hangul fillers and a BOM', '\u3164\ufeff\u115f', /no visible character/],
];

describe.each(['pglite', 'postgres'] as const)('prompts the service refuses (%s)', (database) => {
  let stack: ServiceStack;

  beforeAll(async () => {
    stack = await startServiceStack({ database, quotaUnitsPerPeriod: 100, name: `prompt-text-${database}` });
  }, 120_000);
  afterAll(() => stack.stop());

  const context = (options: OptionValues): CommandContext => ({
    requester: member,
    subcommand: [],
    options,
    service: stack.service,
    config: stack.chatConfig,
    openGenerationMessage: async () => 'web:transcript-1',
    openAnotherGenerationMessage: async () => {
      throw new Error('a prompt without {…} options is one generation');
    },
    generationIdOfMessageLink: async () => null,
  });

  const nothingCharged = async () => {
    expect((await stack.service.quota(member)).remainingUnits).toBe(100);
    expect(await stack.database.prisma.generation.count()).toBe(0);
    expect(await stack.modelQueue.count()).toBe(0);
  };

  it.each(REFUSED)('/imagine with %s answers what to change and charges nothing', async (_, prompt, message) => {
    const view = await runCommand(findCommand('imagine')!, context({ prompt }));
    expect(view.ephemeral).toBe(true);
    expect(view.text).toMatch(message);
    await nothingCharged();
  });

  it('refuses a control character in the negative prompt, and lets a blank negative prompt through the check', async () => {
    const view = await runCommand(findCommand('imagine')!, context({ prompt: 'a fox', negative: 'trees\u0000' }));
    expect(view.text).toMatch(/the negative prompt holds a control character \(U\+0000 at character 6\)/);
    await nothingCharged();
  });

  it.each(REFUSED)('a request made elsewhere (a button, a form) with %s is invalid input, not "queue unavailable"', async (_, prompt) => {
    const request = imagineRequest({ prompt, requester: member });
    request.params.model = stack.chatConfig.defaultModel;
    const error = await stack.service.submit(request as GenerationRequest).then(() => undefined, (failure: unknown) => failure as ImagineError);
    expect(error).toBeInstanceOf(ImagineError);
    expect(error?.kind).toBe('invalid_input');
    expect(error?.userMessage).toMatch(/prompt (holds a control character|has no visible character)/);
    await nothingCharged();
  });

  it('accepts tabs, line breaks and a prompt whose visible text sits among invisible characters', async () => {
    const view = await runCommand(findCommand('imagine')!, context({ prompt: '\u200ba\tfox\non snow\u202e', steps: 1, batch: 1 }));
    expect(view.text).toMatch(/^🎨/);
    expect((await stack.service.quota(member)).remainingUnits).toBeLessThan(100);
  });
});
