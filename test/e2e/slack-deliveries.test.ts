import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SLACK_MAX_BODY_BYTES, startSlackBot, type SlackBot } from '../../src/adapters/slack/bot.js';
import { decodeReplyTarget } from '../../src/adapters/slack/reply-target.js';
import { encodeActionId } from '../../src/core/chat/result-actions.js';
import type { Requester } from '../../src/core/generation.js';
import { createRedisDeliveryLog } from '../../src/service/delivery-log.js';
import { childGenerations } from '../../src/store/generations.js';
import { FakeSlack, slackSignatureHeaders } from '../support/fake-slack.js';
import { waitFor } from '../support/wait-for.js';
import { deletePrefix, testPrefix } from '../support/redis.js';
import { eventually, GENERATION_TIMEOUT_MS, startServiceStack, type ServiceStack } from '../support/service-stack.js';

/**
 * Slack over HTTP, signed as Slack signs, on the real stack: a retried event makes one job and one charge, and what can
 * be refused without reading the body (its size, a date in the future) is.
 */

const signingSecret = 'fake-signing-secret';
let stack: ServiceStack;
let fake: FakeSlack;
let redis: Redis;
let deliveryPrefix: string;
const bots: SlackBot[] = [];

async function startBot(): Promise<string> {
  const bot = await startSlackBot({
    botToken: 'xoxb-fake',
    connection: { mode: 'http', signingSecret, port: 0 },
    service: stack.service,
    config: stack.chatConfig,
    apiUrl: fake.apiUrl,
    apiRetries: 0,
    editIntervalMs: 50,
    deliveries: createRedisDeliveryLog(redis, deliveryPrefix),
  });
  bots.push(bot);
  return `http://127.0.0.1:${(bot.httpServer!.address() as AddressInfo).port}/slack/events`;
}

beforeAll(async () => {
  stack = await startServiceStack({ name: 'e2e-slack-deliveries', quotaUnitsPerPeriod: 1000 });
  fake = await FakeSlack.start();
  redis = new Redis(stack.redisUrl);
  deliveryPrefix = testPrefix('slack-deliveries');
});

afterAll(async () => {
  for (const bot of bots) await bot.stop();
  await fake?.close();
  redis?.disconnect();
  if (stack) await deletePrefix(stack.redisUrl, deliveryPrefix);
  await stack?.stop();
});

const ana: Requester = { platform: 'slack', workspaceId: 'T0FAKE', userId: 'UANA', isAdmin: false };

function postSigned(eventsUrl: string, body: string, contentType: string, headers: Record<string, string> = {}, timestampSeconds?: number) {
  return fetch(eventsUrl, { method: 'POST', headers: { 'content-type': contentType, ...slackSignatureHeaders(signingSecret, body, timestampSeconds), ...headers }, body });
}
const commandBody = (text: string) => new URLSearchParams(fake.slashCommandPayload('/imagine', text)).toString();

describe('Slack deliveries over HTTP on the real stack', () => {
  it('makes one job and one charge from an event Slack delivers four times (X-Slack-Retry-Num 1–3, same event_id), on any bot process', async () => {
    const firstBot = await startBot();
    expect((await postSigned(firstBot, commandBody('a lighthouse --steps 2'), 'application/x-www-form-urlencoded')).status).toBe(200);
    const grid = await eventually(async () => (await stack.service.history(ana, 1))[0]);
    const target = decodeReplyTarget(grid.request.replyTarget)!;
    await waitFor(() => fake.message(target.channel, target.ts)?.blocks.some((block) => block.type === 'actions'), GENERATION_TIMEOUT_MS);
    const usedBefore = (await stack.ledger.standing(ana)).usedUnits;

    const reroll = JSON.stringify(fake.reactionEventPayload(target.channel, target.ts, 'repeat'));
    expect((await postSigned(firstBot, reroll, 'application/json')).status).toBe(200);
    // A second replica (or the bot after a restart) gets the retries: the delivery log in Redis is shared.
    const secondBot = await startBot();
    for (const retry of [1, 2, 3]) {
      const response = await postSigned(retry === 1 ? firstBot : secondBot, reroll, 'application/json', { 'x-slack-retry-num': String(retry), 'x-slack-retry-reason': 'http_timeout' });
      expect(response.status).toBe(200);
    }

    const child = await eventually(async () => (await childGenerations(stack.database.prisma, grid.request.generationId))[0]);
    expect(child.request.kind).toBe('reroll');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await childGenerations(stack.database.prisma, grid.request.generationId)).toHaveLength(1);
    const reserves = await stack.database.prisma.usageLedger.count({ where: { kind: 'reserve', generationId: child.request.generationId } });
    expect(reserves).toBe(1);
    expect((await stack.ledger.standing(ana)).usedUnits).toBe(usedBefore + 1);
  });

  it('refuses a correctly signed request dated in the future with 401, and queues nothing', async () => {
    const eventsUrl = bots[0] ? `http://127.0.0.1:${(bots[0].httpServer!.address() as AddressInfo).port}/slack/events` : await startBot();
    const before = await stack.database.prisma.generation.count();
    const future = Math.floor(Date.now() / 1000) + 120;
    expect((await postSigned(eventsUrl, commandBody('a sailboat --steps 2'), 'application/x-www-form-urlencoded', {}, future)).status).toBe(401);
    expect((await postSigned(eventsUrl, commandBody('a sailboat --steps 2'), 'application/x-www-form-urlencoded', {}, future - 110)).status).toBe(200);
    await eventually(async () => ((await stack.database.prisma.generation.count()) === before + 1 ? true : undefined));
  });

  it('makes one job from a signed slash command and one from a signed click, each replayed with its signature inside the five-minute window', async () => {
    const eventsUrl = bots[0] ? `http://127.0.0.1:${(bots[0].httpServer!.address() as AddressInfo).port}/slack/events` : await startBot();
    // A replay is the captured request sent again as it was: same body, same timestamp, same signature.
    const replayed = async (body: string) => {
      const headers = { 'content-type': 'application/x-www-form-urlencoded', ...slackSignatureHeaders(signingSecret, body) };
      for (let attempt = 0; attempt < 3; attempt += 1) expect((await fetch(eventsUrl, { method: 'POST', headers, body })).status).toBe(200);
    };
    const windmills = async () =>
      (await stack.service.history(ana, 20)).filter((record) => record.request.kind === 'imagine' && record.request.params.prompt === 'a windmill');

    await replayed(commandBody('a windmill --steps 2'));
    const [grid] = await eventually(async () => ((await windmills()).length > 0 ? windmills() : undefined));
    const target = decodeReplyTarget(grid!.request.replyTarget)!;
    await waitFor(() => fake.message(target.channel, target.ts)?.blocks.some((block) => block.type === 'actions'), GENERATION_TIMEOUT_MS);
    expect(await windmills()).toHaveLength(1);

    const click = fake.buttonClickPayload(target.channel, target.ts, encodeActionId({ action: 'upscale', generationId: grid!.request.generationId, imageIndex: 0 }));
    await replayed(new URLSearchParams({ payload: JSON.stringify(click) }).toString());
    await eventually(async () => (await childGenerations(stack.database.prisma, grid!.request.generationId))[0]);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await childGenerations(stack.database.prisma, grid!.request.generationId)).toHaveLength(1);
    expect(await windmills()).toHaveLength(1);
  });

  it('refuses a body over the limit from its Content-Length before reading it, and cuts a chunked one at the limit', async () => {
    const eventsUrl = new URL(`http://127.0.0.1:${(bots[0].httpServer!.address() as AddressInfo).port}/slack/events`);
    const send = (headers: Record<string, string>) =>
      new Promise<{ status: number | 'connection cut'; sentBytes: number }>((resolve) => {
        let sentBytes = 0;
        let answered = false;
        const outgoing = httpRequest({ host: eventsUrl.hostname, port: eventsUrl.port, path: eventsUrl.pathname, method: 'POST', headers }, (response) => {
          answered = true;
          response.resume();
          resolve({ status: response.statusCode!, sentBytes });
          outgoing.destroy();
        });
        outgoing.on('error', () => {
          if (answered) return;
          answered = true;
          resolve({ status: 'connection cut', sentBytes });
        });
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        const pump = () => {
          while (!answered && sentBytes < 500 * 1024 * 1024) {
            sentBytes += chunk.length;
            if (!outgoing.write(chunk)) return void outgoing.once('drain', pump);
          }
        };
        pump();
      });
    const oversized = await send({ 'content-type': 'application/json', 'content-length': String(500 * 1024 * 1024) });
    expect(oversized.status).toBe(413);
    expect(oversized.sentBytes).toBeLessThan(8 * 1024 * 1024);
    const chunked = await send({ 'content-type': 'application/json', 'transfer-encoding': 'chunked', ...slackSignatureHeaders(signingSecret, '') });
    expect(chunked.status).toBe('connection cut');
    expect(chunked.sentBytes).toBeGreaterThan(SLACK_MAX_BODY_BYTES);
    expect(chunked.sentBytes).toBeLessThan(8 * 1024 * 1024);
  });
});
