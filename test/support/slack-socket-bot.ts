import { startSlackBot, type SlackBot, type SlackBotOptions } from '../../src/adapters/slack/bot.js';
import { decodeReplyTarget } from '../../src/adapters/slack/reply-target.js';
import type { GenerationRecord } from '../../src/core/chat/service.js';
import type { Requester } from '../../src/core/generation.js';
import type { FakeSlack } from './fake-slack.js';
import { eventually, GENERATION_TIMEOUT_MS, type ServiceStack } from './service-stack.js';
import { waitFor } from './wait-for.js';

/** Real Bolt in Socket Mode against the loopback Slack, connected before the test starts. */
export async function startSocketModeBot(
  fake: FakeSlack,
  options: Pick<SlackBotOptions, 'service' | 'config'> & Partial<SlackBotOptions>,
): Promise<SlackBot> {
  const bot = await startSlackBot({
    botToken: 'xoxb-fake',
    connection: { mode: 'socket', appToken: 'xapp-fake' },
    apiUrl: fake.apiUrl,
    apiRetries: 0,
    editIntervalMs: 50,
    ...options,
  });
  await waitFor(() => fake.socketConnected);
  return bot;
}

/** Stops the bot, then the fake: the Socket Mode client finishes closing asynchronously. */
export async function stopSocketModeBot(bot: SlackBot | undefined, fake: FakeSlack | undefined): Promise<void> {
  await bot?.stop();
  await new Promise((resolve) => setTimeout(resolve, 300));
  await fake?.close();
}

/** Runs /imagine "`prompt` --steps 2" as `requester` to its finished grid, shown in Slack with its buttons. */
export async function slackResult(
  fake: FakeSlack,
  stack: ServiceStack,
  requester: Requester,
  prompt: string,
): Promise<{ channel: string; ts: string; record: GenerationRecord }> {
  const before = (await stack.service.history(requester, 1))[0]?.request.generationId;
  fake.push('slash_commands', fake.slashCommandPayload('/imagine', `${prompt} --steps 2`, requester.userId));
  const record = await eventually(async () => {
    const [latest] = await stack.service.history(requester, 1);
    return latest && latest.request.generationId !== before ? latest : undefined;
  });
  const { channel, ts } = decodeReplyTarget(record.request.replyTarget)!;
  await waitFor(() => fake.message(channel, ts)?.blocks.some((block) => block.type === 'actions'), GENERATION_TIMEOUT_MS);
  return { channel, ts, record };
}
