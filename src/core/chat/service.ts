import type { GenerationRequest, Platform, Requester } from '../generation.js';
import type { GenerationResult, GenerationStatus } from '../ports.js';
import type { SamplerName } from '../../engine/types.js';

/**
 * What the chat flow needs from the rest of the system (queue, store, quota ledger). Chat adapters talk to this port
 * only; the service role wires it to BullMQ and Prisma. Every method is safe to call again after a restart: nothing
 * here relies on state kept in the adapter's memory.
 */

export interface QueuePlacement {
  /** 1 = next to run; 0 = already running. */
  position: number;
  etaMs: number;
}

export interface GenerationRecord {
  request: GenerationRequest;
  status: GenerationStatus;
  result?: GenerationResult;
  /** Why it failed or was cancelled, written for the user. */
  userMessage?: string;
  createdAt: Date;
  /** Set once ❌ deleted its images: the record stays for the lineage, the pictures are gone. */
  deletedAt?: Date;
}

export interface QuotaStatus {
  /** Quota units (docs/QUOTA.md) the user may still spend this period; null when unlimited. */
  remainingUnits: number | null;
  limitUnits: number | null;
  resetsAt?: Date;
  banned: boolean;
}

/** A user's defaults for /imagine; what the command line says wins over them. */
export interface UserSettings {
  model?: string;
  mode?: 'fast' | 'relax';
  sampler?: SamplerName;
  steps?: number;
}

export interface WorkspaceStats {
  queued: number;
  running: number;
  succeededToday: number;
  failedToday: number;
  activeUsersToday: number;
}

interface EventBase {
  generationId: string;
  platform: Platform;
  /** The adapter-made `replyTarget` of the request: where to render the event. */
  replyTarget: string;
}

export type GenerationEvent =
  | (EventBase & { type: 'progress'; step: number; totalSteps: number; previewKey?: string })
  | (EventBase & { type: 'succeeded'; result: GenerationResult })
  | (EventBase & { type: 'failed'; userMessage: string; refunded: boolean })
  | (EventBase & { type: 'cancelled'; refunded: boolean });

export interface ImagineService {
  /** Reserves quota and enqueues; throws ImagineError ('quota_exceeded', 'forbidden' for banned users, 'busy'). */
  submit(request: GenerationRequest): Promise<QueuePlacement>;
  /** Cancels the given generation, or the requester's latest unfinished one; returns the id cancelled, if any. */
  cancel(requester: Requester, generationId?: string): Promise<string | null>;
  findGeneration(generationId: string): Promise<GenerationRecord | null>;
  /** The requester's latest generation that used this seed. */
  findBySeed(requester: Requester, seed: number): Promise<GenerationRecord | null>;
  history(requester: Requester, limit: number): Promise<GenerationRecord[]>;
  readImage(key: string): Promise<Buffer>;
  /** Keeps the mask a user painted for a vary-region, before it is queued; returns its image store key. */
  storeDrawnMask(generationId: string, png: Buffer): Promise<string>;
  /** ❌: removes the generation's images, grid and previews from the image store and marks its record deleted. */
  deleteGeneration(generationId: string): Promise<void>;

  quota(requester: Requester): Promise<QuotaStatus>;
  settings(requester: Requester): Promise<UserSettings>;
  updateSettings(requester: Requester, changes: UserSettings): Promise<UserSettings>;
  /**
   * Cancels the requester's unfinished jobs (refunded), then deletes their history, images, previews and settings;
   * their quota use, admin-set policies and bans stay. Returns how many generations were removed.
   */
  forgetUser(requester: Requester): Promise<number>;

  /** Admin actions name the admin who took them (their workspace is the one acted on; the action is recorded). */
  setQuota(admin: Requester, userId: string, limitUnits: number): Promise<QuotaStatus>;
  grantQuota(admin: Requester, userId: string, units: number): Promise<QuotaStatus>;
  resetQuota(admin: Requester, userId: string): Promise<QuotaStatus>;
  setBanned(admin: Requester, userId: string, banned: boolean): Promise<void>;
  stats(admin: Requester): Promise<WorkspaceStats>;

  /**
   * Events of every generation made on `platform`; returns the unsubscribe function. An outcome counts as posted once
   * the listener's promise settles (a listener returning nothing: once it returns); a process killed before that gets
   * the outcome posted again from the database.
   */
  subscribe(platform: Platform, listener: (event: GenerationEvent) => void | Promise<void>): () => void;
}
