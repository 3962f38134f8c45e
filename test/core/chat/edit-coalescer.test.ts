import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createEditCoalescer } from '../../../src/core/chat/edit-coalescer.js';

class RateLimited extends Error {
  constructor(readonly retryAfterMs: number) {
    super('rate limited');
  }
}

describe('edit coalescer', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  const make = (errors: unknown[] = []) =>
    createEditCoalescer({
      minIntervalMs: 1500,
      retryAfterMsOf: (error) => (error instanceof RateLimited ? error.retryAfterMs : undefined),
      onError: (error) => errors.push(error),
    });

  it('sends the first edit at once and then at most one per interval, keeping only the newest', async () => {
    const coalescer = make();
    const sent: string[] = [];
    const edit = (text: string) => async () => void sent.push(text);
    coalescer.schedule('m1', edit('step 1'));
    await vi.advanceTimersByTimeAsync(0);
    coalescer.schedule('m1', edit('step 2'));
    coalescer.schedule('m1', edit('step 3'));
    await vi.advanceTimersByTimeAsync(1499);
    expect(sent).toEqual(['step 1']);
    await vi.advanceTimersByTimeAsync(1);
    expect(sent).toEqual(['step 1', 'step 3']);
    coalescer.close();
  });

  it('reports each edit as sent or as replaced by a newer one before it went out', async () => {
    const outcomes: string[] = [];
    const coalescer = createEditCoalescer({ minIntervalMs: 1500, retryAfterMsOf: () => undefined, onError: () => {}, onEditOutcome: (outcome) => outcomes.push(outcome) });
    coalescer.schedule('m1', async () => {});
    await vi.advanceTimersByTimeAsync(0);
    coalescer.schedule('m1', async () => {});
    coalescer.schedule('m1', async () => {});
    await vi.advanceTimersByTimeAsync(1500);
    expect(outcomes).toEqual(['sent', 'throttled', 'sent']);
    coalescer.close();
  });

  it('throttles each message on its own', async () => {
    const coalescer = make();
    const sent: string[] = [];
    coalescer.schedule('m1', async () => void sent.push('m1'));
    coalescer.schedule('m2', async () => void sent.push('m2'));
    await vi.advanceTimersByTimeAsync(0);
    expect(sent).toEqual(['m1', 'm2']);
    coalescer.close();
  });

  it('never lets a late progress edit replace the final view', async () => {
    const coalescer = make();
    const sent: string[] = [];
    coalescer.schedule('m1', async () => void sent.push('done'), { final: true });
    coalescer.schedule('m1', async () => void sent.push('step 9'));
    await vi.advanceTimersByTimeAsync(5000);
    expect(sent).toEqual(['done']);
    coalescer.close();
  });

  it('waits out the retry-after of a rate limit and then sends the newest edit', async () => {
    const coalescer = make();
    const sent: string[] = [];
    let limited = true;
    coalescer.schedule('m1', async () => {
      if (limited) {
        limited = false;
        throw new RateLimited(4000);
      }
      sent.push('first');
    });
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(3999);
    expect(sent).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(sent).toEqual(['first']);
    coalescer.close();
  });

  it('reports other failures and goes on with later edits', async () => {
    const errors: unknown[] = [];
    const coalescer = make(errors);
    const sent: string[] = [];
    coalescer.schedule('m1', async () => {
      throw new Error('boom');
    });
    await vi.advanceTimersByTimeAsync(0);
    coalescer.schedule('m1', async () => void sent.push('next'));
    await vi.advanceTimersByTimeAsync(1500);
    expect(errors).toHaveLength(1);
    expect(sent).toEqual(['next']);
    coalescer.close();
  });
});
