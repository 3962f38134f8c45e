import { invalidInput } from '../../errors.js';
import type { Requester } from '../../generation.js';
import type { ChatConfig } from '../chat-config.js';
import type { OpenedMessage } from '../result-flow.js';
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
  /**
   * Posts one more message where the command's reply went, for another generation of the same command (the next
   * combination of a permutation prompt), to show that generation's acceptance in and render it.
   */
  openAnotherGenerationMessage(privateReply: boolean): Promise<OpenedMessage>;
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

/**
 * Option words of a text-only command line (Slack, the web chat box), in any order: `name=value` or `name:value` names
 * its option; a bare word that is one of exactly one option's choices goes to that option (`/settings relax`); other
 * bare words fill the options still empty in their defined order. Errors name the option that was wrong.
 */
export function placeOptionWords(
  definitions: readonly CommandOptionDefinition[],
  words: readonly string[],
  usageText: string,
): { option: CommandOptionDefinition; word: string }[] {
  const placed = new Map<CommandOptionDefinition, string>();
  const place = (option: CommandOptionDefinition, word: string) => {
    if (placed.has(option)) throw invalidInput(`${option.name} is given twice ("${placed.get(option)}", "${word}"). Usage: ${usageText}`);
    placed.set(option, word);
  };
  const bare: string[] = [];
  for (const word of words) {
    const named = /^([a-z][a-z-]*)[=:](.+)$/i.exec(word);
    const option = named && definitions.find((candidate) => candidate.name === named[1].toLowerCase());
    if (named && option) place(option, named[2]);
    else if (named) {
      throw invalidInput(`There is no option "${named[1]}"; the options are ${definitions.map((candidate) => candidate.name).join(', ')}. Usage: ${usageText}`);
    } else bare.push(word);
  }
  const positional: string[] = [];
  for (const word of bare) {
    const byChoice = definitions.filter((candidate) => candidate.choices?.includes(word));
    if (byChoice.length === 1) place(byChoice[0], word);
    else positional.push(word);
  }
  for (const option of definitions) {
    if (placed.has(option) || positional.length === 0) continue;
    placed.set(option, positional.shift()!);
  }
  if (positional.length > 0) throw invalidInput(`Too many words ("${positional.join(' ')}"). Usage: ${usageText}`);
  const missing = definitions.find((option) => option.required && !placed.has(option));
  if (missing) throw invalidInput(`Missing ${missing.name}. Usage: ${usageText}`);
  return definitions.filter((option) => placed.has(option)).map((option) => ({ option, word: placed.get(option)! }));
}
