import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { waitFor } from './wait-for.js';

/**
 * A loopback stand-in for Discord: the REST API (v10) and the gateway, speaking the wire format the real discord.js
 * client expects (see /work/shared/CHAT-PROTOCOL-NOTES.md). It records every request the bot makes and keeps the
 * messages the bot created, so reads, edits and reactions behave like the real thing.
 */

export interface RecordedDiscordRequest {
  method: string;
  /** Decoded path after /api/v10, e.g. '/webhooks/app/token/messages/@original'. */
  path: string;
  authorization: string | undefined;
  /** JSON body, or the `payload_json` part of a multipart body. */
  body: any;
  /** Names and sizes of uploaded files. */
  files: { field: string; name: string; bytes: number }[];
}

export interface FakeMember {
  userId: string;
  roleIds?: string[];
  /** Permission bit field as Discord sends it in interactions. */
  permissions?: bigint;
}

const snowflakeBase = 1_200_000_000_000_000_000n;

export class FakeDiscord {
  readonly requests: RecordedDiscordRequest[] = [];
  readonly messages = new Map<string, any>();
  readonly applicationId = '900000000000000001';
  readonly botUserId = '900000000000000001';
  readonly guildId = '910000000000000001';
  readonly channelId = '920000000000000001';
  readonly manageServerRoleId = '930000000000000001';
  /** A role with no permissions, for a test to configure as the admin role (DISCORD_ADMIN_ROLE_IDS). */
  readonly configuredAdminRoleId = '930000000000000002';
  identify: any;
  private nextId = 1n;
  private sequence = 0;
  private sockets = new Set<WebSocket>();
  private originals = new Map<string, string>();
  private rateLimits: { pathPattern: RegExp; retryAfterSeconds: number }[] = [];
  private failures: { method: string; pathPattern: RegExp; status: number; error: { message: string; code: number } }[] = [];

  private constructor(
    private readonly server: Server,
    private readonly gateway: WebSocketServer,
    readonly port: number,
  ) {}

  static async start(): Promise<FakeDiscord> {
    const server = createServer();
    const gateway = new WebSocketServer({ server });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const fake = new FakeDiscord(server, gateway, (server.address() as AddressInfo).port);
    server.on('request', (request, response) => void fake.onRequest(request, response));
    gateway.on('connection', (socket) => fake.onGatewayConnection(socket));
    return fake;
  }

  get apiUrl(): string {
    return `http://127.0.0.1:${this.port}/api`;
  }

  snowflake(): string {
    return String(snowflakeBase + this.nextId++);
  }

  /** The next request matching `path` (a regexp over the decoded path) answers 429 with this retry_after. */
  rateLimitNext(pathPattern: RegExp, retryAfterSeconds: number): void {
    this.rateLimits.push({ pathPattern, retryAfterSeconds });
  }

  /** The next request with this method and a matching path gets this error answer, as Discord sends one. */
  failNext(method: string, pathPattern: RegExp, status: number, error: { message: string; code: number }): void {
    this.failures.push({ method, pathPattern, status, error });
  }

  waitForRequest(predicate: (request: RecordedDiscordRequest) => boolean, after = 0): Promise<RecordedDiscordRequest> {
    return waitFor(() => this.requests.slice(after).find(predicate));
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.terminate();
    await new Promise<void>((resolve) => this.gateway.close(() => resolve()));
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // --- driving the bot, as a user would ---

  slashCommand(name: string, options: any[], member: FakeMember = { userId: '940000000000000001' }): { id: string; token: string } {
    return this.dispatchInteraction({ type: 2, data: { id: this.snowflake(), name, type: 1, options } }, member);
  }

  clickButton(messageId: string, customId: string, member: FakeMember = { userId: '940000000000000001' }): { id: string; token: string } {
    return this.dispatchInteraction({ type: 3, data: { custom_id: customId, component_type: 2 }, message: this.messages.get(messageId) }, member);
  }

  /** Submits a modal opened from a button of `messageId`, with its text inputs' values by custom id. */
  submitModal(messageId: string, customId: string, values: Record<string, string>, member: FakeMember = { userId: '940000000000000001' }): { id: string; token: string } {
    const components = Object.entries(values).map(([id, value]) => ({ type: 1, components: [{ type: 4, custom_id: id, value }] }));
    return this.dispatchInteraction({ type: 5, data: { custom_id: customId, components }, message: this.messages.get(messageId) }, member);
  }

  addReaction(messageId: string, emoji: string, member: FakeMember = { userId: '940000000000000001' }): void {
    this.dispatch('MESSAGE_REACTION_ADD', {
      user_id: member.userId,
      channel_id: this.channelId,
      message_id: messageId,
      guild_id: this.guildId,
      member: this.memberPayload(member),
      emoji: { id: null, name: emoji },
      type: 0,
      burst: false,
      burst_colors: [],
    });
  }

  /** The message behind an interaction's @original, once the bot deferred or replied. */
  originalMessage(interactionToken: string): any {
    const id = this.originals.get(interactionToken);
    return id ? this.messages.get(id) : undefined;
  }

  // --- the gateway ---

  private onGatewayConnection(socket: WebSocket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.send(JSON.stringify({ op: 10, d: { heartbeat_interval: 41_250 }, s: null, t: null }));
    socket.on('message', (raw) => {
      const payload = JSON.parse(String(raw));
      if (payload.op === 1) socket.send(JSON.stringify({ op: 11, d: null, s: null, t: null }));
      if (payload.op === 2) {
        this.identify = payload.d;
        this.send(socket, 'READY', {
          v: 10,
          user: this.userPayload(this.botUserId, 'imagine-bot', true),
          guilds: [{ id: this.guildId, unavailable: true }],
          session_id: 'fake-session',
          resume_gateway_url: `ws://127.0.0.1:${this.port}`,
          application: { id: this.applicationId, flags: 0 },
        });
        this.send(socket, 'GUILD_CREATE', this.guildPayload());
      }
    });
  }

  private send(socket: WebSocket, type: string, data: unknown): void {
    this.sequence += 1;
    socket.send(JSON.stringify({ op: 0, s: this.sequence, t: type, d: data }));
  }

  private dispatch(type: string, data: unknown): void {
    for (const socket of this.sockets) this.send(socket, type, data);
  }

  private dispatchInteraction(fields: Record<string, unknown>, member: FakeMember): { id: string; token: string } {
    const payload = this.interactionPayload(fields, member);
    this.dispatch('INTERACTION_CREATE', payload);
    return { id: payload.id, token: payload.token };
  }

  // --- interactions over HTTP (an application with an Interactions Endpoint URL) ---

  /** The payload Discord sends for a slash command, over the gateway or POSTed to the endpoint. */
  slashCommandPayload(name: string, options: any[], member: FakeMember = { userId: '940000000000000001' }) {
    return this.interactionPayload({ type: 2, data: { id: this.snowflake(), name, type: 1, options } }, member);
  }

  /** The payload Discord sends for a click on a button of `messageId`. */
  buttonPayload(messageId: string, customId: string, member: FakeMember = { userId: '940000000000000001' }) {
    return this.interactionPayload({ type: 3, data: { custom_id: customId, component_type: 2 }, message: this.messages.get(messageId) }, member);
  }

  /**
   * What Discord does with the endpoint's HTTP answer to an interaction: a deferred or immediate message answer
   * becomes the interaction's @original message, as the callback route does for gateway interactions.
   */
  acceptHttpAnswer(interactionToken: string, answer: { type: number; data?: any }): void {
    if (answer.type === 4 || answer.type === 5) {
      const message = this.createMessage(answer.type === 4 ? answer.data : { content: '', flags: answer.data?.flags }, this.channelId);
      this.originals.set(interactionToken, message.id);
    }
  }

  private interactionPayload(fields: Record<string, unknown>, member: FakeMember) {
    const id = this.snowflake();
    const token = `interaction-token-${id}`;
    return {
      id,
      application_id: this.applicationId,
      token,
      version: 1,
      guild_id: this.guildId,
      channel_id: this.channelId,
      channel: { id: this.channelId, type: 0, guild_id: this.guildId, name: 'art' },
      member: this.memberPayload(member),
      app_permissions: '2251799813685247',
      locale: 'en-US',
      guild_locale: 'en-US',
      entitlements: [],
      authorizing_integration_owners: { '0': this.guildId },
      context: 0,
      attachment_size_limit: 10 * 1024 * 1024,
      ...fields,
    };
  }

  private userPayload(id: string, username: string, bot = false) {
    return { id, username, discriminator: '0', global_name: username, avatar: null, bot };
  }

  private memberPayload(member: FakeMember) {
    return {
      user: this.userPayload(member.userId, `user-${member.userId.slice(-4)}`),
      roles: member.roleIds ?? [],
      permissions: String(member.permissions ?? 0n),
      joined_at: '2026-01-01T00:00:00.000Z',
      deaf: false,
      mute: false,
      flags: 0,
      nick: null,
      avatar: null,
      premium_since: null,
      pending: false,
    };
  }

  private guildPayload() {
    const role = (id: string, name: string, permissions: bigint) => ({
      id,
      name,
      permissions: String(permissions),
      position: 0,
      color: 0,
      hoist: false,
      managed: false,
      mentionable: false,
      flags: 0,
    });
    return {
      id: this.guildId,
      name: 'Fake Guild',
      icon: null,
      owner_id: '999999999999999999',
      afk_timeout: 300,
      verification_level: 0,
      default_message_notifications: 0,
      explicit_content_filter: 0,
      features: [],
      mfa_level: 0,
      system_channel_flags: 0,
      premium_tier: 0,
      nsfw_level: 0,
      preferred_locale: 'en-US',
      unavailable: false,
      member_count: 3,
      large: false,
      joined_at: '2026-01-01T00:00:00.000Z',
      // @everyone may read and react; one role holds Manage Server (1 << 5), one is an admin role only by configuration.
      roles: [
        role(this.guildId, '@everyone', 1024n | 64n),
        role(this.manageServerRoleId, 'moderators', 1n << 5n),
        role(this.configuredAdminRoleId, 'bot admins', 0n),
      ],
      channels: [{ id: this.channelId, type: 0, name: 'art', guild_id: this.guildId, position: 0, permission_overwrites: [] }],
      members: [],
      emojis: [],
      stickers: [],
      threads: [],
      presences: [],
      voice_states: [],
      stage_instances: [],
      guild_scheduled_events: [],
      soundboard_sounds: [],
    };
  }

  // --- the REST API ---

  private async onRequest(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    const path = decodeURIComponent(url.pathname.replace(/^\/api\/v10/, ''));
    const method = request.method ?? 'GET';
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const contentType = request.headers['content-type'] ?? '';
    let body: any;
    const files: RecordedDiscordRequest['files'] = [];
    if (contentType.startsWith('multipart/form-data')) {
      const form = await new Response(raw, { headers: { 'content-type': contentType } }).formData();
      for (const [field, value] of form.entries()) {
        if (field === 'payload_json') body = JSON.parse(String(value));
        else if (typeof value !== 'string') files.push({ field, name: value.name, bytes: value.size });
      }
    } else if (raw.length > 0) {
      body = JSON.parse(raw.toString('utf8'));
    }
    this.requests.push({ method, path, authorization: request.headers.authorization, body, files });

    const limit = this.rateLimits.findIndex((candidate) => candidate.pathPattern.test(path));
    if (limit >= 0) {
      const { retryAfterSeconds } = this.rateLimits.splice(limit, 1)[0];
      return this.json(response, 429, { message: 'You are being rate limited.', retry_after: retryAfterSeconds, global: false }, {
        'retry-after': String(retryAfterSeconds),
        'x-ratelimit-scope': 'user',
      });
    }
    const failure = this.failures.findIndex((candidate) => candidate.method === method && candidate.pathPattern.test(path));
    if (failure >= 0) {
      const { status, error } = this.failures.splice(failure, 1)[0];
      return this.json(response, status, error);
    }
    return this.route(method, path, body, files, response);
  }

  private route(method: string, path: string, body: any, files: RecordedDiscordRequest['files'], response: ServerResponse): void {
    let match: RegExpExecArray | null;
    if (method === 'GET' && path === '/gateway/bot') {
      return this.json(response, 200, {
        url: `ws://127.0.0.1:${this.port}`,
        shards: 1,
        session_start_limit: { total: 1000, remaining: 999, reset_after: 0, max_concurrency: 1 },
      });
    }
    if ((match = /^\/interactions\/(\d+)\/([^/]+)\/callback$/.exec(path)) && method === 'POST') {
      if (body.type === 4 || body.type === 5) {
        const message = this.createMessage(body.type === 4 ? body.data : { content: '', flags: body.data?.flags }, this.channelId);
        this.originals.set(match[2], message.id);
      }
      return this.empty(response);
    }
    if ((match = /^\/webhooks\/(\d+)\/([^/]+)\/messages\/@original$/.exec(path))) {
      const message = this.originalMessage(match[2]);
      if (!message) return this.json(response, 404, { message: 'Unknown Message', code: 10008 });
      return this.messageCall(method, message, body, files, response);
    }
    if ((match = /^\/webhooks\/(\d+)\/([^/]+)\/messages\/(\d+)$/.exec(path))) {
      const message = this.messages.get(match[3]);
      if (!message) return this.json(response, 404, { message: 'Unknown Message', code: 10008 });
      return this.messageCall(method, message, body, files, response);
    }
    if ((match = /^\/webhooks\/(\d+)\/([^/]+)$/.exec(path)) && method === 'POST') {
      return this.json(response, 200, this.createMessage(body, this.channelId));
    }
    if ((match = /^\/channels\/(\d+)\/messages$/.exec(path)) && method === 'POST') {
      return this.json(response, 200, this.createMessage(body, match[1], files));
    }
    if ((match = /^\/channels\/(\d+)\/messages\/(\d+)\/reactions\/([^/]+)\/@me$/.exec(path)) && method === 'PUT') {
      return this.empty(response);
    }
    if ((match = /^\/channels\/(\d+)\/messages\/(\d+)$/.exec(path))) {
      const message = this.messages.get(match[2]);
      if (!message) return this.json(response, 404, { message: 'Unknown Message', code: 10008 });
      return this.messageCall(method, message, body, files, response);
    }
    if (method === 'POST' && path === '/users/@me/channels') {
      return this.json(response, 200, { id: `dm-${body.recipient_id}`.replace(/\D/g, '') || this.snowflake(), type: 1, recipients: [this.userPayload(body.recipient_id, 'someone')] });
    }
    if ((match = /^\/applications\/(\d+)(?:\/guilds\/(\d+))?\/commands$/.exec(path)) && method === 'PUT') {
      return this.json(response, 200, (body as any[]).map((command) => ({ ...command, id: this.snowflake(), application_id: match![1], version: '1' })));
    }
    return this.json(response, 404, { message: `fake Discord has no route ${method} ${path}`, code: 0 });
  }

  private messageCall(method: string, message: any, body: any, files: RecordedDiscordRequest['files'], response: ServerResponse): void {
    if (method === 'GET') return this.json(response, 200, message);
    if (method === 'DELETE') {
      this.messages.delete(message.id);
      return this.empty(response);
    }
    if (method === 'PATCH') {
      Object.assign(message, body, { edited_timestamp: new Date().toISOString(), attachments: this.attachments(files) });
      return this.json(response, 200, message);
    }
    return this.json(response, 405, { message: 'Method Not Allowed', code: 0 });
  }

  private attachments(files: RecordedDiscordRequest['files']) {
    return files.map((file) => ({
      id: this.snowflake(),
      filename: file.name,
      size: file.bytes,
      url: `http://127.0.0.1:${this.port}/attachments/${file.name}`,
      proxy_url: `http://127.0.0.1:${this.port}/attachments/${file.name}`,
    }));
  }

  private createMessage(body: any, channelId: string, files: RecordedDiscordRequest['files'] = []): any {
    const message = {
      id: this.snowflake(),
      channel_id: channelId,
      guild_id: this.guildId,
      author: this.userPayload(this.botUserId, 'imagine-bot', true),
      content: body?.content ?? '',
      timestamp: new Date().toISOString(),
      edited_timestamp: null,
      tts: false,
      mention_everyone: false,
      mentions: [],
      mention_roles: [],
      attachments: this.attachments(files),
      embeds: [],
      pinned: false,
      type: 0,
      flags: body?.flags ?? 0,
      components: body?.components ?? [],
    };
    this.messages.set(message.id, message);
    return message;
  }

  private json(response: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
    response.writeHead(status, { 'content-type': 'application/json', ...headers });
    response.end(JSON.stringify(payload));
  }

  private empty(response: ServerResponse): void {
    response.writeHead(204);
    response.end();
  }
}
