import type { ChatTranscriptStore, StoredChatMessage } from '../core/ports.js';
import { ensureUser } from './accounts.js';
import { guardDatabase } from './database-errors.js';
import type { Prisma, PrismaClient } from './generated/prisma/client.js';

const PLATFORM = 'web';

/**
 * The web chat's transcripts in the database, one row per message under the user's row: they live and die with the
 * user's other data (eraseUser deletes them with the user's generations).
 */
export function createWebTranscriptStore(prisma: PrismaClient): ChatTranscriptStore {
  const userRowOf = (userId: string) =>
    prisma.user.findUnique({ where: { platform_platformUserId: { platform: PLATFORM, platformUserId: userId } }, select: { id: true } });

  return {
    load: (userId, limit) =>
      guardDatabase(async () => {
        const user = await userRowOf(userId);
        if (!user) return [];
        const rows = await prisma.webChatMessage.findMany({ where: { userId: user.id }, orderBy: { position: 'desc' }, take: limit });
        return rows.reverse().map(
          (row): StoredChatMessage => ({
            id: row.id,
            message: row.message,
            ...(row.generationId && { generationId: row.generationId }),
            stage: row.stage,
            lastStep: row.lastStep,
          }),
        );
      }),

    save: (userId, entry, keep) =>
      guardDatabase(async () => {
        const fields = {
          message: entry.message as Prisma.InputJsonValue,
          generationId: entry.generationId ?? null,
          stage: entry.stage,
          lastStep: entry.lastStep,
        };
        const existing = await prisma.webChatMessage.updateMany({ where: { id: entry.id }, data: fields });
        if (existing.count > 0) return;
        const ownerId = await ensureUser(prisma, { platform: PLATFORM, userId });
        await prisma.webChatMessage.create({ data: { id: entry.id, userId: ownerId, ...fields } });
        const dropped = await prisma.webChatMessage.findMany({ where: { userId: ownerId }, orderBy: { position: 'desc' }, skip: keep, select: { id: true } });
        if (dropped.length > 0) await prisma.webChatMessage.deleteMany({ where: { id: { in: dropped.map((row) => row.id) } } });
      }),

    remove: (userId, messageId) =>
      guardDatabase(async () => {
        const user = await userRowOf(userId);
        if (user) await prisma.webChatMessage.deleteMany({ where: { id: messageId, userId: user.id } });
      }),
  };
}
