import { describe, expect, it } from 'vitest';
import { parseCommandText } from '../../../src/adapters/slack/command-text.js';
import { findCommand } from '../../../src/core/chat/commands/index.js';

const definition = (name: string) => findCommand(name)!.definition;

describe('Slack command text', () => {
  it('gives /imagine its whole text as the prompt, flags included', () => {
    expect(parseCommandText(definition('imagine'), ' a fox  --ar 16:9 ')).toEqual({ subcommand: [], options: { prompt: 'a fox  --ar 16:9' } });
  });

  it('reads subcommands, then mentions and numbers in option order', () => {
    expect(parseCommandText(definition('admin'), 'quota set <@U123|ana> 40')).toEqual({
      subcommand: ['quota', 'set'],
      options: { user: 'U123', units: 40 },
    });
  });

  it('names the subcommands when one is missing', () => {
    expect(() => parseCommandText(definition('admin'), 'quota')).toThrow('/admin quota needs one of: set, grant, reset.');
  });

  it('shows the usage when a required option is missing or malformed', () => {
    expect(() => parseCommandText(definition('admin'), 'ban')).toThrow('Missing user. Usage: /admin ban <user>');
    expect(() => parseCommandText(definition('admin'), 'quota grant ana 4')).toThrow('user must be a mention');
    expect(() => parseCommandText(definition('admin'), 'quota grant <@U1> many')).toThrow('units must be a whole number');
  });

  it('reads yes/no options and refuses extra words', () => {
    expect(parseCommandText(definition('forget-me'), 'yes').options).toEqual({ confirm: true });
    expect(() => parseCommandText(definition('quota'), 'please')).toThrow('Too many words');
  });
});
