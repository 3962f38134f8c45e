import type { CommandDefinition, OptionValues } from '../../core/chat/commands/command.js';
import { parseCommandText as parseText, type UserNames } from '../../core/chat/commands/command-text.js';

// Slack escapes a mention as <@U123> or <@U123|name>.
const MENTION = /^<@([A-Z0-9]+)(?:\|[^>]*)?>$/;

const SLACK_USERS: UserNames = { readUserId: (word) => MENTION.exec(word)?.[1] ?? null, example: 'a mention like @someone' };

/** Slack slash commands carry only text; core parses it (src/core/chat/commands/command-text.ts). */
export const parseCommandText = (definition: CommandDefinition, text: string): { subcommand: string[]; options: OptionValues } =>
  parseText(definition, text, SLACK_USERS);
