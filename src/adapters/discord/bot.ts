import { once } from 'node:events';
import type { Server } from 'node:http';
import {
  ApplicationCommandOptionType,
  ButtonInteraction,
  ChatInputCommandInteraction,
  Client,
  Events,
  GatewayIntentBits,
  MessageFlags,
  Partials,
  PermissionFlagsBits,
  Routes,
  type APIChannel,
  type APIMessage,
  type BaseInteraction,
  type CommandInteractionOption,
  ModalSubmitInteraction,
  type MessageReaction,
  type PartialMessageReaction,
  type PartialUser,
  type User,
} from 'discord.js';
import { isChatAdmin, type AdminFacts } from '../../core/chat/admin.js';
import type { ChatConfig } from '../../core/chat/chat-config.js';
import type { CommandContext, OptionValues } from '../../core/chat/commands/command.js';
import { findCommand, runCommand } from '../../core/chat/commands/index.js';
import type { DeliveryLog } from '../../core/chat/deliveries.js';
import { createEditCoalescer } from '../../core/chat/edit-coalescer.js';
import type { RegionForm } from '../../core/chat/edits.js';
import { actionForReaction, actionOfClick, parseActionId } from '../../core/chat/result-actions.js';
import { performResultAction, submitRegionForm, type ResultActionPort } from '../../core/chat/result-flow.js';
import type { ImagineService } from '../../core/chat/service.js';
import { errorView, invalidButtonView, textView, viewOfEvent, type ChatView } from '../../core/chat/views.js';
import { isImagineError } from '../../core/errors.js';
import type { Requester } from '../../core/generation.js';
import { createInteractionsEndpoint } from './interactions-endpoint.js';
import { REGION_FIELDS, renderDiscordMessage, renderRegionModal, viewFiles } from './render.js';
import { decodeReplyTarget, encodeReplyTarget, type DiscordReplyTarget } from './reply-target.js';

export interface DiscordBotOptions {
  token: string;
  service: ImagineService;
  config: ChatConfig;
  /** API base without the version; defaults to Discord's. Tests point it at a loopback fake. */
  apiBaseUrl?: string;
  /** How often @discordjs/rest retries a failed request (5xx, network); 429s are always waited out. */
  restRetries?: number;
  /** At most one edit per message per this interval (Discord allows about 5 per 5 s). */
  editIntervalMs?: number;
  onError?: (error: unknown, context: string) => void;
  /** Progress edits sent, or replaced by a newer one before they could be (metrics). */
  onEditOutcome?: (outcome: 'sent' | 'throttled') => void;
  /**
   * Discord's alternative to the gateway: interactions POSTed to `http://host:port/interactions`, checked against the
   * application's public key. Without a gateway there are no reaction events: 🔄 and friends need the gateway mode.
   */
  interactions?: { publicKeyHex: string; port: number; host: string; deliveries?: DeliveryLog };
}

export interface DiscordBot {
  client: Client;
  /** The interactions endpoint's server in HTTP mode (to learn the bound port). */
  interactionsServer?: Server;
  stop(): Promise<void>;
}

// discord.js builds these from gateway payloads; an HTTP interaction carries the same payload. Their constructors are
// not in the typings, but take (client, data) as the gateway path calls them.
type InteractionClass = new (client: Client, data: unknown) => BaseInteraction;

function interactionOfPayload(client: Client, data: any): BaseInteraction | null {
  const Class =
    data.type === 2 && data.data?.type === 1
      ? ChatInputCommandInteraction
      : data.type === 3 && data.data?.component_type === 2
        ? ButtonInteraction
        : data.type === 5
          ? ModalSubmitInteraction
          : null;
  return Class && new (Class as unknown as InteractionClass)(client, data);
}

const MESSAGE_LINK = /^https:\/\/(?:(?:ptb|canary)\.)?discord(?:app)?\.com\/channels\/(\d+|@me)\/(\d+)\/(\d+)$/;

/** The generation a message of ours shows, read back from its button ids (so it works after a restart). */
export function generationIdOfMessage(message: Pick<APIMessage, 'components'>): string | null {
  for (const row of message.components ?? []) {
    for (const component of 'components' in row ? row.components : []) {
      const action = 'custom_id' in component ? parseActionId(component.custom_id) : null;
      if (action) return action.generationId;
    }
  }
  return null;
}

function readOptions(data: readonly CommandInteractionOption[]): { subcommand: string[]; options: OptionValues } {
  const subcommand: string[] = [];
  let level = data;
  while (
    level.length === 1 &&
    (level[0].type === ApplicationCommandOptionType.Subcommand || level[0].type === ApplicationCommandOptionType.SubcommandGroup)
  ) {
    subcommand.push(level[0].name);
    level = level[0].options ?? [];
  }
  return { subcommand, options: Object.fromEntries(level.map((option) => [option.name, option.value ?? undefined])) };
}

/** Connects to the gateway and serves commands, buttons, reactions and generation events until `stop()`. */
export async function startDiscordBot(options: DiscordBotOptions): Promise<DiscordBot> {
  const { service, config } = options;
  const onError = options.onError ?? ((error, context) => console.error(`[discord] ${context}:`, error));
  const client = new Client({
    intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessageReactions, GatewayIntentBits.DirectMessages],
    // Reactions on messages sent before this process started reach us only as partials.
    partials: [Partials.Message, Partials.Reaction, Partials.Channel],
    rest: { ...(options.apiBaseUrl && { api: options.apiBaseUrl }), retries: options.restRetries ?? 3 },
  });
  const coalescer = createEditCoalescer({
    minIntervalMs: options.editIntervalMs ?? 1500,
    // @discordjs/rest already sleeps for a 429's retry_after and repeats the request.
    onEditOutcome: options.onEditOutcome,
    retryAfterMsOf: () => undefined,
    onError: (error, messageId) => onError(error, `editing message ${messageId}`),
  });

  const botUserId = () => client.user?.id ?? '';

  const requesterOf = (workspaceId: string | null, facts: Omit<AdminFacts, 'platform'>): Requester => ({
    platform: 'discord',
    workspaceId: workspaceId ?? 'dm',
    userId: facts.userId,
    isAdmin: isChatAdmin({ ...facts, platform: 'discord' }, config.admins),
  });

  const interactionRequester = (interaction: ChatInputCommandInteraction | ButtonInteraction | ModalSubmitInteraction): Requester => {
    const member = interaction.member;
    const roleIds = member ? (Array.isArray(member.roles) ? member.roles : [...member.roles.cache.keys()]) : [];
    return requesterOf(interaction.guildId, {
      userId: interaction.user.id,
      roleIds,
      canManageServer: interaction.memberPermissions?.has(PermissionFlagsBits.ManageGuild) ?? false,
    });
  };

  /** A private reply can only be reached through its interaction webhook; a public one through the channel. */
  const messageRoute = ({ webhook, channelId, messageId }: DiscordReplyTarget) =>
    webhook ? Routes.webhookMessage(webhook.applicationId, webhook.token, webhook.messageId ?? '@original') : Routes.channelMessage(channelId, messageId);

  const editTarget = async (target: DiscordReplyTarget, view: ChatView) => {
    const { view: shown, files } = await viewFiles(view, (key) => service.readImage(key));
    const body = renderDiscordMessage({ ...shown, ephemeral: false }, files);
    await client.rest.patch(messageRoute(target), { body, files, auth: !target.webhook });
  };

  const sendDirectMessage = async (userId: string, view: ChatView) => {
    const channel = (await client.rest.post(Routes.userChannels(), { body: { recipient_id: userId } })) as APIChannel;
    await client.rest.post(Routes.channelMessages(channel.id), { body: renderDiscordMessage({ ...view, ephemeral: false }, []) });
  };

  const fetchMessage = (channelId: string, messageId: string) => client.rest.get(Routes.channelMessage(channelId, messageId)) as Promise<APIMessage>;

  const generationIdOfMessageLink = async (link: string) => {
    const match = MESSAGE_LINK.exec(link.trim());
    if (!match) return null;
    const message = await fetchMessage(match[2], match[3]).catch(() => null);
    return message && message.author.id === botUserId() ? generationIdOfMessage(message) : null;
  };

  type Source = { channelId: string; messageId: string; guildId?: string };

  /** The chat flow's port for one result message (src/core/chat/result-flow.ts). */
  const actionPort = (
    source: Source,
    actor: Requester,
    tell: (view: ChatView) => Promise<unknown>,
    openForm: (form: RegionForm) => Promise<unknown> = () => tell(textView('Click 🖌️ Vary (Region) under the picture to choose what to repaint.')),
  ): ResultActionPort => ({
    async openGenerationMessage(placeholder) {
      const posted = (await client.rest.post(Routes.channelMessages(source.channelId), {
        body: { content: placeholder.text, message_reference: { message_id: source.messageId, fail_if_not_exists: false } },
      })) as APIMessage;
      const target: DiscordReplyTarget = { channelId: source.channelId, messageId: posted.id, guildId: source.guildId };
      return {
        replyTarget: encodeReplyTarget(target),
        show: async (view) => coalescer.schedule(target.messageId, () => editTarget(target, view)),
        remove: async () => void (await client.rest.delete(Routes.channelMessage(target.channelId, target.messageId))),
      };
    },
    removeResultMessage: async () => void (await client.rest.delete(Routes.channelMessage(source.channelId, source.messageId))),
    directMessage: (view) => sendDirectMessage(actor.userId, view),
    tell: async (view) => void (await tell(view)),
    openForm: async (form) => void (await openForm(form)),
  });

  const deps = { service, config };

  /** A private answer, whether or not the interaction was acknowledged already (the HTTP endpoint acknowledges on receipt). */
  const answerPrivately = async (interaction: ChatInputCommandInteraction | ButtonInteraction, content: string) => {
    if (!interaction.deferred && !interaction.replied) return void (await interaction.reply({ content, flags: MessageFlags.Ephemeral }));
    if (interaction.ephemeral) return void (await interaction.editReply({ content }));
    // A public "thinking…" cannot become private: replace it with a private follow-up. A button's message stays.
    if (interaction.isChatInputCommand()) await interaction.deleteReply();
    await interaction.followUp({ content, flags: MessageFlags.Ephemeral });
  };

  const onCommand = async (interaction: ChatInputCommandInteraction) => {
    const command = findCommand(interaction.commandName);
    if (!command) {
      await answerPrivately(interaction, 'I do not know that command; ask an admin to register the commands again.');
      return;
    }
    const { subcommand, options } = readOptions(interaction.options.data);
    try {
      command.check?.(options, config);
    } catch (error) {
      if (!isImagineError(error)) throw error;
      await answerPrivately(interaction, errorView(error).text);
      return;
    }
    // Discord drops an interaction not answered within 3 s; everything slow happens after this.
    const ephemeral = command.ephemeral(options);
    if (!interaction.deferred) await interaction.deferReply(ephemeral ? { flags: MessageFlags.Ephemeral } : {});
    const original: DiscordReplyTarget = {
      channelId: interaction.channelId,
      messageId: '@original',
      guildId: interaction.guildId ?? undefined,
      webhook: { applicationId: interaction.applicationId, token: interaction.token },
    };
    let generationTarget: DiscordReplyTarget | undefined;
    const context: CommandContext = {
      requester: interactionRequester(interaction),
      subcommand,
      options,
      service,
      config,
      openGenerationMessage: async () => {
        const reply = await interaction.fetchReply();
        generationTarget = { ...original, messageId: reply.id, webhook: ephemeral ? original.webhook : undefined };
        return encodeReplyTarget(generationTarget);
      },
      // A follow-up goes where the reply went, private if it was; a private one is edited through the webhook by its id.
      openAnotherGenerationMessage: async () => {
        const posted = await interaction.followUp({ content: '🎨 …', ...(ephemeral && { flags: MessageFlags.Ephemeral }) });
        const target: DiscordReplyTarget = { ...original, messageId: posted.id, webhook: ephemeral ? { ...original.webhook!, messageId: posted.id } : undefined };
        return {
          replyTarget: encodeReplyTarget(target),
          show: async (view) => coalescer.schedule(target.messageId, () => editTarget(target, view)),
          remove: async () => void (await client.rest.delete(messageRoute(target))),
        };
      },
      generationIdOfMessageLink,
    };
    const view = await runCommand(command, context);
    if (view.ephemeral && !ephemeral) {
      // A public "thinking…" cannot become private: replace it with a private follow-up.
      await interaction.deleteReply();
      await interaction.followUp({ content: view.text, flags: MessageFlags.Ephemeral });
    } else if (generationTarget) {
      const target = generationTarget;
      coalescer.schedule(target.messageId, () => editTarget(target, view));
    } else {
      await editTarget(original, view);
    }
  };

  const onButton = async (interaction: ButtonInteraction) => {
    // Discord's copy of the message says which generation it shows; the click's custom id only says what to do.
    const shown = generationIdOfMessage({ components: interaction.message.components.map((row) => row.toJSON()) as APIMessage['components'] });
    const action = actionOfClick(interaction.customId, shown);
    if (!action) {
      await answerPrivately(interaction, invalidButtonView().text);
      return;
    }
    const source = { channelId: interaction.channelId, messageId: interaction.message.id, guildId: interaction.guildId ?? undefined };
    const actor = interactionRequester(interaction);
    if (action.action === 'vary-region') {
      // A modal can only be an interaction's first answer, so this button is answered by the form (or an error) itself.
      const port = actionPort(
        source,
        actor,
        (view) => answerPrivately(interaction, view.text),
        (form) =>
          interaction.deferred
            ? answerPrivately(interaction, 'Vary (Region) opens a form, which this bot can only show when connected to the gateway; ask an admin.')
            : interaction.showModal(renderRegionModal(form)),
      );
      return performResultAction(action, actor, deps, port);
    }
    if (!interaction.deferred) await interaction.deferUpdate();
    await performResultAction(action, actor, deps, actionPort(source, actor, (view) => interaction.followUp({ content: view.text, flags: MessageFlags.Ephemeral })));
  };

  const onModalSubmit = async (interaction: ModalSubmitInteraction) => {
    if (!parseActionId(interaction.customId) || !interaction.isFromMessage()) return;
    if (!interaction.deferred) await interaction.deferUpdate();
    const source = { channelId: interaction.channelId ?? interaction.message.channelId, messageId: interaction.message.id, guildId: interaction.guildId ?? undefined };
    const actor = interactionRequester(interaction);
    const field = (name: string) => interaction.fields.fields.get(name) && interaction.fields.getTextInputValue(name);
    const submission = { region: field(REGION_FIELDS.region) || undefined, prompt: field(REGION_FIELDS.prompt) || undefined };
    const port = actionPort(source, actor, (view) => interaction.followUp({ content: view.text, flags: MessageFlags.Ephemeral }));
    await submitRegionForm(interaction.customId, submission, actor, deps, port);
  };

  const onReaction = async (reaction: MessageReaction | PartialMessageReaction, user: User | PartialUser) => {
    if (user.id === botUserId()) return;
    const { channelId, id: messageId, guildId } = reaction.message;
    const message = await fetchMessage(channelId, messageId);
    const generationId = message.author.id === botUserId() ? generationIdOfMessage(message) : null;
    const action = generationId ? actionForReaction(reaction.emoji.name ?? '', generationId) : null;
    if (!action) return;
    const guild = reaction.message.guild;
    const member = guild ? (guild.members.cache.get(user.id) ?? (await guild.members.fetch(user.id))) : null;
    const actor = requesterOf(guildId, {
      userId: user.id,
      roleIds: member ? [...member.roles.cache.keys()] : [],
      canManageServer: member?.permissions.has(PermissionFlagsBits.ManageGuild) ?? false,
    });
    // A reaction has no private reply channel: problems go to the user's DMs.
    const port = actionPort({ channelId, messageId, guildId: guildId ?? undefined }, actor, (view) => sendDirectMessage(user.id, view));
    await performResultAction(action, actor, deps, port);
  };

  const onInteraction = (interaction: BaseInteraction) => {
    const work = interaction.isChatInputCommand()
      ? onCommand(interaction)
      : interaction.isButton()
        ? onButton(interaction)
        : interaction.isModalSubmit()
          ? onModalSubmit(interaction)
          : undefined;
    work?.catch(async (error: unknown) => {
      onError(error, `interaction ${interaction.id}`);
      if (interaction.isRepliable() && (interaction.deferred || interaction.replied)) {
        await interaction.followUp({ content: textView('Something went wrong on my side; please try again.').text, flags: MessageFlags.Ephemeral }).catch(() => undefined);
      }
    });
  };
  client.on(Events.InteractionCreate, onInteraction);
  client.on(Events.MessageReactionAdd, (reaction, user) => {
    onReaction(reaction, user).catch((error: unknown) => onError(error, `reaction on ${reaction.message.id}`));
  });

  const unsubscribe = service.subscribe('discord', (event) => {
    const target = decodeReplyTarget(event.replyTarget);
    if (!target) return onError(new Error(`unreadable replyTarget ${event.replyTarget}`), `event of ${event.generationId}`);
    const render = async () => {
      const record = await service.findGeneration(event.generationId);
      const view = record && viewOfEvent(event, record);
      if (!view) return;
      await editTarget(target, view);
      if (event.type === 'succeeded' && !target.webhook) {
        for (const emoji of view.reactions) {
          await client.rest.put(Routes.channelMessageOwnReaction(target.channelId, target.messageId, encodeURIComponent(emoji)));
        }
      }
    };
    coalescer.schedule(target.messageId, render, { final: event.type !== 'progress' });
  });
  const shutDown = async () => {
    unsubscribe();
    coalescer.close();
    await client.destroy();
  };

  if (options.interactions) {
    const { publicKeyHex, port, host, deliveries } = options.interactions;
    // No gateway: REST calls (channel messages, DMs) still need the bot token; webhook calls use the interaction's.
    client.rest.setToken(options.token);
    const server = createInteractionsEndpoint({
      publicKeyHex,
      deliveries,
      onInteraction: (payload) => {
        const interaction = interactionOfPayload(client, payload);
        if (!interaction) return;
        // The endpoint's HTTP answer was the acknowledgement, with the same flags onCommand would have chosen.
        if (interaction.isChatInputCommand()) {
          interaction.deferred = true;
          interaction.ephemeral = findCommand(interaction.commandName)?.ephemeral(readOptions(interaction.options.data).options) ?? true;
        } else if (interaction.isButton() || interaction.isModalSubmit()) {
          interaction.deferred = true;
        }
        onInteraction(interaction);
      },
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve());
      });
    } catch (error) {
      await shutDown();
      throw error;
    }
    return {
      client,
      interactionsServer: server,
      async stop() {
        unsubscribe();
        coalescer.close();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await client.destroy();
      },
    };
  }

  const ready = once(client, Events.ClientReady);
  try {
    await client.login(options.token);
    await ready;
  } catch (error) {
    await shutDown();
    throw error;
  }
  return {
    client,
    async stop() {
      await shutDown();
    },
  };
}
