import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { waitFor } from './wait-for.js';

/**
 * A loopback stand-in for Slack: the Web API (form-encoded POST /api/<method>), the files.uploadV2 upload URL,
 * response_url endpoints and a Socket Mode WebSocket, in the wire formats the real @slack/bolt client speaks (see
 * /work/shared/CHAT-PROTOCOL-NOTES.md). It records every call and keeps the messages the bot posted.
 */

export interface RecordedSlackCall {
  method: string;
  authorization: string | undefined;
  /** Form fields, with JSON-valued fields (blocks, files) parsed. */
  args: Record<string, any>;
}

export interface SlackMessageRecord {
  channel: string;
  ts: string;
  user: string;
  text: string;
  blocks: any[];
}

const JSON_FIELDS = new Set(['blocks', 'attachments', 'files', 'view']);

export class FakeSlack {
  readonly calls: RecordedSlackCall[] = [];
  readonly responses: { url: string; body: any }[] = [];
  readonly uploads: { fileId: string; bytes: number }[] = [];
  readonly acks: { envelope_id: string; payload?: any }[] = [];
  readonly messages = new Map<string, SlackMessageRecord>();
  readonly teamId = 'T0FAKE';
  readonly botUserId = 'UBOT';
  readonly channelId = 'C0ART';
  /** Users that users.info reports as workspace admins. */
  readonly workspaceAdmins = new Set<string>();
  private counter = 0;
  private sockets = new Set<WebSocket>();
  private rateLimits: { method: string; retryAfterSeconds: number; ts?: string }[] = [];

  private constructor(
    private readonly server: Server,
    private readonly socketServer: WebSocketServer,
    readonly port: number,
  ) {}

  static async start(): Promise<FakeSlack> {
    const server = createServer();
    const socketServer = new WebSocketServer({ server, path: '/socket' });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const fake = new FakeSlack(server, socketServer, (server.address() as AddressInfo).port);
    server.on('request', (request, response) => void fake.onRequest(request, response));
    socketServer.on('connection', (socket) => {
      fake.sockets.add(socket);
      socket.on('close', () => fake.sockets.delete(socket));
      socket.on('message', (raw) => fake.acks.push(JSON.parse(String(raw))));
      socket.send(JSON.stringify({ type: 'hello', num_connections: 1, debug_info: { host: 'fake' }, connection_info: { app_id: 'A0FAKE' } }));
    });
    return fake;
  }

  get apiUrl(): string {
    return `http://127.0.0.1:${this.port}/api/`;
  }

  get socketConnected(): boolean {
    return this.sockets.size > 0;
  }

  /** The next call of `method` (on the message `ts`, when given) answers HTTP 429 with this Retry-After. */
  rateLimitNext(method: string, retryAfterSeconds: number, ts?: string): void {
    this.rateLimits.push({ method, retryAfterSeconds, ts });
  }

  waitForCall(predicate: (call: RecordedSlackCall) => boolean, after = 0): Promise<RecordedSlackCall> {
    return waitFor(() => this.calls.slice(after).find(predicate));
  }

  message(channel: string, ts: string): SlackMessageRecord | undefined {
    return this.messages.get(`${channel}:${ts}`);
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.terminate();
    await new Promise<void>((resolve) => this.socketServer.close(() => resolve()));
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // --- what users do, as Slack delivers it ---

  slashCommandPayload(command: string, text: string, userId = 'UANA'): Record<string, string> {
    return {
      token: 'legacy-verification-token',
      team_id: this.teamId,
      team_domain: 'fake',
      channel_id: this.channelId,
      channel_name: 'art',
      user_id: userId,
      user_name: userId.toLowerCase(),
      command,
      text,
      api_app_id: 'A0FAKE',
      is_enterprise_install: 'false',
      response_url: `http://127.0.0.1:${this.port}/respond/${this.nextId()}`,
      trigger_id: `trigger.${this.nextId()}`,
    };
  }

  reactionEventPayload(channel: string, ts: string, reaction: string, userId = 'UANA'): Record<string, unknown> {
    return {
      token: 'legacy-verification-token',
      team_id: this.teamId,
      api_app_id: 'A0FAKE',
      type: 'event_callback',
      event_id: `Ev${this.nextId()}`,
      event_time: Math.floor(Date.now() / 1000),
      event: {
        type: 'reaction_added',
        user: userId,
        reaction,
        item_user: this.botUserId,
        item: { type: 'message', channel, ts },
        event_ts: `${Math.floor(Date.now() / 1000)}.000100`,
      },
    };
  }

  buttonClickPayload(channel: string, ts: string, actionId: string, userId = 'UANA'): Record<string, unknown> {
    return {
      type: 'block_actions',
      team: { id: this.teamId, domain: 'fake' },
      user: { id: userId, username: userId.toLowerCase(), team_id: this.teamId },
      api_app_id: 'A0FAKE',
      token: 'legacy-verification-token',
      container: { type: 'message', message_ts: ts, channel_id: channel, is_ephemeral: false },
      trigger_id: `trigger.${this.nextId()}`,
      channel: { id: channel, name: 'art' },
      message: this.message(channel, ts),
      response_url: `http://127.0.0.1:${this.port}/respond/${this.nextId()}`,
      actions: [{ type: 'button', action_id: actionId, block_id: 'actions-0', text: { type: 'plain_text', text: 'x' }, action_ts: '1.2' }],
    };
  }

  /** A modal the bot opened (views.open) submitted by `userId`; `values` maps block id → action id → state value. */
  viewSubmissionPayload(view: any, values: Record<string, Record<string, unknown>>, userId = 'UANA'): Record<string, unknown> {
    return {
      type: 'view_submission',
      team: { id: this.teamId, domain: 'fake' },
      user: { id: userId, username: userId.toLowerCase(), name: userId.toLowerCase(), team_id: this.teamId },
      api_app_id: 'A0FAKE',
      token: 'legacy-verification-token',
      trigger_id: `trigger.${this.nextId()}`,
      view: { ...view, id: `V${this.nextId()}`, team_id: this.teamId, app_id: 'A0FAKE', bot_id: 'B0BOT', hash: 'h', state: { values } },
      response_urls: [],
      is_enterprise_install: false,
    };
  }

  /** Pushes a Socket Mode envelope to the connected bot. */
  push(type: 'slash_commands' | 'events_api' | 'interactive', payload: unknown): string {
    const envelopeId = `env-${this.nextId()}`;
    const envelope = { envelope_id: envelopeId, type, payload, accepts_response_payload: type !== 'events_api' };
    for (const socket of this.sockets) socket.send(JSON.stringify(envelope));
    return envelopeId;
  }

  waitForAck(envelopeId: string) {
    return waitFor(() => this.acks.find((ack) => ack.envelope_id === envelopeId));
  }

  private nextId(): number {
    this.counter += 1;
    return this.counter;
  }

  private nextTs(): string {
    return `1795000000.${String(this.nextId()).padStart(6, '0')}`;
  }

  // --- the Web API ---

  private async onRequest(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const path = new URL(request.url ?? '/', 'http://127.0.0.1').pathname;
    if (path.startsWith('/respond/')) {
      this.responses.push({ url: path, body: JSON.parse(raw.toString('utf8')) });
      return this.reply(response, 200, 'ok');
    }
    if (path.startsWith('/upload/')) {
      this.uploads.push({ fileId: path.slice('/upload/'.length), bytes: raw.length });
      return this.reply(response, 200, `OK - ${raw.length}`);
    }
    const method = path.replace(/^\/api\//, '');
    const args: Record<string, any> = {};
    const contentType = request.headers['content-type'] ?? '';
    if (contentType.includes('application/json')) Object.assign(args, JSON.parse(raw.toString('utf8') || '{}'));
    else for (const [key, value] of new URLSearchParams(raw.toString('utf8'))) args[key] = JSON_FIELDS.has(key) ? JSON.parse(value) : value;
    this.calls.push({ method, authorization: request.headers.authorization, args });

    const limit = this.rateLimits.findIndex((candidate) => candidate.method === method && (candidate.ts === undefined || candidate.ts === args.ts));
    if (limit >= 0) {
      const { retryAfterSeconds } = this.rateLimits.splice(limit, 1)[0];
      response.writeHead(429, { 'retry-after': String(retryAfterSeconds), 'content-type': 'application/json' });
      return void response.end(JSON.stringify({ ok: false, error: 'ratelimited' }));
    }
    return this.json(response, this.answer(method, args));
  }

  private answer(method: string, args: Record<string, any>): Record<string, unknown> {
    const channelOf = (channel: string) => (channel.startsWith('U') ? `D${channel.slice(1)}` : channel);
    switch (method) {
      case 'auth.test':
        return { ok: true, url: 'https://fake.slack.com/', team: 'Fake', user: 'imagine', team_id: this.teamId, user_id: this.botUserId, bot_id: 'B0BOT' };
      case 'apps.connections.open':
        return { ok: true, url: `ws://127.0.0.1:${this.port}/socket` };
      case 'chat.postMessage': {
        const message = { channel: channelOf(args.channel), ts: this.nextTs(), user: this.botUserId, text: args.text ?? '', blocks: args.blocks ?? [] };
        this.messages.set(`${message.channel}:${message.ts}`, message);
        return { ok: true, channel: message.channel, ts: message.ts, message };
      }
      case 'chat.update': {
        const message = this.message(args.channel, args.ts);
        if (!message) return { ok: false, error: 'message_not_found' };
        Object.assign(message, { text: args.text ?? message.text, blocks: args.blocks ?? message.blocks });
        return { ok: true, channel: args.channel, ts: args.ts, text: message.text };
      }
      case 'chat.delete':
        return this.messages.delete(`${args.channel}:${args.ts}`) ? { ok: true, channel: args.channel, ts: args.ts } : { ok: false, error: 'message_not_found' };
      case 'chat.postEphemeral':
        return { ok: true, message_ts: this.nextTs() };
      case 'reactions.add':
        return { ok: true };
      case 'views.open':
        return args.trigger_id ? { ok: true, view: { ...args.view, id: `V${this.nextId()}` } } : { ok: false, error: 'invalid_trigger_id' };
      case 'conversations.history': {
        const found = [...this.messages.values()].filter((message) => message.channel === args.channel && message.ts <= args.latest);
        found.sort((a, b) => (a.ts < b.ts ? 1 : -1));
        return { ok: true, messages: found.slice(0, Number(args.limit ?? 100)).map((message) => ({ type: 'message', ...message })), has_more: false };
      }
      case 'users.info':
        return { ok: true, user: { id: args.user, team_id: this.teamId, is_admin: this.workspaceAdmins.has(args.user), is_owner: false, is_primary_owner: false } };
      case 'files.getUploadURLExternal': {
        const fileId = `F${this.nextId()}`;
        return { ok: true, upload_url: `http://127.0.0.1:${this.port}/upload/${fileId}`, file_id: fileId };
      }
      case 'files.completeUploadExternal':
        return { ok: true, files: (args.files as { id: string; title?: string }[]).map((file) => ({ id: file.id, title: file.title ?? '' })) };
      default:
        return { ok: false, error: 'unknown_method' };
    }
  }

  private json(response: ServerResponse, payload: unknown): void {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify(payload));
  }

  private reply(response: ServerResponse, status: number, text: string): void {
    response.writeHead(status, { 'content-type': 'text/plain' });
    response.end(text);
  }
}

/** Headers Slack signs a request with: v0 HMAC-SHA256 over `v0:timestamp:body`. */
export function slackSignatureHeaders(signingSecret: string, body: string, timestampSeconds = Math.floor(Date.now() / 1000)): Record<string, string> {
  const signature = createHmac('sha256', signingSecret).update(`v0:${timestampSeconds}:${body}`).digest('hex');
  return { 'x-slack-request-timestamp': String(timestampSeconds), 'x-slack-signature': `v0=${signature}` };
}
