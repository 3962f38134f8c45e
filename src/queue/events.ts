import { Redis } from 'ioredis';
import { z } from 'zod';
import { PLATFORMS } from '../core/generation.js';
import { redisOptions } from '../service/redis.js';
import { BOOKKEEPING_TTL_SECONDS, imagineKeys, queueNameForModel, type ImagineKeys } from './job.js';

/**
 * What workers tell the chat side, on one Redis Stream per queue. A reader keeps the id of the last event it handled and
 * resumes from it after a restart: nothing is polled and nothing in between is lost (up to the stream's length cap).
 */
const EventBase = z.object({
  generationId: z.string(),
  /** The requester's platform and the adapter's opaque `replyTarget`: which adapter renders the event, and where. */
  platform: z.enum(PLATFORMS),
  replyTarget: z.string(),
});

export const QueueEventBody = z.discriminatedUnion('type', [
  EventBase.extend({
    type: z.literal('progress'),
    step: z.number().int(),
    totalSteps: z.number().int(),
    previewKey: z.string().optional(),
  }),
  EventBase.extend({
    type: z.literal('completed'),
    imageKeys: z.array(z.string()),
    gridKey: z.string().optional(),
    seeds: z.array(z.number()),
    timingsMs: z.record(z.string(), z.number()),
    warnings: z.array(z.string()).optional(),
  }),
  EventBase.extend({ type: z.literal('failed'), errorKind: z.string(), userMessage: z.string() }),
  EventBase.extend({ type: z.literal('cancelled'), userMessage: z.string() }),
]);
export type QueueEventBody = z.infer<typeof QueueEventBody>;
/** An event as read back, with its stream id (pass it as `fromId` to resume after it). */
export type QueueEvent = QueueEventBody & { id: string };

/** Streams are capped near this many entries (XADD MAXLEN ~), enough for a reader down for a while to catch up. */
export const EVENT_STREAM_MAX_LENGTH = 10_000;

export async function publishEvent(redis: Redis, keys: ImagineKeys, queueName: string, event: QueueEventBody): Promise<string> {
  const id = await redis.xadd(keys.events(queueName), 'MAXLEN', '~', EVENT_STREAM_MAX_LENGTH, '*', 'event', JSON.stringify(event));
  return id ?? '';
}

// Claims the generation's single terminal event and appends it in one step, so two workers finishing the same job (a
// stalled job picked up again while the first still ran) cannot both post a result.
const PUBLISH_TERMINAL_ONCE = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[4])
end
return false`;

/** Publishes completed / failed / cancelled at most once per generation; returns whether this call published it. */
export async function publishTerminalEvent(
  redis: Redis,
  keys: ImagineKeys,
  queueName: string,
  event: Exclude<QueueEventBody, { type: 'progress' }>,
): Promise<boolean> {
  const id = await redis.eval(
    PUBLISH_TERMINAL_ONCE,
    2,
    keys.terminalEvent(event.generationId),
    keys.events(queueName),
    event.type,
    BOOKKEEPING_TTL_SECONDS,
    EVENT_STREAM_MAX_LENGTH,
    JSON.stringify(event),
  );
  return id !== null;
}

export interface SubscribeEventsOptions {
  /** The subscription opens its own connection: XREAD BLOCK holds it. */
  redisUrl: string;
  prefix: string;
  model: string;
  /** Resume after this stream id; '0' reads the whole stream, '$' (default) only what comes next. */
  fromId?: string;
  signal?: AbortSignal;
  blockMs?: number;
}

/**
 * Yields the queue's events in order, forever, until `signal` aborts. Survives Redis restarts: the connection retries
 * by itself and reading resumes from the last id yielded.
 */
export async function* subscribeEvents(options: SubscribeEventsOptions): AsyncGenerator<QueueEvent> {
  const keys = imagineKeys(options.prefix);
  const stream = keys.events(queueNameForModel(options.model));
  const redis = new Redis(redisOptions(options.redisUrl, 'subscriber'));
  redis.on('error', () => {});
  const stop = () => redis.disconnect();
  options.signal?.addEventListener('abort', stop, { once: true });
  let lastId = options.fromId ?? '$';
  try {
    if (lastId === '$') {
      // Pin '$' to a concrete id now, so events published between two reads are not skipped.
      const latest = await redis.xrevrange(stream, '+', '-', 'COUNT', 1);
      lastId = latest[0]?.[0] ?? '0';
    }
    while (!options.signal?.aborted) {
      let reply: [string, [string, string[]][]][] | null;
      try {
        reply = (await redis.xread('COUNT', 100, 'BLOCK', options.blockMs ?? 5_000, 'STREAMS', stream, lastId)) as typeof reply;
      } catch {
        if (options.signal?.aborted) return;
        // Connection lost mid-read: ioredis reconnects by itself; read again from lastId once it is back.
        await new Promise((resolve) => setTimeout(resolve, 200));
        continue;
      }
      for (const [, entries] of reply ?? []) {
        for (const [id, fields] of entries) {
          lastId = id;
          const parsed = QueueEventBody.safeParse(parseJson(fields[fields.indexOf('event') + 1]));
          // An entry this version cannot read (written by a newer worker) is skipped, not fatal to the reader.
          if (parsed.success) yield { ...parsed.data, id };
        }
      }
    }
  } finally {
    options.signal?.removeEventListener('abort', stop);
    redis.disconnect();
  }
}

function parseJson(text: string | undefined): unknown {
  try {
    return JSON.parse(text ?? 'null');
  } catch {
    return null;
  }
}
