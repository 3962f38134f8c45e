import { describe, expect, it } from 'vitest';
import type { Requester } from '../../../src/core/generation.js';
import { isChatAdmin } from '../../../src/core/chat/admin.js';
import type { CommandContext, OptionValues } from '../../../src/core/chat/commands/command.js';
import { CHAT_COMMANDS, findCommand, runCommand } from '../../../src/core/chat/commands/index.js';
import type { ChatView } from '../../../src/core/chat/views.js';
import { RecordingImagineService, TEST_CHAT_CONFIG } from '../../support/recording-imagine-service.js';

const member: Requester = { platform: 'discord', workspaceId: 'g1', userId: 'u1', isAdmin: false };

function context(service: RecordingImagineService, options: OptionValues, extra: Partial<CommandContext> = {}): CommandContext {
  return {
    requester: member,
    subcommand: [],
    options,
    service,
    config: TEST_CHAT_CONFIG,
    openGenerationMessage: async () => 'reply-target-1',
    openAnotherGenerationMessage: async () => {
      throw new Error('one generation opens one message');
    },
    generationIdOfMessageLink: async () => null,
    ...extra,
  };
}

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

  it('/imagine submits a request aimed at the opened message and shows the queue position', async () => {
    const service = new RecordingImagineService();
    const view = await runCommand(findCommand('imagine')!, context(service, { prompt: 'a fox --ar 16:9 --seed 5' }));
    expect(view.text).toBe('🎨 “a fox” — position 2 in the queue, ready in about 40 s.');
    expect(service.submitted[0]).toMatchObject({
      kind: 'imagine',
      replyTarget: 'reply-target-1',
      requester: member,
      params: { prompt: 'a fox', width: 680, height: 384, seed: 5 },
    });
  });

  it('/imagine with a permutation prompt submits one generation per combination, each shown in its own message', async () => {
    const service = new RecordingImagineService();
    const more = anotherMessages();
    const view = await runCommand(findCommand('imagine')!, context(service, { prompt: 'a {red, green} {fox, cat} --seed 5' }, more));
    expect(view.text).toMatch(/^🎨 “a red fox” — position 2 in the queue/);
    expect(service.submitted.map((request) => [request.params.prompt, request.params.seed, request.replyTarget])).toEqual([
      ['a red fox', 5, 'reply-target-1'],
      ['a red cat', 5, 'reply-target-2'],
      ['a green fox', 5, 'reply-target-3'],
      ['a green cat', 5, 'reply-target-4'],
    ]);
    expect(more.shown.map((message) => message.text)).toEqual([
      expect.stringMatching(/^🎨 “a red cat” — position/),
      expect.stringMatching(/^🎨 “a green fox” — position/),
      expect.stringMatching(/^🎨 “a green cat” — position/),
    ]);
  });

  it('/imagine refuses more than four combinations, or a flag that one of them gets wrong, before anything is submitted', async () => {
    const service = new RecordingImagineService();
    const tooMany = await runCommand(findCommand('imagine')!, context(service, { prompt: 'a {red, green, blue} {fox, cat}' }, anotherMessages()));
    expect(tooMany).toMatchObject({ ephemeral: true, text: expect.stringMatching(/at least 6 prompts; one command runs at most 4/) });
    const badFlag = await runCommand(findCommand('imagine')!, context(service, { prompt: 'a fox --steps {4, 400}' }, anotherMessages()));
    expect(badFlag).toMatchObject({ ephemeral: true, text: expect.stringMatching(/steps/) });
    expect(() => findCommand('imagine')!.check!({ prompt: 'a {red fox' }, TEST_CHAT_CONFIG)).toThrow(/\{ without its \}/);
    expect(service.submitted).toEqual([]);
  });

  it('/imagine with a bad flag answers privately and submits nothing', async () => {
    const service = new RecordingImagineService();
    const view = await runCommand(findCommand('imagine')!, context(service, { prompt: 'fox --chaos 5' }));
    expect(view.ephemeral).toBe(true);
    expect(view.text).toContain('--chaos is not a flag I know');
    expect(service.submitted).toEqual([]);
  });

  it('refuses /admin to a member who is not an admin', async () => {
    const service = new RecordingImagineService();
    const view = await runCommand(findCommand('admin')!, context(service, { user: 'u2' }, { subcommand: ['ban'] }));
    expect(view).toMatchObject({ ephemeral: true, text: '⚠️ Only admins can use /admin.' });
    expect(service.adminCalls).toEqual([]);
  });

  it('/admin quota set changes the quota when an admin asks', async () => {
    const service = new RecordingImagineService();
    const view = await runCommand(
      findCommand('admin')!,
      context(service, { user: 'u2', units: 50 }, { subcommand: ['quota', 'set'], requester: { ...member, isAdmin: true } }),
    );
    expect(service.adminCalls).toEqual(['setQuota g1 u2 50']);
    expect(view.text).toBe('u2: 50 of 50 units left.');
  });

  it('/info finds a generation by seed', async () => {
    const service = new RecordingImagineService();
    await runCommand(findCommand('imagine')!, context(service, { prompt: 'a fox --seed 77' }));
    const view = await runCommand(findCommand('info')!, context(service, { target: '77' }));
    expect(view.text).toContain('Prompt: a fox');
    expect(view.text).toContain('Seed: 77');
  });

  /** A finished generation of `count` pictures by pixel-32 at 32x32, as an imagine (count > 1) or an upscale. */
  async function finishedPictures(service: RecordingImagineService, generationId: string, prompt: string, count = 1) {
    await service.submit({
      generationId,
      kind: count > 1 ? 'imagine' : 'upscale',
      params: { prompt, negativePrompt: '', width: 32, height: 32, steps: 20, guidance: 5, sampler: 'ddim', seed: 1, batch: count, model: 'pixel-32' },
      requester: member,
      mode: 'fast',
      replyTarget: '{}',
    });
    service.finish(generationId, Array.from({ length: count }, (_, k) => `${generationId}-${k}`));
  }

  it('/blend submits one latent blend of 2–4 pictures, sized by the first and prompted by all of theirs', async () => {
    const service = new RecordingImagineService();
    await finishedPictures(service, 'gen-apple-0001', 'red apple');
    await finishedPictures(service, 'gen-pear-00001', 'green pear');
    const view = await runCommand(findCommand('blend')!, context(service, { image1: 'gen-apple-0001', image2: 'https://example/link' }, { generationIdOfMessageLink: async () => 'gen-pear-00001' }));
    expect(view.text).toMatch(/^🎨 “red apple, green pear” — position 2 in the queue/);
    expect(service.submitted.at(-1)).toMatchObject({
      kind: 'blend',
      params: { prompt: 'red apple, green pear', width: 64, height: 64, batch: 1, model: 'pixel-32' },
      parent: { generationId: 'gen-apple-0001', imageIndex: 0 },
      blendParents: [
        { generationId: 'gen-apple-0001', imageIndex: 0 },
        { generationId: 'gen-pear-00001', imageIndex: 0 },
      ],
      replyTarget: 'reply-target-1',
    });
    expect(findCommand('blend')!.definition.description).toContain('latent blend');
  });

  it('/blend refuses a grid, a picture that is gone and a single picture, and submits nothing', async () => {
    const service = new RecordingImagineService();
    await finishedPictures(service, 'gen-apple-0001', 'red apple');
    await finishedPictures(service, 'gen-grid-00001', 'fruit', 4);
    const blend = (options: OptionValues) => runCommand(findCommand('blend')!, context(service, options));
    expect((await blend({ image1: 'gen-apple-0001', image2: 'gen-grid-00001' })).text).toBe(
      '⚠️ "gen-grid-00001" is a grid of 4 pictures: upscale the one you want (U1–U4) and blend the upscale.',
    );
    expect((await blend({ image1: 'gen-apple-0001', image2: 'gen-gone-00001' })).text).toMatch(/^⚠️ I found no image for "gen-gone-00001"/);
    expect((await blend({ image1: 'gen-apple-0001' })).text).toBe('⚠️ /blend takes 2 to 4 pictures; give at least 2.');
    expect(service.submitted.map((request) => request.kind)).toEqual(['upscale', 'imagine']);
  });

  it('/settings refuses a model that does not exist', async () => {
    const view = await runCommand(findCommand('settings')!, context(new RecordingImagineService(), { model: 'sdxl' }));
    expect(view.text).toContain('is not one of emoji-tiny, pixel-32');
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
