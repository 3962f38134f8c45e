import { isEngineError } from '../engine/errors.js';

/**
 * Errors are values: every failure a user can cause or see carries a kind (what the caller should do about it) and a
 * message written for the person who typed the command. Adapters render `userMessage`; workers retry only `transient`.
 */
export type ErrorKind =
  | 'invalid_input'
  | 'quota_exceeded'
  | 'busy'
  | 'forbidden'
  | 'not_found'
  | 'model_failure'
  | 'cancelled'
  | 'transient';

export class ImagineError extends Error {
  override readonly name: string = 'ImagineError';

  constructor(
    readonly kind: ErrorKind,
    readonly userMessage: string,
    readonly details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(userMessage, options);
  }
}

export const invalidInput = (message: string, details?: Record<string, unknown>) =>
  new ImagineError('invalid_input', message, details);

export const modelFailure = (message: string, details?: Record<string, unknown>, cause?: unknown) =>
  new ImagineError('model_failure', message, details, { cause });

/**
 * Core's own errors, and the engine's (src/engine/errors.ts): the engine is a library with its own error type, of the
 * same shape and a subset of these kinds, so whatever renders or classifies an ImagineError handles it as one.
 */
export const isImagineError = (error: unknown): error is ImagineError => error instanceof ImagineError || isEngineError(error);
