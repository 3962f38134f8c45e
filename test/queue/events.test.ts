import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { publishEvent, publishTerminalEvent, subscribeEvents, type QueueEvent } from '../../src/queue/events.js';
import { imagineKeys, queueNameForModel } from '../../src/queue/job.js';
import { deletePrefix, sharedRedisUrl, testPrefix } from '../support/redis.js';

let redisUrl: string;
let prefix: string;
let redis: Redis;
const queueName = queueNameForModel('test-model');
const target = { generationId: 'gen-events-1', platform: 'slack' as const, replyTarget: 'C1/1700000000.0001' };

beforeEach(async () => {
  redisUrl = await sharedRedisUrl();
  prefix = testPrefix('events');
  redis = new Redis(redisUrl);
});

afterEach(async () => {
  redis.disconnect();
  await deletePrefix(redisUrl, prefix);
});

async function take(count: number, fromId: string): Promise<QueueEvent[]> {
  const events: QueueEvent[] = [];
  for await (const event of subscribeEvents({ redisUrl, prefix, model: 'test-model', fromId, blockMs: 200, signal: AbortSignal.timeout(10_000) })) {
    events.push(event);
    if (events.length === count) break;
  }
  return events;
}

describe('the event stream', () => {
  it('resumes after the last event id a reader handled, so a restarted chat side misses nothing and repeats nothing', async () => {
    const keys = imagineKeys(prefix);
    for (const step of [1, 2, 3]) await publishEvent(redis, keys, queueName, { type: 'progress', ...target, step, totalSteps: 3 });
    const [first] = await take(1, '0');
    const rest = await take(2, first.id);
    expect(rest.map((event) => event.type === 'progress' && event.step)).toEqual([2, 3]);
  });

  it('delivers events published while the reader is blocked waiting', async () => {
    const reading = take(1, '0');
    await new Promise((resolve) => setTimeout(resolve, 100));
    await publishEvent(redis, imagineKeys(prefix), queueName, { type: 'progress', ...target, step: 1, totalSteps: 2 });
    expect(await reading).toEqual([expect.objectContaining({ type: 'progress', step: 1 })]);
  });

  it('publishes a generation\'s terminal event once, however many workers try', async () => {
    const keys = imagineKeys(prefix);
    const completed = { type: 'completed' as const, ...target, imageKeys: ['a.png'], seeds: [1], timingsMs: {} };
    const published = await Promise.all([1, 2, 3].map(() => publishTerminalEvent(redis, keys, queueName, completed)));
    expect(published.filter(Boolean)).toHaveLength(1);
    expect(await redis.xlen(keys.events(queueName))).toBe(1);
  });
});
