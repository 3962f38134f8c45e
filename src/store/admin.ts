import type { UserSettings, WorkspaceStats } from '../core/chat/service.js';
import type { QuotaPolicyOverride } from '../core/quota.js';
import { ensureAccount, ensureUser, ensureWorkspace, type PlatformIdentity } from './accounts.js';
import { guardDatabase } from './database-errors.js';
import type { PrismaClient } from './generated/prisma/client.js';

/**
 * What admins change (policies, bans) and what users set for themselves, each admin change logged in AdminAction with
 * who made it.
 */

export type PolicyTarget = Omit<PlatformIdentity, 'userId'> & {
  /** Absent: the workspace's own policy; present: this user's override in the workspace. */
  userId?: string;
};

/** Merges `changes` into the stored policy (a null field goes back to inheriting) and returns what is stored now. */
export async function setQuotaPolicy(
  prisma: PrismaClient,
  target: PolicyTarget,
  changes: QuotaPolicyOverride,
  actorUserId: string,
): Promise<QuotaPolicyOverride> {
  return guardDatabase(async () => {
    const workspaceId = await ensureWorkspace(prisma, target);
    const userId = target.userId === undefined ? null : await ensureUser(prisma, { platform: target.platform, userId: target.userId });
    return prisma.$transaction(async (tx) => {
      // A workspace policy has userId NULL, which a unique index cannot guard; the workspace row lock serialises
      // two admins setting it at once.
      await tx.$executeRaw`SELECT 1 FROM "Workspace" WHERE id = ${workspaceId} FOR UPDATE`;
      const existing = await tx.quotaPolicy.findFirst({ where: { workspaceId, userId } });
      const data = { ...changes, allowedModels: changes.allowedModels ?? undefined };
      const stored = existing
        ? await tx.quotaPolicy.update({ where: { id: existing.id }, data })
        : await tx.quotaPolicy.create({
            data: { ...data, allowedModels: changes.allowedModels ?? [], workspaceId, userId },
          });
      await tx.adminAction.create({
        data: {
          platform: target.platform,
          actorUserId,
          workspaceId: target.workspaceId,
          action: 'quota.policy',
          target: target.userId ?? `workspace:${target.workspaceId}`,
          details: JSON.parse(JSON.stringify(changes)),
        },
      });
      return {
        unitsPerPeriod: stored.unitsPerPeriod,
        period: stored.period,
        maxPixels: stored.maxPixels,
        maxSteps: stored.maxSteps,
        maxBatch: stored.maxBatch,
        allowedModels: stored.allowedModels,
        fastAllowed: stored.fastAllowed,
        relaxAllowed: stored.relaxAllowed,
      };
    });
  });
}

/** Bans the user in this workspace, or lifts every ban on them there. */
export async function setBanned(
  prisma: PrismaClient,
  identity: PlatformIdentity,
  banned: boolean,
  actorUserId: string,
  reason = 'banned by an admin',
): Promise<void> {
  await guardDatabase(async () => {
    const where = { platform: identity.platform, platformUserId: identity.userId, workspaceId: identity.workspaceId };
    if (banned) {
      if ((await prisma.ban.count({ where })) === 0) await prisma.ban.create({ data: { ...where, reason, bannedBy: actorUserId } });
    } else {
      await prisma.ban.deleteMany({ where });
    }
    await prisma.adminAction.create({
      data: {
        platform: identity.platform,
        actorUserId,
        workspaceId: identity.workspaceId,
        action: banned ? 'ban.add' : 'ban.remove',
        target: identity.userId,
        details: banned ? { reason } : {},
      },
    });
  });
}

export async function userSettings(prisma: PrismaClient, identity: Pick<PlatformIdentity, 'platform' | 'userId'>): Promise<UserSettings> {
  const user = await guardDatabase(() =>
    prisma.user.findUnique({
      where: { platform_platformUserId: { platform: identity.platform, platformUserId: identity.userId } },
      select: { settings: true },
    }),
  );
  return (user?.settings ?? {}) as UserSettings;
}

/** Keys set to undefined are left as they are. */
export async function updateUserSettings(prisma: PrismaClient, identity: PlatformIdentity, changes: UserSettings): Promise<UserSettings> {
  return guardDatabase(async () => {
    const account = await ensureAccount(prisma, identity);
    // jsonb || merges in one statement, so two settings changes at once both land.
    const [row] = await prisma.$queryRaw<{ settings: UserSettings }[]>`
      UPDATE "User" SET settings = settings || ${JSON.stringify(changes)}::jsonb WHERE id = ${account.userId} RETURNING settings`;
    return row.settings;
  });
}

/** A workspace's generations in flight and today's (UTC) finished ones and active users. */
export async function workspaceUsageToday(
  prisma: PrismaClient,
  workspace: Omit<PlatformIdentity, 'userId'>,
  now = new Date(),
): Promise<WorkspaceStats> {
  return guardDatabase(async () => {
    const row = await prisma.workspace.findUnique({
      where: { platform_platformWorkspaceId: { platform: workspace.platform, platformWorkspaceId: workspace.workspaceId } },
      select: { id: true },
    });
    if (!row) return { queued: 0, running: 0, succeededToday: 0, failedToday: 0, activeUsersToday: 0 };
    const today = { gte: new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate())) };
    const [queued, running, succeededToday, failedToday, users] = await Promise.all([
      prisma.generation.count({ where: { workspaceId: row.id, status: 'queued' } }),
      prisma.generation.count({ where: { workspaceId: row.id, status: 'running' } }),
      prisma.generation.count({ where: { workspaceId: row.id, status: 'succeeded', finishedAt: today } }),
      prisma.generation.count({ where: { workspaceId: row.id, status: 'failed', finishedAt: today } }),
      prisma.generation.findMany({ where: { workspaceId: row.id, createdAt: today }, distinct: ['userId'], select: { userId: true } }),
    ]);
    return { queued, running, succeededToday, failedToday, activeUsersToday: users.length };
  });
}
