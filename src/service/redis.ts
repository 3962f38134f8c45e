import type { RedisOptions } from 'ioredis';

/**
 * The three ways this service talks to Redis. Producers (the chat side) must fail fast so a user hears "try again"
 * instead of waiting on a dead socket; workers and event readers must wait out an outage and carry on by themselves.
 */
export type RedisRole = 'producer' | 'worker' | 'subscriber';

const RECONNECT_MAX_DELAY_MS = 2_000;

export function redisOptions(url: string, role: RedisRole): RedisOptions {
  const parsed = new URL(url);
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new Error(`REDIS_URL must start with redis:// or rediss://, got ${parsed.protocol}`);
  }
  const base: RedisOptions = {
    host: parsed.hostname || '127.0.0.1',
    port: parsed.port ? Number(parsed.port) : 6379,
    username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
    password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
    db: parsed.pathname.length > 1 ? Number(parsed.pathname.slice(1)) : 0,
    tls: parsed.protocol === 'rediss:' ? {} : undefined,
    // Keep reconnecting forever, backing off to a couple of seconds: Redis coming back must need no restart of ours.
    retryStrategy: (attempt) => Math.min(100 * 2 ** attempt, RECONNECT_MAX_DELAY_MS),
  };
  if (role === 'producer') {
    return { ...base, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2_000, commandTimeout: 5_000 };
  }
  // BullMQ requires maxRetriesPerRequest: null for workers and blocking reads, so commands wait for the reconnect.
  return { ...base, maxRetriesPerRequest: null };
}
