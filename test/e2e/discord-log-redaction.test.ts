import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDiscordBot, type DiscordBot } from '../../src/adapters/discord/bot.js';
import { createLogger, REDACTED } from '../../src/service/logger.js';
import { FakeDiscord } from '../support/fake-discord.js';
import { waitFor } from '../support/wait-for.js';
import { startServiceStack, type ServiceStack } from '../support/service-stack.js';

/**
 * With LOG_REDACT_PROMPTS=true, a Discord edit that fails is logged the way the service logs adapter errors
 * (src/service/main.ts: `{ err, context, platform }`), and the line holds neither the prompt, which @discordjs/rest
 * keeps in the error's requestBody, nor the interaction token in the webhook URL it failed on.
 */

let stack: ServiceStack;
let fake: FakeDiscord;
let bot: DiscordBot;
const lines: string[] = [];

beforeAll(async () => {
  stack = await startServiceStack({ name: 'log-redaction' });
  fake = await FakeDiscord.start();
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const logger = createLogger({ logLevel: 'info', logRedactPrompts: true, role: 'bot' }, stream);
  bot = await startDiscordBot({
    token: 'fake-token',
    service: stack.service,
    config: stack.chatConfig,
    apiBaseUrl: fake.apiUrl,
    restRetries: 0,
    editIntervalMs: 50,
    onError: (error, context) => logger.error({ err: error, context, platform: 'discord' }, 'chat adapter error'),
  });
});

afterAll(async () => {
  await bot?.stop();
  await fake?.close();
  await stack?.stop();
});

describe('log redaction of a failed Discord edit', () => {
  it('logs the failure with its status and route but without the prompt or the interaction token', async () => {
    fake.failNext('PATCH', /^\/webhooks\/\d+\/[^/]+\/messages\/@original$/, 400, { message: 'Invalid Form Body', code: 50035 });
    const { token } = fake.slashCommand('imagine', [
      { name: 'prompt', type: 3, value: 'a secret red fox --steps 2' },
      { name: 'private', type: 5, value: true },
    ]);
    const line = await waitFor(() => lines.find((candidate) => candidate.includes('chat adapter error')));
    const logged = JSON.parse(line);

    expect(logged.err).toMatchObject({ message: expect.stringContaining('Invalid Form Body'), status: 400, method: 'PATCH', requestBody: REDACTED });
    expect(logged.err.url).toMatch(new RegExp(`/webhooks/${fake.applicationId}/\\[redacted\\]/messages/(@|%40)original`));
    expect(line).not.toContain('secret red fox');
    expect(line).not.toContain(token);
  });
});
