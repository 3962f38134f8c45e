import type { Redis } from 'ioredis';
import type { ImagineKeys } from './job.js';

/** Weight of the newest run in the moving average: recent runs dominate after ~10 jobs (a model reload, a new GPU). */
const RUN_TIME_SMOOTHING = 0.2;

const RECORD_RUN_TIME = `
local previous = tonumber(redis.call('GET', KEYS[1]))
local latest = tonumber(ARGV[1])
local average = latest
if previous then average = previous + tonumber(ARGV[2]) * (latest - previous) end
redis.call('SET', KEYS[1], tostring(average))
return tostring(average)`;

export async function recordRunTime(redis: Redis, keys: ImagineKeys, queueName: string, runTimeMs: number): Promise<void> {
  await redis.eval(RECORD_RUN_TIME, 1, keys.runTimeAverage(queueName), runTimeMs, RUN_TIME_SMOOTHING);
}

export async function averageRunTimeMs(redis: Redis, keys: ImagineKeys, queueName: string): Promise<number | undefined> {
  const value = await redis.get(keys.runTimeAverage(queueName));
  return value === null ? undefined : Number(value);
}

/**
 * Time until a waiting job starts: the jobs ahead of it (running ones included) shared among the workers, each taking
 * the average run time. Rough on purpose — it is shown to a person, not scheduled on.
 */
export function estimateWaitMs(jobsAhead: number, workers: number, averageRunMs: number): number {
  return Math.round(Math.ceil(jobsAhead / Math.max(1, workers)) * averageRunMs);
}
