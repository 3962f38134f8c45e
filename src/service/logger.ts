import { pino, type DestinationStream, type Logger } from 'pino';
import type { Config } from './config.js';

export type { Logger } from 'pino';

/**
 * Prompt fields wherever they sit in a log line: top level, under a request, or inside a generation's `params` (the
 * queue payload is `data.params.prompt`, a job's `job.data.params.prompt`).
 */
const PROMPT_PATHS = ['', '*.', '*.*.', 'params.', '*.params.', '*.*.params.'].flatMap((parent) => [`${parent}prompt`, `${parent}negativePrompt`]);

// Never logged whatever the config says: a token in a log is a token leaked to whoever reads the logs.
const SECRET_PATHS = [
  'token',
  'password',
  '*.token',
  '*.password',
  'headers.authorization',
  '*.headers.authorization',
  'config.discord.token',
  'config.slack.botToken',
  'config.slack.appToken',
  'config.slack.signingSecret',
];

export const REDACTED = '[redacted]';

/**
 * Tokens that travel in URLs: Discord's interaction webhooks and callbacks (`/webhooks/<app>/<token>`,
 * `/interactions/<id>/<token>`) and Slack's response and webhook URLs. Whoever holds one can post as the bot.
 */
const URL_TOKENS = [
  /(\/(?:webhooks|interactions)\/\d+\/)[^/?#\s"']+/g,
  /(hooks\.slack\.com\/(?:actions|commands|services|triggers)\/)[^?#\s"']+/g,
  /(\/respond\/)[^?#\s"']+/g,
];

export const redactUrlTokens = (text: string): string => URL_TOKENS.reduce((scrubbed, pattern) => scrubbed.replace(pattern, `$1${REDACTED}`), text);

/** Every string in a serialized error with URL tokens removed; nested values at most a few levels deep. */
function scrubStrings(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactUrlTokens(value);
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => scrubStrings(item, depth + 1));
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, scrubStrings(item, depth + 1)]));
}

/**
 * pino's error serializer copies every field of an error: @discordjs/rest's errors carry the request they failed on
 * (`requestBody.json` holds the message we tried to post — the prompt — and `requestBody.files` the images) and its URL
 * with the interaction token. The body goes when prompts are redacted (and its files always); tokens always.
 */
function errorSerializer(redactPrompts: boolean) {
  return (error: Error) => {
    const serialized = pino.stdSerializers.err(error) as unknown as Record<string, unknown>;
    if (serialized.requestBody && typeof serialized.requestBody === 'object') {
      const { json } = serialized.requestBody as { json?: unknown };
      serialized.requestBody = redactPrompts ? REDACTED : { json };
    }
    return scrubStrings(serialized);
  };
}

/**
 * The service's root logger: JSON lines on stdout (or `destination`), one object per event, with the process role
 * on every line. Prompts are users' words: when `logRedactPrompts` is on they never reach the log.
 */
export function createLogger(
  config: Pick<Config, 'logLevel' | 'logRedactPrompts' | 'role'>,
  destination?: DestinationStream,
): Logger {
  const paths = config.logRedactPrompts ? [...SECRET_PATHS, ...PROMPT_PATHS] : SECRET_PATHS;
  return pino(
    {
      level: config.logLevel,
      base: { role: config.role },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths, censor: REDACTED },
      serializers: { err: errorSerializer(config.logRedactPrompts) },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

export interface GenerationLogContext {
  generationId: string;
  /** `platform:userId`, enough to find a user's jobs without logging their display name. */
  user: string;
  workspace: string;
}

/** A logger whose every line says which generation, user and workspace it is about. */
export function generationLogger(logger: Logger, context: GenerationLogContext): Logger {
  return logger.child({ generationId: context.generationId, user: context.user, workspace: context.workspace });
}
