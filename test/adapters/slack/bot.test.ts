import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SlackBot } from '../../../src/adapters/slack/bot.js';
import { decodeReplyTarget } from '../../../src/adapters/slack/reply-target.js';
import type { Requester } from '../../../src/core/generation.js';
import { encodeActionId } from '../../../src/core/chat/result-actions.js';
import { childGenerations } from '../../../src/store/generations.js';
import { FakeSlack } from '../../support/fake-slack.js';
import { slackResult, startSocketModeBot, stopSocketModeBot } from '../../support/slack-socket-bot.js';
import { waitFor } from '../../support/wait-for.js';
import { eventually, startServiceStack, type ServiceStack } from '../../support/service-stack.js';
import { expectHeldExactly, latestGenerations, withQueuePaused as withStackQueuePaused } from '../../support/stack-results.js';

/**
 * Real Bolt in Socket Mode against the loopback Slack, over the real service: Redis queue, worker running the tiny-sd
 * fixture, PGlite store and ledger. What Slack received is read from the fake; what was asked for, from the store.
 * The grid's progress, upload and buttons and U2's upscale are in test/e2e/slack.test.ts, 🔄's reroll in
 * test/e2e/slack-deliveries.test.ts, the Upscale and Delete buttons' owner checks in test/e2e/buttons.test.ts.
 */

let stack: ServiceStack;
let fake: FakeSlack;
let bot: SlackBot;

beforeAll(async () => {
  stack = await startServiceStack({ name: 'slack-bot', quotaUnitsPerPeriod: 1000 });
  fake = await FakeSlack.start();
  bot = await startSocketModeBot(fake, { service: stack.service, config: stack.chatConfig });
});

afterAll(async () => {
  await stopSocketModeBot(bot, fake);
  await stack?.stop();
});

const requester = (userId: string): Requester => ({ platform: 'slack', workspaceId: fake.teamId, userId, isAdmin: false });
const accepted = (prompt: string) => new RegExp(`^🎨 “${prompt}” — (starting now|position \\d+ in the queue), ready in about \\d+ (s|min)\\.$`);
const updatesOf = (ts: string) => fake.calls.filter((call) => call.method === 'chat.update' && call.args.ts === ts);

const generationsOf = (userId: string, count: number) => latestGenerations(stack, requester(userId), count);
const withQueuePaused = <T>(during: () => Promise<T>) => withStackQueuePaused(stack, during);

const result = (userId: string, prompt: string) => slackResult(fake, stack, requester(userId), prompt);

describe('Slack bot in Socket Mode', () => {
  it('opens the socket with the app token and checks the bot token', () => {
    expect(fake.calls.find((call) => call.method === 'apps.connections.open')!.authorization).toBe('Bearer xapp-fake');
    expect(fake.calls.find((call) => call.method === 'auth.test')!.authorization).toBe('Bearer xoxb-fake');
  });

  it('queues /imagine for the member who asked and updates its channel message with the place in the queue', async () => {
    await withQueuePaused(async () => {
      fake.push('slash_commands', fake.slashCommandPayload('/imagine', 'a red fox --ar 2:1 --seed 8 --steps 2', 'UQUEUE'));
      const [record] = await generationsOf('UQUEUE', 1);
      expect(record.request).toMatchObject({ kind: 'imagine', params: { prompt: 'a red fox', width: 128, height: 64, seed: 8 } });
      const target = decodeReplyTarget(record.request.replyTarget)!;
      const update = await fake.waitForCall((call) => call.method === 'chat.update' && call.args.ts === target.ts);
      expect(update.authorization).toBe('Bearer xoxb-fake');
      expect(fake.message(target.channel, target.ts)!.text).toMatch(accepted('a red fox'));
      await expectHeldExactly(stack, requester('UQUEUE'), [record.request]);
    });
  });

  it('posts each further combination of a permutation prompt as its own channel message', async () => {
    await withQueuePaused(async () => {
      fake.push('slash_commands', fake.slashCommandPayload('/imagine', 'a {red, green} fox --seed 8 --steps 2', 'UPERM'));
      const [green, red] = await generationsOf('UPERM', 2);
      expect([red.request.params.prompt, green.request.params.prompt]).toEqual(['a red fox', 'a green fox']);
      const [redTarget, greenTarget] = [red, green].map((record) => decodeReplyTarget(record.request.replyTarget)!);
      expect(greenTarget.channel).toBe(fake.channelId);
      expect(greenTarget.ts).not.toBe(redTarget.ts);
      await waitFor(() => fake.message(redTarget.channel, redTarget.ts)?.text.match(accepted('a red fox')));
      await waitFor(() => fake.message(greenTarget.channel, greenTarget.ts)?.text.match(accepted('a green fox')));
    });
  });

  it('answers a bad flag in the ack, privately, and submits nothing', async () => {
    const envelope = fake.push('slash_commands', fake.slashCommandPayload('/imagine', 'a fox --chaos 3', 'UFLAG'));
    const ack = await fake.waitForAck(envelope);
    expect(ack.payload.response_type).toBe('ephemeral');
    expect(ack.payload.text).toContain('--chaos is not a flag I know');
    await expectHeldExactly(stack, requester('UFLAG'), []);
  });

  it('refuses /admin to a member who is not a workspace admin', async () => {
    const from = fake.responses.length;
    fake.push('slash_commands', fake.slashCommandPayload('/admin', 'ban <@UVICTIM|victim>', 'UPLAIN'));
    const answer = await waitFor(() => fake.responses[from]);
    expect(answer.body).toMatchObject({ response_type: 'ephemeral', text: '⚠️ Only admins can use /admin.' });
    expect(fake.calls.some((call) => call.method === 'users.info' && call.args.user === 'UPLAIN')).toBe(true);
    expect(await stack.service.quota(requester('UVICTIM'))).toMatchObject({ banned: false });
  });

  it('runs /admin quota grant for a workspace admin', async () => {
    fake.workspaceAdmins.add('UBOSS');
    const from = fake.responses.length;
    fake.push('slash_commands', fake.slashCommandPayload('/admin', 'quota grant <@UGIFT|gift> 5', 'UBOSS'));
    const answer = await waitFor(() => fake.responses[from]);
    expect(answer.body).toMatchObject({ response_type: 'ephemeral', text: 'UGIFT: 1005 of 1000 units left.' });
    expect(await stack.service.quota(requester('UGIFT'))).toMatchObject({ remainingUnits: 1005, limitUnits: 1000 });
  });

  it('puts :arrows_counterclockwise:, :envelope: and :x: under a finished grid', async () => {
    const { ts } = await result('UANA', 'a fox');
    const reactionsOf = () => fake.calls.filter((call) => call.method === 'reactions.add' && call.args.timestamp === ts);
    const reactions = await waitFor(() => (reactionsOf().length === 3 ? reactionsOf() : undefined));
    expect(reactions.map((call) => call.args.name)).toEqual(['arrows_counterclockwise', 'envelope', 'x']);
  });

  it('waits out Retry-After when chat.update is rate limited, then shows the newest state', async () => {
    await withQueuePaused(async () => {
      fake.push('slash_commands', fake.slashCommandPayload('/imagine', 'a fox --steps 2', 'ULIMIT'));
      const [record] = await generationsOf('ULIMIT', 1);
      const { channel, ts } = decodeReplyTarget(record.request.replyTarget)!;
      await waitFor(() => updatesOf(ts)[0]);
      fake.rateLimitNext('chat.update', 1, ts);
      fake.push('slash_commands', fake.slashCommandPayload('/cancel', '', 'ULIMIT'));
      await waitFor(() => updatesOf(ts).length === 3);
      const [, limited, retried] = updatesOf(ts);
      expect(retried.args.text).toBe(limited.args.text);
      expect(fake.message(channel, ts)!.text).toBe('🚫 “a fox” was cancelled. Your quota was refunded.');
    });
  });

  it('queues a V3 click as a subtle variation of picture 3, asked for by the member who clicked', async () => {
    const { channel, ts, record } = await result('UANA', 'a fox');
    fake.push('interactive', fake.buttonClickPayload(channel, ts, encodeActionId({ action: 'vary-subtle', generationId: record.request.generationId, imageIndex: 2 }), 'UBOB'));
    const variation = await eventually(async () => (await childGenerations(stack.database.prisma, record.request.generationId))[0]);
    expect(variation.request).toMatchObject({ kind: 'vary-subtle', parent: { generationId: record.request.generationId, imageIndex: 2 }, requester: requester('UBOB') });
  });

  it('deletes on :x: from the requester, but DMs a refusal to someone else', async () => {
    const { channel, ts, record } = await result('UANA', 'a fox');
    const from = fake.calls.length;
    fake.push('events_api', fake.reactionEventPayload(channel, ts, 'x', 'UBOB'));
    const dm = await fake.waitForCall((call) => call.method === 'chat.postMessage' && call.args.channel === 'UBOB', from);
    expect(dm.args.text).toContain('Only the person who asked for this image, or an admin, can delete it.');
    expect(fake.message(channel, ts)).toBeDefined();
    expect((await stack.service.findGeneration(record.request.generationId))!.deletedAt).toBeUndefined();

    fake.push('events_api', fake.reactionEventPayload(channel, ts, 'x', 'UANA'));
    await waitFor(() => !fake.message(channel, ts));
    expect((await stack.service.findGeneration(record.request.generationId))!.deletedAt).toBeInstanceOf(Date);
  });
});
