import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import type { GenerationRequest } from '../../src/core/generation.js';

type RequestInput = z.input<typeof GenerationRequest>;

/** A valid imagine request for the test engine's model, with any field overridden. */
export function imagineRequest(overrides: Partial<RequestInput> & { prompt?: string; steps?: number; userId?: string } = {}): RequestInput {
  const { prompt, steps, userId, ...rest } = overrides;
  return {
    generationId: `gen-${randomUUID()}`,
    kind: 'imagine',
    params: {
      prompt: prompt ?? 'a lighthouse at dusk',
      width: 64,
      height: 64,
      steps: steps ?? 4,
      guidance: 7,
      sampler: 'euler',
      seed: 42,
      batch: 1,
      model: 'test-model',
    },
    requester: { platform: 'discord', workspaceId: 'guild-1', userId: userId ?? 'user-1' },
    mode: 'fast',
    replyTarget: 'channel-1/message-1',
    ...rest,
  };
}
