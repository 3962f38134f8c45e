import { describe, expect, it } from 'vitest';
import { parseCommandLine } from '../../../src/adapters/web/command-line.js';
import { findCommand } from '../../../src/core/chat/commands/index.js';

const definitionOf = (name: string) => findCommand(name)!.definition;

describe('parseCommandLine', () => {
  it('keeps the whole /imagine line, flags and all, as the prompt', () => {
    expect(parseCommandLine(definitionOf('imagine'), '  a fox --ar 1:1 --no trees ')).toEqual({ subcommand: [], options: { prompt: 'a fox --ar 1:1 --no trees' } });
  });

  it('reads subcommand words, then options in their defined order, with a local user id for a user', () => {
    expect(parseCommandLine(definitionOf('admin'), 'quota set @web-0123456789abcdef 50')).toEqual({
      subcommand: ['quota', 'set'],
      options: { user: 'web-0123456789abcdef', units: 50 },
    });
  });

  it('reads a whole number for an integer option', () => {
    expect(parseCommandLine(definitionOf('history'), '5')).toEqual({ subcommand: [], options: { count: 5 } });
    expect(() => parseCommandLine(definitionOf('history'), 'five')).toThrow('count must be a whole number. Usage: /history [count]');
  });

  it('names the subcommands when one is missing', () => {
    expect(() => parseCommandLine(definitionOf('admin'), 'quota')).toThrow('/admin quota needs one of: set, grant, reset.');
  });

  it('refuses a user that is not a local user id, and words left over', () => {
    expect(() => parseCommandLine(definitionOf('admin'), 'ban @x')).toThrow('user must be a local user id');
    expect(() => parseCommandLine(definitionOf('quota'), 'now please')).toThrow('Too many words ("now please"). Usage: /quota');
  });

  it('refuses a value outside an option’s choices', () => {
    expect(() => parseCommandLine(definitionOf('settings'), 'emoji-tiny slow')).toThrow('mode must be one of fast, relax.');
  });
});
