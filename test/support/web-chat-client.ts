import { once } from 'node:events';
import { WebSocket } from 'ws';
import type { ServerMessage, WebMessage } from '../../src/adapters/web/protocol.js';
import { eventually } from './service-stack.js';
import { openWebSession } from './web-session.js';

/** A page's side of the web chat's socket: the messages it shows, kept up to date as the page keeps them. */
export interface WebChatPage {
  socket: WebSocket;
  /** The session cookie the socket was opened with. */
  cookie: string;
  shown: Map<string, WebMessage>;
  /** The web user id the server gave this session (known once the transcript came). */
  userId(): string;
  /** How many forms (e.g. Vary (Region)) the server asked the page to open. */
  forms(): number;
  send(message: object): void;
}

/** Opens the page (for its session cookie, unless one is given), then its socket, and waits for the transcript. */
export async function openWebChatPage(webUrl: string, cookie?: string): Promise<WebChatPage> {
  const session = cookie ?? (await openWebSession(webUrl));
  const url = new URL('/chat', webUrl);
  url.protocol = url.protocol.replace('http', 'ws');
  const socket = new WebSocket(url, { origin: new URL(webUrl).origin, headers: { cookie: session } });
  const shown = new Map<string, WebMessage>();
  let userId = '';
  let forms = 0;
  socket.on('message', (data) => {
    const message = JSON.parse(data.toString()) as ServerMessage;
    if (message.type === 'transcript') {
      userId = message.userId;
      for (const entry of message.messages) shown.set(entry.id, entry);
    } else if (message.type === 'upsert') shown.set(message.message.id, message.message);
    else if (message.type === 'remove') shown.delete(message.messageId);
    else if (message.type === 'form') forms += 1;
  });
  await once(socket, 'open');
  await eventually(async () => (userId !== '' ? true : undefined));
  return {
    socket,
    cookie: session,
    shown,
    userId: () => userId,
    forms: () => forms,
    send: (message) => socket.send(JSON.stringify(message)),
  };
}
