import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandContext } from '../../src/core/chat/commands/command.js';
import { findCommand, runCommand } from '../../src/core/chat/commands/index.js';
import type { GenerationEvent } from '../../src/core/chat/service.js';
import { GenerationRequest, type Requester } from '../../src/core/generation.js';
import { createGenerationHistory } from '../../src/store/generations.js';
import { imagineRequest } from '../support/generation-requests.js';
import { eventually, startServiceStack, type ServiceStack } from '../support/service-stack.js';

const admin: Requester = { platform: 'web', workspaceId: 'local', userId: 'web-admin', isAdmin: true };

describe.each(['pglite', 'postgres'] as const)('/forget-me keeps what is owed (%s)', (database) => {
  let stack: ServiceStack;
  const events: GenerationEvent[] = [];

  beforeAll(async () => {
    stack = await startServiceStack({ database, quotaUnitsPerPeriod: 1000, name: `forget-me-${database}` });
    stack.service.subscribe('web', (event) => void events.push(event));
  }, 120_000);
  afterAll(() => stack.stop());

  const person = (userId: string): Requester => ({ platform: 'web', workspaceId: 'local', userId, isAdmin: false });
  const request = (requester: Requester, params: { steps: number; batch?: number; size?: number }) => {
    const input = imagineRequest({ requester, replyTarget: `web:${requester.userId}` });
    Object.assign(input.params, { model: stack.chatConfig.defaultModel, steps: params.steps, batch: params.batch ?? 1 });
    if (params.size) Object.assign(input.params, { width: params.size, height: params.size });
    return GenerationRequest.parse(input);
  };
  const statusOf = async (generationId: string) => (await stack.service.findGeneration(generationId))?.status;
  const forgetMe = (requester: Requester): CommandContext => ({
    requester,
    subcommand: [],
    options: { confirm: true },
    service: stack.service,
    config: stack.chatConfig,
    openGenerationMessage: async () => 'unused',
    openAnotherGenerationMessage: async () => {
      throw new Error('/forget-me opens no generation message');
    },
    generationIdOfMessageLink: async () => null,
  });
  const missing = (key: string) => stack.service.readImage(key).then(() => false, () => true);

  it('deletes prompts, images, previews and settings, cancels and refunds unfinished jobs, and keeps the quota used and the limit an admin set', async () => {
    const member = person('web-forgetful');
    await stack.service.setQuota(admin, member.userId, 500);
    await stack.service.updateSettings(member, { mode: 'relax' });

    const finished = request(member, { steps: 4 });
    await stack.service.submit(finished);
    await eventually(async () => ((await statusOf(finished.generationId)) === 'succeeded' ? true : undefined));
    const [imageKey] = (await stack.service.findGeneration(finished.generationId))!.result!.imageKeys;
    // The events reach this subscriber through the Redis stream, so the preview may arrive after the status is stored.
    const previewKey = await eventually(async () =>
      events.find((event) => event.type === 'progress' && event.generationId === finished.generationId && event.previewKey),
    );
    if (previewKey?.type !== 'progress' || !previewKey.previewKey) throw new Error('the finished job showed no preview');
    expect(await missing(imageKey)).toBe(false);
    expect(await missing(previewKey.previewKey)).toBe(false);

    // One long job the worker is running and one queued behind it (the worker takes one at a time).
    const running = request(member, { steps: 150, batch: 4, size: 128 });
    const queued = request(member, { steps: 4 });
    await stack.service.submit(running);
    await stack.service.submit(queued);
    await eventually(async () => ((await statusOf(running.generationId)) === 'running' ? true : undefined));
    expect((await stack.service.quota(member)).remainingUnits).toBe(500 - 1 - 38 - 1);

    const view = await runCommand(findCommand('forget-me')!, forgetMe(member));
    expect(view.text).toMatch(/^Done: 3 generation\(s\).*Your quota use this period, any limit an admin set and any ban stay\.$/);

    for (const generation of [finished, running, queued]) expect(await stack.service.findGeneration(generation.generationId)).toBeNull();
    expect(await stack.service.history(member, 10)).toEqual([]);
    expect(await missing(imageKey)).toBe(true);
    expect(await missing(previewKey.previewKey)).toBe(true);
    for (const event of events) if (event.type === 'progress' && event.previewKey) expect(await missing(event.previewKey)).toBe(true);
    expect(await stack.service.settings(member)).toEqual({});
    // The finished job stays charged; the two it stopped were refunded, and the admin's limit still applies.
    expect(await stack.service.quota(member)).toMatchObject({ remainingUnits: 499, limitUnits: 500 });
    const refunds = await stack.database.prisma.usageLedger.findMany({ where: { kind: 'refund', generationId: { in: [running.generationId, queued.generationId] } } });
    expect(refunds).toHaveLength(2);
    expect(await stack.modelQueue.count()).toBe(0);
    const cancelled = () => events.filter((event) => event.type === 'cancelled').map((event) => event.generationId).sort();
    await eventually(async () => (cancelled().length >= 2 ? true : undefined));
    expect(cancelled()).toEqual([running.generationId, queued.generationId].sort());

    const again = request(member, { steps: 4 });
    await stack.service.submit(again);
    expect(await stack.service.quota(member)).toMatchObject({ remainingUnits: 498, limitUnits: 500 });
    await eventually(async () => ((await statusOf(again.generationId)) === 'succeeded' ? true : undefined));
  });

  it('keeps a ban: the banned person who erases their data still cannot generate', async () => {
    const banned = person('web-banned');
    await stack.service.submit(request(banned, { steps: 1 }));
    await stack.service.setBanned(admin, banned.userId, true);
    await runCommand(findCommand('forget-me')!, forgetMe(banned));
    expect((await stack.service.quota(banned)).banned).toBe(true);
    await expect(stack.service.submit(request(banned, { steps: 1 }))).rejects.toMatchObject({ kind: 'forbidden' });
  });

  it('refunds a job that PostgreSQL records as queued but Redis lost, instead of leaving it charged for ever', async () => {
    const member = person('web-lost-job');
    const lost = request(member, { steps: 4 });
    // As a Redis without persistence leaves it after a restart: the reservation and the row, but no job.
    await stack.ledger.reserve(lost, 10);
    await createGenerationHistory(stack.database.prisma).recordQueued(lost);
    expect((await stack.service.quota(member)).remainingUnits).toBe(990);

    await stack.service.forgetUser(member);
    expect((await stack.service.quota(member)).remainingUnits).toBe(1000);
    expect(await stack.service.findGeneration(lost.generationId)).toBeNull();
  });
});
