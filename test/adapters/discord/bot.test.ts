import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayIntentBits } from 'discord.js';
import { startDiscordBot, type DiscordBot } from '../../../src/adapters/discord/bot.js';
import { registerCommands } from '../../../src/adapters/discord/commands.js';
import { decodeReplyTarget } from '../../../src/adapters/discord/reply-target.js';
import type { GenerationRecord } from '../../../src/core/chat/service.js';
import type { Requester } from '../../../src/core/generation.js';
import { encodeActionId } from '../../../src/core/chat/result-actions.js';
import { childGenerations } from '../../../src/store/generations.js';
import { FakeDiscord, type FakeMember } from '../../support/fake-discord.js';
import { waitFor } from '../../support/wait-for.js';
import { eventually, GENERATION_TIMEOUT_MS, startServiceStack, type ServiceStack } from '../../support/service-stack.js';
import { latestGenerations, queuedAndCharged, withQueuePaused as withStackQueuePaused } from '../../support/stack-results.js';

/**
 * The discord.js bot against the loopback Discord, over the real service: Redis queue, worker running the tiny-sd
 * fixture, PGlite store and ledger. What Discord received is read from the fake; what was asked for, from the store.
 * The grid with its buttons, U2's upscale, 🔀 and /admin refused to a member are in test/e2e/discord.test.ts.
 */

const owner: FakeMember = { userId: '940000000000000001' };
const stranger: FakeMember = { userId: '940000000000000002' };

let stack: ServiceStack;
let fake: FakeDiscord;
let bot: DiscordBot;

beforeAll(async () => {
  fake = await FakeDiscord.start();
  stack = await startServiceStack({ name: 'discord-bot', quotaUnitsPerPeriod: 1000, discordAdminRoleIds: [fake.configuredAdminRoleId] });
  bot = await startDiscordBot({ token: 'fake-token', service: stack.service, config: stack.chatConfig, apiBaseUrl: fake.apiUrl, restRetries: 0, editIntervalMs: 50 });
});

afterAll(async () => {
  await bot?.stop();
  await fake?.close();
  await stack?.stop();
});

const promptOption = (value: string) => ({ name: 'prompt', type: 3, value });
const batchOption = (value: number) => ({ name: 'batch', type: 4, value });
const requester = (member: FakeMember): Requester => ({ platform: 'discord', workspaceId: fake.guildId, userId: member.userId, isAdmin: false });
const ACCEPTED = /^🎨 “a red fox” — (starting now|position \d+ in the queue), ready in about \d+ (s|min)\.$/;

const callbackOf = (interaction: { id: string; token: string }) =>
  fake.waitForRequest((call) => call.path === `/interactions/${interaction.id}/${interaction.token}/callback`);
const channelMessagePath = (messageId: string) => `/channels/${fake.channelId}/messages/${messageId}`;
const editsOf = (messageId: string) => fake.requests.filter((call) => call.method === 'PATCH' && call.path.endsWith(`/messages/${messageId}`));
const isResult = (body: any) => (body?.components ?? []).length > 0;

const generationsOf = (member: FakeMember, count: number) => latestGenerations(stack, requester(member), count);
const withQueuePaused = <T>(during: () => Promise<T>) => withStackQueuePaused(stack, during);

/** Runs /imagine "`prompt` --steps 2" to its finished result, shown with its buttons. */
async function result(member: FakeMember, prompt: string, batch: number): Promise<{ messageId: string; record: GenerationRecord }> {
  const { token } = fake.slashCommand('imagine', [promptOption(`${prompt} --steps 2`), batchOption(batch)], member);
  const message = await waitFor(() => (fake.originalMessage(token)?.components?.length ? fake.originalMessage(token) : undefined), GENERATION_TIMEOUT_MS);
  const [record] = await stack.service.history(requester(member), 1);
  return { messageId: message.id, record };
}

describe('Discord bot', () => {
  it('identifies with the Guilds, GuildMessageReactions and DirectMessages intents', () => {
    const wanted = GatewayIntentBits.Guilds | GatewayIntentBits.GuildMessageReactions | GatewayIntentBits.DirectMessages;
    expect(fake.identify.intents & wanted).toBe(wanted);
    expect(fake.identify.token).toBe('fake-token');
  });

  it('defers /imagine publicly, queues it for the member who asked, and edits its message with the bot token to show its place in the queue', async () => {
    const asker: FakeMember = { userId: '940000000000000021' };
    await withQueuePaused(async () => {
      const interaction = fake.slashCommand('imagine', [promptOption('a red fox --ar 2:1 --seed 5 --steps 2'), batchOption(1)], asker);
      const callback = await callbackOf(interaction);
      expect(callback.body.type).toBe(5);
      expect(callback.body.data.flags & 64).toBe(0);
      const [record] = await generationsOf(asker, 1);
      expect(record.request).toMatchObject({ kind: 'imagine', params: { prompt: 'a red fox', width: 128, height: 64, seed: 5 } });
      expect(record.request.requester).toMatchObject({ platform: 'discord', workspaceId: fake.guildId, userId: asker.userId, isAdmin: false });
      const messageId = decodeReplyTarget(record.request.replyTarget)!.messageId;
      expect(messageId).toBe(fake.originalMessage(interaction.token).id);
      const edit = await fake.waitForRequest((call) => call.method === 'PATCH' && call.path === channelMessagePath(messageId));
      expect(edit.authorization).toBe('Bot fake-token');
      expect(edit.body.content).toMatch(ACCEPTED);
    });
  });

  it('keeps a private /imagine private, editing it through the interaction webhook up to its result', async () => {
    const asker: FakeMember = { userId: '940000000000000022' };
    const interaction = fake.slashCommand('imagine', [promptOption('a secret fox --steps 2'), batchOption(1), { name: 'private', type: 5, value: true }], asker);
    expect((await callbackOf(interaction)).body).toEqual({ type: 5, data: { flags: 64 } });
    const messageId = (await waitFor(() => fake.originalMessage(interaction.token))).id;
    const editsOfReply = () => fake.requests.filter((call) => call.method === 'PATCH' && (call.path.includes(interaction.token) || call.path.endsWith(`/messages/${messageId}`)));
    await waitFor(() => editsOfReply().find((call) => isResult(call.body)), GENERATION_TIMEOUT_MS);
    const edits = editsOfReply();
    expect(edits.map((call) => [call.path, call.authorization])).toEqual(edits.map(() => [`/webhooks/${fake.applicationId}/${interaction.token}/messages/@original`, undefined]));
  });

  it('posts each further combination of a permutation prompt as a public follow-up, edited with the bot token', async () => {
    const asker: FakeMember = { userId: '940000000000000023' };
    const { token } = fake.slashCommand('imagine', [promptOption('a {red, green} fox --seed 5 --steps 2'), batchOption(1)], asker);
    const [green, red] = await generationsOf(asker, 2);
    expect([red.request.params.prompt, green.request.params.prompt]).toEqual(['a red fox', 'a green fox']);
    const greenTarget = decodeReplyTarget(green.request.replyTarget)!;
    expect(greenTarget.channelId).toBe(fake.channelId);
    expect(greenTarget.webhook).toBeUndefined();
    expect(greenTarget.messageId).not.toBe(decodeReplyTarget(red.request.replyTarget)!.messageId);
    const followUp = fake.requests.find((call) => call.method === 'POST' && call.path === `/webhooks/${fake.applicationId}/${token}`);
    expect(followUp!.body.flags ?? 0).toBe(0);

    const shown = await waitFor(() => editsOf(greenTarget.messageId).find((call) => isResult(call.body)), GENERATION_TIMEOUT_MS);
    expect(shown.body.content).toMatch(/^“a green fox” — /);
    const edits = editsOf(greenTarget.messageId);
    expect(edits.map((call) => [call.path, call.authorization])).toEqual(edits.map(() => [channelMessagePath(greenTarget.messageId), 'Bot fake-token']));
  });

  it('posts each further combination of a private permutation prompt as a private follow-up, edited through the interaction webhook', async () => {
    const asker: FakeMember = { userId: '940000000000000024' };
    const { token } = fake.slashCommand('imagine', [promptOption('a {blue, white} fox --steps 2'), batchOption(1), { name: 'private', type: 5, value: true }], asker);
    const [white, blue] = await generationsOf(asker, 2);
    expect([blue.request.params.prompt, white.request.params.prompt]).toEqual(['a blue fox', 'a white fox']);
    const followUp = fake.requests.find((call) => call.method === 'POST' && call.path === `/webhooks/${fake.applicationId}/${token}`);
    expect(followUp!.body.flags & 64).toBe(64);

    const whiteMessageId = decodeReplyTarget(white.request.replyTarget)!.messageId;
    const shown = await waitFor(() => editsOf(whiteMessageId).find((call) => isResult(call.body)), GENERATION_TIMEOUT_MS);
    expect(shown.body.content).toMatch(/^“a white fox” — /);
    const edits = editsOf(whiteMessageId);
    expect(edits.map((call) => [call.path, call.authorization])).toEqual(edits.map(() => [`/webhooks/${fake.applicationId}/${token}/messages/${whiteMessageId}`, undefined]));
  });

  it('answers a bad flag with a private error at once and submits nothing', async () => {
    const asker: FakeMember = { userId: '940000000000000025' };
    const before = await queuedAndCharged(stack, requester(asker));
    const reply = await callbackOf(fake.slashCommand('imagine', [promptOption('a fox --chaos 9')], asker));
    expect(reply.body.type).toBe(4);
    expect(reply.body.data.flags & 64).toBe(64);
    expect(reply.body.data.content).toContain('--chaos is not a flag I know');
    expect(reply.body.data.content).toContain('Accepted flags:');
    expect(await queuedAndCharged(stack, requester(asker))).toEqual({ ...before, generationIds: [], usedUnits: 0 });
  });

  it('runs /admin quota set, privately, for a member with Manage Server and for one with the configured admin role', async () => {
    const member = requester({ userId: '940000000000000026' });
    const setQuota = (units: number) => [
      { name: 'quota', type: 2, options: [{ name: 'set', type: 1, options: [{ name: 'user', type: 6, value: member.userId }, { name: 'units', type: 4, value: units }] }] },
    ];
    const byManager = fake.slashCommand('admin', setQuota(50), { userId: '940000000000000009', permissions: 1n << 5n });
    expect((await callbackOf(byManager)).body).toEqual({ type: 5, data: { flags: 64 } });
    await fake.waitForRequest((call) => call.method === 'PATCH' && call.path.includes(byManager.token));
    expect(await stack.service.quota(member)).toMatchObject({ limitUnits: 50 });

    const byRole = fake.slashCommand('admin', setQuota(60), { userId: '940000000000000008', roleIds: [fake.configuredAdminRoleId] });
    await fake.waitForRequest((call) => call.method === 'PATCH' && call.path.includes(byRole.token));
    expect(await stack.service.quota(member)).toMatchObject({ limitUnits: 60 });
  });

  it('puts 🔄, ✉️ and ❌ under a finished grid', async () => {
    const { messageId } = await result(owner, 'a fox', 4);
    const reactionsOf = () => fake.requests.filter((call) => call.method === 'PUT' && call.path.includes(`/messages/${messageId}/reactions/`));
    const reactions = await waitFor(() => (reactionsOf().length === 3 ? reactionsOf() : undefined));
    expect(reactions.map((call) => call.path.split('/')[6])).toEqual(['🔄', '✉️', '❌']);
  });

  it('says the quota was refunded, and refunds it, when a generation fails', async () => {
    const { messageId, record } = await result(owner, 'a lighthouse', 1);
    const parentId = record.request.generationId;
    const usedBefore = (await stack.ledger.standing(requester(stranger))).usedUnits;
    // The upscale waits in the queue while the owner deletes the picture it needs, so the worker fails it.
    const upscale = await withQueuePaused(async () => {
      fake.clickButton(messageId, encodeActionId({ action: 'upscale', generationId: parentId, imageIndex: 0 }), stranger);
      const queued = await eventually(async () => (await childGenerations(stack.database.prisma, parentId))[0]);
      expect((await stack.ledger.standing(requester(stranger))).usedUnits).toBeGreaterThan(usedBefore);
      fake.addReaction(messageId, '❌', owner);
      await waitFor(() => !fake.messages.has(messageId));
      return queued;
    });
    const upscaleMessageId = decodeReplyTarget(upscale.request.replyTarget)!.messageId;
    const failed = await waitFor(() => (fake.messages.get(upscaleMessageId)?.content.startsWith('⚠️') ? fake.messages.get(upscaleMessageId) : undefined), GENERATION_TIMEOUT_MS);
    expect(failed.content).toBe('⚠️ “a lighthouse” failed: The picture this upscale works on is no longer available: it was deleted before the job ran. Your quota was refunded.');
    expect(await stack.service.findGeneration(upscale.request.generationId)).toMatchObject({ status: 'failed' });
    expect(await stack.ledger.settlement(upscale.request.generationId)).toBe('refunded');
    expect((await stack.ledger.standing(requester(stranger))).usedUnits).toBe(usedBefore);
  });

  it('waits out a 429 retry_after and then makes the edit', async () => {
    const asker: FakeMember = { userId: '940000000000000027' };
    await withQueuePaused(async () => {
      const { token } = fake.slashCommand('imagine', [promptOption('a fox --steps 2'), batchOption(1)], asker);
      const messageId = (await waitFor(() => fake.originalMessage(token))).id;
      await waitFor(() => editsOf(messageId)[0]);
      fake.rateLimitNext(new RegExp(`/messages/${messageId}$`), 0.2);
      fake.slashCommand('cancel', [], asker);
      await waitFor(() => editsOf(messageId).length === 3);
      const [, limited, retried] = editsOf(messageId);
      expect(retried.body).toEqual(limited.body);
      expect(fake.messages.get(messageId).content).toBe('🚫 “a fox” was cancelled. Your quota was refunded.');
    });
  });

  it('rerolls when someone reacts 🔄 to a result, even one the bot has not cached', async () => {
    const { messageId, record } = await result(owner, 'a fox', 4);
    fake.addReaction(messageId, '🔄', stranger);
    const reroll = await eventually(async () => (await childGenerations(stack.database.prisma, record.request.generationId))[0]);
    expect(reroll.request).toMatchObject({ kind: 'reroll', parent: { generationId: record.request.generationId, imageIndex: 0 } });
  });

  it('deletes the result on ❌ from the requester but not from someone else, whom it tells by DM', async () => {
    const { messageId, record } = await result(owner, 'a fox', 1);
    const from = fake.requests.length;
    fake.addReaction(messageId, '❌', stranger);
    const dm = await fake.waitForRequest((call) => call.method === 'POST' && /^\/channels\/\d+\/messages$/.test(call.path) && call.body.content.includes('Only the person'), from);
    expect(dm.body.content).toContain('or an admin, can delete it');
    expect(fake.messages.has(messageId)).toBe(true);
    expect((await stack.service.findGeneration(record.request.generationId))!.deletedAt).toBeUndefined();

    fake.addReaction(messageId, '❌', owner);
    await waitFor(() => !fake.messages.has(messageId));
    expect((await stack.service.findGeneration(record.request.generationId))!.deletedAt).toBeInstanceOf(Date);
  });

  it('lets a member of the configured admin role delete anyone’s result with ❌', async () => {
    const { messageId, record } = await result(owner, 'a fox', 1);
    fake.addReaction(messageId, '❌', { userId: '940000000000000007', roleIds: [fake.configuredAdminRoleId] });
    await waitFor(() => !fake.messages.has(messageId));
    expect((await stack.service.findGeneration(record.request.generationId))!.deletedAt).toBeInstanceOf(Date);
  });

  it('lets a member whose role grants Manage Server delete anyone’s result with ❌', async () => {
    const { messageId, record } = await result(owner, 'a fox', 1);
    fake.addReaction(messageId, '❌', { userId: '940000000000000006', roleIds: [fake.manageServerRoleId] });
    await waitFor(() => !fake.messages.has(messageId));
    expect((await stack.service.findGeneration(record.request.generationId))!.deletedAt).toBeInstanceOf(Date);
  });

  it('DMs the seed and full parameters on ✉️', async () => {
    const { messageId } = await result(owner, 'a fox --seed 10', 1);
    const from = fake.requests.length;
    fake.addReaction(messageId, '✉️', stranger);
    const dm = await fake.waitForRequest((call) => call.method === 'POST' && call.body?.content?.startsWith('Prompt: a fox'), from);
    expect(dm.body.content).toContain('Seed: 10');
    const opened = fake.requests.slice(from).find((call) => call.path === '/users/@me/channels');
    expect(opened!.body).toEqual({ recipient_id: stranger.userId });
  });
});

describe('/info', () => {
  it('shows the parameters of the image behind a message link', async () => {
    const { messageId } = await result(owner, 'a fox --seed 10', 1);
    const link = `https://discord.com/channels/${fake.guildId}/${fake.channelId}/${messageId}`;
    const { token } = fake.slashCommand('info', [{ name: 'target', type: 3, value: link }], stranger);
    const answer = await fake.waitForRequest((call) => call.method === 'PATCH' && call.path.includes(token));
    expect(answer.body.content).toContain('Prompt: a fox');
    expect(answer.body.content).toContain('Seed: 10');
  });
});

describe('registerCommands', () => {
  it('bulk-overwrites the guild commands with every command definition', async () => {
    const names = await registerCommands(fake.applicationId, 'fake-token', fake.guildId, { apiBaseUrl: fake.apiUrl });
    expect(names).toEqual(['imagine', 'blend', 'quota', 'history', 'info', 'cancel', 'settings', 'forget-me', 'admin']);
    const put = fake.requests.find((call) => call.method === 'PUT' && call.path.endsWith('/commands'))!;
    expect(put.path).toBe(`/applications/${fake.applicationId}/guilds/${fake.guildId}/commands`);
    const admin = put.body.find((command: any) => command.name === 'admin');
    expect(admin.options.map((option: any) => [option.name, option.type])).toEqual([['quota', 2], ['ban', 1], ['unban', 1], ['stats', 1]]);
  });
});
