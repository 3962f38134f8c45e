import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SlackBot } from '../../src/adapters/slack/bot.js';
import { decodeReplyTarget } from '../../src/adapters/slack/reply-target.js';
import { encodeActionId } from '../../src/core/chat/result-actions.js';
import { ancestorGenerations, childGenerations } from '../../src/store/generations.js';
import { FakeSlack } from '../support/fake-slack.js';
import { startSocketModeBot, stopSocketModeBot } from '../support/slack-socket-bot.js';
import { waitFor } from '../support/wait-for.js';
import { eventually, GENERATION_TIMEOUT_MS, startServiceStack, type ServiceStack } from '../support/service-stack.js';

/**
 * Real Bolt in Socket Mode against the loopback Slack, over the real queue, worker, tiny-sd engine, PGlite store and
 * image store: /imagine to an uploaded grid, then an upscale from its button.
 */

let stack: ServiceStack;
let fake: FakeSlack;
let bot: SlackBot;
const errors: unknown[] = [];

beforeAll(async () => {
  stack = await startServiceStack({ name: 'e2e-slack' });
  fake = await FakeSlack.start();
  bot = await startSocketModeBot(fake, { service: stack.service, config: stack.chatConfig, onError: (error) => errors.push(error) });
});

afterAll(async () => {
  await stopSocketModeBot(bot, fake);
  await stack?.stop();
});

const updatesOf = (channel: string, ts: string) => fake.calls.filter((call) => call.method === 'chat.update' && call.args.channel === channel && call.args.ts === ts);
const actionLabels = (blocks: any[] = []) => blocks.filter((block) => block.type === 'actions').map((block) => block.elements.map((element: any) => element.text.text));
const resultUpdatesOf = (channel: string, ts: string) => updatesOf(channel, ts).filter((call) => actionLabels(call.args.blocks).length > 0);
const uploadsInThread = (ts: string) => fake.calls.filter((call) => call.method === 'files.completeUploadExternal' && call.args.thread_ts === ts);

describe('Slack end to end on the real stack', () => {
  it('acks /imagine, updates its message with progress, uploads the grid with files.uploadV2, and upscales from the U2 button', async () => {
    const envelope = fake.push('slash_commands', fake.slashCommandPayload('/imagine', 'a red fox --ar 1:1 --seed 7 --steps 24', 'UANA'));
    await fake.waitForAck(envelope);

    const [grid] = await eventually(async () => {
      const found = await stack.service.history({ platform: 'slack', workspaceId: fake.teamId, userId: 'UANA', isAdmin: false }, 1);
      return found.length === 1 ? found : undefined;
    });
    expect(grid.request.params).toMatchObject({ prompt: 'a red fox', width: 64, height: 64, steps: 24, seed: 7, batch: 4 });
    const target = decodeReplyTarget(grid.request.replyTarget)!;
    expect(target.channel).toBe(fake.channelId);

    await waitFor(() => resultUpdatesOf(target.channel, target.ts)[0], GENERATION_TIMEOUT_MS);
    expect(updatesOf(target.channel, target.ts).some((call) => /step \d+\/24/.test(call.args.text))).toBe(true);
    const [result] = resultUpdatesOf(target.channel, target.ts);
    expect(actionLabels(result.args.blocks)[0]).toEqual(['U1', 'U2', 'U3', 'U4']);
    expect(result.args.text).toContain('seed 7');
    const gridUploads = uploadsInThread(target.ts);
    expect(gridUploads).toHaveLength(1);
    expect(gridUploads[0].args.channel_id).toBe(target.channel);
    await waitFor(() => fake.calls.filter((call) => call.method === 'reactions.add' && call.args.timestamp === target.ts).length === 3);

    const uploadsBefore = fake.uploads.length;
    fake.push('interactive', fake.buttonClickPayload(target.channel, target.ts, encodeActionId({ action: 'upscale', generationId: grid.request.generationId, imageIndex: 1 }), 'UBOB'));
    const upscale = await eventually(async () => {
      const children = await childGenerations(stack.database.prisma, grid.request.generationId);
      return children.length === 1 ? children[0] : undefined;
    });
    expect(upscale.request).toMatchObject({ kind: 'upscale', parent: { generationId: grid.request.generationId, imageIndex: 1 }, requester: { userId: 'UBOB' } });
    const upscaleTarget = decodeReplyTarget(upscale.request.replyTarget)!;
    expect(upscaleTarget.ts).not.toBe(target.ts);

    await waitFor(() => resultUpdatesOf(upscaleTarget.channel, upscaleTarget.ts)[0], GENERATION_TIMEOUT_MS);
    expect(uploadsInThread(upscaleTarget.ts)).toHaveLength(1);
    expect(fake.uploads.length).toBe(uploadsBefore + 1);
    expect(fake.uploads.at(-1)!.bytes).toBeGreaterThan(0);
    const lineage = await ancestorGenerations(stack.database.prisma, upscale.request.generationId);
    expect(lineage.map((record) => record.request.generationId)).toEqual([grid.request.generationId]);
    expect(resultUpdatesOf(target.channel, target.ts)).toHaveLength(1);
    expect(resultUpdatesOf(upscaleTarget.channel, upscaleTarget.ts)).toHaveLength(1);
    expect(errors).toEqual([]);
  });
});
