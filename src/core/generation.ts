import { z } from 'zod';
import { ENGINE_JOB_KINDS, EngineJobParams } from '../engine/jobs.js';
import { LIMITS } from '../engine/limits.js';

/**
 * The platform-neutral description of one piece of work. Chat adapters build it, core validates it against policy,
 * the queue carries it as the job payload, the worker hands its parameters to the engine, the store keeps it as history.
 */
export const GENERATION_KINDS = ENGINE_JOB_KINDS;
export type GenerationKind = (typeof GENERATION_KINDS)[number];

export const PLATFORMS = ['discord', 'slack', 'web', 'cli'] as const;
export type Platform = (typeof PLATFORMS)[number];

export const Requester = z.object({
  platform: z.enum(PLATFORMS),
  /** Discord guild id, Slack team id, or 'local' for the web chat. */
  workspaceId: z.string().min(1).max(64),
  userId: z.string().min(1).max(64),
  isAdmin: z.boolean().default(false),
});
export type Requester = z.infer<typeof Requester>;

/** What the engine takes (src/engine/jobs.ts, on the limits src/engine/limits.ts defines once), and which model runs it. */
export const GenerationParams = EngineJobParams.extend({
  model: z.string().min(1).max(100),
});
export type GenerationParams = z.infer<typeof GenerationParams>;

export const GenerationRequest = z.object({
  /** Idempotency key for every side effect (queue job id, ledger rows, stored images, posted messages). */
  generationId: z.string().regex(/^[A-Za-z0-9_-]{8,64}$/),
  kind: z.enum(GENERATION_KINDS),
  params: GenerationParams,
  requester: Requester,
  mode: z.enum(['fast', 'relax']).default('fast'),
  /** For upscale / vary / reroll: the generation and image index the action was taken on. */
  parent: z.object({ generationId: z.string(), imageIndex: z.number().int().min(0).max(3) }).optional(),
  /** vary-region from a drawn mask: the image store key of the mask PNG (white = repaint), in the parent's pixels. */
  maskKey: z.string().min(1).max(200).optional(),
  /** blend: the pictures blended, in order (the first is also `parent`). */
  blendParents: z
    .array(z.object({ generationId: z.string(), imageIndex: z.number().int().min(0).max(3) }))
    .min(LIMITS.blendImages.min)
    .max(LIMITS.blendImages.max)
    .optional(),
  /** Opaque to everything but the adapter that made it: where to post progress and results. */
  replyTarget: z.string().max(2000),
});
export type GenerationRequest = z.infer<typeof GenerationRequest>;
