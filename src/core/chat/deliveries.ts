/**
 * Platforms deliver at least once: Slack retries an event it thinks we missed (same `event_id`, `X-Slack-Retry-Num`
 * 1–3 over about five minutes), and a captured signed Discord request stays valid for its five-minute window. Adapters
 * ask this log before acting, so each delivery makes at most one job. The service keeps it in Redis (shared by every
 * bot replica and surviving a restart); the in-memory log serves a single process and tests.
 */
export interface DeliveryLog {
  /** True the first time `key` is seen within the log's retention, false for every repeat. */
  firstDelivery(key: string): Promise<boolean>;
}

/** Longer than Slack's last retry (about 5 minutes after the first try) and Discord's 5-minute signature window. */
export const DELIVERY_RETENTION_SECONDS = 3600;

export function createMemoryDeliveryLog(retentionMs = DELIVERY_RETENTION_SECONDS * 1000, now: () => number = Date.now): DeliveryLog {
  const seenAtMs = new Map<string, number>();
  return {
    async firstDelivery(key) {
      const nowMs = now();
      // Map iteration is insertion order, so the expired entries are at the front.
      for (const [seenKey, atMs] of seenAtMs) {
        if (nowMs - atMs < retentionMs) break;
        seenAtMs.delete(seenKey);
      }
      if (seenAtMs.has(key)) return false;
      seenAtMs.set(key, nowMs);
      return true;
    },
  };
}
