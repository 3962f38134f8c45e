import { parseArgs } from 'node:util';
import { invalidInput } from '../core/errors.js';
import { formatHelp, wantsHelp } from './help.js';
import { registerCommands } from '../adapters/discord/commands.js';
import { slackManifest } from '../adapters/slack/manifest.js';

/**
 * `npm run cli -- register discord [--guild ID]`: bulk-overwrites the bot's slash commands (so running it twice is
 * harmless). Global commands can take up to an hour to appear in Discord; a guild's appear at once.
 */
export const REGISTER_HELP = formatHelp('Usage: npm run cli -- register discord [--guild ID]\nRegisters the slash commands with Discord (DISCORD_TOKEN and DISCORD_APP_ID from the environment).', [
  { name: 'guild', value: 'ID', description: 'Register in this server only (appears at once)', default: 'globally (up to an hour to appear)' },
]);

export async function registerCommand(args: string[]): Promise<number> {
  if (wantsHelp(args)) {
    process.stdout.write(REGISTER_HELP);
    return 0;
  }
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { guild: { type: 'string' } } });
  if (positionals[0] !== 'discord') throw invalidInput('Usage: npm run cli -- register discord [--guild ID]');
  const token = process.env.DISCORD_TOKEN;
  const appId = process.env.DISCORD_APP_ID;
  if (!token || !appId) throw invalidInput('Set DISCORD_TOKEN and DISCORD_APP_ID (from the Discord developer portal) to register commands.');
  const names = await registerCommands(appId, token, values.guild);
  process.stdout.write(`registered ${names.map((name) => `/${name}`).join(', ')}${values.guild ? ` in guild ${values.guild}` : ' globally'}\n`);
  return 0;
}

/** `npm run cli -- slack-manifest [--url https://host]`: the app manifest to paste into api.slack.com (Socket Mode without --url). */
export const SLACK_MANIFEST_HELP = formatHelp('Usage: npm run cli -- slack-manifest [--url URL] [--name NAME]\nPrints the Slack app manifest to paste into api.slack.com.', [
  { name: 'url', value: 'URL', description: 'Where Slack sends HTTP events (https://host)', default: 'Socket Mode, no public URL' },
  { name: 'name', value: 'NAME', description: "The app's name in Slack", default: 'imagine-bot' },
]);

export async function slackManifestCommand(args: string[]): Promise<number> {
  if (wantsHelp(args)) {
    process.stdout.write(SLACK_MANIFEST_HELP);
    return 0;
  }
  const { values } = parseArgs({ args, options: { url: { type: 'string' }, name: { type: 'string' } } });
  process.stdout.write(`${JSON.stringify(slackManifest({ requestBaseUrl: values.url, appName: values.name }), null, 2)}\n`);
  return 0;
}
