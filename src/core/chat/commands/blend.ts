import { randomInt } from 'node:crypto';
import { LIMITS, MAX_SEED } from '../../../engine/limits.js';
import { ImagineError, invalidInput } from '../../errors.js';
import { GenerationRequest } from '../../generation.js';
import { editParams } from '../edits.js';
import { newGenerationId } from '../result-actions.js';
import type { GenerationRecord } from '../service.js';
import { acceptedView } from '../views.js';
import { stringOption, type ChatCommand, type CommandContext } from './command.js';

const GENERATION_ID = /^[A-Za-z0-9_-]{8,64}$/;
const IMAGE_OPTIONS = ['image1', 'image2', 'image3', 'image4'] as const;

/** The one picture a blend takes from a result: an upscale or an edit (a grid's four would be ambiguous). */
async function pictureOf(target: string, { service, generationIdOfMessageLink }: CommandContext): Promise<GenerationRecord> {
  const generationId = /^https?:\/\//.test(target) ? await generationIdOfMessageLink(target) : GENERATION_ID.test(target) ? target : null;
  if (!generationId) throw invalidInput(`"${target}" is neither a link to one of my messages nor a generation id.`);
  const record = await service.findGeneration(generationId);
  // A deleted result keeps its row (for history and lineage) but no pictures.
  if (!record || record.deletedAt) throw new ImagineError('not_found', `I found no image for "${target}": it was deleted, or its owner asked to be forgotten.`);
  if (record.status !== 'succeeded' || !record.result) throw invalidInput(`"${target}" has no finished picture yet; wait for it, then blend.`);
  if (record.result.imageKeys.length !== 1) throw invalidInput(`"${target}" is a grid of ${record.result.imageKeys.length} pictures: upscale the one you want (U1–U4) and blend the upscale.`);
  return record;
}

export const blendCommand: ChatCommand = {
  definition: {
    name: 'blend',
    description: 'Blend 2–4 of my pictures: a latent blend (their latents slerped), then redrawn image-to-image',
    adminOnly: false,
    options: IMAGE_OPTIONS.map((name, index) => ({
      name,
      description: `${index < LIMITS.blendImages.min ? 'A' : 'Optionally, a'} link to one of my pictures (an upscale or an edit), or its generation id`,
      type: 'string' as const,
      required: index < LIMITS.blendImages.min,
    })),
  },
  ephemeral: () => false,
  async handle(context) {
    const targets = IMAGE_OPTIONS.map((name) => stringOption(context.options, name)?.trim()).filter((target): target is string => !!target);
    if (targets.length < LIMITS.blendImages.min) throw invalidInput(`/blend takes ${LIMITS.blendImages.min} to ${LIMITS.blendImages.max} pictures; give at least ${LIMITS.blendImages.min}.`);
    const pictures: GenerationRecord[] = [];
    for (const target of targets) pictures.push(await pictureOf(target, context));
    const [first] = pictures;
    const prompt = [...new Set(pictures.map((picture) => picture.request.params.prompt))].join(', ').slice(0, LIMITS.promptChars);
    // The blend is made at the first picture's editing size, with its settings (src/engine/edits.ts blendPictures).
    const params = editParams(first, { kind: 'blend', prompt }, context.config, randomInt(0, MAX_SEED + 1));
    const replyTarget = await context.openGenerationMessage(false);
    const request = GenerationRequest.parse({
      generationId: newGenerationId(),
      kind: 'blend',
      params,
      requester: context.requester,
      mode: first.request.mode,
      parent: { generationId: first.request.generationId, imageIndex: 0 },
      blendParents: pictures.map((picture) => ({ generationId: picture.request.generationId, imageIndex: 0 })),
      replyTarget,
    });
    const placement = await context.service.submit(request);
    return acceptedView(request, placement);
  },
};
