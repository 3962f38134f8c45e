import { CHAT_COMMANDS } from '../../core/chat/commands/index.js';

export interface SlackManifestOptions {
  appName?: string;
  /** Public base URL for HTTP mode (`https://bot.example.com`); leave out for Socket Mode. */
  requestBaseUrl?: string;
}

const BOT_SCOPES = [
  'commands',
  'chat:write',
  'chat:write.public',
  'files:write',
  'reactions:read',
  'reactions:write',
  'channels:history',
  'groups:history',
  'im:history',
  'im:write',
  'users:read',
];

/** The app manifest (paste into api.slack.com/apps → "From a manifest") for the `slack-manifest` CLI subcommand. */
export function slackManifest(options: SlackManifestOptions = {}): Record<string, unknown> {
  const socketMode = options.requestBaseUrl === undefined;
  const requestUrl = socketMode ? undefined : `${options.requestBaseUrl!.replace(/\/$/, '')}/slack/events`;
  const appName = options.appName ?? 'imagine-bot';
  return {
    display_information: { name: appName, description: 'Text-to-image on your own GPUs: /imagine a prompt.' },
    features: {
      bot_user: { display_name: appName, always_online: true },
      slash_commands: CHAT_COMMANDS.map((command) => ({
        command: `/${command.definition.name}`,
        description: command.definition.description.slice(0, 100),
        should_escape: true,
        ...(requestUrl && { url: requestUrl }),
        ...(command.definition.name === 'imagine' && { usage_hint: 'a red fox in snow --ar 16:9 --seed 42' }),
      })),
    },
    oauth_config: { scopes: { bot: BOT_SCOPES } },
    settings: {
      event_subscriptions: { ...(requestUrl && { request_url: requestUrl }), bot_events: ['reaction_added'] },
      interactivity: { is_enabled: true, ...(requestUrl && { request_url: requestUrl }) },
      org_deploy_enabled: false,
      socket_mode_enabled: socketMode,
      token_rotation_enabled: false,
    },
  };
}
