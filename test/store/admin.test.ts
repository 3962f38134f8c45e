import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GenerationRequest } from '../../src/core/generation.js';
import { setBanned, setQuotaPolicy, updateUserSettings, userSettings, workspaceUsageToday } from '../../src/store/admin.js';
import { createGenerationHistory } from '../../src/store/generations.js';
import { PrismaQuotaLedger } from '../../src/store/quota-ledger.js';
import { imagineRequest } from '../support/generation-requests.js';
import { TEST_BACKENDS, type TestDatabase } from '../support/postgres.js';

describe.each(TEST_BACKENDS)('admin changes on %s', (_backend, open) => {
  let database: TestDatabase;
  let ledger: PrismaQuotaLedger;
  const request = (workspaceId: string, userId: string) =>
    GenerationRequest.parse(imagineRequest({ requester: { platform: 'slack', workspaceId, userId } }));

  beforeAll(async () => {
    database = await open();
    ledger = new PrismaQuotaLedger(database.prisma, {
      defaultPolicy: { unitsPerPeriod: 10, period: 'day', maxPixels: 1 << 20, maxSteps: 50, maxBatch: 4, allowedModels: [], fastAllowed: true, relaxAllowed: true },
    });
  });
  afterAll(async () => {
    await database?.close();
  });

  it('applies a workspace policy to everyone there and a user override to that user only', async () => {
    const workspace = { platform: 'slack' as const, workspaceId: 'T-admin-1' };
    await setQuotaPolicy(database.prisma, workspace, { unitsPerPeriod: 3, period: 'week' }, 'U-admin');
    await setQuotaPolicy(database.prisma, workspace, { maxSteps: 20 }, 'U-admin');
    expect(await setQuotaPolicy(database.prisma, { ...workspace, userId: 'U-vip' }, { unitsPerPeriod: 100 }, 'U-admin')).toMatchObject({
      unitsPerPeriod: 100,
      period: null,
    });

    expect(await ledger.standing({ ...workspace, userId: 'U-someone' })).toMatchObject({ limitUnits: 3, period: 'week' });
    expect(await ledger.standing({ ...workspace, userId: 'U-vip' })).toMatchObject({ limitUnits: 100, period: 'week' });
    expect(await ledger.standing({ platform: 'slack', workspaceId: 'T-elsewhere', userId: 'U-vip' })).toMatchObject({ limitUnits: 10 });
    expect(await database.prisma.quotaPolicy.count({ where: { userId: null, workspace: { platformWorkspaceId: 'T-admin-1' } } })).toBe(1);
    expect(await database.prisma.adminAction.count({ where: { workspaceId: 'T-admin-1', action: 'quota.policy' } })).toBe(3);
  });

  it('stops a banned user in that workspace until the ban is lifted', async () => {
    const identity = { platform: 'slack' as const, workspaceId: 'T-admin-2', userId: 'U-spammer' };
    await setBanned(database.prisma, identity, true, 'U-admin');
    await setBanned(database.prisma, identity, true, 'U-admin');
    await expect(ledger.reserve(request('T-admin-2', 'U-spammer'), 1)).rejects.toMatchObject({ kind: 'forbidden' });
    expect((await ledger.standing(identity)).banned).toBe(true);
    await ledger.reserve(request('T-other', 'U-spammer'), 1);
    await setBanned(database.prisma, identity, false, 'U-admin');
    await ledger.reserve(request('T-admin-2', 'U-spammer'), 1);
  });

  it("merges a user's settings changes", async () => {
    const identity = { platform: 'slack' as const, workspaceId: 'T-admin-3', userId: 'U-settings' };
    expect(await userSettings(database.prisma, identity)).toEqual({});
    await updateUserSettings(database.prisma, identity, { model: 'tiny-sd' });
    expect(await updateUserSettings(database.prisma, identity, { mode: 'relax' })).toEqual({ model: 'tiny-sd', mode: 'relax' });
    expect(await userSettings(database.prisma, identity)).toEqual({ model: 'tiny-sd', mode: 'relax' });
  });

  it("counts a workspace's generations in flight, today's finished ones and its active users", async () => {
    const history = createGenerationHistory(database.prisma);
    const [first, second, third] = [request('T-admin-4', 'U-a'), request('T-admin-4', 'U-a'), request('T-admin-4', 'U-b')];
    for (const input of [first, second, third]) await history.recordQueued(input);
    await history.markSucceeded({ generationId: first.generationId, imageKeys: [], seeds: [1], timingsMs: {} });
    await history.markFailed(second.generationId, 'failed', 'out of memory');
    expect(await workspaceUsageToday(database.prisma, { platform: 'slack', workspaceId: 'T-admin-4' })).toEqual({
      queued: 1,
      running: 0,
      succeededToday: 1,
      failedToday: 1,
      activeUsersToday: 2,
    });
  });
});
