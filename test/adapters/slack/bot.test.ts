import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SlackBot } from '../../../src/adapters/slack/bot.js';
import { decodeReplyTarget } from '../../../src/adapters/slack/reply-target.js';
import { encodeActionId } from '../../../src/core/chat/result-actions.js';
import { FakeSlack } from '../../support/fake-slack.js';
import { startSocketModeBot, stopSocketModeBot } from '../../support/slack-socket-bot.js';
import { RecordingImagineService, TEST_CHAT_CONFIG, waitFor } from '../../support/recording-imagine-service.js';

let fake: FakeSlack;
let service: RecordingImagineService;
let bot: SlackBot;

beforeEach(async () => {
  fake = await FakeSlack.start();
  service = new RecordingImagineService();
  bot = await startSocketModeBot(fake, { service, config: TEST_CHAT_CONFIG });
});

afterEach(async () => {
  await stopSocketModeBot(bot, fake);
});

async function imagine(text: string, userId = 'UANA') {
  const submitted = service.nextSubmit();
  fake.push('slash_commands', fake.slashCommandPayload('/imagine', text, userId));
  const request = await submitted;
  const target = decodeReplyTarget(request.replyTarget)!;
  await waitFor(() => fake.message(target.channel, target.ts)?.text.includes('position'));
  return { request, target };
}

async function finishedResult(batch: number) {
  const { request, target } = await imagine('a fox --seed 10');
  service.finish(request.generationId, Array.from({ length: batch }, (_, k) => `${request.generationId}/${k}.png`), batch > 1 ? 'grid' : undefined);
  const from = fake.calls.length;
  service.emit({ type: 'succeeded', generationId: request.generationId, platform: 'slack', replyTarget: request.replyTarget, result: service.records.get(request.generationId)!.result! });
  await fake.waitForCall((call) => call.method === 'reactions.add' && call.args.name === 'x', from);
  return { request, target };
}

describe('Slack bot in Socket Mode', () => {
  it('opens the socket with the app token and checks the bot token', () => {
    expect(fake.calls.find((call) => call.method === 'apps.connections.open')!.authorization).toBe('Bearer xapp-fake');
    expect(fake.calls.find((call) => call.method === 'auth.test')!.authorization).toBe('Bearer xoxb-fake');
  });

  it('acks /imagine, submits the request and updates its channel message with the queue position', async () => {
    const { request, target } = await imagine('a red fox --ar 2:3 --seed 8');
    expect(request).toMatchObject({ kind: 'imagine', params: { prompt: 'a red fox', width: 416, height: 624, seed: 8 } });
    expect(request.requester).toEqual({ platform: 'slack', workspaceId: fake.teamId, userId: 'UANA', isAdmin: false });
    expect(target.channel).toBe(fake.channelId);
    expect(fake.message(target.channel, target.ts)!.text).toBe('🎨 “a red fox” — position 2 in the queue, ready in about 40 s.');
    expect(fake.acks.length).toBeGreaterThan(0);
  });

  it('posts each further combination of a permutation prompt as its own channel message', async () => {
    fake.push('slash_commands', fake.slashCommandPayload('/imagine', 'a {red, green} fox --seed 8', 'UANA'));
    const [red, green] = await waitFor(() => (service.submitted.length === 2 ? service.submitted : undefined));
    const [redTarget, greenTarget] = [red, green].map((request) => decodeReplyTarget(request.replyTarget)!);
    expect(greenTarget.channel).toBe(fake.channelId);
    expect(greenTarget.ts).not.toBe(redTarget.ts);
    await waitFor(() => fake.message(greenTarget.channel, greenTarget.ts)?.text.includes('position'));
    expect(fake.message(redTarget.channel, redTarget.ts)!.text).toMatch(/^🎨 “a red fox” — position/);
    expect(fake.message(greenTarget.channel, greenTarget.ts)!.text).toBe('🎨 “a green fox” — position 2 in the queue, ready in about 40 s.');
  });

  it('answers a bad flag in the ack, privately, and submits nothing', async () => {
    const envelope = fake.push('slash_commands', fake.slashCommandPayload('/imagine', 'a fox --chaos 3'));
    const ack = await fake.waitForAck(envelope);
    expect(ack.payload.response_type).toBe('ephemeral');
    expect(ack.payload.text).toContain('--chaos is not a flag I know');
    expect(service.submitted).toEqual([]);
  });

  it('refuses /admin to a member who is not a workspace admin', async () => {
    fake.push('slash_commands', fake.slashCommandPayload('/admin', 'ban <@UBOB|bob>', 'UANA'));
    await waitFor(() => fake.responses[0]);
    expect(fake.responses[0].body).toMatchObject({ response_type: 'ephemeral', text: '⚠️ Only admins can use /admin.' });
    expect(fake.calls.some((call) => call.method === 'users.info' && call.args.user === 'UANA')).toBe(true);
    expect(service.adminCalls).toEqual([]);
  });

  it('runs /admin quota grant for a workspace admin', async () => {
    fake.workspaceAdmins.add('UBOSS');
    fake.push('slash_commands', fake.slashCommandPayload('/admin', 'quota grant <@UBOB|bob> 5', 'UBOSS'));
    await waitFor(() => service.adminCalls[0]);
    expect(service.adminCalls).toEqual([`grantQuota ${fake.teamId} UBOB 5`]);
  });

  it('uploads the finished image with files.uploadV2 and turns the message into the result with buttons and reactions', async () => {
    const { request, target } = await finishedResult(4);
    expect(fake.uploads).toHaveLength(1);
    const complete = fake.calls.find((call) => call.method === 'files.completeUploadExternal')!;
    expect(complete.args).toMatchObject({ channel_id: target.channel, thread_ts: target.ts });
    const message = fake.message(target.channel, target.ts)!;
    const actionIds = message.blocks.filter((block) => block.type === 'actions').map((block) => block.elements.map((element: any) => element.text.text));
    expect(actionIds[0]).toEqual(['U1', 'U2', 'U3', 'U4']);
    expect(message.text).toContain(`seed 10`);
    expect(fake.calls.filter((call) => call.method === 'reactions.add').map((call) => call.args.name)).toEqual(['arrows_counterclockwise', 'envelope', 'x']);
    expect(request.generationId).toBeDefined();
  });

  it('waits out Retry-After when chat.update is rate limited, then shows the newest state', async () => {
    const { request, target } = await imagine('a fox');
    fake.rateLimitNext('chat.update', 1);
    service.emit({ type: 'progress', generationId: request.generationId, platform: 'slack', replyTarget: request.replyTarget, step: 1, totalSteps: 30 });
    await fake.waitForCall((call) => call.method === 'chat.update' && call.args.text.includes('step 1/30'));
    service.emit({ type: 'progress', generationId: request.generationId, platform: 'slack', replyTarget: request.replyTarget, step: 2, totalSteps: 30 });
    await waitFor(() => fake.message(target.channel, target.ts)!.text.includes('step 2/30'));
    const updates = fake.calls.filter((call) => call.method === 'chat.update').map((call) => call.args.text);
    expect(updates.at(-1)).toContain('step 2/30');
  });

  it('hands a V3 click to the service as a subtle variation of image 3', async () => {
    const { request, target } = await finishedResult(4);
    const submitted = service.nextSubmit();
    fake.push('interactive', fake.buttonClickPayload(target.channel, target.ts, encodeActionId({ action: 'vary-subtle', generationId: request.generationId, imageIndex: 2 }), 'UBOB'));
    const variation = await submitted;
    expect(variation).toMatchObject({ kind: 'vary-subtle', parent: { generationId: request.generationId, imageIndex: 2 }, requester: { userId: 'UBOB' } });
  });

  it('rerolls on a :repeat: reaction to the result', async () => {
    const { request, target } = await finishedResult(4);
    const submitted = service.nextSubmit();
    fake.push('events_api', fake.reactionEventPayload(target.channel, target.ts, 'repeat', 'UBOB'));
    expect(await submitted).toMatchObject({ kind: 'reroll', parent: { generationId: request.generationId } });
  });

  it('deletes on :x: from the requester, but DMs a refusal to someone else', async () => {
    const { target } = await finishedResult(1);
    fake.push('events_api', fake.reactionEventPayload(target.channel, target.ts, 'x', 'UBOB'));
    const dm = await fake.waitForCall((call) => call.method === 'chat.postMessage' && call.args.channel === 'UBOB');
    expect(dm.args.text).toContain('Only the person who asked for this image');
    expect(fake.message(target.channel, target.ts)).toBeDefined();
    fake.push('events_api', fake.reactionEventPayload(target.channel, target.ts, 'x', 'UANA'));
    await waitFor(() => !fake.message(target.channel, target.ts));
  });
});
