import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Requester } from '../../../src/core/generation.js';
import { isChatAdmin } from '../../../src/core/chat/admin.js';
import type { CommandContext, OptionValues } from '../../../src/core/chat/commands/command.js';
import { CHAT_COMMANDS, findCommand, runCommand } from '../../../src/core/chat/commands/index.js';
import type { GenerationRecord } from '../../../src/core/chat/service.js';
import type { ChatView } from '../../../src/core/chat/views.js';
import { TEST_CHAT_CONFIG } from '../../support/chat-config.js';
import { startServiceStack, type ServiceStack } from '../../support/service-stack.js';
import { expectHeldExactly, finishedGeneration } from '../../support/stack-results.js';

/**
 * The chat commands as every adapter runs them (runCommand), over the real ImagineService of one service stack: the
 * queue in Redis, a worker running the tiny-sd fixture, the ledger and history in PGlite. What test/service/
 * chat-commands.test.ts already covers (/history, /info, /settings defaults, /cancel, /admin quota and bans, quota
 * running out in a permutation prompt) is not repeated here.
 */

const member = (userId: string): Requester => ({ platform: 'discord', workspaceId: 'guild-core-commands', userId, isAdmin: false });

/** The reply of an accepted generation; the real queue decides the position and the wait. */
const accepted = (prompt: string) => new RegExp(`^🎨 “${prompt}” — (starting now|position \\d+ in the queue), ready in about \\d+ (s|min)\\.$`);

/** Messages opened after the command's reply, with what each was last shown. */
function anotherMessages() {
  const shown: { replyTarget: string; text?: string; ephemeral?: boolean }[] = [];
  const openAnotherGenerationMessage = async () => {
    const message: (typeof shown)[number] = { replyTarget: `reply-target-${shown.length + 2}` };
    shown.push(message);
    return {
      replyTarget: message.replyTarget,
      show: async (view: ChatView) => void Object.assign(message, { text: view.text, ephemeral: view.ephemeral }),
      remove: async () => undefined,
    };
  };
  return { shown, openAnotherGenerationMessage };
}

describe('chat commands', () => {
  let stack: ServiceStack;
  beforeAll(async () => {
    // A permutation prompt's four combinations are queued at once, one more than the default per-user cap of jobs.
    stack = await startServiceStack({ name: 'core-commands', jobCaps: { perUser: 4 } });
  }, 120_000);
  afterAll(() => stack?.stop());

  function context(requester: Requester, options: OptionValues, extra: Partial<CommandContext> = {}): CommandContext {
    return {
      requester,
      subcommand: [],
      options,
      service: stack.service,
      config: stack.chatConfig,
      openGenerationMessage: async () => 'reply-target-1',
      openAnotherGenerationMessage: async () => {
        throw new Error('one generation opens one message');
      },
      generationIdOfMessageLink: async () => null,
      ...extra,
    };
  }

  const run = (name: string, requester: Requester, options: OptionValues, extra: Partial<CommandContext> = {}) =>
    runCommand(findCommand(name)!, context(requester, options, extra));

  /** The requester's generations as the store has them, oldest first. */
  const madeBy = async (requester: Requester) => (await stack.service.history(requester, 20)).reverse();

  const expectSubmitted = (requester: Requester, records: GenerationRecord[]) => expectHeldExactly(stack, requester, records.map((record) => record.request));

  const finished = (generationId: string) => finishedGeneration(stack, generationId);

  /** A finished batch-1 imagine of the requester, small and quick on the fixture model: one picture a blend can take. */
  async function finishedPicture(requester: Requester, prompt: string, extra: OptionValues = {}) {
    await run('imagine', requester, { prompt: `${prompt} --steps 2`, batch: 1, ...extra });
    const [latest] = await stack.service.history(requester, 1);
    return finished(latest!.request.generationId);
  }

  it('defines every command of the product once', () => {
    expect(CHAT_COMMANDS.map((command) => command.definition.name)).toEqual([
      'imagine',
      'blend',
      'quota',
      'history',
      'info',
      'cancel',
      'settings',
      'forget-me',
      'admin',
    ]);
  });

  it('/imagine submits a request aimed at the opened message, charges it and shows the queue position', async () => {
    const ada = member('ada');
    const view = await run('imagine', ada, { prompt: 'a fox --ar 2:1 --seed 5 --steps 2', batch: 1 });
    expect(view.text).toMatch(accepted('a fox'));
    const [record] = await madeBy(ada);
    expect(record!.request).toMatchObject({
      kind: 'imagine',
      replyTarget: 'reply-target-1',
      requester: { platform: 'discord', workspaceId: 'guild-core-commands', userId: 'ada' },
      params: { prompt: 'a fox', width: 128, height: 64, seed: 5, steps: 2, batch: 1, model: 'tiny-sd' },
    });
    await expectSubmitted(ada, [record!]);
  });

  it('/imagine with a permutation prompt submits one generation per combination, each shown in its own message', async () => {
    const bea = member('bea');
    const more = anotherMessages();
    const view = await run('imagine', bea, { prompt: 'a {red, green} {fox, cat} --seed 5 --steps 2', batch: 1 }, more);
    expect(view.text).toMatch(accepted('a red fox'));
    const records = await madeBy(bea);
    const byMessage = [...records].sort((a, b) => a.request.replyTarget.localeCompare(b.request.replyTarget));
    expect(byMessage.map(({ request }) => [request.params.prompt, request.params.seed, request.replyTarget])).toEqual([
      ['a red fox', 5, 'reply-target-1'],
      ['a red cat', 5, 'reply-target-2'],
      ['a green fox', 5, 'reply-target-3'],
      ['a green cat', 5, 'reply-target-4'],
    ]);
    expect(more.shown.map((message) => message.text)).toEqual([
      expect.stringMatching(accepted('a red cat')),
      expect.stringMatching(accepted('a green fox')),
      expect.stringMatching(accepted('a green cat')),
    ]);
    await expectSubmitted(bea, records);
  });

  it('/imagine refuses more than four combinations, or a flag that one of them gets wrong, before anything is submitted', async () => {
    const cy = member('cy');
    const tooMany = await run('imagine', cy, { prompt: 'a {red, green, blue} {fox, cat}' }, anotherMessages());
    expect(tooMany).toMatchObject({ ephemeral: true, text: expect.stringMatching(/at least 6 prompts; one command runs at most 4/) });
    const badFlag = await run('imagine', cy, { prompt: 'a fox --steps {4, 400}' }, anotherMessages());
    expect(badFlag).toMatchObject({ ephemeral: true, text: expect.stringMatching(/steps/) });
    expect(() => findCommand('imagine')!.check!({ prompt: 'a {red fox' }, stack.chatConfig)).toThrow(/\{ without its \}/);
    await expectSubmitted(cy, []);
  });

  it('/imagine with a bad flag answers privately and submits nothing', async () => {
    const dee = member('dee');
    const view = await run('imagine', dee, { prompt: 'fox --chaos 5' });
    expect(view.ephemeral).toBe(true);
    expect(view.text).toContain('--chaos is not a flag I know');
    await expectSubmitted(dee, []);
  });

  it('refuses /admin to a member who is not an admin, and the member they named is neither banned nor limited', async () => {
    const eli = member('eli');
    const ban = await run('admin', eli, { user: 'fin' }, { subcommand: ['ban'] });
    expect(ban).toMatchObject({ ephemeral: true, text: '⚠️ Only admins can use /admin.' });
    const quotaSet = await run('admin', eli, { user: 'fin', units: 0 }, { subcommand: ['quota', 'set'] });
    expect(quotaSet).toMatchObject({ ephemeral: true, text: '⚠️ Only admins can use /admin.' });
    expect(await stack.ledger.standing(member('fin'))).toMatchObject({ banned: false, limitUnits: null });
  });

  it('/blend submits one latent blend of 2–4 pictures, sized by the first and prompted by all of theirs', async () => {
    const gil = member('gil');
    const apple = await finishedPicture(gil, 'red apple', { size: '128x64' });
    const pear = await finishedPicture(gil, 'green pear');
    expect(pear.request.params).toMatchObject({ width: 64, height: 64 });
    const view = await run(
      'blend',
      gil,
      { image1: apple.request.generationId, image2: 'https://chat.example/m/pear' },
      { generationIdOfMessageLink: async (link) => (link === 'https://chat.example/m/pear' ? pear.request.generationId : null) },
    );
    expect(view.text).toMatch(accepted('red apple, green pear'));
    const records = await madeBy(gil);
    expect(records.at(-1)!.request).toMatchObject({
      kind: 'blend',
      params: { prompt: 'red apple, green pear', width: 128, height: 64, batch: 1, steps: 2, model: 'tiny-sd' },
      parent: { generationId: apple.request.generationId, imageIndex: 0 },
      blendParents: [
        { generationId: apple.request.generationId, imageIndex: 0 },
        { generationId: pear.request.generationId, imageIndex: 0 },
      ],
      replyTarget: 'reply-target-1',
    });
    await expectSubmitted(gil, records);
    expect(findCommand('blend')!.definition.description).toContain('latent blend');
  });

  it('/blend refuses a grid, a picture that is gone or deleted and a single picture, and submits nothing', async () => {
    const hal = member('hal');
    const apple = await finishedPicture(hal, 'red apple');
    const deleted = await finishedPicture(hal, 'a plum');
    await stack.service.deleteGeneration(deleted.request.generationId);
    await run('imagine', hal, { prompt: 'fruit --steps 2', batch: 4 });
    const grid = await finished((await stack.service.history(hal, 1))[0]!.request.generationId);
    expect(grid.result!.imageKeys).toHaveLength(4);
    const ivy = member('ivy');
    const gone = await finishedPicture(ivy, 'a pear');
    await run('forget-me', ivy, { confirm: true });
    const made = await madeBy(hal);

    const blend = (options: OptionValues) => run('blend', hal, options);
    expect((await blend({ image1: apple.request.generationId, image2: grid.request.generationId })).text).toBe(
      `⚠️ "${grid.request.generationId}" is a grid of 4 pictures: upscale the one you want (U1–U4) and blend the upscale.`,
    );
    expect((await blend({ image1: apple.request.generationId, image2: gone.request.generationId })).text).toMatch(
      new RegExp(`^⚠️ I found no image for "${gone.request.generationId}"`),
    );
    expect((await blend({ image1: apple.request.generationId, image2: deleted.request.generationId })).text).toMatch(
      new RegExp(`^⚠️ I found no image for "${deleted.request.generationId}"`),
    );
    expect((await blend({ image1: apple.request.generationId })).text).toBe('⚠️ /blend takes 2 to 4 pictures; give at least 2.');
    expect(made.map((record) => record.request.kind)).toEqual(['imagine', 'imagine', 'imagine']);
    await expectSubmitted(hal, made);
  });

  it('/settings refuses a model that does not exist, naming the models there are, and keeps no default', async () => {
    const jo = member('jo');
    const view = await run('settings', jo, { model: 'sdxl' });
    expect(view).toMatchObject({ ephemeral: true, text: '⚠️ Model "sdxl" is not one of tiny-sd.' });
    expect(await stack.service.settings(jo)).toEqual({});
  });
});

describe('isChatAdmin', () => {
  const admins = TEST_CHAT_CONFIG.admins;
  it('grants the Manage Server holder, a configured role, a configured user of that platform and a Slack workspace admin', () => {
    expect(isChatAdmin({ platform: 'discord', userId: 'x', canManageServer: true }, admins)).toBe(true);
    expect(isChatAdmin({ platform: 'discord', userId: 'x', roleIds: ['930000000000000002'] }, admins)).toBe(true);
    expect(isChatAdmin({ platform: 'discord', userId: '940000000000000009' }, admins)).toBe(true);
    expect(isChatAdmin({ platform: 'slack', userId: 'UADMIN0001' }, admins)).toBe(true);
    expect(isChatAdmin({ platform: 'slack', userId: 'x', isWorkspaceAdmin: true }, admins)).toBe(true);
    expect(isChatAdmin({ platform: 'web', userId: 'x', heldAdminToken: true }, admins)).toBe(true);
  });

  it('refuses everyone else, and an admin id claimed on another platform', () => {
    expect(isChatAdmin({ platform: 'discord', userId: 'x', roleIds: ['role-other'], canManageServer: false }, admins)).toBe(false);
    expect(isChatAdmin({ platform: 'web', userId: '940000000000000009' }, admins)).toBe(false);
    expect(isChatAdmin({ platform: 'slack', userId: '940000000000000009' }, admins)).toBe(false);
    expect(isChatAdmin({ platform: 'web', userId: 'x', roleIds: ['930000000000000002'] }, admins)).toBe(false);
  });
});
