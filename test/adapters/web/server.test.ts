import { request as httpRequest } from 'node:http';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { ServerMessage, WebMessage } from '../../../src/adapters/web/protocol.js';
import { decodeReplyTarget } from '../../../src/adapters/web/reply-target.js';
import { startWebChat, type WebChat } from '../../../src/adapters/web/server.js';
import { encodeActionId } from '../../../src/core/chat/result-actions.js';
import type { GenerationRequest } from '../../../src/core/generation.js';
import { RecordingImagineService, TEST_CHAT_CONFIG, waitFor } from '../../support/recording-imagine-service.js';

const PNG_BYTES = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');

/** The service, recording which image keys the chat read. */
class ImageReadingService extends RecordingImagineService {
  readonly imageReads: string[] = [];
  /** When set, submit reports step 1 at once and answers only after this resolves (a fast worker beating the answer). */
  holdSubmitUntil?: Promise<void>;

  override async submit(request: GenerationRequest) {
    const placement = await super.submit(request);
    if (this.holdSubmitUntil) {
      this.emit({ type: 'progress', generationId: request.generationId, platform: 'web', replyTarget: request.replyTarget, step: 1, totalSteps: 30 });
      await this.holdSubmitUntil;
    }
    return placement;
  }

  override async readImage(key: string): Promise<Buffer> {
    this.imageReads.push(key);
    return super.readImage(key);
  }
}

/** A browser's cookie jar for the chat: what `GET /` set, sent back on the socket and on later requests. */
interface Visitor {
  cookie: string;
}

const ADMIN_TOKEN = 'admin-token-of-the-test-0123';

/** A page's side of the socket: the messages it would show, in order, kept up to date like the page does. */
class ChatClient {
  readonly shown = new Map<string, WebMessage>();
  transcriptReceived = false;
  composer: { example: string; help: string } | undefined;
  userId = '';
  isAdmin = false;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const message = JSON.parse(data.toString()) as ServerMessage;
      if (message.type === 'transcript') {
        this.userId = message.userId;
        this.isAdmin = message.isAdmin;
        this.shown.clear();
        for (const shown of message.messages) this.shown.set(shown.id, shown);
        this.transcriptReceived = true;
      } else if (message.type === 'upsert') {
        this.shown.set(message.message.id, message.message);
      } else if (message.type === 'remove') {
        this.shown.delete(message.messageId);
      } else if (message.type === 'composer') {
        this.composer = message;
      }
    });
  }

  static async connect(chat: WebChat, visitor: Visitor, path = 'chat'): Promise<ChatClient> {
    const socket = new WebSocket(`${chat.url.replace('http:', 'ws:')}${path}`, { origin: chat.url.slice(0, -1), headers: { cookie: visitor.cookie } });
    const client = new ChatClient(socket);
    await once(socket, 'open');
    await waitFor(() => client.transcriptReceived);
    return client;
  }

  send(message: object): void {
    this.socket.send(JSON.stringify(message));
  }

  messages(): WebMessage[] {
    return [...this.shown.values()];
  }

  message(id: string): WebMessage | undefined {
    return this.shown.get(id);
  }

  waitForMessage(probe: (message: WebMessage) => boolean): Promise<WebMessage> {
    return waitFor(() => this.messages().find(probe));
  }
}

const BOB = 'web-0000000000000000000000000000b0b0';

let service: ImageReadingService;
let chat: WebChat;
let ana: Visitor;
const clients: ChatClient[] = [];

async function connect(visitor = ana): Promise<ChatClient> {
  const client = await ChatClient.connect(chat, visitor);
  clients.push(client);
  return client;
}

/** Opens the page as a new browser would: the server's Set-Cookie becomes the visitor's cookie. */
async function visit(): Promise<Visitor> {
  const page = await get('/');
  return { cookie: cookiesOf(page.headers['set-cookie']) };
}

const cookiesOf = (setCookie: unknown) => ((setCookie as string[] | undefined) ?? []).map((line) => line.split(';')[0]).join('; ');

beforeEach(async () => {
  service = new ImageReadingService();
  chat = await startWebChat({ service, config: TEST_CHAT_CONFIG, port: 0, session: { secret: randomBytes(32), adminToken: ADMIN_TOKEN }, onError: () => {} });
  ana = await visit();
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.socket.close();
  await chat.close();
});

async function imagine(client: ChatClient, text: string): Promise<{ request: GenerationRequest; messageId: string }> {
  const submitted = service.nextSubmit();
  client.send({ type: 'command', text });
  const request = await submitted;
  const { messageId } = decodeReplyTarget(request.replyTarget)!;
  await waitFor(() => client.message(messageId)?.text.includes('queue'));
  return { request, messageId };
}

async function finishedResult(client: ChatClient, batch: number) {
  const { request, messageId } = await imagine(client, `/imagine a fox --seed 10`);
  const keys = Array.from({ length: batch }, (_, k) => `generations/${request.generationId}/${k}.png`);
  const record = service.finish(request.generationId, keys, batch > 1 ? `generations/${request.generationId}/grid.png` : undefined);
  service.emit({ type: 'succeeded', generationId: request.generationId, platform: 'web', replyTarget: request.replyTarget, result: record.result! });
  await waitFor(() => client.message(messageId)!.buttonRows.length > 0);
  return { request, messageId };
}

function get(path: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  const { port } = new URL(chat.url);
  return new Promise((resolve, reject) => {
    // node:http sends the path as written; fetch() would resolve the dot segments before they reach the server.
    const outgoing = httpRequest({ host: '127.0.0.1', port, path, headers, method }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks) }));
    });
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

describe('web chat commands', () => {
  it('submits /imagine as a web request from the local user and shows its queue position in the message it opened', async () => {
    const client = await connect();
    const { request, messageId } = await imagine(client, '/imagine a red fox --ar 2:3 --seed 8');
    expect(request).toMatchObject({ kind: 'imagine', params: { prompt: 'a red fox', width: 416, height: 624, seed: 8, model: 'emoji-tiny' } });
    expect(request.requester).toEqual({ platform: 'web', workspaceId: 'local', userId: client.userId, isAdmin: false });
    expect(client.userId).toMatch(/^web-[0-9a-f]{32}$/);
    expect(decodeReplyTarget(request.replyTarget)).toEqual({ userId: client.userId, messageId });
    const [typed, accepted] = client.messages();
    expect(typed).toMatchObject({ author: 'you', text: '/imagine a red fox --ar 2:3 --seed 8' });
    expect(accepted).toMatchObject({ id: messageId, author: 'bot', text: '🎨 “a red fox” — position 2 in the queue, ready in about 40 s.' });
  });

  it('shows each combination of a permutation prompt in its own message', async () => {
    const client = await connect();
    client.send({ type: 'command', text: '/imagine a {red, green} fox --seed 8' });
    const [red, green] = await waitFor(() => (service.submitted.length === 2 ? service.submitted : undefined));
    const [redId, greenId] = [red, green].map((request) => decodeReplyTarget(request.replyTarget)!.messageId);
    expect(greenId).not.toBe(redId);
    await waitFor(() => client.message(redId)?.text.includes('queue') && client.message(greenId)?.text.includes('queue'));
    expect(client.message(redId)!.text).toMatch(/^🎨 “a red fox” — position/);
    expect(client.message(greenId)!.text).toMatch(/^🎨 “a green fox” — position/);
  });

  it('answers a bad flag with an error message and submits nothing', async () => {
    const client = await connect();
    client.send({ type: 'command', text: '/imagine a fox --chaos 3' });
    const error = await client.waitForMessage((message) => message.author === 'bot');
    expect(error.text).toContain('--chaos is not a flag I know');
    expect(error.ephemeral).toBe(true);
    expect(service.submitted).toEqual([]);
  });

  it('says which commands exist when the line is not one', async () => {
    const client = await connect();
    client.send({ type: 'command', text: '/paint a fox' });
    const error = await client.waitForMessage((message) => message.author === 'bot');
    expect(error.text).toContain("I don't know /paint.");
    expect(error.text).toContain('/imagine, /blend, /quota, /history, /info, /cancel, /settings');
  });

  it('answers /quota, /settings and /cancel for the local user', async () => {
    const client = await connect();
    client.send({ type: 'command', text: '/quota' });
    await client.waitForMessage((message) => message.text.startsWith('You have 7 '));
    client.send({ type: 'command', text: '/settings pixel-32 relax' });
    await client.waitForMessage((message) => message.text.startsWith('Saved. Your defaults: model pixel-32, mode relax,'));
    client.send({ type: 'command', text: '/cancel' });
    await client.waitForMessage((message) => message.text === 'You have nothing queued or running.');
    expect(service.cancelled).toEqual([{ requester: { platform: 'web', workspaceId: 'local', userId: client.userId, isAdmin: false }, generationId: undefined }]);
  });

  it('finds an image for /info by a link to its message', async () => {
    const client = await connect();
    const { request, messageId } = await finishedResult(client, 1);
    client.send({ type: 'command', text: `/info ${chat.url}#m-${messageId}` });
    const info = await client.waitForMessage((message) => message.text.startsWith('Prompt:'));
    expect(info.text).toContain(`Generation: ${request.generationId}`);
  });
});

describe('web chat live updates', () => {
  it('shows the preview of each step in the generation message, then the result with buttons and reaction chips', async () => {
    const client = await connect();
    const { request, messageId } = await imagine(client, '/imagine a fox');
    const previewKey = `previews/${request.generationId}/3.webp`;
    service.emit({ type: 'progress', generationId: request.generationId, platform: 'web', replyTarget: request.replyTarget, step: 3, totalSteps: 30, previewKey });
    const preview = await waitFor(() => client.message(messageId)!.images[0]);
    expect(preview.url).toBe(`/images/previews/${request.generationId}/3.webp`);
    expect(client.message(messageId)!.text).toBe('🎨 “a fox” — step 3/30');

    const record = service.finish(request.generationId, [0, 1, 2, 3].map((k) => `generations/${request.generationId}/${k}.png`), `generations/${request.generationId}/grid.png`);
    service.emit({ type: 'succeeded', generationId: request.generationId, platform: 'web', replyTarget: request.replyTarget, result: record.result! });
    await waitFor(() => client.message(messageId)!.buttonRows.length > 0);
    const result = client.message(messageId)!;
    expect(result.images.map((image) => image.url)).toEqual([`/images/generations/${request.generationId}/grid.png`]);
    expect(result.buttonRows.map((row) => row.map((button) => button.label))).toEqual([
      ['U1', 'U2', 'U3', 'U4'],
      ['V1', 'V2', 'V3', 'V4'],
      ['Reroll', 'Show me the parameters', 'Delete'],
    ]);
    expect(result.reactions).toEqual([
      { emoji: '🔄', label: 'Reroll' },
      { emoji: '✉️', label: 'Show me the parameters' },
      { emoji: '❌', label: 'Delete' },
    ]);
  });

  it('keeps the step a fast worker reported over the queue position that arrives after it', async () => {
    const client = await connect();
    let release!: () => void;
    service.holdSubmitUntil = new Promise((resolve) => (release = resolve));
    const submitted = service.nextSubmit();
    client.send({ type: 'command', text: '/imagine a fox' });
    const { messageId } = decodeReplyTarget((await submitted).replyTarget)!;
    await waitFor(() => client.message(messageId)?.text.endsWith('step 1/30'));
    release();
    client.send({ type: 'command', text: '/quota' });
    await client.waitForMessage((message) => message.text.startsWith('You have'));
    expect(client.message(messageId)!.text).toBe('🎨 “a fox” — step 1/30');
  });

  it('shows a failure in the generation message', async () => {
    const client = await connect();
    const { request, messageId } = await imagine(client, '/imagine a fox');
    service.records.get(request.generationId)!.status = 'failed';
    service.emit({ type: 'failed', generationId: request.generationId, platform: 'web', replyTarget: request.replyTarget, userMessage: 'The model ran out of memory', refunded: true });
    await waitFor(() => client.message(messageId)!.text.startsWith('⚠️'));
    expect(client.message(messageId)!.text).toBe('⚠️ “a fox” failed: The model ran out of memory. Your quota was refunded.');
  });

  it('never lets a late progress event overwrite the result', async () => {
    const client = await connect();
    const { request, messageId } = await finishedResult(client, 1);
    service.emit({ type: 'progress', generationId: request.generationId, platform: 'web', replyTarget: request.replyTarget, step: 29, totalSteps: 30 });
    client.send({ type: 'command', text: '/quota' });
    await client.waitForMessage((message) => message.text.startsWith('You have'));
    expect(client.message(messageId)!.buttonRows).not.toEqual([]);
  });

  it('shows the conversation again to the same local user after a reload, and nothing of it to another', async () => {
    const first = await connect();
    const { messageId } = await imagine(first, '/imagine a fox');
    first.socket.close();
    const reloaded = await connect();
    expect(reloaded.messages().map((message) => message.text)).toEqual(['/imagine a fox', '🎨 “a fox” — position 2 in the queue, ready in about 40 s.']);
    expect(reloaded.message(messageId)).toBeDefined();
    const stranger = await connect(await visit());
    expect(stranger.messages()).toEqual([]);
  });
});

describe('web chat actions', () => {
  it('sends a U2 click to the service as an upscale of image 2 and opens a new message for it', async () => {
    const client = await connect();
    const { request, messageId: resultId } = await finishedResult(client, 4);
    const submitted = service.nextSubmit();
    client.send({ type: 'button', messageId: resultId, customId: encodeActionId({ action: 'upscale', generationId: request.generationId, imageIndex: 1 }) });
    const upscale = await submitted;
    expect(upscale).toMatchObject({ kind: 'upscale', parent: { generationId: request.generationId, imageIndex: 1 }, params: { batch: 1, seed: 11 }, requester: { userId: client.userId } });
    const { messageId } = decodeReplyTarget(upscale.replyTarget)!;
    await waitFor(() => client.message(messageId)?.text.includes('position 2'));
  });

  it('rerolls on the 🔄 chip and deletes the message on ❌', async () => {
    const client = await connect();
    const { request, messageId } = await finishedResult(client, 4);
    const submitted = service.nextSubmit();
    client.send({ type: 'reaction', messageId, emoji: '🔄' });
    expect(await submitted).toMatchObject({ kind: 'reroll', parent: { generationId: request.generationId } });
    client.send({ type: 'reaction', messageId, emoji: '❌' });
    await waitFor(() => !client.message(messageId));
  });

  it('shows the parameters in the chat on ✉️', async () => {
    const client = await connect();
    const { request, messageId } = await finishedResult(client, 1);
    client.send({ type: 'reaction', messageId, emoji: '✉️' });
    const parameters = await client.waitForMessage((message) => message.text.startsWith('Prompt: a fox'));
    expect(parameters.text).toContain(`Seed: ${request.params.seed}`);
  });

  it('shows an error instead of acting on an image that is gone', async () => {
    const client = await connect();
    const { request, messageId } = await finishedResult(client, 1);
    service.records.delete(request.generationId);
    client.send({ type: 'button', messageId, customId: encodeActionId({ action: 'upscale', generationId: request.generationId, imageIndex: 0 }) });
    await client.waitForMessage((message) => message.text.startsWith('⚠️ That image is gone'));
    expect(service.submitted).toHaveLength(1);
  });
});

describe('web chat HTTP routes', () => {
  it('serves the page and its script', async () => {
    const page = await get('/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.body.toString()).toContain('<script type="module" src="/app.js"></script>');
    expect((await get('/app.js')).status).toBe(200);
    expect((await get('/server.ts')).status).toBe(404);
  });

  it('serves a stored image by its key with its content type, to a visitor with a session only', async () => {
    service.images.set('generations/abc12345/0.png', PNG_BYTES);
    const image = await get('/images/generations/abc12345/0.png', { cookie: ana.cookie });
    expect(image.status).toBe(200);
    expect(image.headers['content-type']).toBe('image/png');
    expect(image.body).toEqual(PNG_BYTES);
    expect((await get('/images/generations/abc12345/1.png', { cookie: ana.cookie })).status).toBe(404);
    expect((await get('/images/generations/abc12345/0.png')).status).toBe(403);
  });

  it('refuses image paths that try to leave the store, before the service sees them', async () => {
    for (const path of ['/images/../package.json', '/images/generations/../../package.json', '/images/%2e%2e/package.json', '/images/generations%2F..%2F..%2Fpackage.json', '/images/.expiry/x', '/images/a//b', '/images/a%00b']) {
      expect((await get(path, { cookie: ana.cookie })).status, path).toBe(400);
    }
    expect(service.imageReads).toEqual([]);
  });

  it('answers only requests addressed to loopback, so a rebound DNS name cannot reach it', async () => {
    expect((await get('/', { Host: 'evil.example' })).status).toBe(421);
    expect((await get('/', { Host: `localhost:${new URL(chat.url).port}` })).status).toBe(200);
  });

  it('refuses a WebSocket opened by another site, even with the visitor\'s cookie', async () => {
    const socket = new WebSocket(`${chat.url.replace('http:', 'ws:')}chat`, { origin: 'http://evil.example', headers: { cookie: ana.cookie } });
    const [error] = (await once(socket, 'error')) as [Error];
    expect(error.message).toContain('403');
  });
});

describe('web chat identity', () => {
  const refusedSocket = async (cookie: string | undefined, path = 'chat') => {
    const socket = new WebSocket(`${chat.url.replace('http:', 'ws:')}${path}`, { origin: chat.url.slice(0, -1), headers: cookie ? { cookie } : {} });
    const [error] = (await once(socket, 'error')) as [Error];
    return error.message;
  };
  const signIn = (visitor: Visitor, token: string, origin = chat.url.slice(0, -1)) =>
    get('/session/admin', { cookie: visitor.cookie, origin, 'content-type': 'application/json' }, 'POST', JSON.stringify({ token }));

  it('names each new visitor itself, in an HttpOnly cookie, and keeps the name while the cookie is sent back', async () => {
    const page = await get('/');
    const [setCookie] = page.headers['set-cookie'] as string[];
    expect(setCookie).toMatch(/^ib_session=v1\.web-[0-9a-f]{32}\.[A-Za-z0-9_-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Strict$/);
    const first = await connect();
    first.socket.close();
    const again = await connect();
    expect(again.userId).toBe(first.userId);
    expect((await get('/', { cookie: ana.cookie })).headers['set-cookie']).toBeUndefined();
    expect((await connect(await visit())).userId).not.toBe(first.userId);
  });

  it('refuses a chat socket with no session, a made-up one, or one whose user id was changed', async () => {
    expect(await refusedSocket(undefined)).toContain('403');
    expect(await refusedSocket(`ib_session=v1.${BOB}.${'A'.repeat(43)}`)).toContain('403');
    const [, , signature] = ana.cookie.replace('ib_session=', '').split('.');
    expect(await refusedSocket(`ib_session=v1.${BOB}.${signature}`)).toContain('403');
  });

  it('ignores a user id the page puts in the URL: the socket is the session\'s user', async () => {
    const bob = await connect(await visit());
    const { messageId } = await imagine(bob, '/imagine a secret fox');
    const claimed = await ChatClient.connect(chat, ana, `chat?user=${bob.userId}`);
    clients.push(claimed);
    expect(claimed.userId).not.toBe(bob.userId);
    expect(claimed.message(messageId)).toBeUndefined();
    expect(claimed.messages()).toEqual([]);
  });

  it("never shows one visitor another's messages, nor finds them for /info by link", async () => {
    const owner = await connect(await visit());
    const { messageId } = await finishedResult(owner, 1);
    const other = await connect();
    expect(other.messages()).toEqual([]);
    other.send({ type: 'command', text: `/info ${chat.url}#m-${messageId}` });
    const answer = await other.waitForMessage((message) => message.author === 'bot');
    expect(answer.text).toBe('⚠️ That link does not point to one of my images.');
    other.send({ type: 'reaction', messageId, emoji: '❌' });
    other.send({ type: 'command', text: '/quota' });
    await other.waitForMessage((message) => message.text.startsWith('You have'));
    expect(owner.message(messageId)).toBeDefined();
  });

  it('makes an admin only of a session that gave the configured token, and only of that session', async () => {
    const client = await connect();
    client.send({ type: 'command', text: `/admin quota grant @${BOB} 5` });
    await client.waitForMessage((message) => message.text === '⚠️ Only admins can use /admin.');

    expect((await signIn(ana, 'not-the-admin-token-000')).status).toBe(403);
    expect((await signIn(ana, ADMIN_TOKEN, 'http://evil.example')).status).toBe(403);
    expect((await get('/session/admin', { origin: chat.url.slice(0, -1) }, 'POST', JSON.stringify({ token: ADMIN_TOKEN }))).status).toBe(403);
    const signedIn = await signIn(ana, ADMIN_TOKEN);
    expect(signedIn.status).toBe(204);
    const admin: Visitor = { cookie: `${ana.cookie}; ${cookiesOf(signedIn.headers['set-cookie'])}` };

    const adminClient = await connect(admin);
    expect(adminClient.isAdmin).toBe(true);
    adminClient.send({ type: 'command', text: `/admin quota grant @${BOB} 5` });
    await waitFor(() => service.adminCalls[0]);
    expect(service.adminCalls).toEqual([`grantQuota local ${BOB} 5`]);

    // The admin cookie names its user: carried over to another session it proves nothing.
    const stranger = await visit();
    const carried = await connect({ cookie: `${stranger.cookie}; ${cookiesOf(signedIn.headers['set-cookie'])}` });
    expect(carried.isAdmin).toBe(false);
    expect(carried.userId).not.toBe(adminClient.userId);
  });

  it('never echoes an admin token typed into the socket', async () => {
    const client = await connect();
    client.send({ type: 'command', text: `/admin login ${ADMIN_TOKEN}` });
    const answer = await client.waitForMessage((message) => message.author === 'bot');
    expect(answer.text).toContain('in the page');
    expect(client.messages().some((message) => message.text.includes(ADMIN_TOKEN))).toBe(false);
    expect(client.isAdmin).toBe(false);
  });
});
