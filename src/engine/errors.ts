/**
 * The engine's own error type: a library error with a kind (what the caller should do about it) and a message written
 * for the person who asked for the picture, saying what to change. The engine imports nothing from the application;
 * src/core treats these as its own errors (their kinds are a subset of core's).
 */
export const ENGINE_ERROR_KINDS = ['invalid_input', 'model_failure', 'cancelled', 'transient'] as const;
export type EngineErrorKind = (typeof ENGINE_ERROR_KINDS)[number];

export class EngineError extends Error {
  override readonly name = 'EngineError';

  constructor(
    readonly kind: EngineErrorKind,
    readonly userMessage: string,
    readonly details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(userMessage, options);
  }
}

export const invalidInput = (message: string, details?: Record<string, unknown>) => new EngineError('invalid_input', message, details);

export const modelFailure = (message: string, details?: Record<string, unknown>, cause?: unknown) =>
  new EngineError('model_failure', message, details, { cause });

export const isEngineError = (error: unknown): error is EngineError => error instanceof EngineError;
