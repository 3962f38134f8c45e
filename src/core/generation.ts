import { z } from 'zod';
import { SAMPLER_NAMES } from '../engine/types.js';

/**
 * The platform-neutral description of one piece of work. Chat adapters build it, core validates it against policy,
 * the queue carries it as the job payload, the worker hands its parameters to the engine, the store keeps it as history.
 */
export const GENERATION_KINDS = ['imagine', 'upscale', 'vary-subtle', 'vary-strong', 'reroll', 'img2img'] as const;
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

export const GenerationParams = z.object({
  prompt: z.string().min(1).max(2000),
  negativePrompt: z.string().max(2000).default(''),
  width: z.number().int().min(8).max(4096),
  height: z.number().int().min(8).max(4096),
  steps: z.number().int().min(1).max(150),
  guidance: z.number().min(0).max(30),
  sampler: z.enum(SAMPLER_NAMES),
  seed: z.number().int().min(0).max(4294967295),
  batch: z.number().int().min(1).max(4),
  model: z.string().min(1).max(100),
  /** image-to-image / variation strength in (0, 1]. */
  strength: z.number().gt(0).lte(1).optional(),
  /** A1111-style seed variation: a second seed slerped in with this strength. */
  variationSeed: z.number().int().min(0).max(4294967295).optional(),
  variationStrength: z.number().min(0).max(1).optional(),
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
  /** Opaque to everything but the adapter that made it: where to post progress and results. */
  replyTarget: z.string().max(2000),
});
export type GenerationRequest = z.infer<typeof GenerationRequest>;
