import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDiscordBot, type DiscordBot } from '../../src/adapters/discord/bot.js';
import { decodeReplyTarget } from '../../src/adapters/discord/reply-target.js';
import type { GenerationRecord } from '../../src/core/chat/service.js';
import type { Requester } from '../../src/core/generation.js';
import { encodeActionId } from '../../src/core/chat/result-actions.js';
import { ancestorGenerations, childGenerations } from '../../src/store/generations.js';
import { FakeDiscord, type FakeMember } from '../support/fake-discord.js';
import { waitFor } from '../support/wait-for.js';
import { eventually, GENERATION_TIMEOUT_MS, startServiceStack, type ServiceStack, type ServiceStackOptions } from '../support/service-stack.js';

/**
 * The real discord.js client against the loopback Discord, over the real queue, worker, tiny-sd engine, PGlite store
 * and image store: what people in a channel see, from /imagine to an upscale and a variation.
 */

const owner: FakeMember = { userId: '940000000000000001' };
const clicker: FakeMember = { userId: '940000000000000002' };

interface BotOnStack {
  stack: ServiceStack;
  fake: FakeDiscord;
  bot: DiscordBot;
  errors: unknown[];
}

async function startBotOnStack(options: ServiceStackOptions): Promise<BotOnStack> {
  const stack = await startServiceStack(options);
  const fake = await FakeDiscord.start();
  const errors: unknown[] = [];
  const bot = await startDiscordBot({
    token: 'fake-token',
    service: stack.service,
    config: stack.chatConfig,
    apiBaseUrl: fake.apiUrl,
    restRetries: 0,
    editIntervalMs: 50,
    onError: (error) => errors.push(error),
  });
  return { stack, fake, bot, errors };
}

async function stopBotOnStack(running: BotOnStack | undefined): Promise<void> {
  await running?.bot.stop();
  await running?.fake.close();
  await running?.stack.stop();
}

const promptOption = (value: string) => ({ name: 'prompt', type: 3, value });
const integerOption = (name: string, value: number) => ({ name, type: 4, value });
const setQuotaOptions = (userId: string, units: number) => [
  { name: 'quota', type: 2, options: [{ name: 'set', type: 1, options: [{ name: 'user', type: 6, value: userId }, { name: 'units', type: 4, value: units }] }] },
];

/** Button labels of a message body the bot sent, row by row. */
const buttonLabels = (body: any): string[][] => (body?.components ?? []).map((row: any) => row.components.map((button: any) => button.label));
const isResultEdit = (body: any) => buttonLabels(body).length > 0;

function requesterIn(fake: FakeDiscord, member: FakeMember): Requester {
  return { platform: 'discord', workspaceId: fake.guildId, userId: member.userId, isAdmin: false };
}

describe('Discord end to end on the real stack', () => {
  let running: BotOnStack;

  beforeAll(async () => {
    running = await startBotOnStack({ name: 'e2e-discord' });
  });

  afterAll(async () => {
    await stopBotOnStack(running);
  });

  /** The PATCHes of one channel message, in order. */
  const editsOf = (messageId: string) =>
    running.fake.requests.filter((call) => call.method === 'PATCH' && call.path === `/channels/${running.fake.channelId}/messages/${messageId}`);
  const resultEditsOf = (messageId: string) => editsOf(messageId).filter((call) => isResultEdit(call.body));

  /** Runs /imagine to its finished result and returns the message and the generation behind it. */
  async function imagineToResult(options: any[]): Promise<{ messageId: string; token: string; record: GenerationRecord }> {
    const { fake, stack } = running;
    const { token } = fake.slashCommand('imagine', options, owner);
    const message = await waitFor(() => fake.originalMessage(token));
    await waitFor(() => resultEditsOf(message.id)[0], GENERATION_TIMEOUT_MS);
    const [record] = await stack.service.history(requesterIn(fake, owner), 1);
    return { messageId: message.id, token, record };
  }

  /** The one child generation of `parentId`, once the bot has queued it. */
  const onlyChildOf = (parentId: string) =>
    eventually(async () => {
      const children = await childGenerations(running.stack.database.prisma, parentId);
      return children.length === 1 ? children[0] : undefined;
    });

  it('defers /imagine, edits its message with previews while it runs, then shows the grid with U1–U4, V1–V4 and 🔄 once', async () => {
    const { fake } = running;
    const { messageId, token, record } = await imagineToResult([promptOption('a red fox --ar 1:1 --seed 7'), integerOption('steps', 24)]);
    expect(fake.requests.find((call) => call.path.endsWith(`/${token}/callback`))!.body.type).toBe(5);
    expect(record).toMatchObject({ status: 'succeeded', request: { kind: 'imagine', params: { prompt: 'a red fox', width: 64, height: 64, steps: 24, batch: 4, seed: 7 } } });

    const previews = editsOf(messageId).filter((call) => /step \d+\/24/.test(call.body.content) && call.files.some((file) => file.name === 'preview.webp'));
    expect(previews.length).toBeGreaterThanOrEqual(1);
    await waitFor(() => fake.requests.filter((call) => call.method === 'PUT' && call.path.includes(`/messages/${messageId}/reactions/`)).length === 3);
    const [result] = resultEditsOf(messageId);
    expect(result.body.content).toBe('“a red fox” — 64×64, seed 7');
    expect(buttonLabels(result.body)).toEqual([
      ['U1', 'U2', 'U3', 'U4'],
      ['V1', 'V2', 'V3', 'V4'],
      ['Reroll', 'DM me the parameters', 'Delete'],
    ]);
    expect(result.body.components[2].components[0].emoji).toMatchObject({ name: '🔄' });
    expect(result.files).toEqual([expect.objectContaining({ name: `${record.request.generationId}.png` })]);
    expect(resultEditsOf(messageId)).toHaveLength(1);
    expect(running.errors).toEqual([]);
  });

  it('posts the upscale of image 2 as a new message, once, whose generation has the grid as its parent', async () => {
    const { fake, stack } = running;
    const { messageId, record: grid } = await imagineToResult([promptOption('a red fox --ar 1:1 --seed 8')]);
    const from = fake.requests.length;
    fake.clickButton(messageId, encodeActionId({ action: 'upscale', generationId: grid.request.generationId, imageIndex: 1 }), clicker);

    const upscale = await onlyChildOf(grid.request.generationId);
    expect(upscale.request).toMatchObject({ kind: 'upscale', parent: { generationId: grid.request.generationId, imageIndex: 1 }, requester: { userId: clicker.userId } });
    const upscaleMessageId = decodeReplyTarget(upscale.request.replyTarget)!.messageId;
    expect(upscaleMessageId).not.toBe(messageId);
    const [upscaleResult] = await waitFor(() => (resultEditsOf(upscaleMessageId).length > 0 ? resultEditsOf(upscaleMessageId) : undefined), GENERATION_TIMEOUT_MS);
    expect(buttonLabels(upscaleResult.body)[0]).toEqual(['Upscale', 'Vary (subtle)', 'Vary (strong)']);
    expect(upscaleResult.files).toEqual([expect.objectContaining({ name: `${upscale.request.generationId}.png` })]);

    expect(await stack.service.findGeneration(upscale.request.generationId)).toMatchObject({ status: 'succeeded' });
    const lineage = await ancestorGenerations(stack.database.prisma, upscale.request.generationId);
    expect(lineage.map((record) => record.request.generationId)).toEqual([grid.request.generationId]);
    await waitFor(() => fake.requests.filter((call) => call.method === 'PUT' && call.path.includes(`/messages/${upscaleMessageId}/reactions/`)).length === 5);
    const posts = fake.requests.slice(from).filter((call) => call.method === 'POST' && call.path === `/channels/${fake.channelId}/messages`);
    expect(posts.map((call) => call.body.content)).toEqual(['🎨 upscale…']);
    expect(resultEditsOf(upscaleMessageId)).toHaveLength(1);
    expect(resultEditsOf(messageId)).toHaveLength(1);
    expect(running.errors).toEqual([]);
  });

  it('makes a subtle variation when someone reacts 🔀 to a single-image result, with that result as its parent', async () => {
    const { fake, stack } = running;
    const { messageId, record: single } = await imagineToResult([promptOption('a red fox --ar 1:1 --seed 9'), integerOption('batch', 1)]);
    expect(single.request.params).toMatchObject({ seed: 9, batch: 1 });
    fake.addReaction(messageId, '🔀', clicker);

    const variation = await onlyChildOf(single.request.generationId);
    expect(variation.request).toMatchObject({ kind: 'vary-subtle', parent: { generationId: single.request.generationId, imageIndex: 0 } });
    const variationMessageId = decodeReplyTarget(variation.request.replyTarget)!.messageId;
    await waitFor(() => resultEditsOf(variationMessageId)[0], GENERATION_TIMEOUT_MS);
    expect(await stack.service.findGeneration(variation.request.generationId)).toMatchObject({ status: 'succeeded' });
    const lineage = await ancestorGenerations(stack.database.prisma, variation.request.generationId);
    expect(lineage.map((record) => record.request.generationId)).toEqual([single.request.generationId]);
    expect(resultEditsOf(variationMessageId)).toHaveLength(1);
    expect(running.errors).toEqual([]);
  });

  it('refuses /admin quota set to a member who is not an admin, and changes nothing', async () => {
    const { fake, stack } = running;
    const target = requesterIn(fake, { userId: '940000000000000005' });
    const before = await stack.service.quota(target);
    const { token } = fake.slashCommand('admin', setQuotaOptions(target.userId, 999), owner);
    const answer = await fake.waitForRequest((call) => call.method === 'PATCH' && call.path.includes(token));
    expect(answer.body.content).toBe('⚠️ Only admins can use /admin.');
    expect(await stack.service.quota(target)).toEqual(before);
    expect(await stack.database.prisma.quotaPolicy.count()).toBe(0);
    expect(await stack.database.prisma.adminAction.count()).toBe(0);
  });
});

describe('Discord end to end with a quota too small for one image', () => {
  let running: BotOnStack;

  beforeAll(async () => {
    running = await startBotOnStack({ name: 'e2e-discord-quota', quotaUnitsPerPeriod: 0 });
  });

  afterAll(async () => {
    await stopBotOnStack(running);
  });

  it('tells the user privately how much they need, and queues and charges nothing', async () => {
    const { fake, stack } = running;
    fake.slashCommand('imagine', [promptOption('a red fox --ar 1:1')], owner);
    const answer = await fake.waitForRequest((call) => call.method === 'POST' && call.path.startsWith('/webhooks/') && call.body?.flags === 64);
    expect(answer.body.content).toMatch(/^⚠️ This needs 1 units and you have 0 left; your quota resets in .+\.$/);
    expect(await stack.modelQueue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'completed', 'failed')).toEqual({
      waiting: 0,
      prioritized: 0,
      active: 0,
      delayed: 0,
      completed: 0,
      failed: 0,
    });
    expect(await stack.database.prisma.usageLedger.count()).toBe(0);
    expect(await stack.database.prisma.generation.count()).toBe(0);
    expect(running.errors).toEqual([]);
  });
});
