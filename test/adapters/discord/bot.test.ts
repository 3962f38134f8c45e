import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GatewayIntentBits } from 'discord.js';
import { startDiscordBot, type DiscordBot } from '../../../src/adapters/discord/bot.js';
import { registerCommands } from '../../../src/adapters/discord/commands.js';
import { decodeReplyTarget } from '../../../src/adapters/discord/reply-target.js';
import { encodeActionId } from '../../../src/core/chat/result-actions.js';
import { FakeDiscord } from '../../support/fake-discord.js';
import { RecordingImagineService, TEST_CHAT_CONFIG, waitFor } from '../../support/recording-imagine-service.js';

const owner = { userId: '940000000000000001' };
const stranger = { userId: '940000000000000002' };

let fake: FakeDiscord;
let service: RecordingImagineService;
let bot: DiscordBot;

beforeEach(async () => {
  fake = await FakeDiscord.start();
  service = new RecordingImagineService();
  bot = await startDiscordBot({ token: 'fake-token', service, config: TEST_CHAT_CONFIG, apiBaseUrl: fake.apiUrl, restRetries: 0, editIntervalMs: 50 });
});

afterEach(async () => {
  await bot.stop();
  await fake.close();
});

/** Runs /imagine to acceptance and returns the request and the id of the message it lives in. */
async function imagine(prompt: string) {
  const submitted = service.nextSubmit();
  fake.slashCommand('imagine', [{ name: 'prompt', type: 3, value: prompt }], owner);
  const request = await submitted;
  const messageId = decodeReplyTarget(request.replyTarget)!.messageId;
  await fake.waitForRequest((call) => call.method === 'PATCH' && call.path.endsWith(`/messages/${messageId}`));
  return { request, messageId };
}

async function finishedResult(batch: number) {
  const { request, messageId } = await imagine(`a fox --seed 10${batch === 1 ? '' : ''}`);
  const keys = Array.from({ length: batch }, (_, k) => `${request.generationId}/${k}.png`);
  service.finish(request.generationId, keys, batch > 1 ? `${request.generationId}/grid.png` : undefined);
  const before = fake.requests.length;
  service.emit({ type: 'succeeded', generationId: request.generationId, platform: 'discord', replyTarget: request.replyTarget, result: service.records.get(request.generationId)!.result! });
  await fake.waitForRequest((call) => call.method === 'PUT' && call.path.includes('/reactions/'), before);
  return { request, messageId };
}

describe('Discord bot', () => {
  it('identifies with the Guilds, GuildMessageReactions and DirectMessages intents', () => {
    const wanted = GatewayIntentBits.Guilds | GatewayIntentBits.GuildMessageReactions | GatewayIntentBits.DirectMessages;
    expect(fake.identify.intents & wanted).toBe(wanted);
    expect(fake.identify.token).toBe('fake-token');
  });

  it('defers /imagine, submits the request and edits its message with the bot token to show the queue position', async () => {
    const { request, messageId } = await imagine('a red fox --ar 16:9 --seed 5');
    const callback = fake.requests.find((call) => call.path.endsWith('/callback'))!;
    expect(callback.body.type).toBe(5);
    expect(callback.body.data.flags & 64).toBe(0);
    expect(request).toMatchObject({ kind: 'imagine', params: { prompt: 'a red fox', width: 680, height: 384, seed: 5 } });
    expect(request.requester).toMatchObject({ platform: 'discord', workspaceId: fake.guildId, userId: owner.userId, isAdmin: false });
    const edit = fake.requests.find((call) => call.method === 'PATCH' && call.path === `/channels/${fake.channelId}/messages/${messageId}`)!;
    expect(edit.authorization).toBe('Bot fake-token');
    expect(edit.body.content).toBe('🎨 “a red fox” — position 2 in the queue, ready in about 40 s.');
  });

  it('keeps a private /imagine private, editing it through the interaction webhook', async () => {
    const submitted = service.nextSubmit();
    const { token } = fake.slashCommand('imagine', [{ name: 'prompt', type: 3, value: 'a secret fox' }, { name: 'private', type: 5, value: true }], owner);
    const request = await submitted;
    expect(fake.requests.find((call) => call.path.endsWith('/callback'))!.body).toEqual({ type: 5, data: { flags: 64 } });
    const from = fake.requests.length;
    service.emit({ type: 'progress', generationId: request.generationId, platform: 'discord', replyTarget: request.replyTarget, step: 2, totalSteps: 30 });
    const edit = await fake.waitForRequest((call) => call.method === 'PATCH' && call.body.content.includes('step 2/30'), from);
    expect(edit.path).toBe(`/webhooks/${fake.applicationId}/${token}/messages/@original`);
    expect(edit.authorization).toBeUndefined();
  });

  it('posts each further combination of a permutation prompt as a follow-up, edited with the bot token; private ones through the webhook', async () => {
    fake.slashCommand('imagine', [{ name: 'prompt', type: 3, value: 'a {red, green} fox --seed 5' }], owner);
    const [red, green] = await waitFor(() => (service.submitted.length === 2 ? service.submitted : undefined));
    expect([red.params.prompt, green.params.prompt]).toEqual(['a red fox', 'a green fox']);
    const followUp = fake.requests.find((call) => call.method === 'POST' && call.path.startsWith(`/webhooks/${fake.applicationId}/`))!;
    expect(followUp.body.flags ?? 0).toBe(0);
    const greenTarget = decodeReplyTarget(green.replyTarget)!;
    expect(greenTarget.channelId).toBe(fake.channelId);
    expect(greenTarget.webhook).toBeUndefined();
    expect(greenTarget.messageId).not.toBe(decodeReplyTarget(red.replyTarget)!.messageId);
    const shown = await fake.waitForRequest((call) => call.method === 'PATCH' && call.path === `/channels/${fake.channelId}/messages/${greenTarget.messageId}`);
    expect(shown.body.content).toBe('🎨 “a green fox” — position 2 in the queue, ready in about 40 s.');

    const { token } = fake.slashCommand('imagine', [{ name: 'prompt', type: 3, value: 'a {blue, white} fox' }, { name: 'private', type: 5, value: true }], owner);
    const [, , , white] = await waitFor(() => (service.submitted.length === 4 ? service.submitted : undefined));
    const privateFollowUp = fake.requests.find((call) => call.method === 'POST' && call.path === `/webhooks/${fake.applicationId}/${token}`)!;
    expect(privateFollowUp.body.flags & 64).toBe(64);
    const whiteTarget = decodeReplyTarget(white.replyTarget)!;
    const from = fake.requests.length;
    service.emit({ type: 'progress', generationId: white.generationId, platform: 'discord', replyTarget: white.replyTarget, step: 2, totalSteps: 30 });
    const edit = await fake.waitForRequest((call) => call.method === 'PATCH' && call.body.content.includes('“a white fox” — step 2/30'), from);
    expect(edit.path).toBe(`/webhooks/${fake.applicationId}/${token}/messages/${whiteTarget.messageId}`);
    expect(edit.authorization).toBeUndefined();
  });

  it('answers a bad flag with a private error at once and submits nothing', async () => {
    fake.slashCommand('imagine', [{ name: 'prompt', type: 3, value: 'a fox --chaos 9' }], owner);
    const reply = await fake.waitForRequest((call) => call.path.endsWith('/callback'));
    expect(reply.body.type).toBe(4);
    expect(reply.body.data.flags & 64).toBe(64);
    expect(reply.body.data.content).toContain('--chaos is not a flag I know');
    expect(reply.body.data.content).toContain('Accepted flags:');
    expect(service.submitted).toEqual([]);
  });

  it('refuses /admin to a member without Manage Server or the admin role', async () => {
    const { token } = fake.slashCommand('admin', [{ name: 'ban', type: 1, options: [{ name: 'user', type: 6, value: stranger.userId }] }], owner);
    const edit = await fake.waitForRequest((call) => call.method === 'PATCH' && call.path.includes(token));
    expect(edit.body.content).toBe('⚠️ Only admins can use /admin.');
    expect(fake.requests.find((call) => call.path.endsWith('/callback'))!.body).toEqual({ type: 5, data: { flags: 64 } });
    expect(service.adminCalls).toEqual([]);
  });

  it('runs /admin quota set for a member with Manage Server, and for the configured admin role', async () => {
    const setQuota = (units: number) => [
      { name: 'quota', type: 2, options: [{ name: 'set', type: 1, options: [{ name: 'user', type: 6, value: stranger.userId }, { name: 'units', type: 4, value: units }] }] },
    ];
    fake.slashCommand('admin', setQuota(50), { userId: '940000000000000009', permissions: 1n << 5n });
    await waitFor(() => service.adminCalls.length === 1);
    fake.slashCommand('admin', setQuota(60), { userId: '940000000000000008', roleIds: [fake.configuredAdminRoleId] });
    await waitFor(() => service.adminCalls.length === 2);
    expect(service.adminCalls).toEqual([`setQuota ${fake.guildId} ${stranger.userId} 50`, `setQuota ${fake.guildId} ${stranger.userId} 60`]);
  });

  it('renders progress and the finished grid into the same message, with action buttons and reactions', async () => {
    const { request, messageId } = await imagine('a fox');
    service.images.set('preview-1', Buffer.from('webp'));
    const progressFrom = fake.requests.length;
    service.emit({ type: 'progress', generationId: request.generationId, platform: 'discord', replyTarget: request.replyTarget, step: 3, totalSteps: 30, previewKey: 'preview-1' });
    const progress = await fake.waitForRequest((call) => call.method === 'PATCH', progressFrom);
    expect(progress.body.content).toContain('step 3/30');
    expect(progress.files).toEqual([{ field: 'files[0]', name: 'preview.webp', bytes: 4 }]);

    const { messageId: doneId } = { messageId };
    service.finish(request.generationId, ['a', 'b', 'c', 'd'], 'grid');
    const doneFrom = fake.requests.length;
    service.emit({ type: 'succeeded', generationId: request.generationId, platform: 'discord', replyTarget: request.replyTarget, result: service.records.get(request.generationId)!.result! });
    const done = await fake.waitForRequest((call) => call.method === 'PATCH', doneFrom);
    expect(done.path).toBe(`/channels/${fake.channelId}/messages/${doneId}`);
    expect(done.files.map((file) => file.name)).toEqual([`${request.generationId}.png`]);
    const labels = done.body.components.map((row: any) => row.components.map((button: any) => button.label));
    expect(labels[0]).toEqual(['U1', 'U2', 'U3', 'U4']);
    await waitFor(() => fake.requests.filter((call) => call.path.includes('/reactions/')).length === 3);
    expect(fake.requests.filter((call) => call.path.includes('/reactions/')).map((call) => call.path.split('/')[6])).toEqual(['🔄', '✉️', '❌']);
  });

  it('says the quota was refunded when a generation fails', async () => {
    const { request } = await imagine('a fox');
    const from = fake.requests.length;
    service.emit({ type: 'failed', generationId: request.generationId, platform: 'discord', replyTarget: request.replyTarget, userMessage: 'the model ran out of memory', refunded: true });
    const edit = await fake.waitForRequest((call) => call.method === 'PATCH', from);
    expect(edit.body.content).toBe('⚠️ “a fox” failed: the model ran out of memory. Your quota was refunded.');
  });

  it('waits out a 429 retry_after and then makes the edit', async () => {
    const { request, messageId } = await imagine('a fox');
    fake.rateLimitNext(new RegExp(`/messages/${messageId}$`), 0.2);
    const from = fake.requests.length;
    service.emit({ type: 'cancelled', generationId: request.generationId, platform: 'discord', replyTarget: request.replyTarget, refunded: true });
    await waitFor(() => fake.requests.slice(from).filter((call) => call.method === 'PATCH').length === 2);
    expect(fake.messages.get(messageId).content).toBe('🚫 “a fox” was cancelled. Your quota was refunded.');
  });

  it('hands a U2 click to the service as an upscale of image 2, in a new message', async () => {
    const { request, messageId } = await finishedResult(4);
    const submitted = service.nextSubmit();
    fake.clickButton(messageId, encodeActionId({ action: 'upscale', generationId: request.generationId, imageIndex: 1 }), stranger);
    const upscale = await submitted;
    expect(upscale).toMatchObject({ kind: 'upscale', parent: { generationId: request.generationId, imageIndex: 1 }, requester: { userId: stranger.userId } });
    expect(upscale.params).toMatchObject({ batch: 1, seed: 11 });
    expect(decodeReplyTarget(upscale.replyTarget)!.messageId).not.toBe(messageId);
    expect(fake.requests.find((call) => call.path.endsWith('/callback') && call.body.type === 6)).toBeDefined();
  });

  it('rerolls when someone reacts 🔄 to a result, even one the bot has not cached', async () => {
    const { request, messageId } = await finishedResult(4);
    const submitted = service.nextSubmit();
    fake.addReaction(messageId, '🔄', stranger);
    const reroll = await submitted;
    expect(reroll).toMatchObject({ kind: 'reroll', parent: { generationId: request.generationId, imageIndex: 0 } });
  });

  it('deletes the result on ❌ from the requester but not from someone else, whom it tells by DM', async () => {
    const { messageId } = await finishedResult(1);
    const from = fake.requests.length;
    fake.addReaction(messageId, '❌', stranger);
    const dm = await fake.waitForRequest((call) => call.method === 'POST' && /^\/channels\/\d+\/messages$/.test(call.path) && call.body.content.includes('Only the person'), from);
    expect(dm.body.content).toContain('or an admin, can delete it');
    expect(fake.messages.has(messageId)).toBe(true);

    fake.addReaction(messageId, '❌', owner);
    await waitFor(() => !fake.messages.has(messageId));
  });

  it('lets a member of the configured admin role delete anyone’s result with ❌', async () => {
    const { messageId } = await finishedResult(1);
    fake.addReaction(messageId, '❌', { userId: '940000000000000007', roleIds: [fake.configuredAdminRoleId] });
    await waitFor(() => !fake.messages.has(messageId));
  });

  it('lets a member whose role grants Manage Server delete anyone’s result with ❌', async () => {
    const { messageId } = await finishedResult(1);
    fake.addReaction(messageId, '❌', { userId: '940000000000000006', roleIds: [fake.manageServerRoleId] });
    await waitFor(() => !fake.messages.has(messageId));
  });

  it('DMs the seed and full parameters on ✉️', async () => {
    const { messageId } = await finishedResult(1);
    const from = fake.requests.length;
    fake.addReaction(messageId, '✉️', stranger);
    const dm = await fake.waitForRequest((call) => call.method === 'POST' && call.body?.content?.startsWith('Prompt: a fox'), from);
    expect(dm.body.content).toContain('Seed: 10');
    expect(fake.requests.find((call) => call.path === '/users/@me/channels')!.body).toEqual({ recipient_id: stranger.userId });
  });
});

describe('/info', () => {
  it('shows the parameters of the image behind a message link', async () => {
    const { messageId } = await finishedResult(1);
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
