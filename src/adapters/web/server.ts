import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { isChatAdmin } from '../../core/chat/admin.js';
import type { ChatConfig } from '../../core/chat/chat-config.js';
import type { CommandContext } from '../../core/chat/commands/command.js';
import { CHAT_COMMANDS, findCommand, runCommand } from '../../core/chat/commands/index.js';
import { actionForReaction, actionOfClick, type ResultAction } from '../../core/chat/result-actions.js';
import { performResultAction, submitRegionForm, type ResultActionPort } from '../../core/chat/result-flow.js';
import type { GenerationEvent, ImagineService } from '../../core/chat/service.js';
import { composerHints } from '../../core/chat/imagine-options.js';
import { errorView, invalidButtonView, textView, viewOfEvent, type ChatView } from '../../core/chat/views.js';
import { ImagineError, invalidInput, isImagineError } from '../../core/errors.js';
import type { Requester } from '../../core/generation.js';
import { parseCommandLine } from './command-line.js';
import { imageContentType, imageKeyOfPath } from './image-route.js';
import { ClientMessage, type ServerMessage, type WebMessage } from './protocol.js';
import { imageUrl, renderWebMessage } from './render.js';
import { decodeReplyTarget, encodeReplyTarget } from './reply-target.js';
import { adminCookie, clearedAdminCookie, newWebUserId, readSession, sessionCookie, type SessionKeys, type WebSession } from './session.js';
import { Transcripts, type TranscriptEntry } from './transcript.js';
import type { ChatTranscriptStore } from '../../core/ports.js';

export interface WebChatOptions {
  service: ImagineService;
  config: ChatConfig;
  /** 0 picks a free port (tests). */
  port: number;
  /** Loopback by default; `0.0.0.0` in a container, behind whatever the operator puts in front of it. */
  host?: string;
  /** Signs the session cookies that say who each visitor is, and the admin token if the page has admins. */
  session: SessionKeys;
  /** Mark cookies Secure (the page is served over https, e.g. behind a TLS proxy). */
  secureCookies?: boolean;
  maxMessagesPerUser?: number;
  maxUsers?: number;
  /** Keeps each user's conversation with the rest of their data (survives a restart, erased by /forget-me). */
  transcriptStore?: ChatTranscriptStore;
  onError?: (error: unknown, context: string) => void;
}

export interface WebChat {
  /** The page, e.g. `http://127.0.0.1:8787/`. */
  url: string;
  close(): Promise<void>;
}

const PUBLIC_FILES: Record<string, { file: string; contentType: string }> = {
  '/': { file: 'index.html', contentType: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', contentType: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', contentType: 'text/css; charset=utf-8' },
};

const SECURITY_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
};

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]']);
const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '']);

const hostnameOf = (hostHeader: string): string => hostHeader.replace(/:\d+$/, '').toLowerCase();

/** Loads the page's files once; they are small and fixed, and no request path ever becomes a file path. */
async function loadPublicFiles(): Promise<Map<string, { body: Buffer; contentType: string }>> {
  const files = new Map<string, { body: Buffer; contentType: string }>();
  for (const [route, { file, contentType }] of Object.entries(PUBLIC_FILES)) {
    files.set(route, { body: await readFile(new URL(`./public/${file}`, import.meta.url)), contentType });
  }
  return files;
}

const COMMAND_LINE = /^\/([a-z][a-z-]*)(?:\s+([\s\S]*))?$/;
/** Typed by the page to `POST /session/admin` and never sent over the socket; a line that still arrives is not echoed. */
const ADMIN_SESSION_LINE = /^\/admin\s+(login|logout)\b/;
const MAX_ADMIN_LOGIN_BYTES = 1024;

/**
 * The local web chat: one page where a person types the same commands as on Discord and Slack and sees the same flow,
 * with live updates over a WebSocket. It talks to the rest of the system through the ImagineService port only.
 */
export async function startWebChat(options: WebChatOptions): Promise<WebChat> {
  const { service, config } = options;
  const host = options.host ?? '127.0.0.1';
  const onError = options.onError ?? ((error, context) => console.error(`[web] ${context}:`, error));
  const publicFiles = await loadPublicFiles();
  const maxMessagesPerUser = options.maxMessagesPerUser ?? 200;
  const transcripts = new Transcripts(maxMessagesPerUser, options.maxUsers ?? 1000);
  const socketsByUser = new Map<string, Set<WebSocket>>();
  const store = options.transcriptStore;
  const loaded = new Map<string, Promise<void>>();
  const writes = new Map<string, Promise<void>>();

  /** The user's stored conversation, read once into memory before anything of theirs is shown or changed. */
  const ensureLoaded = (userId: string): Promise<void> => {
    if (!store) return Promise.resolve();
    let loading = loaded.get(userId);
    if (!loading) {
      loading = store.load(userId, maxMessagesPerUser).then(
        (stored) =>
          transcripts.restore(
            userId,
            stored.map((entry) => ({
              message: entry.message as WebMessage,
              generationId: entry.generationId,
              stage: entry.stage as TranscriptEntry['stage'],
              lastStep: entry.lastStep,
            })),
          ),
        (error: unknown) => {
          loaded.delete(userId);
          throw error;
        },
      );
      loaded.set(userId, loading);
    }
    return loading;
  };

  /** Writes go one after another per user, so an older version of a message never lands after a newer one. */
  const persist = (userId: string, write: (store: ChatTranscriptStore) => Promise<void>) => {
    if (!store) return;
    const next = (writes.get(userId) ?? Promise.resolve())
      .then(() => write(store))
      .catch((error: unknown) => onError(error, `saving the transcript of ${userId}`));
    writes.set(userId, next);
  };
  const save = (userId: string, entry: TranscriptEntry) => {
    const { message, generationId, stage, lastStep } = entry;
    persist(userId, (target) => target.save(userId, { id: message.id, message, generationId, stage, lastStep }, maxMessagesPerUser));
  };

  /** Who is talking comes from the session cookie the socket was opened with, never from anything the page sends. */
  const requesterOf = (session: WebSession): Requester => ({
    platform: 'web',
    workspaceId: 'local',
    userId: session.userId,
    isAdmin: isChatAdmin({ platform: 'web', userId: session.userId, heldAdminToken: session.heldAdminToken }, config.admins),
  });

  const send = (userId: string, message: ServerMessage) => {
    const frame = JSON.stringify(message);
    for (const socket of socketsByUser.get(userId) ?? []) socket.send(frame);
  };

  /** The example and help under the chat box follow the user's model: nothing there may fail when typed. */
  const sendComposerHints = async (session: WebSession) => {
    const settings = await service.settings(requesterOf(session));
    send(session.userId, { type: 'composer', ...composerHints(config, settings) });
  };

  const show = (userId: string, entry: TranscriptEntry) => send(userId, { type: 'upsert', message: entry.message });

  const post = (userId: string, author: WebMessage['author'], view: ChatView, generationId?: string): TranscriptEntry => {
    const entry = transcripts.append(userId, renderWebMessage(randomUUID(), author, view), generationId);
    show(userId, entry);
    save(userId, entry);
    return entry;
  };

  const rewrite = (userId: string, entry: TranscriptEntry, view: ChatView) => {
    entry.message = renderWebMessage(entry.message.id, entry.message.author, view, new Date(entry.message.sentAt));
    show(userId, entry);
    // A preview is stale within seconds; after a restart the next event (or the result) rewrites the message anyway.
    if (entry.stage !== 'progress') save(userId, entry);
  };

  const remove = (userId: string, messageId: string) => {
    if (transcripts.remove(userId, messageId)) send(userId, { type: 'remove', messageId });
    persist(userId, (target) => target.remove(userId, messageId));
  };

  /** After /forget-me: the page starts empty, and the answer is shown without being stored again. */
  const startOver = async (session: WebSession, answer: ChatView) => {
    const { userId } = session;
    transcripts.forget(userId);
    loaded.delete(userId);
    await ensureLoaded(userId);
    send(userId, { type: 'transcript', userId, isAdmin: requesterOf(session).isAdmin, messages: transcripts.messages(userId) });
    send(userId, { type: 'upsert', message: renderWebMessage(randomUUID(), 'bot', answer) });
  };

  /** A command's own answer to its generation message, unless an event already said more. */
  const answer = (userId: string, entry: TranscriptEntry, view: ChatView) => {
    if (entry.stage !== 'open') return;
    entry.stage = 'answered';
    rewrite(userId, entry, view);
  };

  const runTypedCommand = async (session: WebSession, text: string) => {
    const { userId } = session;
    if (ADMIN_SESSION_LINE.test(text.trim())) {
      post(userId, 'bot', errorView(invalidInput('Type /admin login <token> in the page\'s chat box: the page signs you in without sending the token into the chat.')));
      return;
    }
    post(userId, 'you', textView(text, false));
    const match = COMMAND_LINE.exec(text.trim());
    const command = match && findCommand(match[1]);
    if (!command) {
      const known = CHAT_COMMANDS.map((candidate) => `/${candidate.definition.name}`).join(', ');
      const said = match ? `I don't know /${match[1]}.` : 'Commands start with a slash, e.g. /imagine a fox --ar 1:1.';
      post(userId, 'bot', errorView(invalidInput(`${said} Commands: ${known}.`)));
      return;
    }
    let parsed;
    try {
      parsed = parseCommandLine(command.definition, match[2] ?? '');
      command.check?.(parsed.options, config);
    } catch (error) {
      if (!isImagineError(error)) throw error;
      post(userId, 'bot', errorView(error));
      return;
    }
    let generationEntry: TranscriptEntry | undefined;
    const context: CommandContext = {
      requester: requesterOf(session),
      subcommand: parsed.subcommand,
      options: parsed.options,
      service,
      config,
      // Every web conversation is already private to its user, so a private reply needs nothing different.
      openGenerationMessage: async () => {
        generationEntry = post(userId, 'bot', textView('🎨 …', false));
        return encodeReplyTarget({ userId, messageId: generationEntry.message.id });
      },
      openAnotherGenerationMessage: async () => {
        const entry = post(userId, 'bot', textView('🎨 …', false));
        return {
          replyTarget: encodeReplyTarget({ userId, messageId: entry.message.id }),
          show: async (view) => answer(userId, entry, view),
          remove: async () => remove(userId, entry.message.id),
        };
      },
      generationIdOfMessageLink: async (link) => {
        const messageId = /#m-([0-9a-f-]{36})$/.exec(link)?.[1];
        return (messageId && transcripts.find(userId, messageId)?.generationId) || null;
      },
    };
    // /forget-me erases the stored transcript with the user's row: nothing still being written may bring it back.
    if (command.definition.name === 'forget-me') await writes.get(userId);
    const view = await runCommand(command, context);
    if (command.definition.name === 'forget-me') return startOver(session, view);
    if (generationEntry) answer(userId, generationEntry, view);
    else post(userId, 'bot', view);
    if (command.definition.name === 'settings') await sendComposerHints(session);
  };

  const deps = { service, config };

  /** The chat flow's port for one result message (src/core/chat/result-flow.ts): everything happens in the user's conversation. */
  const actionPort = (userId: string, sourceMessageId: string): ResultActionPort => ({
    async openGenerationMessage(placeholder, generationId) {
      const entry = post(userId, 'bot', placeholder, generationId);
      return {
        replyTarget: encodeReplyTarget({ userId, messageId: entry.message.id }),
        show: async (view) => answer(userId, entry, view),
        remove: async () => remove(userId, entry.message.id),
      };
    },
    removeResultMessage: async () => remove(userId, sourceMessageId),
    // There are no DMs on the web: the parameters appear in the user's own conversation, visible to them alone.
    directMessage: async (view) => void post(userId, 'bot', { ...view, ephemeral: true }),
    tell: async (view) => void post(userId, 'bot', view),
    openForm: async (form) => send(userId, { type: 'form', messageId: sourceMessageId, form: { ...form, imageUrl: imageUrl(form.picture.imageKey) } }),
  });

  const performAction = (session: WebSession, action: ResultAction, sourceMessageId: string) =>
    performResultAction(action, requesterOf(session), deps, actionPort(session.userId, sourceMessageId));

  const receive = async (session: WebSession, message: ClientMessage) => {
    await ensureLoaded(session.userId);
    switch (message.type) {
      case 'command':
        return runTypedCommand(session, message.text);
      case 'button': {
        // The transcript says which generation the clicked message shows; the button id only says what to do.
        const action = actionOfClick(message.customId, transcripts.find(session.userId, message.messageId)?.generationId);
        if (action) await performAction(session, action, message.messageId);
        else post(session.userId, 'bot', invalidButtonView());
        return;
      }
      case 'reaction': {
        const generationId = transcripts.find(session.userId, message.messageId)?.generationId;
        const action = generationId ? actionForReaction(message.emoji, generationId) : null;
        if (action) await performAction(session, action, message.messageId);
        else post(session.userId, 'bot', invalidButtonView());
        return;
      }
      case 'form': {
        const submission = { mask: message.mask, region: message.region, prompt: message.prompt };
        return submitRegionForm(message.formId, submission, requesterOf(session), deps, actionPort(session.userId, message.messageId));
      }
    }
  };

  const renderEvent = async (event: GenerationEvent) => {
    const target = decodeReplyTarget(event.replyTarget);
    if (!target) return onError(new Error(`unreadable replyTarget ${event.replyTarget}`), `event of ${event.generationId}`);
    const record = await service.findGeneration(event.generationId);
    const view = record && viewOfEvent(event, record);
    if (!view) return;
    await ensureLoaded(target.userId);
    // After a restart (or once the transcript forgot it) the message comes back as a new one with the same id.
    const entry =
      transcripts.find(target.userId, target.messageId) ??
      transcripts.append(target.userId, renderWebMessage(target.messageId, 'bot', view), event.generationId);
    entry.generationId = event.generationId;
    if (event.type === 'progress') {
      if (entry.stage === 'final' || event.step <= entry.lastStep) return;
      entry.stage = 'progress';
      entry.lastStep = event.step;
    } else {
      entry.stage = 'final';
    }
    rewrite(target.userId, entry, view);
  };

  const unsubscribe = service.subscribe('web', (event) => {
    renderEvent(event).catch((error: unknown) => onError(error, `event of ${event.generationId}`));
  });

  const isAllowedHost = (hostHeader: string | undefined): boolean => {
    if (!hostHeader) return false;
    if (WILDCARD_HOSTS.has(host)) return true;
    // A page on another site that resolves its own name to 127.0.0.1 (DNS rebinding) sends its own name here.
    const name = hostnameOf(hostHeader);
    return LOOPBACK_NAMES.has(name) || name === host.toLowerCase() || name === `[${host.toLowerCase()}]`;
  };

  const serveImage = async (rawPath: string, response: ServerResponse) => {
    const key = imageKeyOfPath(rawPath);
    if (!key) return respond(response, 400, 'text/plain; charset=utf-8', 'Not an image key.');
    let bytes: Buffer;
    try {
      bytes = await service.readImage(key);
    } catch (error) {
      if (!(isImagineError(error) && error.kind === 'not_found')) onError(error, `reading image ${key}`);
      return respond(response, 404, 'text/plain; charset=utf-8', 'No such image.');
    }
    respond(response, 200, imageContentType(bytes), bytes, { 'Cache-Control': 'private, max-age=3600' });
  };

  const respond = (response: ServerResponse, status: number, contentType: string, body: Buffer | string, headers: Record<string, string> = {}) => {
    response.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': contentType, ...headers });
    response.end(body);
  };

  const secure = options.secureCookies === true;
  const sameOrigin = (request: IncomingMessage) =>
    request.headers.origin === `http://${request.headers.host}` || request.headers.origin === `https://${request.headers.host}`;

  /** `POST /session/admin {"token": …}` adds the admin cookie to a session; `DELETE` removes it. */
  const serveAdminSession = (request: IncomingMessage, response: ServerResponse, session: WebSession) => {
    // A form on another site could post here with the visitor's cookies; only our own page may.
    if (!sameOrigin(request)) return respond(response, 403, 'text/plain; charset=utf-8', 'Cross-site request refused.');
    if (request.method === 'DELETE') return respond(response, 204, 'text/plain; charset=utf-8', '', { 'Set-Cookie': clearedAdminCookie(secure) });
    if (request.method !== 'POST') return respond(response, 405, 'text/plain; charset=utf-8', 'Method not allowed.', { Allow: 'POST, DELETE' });
    if (Number(request.headers['content-length'] ?? 0) > MAX_ADMIN_LOGIN_BYTES) return respond(response, 413, 'text/plain; charset=utf-8', 'Too large.');
    const chunks: Buffer[] = [];
    let bytes = 0;
    request.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > MAX_ADMIN_LOGIN_BYTES) {
        respond(response, 413, 'text/plain; charset=utf-8', 'Too large.');
        request.destroy();
      } else chunks.push(chunk);
    });
    request.on('end', () => {
      if (response.headersSent) return;
      const token = (safeJson(Buffer.concat(chunks).toString('utf8')) as { token?: unknown } | null)?.token;
      const cookie = typeof token === 'string' ? adminCookie(options.session, session.userId, token, secure) : null;
      if (!cookie) return respond(response, 403, 'text/plain; charset=utf-8', 'That is not the admin token.');
      respond(response, 204, 'text/plain; charset=utf-8', '', { 'Set-Cookie': cookie });
    });
  };

  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const rawPath = (request.url ?? '/').split('?')[0];
    if (!isAllowedHost(request.headers.host)) return respond(response, 421, 'text/plain; charset=utf-8', 'Unknown host.');
    const session = readSession(options.session, request.headers.cookie);
    if (rawPath === '/session/admin') {
      if (!session) return respond(response, 403, 'text/plain; charset=utf-8', 'Open the page first.');
      return serveAdminSession(request, response, session);
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') return respond(response, 405, 'text/plain; charset=utf-8', 'Method not allowed.', { Allow: 'GET, HEAD' });
    if (rawPath.startsWith('/images/')) {
      if (!session) return respond(response, 403, 'text/plain; charset=utf-8', 'Open the page first.');
      serveImage(rawPath, response).catch((error: unknown) => {
        onError(error, `serving ${rawPath}`);
        if (!response.headersSent) respond(response, 500, 'text/plain; charset=utf-8', 'Something went wrong.');
      });
      return;
    }
    const file = publicFiles.get(rawPath);
    if (!file) return respond(response, 404, 'text/plain; charset=utf-8', 'Not found.');
    // The page is where a visitor gets their identity: a new one unless their cookie already proves one.
    const identity: Record<string, string> = rawPath === '/' && !session ? { 'Set-Cookie': sessionCookie(options.session, newWebUserId(), secure) } : {};
    respond(response, 200, file.contentType, file.body, { 'Cache-Control': 'no-cache', ...identity });
  });

  // A painted mask travels run-length coded: a few runs a row, so a 1024x1024 picture's stays well under this.
  const sockets = new WebSocketServer({ noServer: true, maxPayload: 256 * 1024 });

  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    // Browsers let any site open a WebSocket to loopback; only our own page may talk to the chat, as the session's user.
    const session = readSession(options.session, request.headers.cookie);
    if (url.pathname !== '/chat' || !session || !isAllowedHost(request.headers.host) || !sameOrigin(request)) {
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
      return;
    }
    sockets.handleUpgrade(request, socket, head, (webSocket) => connect(session, webSocket));
  });

  const connect = (session: WebSession, socket: WebSocket) => {
    const { userId } = session;
    const userSockets = socketsByUser.get(userId) ?? new Set<WebSocket>();
    socketsByUser.set(userId, userSockets);
    userSockets.add(socket);
    const sendTranscript = () =>
      socket.send(JSON.stringify({ type: 'transcript', userId, isAdmin: requesterOf(session).isAdmin, messages: transcripts.messages(userId) } satisfies ServerMessage));
    ensureLoaded(userId).then(sendTranscript, (error: unknown) => {
      onError(error, `loading the transcript of ${userId}`);
      sendTranscript();
    });
    socket.on('close', () => {
      userSockets.delete(socket);
      if (userSockets.size === 0 && socketsByUser.get(userId) === userSockets) socketsByUser.delete(userId);
    });
    socket.on('error', (error) => onError(error, `socket of ${userId}`));
    sendComposerHints(session).catch((error: unknown) => onError(error, `composer hints of ${userId}`));
    socket.on('message', (data, isBinary) => {
      const parsed = isBinary ? null : ClientMessage.safeParse(safeJson(data.toString()));
      if (!parsed?.success) return void post(userId, 'bot', errorView(invalidInput('The page sent something I could not read; reload it.')));
      receive(session, parsed.data).catch((error: unknown) => {
        onError(error, `${parsed.data.type} from ${userId}`);
        post(userId, 'bot', errorView(new ImagineError('transient', 'Something went wrong on my side; try again in a moment.')));
      });
    });
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const urlHost = WILDCARD_HOSTS.has(host) ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;

  return {
    url: `http://${urlHost}:${port}/`,
    async close() {
      unsubscribe();
      for (const socket of sockets.clients) socket.terminate();
      sockets.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
