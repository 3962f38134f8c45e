import { pino, type DestinationStream, type Logger } from 'pino';
import type { Config } from './config.js';

export type { Logger } from 'pino';

/** Prompt fields wherever they sit in a log line: top level, under a request or job payload, or one level deeper. */
const PROMPT_PATHS = ['prompt', 'negativePrompt', '*.prompt', '*.negativePrompt', '*.*.prompt', '*.*.negativePrompt'];

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
