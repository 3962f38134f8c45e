import { z } from 'zod';
import { GenerationRequest, type Requester } from '../core/generation.js';

/**
 * The one job payload, shared by producer and worker: the request as core validated it, plus when it was queued.
 * The BullMQ job id is the generationId, so enqueueing the same generation twice adds one job.
 */
export const QueuedGeneration = GenerationRequest.extend({
  enqueuedAt: z.number().int().nonnegative(),
});
export type QueuedGeneration = z.infer<typeof QueuedGeneration>;

/** BullMQ picks the lowest number first; equal priorities run in arrival order. */
export const PRIORITY = { fast: 1, relax: 2 } as const;

/**
 * Admins get the fast priority, never one above it, so an admin's burst queues behind users' fast jobs that came first.
 * Relax jobs run when no fast job waits.
 */
export function priorityFor(request: Pick<GenerationRequest, 'mode'>): number {
  return PRIORITY[request.mode];
}

/** One queue per model, so a worker only takes jobs for the model it loaded. BullMQ queue names may not hold ':'. */
export function queueNameForModel(model: string): string {
  return `images.${encodeURIComponent(model)}`;
}

/** Image store keys derived from the generation id, so a retried job overwrites rather than duplicates. */
export function finalImageKey(generationId: string, imageIndex: number): string {
  return `generations/${generationId}/${imageIndex}.png`;
}

export function gridImageKey(generationId: string): string {
  return `generations/${generationId}/grid.png`;
}

/** The mask a user painted for a vary-region, stored before the job is queued. */
export function drawnMaskKey(generationId: string): string {
  return `generations/${generationId}/drawn-mask.png`;
}

/** An edit's mask of what it repainted, at the result's size. */
export function editMaskKey(generationId: string): string {
  return `generations/${generationId}/mask.png`;
}

/** Every preview of a generation lies under this folder, so erasing a user can delete them without listing steps. */
export function previewFolderKey(generationId: string): string {
  return `previews/${generationId}/`;
}

export function previewImageKey(generationId: string, step: number): string {
  return `${previewFolderKey(generationId)}${step}.webp`;
}

/** Redis keys this project keeps beside BullMQ's own, under the same prefix. */
export function imagineKeys(prefix: string) {
  const root = `${prefix}:imagine`;
  return {
    userClaims: (requester: Requester) => `${root}:claims:user:${requester.platform}:${requester.workspaceId}:${requester.userId}`,
    workspaceClaims: (requester: Requester) => `${root}:claims:workspace:${requester.platform}:${requester.workspaceId}`,
    /** Which queue a generation went to, so cancel and position need only its id. */
    queueOf: (generationId: string) => `${root}:queue-of:${generationId}`,
    cancelRequested: (generationId: string) => `${root}:cancel:${generationId}`,
    cancelChannel: `${root}:cancel`,
    terminalEvent: (generationId: string) => `${root}:terminal:${generationId}`,
    runTimeAverage: (queueName: string) => `${root}:run-time-ms:${queueName}`,
    events: (queueName: string) => `${root}:events:${queueName}`,
  };
}
export type ImagineKeys = ReturnType<typeof imagineKeys>;

/** How long the bookkeeping keys above outlive their generation. */
export const BOOKKEEPING_TTL_SECONDS = 7 * 24 * 3600;
