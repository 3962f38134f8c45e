import { invalidInput } from '../../errors.js';
import { placeOptionWords, type CommandDefinition, type CommandOptionDefinition, type OptionValues } from './command.js';

/** Commands whose whole text is one option (the prompt keeps its spaces and --flags). */
const WHOLE_TEXT_OPTION: Record<string, string> = { imagine: 'prompt', info: 'target' };

/** How a platform names a user in command text. */
export interface UserNames {
  /** The user id a word names, or null when it names none. */
  readUserId(word: string): string | null;
  /** What to type instead, for the error message: "a mention like @someone". */
  example: string;
}

function usage(name: string, path: string[], options: readonly CommandOptionDefinition[]): string {
  return `/${[name, ...path, ...options.map((option) => (option.required ? `<${option.name}>` : `[${option.name}]`))].join(' ')}`;
}

/**
 * A command's text after its `/name`, as Slack slash commands and the web chat's typed lines carry it: subcommand words
 * first, then options — named (`mode=relax`), by a choice's value (`relax`) or in their defined order — e.g.
 * `/admin quota set @ana 50`. Only how a user is named differs.
 */
export function parseCommandText(definition: CommandDefinition, text: string, users: UserNames): { subcommand: string[]; options: OptionValues } {
  const whole = WHOLE_TEXT_OPTION[definition.name];
  if (whole) return { subcommand: [], options: { [whole]: text.trim() } };
  const words = text.trim().split(/\s+/).filter((word) => word.length > 0);
  const subcommand: string[] = [];
  let level: { subcommands?: CommandDefinition['subcommands']; options?: readonly CommandOptionDefinition[] } = definition;
  while (level.subcommands) {
    const next = level.subcommands.find((candidate) => candidate.name === words[0]);
    if (!next) {
      throw invalidInput(`/${[definition.name, ...subcommand].join(' ')} needs one of: ${level.subcommands.map((candidate) => candidate.name).join(', ')}.`);
    }
    subcommand.push(words.shift()!);
    level = next;
  }
  const definitions = level.options ?? [];
  const usageText = usage(definition.name, subcommand, definitions);
  const options: OptionValues = {};
  for (const { option, word } of placeOptionWords(definitions, words, usageText)) options[option.name] = readWord(option, word, usageText, users);
  return { subcommand, options };
}

function readWord(option: CommandOptionDefinition, word: string, usageText: string, users: UserNames): string | number | boolean {
  switch (option.type) {
    case 'user': {
      const userId = users.readUserId(word);
      if (!userId) throw invalidInput(`${option.name} must be ${users.example}. Usage: ${usageText}`);
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
