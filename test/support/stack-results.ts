import { randomUUID } from 'node:crypto';
import { planResultAction } from '../../src/core/chat/result-actions.js';
import type { GenerationRecord } from '../../src/core/chat/service.js';
import type { GenerationParams, GenerationRequest, Requester } from '../../src/core/generation.js';
import { expect } from 'vitest';
import { generationCost } from '../../src/core/quota.js';
import { eventually, type ServiceStack } from './service-stack.js';

/**
 * Finished results made through a service stack's real queue and worker, for tests of what the chat does with them,
 * and what a refusal must leave unchanged.
 */

/** The generation's record once it is done; one that failed or was cancelled stops the test with its reason. */
export async function finishedGeneration(stack: ServiceStack, generationId: string): Promise<GenerationRecord> {
  const record = await eventually(async () => {
    const found = await stack.service.findGeneration(generationId);
    return found && found.status !== 'queued' && found.status !== 'running' ? found : undefined;
  });
  if (record.status !== 'succeeded') throw new Error(`${generationId} ${record.status}: ${record.userMessage ?? 'no reason given'}`);
  return record;
}

/** An imagine of "a red fox" at 64x64 in 2 steps (any of it overridden), finished. */
export async function imagined(
  stack: ServiceStack,
  requester: Requester,
  params: Partial<GenerationParams> = {},
  mode: GenerationRequest['mode'] = 'fast',
): Promise<GenerationRecord> {
  const generationId = randomUUID();
  await stack.service.submit({
    generationId,
    kind: 'imagine',
    params: { prompt: 'a red fox', negativePrompt: 'blur', width: 64, height: 64, steps: 2, guidance: 5, sampler: 'euler', seed: 7, batch: 1, model: stack.chatConfig.defaultModel, ...params },
    requester,
    mode,
    replyTarget: '{}',
  });
  return finishedGeneration(stack, generationId);
}

/** Picture `imageIndex` of a result, upscaled by `requester` as the Upscale button does it, finished. */
export async function upscaled(stack: ServiceStack, requester: Requester, record: GenerationRecord, imageIndex = 0): Promise<GenerationRecord> {
  const plan = await planResultAction({ action: 'upscale', generationId: record.request.generationId, imageIndex }, requester, stack.service, stack.chatConfig);
  if (plan.type !== 'generate') throw new Error(`expected an upscale to queue, got ${plan.type}`);
  await stack.service.submit({ ...plan.draft, replyTarget: '{}' });
  return finishedGeneration(stack, plan.draft.generationId);
}

/** What `requester` has asked for and been charged, and how many jobs the model's queue ever took. */
export async function queuedAndCharged(stack: ServiceStack, requester: Requester) {
  const jobCounts = await stack.modelQueue.getJobCounts();
  return {
    generationIds: (await stack.service.history(requester, 20)).map((record) => record.request.generationId),
    jobsEverQueued: Object.values(jobCounts).reduce((sum, count) => sum + count, 0),
    usedUnits: (await stack.ledger.standing(requester)).usedUnits,
  };
}

/**
 * The requester's generations in each place that keeps them, by id: recorded in the store, queued in the model's queue
 * (in any state: finished jobs are kept a day), and the units the ledger charged.
 */
export async function heldFor(stack: ServiceStack, requester: Requester) {
  const jobs = await stack.modelQueue.getJobs(['waiting', 'prioritized', 'active', 'delayed', 'completed', 'failed']);
  const same = (other: Requester) => other.platform === requester.platform && other.workspaceId === requester.workspaceId && other.userId === requester.userId;
  return {
    recorded: (await stack.service.history(requester, 50)).map((record) => record.request.generationId).sort(),
    queued: jobs
      .filter((job) => same((job.data as GenerationRequest).requester))
      .map((job) => (job.data as GenerationRequest).generationId)
      .sort(),
    usedUnits: (await stack.ledger.standing(requester)).usedUnits,
  };
}

/** The store, the queue and the ledger each hold exactly these requests of the requester, charged at their cost. */
export async function expectHeldExactly(stack: ServiceStack, requester: Requester, requests: GenerationRequest[]): Promise<void> {
  const ids = requests.map((request) => request.generationId).sort();
  expect(await heldFor(stack, requester)).toEqual({ recorded: ids, queued: ids, usedUnits: requests.reduce((sum, request) => sum + generationCost(request), 0) });
}

/** The requester's generations, newest first, once there are at least `count` of them. */
export const latestGenerations = (stack: ServiceStack, requester: Requester, count: number) =>
  eventually(async () => {
    const records = await stack.service.history(requester, count);
    return records.length === count ? records : undefined;
  });

/** Holds the model's queue (BullMQ's pause, which the worker obeys) while `during` runs: a queued job stays queued while the test looks at it. */
export async function withQueuePaused<T>(stack: ServiceStack, during: () => Promise<T>): Promise<T> {
  await stack.modelQueue.pause();
  try {
    return await during();
  } finally {
    await stack.modelQueue.resume();
  }
}
