import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImagineError } from '../../src/core/errors.js';
import { GenerationRequest, type Requester } from '../../src/core/generation.js';
import { findBlockedTerm, withSafety, type SafetyPolicy } from '../../src/core/safety.js';
import { createRedisRateLimiter } from '../../src/service/rate-limit.js';
import { imagineRequest } from '../support/generation-requests.js';
import { eventually, startServiceStack, type ServiceStack } from '../support/service-stack.js';
import { expectHeldExactly } from '../support/stack-results.js';

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

describe('safety in front of the real ImagineService (Redis queue, PGlite store, tiny-sd worker)', () => {
  let stack: ServiceStack;
  let redis: Redis;

  beforeAll(async () => {
    stack = await startServiceStack({ name: 'core-safety', quotaUnitsPerPeriod: 100 });
    redis = new Redis(stack.redisUrl);
  }, 120_000);
  afterAll(async () => {
    redis?.disconnect();
    await stack?.stop();
  });

  const person = (userId: string, workspaceId = 'guild-safety'): Requester => ({ platform: 'discord', workspaceId, userId, isAdmin: false });
  const admin: Requester = { platform: 'discord', workspaceId: 'guild-safety', userId: 'safety-admin', isAdmin: true };

  let policies = 0;
  /** The real rate limiters on keys of their own, so each policy starts with every allowance unspent. */
  const safetyPolicy = (
    limits: { user: number; workspace: number },
    blocklist: string[] = [],
    keyPrefix = `${stack.prefix}:safety-${++policies}`,
  ): SafetyPolicy => ({
    blocklist,
    perUser: createRedisRateLimiter({ redis, keyPrefix: `${keyPrefix}:rate-user`, commandsPerMinute: limits.user }),
    perWorkspace: createRedisRateLimiter({ redis, keyPrefix: `${keyPrefix}:rate-workspace`, commandsPerMinute: limits.workspace }),
  });
  const guardedService = (limits: { user: number; workspace: number }, blocklist: string[] = []) =>
    withSafety(stack.service, safetyPolicy(limits, blocklist));

  /** A small tiny-sd job (64×64, 2 steps, one image) that the worker finishes quickly. */
  const request = (requester: Requester, overrides: { prompt?: string; steps?: number } = {}) => {
    const replyTarget = `channel-safety/${requester.userId}`;
    const input = imagineRequest({ requester, prompt: overrides.prompt, steps: overrides.steps ?? 2, replyTarget });
    input.params.model = stack.chatConfig.defaultModel;
    return GenerationRequest.parse(input);
  };

  const statusOf = async (generationId: string) => (await stack.service.findGeneration(generationId))?.status;
  const reaches = (generationId: string, status: string) => eventually(async () => ((await statusOf(generationId)) === status ? true : undefined));

  const expectNothingReachedTheService = (requester: Requester) => expectHeldExactly(stack, requester, []);
  const expectServed = (requester: Requester, ...requests: GenerationRequest[]) => expectHeldExactly(stack, requester, requests);

  it('refuses a blocked prompt as invalid input naming the term, and queues, records and charges nothing', async () => {
    const writer = person('safety-blocked-writer');
    const service = guardedService({ user: 10, workspace: 10 }, ['gore']);
    const refusal = await service.submit(request(writer, { prompt: 'lots of Gore please' })).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(ImagineError);
    expect((refusal as ImagineError).kind).toBe('invalid_input');
    expect((refusal as ImagineError).userMessage).toContain('"gore"');
    await expectNothingReachedTheService(writer);
  });

  it('passes an allowed prompt through to the service, which queues, charges and finishes it', async () => {
    const painter = person('safety-allowed-painter');
    const sunset = request(painter, { prompt: 'a gorgeous sunset' });
    await guardedService({ user: 10, workspace: 10 }, ['gore']).submit(sunset);
    await expectServed(painter, sunset);
    await reaches(sunset.generationId, 'succeeded');
  });

  it('tells a user over their per-minute limit to slow down, with the limit and the wait, and serves only what was allowed', async () => {
    const hurried = person('safety-hurried');
    const service = guardedService({ user: 2, workspace: 100 });
    const first = request(hurried);
    const second = request(hurried);
    await service.submit(first);
    await service.submit(second);
    const refusal = (await service.submit(request(hurried)).catch((error: unknown) => error)) as ImagineError;
    expect(refusal).toBeInstanceOf(ImagineError);
    expect(refusal.kind).toBe('busy');
    expect(refusal.userMessage).toMatch(/^slow down: you can run 2 commands a minute; try again in \d+ s$/);
    const seconds = Number(/in (\d+) s/.exec(refusal.userMessage)![1]);
    expect(seconds).toBeGreaterThanOrEqual(1);
    expect(seconds).toBeLessThanOrEqual(60);
    await expectServed(hurried, first, second);
  });

  it('limits each user separately', async () => {
    const alice = person('safety-separate-alice');
    const bob = person('safety-separate-bob');
    const service = guardedService({ user: 1, workspace: 100 });
    const alicesFirst = request(alice);
    await service.submit(alicesFirst);
    await expect(service.submit(request(alice))).rejects.toMatchObject({ kind: 'busy' });
    const bobsFirst = request(bob);
    await service.submit(bobsFirst);
    await expectServed(alice, alicesFirst);
    await expectServed(bob, bobsFirst);
  });

  it('limits a whole workspace across its users', async () => {
    const [alice, bob, carol] = ['safety-team-alice', 'safety-team-bob', 'safety-team-carol'].map((userId) => person(userId, 'guild-safety-team'));
    const service = guardedService({ user: 100, workspace: 2 });
    await service.submit(request(alice));
    await service.submit(request(bob));
    const refusal = (await service.submit(request(carol)).catch((error: unknown) => error)) as ImagineError;
    expect(refusal.kind).toBe('busy');
    expect(refusal.userMessage).toMatch(/^slow down: this workspace can run 2 commands a minute; try again in \d+ s$/);
    await expectNothingReachedTheService(carol);
  });

  it('does not spend the workspace allowance on a user who is already limited', async () => {
    const noisy = person('safety-noisy', 'guild-safety-shared');
    const quiet = person('safety-quiet', 'guild-safety-shared');
    const service = guardedService({ user: 1, workspace: 2 });
    const noisysFirst = request(noisy);
    await service.submit(noisysFirst);
    for (let attempt = 0; attempt < 3; attempt += 1) {
      await expect(service.submit(request(noisy))).rejects.toMatchObject({ details: { limit: 'user' } });
    }
    const quietsFirst = request(quiet);
    await service.submit(quietsFirst);
    await expectServed(noisy, noisysFirst);
    await expectServed(quiet, quietsFirst);
  });

  it('counts a blocked prompt as a command, so retrying blocked prompts is limited too', async () => {
    const retrier = person('safety-retrier');
    const service = guardedService({ user: 1, workspace: 100 }, ['gore']);
    await expect(service.submit(request(retrier, { prompt: 'gore' }))).rejects.toMatchObject({ kind: 'invalid_input' });
    await expect(service.submit(request(retrier, { prompt: 'a cat' }))).rejects.toMatchObject({ kind: 'busy' });
    await expectNothingReachedTheService(retrier);
  });

  it('shares the count between two bot replicas on the same Redis', async () => {
    const roamer = person('safety-roamer');
    const sharedKeys = `${stack.prefix}:safety-replicas`;
    const replica = () => withSafety(stack.service, safetyPolicy({ user: 1, workspace: 100 }, [], sharedKeys));
    const first = request(roamer);
    await replica().submit(first);
    await expect(replica().submit(request(roamer))).rejects.toMatchObject({ kind: 'busy' });
    await expectServed(roamer, first);
  });

  it('leaves the service\'s own refusals in place: a banned member within every limit is still turned away', async () => {
    const banned = person('safety-banned');
    await stack.service.setBanned(admin, banned.userId, true);
    await expect(guardedService({ user: 10, workspace: 10 }).submit(request(banned))).rejects.toMatchObject({ kind: 'forbidden' });
    await expectNothingReachedTheService(banned);
  });

  it('keeps the other service methods working through the guard, even once the limits are spent', async () => {
    const canceller = person('safety-canceller');
    const service = guardedService({ user: 1, workspace: 1 });
    // Long enough (150 steps, four 128×128 images) that the cancel reaches it before the worker finishes it.
    const long = request(canceller, { steps: 150 });
    Object.assign(long.params, { width: 128, height: 128, batch: 4 });
    await service.submit(long);
    expect(await service.cancel(canceller, long.generationId)).toBe(long.generationId);
    await reaches(long.generationId, 'cancelled');
  });
});
