import type { CommandDefinition, CommandOptionDefinition, OptionValues } from '../../core/chat/commands/command.js';
import { invalidInput } from '../../core/errors.js';
import { LOCAL_USER_ID } from './protocol.js';

/** Commands whose whole text is one option (the prompt keeps its spaces and --flags). */
const WHOLE_TEXT_OPTION: Record<string, string> = { imagine: 'prompt', info: 'target' };


const usage = (name: string, path: string[], options: readonly CommandOptionDefinition[]) =>
  `/${[name, ...path, ...options.map((option) => (option.required ? `<${option.name}>` : `[${option.name}]`))].join(' ')}`;

/**
 * A typed line after its `/name`: subcommand words first, then options in their defined order, as on Slack
 * (`/admin quota grant @web-1f2e… 5`). A user is named by the local user id the page shows, with or without an @.
 */
export function parseCommandLine(definition: CommandDefinition, text: string): { subcommand: string[]; options: OptionValues } {
  const whole = WHOLE_TEXT_OPTION[definition.name];
  if (whole) return { subcommand: [], options: { [whole]: text.trim() } };
  const words = text.trim().split(/\s+/).filter((word) => word.length > 0);
  const subcommand: string[] = [];
  let level: { subcommands?: CommandDefinition['subcommands']; options?: readonly CommandOptionDefinition[] } = definition;
  while (level.subcommands) {
    const next = level.subcommands.find((candidate) => candidate.name === words[0]);
    if (!next) throw invalidInput(`/${[definition.name, ...subcommand].join(' ')} needs one of: ${level.subcommands.map((candidate) => candidate.name).join(', ')}.`);
    subcommand.push(words.shift()!);
    level = next;
  }
  const definitions = level.options ?? [];
  const usageText = usage(definition.name, subcommand, definitions);
  const options: OptionValues = {};
  for (const option of definitions) {
    const word = words.shift();
    if (word === undefined) {
      if (option.required) throw invalidInput(`Missing ${option.name}. Usage: ${usageText}`);
      continue;
    }
    options[option.name] = readWord(option, word, usageText);
  }
  if (words.length > 0) throw invalidInput(`Too many words ("${words.join(' ')}"). Usage: ${usageText}`);
  return { subcommand, options };
}

function readWord(option: CommandOptionDefinition, word: string, usageText: string): string | number | boolean {
  switch (option.type) {
    case 'user': {
      const userId = word.replace(/^@/, '');
      if (!LOCAL_USER_ID.test(userId)) throw invalidInput(`${option.name} must be a local user id like @web-1f2e3d4c…. Usage: ${usageText}`);
      return userId;
    }
    case 'integer':
    case 'number': {
      const value = Number(word);
      if (!Number.isFinite(value) || (option.type === 'integer' && !Number.isInteger(value))) {
        throw invalidInput(`${option.name} must be a ${option.type === 'integer' ? 'whole number' : 'number'}. Usage: ${usageText}`);
      }
      return value;
    }
    case 'boolean':
      if (/^(yes|true|confirm)$/i.test(word)) return true;
      if (/^(no|false)$/i.test(word)) return false;
      throw invalidInput(`${option.name} must be yes or no. Usage: ${usageText}`);
    case 'string':
      if (option.choices && !option.choices.includes(word)) throw invalidInput(`${option.name} must be one of ${option.choices.join(', ')}.`);
      return word;
  }
}
