import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandContext, OptionValues } from '../../src/core/chat/commands/command.js';
import { findCommand, runCommand } from '../../src/core/chat/commands/index.js';
import type { GenerationRecord } from '../../src/core/chat/service.js';
import type { Requester } from '../../src/core/generation.js';
import { eventually, startServiceStack, type ServiceStack } from '../support/service-stack.js';

/**
 * The chat commands as every adapter runs them (runCommand), over the real ImagineService: the queue in Redis, a
 * worker running the tiny-sd fixture, the ledger and history in PGlite and in PostgreSQL.
 */

const admin: Requester = { platform: 'discord', workspaceId: 'guild-commands', userId: 'admin-1', isAdmin: true };
const person = (userId: string): Requester => ({ platform: 'discord', workspaceId: 'guild-commands', userId, isAdmin: false });

describe.each(['pglite', 'postgres'] as const)('chat commands over the real service (%s)', (database) => {
  let stack: ServiceStack;
  const links = new Map<string, string>();
  /** Messages a permutation prompt opened after the command's reply, with the text each shows. */
  const others: { replyTarget: string; shown: string }[] = [];

  beforeAll(async () => {
    stack = await startServiceStack({ database, quotaUnitsPerPeriod: 100, name: `chat-commands-${database}` });
  }, 120_000);
  afterAll(() => stack.stop());

  const run = (name: string, requester: Requester, options: OptionValues = {}, subcommand: string[] = []) =>
    runCommand(findCommand(name)!, {
      requester,
      subcommand,
      options,
      service: stack.service,
      config: stack.chatConfig,
      openGenerationMessage: async () => `message-${links.size + 1}`,
      openAnotherGenerationMessage: async () => {
        const message = { replyTarget: `another-message-${others.length + 1}`, shown: '' };
        others.push(message);
        return { replyTarget: message.replyTarget, show: async (view) => void (message.shown = view.text), remove: async () => undefined };
      },
      generationIdOfMessageLink: async (link) => links.get(link) ?? null,
    } satisfies CommandContext);

  const latest = async (requester: Requester) => (await stack.service.history(requester, 1))[0];
  const finished = (requester: Requester, status: GenerationRecord['status'] = 'succeeded') =>
    eventually(async () => {
      const record = await latest(requester);
      return record?.status === status ? record : undefined;
    });
  const used = async (requester: Requester) => (await stack.ledger.standing(requester)).usedUnits;

  it('/history lists what a person made, newest first with its status, and nothing of anyone else\'s; /info finds it by seed, id or link', async () => {
    const ana = person('ana');
    await run('imagine', ana, { prompt: 'a lighthouse --seed 4242 --steps 2', batch: 1 });
    const lighthouse = await finished(ana);
    await run('imagine', ana, { prompt: 'a sailboat --seed 4343 --steps 2', batch: 1 });
    const sailboat = await finished(ana);
    expect(sailboat.request.generationId).not.toBe(lighthouse.request.generationId);

    const history = await run('history', ana, { count: 5 });
    expect(history.text.split('\n')).toEqual([
      expect.stringMatching(new RegExp(`^\\d{4}-\\d{2}-\\d{2} imagine “a sailboat” seed 4343 — succeeded \\(${sailboat.request.generationId}\\)$`)),
      expect.stringMatching(new RegExp(`imagine “a lighthouse” seed 4242 — succeeded \\(${lighthouse.request.generationId}\\)$`)),
    ]);
    expect((await run('history', person('bob'))).text).toBe('You have not made any images yet. Try /imagine.');

    const bySeed = await run('info', ana, { target: '4242' });
    expect(bySeed.text).toContain('Prompt: a lighthouse');
    expect(bySeed.text).toContain(`Generation: ${lighthouse.request.generationId}`);
    expect(bySeed.text).toContain('status: succeeded');
    expect((await run('info', ana, { target: sailboat.request.generationId })).text).toContain('Prompt: a sailboat');
    links.set('https://chat.example/m/1', sailboat.request.generationId);
    expect((await run('info', ana, { target: 'https://chat.example/m/1' })).text).toContain('Seed: 4343');
    expect((await run('info', person('bob'), { target: '4242' })).text).toBe('⚠️ I found no image for "4242".');
  });

  it('/settings keeps defaults that the next /imagine uses, and relax mode costs what fast mode costs', async () => {
    const cleo = person('cleo');
    expect((await run('settings', cleo)).text).toMatch(/^Your defaults: model tiny-sd, mode fast,/);
    expect((await run('settings', cleo, { mode: 'relax' })).text).toMatch(/^Saved\. Your defaults: model tiny-sd, mode relax,/);
    expect((await run('settings', cleo)).text).toMatch(/mode relax/);

    const before = await used(cleo);
    await run('imagine', cleo, { prompt: 'a red barn --steps 20' });
    const relaxed = await finished(cleo);
    expect(relaxed.request.mode).toBe('relax');
    const relaxCost = (await used(cleo)) - before;
    await run('imagine', cleo, { prompt: 'a red barn --steps 20 --fast' });
    const fast = await finished(cleo);
    expect(fast.request.mode).toBe('fast');
    expect((await used(cleo)) - before - relaxCost).toBe(relaxCost);
    expect(relaxCost).toBe(2);
  });

  it('/settings keeps a sampler and steps that the next /imagine uses unless it gives its own, and names an option that is wrong', async () => {
    const gus = person('gus');
    expect((await run('settings', gus, { sampler: 'ddim', steps: 3 })).text).toMatch(/^Saved\. Your defaults: model tiny-sd, mode fast, sampler ddim, steps 3\./);
    await run('imagine', gus, { prompt: 'a blue door', batch: 1 });
    expect((await finished(gus)).request.params).toMatchObject({ sampler: 'ddim', steps: 3 });
    await run('imagine', gus, { prompt: 'a green door --steps 2 --sampler euler', batch: 1 });
    expect((await finished(gus)).request.params).toMatchObject({ sampler: 'euler', steps: 2 });

    const maxSteps = stack.chatConfig.models.find((model) => model.name === 'tiny-sd')!.maxSteps;
    expect((await run('settings', gus, { steps: maxSteps + 1 })).text).toBe(
      `⚠️ Steps "${maxSteps + 1}" is not a whole number from 1 to ${maxSteps} (the most tiny-sd takes).`,
    );
    expect((await run('settings', gus, { sampler: 'fastest' })).text).toBe('⚠️ Sampler "fastest" is not one of ddpm, ddim, euler, euler-a, dpmpp-2m, dpmpp-2m-karras, lcm.');
    expect((await run('settings', gus)).text).toMatch(/^Your defaults: model tiny-sd, mode fast, sampler ddim, steps 3\./);
  });

  it('/cancel stops the latest unfinished job first, refunds it, and says when nothing is left', async () => {
    const dan = person('dan');
    const before = await used(dan);
    await run('imagine', dan, { prompt: 'a windmill --steps 150', size: '128x128', batch: 4 });
    const running = await eventually(async () => ((await latest(dan))?.status === 'running' ? latest(dan) : undefined));
    await run('imagine', dan, { prompt: 'a windmill --steps 2', batch: 1 });
    const queued = await latest(dan);

    expect((await run('cancel', dan)).text).toBe(`Cancelled ${queued.request.generationId}.`);
    expect((await stack.service.findGeneration(queued.request.generationId))?.status).toBe('cancelled');
    expect((await run('cancel', dan)).text).toBe(`Cancelled ${running.request.generationId}.`);
    await eventually(async () => ((await stack.service.findGeneration(running.request.generationId))?.status === 'cancelled' ? true : undefined));
    expect((await run('cancel', dan)).text).toBe('You have nothing queued or running.');
    expect(await used(dan)).toBe(before);
  });

  it('/admin sets, grants and resets a quota, bans and unbans, and reports stats, which /quota and /imagine then follow', async () => {
    const eve = person('eve');
    expect((await run('admin', eve, { user: 'eve', units: 999 }, ['quota', 'set'])).text).toBe('⚠️ Only admins can use /admin.');
    expect((await run('admin', admin, { user: 'eve', units: 3 }, ['quota', 'set'])).text).toBe('eve: 3 of 3 units left.');
    expect((await run('quota', eve)).text).toMatch(/^You have 3 of 3 units left\. Resets \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC\.$/);

    await run('imagine', eve, { prompt: 'a red barn --steps 20' });
    await finished(eve);
    expect((await run('quota', eve)).text).toMatch(/^You have 1 of 3 units left\./);
    expect((await run('imagine', eve, { prompt: 'a red barn --steps 20' })).text).toMatch(/^⚠️ This needs 2 units and you have 1 left/);
    expect((await run('admin', admin, { user: 'eve', units: 5 }, ['quota', 'grant'])).text).toBe('eve: 6 of 3 units left.');
    expect((await run('admin', admin, { user: 'eve' }, ['quota', 'reset'])).text).toBe('eve: 3 of 3 units left.');

    expect((await run('admin', admin, { user: 'eve' }, ['ban'])).text).toBe('eve is banned.');
    expect((await run('quota', eve)).text).toBe('You are banned from making images here.');
    expect((await run('imagine', eve, { prompt: 'a red barn --steps 2' })).text).toBe('⚠️ You are not allowed to generate images here.');
    expect((await run('admin', admin, { user: 'eve' }, ['unban'])).text).toBe('eve is no longer banned.');
    expect((await run('imagine', eve, { prompt: 'a red barn --steps 2', batch: 1 })).text).toMatch(/^🎨/);
    await finished(eve);

    expect((await run('admin', admin, {}, ['stats'])).text).toMatch(/^Queued 0, running 0; today \d+ done, \d+ failed, \d+ active users\.$/);
    const actions = await stack.database.prisma.adminAction.findMany({ orderBy: { id: 'asc' } });
    expect(actions.map((action) => action.action)).toEqual(['quota.policy', 'quota.grant', 'quota.reset', 'ban.add', 'ban.remove']);
  });

  it('/imagine with a permutation prompt queues and charges each combination, and stops at the one the quota does not cover', async () => {
    const fay = person('fay');
    expect((await run('admin', admin, { user: 'fay', units: 5 }, ['quota', 'set'])).text).toBe('fay: 5 of 5 units left.');
    expect((await run('imagine', fay, { prompt: 'a {red, green} barn --steps 20' })).text).toMatch(/^🎨 “a red barn”/);
    const green = await eventually(async () => (await stack.service.history(fay, 2)).find((record) => record.request.params.prompt === 'a green barn'));
    expect(green.request.replyTarget).toBe(others.at(-1)!.replyTarget);
    expect(others.at(-1)!.shown).toMatch(/^🎨 “a green barn”/);
    await eventually(async () => ((await stack.service.history(fay, 2)).every((record) => record.status === 'succeeded') ? true : undefined));
    expect(await used(fay)).toBe(4);

    const opened = others.length;
    expect((await run('imagine', fay, { prompt: 'a {blue, white} barn --steps 2 --seed 9' })).text).toMatch(/^🎨 “a blue barn”/);
    expect(others.slice(opened).map((message) => message.shown)).toEqual([expect.stringMatching(/^⚠️ This needs 1 units? and you have 0 left/)]);
    expect((await stack.service.history(fay, 5)).map((record) => record.request.params.prompt)).toEqual(['a blue barn', 'a green barn', 'a red barn']);
  });
});
