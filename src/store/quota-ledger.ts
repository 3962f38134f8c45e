import { randomUUID } from 'node:crypto';
import { ImagineError } from '../core/errors.js';
import type { GenerationRequest } from '../core/generation.js';
import type { QuotaLedger, QuotaReservation } from '../core/ports.js';
import {
  checkRequestAgainstPolicy,
  effectivePolicy,
  quotaExceeded,
  quotaPeriodWindow,
  type QuotaPolicy,
  type QuotaPolicyOverride,
} from '../core/quota.js';
import { ensureAccount, findAccount, type AccountIds, type DatabaseClient, type PlatformIdentity } from './accounts.js';
import { guardDatabase, isUniqueViolation } from './database-errors.js';

/**
 * The quota ledger over Prisma. Every change is an append to UsageLedger plus, where the balance moves, one conditional
 * UPDATE of QuotaBalance in the same SQL statement: a balance is never read and then written back, so concurrent
 * requests cannot overspend it, and (generationId, kind) makes retried calls land once.
 *
 * Balance of a period = Σ reserve − Σ refund + Σ adjust. A commit row only records that the reservation was used.
 */

export interface QuotaLedgerOptions {
  /** What applies where neither the workspace nor the user has a stored policy. */
  defaultPolicy: QuotaPolicy;
  now?: () => Date;
}

export interface QuotaStanding {
  usedUnits: number;
  /** null: unlimited. */
  limitUnits: number | null;
  remainingUnits: number | null;
  period: QuotaPolicy['period'];
  resetsAt: Date;
  banned: boolean;
}

export class PrismaQuotaLedger implements QuotaLedger {
  private readonly now: () => Date;

  constructor(
    private readonly prisma: DatabaseClient,
    private readonly options: QuotaLedgerOptions,
  ) {
    this.now = options.now ?? (() => new Date());
  }

  /** Checks the request against the requester's policy and bans, then holds `units` in one conditional statement. */
  async reserve(request: GenerationRequest, units: number): Promise<QuotaReservation> {
    return guardDatabase(async () => {
      const earlier = await this.findReservation(request.generationId);
      if (earlier) return earlier;

      const account = await ensureAccount(this.prisma, request.requester);
      if (await this.isBanned(request.requester)) {
        throw new ImagineError('forbidden', 'You are not allowed to generate images here.', { generationId: request.generationId });
      }
      const policy = await this.policyFor(account);
      checkRequestAgainstPolicy(request, policy);
      const now = this.now();
      const { start: periodStart, end: resetsAt } = quotaPeriodWindow(policy.period, now);
      await this.ensureBalance(account, periodStart);

      let inserted: unknown[];
      try {
        inserted = await this.prisma.$queryRaw<unknown[]>`
          WITH charged AS (
            UPDATE "QuotaBalance" SET "usedUnits" = "usedUnits" + ${units}::int
            WHERE "workspaceId" = ${account.workspaceId} AND "userId" = ${account.userId}
              AND "periodStart" = ${periodStart}::timestamp(3)
              AND (${policy.unitsPerPeriod}::int IS NULL OR "usedUnits" + ${units}::int <= ${policy.unitsPerPeriod}::int)
            RETURNING 1
          )
          INSERT INTO "UsageLedger" ("generationId", kind, units, "workspaceId", "userId", "periodStart")
          SELECT ${request.generationId}, 'reserve'::"LedgerKind", ${units}::int, ${account.workspaceId}, ${account.userId},
                 ${periodStart}::timestamp(3)
          FROM charged
          RETURNING id`;
      } catch (error) {
        // A retry raced the first attempt: the unique key rolled this statement (and its UPDATE) back.
        if (isUniqueViolation(error)) {
          const reservation = await this.findReservation(request.generationId);
          if (reservation) return reservation;
        }
        throw error;
      }
      if (inserted.length === 1) return { generationId: request.generationId, units };

      const balance = await this.prisma.quotaBalance.findUnique({
        where: { workspaceId_userId_periodStart: { ...account, periodStart } },
      });
      throw quotaExceeded({
        costUnits: units,
        remainingUnits: (policy.unitsPerPeriod ?? 0) - (balance?.usedUnits ?? 0),
        resetsAt,
        now,
      });
    });
  }

  async commit(generationId: string): Promise<void> {
    await guardDatabase(
      () => this.prisma.$executeRaw`
        INSERT INTO "UsageLedger" ("generationId", kind, units, "workspaceId", "userId", "periodStart", settles)
        SELECT "generationId", 'commit'::"LedgerKind", units, "workspaceId", "userId", "periodStart", "generationId"
        FROM "UsageLedger" WHERE "generationId" = ${generationId} AND kind = 'reserve'::"LedgerKind"
        ON CONFLICT DO NOTHING`,
    );
  }

  /** Appends the refund and returns the units in the same statement; nothing happens after a commit or a refund. */
  async refund(generationId: string, reason: string): Promise<void> {
    await guardDatabase(
      () => this.prisma.$executeRaw`
        WITH settled AS (
          INSERT INTO "UsageLedger" ("generationId", kind, units, "workspaceId", "userId", "periodStart", settles, reason)
          SELECT "generationId", 'refund'::"LedgerKind", units, "workspaceId", "userId", "periodStart", "generationId", ${reason}
          FROM "UsageLedger" WHERE "generationId" = ${generationId} AND kind = 'reserve'::"LedgerKind"
          ON CONFLICT DO NOTHING
          RETURNING units, "workspaceId", "userId", "periodStart"
        )
        UPDATE "QuotaBalance" AS balance SET "usedUnits" = balance."usedUnits" - settled.units
        FROM settled
        WHERE balance."workspaceId" = settled."workspaceId" AND balance."userId" = settled."userId"
          AND balance."periodStart" = settled."periodStart"`,
    );
  }

  /** Whether a generation's reservation ended in a commit, a refund, or neither yet. */
  async settlement(generationId: string): Promise<'reserved' | 'committed' | 'refunded' | null> {
    const rows = await guardDatabase(() =>
      this.prisma.usageLedger.findMany({ where: { generationId }, select: { kind: true } }),
    );
    const kinds = new Set(rows.map((row) => row.kind));
    if (kinds.has('commit')) return 'committed';
    if (kinds.has('refund')) return 'refunded';
    return kinds.has('reserve') ? 'reserved' : null;
  }

  async standing(identity: PlatformIdentity): Promise<QuotaStanding> {
    return guardDatabase(async () => {
      const account = await findAccount(this.prisma, identity);
      const workspace = account
        ? null
        : await this.prisma.workspace.findUnique({
            where: { platform_platformWorkspaceId: { platform: identity.platform, platformWorkspaceId: identity.workspaceId } },
            select: { id: true },
          });
      const policy = await this.policyFor(account ?? { workspaceId: workspace?.id ?? null, userId: null });
      const { start: periodStart, end: resetsAt } = quotaPeriodWindow(policy.period, this.now());
      const balance = account
        ? await this.prisma.quotaBalance.findUnique({ where: { workspaceId_userId_periodStart: { ...account, periodStart } } })
        : null;
      const usedUnits = balance?.usedUnits ?? 0;
      const limitUnits = policy.unitsPerPeriod;
      return {
        usedUnits,
        limitUnits,
        remainingUnits: limitUnits === null ? null : Math.max(0, limitUnits - usedUnits),
        period: policy.period,
        resetsAt,
        banned: await this.isBanned(identity),
      };
    });
  }

  /**
   * Gives `units` back to the user for the current period (negative units take them away), logged as an admin action.
   */
  async grant(identity: PlatformIdentity, units: number, actorUserId: string): Promise<QuotaStanding> {
    await this.adjust(identity, actorUserId, 'quota.grant', { units }, -units);
    return this.standing(identity);
  }

  /** Sets the user's use in the current period back to zero, logged as an admin action. */
  async reset(identity: PlatformIdentity, actorUserId: string): Promise<QuotaStanding> {
    await this.adjust(identity, actorUserId, 'quota.reset', {}, null);
    return this.standing(identity);
  }

  private async adjust(
    identity: PlatformIdentity,
    actorUserId: string,
    action: string,
    details: Record<string, unknown>,
    /** null: back to zero. */
    delta: number | null,
  ): Promise<void> {
    await guardDatabase(async () => {
      const account = await ensureAccount(this.prisma, identity);
      const policy = await this.policyFor(account);
      const { start: periodStart } = quotaPeriodWindow(policy.period, this.now());
      await this.ensureBalance(account, periodStart);
      const actionId = `admin_${randomUUID()}`;
      // A grant moves the balance by a delta and a reset sets it to zero; either way the ledger row records the change.
      await this.prisma.$executeRaw`
        WITH changed AS (
          UPDATE "QuotaBalance" AS balance
          SET "usedUnits" = CASE WHEN ${delta}::int IS NULL THEN 0 ELSE balance."usedUnits" + ${delta}::int END
          FROM (SELECT "usedUnits" AS before FROM "QuotaBalance"
                WHERE "workspaceId" = ${account.workspaceId} AND "userId" = ${account.userId}
                  AND "periodStart" = ${periodStart}::timestamp(3) FOR UPDATE) AS old
          WHERE balance."workspaceId" = ${account.workspaceId} AND balance."userId" = ${account.userId}
            AND balance."periodStart" = ${periodStart}::timestamp(3)
          RETURNING balance."usedUnits" - old.before AS units
        )
        INSERT INTO "UsageLedger" ("generationId", kind, units, "workspaceId", "userId", "periodStart", reason)
        SELECT ${actionId}, 'adjust'::"LedgerKind", units, ${account.workspaceId}, ${account.userId},
               ${periodStart}::timestamp(3), ${action}
        FROM changed`;
      await this.prisma.adminAction.create({
        data: {
          platform: identity.platform,
          actorUserId,
          workspaceId: identity.workspaceId,
          action,
          target: identity.userId,
          details: { ...details, ledgerId: actionId },
        },
      });
    });
  }

  private async findReservation(generationId: string): Promise<QuotaReservation | null> {
    const row = await this.prisma.usageLedger.findUnique({
      where: { generationId_kind: { generationId, kind: 'reserve' } },
      select: { units: true },
    });
    return row ? { generationId, units: row.units } : null;
  }

  private async ensureBalance(account: AccountIds, periodStart: Date): Promise<void> {
    await this.prisma.$executeRaw`
      INSERT INTO "QuotaBalance" ("workspaceId", "userId", "periodStart", "usedUnits")
      VALUES (${account.workspaceId}, ${account.userId}, ${periodStart}::timestamp(3), 0)
      ON CONFLICT DO NOTHING`;
  }

  /** Ids are null for a workspace or user the store has not seen yet: their policy is the one above them. */
  private async policyFor(account: { workspaceId: string | null; userId: string | null }): Promise<QuotaPolicy> {
    if (account.workspaceId === null) return this.options.defaultPolicy;
    const rows = await this.prisma.quotaPolicy.findMany({
      where: { workspaceId: account.workspaceId, OR: [{ userId: null }, ...(account.userId ? [{ userId: account.userId }] : [])] },
    });
    const toOverride = (row: (typeof rows)[number] | undefined): QuotaPolicyOverride | null =>
      row
        ? {
            unitsPerPeriod: row.unitsPerPeriod,
            period: row.period,
            maxPixels: row.maxPixels,
            maxSteps: row.maxSteps,
            maxBatch: row.maxBatch,
            allowedModels: row.allowedModels,
            fastAllowed: row.fastAllowed,
            relaxAllowed: row.relaxAllowed,
          }
        : null;
    return effectivePolicy(
      this.options.defaultPolicy,
      toOverride(rows.find((row) => row.userId === null)),
      toOverride(rows.find((row) => row.userId !== null && row.userId === account.userId)),
    );
  }

  private async isBanned(identity: PlatformIdentity): Promise<boolean> {
    const now = this.now();
    const ban = await this.prisma.ban.findFirst({
      where: {
        platform: identity.platform,
        platformUserId: identity.userId,
        OR: [{ workspaceId: null }, { workspaceId: identity.workspaceId }],
        AND: [{ OR: [{ expiresAt: null }, { expiresAt: { gt: now } }] }],
      },
      select: { id: true },
    });
    return ban !== null;
  }
}
