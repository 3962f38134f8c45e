import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GenerationRequest } from '../../src/core/generation.js';
import type { QuotaPolicy } from '../../src/core/quota.js';
import { PrismaQuotaLedger } from '../../src/store/quota-ledger.js';
import { imagineRequest } from '../support/generation-requests.js';
import { TEST_BACKENDS, type TestDatabase } from '../support/postgres.js';

const DEFAULT_POLICY: QuotaPolicy = {
  unitsPerPeriod: 5,
  period: 'day',
  maxPixels: 1024 * 1024,
  maxSteps: 50,
  maxBatch: 4,
  allowedModels: [],
  fastAllowed: true,
  relaxAllowed: true,
};

const NOW = new Date('2026-11-23T15:00:00Z');

describe.each(TEST_BACKENDS)('the quota ledger on %s', (_backend, open) => {
  let database: TestDatabase;
  let ledger: PrismaQuotaLedger;
  let userCount = 0;
  /** Each test gets a user of its own, so balances never leak between tests. */
  const requestFor = (user: string, overrides: Parameters<typeof imagineRequest>[0] = {}) =>
    GenerationRequest.parse(imagineRequest({ userId: user, ...overrides }));
  const newUser = () => `user-${(userCount += 1)}`;

  beforeAll(async () => {
    database = await open();
    ledger = new PrismaQuotaLedger(database.prisma, { defaultPolicy: DEFAULT_POLICY, now: () => NOW });
  });
  afterAll(async () => {
    await database?.close();
  });

  it('accepts exactly 5 of 50 concurrent one-unit requests against 5 remaining units', async () => {
    const user = newUser();
    const outcomes = await Promise.allSettled(Array.from({ length: 50 }, () => ledger.reserve(requestFor(user), 1)));
    const accepted = outcomes.filter((outcome) => outcome.status === 'fulfilled');
    const refused = outcomes.filter((outcome) => outcome.status === 'rejected');
    expect(accepted).toHaveLength(5);
    expect(refused.map((outcome) => (outcome as PromiseRejectedResult).reason.kind)).toEqual(Array(45).fill('quota_exceeded'));
    const standing = await ledger.standing(requestFor(user).requester);
    expect(standing).toMatchObject({ usedUnits: 5, limitUnits: 5, remainingUnits: 0 });
  });

  it('says when the quota resets when it refuses a request', async () => {
    const user = newUser();
    await ledger.reserve(requestFor(user), 4);
    const refusal = ledger.reserve(requestFor(user), 2);
    await expect(refusal).rejects.toMatchObject({
      kind: 'quota_exceeded',
      details: { costUnits: 2, remainingUnits: 1, resetsAt: '2026-11-24T00:00:00.000Z' },
    });
    await expect(refusal).rejects.toThrow(/resets in 9 hours \(2026-11-24 00:00 UTC\)/);
  });

  it('reserves once however often the same generation is retried, even concurrently', async () => {
    const user = newUser();
    const request = requestFor(user);
    const reservations = await Promise.all(Array.from({ length: 10 }, () => ledger.reserve(request, 2)));
    expect(reservations).toEqual(Array(10).fill({ generationId: request.generationId, units: 2 }));
    expect((await ledger.standing(request.requester)).usedUnits).toBe(2);
  });

  it('commits idempotently and ignores a refund after the commit', async () => {
    const user = newUser();
    const request = requestFor(user);
    await ledger.reserve(request, 3);
    await Promise.all([ledger.commit(request.generationId), ledger.commit(request.generationId)]);
    await ledger.refund(request.generationId, 'a late cancel');
    expect(await ledger.settlement(request.generationId)).toBe('committed');
    expect((await ledger.standing(request.requester)).usedUnits).toBe(3);
    const rows = await database.prisma.usageLedger.findMany({ where: { generationId: request.generationId } });
    expect(rows.map((row) => row.kind).sort()).toEqual(['commit', 'reserve']);
  });

  it('gives the units back once when a failed generation is refunded twice at the same time', async () => {
    const user = newUser();
    const request = requestFor(user);
    await ledger.reserve(request, 4);
    await Promise.all([ledger.refund(request.generationId, 'model failure'), ledger.refund(request.generationId, 'model failure')]);
    await ledger.commit(request.generationId);
    expect(await ledger.settlement(request.generationId)).toBe('refunded');
    expect(await ledger.standing(request.requester)).toMatchObject({ usedUnits: 0, remainingUnits: 5 });
    await ledger.reserve(requestFor(user), 5);
  });

  it('lets a user override raise the limit the workspace policy sets', async () => {
    const workspaceUser = newUser();
    const overriddenUser = newUser();
    const first = requestFor(workspaceUser, { requester: { platform: 'slack', workspaceId: 'T-policy', userId: workspaceUser } });
    await ledger.reserve(first, 1);
    const workspace = await database.prisma.workspace.findUniqueOrThrow({
      where: { platform_platformWorkspaceId: { platform: 'slack', platformWorkspaceId: 'T-policy' } },
    });
    await database.prisma.quotaPolicy.create({ data: { workspaceId: workspace.id, unitsPerPeriod: 2, maxSteps: 10 } });
    const overridden = requestFor(overriddenUser, { requester: { platform: 'slack', workspaceId: 'T-policy', userId: overriddenUser } });
    await ledger.reserve(overridden, 1);
    const user = await database.prisma.user.findUniqueOrThrow({
      where: { platform_platformUserId: { platform: 'slack', platformUserId: overriddenUser } },
    });
    await database.prisma.quotaPolicy.create({ data: { workspaceId: workspace.id, userId: user.id, unitsPerPeriod: 20 } });

    await expect(ledger.reserve({ ...first, generationId: `${first.generationId}-2` }, 2)).rejects.toMatchObject({ kind: 'quota_exceeded' });
    await ledger.reserve({ ...overridden, generationId: `${overridden.generationId}-2` }, 15);
    const tooManySteps = { ...overridden, generationId: `${overridden.generationId}-3`, params: { ...overridden.params, steps: 20 } };
    await expect(ledger.reserve(tooManySteps, 1)).rejects.toMatchObject({ kind: 'forbidden', details: { maxSteps: 10 } });
    expect(await ledger.standing(overridden.requester)).toMatchObject({ limitUnits: 20, remainingUnits: 4 });
  });

  it('refuses a banned user and logs grants and resets as admin actions', async () => {
    const user = newUser();
    const request = requestFor(user);
    await ledger.reserve(request, 5);
    expect((await ledger.grant(request.requester, 3, 'admin-1')).remainingUnits).toBe(3);
    expect((await ledger.reset(request.requester, 'admin-1')).remainingUnits).toBe(5);
    const adjustments = await database.prisma.usageLedger.findMany({ where: { kind: 'adjust', user: { platformUserId: user } } });
    expect(adjustments.map((row) => row.units)).toEqual([-3, -2]);
    expect(await database.prisma.adminAction.count({ where: { target: user } })).toBe(2);

    await database.prisma.ban.create({
      data: { platform: 'discord', platformUserId: user, reason: 'spam', bannedBy: 'admin-1' },
    });
    await expect(ledger.reserve(requestFor(user), 1)).rejects.toMatchObject({ kind: 'forbidden' });
  });
});
