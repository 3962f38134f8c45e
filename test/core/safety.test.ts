import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImagineError } from '../../src/core/errors.js';
import { GenerationRequest } from '../../src/core/generation.js';
import { findBlockedTerm, withSafety, type SafetyPolicy } from '../../src/core/safety.js';
import { createRedisRateLimiter } from '../../src/service/rate-limit.js';
import { imagineRequest } from '../support/generation-requests.js';
import { RecordingImagineService } from '../support/recording-imagine-service.js';
import { deletePrefix, sharedRedisUrl, testPrefix } from '../support/redis.js';

describe('prompt blocklist', () => {
  const blocklist = ['gore', 'Blood Bath', 'c++'];

  it('finds a blocked word whatever its case', () => {
    expect(findBlockedTerm('A GORE scene', blocklist)).toBe('gore');
  });

  it('matches whole words only, so a longer word that contains the term passes', () => {
    expect(findBlockedTerm('a gorey mess and a gorgeous Igor', blocklist)).toBeUndefined();
  });

  it('matches a phrase across any whitespace and next to punctuation', () => {
    expect(findBlockedTerm('after the blood\n  bath, rain', blocklist)).toBe('Blood Bath');
  });

  it('treats regular-expression characters in a term literally', () => {
    expect(findBlockedTerm('learning c++ today', blocklist)).toBe('c++');
    expect(findBlockedTerm('learning cpp today', blocklist)).toBeUndefined();
  });

  it('ignores empty terms', () => {
    expect(findBlockedTerm('anything', ['', '  '])).toBeUndefined();
  });
});

describe('safety in front of the ImagineService (real Redis)', () => {
  let redisUrl: string;
  let redis: Redis;
  const prefixes: string[] = [];

  beforeAll(async () => {
    redisUrl = await sharedRedisUrl();
    redis = new Redis(redisUrl);
  });
  afterAll(async () => {
    for (const prefix of prefixes) await deletePrefix(redisUrl, prefix);
    redis.disconnect();
  });

  const guardedService = (limits: { user: number; workspace: number }, blocklist: string[] = []) => {
    const prefix = testPrefix('safety');
    prefixes.push(prefix);
    const inner = new RecordingImagineService();
    const policy: SafetyPolicy = {
      blocklist,
      perUser: createRedisRateLimiter({ redis, keyPrefix: `${prefix}:rate-user`, commandsPerMinute: limits.user }),
      perWorkspace: createRedisRateLimiter({ redis, keyPrefix: `${prefix}:rate-workspace`, commandsPerMinute: limits.workspace }),
    };
    return { inner, service: withSafety(inner, policy) };
  };
  const request = (overrides: Parameters<typeof imagineRequest>[0] = {}) => GenerationRequest.parse(imagineRequest(overrides));

  it('refuses a blocked prompt as invalid input naming the term, and queues nothing', async () => {
    const { inner, service } = guardedService({ user: 10, workspace: 10 }, ['gore']);
    const refusal = await service.submit(request({ prompt: 'lots of Gore please' })).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(ImagineError);
    expect((refusal as ImagineError).kind).toBe('invalid_input');
    expect((refusal as ImagineError).userMessage).toContain('"gore"');
    expect(inner.submitted).toHaveLength(0);
  });

  it('passes an allowed prompt through to the service', async () => {
    const { inner, service } = guardedService({ user: 10, workspace: 10 }, ['gore']);
    await expect(service.submit(request({ prompt: 'a gorgeous sunset' }))).resolves.toEqual(inner.placement);
    expect(inner.submitted).toHaveLength(1);
  });

  it('tells a user over their per-minute limit to slow down, with the limit and the wait', async () => {
    const { inner, service } = guardedService({ user: 2, workspace: 100 });
    await service.submit(request());
    await service.submit(request());
    const refusal = (await service.submit(request()).catch((error: unknown) => error)) as ImagineError;
    expect(refusal).toBeInstanceOf(ImagineError);
    expect(refusal.kind).toBe('busy');
    expect(refusal.userMessage).toMatch(/^slow down: you can run 2 commands a minute; try again in \d+ s$/);
    const seconds = Number(/in (\d+) s/.exec(refusal.userMessage)![1]);
    expect(seconds).toBeGreaterThanOrEqual(1);
    expect(seconds).toBeLessThanOrEqual(60);
    expect(inner.submitted).toHaveLength(2);
  });

  it('limits each user separately', async () => {
    const { inner, service } = guardedService({ user: 1, workspace: 100 });
    await service.submit(request({ userId: 'alice' }));
    await expect(service.submit(request({ userId: 'alice' }))).rejects.toMatchObject({ kind: 'busy' });
    await expect(service.submit(request({ userId: 'bob' }))).resolves.toBeDefined();
    expect(inner.submitted.map((submitted) => submitted.requester.userId)).toEqual(['alice', 'bob']);
  });

  it('limits a whole workspace across its users', async () => {
    const { service } = guardedService({ user: 100, workspace: 2 });
    await service.submit(request({ userId: 'alice' }));
    await service.submit(request({ userId: 'bob' }));
    const refusal = (await service.submit(request({ userId: 'carol' })).catch((error: unknown) => error)) as ImagineError;
    expect(refusal.kind).toBe('busy');
    expect(refusal.userMessage).toMatch(/^slow down: this workspace can run 2 commands a minute; try again in \d+ s$/);
  });

  it('does not spend the workspace allowance on a user who is already limited', async () => {
    const { service } = guardedService({ user: 1, workspace: 2 });
    await service.submit(request({ userId: 'alice' }));
    for (let attempt = 0; attempt < 3; attempt += 1) {
      await expect(service.submit(request({ userId: 'alice' }))).rejects.toMatchObject({ details: { limit: 'user' } });
    }
    await expect(service.submit(request({ userId: 'bob' }))).resolves.toBeDefined();
  });

  it('counts a blocked prompt as a command, so retrying blocked prompts is limited too', async () => {
    const { service } = guardedService({ user: 1, workspace: 100 }, ['gore']);
    await expect(service.submit(request({ prompt: 'gore' }))).rejects.toMatchObject({ kind: 'invalid_input' });
    await expect(service.submit(request({ prompt: 'a cat' }))).rejects.toMatchObject({ kind: 'busy' });
  });

  it('shares the count between two bot replicas on the same Redis', async () => {
    const prefix = testPrefix('safety-shared');
    prefixes.push(prefix);
    const replica = () => {
      const inner = new RecordingImagineService();
      return withSafety(inner, {
        blocklist: [],
        perUser: createRedisRateLimiter({ redis, keyPrefix: `${prefix}:rate-user`, commandsPerMinute: 1 }),
        perWorkspace: createRedisRateLimiter({ redis, keyPrefix: `${prefix}:rate-workspace`, commandsPerMinute: 100 }),
      });
    };
    await replica().submit(request());
    await expect(replica().submit(request())).rejects.toMatchObject({ kind: 'busy' });
  });

  it('keeps the other service methods working through the guard', async () => {
    const { inner, service } = guardedService({ user: 1, workspace: 1 });
    await service.cancel(request().requester, 'gen-12345678');
    expect(inner.cancelled).toHaveLength(1);
  });
});
