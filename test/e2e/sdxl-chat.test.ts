import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SlackBot } from '../../src/adapters/slack/bot.js';
import { decodeReplyTarget } from '../../src/adapters/slack/reply-target.js';
import { FakeSlack } from '../support/fake-slack.js';
import { startSocketModeBot, stopSocketModeBot } from '../support/slack-socket-bot.js';
import { waitFor } from '../support/wait-for.js';
import { eventually, GENERATION_TIMEOUT_MS, startServiceStack, type ServiceStack } from '../support/service-stack.js';

/**
 * An SDXL-shaped folder behind the chat: real Bolt against the loopback Slack, the real queue, worker and engine on
 * tiny-sdxl. `--model` names it, and an aspect ratio picks the nearest of its trained buckets.
 */

let stack: ServiceStack;
let fake: FakeSlack;
let bot: SlackBot;

beforeAll(async () => {
  stack = await startServiceStack({ name: 'e2e-sdxl', modelDir: 'test/fixtures/models/tiny-sdxl' });
  fake = await FakeSlack.start();
  bot = await startSocketModeBot(fake, { service: stack.service, config: stack.chatConfig });
});

afterAll(async () => {
  await stopSocketModeBot(bot, fake);
  await stack?.stop();
});

describe('/imagine on an SDXL folder', () => {
  it('--model tiny-sdxl --ar 16:9 makes a grid at the nearest SDXL bucket and posts it', async () => {
    const envelope = fake.push('slash_commands', fake.slashCommandPayload('/imagine', 'a red fox --model tiny-sdxl --ar 16:9 --steps 2 --seed 5', 'USDXL'));
    await fake.waitForAck(envelope);
    const [generation] = await eventually(async () => {
      const found = await stack.service.history({ platform: 'slack', workspaceId: fake.teamId, userId: 'USDXL', isAdmin: false }, 1);
      return found.length === 1 ? found : undefined;
    });
    expect(generation.request.params).toMatchObject({ prompt: 'a red fox', width: 80, height: 48, steps: 2, seed: 5 });
    expect(generation.request.params.model).toBe('tiny-sdxl');
    const target = decodeReplyTarget(generation.request.replyTarget)!;
    await waitFor(
      () => fake.calls.find((call) => call.method === 'files.completeUploadExternal' && call.args.thread_ts === target.ts),
      GENERATION_TIMEOUT_MS,
    );
  }, GENERATION_TIMEOUT_MS + 30_000);
});
