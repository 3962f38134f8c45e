import { request as httpRequest } from 'node:http';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import pg from 'pg';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { ServerMessage, WebMessage } from '../../../src/adapters/web/protocol.js';
import { decodeReplyTarget } from '../../../src/adapters/web/reply-target.js';
import { startWebChat, type WebChat } from '../../../src/adapters/web/server.js';
import { encodeActionId, type ResultAction } from '../../../src/core/chat/result-actions.js';
import type { GenerationRecord } from '../../../src/core/chat/service.js';
import type { Requester } from '../../../src/core/generation.js';
import { publishEvent } from '../../../src/queue/events.js';
import { imagineKeys, queueNameForModel } from '../../../src/queue/job.js';
import { waitFor } from '../../support/wait-for.js';
import { TEST_POSTGRES_URL } from '../../support/postgres.js';
import { eventually, GENERATION_TIMEOUT_MS, startServiceStack, type ServiceStack } from '../../support/service-stack.js';
import { latestGenerations, queuedAndCharged, withQueuePaused as withStackQueuePaused } from '../../support/stack-results.js';

/**
 * The web chat over real WebSockets and HTTP, on the real stack: Redis queue, PGlite, the worker running the tiny-sd
 * fixture (64x64 pictures, 4 to a grid, in 2 steps here) and the real ImagineService. What a visitor was shown is read
 * from the socket; what was asked for, queued and charged, from the store, the queue and the ledger.
 */

/** A browser's cookie jar for the chat: what `GET /` set, sent back on the socket and on later requests. */
interface Visitor {
  cookie: string;
}

const ADMIN_TOKEN = 'admin-token-of-the-test-0123';

/** A page's side of the socket: the messages it would show, in order, kept up to date like the page does. */
class ChatClient {
  readonly shown = new Map<string, WebMessage>();
  /** Every version of every message the server sent, in order (a step may be replaced before a test looks). */
  readonly versions: WebMessage[] = [];
  transcriptReceived = false;
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
        this.versions.push(message.message);
      } else if (message.type === 'remove') {
        this.shown.delete(message.messageId);
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

  get requester(): Requester {
    return { platform: 'web', workspaceId: 'local', userId: this.userId, isAdmin: false };
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

  waitForMessage(probe: (message: WebMessage) => boolean, timeoutMs?: number): Promise<WebMessage> {
    return waitFor(() => this.messages().find(probe), timeoutMs);
  }

  /** Sends a command and resolves once its echo is shown: everything the server sent before it has arrived. */
  async roundTrip(text: string): Promise<void> {
    const echoed = this.versions.length;
    this.send({ type: 'command', text });
    await waitFor(() => this.versions.slice(echoed).some((message) => message.author === 'you' && message.text === text));
  }
}

const BOB = 'web-0000000000000000000000000000b0b0';
const bobInTheLedger = { platform: 'web', workspaceId: 'local', userId: BOB } as const;
/** `/imagine`'s answer while the job waits; the wait is whatever the queue estimates. */
const QUEUED = (prompt: string) => new RegExp(`^🎨 “${prompt}” — position \\d+ in the queue, ready in about \\d+ (s|min)\\.$`);

let stack: ServiceStack;
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

beforeAll(async () => {
  // One preview a job, at step 1: a progress event for a later step is then always news to the page.
  stack = await startServiceStack({ name: 'web-chat', previewIntervalMs: 60_000 });
  chat = await startWebChat({ service: stack.service, config: stack.chatConfig, port: 0, session: { secret: randomBytes(32), adminToken: ADMIN_TOKEN }, onError: () => {} });
}, GENERATION_TIMEOUT_MS);

afterAll(async () => {
  await chat?.close();
  await stack?.stop();
});

beforeEach(async () => {
  ana = await visit();
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.socket.close();
});

const withQueuePaused = <T>(work: () => Promise<T>) => withStackQueuePaused(stack, work);
const generationsOf = (client: ChatClient, count: number) => latestGenerations(stack, client.requester, count);

/** Does what queues one generation; resolves with its record and the message it answers in, once answered. */
async function queueOne(client: ChatClient, act: () => void): Promise<{ record: GenerationRecord; messageId: string }> {
  const before = (await stack.service.history(client.requester, 20)).length;
  act();
  const [record] = await generationsOf(client, before + 1);
  const { messageId } = decodeReplyTarget(record.request.replyTarget)!;
  await waitFor(() => client.message(messageId) && client.message(messageId)!.text !== '🎨 …');
  return { record, messageId };
}

const imagine = (client: ChatClient, text: string) => queueOne(client, () => client.send({ type: 'command', text }));

const clickToQueue = (client: ChatClient, messageId: string, action: ResultAction) =>
  queueOne(client, () => client.send({ type: 'button', messageId, customId: encodeActionId(action) }));

/** A real grid of 4 made from `text` (2 steps), shown with its buttons. */
async function finishedResult(client: ChatClient, text = '/imagine a fox --seed 10 --steps 2') {
  const { record, messageId } = await imagine(client, text);
  await waitFor(() => (client.message(messageId)?.buttonRows.length ?? 0) > 0, GENERATION_TIMEOUT_MS);
  return { record: (await stack.service.findGeneration(record.request.generationId))!, messageId };
}

/** Writes an event into the model's event stream, where the worker writes its own, for the service to relay. */
async function publishToEventStream(event: Parameters<typeof publishEvent>[3], where = stack): Promise<void> {
  const redis = new Redis(where.redisUrl);
  try {
    await publishEvent(redis, imagineKeys(where.prefix), queueNameForModel(where.chatConfig.defaultModel), event);
  } finally {
    redis.disconnect();
  }
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
    const { record, messageId } = await withQueuePaused(() => imagine(client, '/imagine a red fox --ar 1:2 --seed 8 --steps 2'));
    expect(record.request).toMatchObject({ kind: 'imagine', params: { prompt: 'a red fox', width: 64, height: 128, seed: 8, steps: 2, model: stack.chatConfig.defaultModel } });
    expect(record.request.requester).toEqual({ platform: 'web', workspaceId: 'local', userId: client.userId, isAdmin: false });
    expect(client.userId).toMatch(/^web-[0-9a-f]{32}$/);
    expect(decodeReplyTarget(record.request.replyTarget)).toEqual({ userId: client.userId, messageId });
    const [typed, accepted] = client.messages();
    expect(typed).toMatchObject({ author: 'you', text: '/imagine a red fox --ar 1:2 --seed 8 --steps 2' });
    expect(accepted).toMatchObject({ id: messageId, author: 'bot' });
    expect(accepted.text).toMatch(QUEUED('a red fox'));
  });

  it('shows each combination of a permutation prompt in its own message', async () => {
    const client = await connect();
    const [green, red] = await withQueuePaused(async () => {
      client.send({ type: 'command', text: '/imagine a {red, green} fox --seed 8 --steps 2' });
      const records = await generationsOf(client, 2);
      await waitFor(() => records.every((record) => QUEUED('a (red|green) fox').test(client.message(decodeReplyTarget(record.request.replyTarget)!.messageId)?.text ?? '')));
      return records;
    });
    const [redId, greenId] = [red, green].map((record) => decodeReplyTarget(record.request.replyTarget)!.messageId);
    expect(greenId).not.toBe(redId);
    expect(client.message(redId)!.text).toMatch(QUEUED('a red fox'));
    expect(client.message(greenId)!.text).toMatch(QUEUED('a green fox'));
  });

  it('answers a bad flag with an error message and submits nothing', async () => {
    const client = await connect();
    const before = await queuedAndCharged(stack, client.requester);
    client.send({ type: 'command', text: '/imagine a fox --chaos 3' });
    const error = await client.waitForMessage((message) => message.author === 'bot');
    expect(error.text).toContain('--chaos is not a flag I know');
    expect(error.ephemeral).toBe(true);
    expect(await queuedAndCharged(stack, client.requester)).toEqual({ ...before, generationIds: [], usedUnits: 0 });
  });

  it('says which commands exist when the line is not one', async () => {
    const client = await connect();
    client.send({ type: 'command', text: '/paint a fox' });
    const error = await client.waitForMessage((message) => message.author === 'bot');
    expect(error.text).toContain("I don't know /paint.");
    expect(error.text).toContain('/imagine, /blend, /quota, /history, /info, /cancel, /settings');
  });

  it('finds an image for /info by a link to its message', async () => {
    const client = await connect();
    const { record, messageId } = await finishedResult(client);
    client.send({ type: 'command', text: `/info ${chat.url}#m-${messageId}` });
    const info = await client.waitForMessage((message) => message.text.startsWith('Prompt:'));
    expect(info.text).toContain(`Generation: ${record.request.generationId}`);
  }, GENERATION_TIMEOUT_MS);
});

describe('web chat live updates', () => {
  it('shows the preview of each step in the generation message, then the result with buttons and reaction chips', async () => {
    const client = await connect();
    const { record, messageId } = await finishedResult(client, '/imagine a fox --steps 2');
    const { generationId } = record.request;
    const step = client.versions.find((version) => version.id === messageId && version.text === '🎨 “a fox” — step 1/2');
    expect(step?.images.map((image) => image.url)).toEqual([`/images/previews/${generationId}/1.webp`]);

    const result = client.message(messageId)!;
    expect(result.images.map((image) => image.url)).toEqual([`/images/generations/${generationId}/grid.png`]);
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
  }, GENERATION_TIMEOUT_MS);

  it('shows a failure in the generation message', async () => {
    const client = await connect();
    const grid = await finishedResult(client);
    const { usedUnits } = await queuedAndCharged(stack, client.requester);
    // The upscale waits in the queue while its picture is deleted, so the worker finds nothing to enlarge.
    const upscale = await withQueuePaused(async () => {
      const answered = await clickToQueue(client, grid.messageId, { action: 'upscale', generationId: grid.record.request.generationId, imageIndex: 0 });
      client.send({ type: 'reaction', messageId: grid.messageId, emoji: '❌' });
      await waitFor(() => !client.message(grid.messageId));
      return answered;
    });
    const failed = await client.waitForMessage((message) => message.id === upscale.messageId && message.text.startsWith('⚠️'), GENERATION_TIMEOUT_MS);
    expect(failed.text).toBe('⚠️ “a fox” failed: The picture this upscale works on is no longer available: it was deleted before the job ran. Your quota was refunded.');
    expect((await stack.service.findGeneration(upscale.record.request.generationId))?.status).toBe('failed');
    expect((await queuedAndCharged(stack, client.requester)).usedUnits).toBe(usedUnits);
  }, 2 * GENERATION_TIMEOUT_MS);

  it('never lets a late progress event overwrite the result', async () => {
    const client = await connect();
    const { record, messageId } = await finishedResult(client);
    const result = client.message(messageId)!;
    await withQueuePaused(async () => {
      const queued = await imagine(client, '/imagine a hedgehog --steps 2');
      const step = { type: 'progress' as const, platform: 'web' as const, step: 2, totalSteps: 2 };
      await publishToEventStream({ ...step, generationId: record.request.generationId, replyTarget: record.request.replyTarget });
      // The service relays events in stream order: once the queued job's step is shown, the late one was handled.
      await publishToEventStream({ ...step, generationId: queued.record.request.generationId, replyTarget: queued.record.request.replyTarget });
      await waitFor(() => client.message(queued.messageId)!.text === '🎨 “a hedgehog” — step 2/2');
    });
    expect(client.message(messageId)).toEqual(result);
  }, 2 * GENERATION_TIMEOUT_MS);

  it('shows the conversation again to the same local user after a reload, and nothing of it to another', async () => {
    const first = await connect();
    await first.roundTrip('/quota');
    const answer = await first.waitForMessage((message) => message.author === 'bot');
    first.socket.close();
    const reloaded = await connect();
    expect(reloaded.messages().map((message) => message.text)).toEqual(['/quota', answer.text]);
    expect(reloaded.message(answer.id)).toBeDefined();
    const stranger = await connect(await visit());
    expect(stranger.messages()).toEqual([]);
  });
});

describe('web chat live updates racing the command', () => {
  let raceStack: ServiceStack;
  let raceChat: WebChat;
  let locks: pg.Client;
  /** Database-wide, so unlike any other test's key. */
  const holdKey = randomBytes(4).readInt32BE();

  beforeAll(async () => {
    // PostgreSQL, not PGlite: another connection holds the lock that the second combination's insert waits on.
    raceStack = await startServiceStack({ name: 'web-chat-race', database: 'postgres' });
    raceChat = await startWebChat({ service: raceStack.service, config: raceStack.chatConfig, port: 0, session: { secret: randomBytes(32) }, onError: () => {} });
    // The database holds the green fox's insert until the test lets go of the lock, as a busy database would; nothing
    // else waits on it.
    await raceStack.database.prisma.$executeRawUnsafe(`
      CREATE FUNCTION hold_green_fox() RETURNS trigger AS $$
      BEGIN
        IF NEW.prompt = 'a green fox' THEN PERFORM pg_advisory_xact_lock(${holdKey}); END IF;
        RETURN NEW;
      END $$ LANGUAGE plpgsql`);
    await raceStack.database.prisma.$executeRawUnsafe('CREATE TRIGGER hold_green_fox BEFORE INSERT ON "Generation" FOR EACH ROW EXECUTE FUNCTION hold_green_fox()');
    locks = new pg.Client({ connectionString: TEST_POSTGRES_URL });
    await locks.connect();
  }, GENERATION_TIMEOUT_MS);

  afterAll(async () => {
    await locks?.end();
    await raceChat?.close();
    await raceStack?.stop();
  });

  it('keeps the step a fast worker reported over the queue position that arrives after it', async () => {
    const client = await ChatClient.connect(raceChat, { cookie: cookiesOf((await fetch(raceChat.url)).headers.getSetCookie()) });
    clients.push(client);
    // Paused, the worker leaves the red fox queued: the step the test writes is the only one.
    await raceStack.modelQueue.pause();
    await locks.query('SELECT pg_advisory_lock($1)', [holdKey]);
    try {
      // The red fox's answer comes once the green fox is queued too, and the green fox's insert waits for the lock: the
      // red fox's step arrives first, as from a worker faster than the answer.
      client.send({ type: 'command', text: '/imagine a {red, green} fox --steps 2' });
      const [red] = await eventually(async () => {
        const records = await raceStack.service.history(client.requester, 2);
        return records.length === 1 ? records : undefined;
      });
      const { generationId, replyTarget } = red.request;
      await publishToEventStream({ type: 'progress', platform: 'web', generationId, replyTarget, step: 1, totalSteps: 2 }, raceStack);
      const { messageId } = decodeReplyTarget(replyTarget)!;
      await waitFor(() => client.message(messageId)?.text === '🎨 “a red fox” — step 1/2');
      await locks.query('SELECT pg_advisory_unlock($1)', [holdKey]);
      await client.waitForMessage((message) => QUEUED('a green fox').test(message.text));
      await client.roundTrip('/quota');
      expect(client.message(messageId)!.text).toBe('🎨 “a red fox” — step 1/2');
    } finally {
      await locks.query('SELECT pg_advisory_unlock_all()');
      await raceStack.modelQueue.resume();
    }
  }, GENERATION_TIMEOUT_MS);
});

describe('web chat actions', () => {
  it('rerolls on the 🔄 chip and deletes the message and its pictures on ❌', async () => {
    const client = await connect();
    const { record, messageId } = await finishedResult(client);
    client.send({ type: 'reaction', messageId, emoji: '🔄' });
    const [reroll] = await generationsOf(client, 2);
    expect(reroll.request).toMatchObject({ kind: 'reroll', parent: { generationId: record.request.generationId } });
    client.send({ type: 'reaction', messageId, emoji: '❌' });
    await waitFor(() => !client.message(messageId));
    expect((await stack.service.findGeneration(record.request.generationId))?.deletedAt).toBeInstanceOf(Date);
  }, GENERATION_TIMEOUT_MS);

  it('shows the parameters in the chat on ✉️', async () => {
    const client = await connect();
    const { record, messageId } = await finishedResult(client);
    client.send({ type: 'reaction', messageId, emoji: '✉️' });
    const parameters = await client.waitForMessage((message) => message.text.startsWith('Prompt: a fox'));
    expect(parameters.text).toContain(`Seed: ${record.request.params.seed}`);
  }, GENERATION_TIMEOUT_MS);

  it('shows an error instead of acting on an image that was deleted, and queues and charges nothing', async () => {
    const client = await connect();
    const { record, messageId } = await finishedResult(client);
    // Deleted elsewhere (an admin, another page of the same user): this message still shows it.
    await stack.service.deleteGeneration(record.request.generationId);
    const before = await queuedAndCharged(stack, client.requester);
    client.send({ type: 'button', messageId, customId: encodeActionId({ action: 'upscale', generationId: record.request.generationId, imageIndex: 0 }) });
    await client.waitForMessage((message) => message.text === '⚠️ That image was deleted.');
    expect(await queuedAndCharged(stack, client.requester)).toEqual(before);
  }, GENERATION_TIMEOUT_MS);
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
    const client = await connect();
    const { record } = await finishedResult(client);
    const [key] = record.result!.imageKeys;
    const image = await get(`/images/${key}`, { cookie: ana.cookie });
    expect(image.status).toBe(200);
    expect(image.headers['content-type']).toBe('image/png');
    expect(image.body).toEqual(await stack.service.readImage(key));
    expect(await sharp(image.body).metadata()).toMatchObject({ format: 'png', width: 64, height: 64 });
    expect((await get(`/images/generations/${record.request.generationId}/7.png`, { cookie: ana.cookie })).status).toBe(404);
    expect((await get(`/images/${key}`)).status).toBe(403);
  }, GENERATION_TIMEOUT_MS);

  it('refuses image paths that try to leave the store, before the service sees them', async () => {
    // What the store answers for a key it does not hold: a path that reached it would get this, or the file.
    expect(await get('/images/generations/no-such-generation/0.png', { cookie: ana.cookie })).toMatchObject({ status: 404, body: Buffer.from('No such image.') });
    for (const path of ['/images/../package.json', '/images/generations/../../package.json', '/images/%2e%2e/package.json', '/images/generations%2F..%2F..%2Fpackage.json', '/images/.expiry/x', '/images/a//b', '/images/a%00b']) {
      expect(await get(path, { cookie: ana.cookie }), path).toMatchObject({ status: 400, body: Buffer.from('Not an image key.') });
    }
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
    await bob.roundTrip('/quota');
    const { id: messageId } = await bob.waitForMessage((message) => message.author === 'bot');
    const claimed = await ChatClient.connect(chat, ana, `chat?user=${bob.userId}`);
    clients.push(claimed);
    expect(claimed.userId).not.toBe(bob.userId);
    expect(claimed.message(messageId)).toBeUndefined();
    expect(claimed.messages()).toEqual([]);
  });

  it("never shows one visitor another's messages, nor finds them for /info by link", async () => {
    const owner = await connect(await visit());
    const { record, messageId } = await finishedResult(owner);
    const other = await connect();
    expect(other.messages()).toEqual([]);
    other.send({ type: 'command', text: `/info ${chat.url}#m-${messageId}` });
    const answer = await other.waitForMessage((message) => message.author === 'bot');
    expect(answer.text).toBe('⚠️ That link does not point to one of my images.');
    other.send({ type: 'reaction', messageId, emoji: '❌' });
    other.send({ type: 'command', text: '/quota' });
    await other.waitForMessage((message) => message.text.startsWith('You have'));
    expect(owner.message(messageId)).toBeDefined();
    expect((await stack.service.findGeneration(record.request.generationId))?.deletedAt).toBeUndefined();
  }, GENERATION_TIMEOUT_MS);

  it('makes an admin only of a session that gave the configured token, and only of that session', async () => {
    const client = await connect();
    client.send({ type: 'command', text: `/admin quota grant @${BOB} 5` });
    await client.waitForMessage((message) => message.text === '⚠️ Only admins can use /admin.');
    expect((await stack.ledger.standing(bobInTheLedger)).usedUnits).toBe(0);

    expect((await signIn(ana, 'not-the-admin-token-000')).status).toBe(403);
    expect((await signIn(ana, ADMIN_TOKEN, 'http://evil.example')).status).toBe(403);
    expect((await get('/session/admin', { origin: chat.url.slice(0, -1) }, 'POST', JSON.stringify({ token: ADMIN_TOKEN }))).status).toBe(403);
    const signedIn = await signIn(ana, ADMIN_TOKEN);
    expect(signedIn.status).toBe(204);
    const admin: Visitor = { cookie: `${ana.cookie}; ${cookiesOf(signedIn.headers['set-cookie'])}` };

    const adminClient = await connect(admin);
    expect(adminClient.isAdmin).toBe(true);
    adminClient.send({ type: 'command', text: `/admin quota grant @${BOB} 5` });
    await adminClient.waitForMessage((message) => message.author === 'bot' && message.text !== '⚠️ Only admins can use /admin.');
    expect((await stack.ledger.standing(bobInTheLedger)).usedUnits).toBe(-5);

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
