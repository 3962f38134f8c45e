import type { Requester } from '../../generation.js';
import type { ChatConfig } from '../chat-config.js';
import type { ImagineService } from '../service.js';
import type { ChatView } from '../views.js';

/**
 * A command is data (what is registered with the platform) beside its handler, one module per command. Adapters
 * translate the definition into Discord application commands or Slack slash commands and the platform's options into
 * `OptionValues`; the handler never sees the platform.
 */

export type CommandOptionType = 'string' | 'integer' | 'number' | 'boolean' | 'user';

export interface CommandOptionDefinition {
  name: string;
  description: string;
  type: CommandOptionType;
  required?: boolean;
  choices?: readonly string[];
  minValue?: number;
  maxValue?: number;
}

export interface SubcommandDefinition {
  name: string;
  description: string;
  options?: readonly CommandOptionDefinition[];
  /** A subcommand group (`/admin quota set`) holds subcommands instead of options. */
  subcommands?: readonly SubcommandDefinition[];
}

export interface CommandDefinition {
  name: string;
  description: string;
  options?: readonly CommandOptionDefinition[];
  subcommands?: readonly SubcommandDefinition[];
  /** Checked server-side on every call, whatever the platform shows to whom. */
  adminOnly: boolean;
}

/** Option values by name; a 'user' option's value is the platform user id. */
export type OptionValues = Record<string, string | number | boolean | undefined>;

export interface CommandContext {
  /** `isAdmin` was evaluated by the adapter for this very request (see isChatAdmin). */
  requester: Requester;
  /** The subcommand path, e.g. ['quota', 'set'] for `/admin quota set`. */
  subcommand: readonly string[];
  options: OptionValues;
  service: ImagineService;
  config: ChatConfig;
  /** Opens the message a generation will be rendered in and returns its replyTarget. */
  openGenerationMessage(privateReply: boolean): Promise<string>;
  /** The generation a message link on this platform shows, if it is one of ours. */
  generationIdOfMessageLink(link: string): Promise<string | null>;
}

export interface ChatCommand {
  definition: CommandDefinition;
  /** Whether the answer is private, decided from the options alone so the adapter can defer at once. */
  ephemeral(options: OptionValues): boolean;
  /** Cheap checks that run before deferring, so mistakes get an immediate private answer. */
  check?(options: OptionValues, config: ChatConfig): void;
  handle(context: CommandContext): Promise<ChatView>;
}

export const stringOption = (options: OptionValues, name: string): string | undefined => {
  const value = options[name];
  return value === undefined ? undefined : String(value);
};
