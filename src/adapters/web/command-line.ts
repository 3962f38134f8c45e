import type { CommandDefinition, OptionValues } from '../../core/chat/commands/command.js';
import { parseCommandText, type UserNames } from '../../core/chat/commands/command-text.js';
import { LOCAL_USER_ID } from './protocol.js';

/** A user is named by the local user id the page shows, with or without an @. */
const WEB_USERS: UserNames = {
  readUserId: (word) => {
    const userId = word.replace(/^@/, '');
    return LOCAL_USER_ID.test(userId) ? userId : null;
  },
  example: 'a local user id like @web-1f2e3d4c…',
};

/** A typed line after its `/name`, parsed as Slack's command text is (src/core/chat/commands/command-text.ts). */
export const parseCommandLine = (definition: CommandDefinition, text: string): { subcommand: string[]; options: OptionValues } =>
  parseCommandText(definition, text, WEB_USERS);
