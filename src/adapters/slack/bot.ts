import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { App, LogLevel, type RespondFn } from '@slack/bolt';
import { isChatAdmin } from '../../core/chat/admin.js';
import type { ChatConfig } from '../../core/chat/chat-config.js';
import type { CommandContext } from '../../core/chat/commands/command.js';
import { CHAT_COMMANDS, runCommand } from '../../core/chat/commands/index.js';
import { createMemoryDeliveryLog, type DeliveryLog } from '../../core/chat/deliveries.js';
import { createEditCoalescer } from '../../core/chat/edit-coalescer.js';
import { REACTION_ACTIONS, RESULT_ACTION_ID, actionForReaction, actionOfClick, parseActionId } from '../../core/chat/result-actions.js';
import { performResultAction, submitRegionForm, type ResultActionPort } from '../../core/chat/result-flow.js';
import type { ImagineService } from '../../core/chat/service.js';
import { errorView, invalidButtonView, textView, viewOfEvent, type ChatView } from '../../core/chat/views.js';
import { isImagineError } from '../../core/errors.js';
import type { Requester } from '../../core/generation.js';
import { parseCommandText } from './command-text.js';
import { REGION_BLOCKS, REGION_VIEW_CALLBACK, RegionViewMetadata, renderRegionModalView, renderSlackMessage } from './render.js';
import { decodeReplyTarget, encodeReplyTarget, type SlackReplyTarget } from './reply-target.js';

export type SlackConnection =
  /** Socket Mode (the default): no public URL needed; `appToken` is the app-level `xapp-` token. */
  | { mode: 'socket'; appToken: string }
  /** HTTP: Slack POSTs to `/slack/events`, signed with the app's signing secret. */
  | { mode: 'http'; signingSecret: string; port: number; host?: string };

export interface SlackBotOptions {
  /** The bot token, `xoxb-…`. */
  botToken: string;
  connection: SlackConnection;
  service: ImagineService;
  config: ChatConfig;
  /** Web API base ending in '/'; defaults to Slack's. Tests point it at a loopback fake. */
  apiUrl?: string;
  /** Retries of failed Web API calls (the library default retries for ~30 min); tests set 0. */
  apiRetries?: number;
  /** At most one chat.update per message per this interval. */
  editIntervalMs?: number;
  onError?: (error: unknown, context: string) => void;
  /** Progress edits sent, or replaced by a newer one before they could be (metrics). */
  onEditOutcome?: (outcome: 'sent' | 'throttled') => void;
  /** Which Events API deliveries were handled already (the service shares one in Redis); in memory by default. */
  deliveries?: DeliveryLog;
  now?: () => number;
}

export interface SlackBot {
  app: App;
  /** The HTTP server in HTTP mode (to learn the bound port). */
  httpServer?: Server;
  stop(): Promise<void>;
}

/**
 * Slack's own payloads are a few kilobytes; a block_actions payload carries the whole message and stays far below
 * this. A larger body is refused from its Content-Length, before a byte of it is read.
 */
export const SLACK_MAX_BODY_BYTES = 1024 * 1024;
/** How far ahead of our clock a request may be dated: clock skew, not a request prepared for later. */
export const SLACK_MAX_FUTURE_SKEW_SECONDS = 30;

/**
 * Checks what can be checked before Bolt reads and verifies the body: a declared length within the cap (Node's parser
 * never reads past Content-Length, so a declared length bounds the body) and a timestamp not in the future (Bolt
 * refuses only stale ones). Answers the request itself and returns false when it is refused. A chunked body has no
 * length to check up front: its connection is cut once the bytes arriving on it pass the cap.
 */
function admitSlackRequest(request: IncomingMessage, response: ServerResponse, nowMs: number): boolean {
  const refuse = (status: number, error: string) => {
    response.writeHead(status, { 'content-type': 'application/json', connection: 'close' });
    response.end(JSON.stringify({ error }));
    return false;
  };
  const declared = request.headers['content-length'];
  if (request.method === 'POST' && declared !== undefined && (!/^\d+$/.test(declared) || Number(declared) > SLACK_MAX_BODY_BYTES)) {
    return refuse(413, `bodies are limited to ${SLACK_MAX_BODY_BYTES} bytes`);
  }
  if (request.method === 'POST' && declared === undefined) {
    // Counting on the socket leaves the request stream to Bolt, which reads it as it is.
    let receivedBytes = 0;
    const count = (chunk: Buffer) => {
      receivedBytes += chunk.length;
      if (receivedBytes > SLACK_MAX_BODY_BYTES) request.socket.destroy();
    };
    request.socket.on('data', count);
    response.once('close', () => request.socket.off('data', count));
  }
  const timestamp = Number(request.headers['x-slack-request-timestamp']);
  if (Number.isFinite(timestamp) && timestamp > nowMs / 1000 + SLACK_MAX_FUTURE_SKEW_SECONDS) return refuse(401, 'request timestamp is in the future');
  return true;
}

/** With rejectRateLimitedCalls, @slack/web-api throws this instead of sleeping, so the coalescer can drop stale edits. */
function slackRetryAfterMs(error: unknown): number | undefined {
  const limited = error as { code?: string; retryAfter?: number };
  return limited.code === 'slack_webapi_rate_limited_error' && typeof limited.retryAfter === 'number' ? limited.retryAfter * 1000 : undefined;
}

/** The generation a message of ours shows, read back from its buttons' action ids. */
function generationIdOfBlocks(blocks: unknown): string | null {
  for (const block of (Array.isArray(blocks) ? blocks : []) as { elements?: { action_id?: string }[] }[]) {
    for (const element of block.elements ?? []) {
      const action = element.action_id ? parseActionId(element.action_id) : null;
      if (action) return action.generationId;
    }
  }
  return null;
}

const slackNameOf = (emoji: string) => REACTION_ACTIONS.find((entry) => entry.emoji === emoji)?.slackName;

/** Starts the Slack app (Socket Mode or HTTP) serving commands, buttons, reactions and generation events. */
export async function startSlackBot(options: SlackBotOptions): Promise<SlackBot> {
  const { service, config, connection } = options;
  const onError = options.onError ?? ((error, context) => console.error(`[slack] ${context}:`, error));
  const clientOptions = {
    ...(options.apiUrl && { slackApiUrl: options.apiUrl }),
    rejectRateLimitedCalls: true,
    ...(options.apiRetries !== undefined && { retryConfig: { retries: options.apiRetries } }),
  };
  const app =
    connection.mode === 'socket'
      ? new App({ token: options.botToken, appToken: connection.appToken, socketMode: true, clientOptions, logLevel: LogLevel.ERROR })
      : new App({ token: options.botToken, signingSecret: connection.signingSecret, clientOptions, logLevel: LogLevel.ERROR });
  const client = app.client;
  const coalescer = createEditCoalescer({
    minIntervalMs: options.editIntervalMs ?? 1500,
    onEditOutcome: options.onEditOutcome,
    retryAfterMsOf: slackRetryAfterMs,
    onError: (error, key) => onError(error, `updating message ${key}`),
  });
  let botUserId: string | undefined;
  const deliveries = options.deliveries ?? createMemoryDeliveryLog();
  const now = options.now ?? Date.now;

  // Bolt acknowledges an Events API delivery before any middleware runs, so a repeat (Slack's retry after a slow or
  // lost ack, X-Slack-Retry-Num 1–3, same event_id) is simply not passed on. Slash commands, clicks and form submissions
  // carry no event_id but a trigger_id Slack makes for each one: a captured signed request replayed inside its
  // five-minute window repeats it, and is acknowledged and dropped.
  app.use(async (args) => {
    const { event_id: eventId, trigger_id: triggerId } = args.body as { event_id?: unknown; trigger_id?: unknown };
    if (typeof eventId === 'string' && !(await deliveries.firstDelivery(`slack:event:${eventId}`))) return;
    if (typeof triggerId === 'string' && !(await deliveries.firstDelivery(`slack:trigger:${triggerId}`))) {
      if ('ack' in args && args.ack) await args.ack();
      return;
    }
    await args.next();
  });

  /** Admin status costs an API call, so it is asked only when an answer depends on it — and then every time. */
  const requesterOf = async (teamId: string, userId: string, needsAdminCheck: boolean): Promise<Requester> => {
    let isWorkspaceAdmin = false;
    if (needsAdminCheck && !isChatAdmin({ platform: 'slack', userId }, config.admins)) {
      const info = await client.users.info({ user: userId });
      isWorkspaceAdmin = Boolean(info.user?.is_admin || info.user?.is_owner || info.user?.is_primary_owner);
    }
    return { platform: 'slack', workspaceId: teamId, userId, isAdmin: isChatAdmin({ platform: 'slack', userId, isWorkspaceAdmin }, config.admins) };
  };

  const updateTarget = async (target: SlackReplyTarget, view: ChatView) => {
    await client.chat.update({ channel: target.channel, ts: target.ts, ...renderSlackMessage(view) });
  };

  const uploadImages = async (target: SlackReplyTarget, view: ChatView) => {
    for (const image of view.images) {
      const file = await service.readImage(image.key);
      await client.files.uploadV2({ channel_id: target.channel, thread_ts: target.ts, file, filename: image.fileName });
    }
  };

  const sendDirectMessage = async (userId: string, view: ChatView) => {
    await client.chat.postMessage({ channel: userId, ...renderSlackMessage(view) });
  };

  const deps = { service, config };

  /** The chat flow's port for one result message (src/core/chat/result-flow.ts); a form needs the click's trigger_id. */
  const actionPort = (source: SlackReplyTarget, actor: Requester, tell: (view: ChatView) => Promise<unknown>, triggerId?: string): ResultActionPort => ({
    async openGenerationMessage(placeholder) {
      const posted = await client.chat.postMessage({ channel: source.channel, text: placeholder.text });
      const target: SlackReplyTarget = { channel: posted.channel ?? source.channel, ts: posted.ts! };
      return {
        replyTarget: encodeReplyTarget(target),
        show: async (view) => coalescer.schedule(`${target.channel}:${target.ts}`, () => updateTarget(target, view)),
        remove: async () => void (await client.chat.delete({ channel: target.channel, ts: target.ts })),
      };
    },
    removeResultMessage: async () => void (await client.chat.delete({ channel: source.channel, ts: source.ts })),
    directMessage: (view) => sendDirectMessage(actor.userId, view),
    tell: async (view) => void (await tell(view)),
    async openForm(form) {
      if (!triggerId) return void (await tell(textView('Click 🖌️ Vary (Region) under the picture to choose what to repaint.')));
      await client.views.open({ trigger_id: triggerId, view: renderRegionModalView(form, { formId: form.formId, ...source }) });
    },
  });

  const tellPrivately = (respond: RespondFn) => (view: ChatView) =>
    respond({ response_type: 'ephemeral', replace_original: false, ...renderSlackMessage(view) });

  for (const command of CHAT_COMMANDS) {
    app.command(`/${command.definition.name}`, async ({ command: payload, ack, respond }) => {
      let parsed;
      try {
        parsed = parseCommandText(command.definition, payload.text);
        command.check?.(parsed.options, config);
      } catch (error) {
        if (!isImagineError(error)) throw error;
        await ack({ response_type: 'ephemeral', text: errorView(error).text });
        return;
      }
      // Slack drops a command not acknowledged within 3 s; everything slow happens after this.
      await ack();
      let generationTarget: SlackReplyTarget | undefined;
      const postGenerationMessage = async (privateReply: boolean): Promise<SlackReplyTarget> => {
        const posted = await client.chat.postMessage({ channel: privateReply ? payload.user_id : payload.channel_id, text: '🎨 …' });
        return { channel: posted.channel!, ts: posted.ts! };
      };
      const context: CommandContext = {
        requester: await requesterOf(payload.team_id, payload.user_id, command.definition.adminOnly),
        subcommand: parsed.subcommand,
        options: parsed.options,
        service,
        config,
        openGenerationMessage: async (privateReply) => {
          generationTarget = await postGenerationMessage(privateReply);
          return encodeReplyTarget(generationTarget);
        },
        openAnotherGenerationMessage: async (privateReply) => {
          const target = await postGenerationMessage(privateReply);
          return {
            replyTarget: encodeReplyTarget(target),
            show: async (view) => coalescer.schedule(`${target.channel}:${target.ts}`, () => updateTarget(target, view)),
            remove: async () => void (await client.chat.delete({ channel: target.channel, ts: target.ts })),
          };
        },
        generationIdOfMessageLink: async (link) => {
          const match = /\/archives\/([A-Z0-9]+)\/p(\d{10})(\d{6})/.exec(link);
          return match ? generationIdOfMessage(match[1], `${match[2]}.${match[3]}`) : null;
        },
      };
      const view = await runCommand(command, context);
      // A public placeholder cannot become private: a private answer (an error) replaces it with an ephemeral reply.
      if (generationTarget && (!view.ephemeral || command.ephemeral(parsed.options))) {
        const target = generationTarget;
        coalescer.schedule(`${target.channel}:${target.ts}`, () => updateTarget(target, view));
        return;
      }
      if (generationTarget) await client.chat.delete({ channel: generationTarget.channel, ts: generationTarget.ts });
      await tellPrivately(respond)(view);
    });
  }

  /** The generation a message shows, read back from its buttons (stateless: works after a restart). */
  const generationIdOfMessage = async (channel: string, ts: string): Promise<string | null> => {
    const history = await client.conversations.history({ channel, latest: ts, inclusive: true, limit: 1 });
    const message = history.messages?.[0];
    if (!message || message.ts !== ts || (botUserId && message.user !== botUserId)) return null;
    return generationIdOfBlocks(message.blocks);
  };

  app.action(RESULT_ACTION_ID, async ({ ack, body, action, respond }) => {
    await ack();
    if (body.type !== 'block_actions' || action.type !== 'button') return void (await tellPrivately(respond)(invalidButtonView()));
    // Slack's copy of the message (its blocks) says which generation it shows; the action id only says what to do.
    const parsed = actionOfClick((action as { action_id?: string }).action_id ?? '', generationIdOfBlocks(body.message?.blocks));
    const channel = body.channel?.id ?? body.container?.channel_id;
    const ts = body.message?.ts ?? body.container?.message_ts;
    if (!parsed || !channel || !ts) return void (await tellPrivately(respond)(invalidButtonView()));
    const actor = await requesterOf(body.team?.id ?? body.user.team_id ?? 'unknown', body.user.id, parsed.action === 'delete');
    await performResultAction(parsed, actor, deps, actionPort({ channel, ts }, actor, tellPrivately(respond), body.trigger_id));
  });

  app.view(REGION_VIEW_CALLBACK, async ({ ack, body, view }) => {
    const values = view.state.values;
    const preset = values[REGION_BLOCKS.preset]?.[REGION_BLOCKS.preset]?.selected_option?.value ?? undefined;
    const rectangle = values[REGION_BLOCKS.rectangle]?.[REGION_BLOCKS.rectangle]?.value?.trim() || undefined;
    if (preset && rectangle) {
      await ack({ response_action: 'errors', errors: { [REGION_BLOCKS.rectangle]: 'Choose a preset or type a rectangle, not both.' } });
      return;
    }
    await ack();
    const metadata = RegionViewMetadata.safeParse(safeJson(view.private_metadata));
    if (!metadata.success) return onError(new Error(`unreadable private_metadata ${view.private_metadata}`), 'vary region form');
    const actor = await requesterOf(body.team?.id ?? body.user.team_id ?? 'unknown', body.user.id, false);
    const submission = { region: rectangle ?? preset, prompt: values[REGION_BLOCKS.prompt]?.[REGION_BLOCKS.prompt]?.value ?? undefined };
    const source = { channel: metadata.data.channel, ts: metadata.data.ts };
    const tell = (shown: ChatView) => client.chat.postEphemeral({ channel: source.channel, user: body.user.id, ...renderSlackMessage(shown) });
    await submitRegionForm(metadata.data.formId, submission, actor, deps, actionPort(source, actor, tell));
  });

  // Any other action id is not one this bot made (or no longer makes): say so rather than leave the click unanswered.
  app.action(/^(?!ib1:)/, async ({ ack, respond }) => {
    await ack();
    await tellPrivately(respond)(invalidButtonView());
  });

  app.event('reaction_added', async ({ event, body }) => {
    if (event.item.type !== 'message' || event.user === botUserId || (botUserId && event.item_user !== botUserId)) return;
    const generationId = await generationIdOfMessage(event.item.channel, event.item.ts);
    const action = generationId ? actionForReaction(event.reaction, generationId) : null;
    if (!action) return;
    const actor = await requesterOf(body.team_id, event.user, action.action === 'delete');
    // A reaction has no private reply channel: problems go to the user's DMs.
    const port = actionPort({ channel: event.item.channel, ts: event.item.ts }, actor, (view) => sendDirectMessage(event.user, view));
    await performResultAction(action, actor, deps, port);
  });

  app.error(async (error) => onError(error, 'listener'));

  const unsubscribe = service.subscribe('slack', (event) => {
    const target = decodeReplyTarget(event.replyTarget);
    if (!target) return onError(new Error(`unreadable replyTarget ${event.replyTarget}`), `event of ${event.generationId}`);
    const render = async () => {
      const record = await service.findGeneration(event.generationId);
      const eventView = record && viewOfEvent(event, record);
      if (!eventView) return;
      // Progress previews are not uploaded: a file every 1.5 s would flood the channel.
      const view = event.type === 'progress' ? { ...eventView, images: [] } : eventView;
      if (event.type === 'succeeded') await uploadImages(target, view);
      await updateTarget(target, view);
      if (event.type === 'succeeded') {
        for (const emoji of view.reactions) {
          const name = slackNameOf(emoji);
          if (name) await client.reactions.add({ channel: target.channel, timestamp: target.ts, name });
        }
      }
    };
    coalescer.schedule(`${target.channel}:${target.ts}`, render, { final: event.type !== 'progress' });
  });

  try {
    const auth = await client.auth.test({ token: options.botToken });
    botUserId = auth.user_id;
    const started = connection.mode === 'socket' ? await app.start() : await app.start({ port: connection.port, host: connection.host ?? '127.0.0.1' });
    if (connection.mode === 'http') {
      // Bolt's receiver reads a body whole before it looks at it: put the cheap refusals in front of its listener.
      const server = started as Server;
      const [receive] = server.listeners('request') as ((request: IncomingMessage, response: ServerResponse) => void)[];
      server.removeAllListeners('request');
      server.on('request', (request: IncomingMessage, response: ServerResponse) => {
        if (admitSlackRequest(request, response, now())) receive(request, response);
      });
    }
    return {
      app,
      httpServer: connection.mode === 'http' ? (started as Server) : undefined,
      async stop() {
        unsubscribe();
        coalescer.close();
        await app.stop();
      },
    };
  } catch (error) {
    unsubscribe();
    coalescer.close();
    throw error;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
