import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSlackBot, type SlackBot } from '../../../src/adapters/slack/bot.js';
import type { Requester } from '../../../src/core/generation.js';
import { FakeSlack, slackSignatureHeaders } from '../../support/fake-slack.js';
import { eventually, startServiceStack, type ServiceStack } from '../../support/service-stack.js';
import { expectHeldExactly, heldFor } from '../../support/stack-results.js';

/**
 * Slack's HTTP mode refuses what Slack did not sign, on the real stack (PGlite, Redis queue, tiny-sd worker,
 * ImagineService). A signed command, a signed reaction event, replays, retries, future dates and body limits are
 * test/e2e/slack-deliveries.test.ts's.
 */

const signingSecret = 'fake-signing-secret';

let stack: ServiceStack;
let fake: FakeSlack;
let bot: SlackBot;
let eventsUrl: string;

beforeAll(async () => {
  stack = await startServiceStack({ name: 'slack-http-mode', quotaUnitsPerPeriod: 1000 });
  fake = await FakeSlack.start();
  bot = await startSlackBot({
    botToken: 'xoxb-fake',
    connection: { mode: 'http', signingSecret, port: 0 },
    service: stack.service,
    config: stack.chatConfig,
    apiUrl: fake.apiUrl,
    apiRetries: 0,
    editIntervalMs: 50,
  });
  eventsUrl = `http://127.0.0.1:${(bot.httpServer!.address() as AddressInfo).port}/slack/events`;
});

afterAll(async () => {
  await bot?.stop();
  await fake?.close();
  await stack?.stop();
});

const requester = (userId: string): Requester => ({ platform: 'slack', workspaceId: fake.teamId, userId, isAdmin: false });

function postCommand(userId: string, text: string, sign: { secret?: string; timestampSeconds?: number; unsigned?: boolean } = {}) {
  const body = new URLSearchParams(fake.slashCommandPayload('/imagine', text, userId)).toString();
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (!sign.unsigned) Object.assign(headers, slackSignatureHeaders(sign.secret ?? signingSecret, body, sign.timestampSeconds));
  return fetch(eventsUrl, { method: 'POST', headers, body });
}

/**
 * The user's refused command is followed by the same command signed as Slack signs it; once that one is queued, the
 * refused one has had as long as it would need to be, so the store, queue and ledger hold the signed one only.
 */
async function expectOnlyTheSignedCommandHeld(userId: string) {
  await postCommand(userId, 'a fox --steps 2');
  // The store records a request before the queue takes its job.
  await eventually(async () => ((await heldFor(stack, requester(userId))).queued.length > 0 ? true : undefined));
  const [signed] = await stack.service.history(requester(userId), 5);
  await expectHeldExactly(stack, requester(userId), [signed.request]);
}

describe('Slack bot in HTTP mode', () => {
  it('refuses a request signed with the wrong secret with 401 and queues nothing from it', async () => {
    expect((await postCommand('UFORGER', 'a fox --steps 2', { secret: 'not-the-secret' })).status).toBe(401);
    await expectOnlyTheSignedCommandHeld('UFORGER');
  });

  it('refuses an unsigned request with 401 and queues nothing from it', async () => {
    expect((await postCommand('UUNSIGNED', 'a fox --steps 2', { unsigned: true })).status).toBe(401);
    await expectOnlyTheSignedCommandHeld('UUNSIGNED');
  });

  it('refuses a correctly signed request older than 5 minutes with 401 and queues nothing from it', async () => {
    expect((await postCommand('USTALE', 'a fox --steps 2', { timestampSeconds: Math.floor(Date.now() / 1000) - 6 * 60 })).status).toBe(401);
    await expectOnlyTheSignedCommandHeld('USTALE');
  });
});
