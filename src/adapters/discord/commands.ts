import {
  ApplicationCommandOptionType,
  REST,
  Routes,
  type APIApplicationCommandBasicOption,
  type APIApplicationCommandOption,
  type RESTPostAPIChatInputApplicationCommandsJSONBody,
} from 'discord.js';
import type { CommandDefinition, CommandOptionDefinition, SubcommandDefinition } from '../../core/chat/commands/command.js';
import { CHAT_COMMANDS } from '../../core/chat/commands/index.js';

const OPTION_TYPES = {
  string: ApplicationCommandOptionType.String,
  integer: ApplicationCommandOptionType.Integer,
  number: ApplicationCommandOptionType.Number,
  boolean: ApplicationCommandOptionType.Boolean,
  user: ApplicationCommandOptionType.User,
} as const;

function basicOption(option: CommandOptionDefinition): APIApplicationCommandBasicOption {
  return {
    type: OPTION_TYPES[option.type],
    name: option.name,
    description: option.description,
    required: option.required ?? false,
    ...(option.choices && { choices: option.choices.map((choice) => ({ name: choice, value: choice })) }),
    ...(option.minValue !== undefined && { min_value: option.minValue }),
    ...(option.maxValue !== undefined && { max_value: option.maxValue }),
  } as APIApplicationCommandBasicOption;
}

function subcommandOption(subcommand: SubcommandDefinition): APIApplicationCommandOption {
  if (subcommand.subcommands) {
    return {
      type: ApplicationCommandOptionType.SubcommandGroup,
      name: subcommand.name,
      description: subcommand.description,
      options: subcommand.subcommands.map((inner) => ({
        type: ApplicationCommandOptionType.Subcommand,
        name: inner.name,
        description: inner.description,
        options: (inner.options ?? []).map(basicOption),
      })),
    };
  }
  return {
    type: ApplicationCommandOptionType.Subcommand,
    name: subcommand.name,
    description: subcommand.description,
    options: (subcommand.options ?? []).map(basicOption),
  };
}

/** The application command Discord registers for one of our command definitions. */
export function discordCommandData(definition: CommandDefinition): RESTPostAPIChatInputApplicationCommandsJSONBody {
  const options = definition.subcommands ? definition.subcommands.map(subcommandOption) : (definition.options ?? []).map(basicOption);
  return {
    name: definition.name,
    description: definition.description.slice(0, 100),
    options,
    // Admin rights are checked by us on every call; Discord's own gate would hide /admin from configured admin roles.
    dm_permission: definition.name !== 'admin',
  };
}

export interface RegisterOptions {
  /** Discord API base without the version, e.g. 'https://discord.com/api' (the default). */
  apiBaseUrl?: string;
}

/**
 * Replaces the bot's commands in one bulk overwrite: in a guild (instant, for testing) or globally (may take up to an
 * hour to appear). Returns the names Discord accepted.
 */
export async function registerCommands(appId: string, token: string, guildId?: string, options: RegisterOptions = {}): Promise<string[]> {
  const rest = new REST({ version: '10', retries: 0, ...(options.apiBaseUrl && { api: options.apiBaseUrl }) }).setToken(token);
  const route = guildId ? Routes.applicationGuildCommands(appId, guildId) : Routes.applicationCommands(appId);
  const body = CHAT_COMMANDS.map((command) => discordCommandData(command.definition));
  const accepted = (await rest.put(route, { body })) as { name: string }[];
  return accepted.map((command) => command.name);
}
