import type { Redis } from 'ioredis';
import type { Requester } from '../core/generation.js';
import { BOOKKEEPING_TTL_SECONDS, type ImagineKeys } from './job.js';

/**
 * Per-user and per-workspace caps on jobs that are waiting or running. Each claim is the BullMQ job's hash key, scored
 * with the time it was claimed. Workers release claims when a job ends; the check also drops any claim whose job is
 * finished or gone (a producer or worker that died before releasing), so a crash can never lock a user out for good.
 */
export interface JobCaps {
  perUser: number;
  perWorkspace: number;
}

export const DEFAULT_JOB_CAPS: JobCaps = { perUser: 3, perWorkspace: 20 };

/** A claim whose job hash does not exist yet counts for this long: the time between the check and the add. */
const CLAIM_GRACE_MS = 60_000;

// KEYS: user claims, workspace claims, queue-of key. ARGV: job key, now ms, user cap, workspace cap, grace ms,
// queue name, ttl seconds. Returns {1} when claimed, {0, count, 'user'|'workspace'} when over a cap.
const CLAIM = `
local function live(key, now, grace)
  local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  local count = 0
  for i = 1, #entries, 2 do
    local member = entries[i]
    local alive
    if redis.call('EXISTS', member) == 1 then
      alive = redis.call('HEXISTS', member, 'finishedOn') == 0
    else
      alive = (now - tonumber(entries[i + 1])) < grace
    end
    if alive then count = count + 1 else redis.call('ZREM', key, member) end
  end
  return count
end
local now = tonumber(ARGV[2])
local already = redis.call('ZSCORE', KEYS[1], ARGV[1])
local users = live(KEYS[1], now, tonumber(ARGV[5]))
local workspace = live(KEYS[2], now, tonumber(ARGV[5]))
if not already then
  if users >= tonumber(ARGV[3]) then return {0, users, 'user'} end
  if workspace >= tonumber(ARGV[4]) then return {0, workspace, 'workspace'} end
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('SET', KEYS[3], ARGV[6], 'EX', ARGV[7])
return {1}`;

export type ClaimVerdict = { claimed: true } | { claimed: false; count: number; cap: 'user' | 'workspace' };

export async function claimJobSlot(
  redis: Redis,
  keys: ImagineKeys,
  claim: { requester: Requester; jobKey: string; generationId: string; queueName: string },
  caps: JobCaps,
): Promise<ClaimVerdict> {
  const reply = (await redis.eval(
    CLAIM,
    3,
    keys.userClaims(claim.requester),
    keys.workspaceClaims(claim.requester),
    keys.queueOf(claim.generationId),
    claim.jobKey,
    Date.now(),
    caps.perUser,
    caps.perWorkspace,
    CLAIM_GRACE_MS,
    claim.queueName,
    BOOKKEEPING_TTL_SECONDS,
  )) as [number, number?, string?];
  if (reply[0] === 1) return { claimed: true };
  return { claimed: false, count: Number(reply[1]), cap: reply[2] === 'workspace' ? 'workspace' : 'user' };
}

export async function releaseJobSlot(redis: Redis, keys: ImagineKeys, requester: Requester, jobKey: string): Promise<void> {
  await redis.multi().zrem(keys.userClaims(requester), jobKey).zrem(keys.workspaceClaims(requester), jobKey).exec();
}
