import { Redis } from 'ioredis';
import { ImagineError } from '../../src/core/errors.js';
import type { FinishedStatus, GenerationHistory, GenerationStatus, QuotaLedger } from '../../src/core/ports.js';

/**
 * QuotaLedger and GenerationHistory kept in Redis, so a producer in the test and workers in child processes share them.
 * Stand-ins for the Prisma store with the same contract: idempotent by generationId, one conditional step per change.
 */
export interface RecordingPorts {
  ledger: QuotaLedger;
  history: GenerationHistory;
  ledgerState(generationId: string): Promise<string | null>;
  historyStatus(generationId: string): Promise<GenerationStatus | null>;
  /** Commits and refunds that changed a reservation (an idempotent repeat does not count). */
  commitCount(generationId: string): Promise<number>;
  refundCount(generationId: string): Promise<number>;
  close(): void;
}

// KEYS: the record, its counter. ARGV: field, new state, states it may change from (comma-separated), counter field.
const TRANSITION = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
for state in string.gmatch(ARGV[3], '[^,]+') do
  if current == state then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
    redis.call('HINCRBY', KEYS[2], ARGV[4], 1)
    return 1
  end
end
return 0`;

export function createRedisPorts(url: string, prefix: string, options: { quotaUnits?: number } = {}): RecordingPorts {
  const redis = new Redis(url);
  const record = (id: string) => `${prefix}:records:${id}`;
  const counters = (id: string) => `${prefix}:counters:${id}`;
  const transition = async (id: string, field: string, to: string, from: string[], counter: string) =>
    (await redis.eval(TRANSITION, 2, record(id), counters(id), field, to, from.join(','), counter)) === 1;

  const ledger: QuotaLedger = {
    async reserve(request, units) {
      if (units > (options.quotaUnits ?? 1_000)) throw new ImagineError('quota_exceeded', 'You are out of quota.');
      await redis.hsetnx(record(request.generationId), 'ledger', 'reserved');
      return { generationId: request.generationId, units };
    },
    async commit(generationId) {
      await transition(generationId, 'ledger', 'committed', ['reserved'], 'commits');
    },
    async refund(generationId) {
      await transition(generationId, 'ledger', 'refunded', ['reserved'], 'refunds');
    },
  };

  const history: GenerationHistory = {
    async recordQueued(request) {
      await redis.hsetnx(record(request.generationId), 'status', 'queued');
    },
    async markRunning(generationId) {
      await transition(generationId, 'status', 'running', ['queued', 'running'], 'runs');
    },
    async markSucceeded(result) {
      await transition(result.generationId, 'status', 'succeeded', ['queued', 'running'], 'successes');
      return (await redis.hget(record(result.generationId), 'status')) as FinishedStatus | null;
    },
    async markFailed(generationId, status) {
      await transition(generationId, 'status', status, ['queued', 'running'], 'failures');
      return (await redis.hget(record(generationId), 'status')) as FinishedStatus | null;
    },
  };

  return {
    ledger,
    history,
    ledgerState: (id) => redis.hget(record(id), 'ledger'),
    historyStatus: async (id) => (await redis.hget(record(id), 'status')) as GenerationStatus | null,
    commitCount: async (id) => Number((await redis.hget(counters(id), 'commits')) ?? 0),
    refundCount: async (id) => Number((await redis.hget(counters(id), 'refunds')) ?? 0),
    close: () => redis.disconnect(),
  };
}
