import { z } from 'zod';
import { LIMITS } from '../../engine/limits.js';
import { SAMPLER_NAMES } from '../../engine/types.js';

/** What the chat flow must know about a model to turn user options into valid parameters. */
export const ModelLimits = z.object({
  name: z.string().min(1).max(100),
  /** The size the model was trained at; aspect ratios keep roughly its pixel count. */
  baseWidth: z.number().int().positive(),
  baseHeight: z.number().int().positive(),
  /** Width and height must be multiples of this (8 × the VAE's downsampling for latent models). */
  sizeMultiple: z.number().int().positive(),
  maxSide: z.number().int().positive(),
  /** SDXL-class models: the [width, height] sizes they were trained on; an aspect ratio picks the nearest of these. */
  aspectBuckets: z.array(z.tuple([z.number().int().positive(), z.number().int().positive()])).min(1).optional(),
  /** The only [width, height] sizes the model makes, when its folder lists them: /imagine takes only these, and edits are sized and priced by them. */
  sizes: z.array(z.tuple([z.number().int().positive(), z.number().int().positive()])).min(1).optional(),
  /** Pixels per latent cell; a one-size model pans by whole cells. */
  vaeScaleFactor: z.number().int().positive().optional(),
  defaultSteps: z.number().int().min(LIMITS.steps.min),
  maxSteps: z.number().int().min(LIMITS.steps.min).max(LIMITS.steps.max),
  defaultGuidance: z.number().min(LIMITS.guidance.min).max(LIMITS.guidance.max),
  defaultSampler: z.enum(SAMPLER_NAMES),
  /** The folder's LCM-distilled UNet: `--draft` (or `--sampler lcm`) runs it at these steps and guidance by default. */
  draft: z.object({ steps: z.number().int().min(LIMITS.steps.min).max(LIMITS.steps.max), guidance: z.number().min(LIMITS.guidance.min).max(LIMITS.guidance.max) }).optional(),
  /** What the model was trained to draw (its vocabulary.json), for /settings; absent for folders that do not say. */
  knows: z.object({ count: z.number().int().positive(), sample: z.array(z.string().min(1)).min(1) }).optional(),
});
export type ModelLimits = z.infer<typeof ModelLimits>;

export const ChatConfig = z.object({
  models: z.array(ModelLimits).min(1),
  /** Name of the model used when neither the request nor the user's settings name one. */
  defaultModel: z.string().min(1),
  maxBatch: z.number().int().min(LIMITS.batch.min).max(LIMITS.batch.max).default(LIMITS.batch.max),
  defaultBatch: z.number().int().min(LIMITS.batch.min).max(LIMITS.batch.max).default(LIMITS.batch.max),
  admins: z
    .object({
      /**
       * Users who are always admins, each named with its platform: `discord:<user id>`, `slack:<member id>`,
       * `web:<session user id>`. A bare id would let a user of one platform claim the id of an admin on another.
       */
      userIds: z
        .array(z.string().regex(/^(discord|slack|web):[A-Za-z0-9_-]{1,64}$/, 'must be platform:id, e.g. discord:123456789012345678 or slack:U012AB3CD'))
        .default([]),
      /** Discord role ids whose members are admins. */
      discordRoleIds: z.array(z.string()).default([]),
    })
    .default({ userIds: [], discordRoleIds: [] }),
});
export type ChatConfig = z.infer<typeof ChatConfig>;
