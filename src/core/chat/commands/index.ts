import { ImagineError, isImagineError } from '../../errors.js';
import { errorView, type ChatView } from '../views.js';
import { adminCommand } from './admin.js';
import { blendCommand } from './blend.js';
import { cancelCommand } from './cancel.js';
import type { ChatCommand, CommandContext } from './command.js';
import { forgetMeCommand } from './forget-me.js';
import { historyCommand } from './history.js';
import { imagineCommand } from './imagine.js';
import { infoCommand } from './info.js';
import { quotaCommand } from './quota.js';
import { settingsCommand } from './settings.js';

export const CHAT_COMMANDS: readonly ChatCommand[] = [
  imagineCommand,
  blendCommand,
  quotaCommand,
  historyCommand,
  infoCommand,
  cancelCommand,
  settingsCommand,
  forgetMeCommand,
  adminCommand,
];

export const findCommand = (name: string): ChatCommand | undefined => CHAT_COMMANDS.find((command) => command.definition.name === name);

/** Runs a command with the admin gate applied; every ImagineError becomes a private error view. */
export async function runCommand(command: ChatCommand, context: CommandContext): Promise<ChatView> {
  try {
    if (command.definition.adminOnly && !context.requester.isAdmin) {
      throw new ImagineError('forbidden', `Only admins can use /${command.definition.name}.`);
    }
    return await command.handle(context);
  } catch (error) {
    if (isImagineError(error)) return errorView(error);
    throw error;
  }
}
