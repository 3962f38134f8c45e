import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { ImagineError } from '../core/errors.js';
import type { RateLimiter } from '../core/safety.js';

const WINDOW_SECONDS = 60;

/**
 * The core RateLimiter port over rate-limiter-flexible's Redis store: one counter per key with a one-minute expiry,
 * shared by every bot replica that uses the same Redis and key prefix.
 */
export function createRedisRateLimiter(options: { redis: Redis; keyPrefix: string; commandsPerMinute: number }): RateLimiter {
  const limiter = new RateLimiterRedis({
    storeClient: options.redis,
    keyPrefix: options.keyPrefix,
    points: options.commandsPerMinute,
    duration: WINDOW_SECONDS,
  });
  return {
    commandsPerMinute: options.commandsPerMinute,
    async consume(key) {
      try {
        await limiter.consume(key);
        return { allowed: true };
      } catch (outcome) {
        // The library rejects with a RateLimiterRes when the limit is reached and with an Error when Redis fails.
        if (outcome instanceof RateLimiterRes) return { allowed: false, retryAfterMs: outcome.msBeforeNext };
        throw new ImagineError('transient', 'The bot cannot reach its queue right now; please try again in a moment.', {}, { cause: outcome });
      }
    },
  };
}
