import type { Redis } from 'ioredis';
import { DELIVERY_RETENTION_SECONDS, type DeliveryLog } from '../core/chat/deliveries.js';

/**
 * The delivery log in Redis: one `SET key 1 NX EX` per delivery, so replicas of the bot and a restarted bot agree on
 * what was already handled. If Redis cannot answer, the delivery is handled: the queue lives in the same Redis, so a
 * repeat handled then is refused at submit rather than run twice.
 */
export function createRedisDeliveryLog(redis: Redis, keyPrefix: string, retentionSeconds = DELIVERY_RETENTION_SECONDS): DeliveryLog {
  return {
    async firstDelivery(key) {
      const stored = await redis.set(`${keyPrefix}:${key}`, '1', 'EX', retentionSeconds, 'NX').catch(() => 'OK' as const);
      return stored === 'OK';
    },
  };
}
