import { startSlackBot, type SlackBot, type SlackBotOptions } from '../../src/adapters/slack/bot.js';
import type { FakeSlack } from './fake-slack.js';
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
