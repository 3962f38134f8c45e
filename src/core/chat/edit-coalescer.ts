/**
 * Platforms rate-limit edits of one message (Discord ~5 per 5 s, Slack ~1 per second per channel), while a worker
 * reports every step. The coalescer keeps only the newest pending edit per message, sends at most one every
 * `minIntervalMs`, waits out a rate limit's retry-after, and never lets a late progress edit overwrite a final view.
 */

export interface EditCoalescerOptions {
  minIntervalMs: number;
  /** How long the platform asked us to wait, when `error` is a rate-limit answer. */
  retryAfterMsOf: (error: unknown) => number | undefined;
  onError: (error: unknown, messageKey: string) => void;
  /** Each edit either goes out or is replaced by a newer one before it could (for the edit metrics). */
  onEditOutcome?: (outcome: 'sent' | 'throttled') => void;
}

interface MessageState {
  pending?: () => Promise<void>;
  lastSentAtMs: number;
  flushTimer?: NodeJS.Timeout;
  forgetTimer?: NodeJS.Timeout;
  inFlight: boolean;
  finalScheduled: boolean;
}

export interface EditCoalescer {
  /** Queues `send` as the newest edit of `messageKey`; `final` edits (done, failed, cancelled) are never overwritten. */
  schedule(messageKey: string, send: () => Promise<void>, options?: { final?: boolean }): void;
  close(): void;
}

export function createEditCoalescer(options: EditCoalescerOptions): EditCoalescer {
  const messages = new Map<string, MessageState>();

  const arm = (key: string, state: MessageState, delayMs: number) => {
    state.flushTimer = setTimeout(() => void flush(key, state), Math.max(0, delayMs));
  };

  const becomeIdle = (key: string, state: MessageState) => {
    // Forget the message once its interval has passed, so a long-running bot does not accumulate state.
    state.forgetTimer = setTimeout(() => {
      if (!state.pending && !state.inFlight && messages.get(key) === state) messages.delete(key);
    }, options.minIntervalMs);
  };

  const flush = async (key: string, state: MessageState) => {
    state.flushTimer = undefined;
    const send = state.pending;
    state.pending = undefined;
    if (!send) return becomeIdle(key, state);
    state.inFlight = true;
    let waitMs = options.minIntervalMs;
    try {
      await send();
      options.onEditOutcome?.('sent');
    } catch (error) {
      const retryAfterMs = options.retryAfterMsOf(error);
      if (retryAfterMs === undefined) {
        options.onError(error, key);
      } else {
        state.pending ??= send;
        waitMs = Math.max(waitMs, retryAfterMs);
      }
    }
    state.inFlight = false;
    state.lastSentAtMs = Date.now();
    if (state.pending) arm(key, state, waitMs);
    else becomeIdle(key, state);
  };

  return {
    schedule(messageKey, send, scheduleOptions = {}) {
      let state = messages.get(messageKey);
      if (!state) {
        state = { lastSentAtMs: 0, inFlight: false, finalScheduled: false };
        messages.set(messageKey, state);
      }
      if (state.finalScheduled && !scheduleOptions.final) return;
      state.finalScheduled ||= scheduleOptions.final === true;
      if (state.pending) options.onEditOutcome?.('throttled');
      state.pending = send;
      clearTimeout(state.forgetTimer);
      if (state.inFlight || state.flushTimer) return;
      arm(messageKey, state, state.lastSentAtMs + options.minIntervalMs - Date.now());
    },
    close() {
      for (const state of messages.values()) {
        clearTimeout(state.flushTimer);
        clearTimeout(state.forgetTimer);
      }
      messages.clear();
    },
  };
}
