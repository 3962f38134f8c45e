import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createInteractionsEndpoint, DISCORD_MAX_BODY_BYTES } from '../../../src/adapters/discord/interactions-endpoint.js';
import type { DeliveryLog } from '../../../src/core/chat/deliveries.js';
import { createRedisDeliveryLog } from '../../../src/service/delivery-log.js';
import { deletePrefix, sharedRedisUrl, testPrefix } from '../../support/redis.js';

const { publicKey, privateKey } = generateKeyPairSync('ed25519');
const publicKeyHex = publicKey.export({ format: 'der', type: 'spki' }).subarray(12).toString('hex');
const other = generateKeyPairSync('ed25519');
const nowSeconds = 1_795_000_000;

let server: ReturnType<typeof createInteractionsEndpoint>;
let url: string;
let received: any[];
let redis: Redis;
let prefix: string;
let redisUrl: string;
const servers: ReturnType<typeof createInteractionsEndpoint>[] = [];

/** One bot process's endpoint; every one of them shares the delivery log in Redis, as replicas and restarts do. */
async function startEndpoint(deliveries: DeliveryLog): Promise<string> {
  const endpoint = createInteractionsEndpoint({ publicKeyHex, onInteraction: (interaction) => received.push(interaction), now: () => nowSeconds * 1000, deliveries });
  servers.push(endpoint);
  await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
  server = endpoint;
  return `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/interactions`;
}

beforeEach(async () => {
  received = [];
  redisUrl = await sharedRedisUrl();
  redis = new Redis(redisUrl);
  prefix = testPrefix('discord-deliveries');
  url = await startEndpoint(createRedisDeliveryLog(redis, prefix));
});

afterEach(async () => {
  for (const endpoint of servers.splice(0)) {
    endpoint.closeAllConnections();
    await new Promise<void>((resolve) => endpoint.close(() => resolve()));
  }
  redis.disconnect();
  await deletePrefix(redisUrl, prefix);
});

function post(payload: unknown, options: { timestamp?: number; key?: typeof privateKey; signature?: string | null; to?: string } = {}) {
  const body = JSON.stringify(payload);
  const timestamp = String(options.timestamp ?? nowSeconds);
  const signature = options.signature === undefined ? sign(null, Buffer.from(timestamp + body), options.key ?? privateKey).toString('hex') : options.signature;
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-signature-timestamp': timestamp };
  if (signature !== null) headers['x-signature-ed25519'] = signature;
  return fetch(options.to ?? url, { method: 'POST', headers, body });
}

/**
 * Streams a body of `totalBytes` in 64 KiB chunks and resolves with the answer and how much had been sent when it came:
 * an endpoint that refuses before reading answers long before the body ends.
 */
function streamBody(headers: Record<string, string>, totalBytes: number): Promise<{ status: number; sentBytes: number }> {
  const { hostname, port, pathname } = new URL(url);
  return new Promise((resolve, reject) => {
    let sentBytes = 0;
    let answered: IncomingMessage | undefined;
    const outgoing = httpRequest({ host: hostname, port, path: pathname, method: 'POST', headers }, (response) => {
      answered = response;
      response.resume();
      resolve({ status: response.statusCode!, sentBytes });
      outgoing.destroy();
    });
    outgoing.on('error', (error) => (answered ? undefined : reject(error)));
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const pump = () => {
      while (!answered && sentBytes < totalBytes) {
        sentBytes += chunk.length;
        if (!outgoing.write(chunk)) return void outgoing.once('drain', pump);
      }
      if (!answered) outgoing.end();
    };
    pump();
  });
}

const command = (name: string, options: unknown[] = []) => ({ id: randomUUID(), type: 2, data: { name, options } });

describe('Discord HTTP interactions endpoint', () => {
  it('answers a signed PING with PONG', async () => {
    const response = await post({ type: 1 });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ type: 1 });
  });

  it('defers a signed command, privately for private commands, and hands it on', async () => {
    const response = await post(command('quota'));
    expect(await response.json()).toEqual({ type: 5, data: { flags: 64 } });
    const publicImagine = await post(command('imagine', [{ name: 'prompt', type: 3, value: 'fox' }]));
    expect(await publicImagine.json()).toEqual({ type: 5, data: { flags: 0 } });
    expect(received.map((interaction) => interaction.data.name)).toEqual(['quota', 'imagine']);
  });

  it('refuses a request signed with another key with 401', async () => {
    expect((await post({ type: 1 }, { key: other.privateKey })).status).toBe(401);
  });

  it('refuses a request without a signature with 401', async () => {
    expect((await post({ type: 1 }, { signature: null })).status).toBe(401);
  });

  it('refuses a correctly signed request whose timestamp is more than 5 minutes old with 401', async () => {
    expect((await post({ type: 1 }, { timestamp: nowSeconds - 301 })).status).toBe(401);
    expect(received).toEqual([]);
  });

  it('refuses a body changed after signing with 401', async () => {
    const timestamp = String(nowSeconds);
    const signature = sign(null, Buffer.from(timestamp + '{"type":1}'), privateKey).toString('hex');
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'x-signature-timestamp': timestamp, 'x-signature-ed25519': signature },
      body: '{"type":2,"data":{"name":"admin"}}',
    });
    expect(response.status).toBe(401);
  });

  it('hands on a replay of a captured signed request only once, on this process or another sharing the delivery log', async () => {
    const captured = command('imagine', [{ name: 'prompt', type: 3, value: 'fox' }]);
    expect((await post(captured)).status).toBe(200);
    const replay = await post(captured);
    expect(replay.status).toBe(409);
    expect(await replay.json()).toEqual({ error: 'this interaction was already received' });
    const restarted = await startEndpoint(createRedisDeliveryLog(redis, prefix));
    expect((await post(captured, { to: restarted })).status).toBe(409);
    expect(received.map((interaction) => interaction.id)).toEqual([captured.id]);
  });

  it('refuses a correctly signed request dated in the future with 401', async () => {
    expect((await post(command('quota'), { timestamp: nowSeconds + 120 })).status).toBe(401);
    expect((await post(command('quota'), { timestamp: nowSeconds + 10 })).status).toBe(200);
    expect(received).toHaveLength(1);
  });

  it('refuses a body over the limit from its Content-Length, before reading it', async () => {
    const timestamp = String(nowSeconds);
    const headers = { 'x-signature-timestamp': timestamp, 'x-signature-ed25519': 'ab'.repeat(64), 'content-length': String(500 * 1024 * 1024) };
    const { status, sentBytes } = await streamBody(headers, 500 * 1024 * 1024);
    expect(status).toBe(413);
    expect(sentBytes).toBeLessThan(8 * 1024 * 1024);
  });

  it('stops reading a chunked body once it passes the limit', async () => {
    const headers = { 'x-signature-timestamp': String(nowSeconds), 'x-signature-ed25519': 'ab'.repeat(64), 'transfer-encoding': 'chunked' };
    const { status, sentBytes } = await streamBody(headers, 500 * 1024 * 1024);
    expect(status).toBe(413);
    expect(sentBytes).toBeGreaterThan(DISCORD_MAX_BODY_BYTES);
    expect(sentBytes).toBeLessThan(8 * 1024 * 1024);
  });

  it('refuses an unsigned request before reading its body', async () => {
    const { status, sentBytes } = await streamBody({ 'content-length': String(500 * 1024 * 1024) }, 500 * 1024 * 1024);
    expect(status).toBe(401);
    expect(sentBytes).toBeLessThan(8 * 1024 * 1024);
  });
});
