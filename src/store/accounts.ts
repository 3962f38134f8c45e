import type { Platform } from '../core/generation.js';
import type { Prisma } from './generated/prisma/client.js';

/** The client or an open transaction: every function here works inside either. */
export type DatabaseClient = Prisma.TransactionClient;

/** Internal row ids of a requester's Workspace and User; every other table refers to these. */
export interface AccountIds {
  workspaceId: string;
  userId: string;
}

export interface PlatformIdentity {
  platform: Platform;
  /** Discord guild id, Slack team id, or 'local'. */
  workspaceId: string;
  userId: string;
}

/**
 * Finds or creates the Workspace and User rows, each in one INSERT … ON CONFLICT, so that concurrent first requests
 * from the same person cannot race into a unique violation.
 */
export async function ensureAccount(prisma: DatabaseClient, identity: PlatformIdentity): Promise<AccountIds> {
  return { workspaceId: await ensureWorkspace(prisma, identity), userId: await ensureUser(prisma, identity) };
}

export async function ensureWorkspace(prisma: DatabaseClient, identity: Omit<PlatformIdentity, 'userId'>): Promise<string> {
  const [workspace] = await prisma.$queryRaw<{ id: string }[]>`
    INSERT INTO "Workspace" (id, platform, "platformWorkspaceId")
    VALUES (gen_random_uuid()::text, ${identity.platform}, ${identity.workspaceId})
    ON CONFLICT (platform, "platformWorkspaceId") DO UPDATE SET platform = EXCLUDED.platform
    RETURNING id`;
  return workspace.id;
}

export async function ensureUser(prisma: DatabaseClient, identity: Pick<PlatformIdentity, 'platform' | 'userId'>): Promise<string> {
  const [user] = await prisma.$queryRaw<{ id: string }[]>`
    INSERT INTO "User" (id, platform, "platformUserId")
    VALUES (gen_random_uuid()::text, ${identity.platform}, ${identity.userId})
    ON CONFLICT (platform, "platformUserId") DO UPDATE SET platform = EXCLUDED.platform
    RETURNING id`;
  return user.id;
}

/** The rows of a requester, or null for someone who never used the bot (or whose data was erased). */
export async function findAccount(prisma: DatabaseClient, identity: PlatformIdentity): Promise<AccountIds | null> {
  const [workspace, user] = await Promise.all([
    prisma.workspace.findUnique({
      where: { platform_platformWorkspaceId: { platform: identity.platform, platformWorkspaceId: identity.workspaceId } },
      select: { id: true },
    }),
    prisma.user.findUnique({
      where: { platform_platformUserId: { platform: identity.platform, platformUserId: identity.userId } },
      select: { id: true },
    }),
  ]);
  return workspace && user ? { workspaceId: workspace.id, userId: user.id } : null;
}
