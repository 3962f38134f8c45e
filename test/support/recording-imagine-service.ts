import type { GenerationRequest, Platform, Requester } from '../../src/core/generation.js';
import type { ChatConfig } from '../../src/core/chat/chat-config.js';
import type {
  GenerationEvent,
  GenerationRecord,
  ImagineService,
  QueuePlacement,
  QuotaStatus,
  UserSettings,
  WorkspaceStats,
} from '../../src/core/chat/service.js';

/**
 * A small in-memory ImagineService for adapter tests: it records what the chat side asked for and lets a test push
 * generation events. It is a stand-in for the real queue and store, which have their own tests.
 */
export class RecordingImagineService implements ImagineService {
  readonly submitted: GenerationRequest[] = [];
  readonly cancelled: { requester: Requester; generationId?: string }[] = [];
  readonly adminCalls: string[] = [];
  readonly records = new Map<string, GenerationRecord>();
  readonly images = new Map<string, Buffer>();
  placement: QueuePlacement = { position: 2, etaMs: 40_000 };
  private readonly listeners = new Set<{ platform: Platform; listener: (event: GenerationEvent) => void }>();
  private readonly settingsByUser = new Map<string, UserSettings>();

  /** Resolves with the next submitted request. */
  nextSubmit(): Promise<GenerationRequest> {
    const seen = this.submitted.length;
    return waitFor(() => this.submitted[seen]);
  }

  async submit(request: GenerationRequest): Promise<QueuePlacement> {
    this.submitted.push(request);
    this.records.set(request.generationId, { request, status: 'queued', createdAt: new Date('2026-11-23T12:00:00Z') });
    return this.placement;
  }

  async cancel(requester: Requester, generationId?: string): Promise<string | null> {
    this.cancelled.push({ requester, generationId });
    return generationId ?? null;
  }

  async findGeneration(generationId: string) {
    return this.records.get(generationId) ?? null;
  }

  async findBySeed(requester: Requester, seed: number) {
    return [...this.records.values()].find((record) => record.request.requester.userId === requester.userId && record.request.params.seed === seed) ?? null;
  }

  async history(requester: Requester, limit: number) {
    return [...this.records.values()].filter((record) => record.request.requester.userId === requester.userId).slice(0, limit);
  }

  async storeDrawnMask(generationId: string, png: Buffer): Promise<string> {
    const key = `generations/${generationId}/drawn-mask.png`;
    this.images.set(key, png);
    return key;
  }

  async deleteGeneration(generationId: string): Promise<void> {
    const record = this.records.get(generationId);
    if (!record) return;
    for (const key of [...(record.result?.imageKeys ?? []), ...(record.result?.gridKey ? [record.result.gridKey] : [])]) this.images.delete(key);
    this.records.set(generationId, { ...record, deletedAt: new Date() });
  }

  async readImage(key: string): Promise<Buffer> {
    const bytes = this.images.get(key);
    if (!bytes) throw new Error(`no image ${key}`);
    return bytes;
  }

  async quota(): Promise<QuotaStatus> {
    return { remainingUnits: 7, limitUnits: 25, banned: false };
  }

  async settings(requester: Requester) {
    return this.settingsByUser.get(requester.userId) ?? {};
  }

  async updateSettings(requester: Requester, changes: UserSettings) {
    const merged = { ...(await this.settings(requester)), ...changes };
    this.settingsByUser.set(requester.userId, merged);
    return merged;
  }

  async forgetUser(requester: Requester) {
    this.adminCalls.push(`forget ${requester.userId}`);
    return 0;
  }

  async setQuota({ workspaceId }: Requester, userId: string, limitUnits: number) {
    this.adminCalls.push(`setQuota ${workspaceId} ${userId} ${limitUnits}`);
    return { remainingUnits: limitUnits, limitUnits, banned: false };
  }

  async grantQuota({ workspaceId }: Requester, userId: string, units: number) {
    this.adminCalls.push(`grantQuota ${workspaceId} ${userId} ${units}`);
    return { remainingUnits: units, limitUnits: 25, banned: false };
  }

  async resetQuota({ workspaceId }: Requester, userId: string) {
    this.adminCalls.push(`resetQuota ${workspaceId} ${userId}`);
    return { remainingUnits: 25, limitUnits: 25, banned: false };
  }

  async setBanned({ workspaceId }: Requester, userId: string, banned: boolean) {
    this.adminCalls.push(`${banned ? 'ban' : 'unban'} ${workspaceId} ${userId}`);
  }

  async stats(_admin: Requester): Promise<WorkspaceStats> {
    return { queued: 1, running: 1, succeededToday: 3, failedToday: 0, activeUsersToday: 2 };
  }

  subscribe(platform: Platform, listener: (event: GenerationEvent) => void) {
    const entry = { platform, listener };
    this.listeners.add(entry);
    return () => void this.listeners.delete(entry);
  }

  emit(event: GenerationEvent): void {
    for (const entry of this.listeners) if (entry.platform === event.platform) entry.listener(event);
  }

  /** Marks a recorded generation as finished with these image keys (and stores placeholder bytes for them). */
  finish(generationId: string, imageKeys: string[], gridKey?: string): GenerationRecord {
    const record = this.records.get(generationId)!;
    for (const key of [...imageKeys, ...(gridKey ? [gridKey] : [])]) this.images.set(key, Buffer.from(`png ${key}`));
    record.status = 'succeeded';
    record.result = { generationId, imageKeys, gridKey, seeds: imageKeys.map((_, k) => record.request.params.seed + k), timingsMs: {} };
    return record;
  }
}

export function waitFor<T>(probe: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const startedAt = Date.now();
  return new Promise((resolve, reject) => {
    const poll = () => {
      const value = probe();
      if (value !== undefined && value !== null && value !== false) return resolve(value);
      if (Date.now() - startedAt > timeoutMs) return reject(new Error('waitFor: condition not met in time'));
      setTimeout(poll, 10);
    };
    poll();
  });
}

export const TEST_CHAT_CONFIG: ChatConfig = {
  models: [
    {
      name: 'emoji-tiny',
      baseWidth: 512,
      baseHeight: 512,
      sizeMultiple: 8,
      maxSide: 1024,
      defaultSteps: 30,
      maxSteps: 60,
      defaultGuidance: 7,
      defaultSampler: 'euler-a',
    },
    {
      name: 'pixel-32',
      baseWidth: 32,
      baseHeight: 32,
      sizeMultiple: 8,
      maxSide: 64,
      defaultSteps: 20,
      maxSteps: 50,
      defaultGuidance: 5,
      defaultSampler: 'ddim',
    },
  ],
  defaultModel: 'emoji-tiny',
  maxBatch: 4,
  defaultBatch: 4,
  admins: { userIds: ['discord:940000000000000009', 'slack:UADMIN0001'], discordRoleIds: ['930000000000000002'] },
};
