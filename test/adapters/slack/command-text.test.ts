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

  it('takes /settings options by name or by value, in any order, and names an option that does not exist', () => {
    expect(parseCommandText(definition('settings'), 'relax').options).toEqual({ mode: 'relax' });
    expect(parseCommandText(definition('settings'), 'relax imagine-emoji-64').options).toEqual({ mode: 'relax', model: 'imagine-emoji-64' });
    expect(parseCommandText(definition('settings'), 'mode=fast model:tiny-sd').options).toEqual({ mode: 'fast', model: 'tiny-sd' });
    expect(parseCommandText(definition('settings'), 'imagine-emoji-64 relax').options).toEqual({ model: 'imagine-emoji-64', mode: 'relax' });
    expect(parseCommandText(definition('settings'), 'steps=30 euler relax').options).toEqual({ steps: 30, sampler: 'euler', mode: 'relax' });
    expect(() => parseCommandText(definition('settings'), 'cfg=7')).toThrow('There is no option "cfg"; the options are model, mode, sampler, steps');
    expect(() => parseCommandText(definition('settings'), 'steps=many')).toThrow('steps must be a whole number');
    expect(() => parseCommandText(definition('settings'), 'sampler=fastest')).toThrow('sampler must be one of ddpm, ddim');
    expect(() => parseCommandText(definition('settings'), 'mode=slow')).toThrow('mode must be one of fast, relax');
    expect(() => parseCommandText(definition('settings'), 'relax mode=fast')).toThrow('mode is given twice');
  });

  it('reads yes/no options and refuses extra words', () => {
    expect(parseCommandText(definition('forget-me'), 'yes').options).toEqual({ confirm: true });
    expect(() => parseCommandText(definition('quota'), 'please')).toThrow('Too many words');
  });
});
