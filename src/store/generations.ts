import type { GenerationRecord } from '../core/chat/service.js';
import { GenerationRequest } from '../core/generation.js';
import type { FinishedStatus, GenerationHistory, GenerationResult, ImageStore } from '../core/ports.js';
import { previewFolderKey } from '../queue/job.js';
import { ensureAccount, findAccount, type DatabaseClient, type PlatformIdentity } from './accounts.js';
import { guardDatabase } from './database-errors.js';
import type { Prisma, PrismaClient } from './generated/prisma/client.js';

/**
 * Generation history over Prisma: the port the queue and worker write through, and the look-ups the chat side reads
 * (by id, seed, message, user, lineage), plus erasing everything a user left behind.
 */

const WITH_OWNER = { user: true, workspace: true } as const;
type GenerationRow = Prisma.GenerationGetPayload<{ include: typeof WITH_OWNER }>;

const UNFINISHED = ['queued', 'running'] as const;

function toRecord(row: GenerationRow): GenerationRecord {
  const request = GenerationRequest.parse({
    generationId: row.id,
    kind: row.kind,
    mode: row.mode,
    params: {
      prompt: row.prompt,
      negativePrompt: row.negativePrompt,
      width: row.width,
      height: row.height,
      steps: row.steps,
      guidance: row.guidance,
      sampler: row.sampler,
      seed: Number(row.seed),
      batch: row.batch,
      model: row.model,
      strength: row.strength ?? undefined,
      variationSeed: row.variationSeed === null ? undefined : Number(row.variationSeed),
      variationStrength: row.variationStrength ?? undefined,
      region: row.region ?? undefined,
      maskBlur: row.maskBlur ?? undefined,
      zoomOut: row.zoomOut ?? undefined,
      pan: row.pan ?? undefined,
      upscalePasses: row.upscalePasses ?? undefined,
    },
    maskKey: row.drawnMaskKey ?? undefined,
    blendParents: row.blendParents ?? undefined,
    requester: { platform: row.user.platform, workspaceId: row.workspace.platformWorkspaceId, userId: row.user.platformUserId },
    parent: row.parentId === null ? undefined : { generationId: row.parentId, imageIndex: row.parentImageIndex ?? 0 },
    replyTarget: row.replyTarget,
  });
  const result: GenerationResult | undefined =
    row.status === 'succeeded'
      ? {
          generationId: row.id,
          imageKeys: row.imageKeys,
          gridKey: row.gridKey ?? undefined,
          seeds: row.imageSeeds.map(Number),
          timingsMs: (row.timingsMs ?? {}) as Record<string, number>,
          ...(row.maskKey && { maskKey: row.maskKey }),
        }
      : undefined;
  return {
    request,
    status: row.status,
    result,
    userMessage: row.errorMessage ?? undefined,
    createdAt: row.createdAt,
    ...(row.deletedAt && { deletedAt: row.deletedAt }),
  };
}

export function createGenerationHistory(prisma: DatabaseClient, now: () => Date = () => new Date()): GenerationHistory {
  return {
    /** Idempotent: a retried enqueue finds the row already there and leaves it as it is. */
    async recordQueued(request) {
      await guardDatabase(async () => {
        const account = await ensureAccount(prisma, request.requester);
        // An upscale of an image whose owner has since been erased keeps its own row, without the lineage link.
        const parent = request.parent
          ? await prisma.generation.findUnique({ where: { id: request.parent.generationId }, select: { id: true } })
          : null;
        const { params } = request;
        await prisma.generation.createMany({
          skipDuplicates: true,
          data: {
            id: request.generationId,
            kind: request.kind,
            mode: request.mode,
            workspaceId: account.workspaceId,
            userId: account.userId,
            prompt: params.prompt,
            negativePrompt: params.negativePrompt,
            seed: BigInt(params.seed),
            width: params.width,
            height: params.height,
            steps: params.steps,
            guidance: params.guidance,
            sampler: params.sampler,
            batch: params.batch,
            model: params.model,
            strength: params.strength ?? null,
            variationSeed: params.variationSeed === undefined ? null : BigInt(params.variationSeed),
            variationStrength: params.variationStrength ?? null,
            region: params.region ?? null,
            maskBlur: params.maskBlur ?? null,
            zoomOut: params.zoomOut ?? null,
            pan: params.pan ?? null,
            upscalePasses: params.upscalePasses ?? null,
            drawnMaskKey: request.maskKey ?? null,
            ...(request.blendParents && { blendParents: request.blendParents }),
            replyTarget: request.replyTarget,
            parentId: parent?.id ?? null,
            parentImageIndex: parent ? request.parent!.imageIndex : null,
            imageKeys: [],
            imageSeeds: [],
            createdAt: now(),
          },
        });
      });
    },

    async markRunning(generationId) {
      await guardDatabase(() =>
        prisma.generation.updateMany({
          where: { id: generationId, status: 'queued' },
          data: { status: 'running', startedAt: now() },
        }),
      );
    },

    async markSucceeded(result) {
      const { count } = await guardDatabase(() =>
        prisma.generation.updateMany({
          where: { id: result.generationId, status: { in: [...UNFINISHED] } },
          data: {
            status: 'succeeded',
            imageKeys: result.imageKeys,
            gridKey: result.gridKey ?? null,
            imageSeeds: result.seeds.map(BigInt),
            timingsMs: result.timingsMs,
            maskKey: result.maskKey ?? null,
            finishedAt: now(),
          },
        }),
      );
      return count === 1 ? 'succeeded' : recordedOutcome(prisma, result.generationId);
    },

    async markFailed(generationId, status, userMessage, options = {}) {
      const finishedAt = now();
      const { count } = await guardDatabase(() =>
        prisma.generation.updateMany({
          where: { id: generationId, status: { in: [...UNFINISHED] } },
          data: { status, errorMessage: userMessage, finishedAt, announcedAt: options.announced ? finishedAt : undefined },
        }),
      );
      return count === 1 ? status : recordedOutcome(prisma, generationId);
    },
  };
}

async function recordedOutcome(prisma: DatabaseClient, generationId: string): Promise<FinishedStatus | null> {
  const row = await guardDatabase(() => prisma.generation.findUnique({ where: { id: generationId }, select: { status: true } }));
  if (!row) return null;
  // Not finished after a conditional update that found it unfinished cannot happen; answer as "not ours to settle".
  return row.status === 'queued' || row.status === 'running' ? null : row.status;
}

export async function findGeneration(prisma: PrismaClient, generationId: string): Promise<GenerationRecord | null> {
  const row = await guardDatabase(() => prisma.generation.findUnique({ where: { id: generationId }, include: WITH_OWNER }));
  return row ? toRecord(row) : null;
}

const FINISHED = ['succeeded', 'failed', 'cancelled'] as const;

/**
 * Takes the right to post a generation's outcome for `leaseMs`: true for one caller at a time, however many bot
 * processes (or restarts of one) see the outcome, from the event stream or from the database. The poster confirms with
 * confirmAnnouncement once the platform has it; a claim that lapses unconfirmed (the bot died while posting) can be
 * taken again, so an outcome is posted at least once, and twice only when a bot dies between posting and confirming.
 */
export async function claimAnnouncement(prisma: PrismaClient, generationId: string, now: Date = new Date(), leaseMs = 120_000): Promise<boolean> {
  const { count } = await guardDatabase(() =>
    prisma.generation.updateMany({
      where: { id: generationId, status: { in: [...FINISHED] }, announcedAt: null, OR: [{ announcingUntil: null }, { announcingUntil: { lte: now } }] },
      data: { announcingUntil: new Date(now.getTime() + leaseMs) },
    }),
  );
  return count === 1;
}

/** The outcome claimed with claimAnnouncement was posted: nobody posts it again. */
export async function confirmAnnouncement(prisma: PrismaClient, generationId: string, now: Date = new Date()): Promise<void> {
  await guardDatabase(() => prisma.generation.updateMany({ where: { id: generationId, announcedAt: null }, data: { announcedAt: now } }));
}

/**
 * Finished generations made on `platform` whose outcome nobody posted (the bot was down) and nobody is posting now (a
 * claim that lapsed means its bot died mid-post), oldest first.
 */
export async function unannouncedGenerations(
  prisma: PrismaClient,
  platform: string,
  options: { finishedBefore: Date; limit: number; now?: Date },
): Promise<GenerationRecord[]> {
  const rows = await guardDatabase(() =>
    prisma.generation.findMany({
      where: {
        status: { in: [...FINISHED] },
        announcedAt: null,
        finishedAt: { lt: options.finishedBefore },
        user: { platform },
        OR: [{ announcingUntil: null }, { announcingUntil: { lte: options.now ?? new Date() } }],
      },
      orderBy: [{ finishedAt: 'asc' }, { id: 'asc' }],
      take: options.limit,
      include: WITH_OWNER,
    }),
  );
  return rows.map(toRecord);
}

/** The adapter calls this once the result message is posted, so reactions and replies to it find the generation. */
export async function recordMessageRef(prisma: PrismaClient, generationId: string, messageRef: string): Promise<void> {
  await guardDatabase(() => prisma.generation.updateMany({ where: { id: generationId }, data: { messageRef } }));
}

/** The generation shown by a platform message: the result message, or the reply target it was posted to. */
export async function findByMessageRef(prisma: PrismaClient, messageRef: string): Promise<GenerationRecord | null> {
  const row = await guardDatabase(() =>
    prisma.generation.findFirst({
      where: { OR: [{ messageRef }, { replyTarget: messageRef }] },
      orderBy: { createdAt: 'desc' },
      include: WITH_OWNER,
    }),
  );
  return row ? toRecord(row) : null;
}

/** The requester's latest generation that was asked for with this seed or produced an image with it. */
export async function findBySeed(prisma: PrismaClient, identity: PlatformIdentity, seed: number): Promise<GenerationRecord | null> {
  return guardDatabase(async () => {
    const account = await findAccount(prisma, identity);
    if (!account) return null;
    const row = await prisma.generation.findFirst({
      where: { userId: account.userId, OR: [{ seed: BigInt(seed) }, { imageSeeds: { has: BigInt(seed) } }] },
      orderBy: { createdAt: 'desc' },
      include: WITH_OWNER,
    });
    return row ? toRecord(row) : null;
  });
}

/** Most recent first, across every workspace the user made images in. */
export async function recentGenerations(prisma: PrismaClient, identity: PlatformIdentity, limit: number): Promise<GenerationRecord[]> {
  return guardDatabase(async () => {
    const user = await prisma.user.findUnique({
      where: { platform_platformUserId: { platform: identity.platform, platformUserId: identity.userId } },
      select: { id: true },
    });
    if (!user) return [];
    const rows = await prisma.generation.findMany({
      where: { userId: user.id },
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: limit,
      include: WITH_OWNER,
    });
    return rows.map(toRecord);
  });
}

/** Upscales, variations and rerolls made from this generation, oldest first. */
export async function childGenerations(prisma: PrismaClient, generationId: string): Promise<GenerationRecord[]> {
  const rows = await guardDatabase(() =>
    prisma.generation.findMany({ where: { parentId: generationId }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }], include: WITH_OWNER }),
  );
  return rows.map(toRecord);
}

/** The parent, the parent's parent, … up to the original prompt, nearest first; one recursive query. */
export async function ancestorGenerations(prisma: PrismaClient, generationId: string): Promise<GenerationRecord[]> {
  return guardDatabase(async () => {
    const chain = await prisma.$queryRaw<{ id: string; depth: number }[]>`
      WITH RECURSIVE chain AS (
        SELECT id, "parentId", 0 AS depth FROM "Generation" WHERE id = ${generationId}
        UNION ALL
        SELECT parent.id, parent."parentId", chain.depth + 1
        FROM "Generation" AS parent JOIN chain ON parent.id = chain."parentId"
        WHERE chain.depth < 1000
      )
      SELECT id, depth FROM chain WHERE depth > 0`;
    const rows = await prisma.generation.findMany({ where: { id: { in: chain.map((link) => link.id) } }, include: WITH_OWNER });
    const depthOf = new Map(chain.map((link) => [link.id, Number(link.depth)]));
    return rows.sort((a, b) => depthOf.get(a.id)! - depthOf.get(b.id)!).map(toRecord);
  });
}

export interface ErasureReport {
  generations: number;
  images: number;
}

const userRowOf = (prisma: PrismaClient, identity: Pick<PlatformIdentity, 'platform' | 'userId'>) =>
  prisma.user.findUnique({
    where: { platform_platformUserId: { platform: identity.platform, platformUserId: identity.userId } },
    select: { id: true },
  });

/** The user's queued and running generations in every workspace, oldest first (what erasing must stop first). */
export async function unfinishedGenerationsOf(prisma: PrismaClient, identity: Pick<PlatformIdentity, 'platform' | 'userId'>): Promise<string[]> {
  return guardDatabase(async () => {
    const user = await userRowOf(prisma, identity);
    if (!user) return [];
    const rows = await prisma.generation.findMany({
      where: { userId: user.id, status: { in: [...UNFINISHED] } },
      orderBy: { createdAt: 'asc' },
      select: { id: true },
    });
    return rows.map((row) => row.id);
  });
}

/**
 * ❌ on a result: its pictures (every image, the grid, the masks and every preview) leave the image store, then the
 * row is marked deleted with no image keys, so lineage stays readable and no later action reaches for a missing file.
 * Images go first, so that a failure part-way can simply be retried.
 */
export async function deleteGenerationImages(prisma: PrismaClient, images: ImageStore, generationId: string, now: Date = new Date()): Promise<void> {
  const row = await guardDatabase(() =>
    prisma.generation.findUnique({ where: { id: generationId }, select: { imageKeys: true, gridKey: true, maskKey: true, drawnMaskKey: true } }),
  );
  if (!row) return;
  for (const key of [...row.imageKeys, ...[row.gridKey, row.maskKey, row.drawnMaskKey].filter((key) => key !== null)]) await images.delete(key);
  await images.deletePrefix(previewFolderKey(generationId));
  await guardDatabase(() => prisma.generation.update({ where: { id: generationId }, data: { deletedAt: now, imageKeys: [], gridKey: null, maskKey: null } }));
}

/**
 * Erases what a user made, on their request: their images and previews, generations (the prompts) and settings. What
 * they owe stays: the User row — a platform id and nothing else — keeps the quota balances, the ledger and admin-set
 * policies counting against them, so erasing never resets a quota; bans are keyed by platform id and stay too.
 * Images go first, so that a failure part-way can simply be retried. Unfinished generations are the caller's to stop
 * (and refund) first: a worker still running one would write images after this.
 */
export async function eraseUser(prisma: PrismaClient, images: ImageStore, identity: Pick<PlatformIdentity, 'platform' | 'userId'>): Promise<ErasureReport> {
  return guardDatabase(async () => {
    const user = await userRowOf(prisma, identity);
    if (!user) return { generations: 0, images: 0 };
    const rows = await prisma.generation.findMany({ where: { userId: user.id }, select: { id: true, imageKeys: true, gridKey: true, maskKey: true, drawnMaskKey: true } });
    const keys = rows.flatMap((row) => [...row.imageKeys, ...[row.gridKey, row.maskKey, row.drawnMaskKey].filter((key) => key !== null)]);
    for (const key of keys) await images.delete(key);
    for (const row of rows) await images.deletePrefix(previewFolderKey(row.id));
    await prisma.generation.deleteMany({ where: { userId: user.id } });
    await prisma.webChatMessage.deleteMany({ where: { userId: user.id } });
    await prisma.user.update({ where: { id: user.id }, data: { settings: {} } });
    return { generations: rows.length, images: keys.length };
  });
}

/** Accepted generations not finished yet, accepted before `acceptedBefore`, oldest first: what the queue should hold. */
export async function unfinishedGenerations(prisma: PrismaClient, options: { acceptedBefore: Date; limit: number }): Promise<GenerationRecord[]> {
  const rows = await guardDatabase(() =>
    prisma.generation.findMany({
      where: { status: { in: [...UNFINISHED] }, createdAt: { lt: options.acceptedBefore } },
      orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
      take: options.limit,
      include: WITH_OWNER,
    }),
  );
  return rows.map(toRecord);
}

/**
 * Reservations that nothing settled and no generation explains (reserved before `reservedBefore`): a producer died
 * between reserving and recording, or the generation was erased with its user while it waited.
 */
export async function reservationsWithoutGeneration(prisma: PrismaClient, options: { reservedBefore: Date; limit: number }): Promise<string[]> {
  const rows = await guardDatabase(
    () => prisma.$queryRaw<{ generationId: string }[]>`
      SELECT reserve."generationId" FROM "UsageLedger" AS reserve
      WHERE reserve.kind = 'reserve'::"LedgerKind" AND reserve."createdAt" < ${options.reservedBefore}::timestamp(3)
        AND NOT EXISTS (SELECT 1 FROM "UsageLedger" AS settled WHERE settled.settles = reserve."generationId")
        AND NOT EXISTS (SELECT 1 FROM "Generation" AS generation WHERE generation.id = reserve."generationId")
      ORDER BY reserve.id
      LIMIT ${options.limit}`,
  );
  return rows.map((row) => row.generationId);
}

/** Finished generations whose reservation is still open: the worker died, or its database write failed, before settling. */
export async function unsettledOutcomes(
  prisma: PrismaClient,
  options: { finishedBefore: Date; limit: number },
): Promise<{ generationId: string; status: FinishedStatus }[]> {
  const rows = await guardDatabase(
    () => prisma.$queryRaw<{ id: string; status: FinishedStatus }[]>`
      SELECT generation.id, generation.status::text AS status FROM "Generation" AS generation
      JOIN "UsageLedger" AS reserve ON reserve."generationId" = generation.id AND reserve.kind = 'reserve'::"LedgerKind"
      WHERE generation.status IN ('succeeded', 'failed', 'cancelled') AND generation."finishedAt" < ${options.finishedBefore}::timestamp(3)
        AND NOT EXISTS (SELECT 1 FROM "UsageLedger" AS settled WHERE settled.settles = generation.id)
      ORDER BY generation."finishedAt"
      LIMIT ${options.limit}`,
  );
  return rows.map((row) => ({ generationId: row.id, status: row.status }));
}
