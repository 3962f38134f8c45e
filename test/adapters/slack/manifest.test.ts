import { describe, expect, it } from 'vitest';
import { slackManifest } from '../../../src/adapters/slack/manifest.js';

describe('slackManifest', () => {
  it('declares every command, the reaction event, interactivity and the scopes the bot uses, for Socket Mode', () => {
    const manifest = slackManifest() as any;
    expect(manifest.features.slash_commands.map((command: any) => command.command)).toEqual([
      '/imagine',
      '/blend',
      '/quota',
      '/history',
      '/info',
      '/cancel',
      '/settings',
      '/forget-me',
      '/admin',
    ]);
    expect(manifest.settings).toMatchObject({ socket_mode_enabled: true, interactivity: { is_enabled: true }, event_subscriptions: { bot_events: ['reaction_added'] } });
    expect(manifest.oauth_config.scopes.bot).toEqual(expect.arrayContaining(['commands', 'chat:write', 'files:write', 'reactions:read', 'reactions:write', 'users:read', 'channels:history']));
    expect(manifest.features.slash_commands.every((command: any) => command.description.length <= 100)).toBe(true);
  });

  it('points commands, events and interactivity at /slack/events in HTTP mode', () => {
    const manifest = slackManifest({ requestBaseUrl: 'https://bot.example.com/' }) as any;
    expect(manifest.settings.socket_mode_enabled).toBe(false);
    expect(manifest.settings.event_subscriptions.request_url).toBe('https://bot.example.com/slack/events');
    expect(manifest.features.slash_commands[0].url).toBe('https://bot.example.com/slack/events');
  });
});
