import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDiscordBot, type DiscordBot } from '../../src/adapters/discord/bot.js';
import { DISCORD_MAX_BODY_BYTES } from '../../src/adapters/discord/interactions-endpoint.js';
import { encodeActionId } from '../../src/core/chat/result-actions.js';
import { createRedisDeliveryLog } from '../../src/service/delivery-log.js';
import { childGenerations } from '../../src/store/generations.js';
import { FakeDiscord, type FakeMember } from '../support/fake-discord.js';
import { waitFor } from '../support/wait-for.js';
import { eventually, GENERATION_TIMEOUT_MS, startServiceStack, type ServiceStack } from '../support/service-stack.js';

/**
 * The Discord adapter with an Interactions Endpoint URL instead of the gateway, on the real queue, worker, tiny-sd
 * engine and store: requests are POSTed to it as Discord does, signed with an Ed25519 key pair made here, and only
 * validly signed, fresh, first deliveries may make a job.
 */

const owner: FakeMember = { userId: '940000000000000001' };
const clicker: FakeMember = { userId: '940000000000000002' };
const applicationKeys = generateKeyPairSync('ed25519');
const attackerKeys = generateKeyPairSync('ed25519');
const publicKeyHex = applicationKeys.publicKey.export({ format: 'der', type: 'spki' }).subarray(12).toString('hex');

describe('Discord interactions over HTTP, through the running service', () => {
  let stack: ServiceStack;
  let fake: FakeDiscord;
  let redis: Redis;
  let bot: DiscordBot;
  let endpointUrl: string;
  let resultMessageId: string;
  const errors: unknown[] = [];

  beforeAll(async () => {
    stack = await startServiceStack({ name: 'e2e-discord-http' });
    fake = await FakeDiscord.start();
    redis = new Redis(stack.redisUrl);
    bot = await startDiscordBot({
      token: 'fake-token',
      service: stack.service,
      config: stack.chatConfig,
      apiBaseUrl: fake.apiUrl,
      restRetries: 0,
      editIntervalMs: 50,
      onError: (error) => errors.push(error),
      interactions: { publicKeyHex, port: 0, host: '127.0.0.1', deliveries: createRedisDeliveryLog(redis, `${stack.prefix}:deliveries`) },
    });
    endpointUrl = `http://127.0.0.1:${(bot.interactionsServer!.address() as AddressInfo).port}/interactions`;
  });

  afterAll(async () => {
    await bot?.stop();
    redis?.disconnect();
    await fake?.close();
    await stack?.stop();
  });

  const generations = () => stack.database.prisma.generation.count();

  /** POSTs `body` as Discord would, signed by `key` at `timestampSeconds`; a 200 answer is handed to the fake Discord. */
  async function deliver(body: string, options: { key?: KeyObject; timestampSeconds?: number } = {}) {
    const timestamp = String(options.timestampSeconds ?? Math.floor(Date.now() / 1000));
    const signature = sign(null, Buffer.from(timestamp + body), options.key ?? applicationKeys.privateKey).toString('hex');
    const response = await fetch(endpointUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-signature-ed25519': signature, 'x-signature-timestamp': timestamp },
      body,
    });
    const answer = (response.headers.get('content-type')?.includes('json') ? await response.json() : undefined) as { type: number; data?: unknown } | undefined;
    if (response.status === 200 && answer) fake.acceptHttpAnswer(JSON.parse(body).token, answer);
    return { status: response.status, answer };
  }

  const imagine = (prompt: string) => JSON.stringify(fake.slashCommandPayload('imagine', [{ name: 'prompt', type: 3, value: prompt }, { name: 'steps', type: 4, value: 2 }], owner));

  it('refuses forged, stale and future-dated requests with 401 and makes no job', async () => {
    const nowSeconds = Math.floor(Date.now() / 1000);
    expect((await deliver(imagine('a forged apple'), { key: attackerKeys.privateKey })).status).toBe(401);
    expect((await deliver(imagine('a stale apple'), { timestampSeconds: nowSeconds - 6 * 60 })).status).toBe(401);
    expect((await deliver(imagine('a future apple'), { timestampSeconds: nowSeconds + 5 * 60 })).status).toBe(401);
    expect(await generations()).toBe(0);
    expect(fake.requests).toEqual([]);
  });

  it('refuses a body over the limit with 413 before reading it', async () => {
    const timestamp = String(Math.floor(Date.now() / 1000));
    const response = await fetch(endpointUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-signature-ed25519': '0'.repeat(128), 'x-signature-timestamp': timestamp },
      body: Buffer.alloc(DISCORD_MAX_BODY_BYTES + 1, 0x20),
    });
    expect(response.status).toBe(413);
    expect(await generations()).toBe(0);
  });

  it('defers a validly signed /imagine, runs it to its result message, and makes no second job from a replay', async () => {
    const body = imagine('a red apple --seed 3');
    const timestampSeconds = Math.floor(Date.now() / 1000);
    const first = await deliver(body, { timestampSeconds });
    expect(first).toEqual({ status: 200, answer: { type: 5, data: { flags: 0 } } });

    const payload = JSON.parse(body);
    const message = await waitFor(() => fake.originalMessage(payload.token));
    const result = await waitFor(
      () => fake.requests.find((call) => call.method === 'PATCH' && call.path === `/channels/${fake.channelId}/messages/${message.id}` && (call.body?.components ?? []).length > 0),
      GENERATION_TIMEOUT_MS,
    );
    expect(result.body.content).toBe('“a red apple” — 64×64, seed 3');
    expect(result.authorization).toBe('Bot fake-token');
    expect(await generations()).toBe(1);

    const replay = await deliver(body, { timestampSeconds });
    expect(replay.status).toBe(409);
    expect(await generations()).toBe(1);
    expect(errors).toEqual([]);
    resultMessageId = message.id;
  });

  it('runs a signed click on U2 of that result as one upscale for the clicker, and ignores the click’s replay', async () => {
    const [grid] = await stack.database.prisma.generation.findMany();
    const click = JSON.stringify(fake.buttonPayload(resultMessageId, encodeActionId({ action: 'upscale', generationId: grid.id, imageIndex: 1 }), clicker));
    expect(await deliver(click)).toEqual({ status: 200, answer: { type: 6 } });
    const children = await eventually(async () => {
      const found = await childGenerations(stack.database.prisma, grid.id);
      return found.length > 0 ? found : undefined;
    });
    expect(children.map((child) => child.request)).toEqual([
      expect.objectContaining({ kind: 'upscale', parent: { generationId: grid.id, imageIndex: 1 }, requester: expect.objectContaining({ userId: clicker.userId }) }),
    ]);
    expect((await deliver(click)).status).toBe(409);
    expect(await generations()).toBe(2);
  });
});
