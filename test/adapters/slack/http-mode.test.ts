import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startSlackBot, type SlackBot } from '../../../src/adapters/slack/bot.js';
import { FakeSlack, slackSignatureHeaders } from '../../support/fake-slack.js';
import { RecordingImagineService, TEST_CHAT_CONFIG } from '../../support/recording-imagine-service.js';

const signingSecret = 'fake-signing-secret';

let fake: FakeSlack;
let service: RecordingImagineService;
let bot: SlackBot;
let eventsUrl: string;

beforeEach(async () => {
  fake = await FakeSlack.start();
  service = new RecordingImagineService();
  bot = await startSlackBot({
    botToken: 'xoxb-fake',
    connection: { mode: 'http', signingSecret, port: 0 },
    service,
    config: TEST_CHAT_CONFIG,
    apiUrl: fake.apiUrl,
    apiRetries: 0,
    editIntervalMs: 50,
  });
  eventsUrl = `http://127.0.0.1:${(bot.httpServer!.address() as AddressInfo).port}/slack/events`;
});

afterEach(async () => {
  await bot.stop();
  await fake.close();
});

function postCommand(text: string, sign: { secret?: string; timestampSeconds?: number; unsigned?: boolean } = {}) {
  const body = new URLSearchParams(fake.slashCommandPayload('/imagine', text)).toString();
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (!sign.unsigned) Object.assign(headers, slackSignatureHeaders(sign.secret ?? signingSecret, body, sign.timestampSeconds));
  return fetch(eventsUrl, { method: 'POST', headers, body });
}

describe('Slack bot in HTTP mode', () => {
  it('serves a signed slash command', async () => {
    const submitted = service.nextSubmit();
    const response = await postCommand('a fox --seed 4');
    expect(response.status).toBe(200);
    expect((await submitted).params.seed).toBe(4);
    await fake.waitForCall((call) => call.method === 'chat.update');
  });

  it('hands a signed reaction event to the reaction listener', async () => {
    const body = JSON.stringify(fake.reactionEventPayload(fake.channelId, '1795000000.000001', 'repeat'));
    const response = await fetch(eventsUrl, { method: 'POST', headers: { 'content-type': 'application/json', ...slackSignatureHeaders(signingSecret, body) }, body });
    expect(response.status).toBe(200);
    const lookup = await fake.waitForCall((call) => call.method === 'conversations.history');
    expect(lookup.args).toMatchObject({ channel: fake.channelId, latest: '1795000000.000001' });
  });

  it('refuses a request signed with the wrong secret with 401', async () => {
    expect((await postCommand('a fox', { secret: 'not-the-secret' })).status).toBe(401);
    expect(service.submitted).toEqual([]);
  });

  it('refuses an unsigned request with 401', async () => {
    expect((await postCommand('a fox', { unsigned: true })).status).toBe(401);
  });

  it('refuses a correctly signed request older than 5 minutes with 401', async () => {
    expect((await postCommand('a fox', { timestampSeconds: Math.floor(Date.now() / 1000) - 6 * 60 })).status).toBe(401);
    expect(service.submitted).toEqual([]);
  });
});
