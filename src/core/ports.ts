import type { GenerationRequest } from './generation.js';

/**
 * What core needs from the outside world. Implementations live at the edges (src/store, src/queue, src/engine); core and
 * tests talk to these interfaces only. Every method that causes a side effect is idempotent by generationId.
 */

export interface QuotaReservation {
  generationId: string;
  units: number;
}

export interface QuotaLedger {
  /** Reserve `units` for this generation in one conditional statement; throws ImagineError 'quota_exceeded'. */
  reserve(request: GenerationRequest, units: number): Promise<QuotaReservation>;
  /** Turn the reservation into a charge. Idempotent. */
  commit(generationId: string): Promise<void>;
  /** Give the reserved units back (failure, cancel). Idempotent; a no-op after commit. */
  refund(generationId: string, reason: string): Promise<void>;
}

export type GenerationStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export type FinishedStatus = Exclude<GenerationStatus, 'queued' | 'running'>;

export interface GenerationResult {
  generationId: string;
  /** Image store keys, one per image, in batch order, plus the grid when batch > 1. */
  imageKeys: string[];
  gridKey?: string;
  seeds: number[];
  timingsMs: Record<string, number>;
  /** Edits: image store key of the mask of what was repainted, at the result's size (white = repainted). */
  maskKey?: string;
  /** Told to the user with the result (the part of a prompt past the model's token limit). */
  warnings?: string[];
}

export interface GenerationHistory {
  recordQueued(request: GenerationRequest): Promise<void>;
  markRunning(generationId: string): Promise<void>;
  /**
   * Record the outcome if the generation is still unfinished, and return the outcome now on record — another
   * worker's, when one finished first; null when the generation no longer exists (its user was erased). Charging and
   * announcing follow the recorded outcome, so a worker that dies right after recording leaves them to the next one.
   */
  markSucceeded(result: GenerationResult): Promise<FinishedStatus | null>;
  /** `announced`: the requester has already been told (the failure was the answer to their request), so post nothing. */
  markFailed(
    generationId: string,
    status: 'failed' | 'cancelled',
    userMessage: string,
    options?: { announced?: boolean },
  ): Promise<FinishedStatus | null>;
}

/**
 * Takes a request in: its quota reserved and its generation recorded as queued, both or neither (one database
 * transaction), so the database alone says what was accepted and a crash leaves no charge without a generation.
 */
export interface GenerationIntake {
  accept(request: GenerationRequest, units: number): Promise<QuotaReservation>;
}

export interface ImageStore {
  put(key: string, bytes: Buffer, contentType: string, options?: { ttlSeconds?: number }): Promise<void>;
  get(key: string): Promise<Buffer | null>;
  delete(key: string): Promise<void>;
  /** Deletes every image whose key starts with `prefix` (a folder such as `previews/<generationId>/`). */
  deletePrefix(prefix: string): Promise<void>;
}

export interface GenerationProgress {
  step: number;
  totalSteps: number;
  /** Image store key of a small WebP preview, when one was made for this step. */
  previewKey?: string;
}

export interface EngineStepEvent {
  step: number;
  totalSteps: number;
  /** Encodes a small WebP preview of the current x̂0 on demand, so throttled steps cost nothing. */
  preview: () => Promise<Buffer>;
}

export interface EngineOutput {
  /** PNG files (with their A1111 `parameters` chunk), one per image, in batch order. */
  images: Buffer[];
  /** A 2×2 (or smaller) PNG grid when the batch has more than one image. */
  grid?: Buffer;
  seeds: number[];
  timingsMs: Record<string, number>;
  /** Edits (vary-region, zoom-out, pan, blend): what was done, and the mask PNG of what was repainted. */
  edit?: { description: string; mask?: Buffer };
  warnings?: string[];
}

/** The diffusion engine as the worker sees it; src/engine implements it for a model folder. */
export interface ImageEngine {
  readonly modelName: string;
  /**
   * `parentImage` is the PNG an upscale / vary / img2img / edit acts on, `maskImage` the drawn mask of a vary-region
   * and `blendImages` the pictures a blend mixes (the worker fetches them from the image store).
   */
  generate(
    request: GenerationRequest,
    hooks: { signal?: AbortSignal; parentImage?: Buffer; maskImage?: Buffer; blendImages?: Buffer[]; onStep?: (event: EngineStepEvent) => void },
  ): Promise<EngineOutput>;
}

/** One stored message of a chat transcript; `message` is the adapter's own rendering, kept as JSON. */
export interface StoredChatMessage {
  id: string;
  message: unknown;
  generationId?: string;
  stage: string;
  lastStep: number;
}

/**
 * Where a chat that keeps its own conversation (the web chat) keeps it, beside the rest of the user's data: it outlives
 * a restart, and erasing the user (/forget-me) erases it.
 */
export interface ChatTranscriptStore {
  /** The user's messages, oldest first, at most `limit` (the newest). */
  load(userId: string, limit: number): Promise<StoredChatMessage[]>;
  /** Inserts or replaces a message; a new one beyond `keep` messages drops the user's oldest. */
  save(userId: string, entry: StoredChatMessage, keep: number): Promise<void>;
  remove(userId: string, messageId: string): Promise<void>;
}
