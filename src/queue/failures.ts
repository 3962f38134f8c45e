import { isImagineError, type ErrorKind } from '../core/errors.js';

export interface FailureVerdict {
  /** Worth another attempt: the same request may well succeed on a retry. */
  retry: boolean;
  kind: ErrorKind;
  userMessage: string;
}

// ONNX Runtime reports allocation failures as plain Errors; CUDA and CPU allocators word them differently.
const OUT_OF_MEMORY = /out of memory|failed to allocate|bad_alloc|CUDNN_STATUS_ALLOC_FAILED/i;
// ioredis and Node socket errors while Redis restarts or the network blips.
const CONNECTION_LOST = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Connection is closed|Stream isn't writeable|MaxRetriesPerRequest|Command timed out/i;

/** Retry only what is transient; everything else fails at once with a message the user can act on. */
export function classifyFailure(error: unknown): FailureVerdict {
  if (isImagineError(error)) {
    return { retry: error.kind === 'transient', kind: error.kind, userMessage: error.userMessage };
  }
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  if (OUT_OF_MEMORY.test(message)) {
    return { retry: true, kind: 'transient', userMessage: 'The worker ran out of memory on this image; try a smaller size or batch.' };
  }
  if (CONNECTION_LOST.test(message)) {
    return { retry: true, kind: 'transient', userMessage: 'The queue was briefly unavailable; try again shortly.' };
  }
  return { retry: false, kind: 'model_failure', userMessage: 'The model failed on this request.' };
}
