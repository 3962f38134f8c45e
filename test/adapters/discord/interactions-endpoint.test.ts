import { generateKeyPairSync, sign } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createInteractionsEndpoint } from '../../../src/adapters/discord/interactions-endpoint.js';

const { publicKey, privateKey } = generateKeyPairSync('ed25519');
const publicKeyHex = publicKey.export({ format: 'der', type: 'spki' }).subarray(12).toString('hex');
const other = generateKeyPairSync('ed25519');
const nowSeconds = 1_795_000_000;

let server: ReturnType<typeof createInteractionsEndpoint>;
let url: string;
let received: any[];

beforeEach(async () => {
  received = [];
  server = createInteractionsEndpoint({ publicKeyHex, onInteraction: (interaction) => received.push(interaction), now: () => nowSeconds * 1000 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/interactions`;
});

afterEach(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function post(payload: unknown, options: { timestamp?: number; key?: typeof privateKey; signature?: string | null } = {}) {
  const body = JSON.stringify(payload);
  const timestamp = String(options.timestamp ?? nowSeconds);
  const signature = options.signature === undefined ? sign(null, Buffer.from(timestamp + body), options.key ?? privateKey).toString('hex') : options.signature;
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-signature-timestamp': timestamp };
  if (signature !== null) headers['x-signature-ed25519'] = signature;
  return fetch(url, { method: 'POST', headers, body });
}

describe('Discord HTTP interactions endpoint', () => {
  it('answers a signed PING with PONG', async () => {
    const response = await post({ type: 1 });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ type: 1 });
  });

  it('defers a signed command, privately for private commands, and hands it on', async () => {
    const response = await post({ type: 2, data: { name: 'quota', options: [] } });
    expect(await response.json()).toEqual({ type: 5, data: { flags: 64 } });
    const publicImagine = await post({ type: 2, data: { name: 'imagine', options: [{ name: 'prompt', type: 3, value: 'fox' }] } });
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
});
