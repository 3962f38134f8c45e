import { Redis } from 'ioredis';
import type {
  GenerationEvent,
  GenerationRecord,
  ImagineService,
  QuotaStatus,
  UserSettings,
  WorkspaceStats,
} from '../core/chat/service.js';
import { ImagineError, isImagineError } from '../core/errors.js';
import type { Platform, Requester } from '../core/generation.js';
import type { GenerationHistory, ImageStore } from '../core/ports.js';
import { generationCost } from '../core/quota.js';
import { subscribeEvents, type QueueEvent } from '../queue/events.js';
import { drawnMaskKey } from '../queue/job.js';
import type { GenerationQueue } from '../queue/producer.js';
import { setBanned, setQuotaPolicy, updateUserSettings, userSettings, workspaceUsageToday } from '../store/admin.js';
import type { PrismaClient } from '../store/database.js';
import { claimAnnouncement, confirmAnnouncement, deleteGenerationImages, eraseUser, findBySeed, findGeneration, recentGenerations, unannouncedGenerations, unfinishedGenerationsOf } from '../store/generations.js';
import type { PrismaQuotaLedger, QuotaStanding } from '../store/quota-ledger.js';
import { redisOptions } from './redis.js';

/**
 * The chat side's one door to the rest of the system: the ImagineService port (src/core/chat/service.ts) over the
 * BullMQ queue, the Prisma store and the image store. It holds no state of its own beyond event listeners; the event
 * cursors live in Redis, so a restarted bot resumes where it stopped, and each outcome is posted once: the first to
 * claim it in the database (Generation.announcingUntil) posts it and then confirms (Generation.announcedAt), and
 * outcomes no event brought, or whose poster died before confirming, are found there.
 */
export interface ImagineServiceDependencies {
  prisma: PrismaClient;
  ledger: PrismaQuotaLedger;
  history: GenerationHistory;
  queue: GenerationQueue;
  images: ImageStore;
  redisUrl: string;
  queuePrefix: string;
  /** Models whose event streams this process follows (every model a worker may run for these chats). */
  models: readonly string[];
  /** How long /forget-me waits for running jobs it signalled to stop before refunding them itself (default 30 s). */
  eraseWaitMs?: number;
  /**
   * How often to look for unposted outcomes, how old an outcome must be to be taken from there, and how long a claim to
   * post one holds before another poster may take it (default 60 s, 30 s, 120 s).
   */
  announceSweep?: { intervalMs: number; graceMs: number; leaseMs?: number };
}

export interface RunningImagineService extends ImagineService {
  close(): Promise<void>;
}

/**
 * How often the bot looks in the database for outcomes that no event announced (a worker died before publishing, or
 * Redis lost the stream). An outcome younger than the grace is left to its event, which normally comes within
 * milliseconds of the record.
 */
const DEFAULT_ANNOUNCE_SWEEP = { intervalMs: 60_000, graceMs: 30_000 };
/** Longer than any adapter takes to post (Discord's rate limits included), or a slow post would be made twice. */
const DEFAULT_ANNOUNCE_LEASE_MS = 120_000;

export function createImagineService(deps: ImagineServiceDependencies): RunningImagineService {
  const listeners = new Set<{ platform: Platform; listener: (event: GenerationEvent) => void | Promise<void> }>();
  const following = new AbortController();
  const streams = new Map<string, Promise<void>>();
  const sweptPlatforms = new Set<Platform>();
  const sweeps = new Set<Promise<void>>();
  const posting = new Set<Promise<void>>();
  // Waits for Redis like an event reader: a cursor read that failed fast at start-up used to become "newest" and lose
  // every event published while the bot was down.
  const cursors = new Redis(redisOptions(deps.redisUrl, 'subscriber'));
  cursors.on('error', () => {});
  const cursorKey = (model: string) => `${deps.queuePrefix}:chat-cursor:${model}`;

  const hasListener = (platform: Platform) => [...listeners].some((entry) => entry.platform === platform);
  /** Settles once every listener has settled; one adapter's rendering problem never stops the others. */
  const dispatch = async (event: GenerationEvent): Promise<void> => {
    const handled = [...listeners].filter((entry) => entry.platform === event.platform).map(async (entry) => entry.listener(event));
    await Promise.allSettled(handled);
  };

  /** Repeats `work` through Redis or database outages until it succeeds; undefined once the service is closing. */
  const persist = async <T>(work: () => Promise<T>): Promise<T | undefined> => {
    for (let attempt = 0; !following.signal.aborted; attempt += 1) {
      try {
        return await work();
      } catch {
        await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** attempt, 2_000)));
      }
    }
    return undefined;
  };

  // An outcome reaches this process from its event, from the database sweep, or both (and other bot replicas see the
  // same events): the database claim lets one of them post it. It is confirmed only once the listeners have it, so a
  // bot killed in between leaves the claim to lapse and the sweep posts it again. Returns once claimed, not posted, so
  // one slow post does not hold up the stream.
  const announce = async (event: GenerationEvent) => {
    if (!hasListener(event.platform)) return;
    if (event.type === 'progress') return void dispatch(event);
    const claimedAt = new Date();
    if (!(await persist(() => claimAnnouncement(deps.prisma, event.generationId, claimedAt, announceLeaseMs)))) return;
    const posted = dispatch(event).then(async () => {
      await persist(() => confirmAnnouncement(deps.prisma, event.generationId));
    });
    posting.add(posted);
    void posted.finally(() => posting.delete(posted));
  };

  const sweep = async (platform: Platform, finishedBefore: Date) => {
    const records = await unannouncedGenerations(deps.prisma, platform, { finishedBefore, limit: 500 });
    for (const record of records) {
      if (following.signal.aborted) return;
      const event = eventOfRecord(record);
      if (event) await announce(event);
    }
  };
  const startSweep = (platform: Platform, finishedBefore: Date) => {
    const running = sweep(platform, finishedBefore).catch(() => {});
    sweeps.add(running);
    void running.finally(() => sweeps.delete(running));
  };
  const announceSweep: NonNullable<ImagineServiceDependencies['announceSweep']> = deps.announceSweep ?? DEFAULT_ANNOUNCE_SWEEP;
  const announceLeaseMs = announceSweep.leaseMs ?? DEFAULT_ANNOUNCE_LEASE_MS;
  const sweepTimer = setInterval(() => {
    for (const platform of sweptPlatforms) {
      if (hasListener(platform)) startSweep(platform, new Date(Date.now() - announceSweep.graceMs));
    }
  }, announceSweep.intervalMs);
  sweepTimer.unref();

  const follow = (model: string) => {
    if (streams.has(model)) return;
    streams.set(
      model,
      (async () => {
        const saved = await persist(() => cursors.get(cursorKey(model)));
        if (saved === undefined) return;
        for await (const event of subscribeEvents({ redisUrl: deps.redisUrl, prefix: deps.queuePrefix, model, fromId: saved ?? '$', signal: following.signal })) {
          await announce(toGenerationEvent(event));
          await cursors.set(cursorKey(model), event.id).catch(() => {});
        }
      })().catch(() => {}),
    );
  };

  const standingToStatus = (standing: QuotaStanding): QuotaStatus => ({
    remainingUnits: standing.remainingUnits,
    limitUnits: standing.limitUnits,
    resetsAt: standing.resetsAt,
    banned: standing.banned,
  });
  const identity = (requester: Requester) => ({
    platform: requester.platform,
    workspaceId: requester.workspaceId,
    userId: requester.userId,
  });
  const member = (admin: Requester, userId: string) => ({ platform: admin.platform, workspaceId: admin.workspaceId, userId });

  /**
   * Erasing must not leave work behind that charges or writes images later: queued jobs are removed (and refunded),
   * running ones signalled and awaited (the worker refunds them), and whatever is still unfinished after that — a job
   * Redis lost, a worker that does not answer — is refunded and recorded as cancelled here.
   */
  const stopUnfinished = async (who: ReturnType<typeof identity>) => {
    const unfinished = await unfinishedGenerationsOf(deps.prisma, who);
    if (unfinished.length === 0) return;
    const signalled = new Set<string>();
    for (const generationId of unfinished) {
      const record = await findGeneration(deps.prisma, generationId);
      if (!record) continue;
      // As the owner of that very job: it may have been asked for in another workspace than the one erasing.
      const outcome = await deps.queue.cancel(generationId, { ...record.request.requester, isAdmin: false }).catch((error: unknown) => {
        if (isImagineError(error) && error.kind === 'not_found') return 'not queued' as const;
        throw error;
      });
      if (outcome === 'signalled') signalled.add(generationId);
    }
    const deadlineMs = Date.now() + (deps.eraseWaitMs ?? 30_000);
    let left = await unfinishedGenerationsOf(deps.prisma, who);
    while (left.some((generationId) => signalled.has(generationId)) && Date.now() < deadlineMs) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      left = await unfinishedGenerationsOf(deps.prisma, who);
    }
    for (const generationId of left) {
      await deps.ledger.refund(generationId, 'cancelled: owner erased');
      await deps.history.markFailed(generationId, 'cancelled', 'Cancelled: its owner erased their data.');
    }
  };

  return {
    async submit(request) {
      const receipt = await deps.queue.enqueue(request, { units: generationCost(request) });
      return { position: receipt.position ?? 0, etaMs: receipt.estimatedWaitMs ?? 0 };
    },

    async cancel(requester, generationId) {
      if (generationId) {
        await deps.queue.cancel(generationId, requester);
        return generationId;
      }
      // A job that finished a moment ago can still be listed (its outcome is recorded before BullMQ completes it):
      // skip it rather than answer "already finished" to a /cancel that named nothing.
      for (const target of await deps.queue.unfinished(requester)) {
        const cancelled = await deps.queue.cancel(target, requester).then(
          () => true,
          (error: unknown) => {
            if (isImagineError(error) && error.kind === 'not_found') return false;
            throw error;
          },
        );
        if (cancelled) return target;
      }
      return null;
    },

    findGeneration: (generationId) => findGeneration(deps.prisma, generationId),
    findBySeed: (requester, seed) => findBySeed(deps.prisma, identity(requester), seed),
    history: (requester, limit) => recentGenerations(deps.prisma, identity(requester), limit),

    async storeDrawnMask(generationId, png) {
      const key = drawnMaskKey(generationId);
      await deps.images.put(key, png, 'image/png');
      return key;
    },

    async readImage(key) {
      const bytes = await deps.images.get(key);
      if (!bytes) throw new ImagineError('not_found', 'That image is no longer stored.');
      return bytes;
    },

    deleteGeneration: (generationId) => deleteGenerationImages(deps.prisma, deps.images, generationId),

    quota: async (requester) => standingToStatus(await deps.ledger.standing(identity(requester))),
    settings: (requester): Promise<UserSettings> => userSettings(deps.prisma, identity(requester)),
    updateSettings: (requester, changes) => updateUserSettings(deps.prisma, identity(requester), changes),
    async forgetUser(requester) {
      await stopUnfinished(identity(requester));
      return (await eraseUser(deps.prisma, deps.images, identity(requester))).generations;
    },

    async setQuota(admin, userId, limitUnits) {
      await setQuotaPolicy(deps.prisma, member(admin, userId), { unitsPerPeriod: limitUnits }, admin.userId);
      return standingToStatus(await deps.ledger.standing(member(admin, userId)));
    },
    grantQuota: async (admin, userId, units) => standingToStatus(await deps.ledger.grant(member(admin, userId), units, admin.userId)),
    resetQuota: async (admin, userId) => standingToStatus(await deps.ledger.reset(member(admin, userId), admin.userId)),
    async setBanned(admin, userId, banned) {
      await setBanned(deps.prisma, member(admin, userId), banned, admin.userId);
    },
    stats: (admin): Promise<WorkspaceStats> => workspaceUsageToday(deps.prisma, { platform: admin.platform, workspaceId: admin.workspaceId }),

    subscribe(platform, listener) {
      const entry = { platform, listener };
      listeners.add(entry);
      deps.models.forEach(follow);
      if (!sweptPlatforms.has(platform)) {
        // Everything that finished while no bot for this platform ran, the results of the last few seconds included.
        sweptPlatforms.add(platform);
        startSweep(platform, new Date());
      }
      return () => void listeners.delete(entry);
    },

    async close() {
      // Posts under way finish and are confirmed first: a clean stop never makes the next bot post them again.
      await Promise.allSettled([...posting]);
      following.abort();
      clearInterval(sweepTimer);
      await Promise.allSettled([...streams.values(), ...sweeps, ...posting]);
      cursors.disconnect();
    },
  };
}

/** An outcome as the database recorded it, for the sweep (a failed or cancelled generation was always refunded). */
function eventOfRecord(record: GenerationRecord): GenerationEvent | null {
  const base = { generationId: record.request.generationId, platform: record.request.requester.platform, replyTarget: record.request.replyTarget };
  switch (record.status) {
    case 'succeeded':
      return record.result ? { ...base, type: 'succeeded', result: record.result } : null;
    case 'failed':
      return { ...base, type: 'failed', userMessage: record.userMessage ?? 'This image failed.', refunded: true };
    case 'cancelled':
      return { ...base, type: 'cancelled', refunded: true };
    default:
      return null;
  }
}

/** Queue events → the chat port's events. Refunds always happen before a failed or cancelled event is published. */
function toGenerationEvent(event: QueueEvent): GenerationEvent {
  const base = { generationId: event.generationId, platform: event.platform, replyTarget: event.replyTarget };
  switch (event.type) {
    case 'progress':
      return { ...base, type: 'progress', step: event.step, totalSteps: event.totalSteps, previewKey: event.previewKey };
    case 'completed':
      return {
        ...base,
        type: 'succeeded',
        result: {
          generationId: event.generationId,
          imageKeys: event.imageKeys,
          gridKey: event.gridKey,
          seeds: event.seeds,
          timingsMs: event.timingsMs,
          ...(event.warnings && { warnings: event.warnings }),
        },
      };
    case 'failed':
      return { ...base, type: 'failed', userMessage: event.userMessage, refunded: true };
    case 'cancelled':
      return { ...base, type: 'cancelled', refunded: true };
  }
}
