import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDiscordBot, type DiscordBot } from '../../src/adapters/discord/bot.js';
import { decodeReplyTarget as decodeDiscordTarget } from '../../src/adapters/discord/reply-target.js';
import type { SlackBot } from '../../src/adapters/slack/bot.js';
import { decodeReplyTarget as decodeSlackTarget } from '../../src/adapters/slack/reply-target.js';
import { startWebChat, type WebChat } from '../../src/adapters/web/server.js';
import { SESSION_COOKIE, sessionValue } from '../../src/adapters/web/session.js';
import { encodeActionId, type ResultAction } from '../../src/core/chat/result-actions.js';
import type { GenerationRecord } from '../../src/core/chat/service.js';
import type { Requester } from '../../src/core/generation.js';
import { generationCost } from '../../src/core/quota.js';
import { childGenerations } from '../../src/store/generations.js';
import { launchChromium, type LaunchedChromium } from '../support/chromium.js';
import { FakeDiscord, type FakeMember } from '../support/fake-discord.js';
import { FakeSlack } from '../support/fake-slack.js';
import { waitFor } from '../support/wait-for.js';
import { eventually, GENERATION_TIMEOUT_MS, startServiceStack, type ServiceStack } from '../support/service-stack.js';
import { startSocketModeBot, stopSocketModeBot } from '../support/slack-socket-bot.js';

/**
 * Vary (Region), Zoom Out and Pan from the chat, on the real stack with the shipped default model (64x64, one size: a pan
 * shifts the view): each platform's fake delivers the clicks and the form answers, the real service queues them, the
 * worker paints them, and the store keeps their lineage and charge.
 */

const STEPS = 8;
let stack: ServiceStack;

beforeAll(async () => {
  stack = await startServiceStack({ name: 'e2e-edits', modelDir: 'models/default' });
});

afterAll(async () => {
  await stack?.stop();
});

const onlyChildOf = (parentId: string, kind?: string) =>
  eventually(async () => {
    const children = (await childGenerations(stack.database.prisma, parentId)).filter((child) => !kind || child.request.kind === kind);
    return children.length === 1 ? children[0] : undefined;
  });

const finished = (generationId: string) =>
  eventually(async () => {
    const record = await stack.service.findGeneration(generationId);
    return record && record.status !== 'queued' && record.status !== 'running' ? record : undefined;
  });

/** Units committed for a generation: what it was charged. */
async function charged(generationId: string): Promise<number> {
  const rows = await stack.database.prisma.usageLedger.findMany({ where: { generationId, kind: 'commit' } });
  return rows.reduce((sum, row) => sum + row.units, 0);
}

/** What an imagine of the edit's size and settings costs. */
const imagineCost = (record: GenerationRecord) => generationCost({ kind: 'imagine', params: { ...record.request.params, zoomOut: undefined, pan: undefined, region: undefined } });

/** Share of a greyscale mask's pixels that are white, in the left and right halves. */
async function whiteShare(png: Buffer): Promise<{ left: number; right: number }> {
  const { data, info } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  const count = { left: 0, right: 0 };
  for (let index = 0; index < data.length; index += 1) {
    if (data[index] > 127) count[index % info.width < info.width / 2 ? 'left' : 'right'] += 1;
  }
  const half = (info.width * info.height) / 2;
  return { left: count.left / half, right: count.right / half };
}

describe('edits in Discord', () => {
  const owner: FakeMember = { userId: '940000000000000011' };
  const stranger: FakeMember = { userId: '940000000000000012' };
  let fake: FakeDiscord;
  let bot: DiscordBot;
  const errors: unknown[] = [];

  beforeAll(async () => {
    fake = await FakeDiscord.start();
    bot = await startDiscordBot({ token: 't', service: stack.service, config: stack.chatConfig, apiBaseUrl: fake.apiUrl, restRetries: 0, editIntervalMs: 50, onError: (error) => errors.push(error) });
  });

  afterAll(async () => {
    await bot?.stop();
    await fake?.close();
  });

  const buttonLabels = (body: any): string[][] => (body?.components ?? []).map((row: any) => row.components.map((button: any) => button.label));
  const resultEdit = (messageId: string) =>
    fake.requests.find((call) => call.method === 'PATCH' && call.path === `/channels/${fake.channelId}/messages/${messageId}` && buttonLabels(call.body).length > 0);
  const messageOf = (record: GenerationRecord) => decodeDiscordTarget(record.request.replyTarget)!.messageId;
  const click = (record: GenerationRecord, action: ResultAction['action'], member = owner) =>
    fake.clickButton(messageOf(record), encodeActionId({ action, generationId: record.request.generationId, imageIndex: 0 }), member);

  it('shows the edit buttons on an upscale; Vary (Region) opens a modal whose answer repaints the left half, charged like an imagine of its size and shown by /info; pans left and zooms out 2×', async () => {
    const { token } = fake.slashCommand('imagine', [{ name: 'prompt', type: 3, value: `red apple --seed 3 --steps ${STEPS}` }], owner);
    const gridMessage = await waitFor(() => fake.originalMessage(token));
    await waitFor(() => resultEdit(gridMessage.id), GENERATION_TIMEOUT_MS);
    const [grid] = await stack.service.history({ platform: 'discord', workspaceId: fake.guildId, userId: owner.userId, isAdmin: false }, 1);
    fake.clickButton(gridMessage.id, encodeActionId({ action: 'upscale', generationId: grid.request.generationId, imageIndex: 0 }), owner);
    const upscale = await onlyChildOf(grid.request.generationId);
    const upscaleResult = await waitFor(() => resultEdit(messageOf(upscale)), GENERATION_TIMEOUT_MS);
    expect(buttonLabels(upscaleResult.body).slice(1, 3)).toEqual([
      ['Vary (Region)', 'Zoom Out 2×', 'Zoom Out 1.5×'],
      ['Pan left', 'Pan right', 'Pan up', 'Pan down'],
    ]);
    expect(upscaleResult.body.components[1].components[0].emoji).toMatchObject({ name: '🖌️' });

    const opened = fake.requests.length;
    click(upscale, 'vary-region');
    const modal = await fake.waitForRequest((call) => call.path.endsWith('/callback') && call.body?.type === 9, opened);
    const formId = encodeActionId({ action: 'vary-region', generationId: upscale.request.generationId, imageIndex: 0 });
    expect(modal.body.data).toMatchObject({ custom_id: formId, title: 'Vary (Region)' });
    const inputs = modal.body.data.components.map((row: any) => row.components[0]);
    expect(inputs.map((input: any) => [input.custom_id, input.label])).toEqual([
      ['region', 'Area to repaint'],
      ['prompt', 'Prompt for that area (optional)'],
    ]);
    expect(inputs[0].placeholder).toBe('left, right, top, bottom, center, border, or x,y,w,h in 256x256');

    const refusedAt = fake.requests.length;
    fake.submitModal(messageOf(upscale), formId, { region: 'left', prompt: 'green apple' }, stranger);
    const refusal = await fake.waitForRequest((call) => call.method === 'POST' && call.path.startsWith('/webhooks/') && call.body?.flags === 64, refusedAt);
    expect(refusal.body.content).toMatch(/^⚠️ Only the person who asked for this picture can vary a region of it/);

    fake.submitModal(messageOf(upscale), formId, { region: 'left', prompt: 'green apple' }, owner);
    const varied = await onlyChildOf(upscale.request.generationId);
    expect(varied.request).toMatchObject({
      kind: 'vary-region',
      requester: { userId: owner.userId },
      parent: { generationId: upscale.request.generationId, imageIndex: 0 },
      params: { prompt: 'green apple', region: 'left', width: 64, height: 64, batch: 1, steps: STEPS },
    });
    const done = await finished(varied.request.generationId);
    expect(done.status).toBe('succeeded');
    expect(await charged(varied.request.generationId)).toBe(imagineCost(done));
    const mask = await whiteShare(await stack.service.readImage(done.result!.maskKey!));
    expect(mask).toEqual({ left: 1, right: 0 });
    await waitFor(() => resultEdit(messageOf(done)), GENERATION_TIMEOUT_MS);

    const { token: infoToken } = fake.slashCommand('info', [{ name: 'target', type: 3, value: varied.request.generationId }], owner);
    const info = await fake.waitForRequest((call) => call.method === 'PATCH' && call.path.includes(infoToken) && /Edit:/.test(call.body?.content ?? ''));
    expect(info.body.content).toContain('kind: vary-region');
    expect(info.body.content).toContain('Edit: vary region left');
    expect(info.body.content).toContain(`Parent: ${upscale.request.generationId}, image 1`);
    expect(info.body.content).toContain(`Mask: generations/${varied.request.generationId}/mask.png`);

    click(upscale, 'pan-left');
    const panned = await finished((await onlyChildOf(upscale.request.generationId, 'pan')).request.generationId);
    expect(panned).toMatchObject({ status: 'succeeded', request: { kind: 'pan', params: { pan: 'left', width: 64, height: 64 } } });
    await waitFor(() => resultEdit(messageOf(panned)), GENERATION_TIMEOUT_MS);

    click(upscale, 'zoom-out-2');
    const zoomed = await finished((await onlyChildOf(upscale.request.generationId, 'zoom-out')).request.generationId);
    expect(zoomed).toMatchObject({ status: 'succeeded', request: { kind: 'zoom-out', params: { zoomOut: 2, width: 64, height: 64 } } });
    expect(await charged(zoomed.request.generationId)).toBe(imagineCost(zoomed));
    await waitFor(() => resultEdit(messageOf(zoomed)), GENERATION_TIMEOUT_MS);
    expect(errors).toEqual([]);
  }, 4 * GENERATION_TIMEOUT_MS);
});

describe('edits in Slack', () => {
  let fake: FakeSlack;
  let bot: SlackBot;
  const errors: unknown[] = [];

  beforeAll(async () => {
    fake = await FakeSlack.start();
    bot = await startSocketModeBot(fake, { service: stack.service, config: stack.chatConfig, onError: (error) => errors.push(error) });
  });

  afterAll(async () => {
    await stopSocketModeBot(bot, fake);
  });

  const actionLabels = (blocks: any[] = []) => blocks.filter((block) => block.type === 'actions').map((block) => block.elements.map((element: any) => element.text.text));
  const resultUpdate = (record: GenerationRecord) => {
    const target = decodeSlackTarget(record.request.replyTarget)!;
    return fake.calls.find((call) => call.method === 'chat.update' && call.args.ts === target.ts && actionLabels(call.args.blocks).length > 0);
  };
  const click = (record: GenerationRecord, action: ResultAction['action'], userId = 'UANA') => {
    const target = decodeSlackTarget(record.request.replyTarget)!;
    fake.push('interactive', fake.buttonClickPayload(target.channel, target.ts, encodeActionId({ action, generationId: record.request.generationId, imageIndex: 0 }), userId));
  };

  it('opens Vary (Region) as a modal view whose preset repaints the top, zooms out 1.5×, pans down, and answers a form for a deleted picture privately', async () => {
    fake.push('slash_commands', fake.slashCommandPayload('/imagine', `red apple --seed 4 --steps ${STEPS}`, 'UANA'));
    const grid = await eventually(async () => (await stack.service.history({ platform: 'slack', workspaceId: fake.teamId, userId: 'UANA', isAdmin: false }, 1))[0]);
    await waitFor(() => resultUpdate(grid), GENERATION_TIMEOUT_MS);
    click(grid, 'upscale');
    const upscale = await onlyChildOf(grid.request.generationId);
    const shown = await waitFor(() => resultUpdate(upscale), GENERATION_TIMEOUT_MS);
    expect(actionLabels(shown.args.blocks)[1]).toEqual(['🖌️ Vary (Region)', '🔍 Zoom Out 2×', 'Zoom Out 1.5×']);
    expect(actionLabels(shown.args.blocks)[2]).toEqual(['⬅️ Pan left', '➡️ Pan right', '⬆️ Pan up', '⬇️ Pan down']);

    click(upscale, 'vary-region');
    const opened = await fake.waitForCall((call) => call.method === 'views.open');
    const view = opened.args.view;
    expect(view).toMatchObject({ type: 'modal', callback_id: 'ib1-vary-region', title: { text: 'Vary (Region)' } });
    expect(view.blocks.map((block: any) => block.label.text)).toEqual(['Area to repaint', 'Or a rectangle x,y,w,h', 'Prompt for that area']);
    expect(view.blocks[0].element.options.map((option: any) => option.value)).toEqual(['left', 'right', 'top', 'bottom', 'center', 'border']);

    const both = fake.push('interactive', fake.viewSubmissionPayload(view, { preset: { preset: { type: 'static_select', selected_option: { value: 'top' } } }, rectangle: { rectangle: { type: 'plain_text_input', value: '0,0,8,8' } } }));
    expect((await fake.waitForAck(both)).payload).toEqual({ response_action: 'errors', errors: { rectangle: 'Choose a preset or type a rectangle, not both.' } });

    const values = { preset: { preset: { type: 'static_select', selected_option: { value: 'top' } } }, rectangle: { rectangle: { type: 'plain_text_input', value: null } }, prompt: { prompt: { type: 'plain_text_input', value: 'red apple' } } };
    fake.push('interactive', fake.viewSubmissionPayload(view, values));
    const varied = await finished((await onlyChildOf(upscale.request.generationId, 'vary-region')).request.generationId);
    expect(varied).toMatchObject({ status: 'succeeded', request: { params: { region: 'top' } } });
    expect(await charged(varied.request.generationId)).toBe(imagineCost(varied));
    await waitFor(() => resultUpdate(varied), GENERATION_TIMEOUT_MS);

    click(upscale, 'zoom-out-1.5');
    const zoomed = await finished((await onlyChildOf(upscale.request.generationId, 'zoom-out')).request.generationId);
    expect(zoomed).toMatchObject({ status: 'succeeded', request: { params: { zoomOut: 1.5, width: 64, height: 64 } } });
    expect(await charged(zoomed.request.generationId)).toBe(imagineCost(zoomed));
    await waitFor(() => resultUpdate(zoomed), GENERATION_TIMEOUT_MS);

    click(upscale, 'pan-down');
    const panned = await finished((await onlyChildOf(upscale.request.generationId, 'pan')).request.generationId);
    expect(panned).toMatchObject({ status: 'succeeded', request: { kind: 'pan', params: { pan: 'down', width: 64, height: 64 } } });
    expect(await charged(panned.request.generationId)).toBe(imagineCost(panned));
    await waitFor(() => resultUpdate(panned), GENERATION_TIMEOUT_MS);

    const before = await stack.database.prisma.generation.count();
    await stack.database.prisma.generation.delete({ where: { id: varied.request.generationId } });
    const formForGone = { ...view, private_metadata: JSON.stringify({ ...JSON.parse(view.private_metadata), formId: encodeActionId({ action: 'vary-region', generationId: varied.request.generationId, imageIndex: 0 }) }) };
    fake.push('interactive', fake.viewSubmissionPayload(formForGone, values));
    const told = await fake.waitForCall((call) => call.method === 'chat.postEphemeral');
    expect(told.args).toMatchObject({ user: 'UANA', text: '⚠️ That image is gone: it was deleted, or its owner asked to be forgotten.' });
    expect(await stack.database.prisma.generation.count()).toBe(before - 1);
    expect(errors).toEqual([]);
  }, 4 * GENERATION_TIMEOUT_MS);
});

describe('edits in the web chat, in Chromium', () => {
  const userId = 'web-00000000000000000000000000000013';
  const requester: Requester = { platform: 'web', workspaceId: 'local', userId, isAdmin: false };
  const sessionKeys = { secret: randomBytes(32) };
  let chat: WebChat;
  let browser: LaunchedChromium | undefined;
  const errors: unknown[] = [];

  beforeAll(async () => {
    chat = await startWebChat({ service: stack.service, config: stack.chatConfig, port: 0, session: sessionKeys, onError: (error) => errors.push(error) });
  });

  afterAll(async () => {
    await browser?.close();
    await chat?.close();
  });

  it('paints a mask with the brush and the rectangle over an upscale, repaints it, zooms out 2×, pans up and blends the repainted and zoomed-out pictures', async () => {
    browser = await launchChromium({ width: 900, height: 1100 });
    await browser.context.addCookies([{ name: SESSION_COOKIE, value: sessionValue(sessionKeys, userId), url: chat.url }]);
    const page = await browser.context.newPage();
    await page.goto(chat.url);
    await page.locator('#status[data-state="open"]').waitFor();
    await page.getByLabel('Message').fill(`/imagine red apple --seed 5 --steps ${STEPS}`);
    await page.getByLabel('Message').press('Enter');
    const u1 = page.locator('li.message.bot').first().getByRole('button', { name: 'U1', exact: true });
    await u1.waitFor({ timeout: GENERATION_TIMEOUT_MS });
    await u1.click();
    const upscaleMessage = page.locator('li.message.bot').nth(1);
    const varyRegion = upscaleMessage.getByRole('button', { name: 'Vary (Region)', exact: true });
    await varyRegion.waitFor({ timeout: GENERATION_TIMEOUT_MS });
    for (const name of ['Zoom Out 2×', 'Zoom Out 1.5×', 'Pan left', 'Pan right', 'Pan up', 'Pan down']) {
      await expect(upscaleMessage.getByRole('button', { name, exact: true }).count()).resolves.toBe(1);
    }
    const [upscale] = await stack.service.history(requester, 1);

    await varyRegion.click();
    const editor = page.getByRole('dialog', { name: '🖌️ Vary (Region)' });
    await editor.waitFor();
    const mask = editor.getByLabel('Mask: paint over what should be repainted');
    const box = (await mask.boundingBox())!;
    // A brush stroke along the top-left and a dragged rectangle at the bottom-left: the left side of the picture only.
    await page.mouse.move(box.x + box.width * 0.1, box.y + box.height * 0.15);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.2, { steps: 8 });
    await page.mouse.up();
    await editor.getByRole('button', { name: 'Rectangle', exact: true }).click();
    await page.mouse.move(box.x + box.width * 0.05, box.y + box.height * 0.6);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.4, box.y + box.height * 0.9, { steps: 8 });
    await page.mouse.up();
    await editor.getByLabel('Prompt for the repainted area').fill('green apple');
    await editor.screenshot({ path: 'docs/screenshots/vary-region-editor.png' });
    await editor.getByRole('button', { name: 'Repaint', exact: true }).click();

    const varied = await onlyChildOf(upscale.request.generationId, 'vary-region');
    expect(varied.request).toMatchObject({ params: { prompt: 'green apple', width: 64, height: 64 }, maskKey: `generations/${varied.request.generationId}/drawn-mask.png` });
    const drawn = await stack.service.readImage(varied.request.maskKey!);
    expect(await sharp(drawn).metadata()).toMatchObject({ width: 256, height: 256 });
    const painted = await whiteShare(drawn);
    expect(painted.left).toBeGreaterThan(0.1);
    expect(painted.right).toBe(0);
    const done = await finished(varied.request.generationId);
    expect(done.status).toBe('succeeded');
    expect(await charged(done.request.generationId)).toBe(imagineCost(done));
    const variedMessage = page.locator('li.message.bot').nth(2);
    await variedMessage.getByRole('button', { name: 'Vary (Region)', exact: true }).waitFor({ timeout: GENERATION_TIMEOUT_MS });
    await expect.poll(() => variedMessage.getByRole('img').evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth)).toBe(64);

    await upscaleMessage.getByRole('button', { name: 'Zoom Out 2×', exact: true }).click();
    const zoomed = await finished((await onlyChildOf(upscale.request.generationId, 'zoom-out')).request.generationId);
    expect(zoomed).toMatchObject({ status: 'succeeded', request: { kind: 'zoom-out', params: { zoomOut: 2 } } });
    await upscaleMessage.getByRole('button', { name: 'Pan up', exact: true }).click();
    const panned = await finished((await onlyChildOf(upscale.request.generationId, 'pan')).request.generationId);
    expect(panned).toMatchObject({ status: 'succeeded', request: { kind: 'pan', params: { pan: 'up', width: 64, height: 64 } } });
    expect(await charged(panned.request.generationId)).toBe(imagineCost(panned));
    // The upscale, the repainted picture, the zoomed-out one and the panned one, each shown with its edit buttons.
    const editable = page.locator('li.message.bot').filter({ has: page.getByRole('button', { name: 'Vary (Region)', exact: true }) });
    await expect.poll(() => editable.count(), { timeout: GENERATION_TIMEOUT_MS }).toBe(4);
    // The edits' seeds are random, so this picture differs from run to run: it goes to the temp dir, and
    // docs/screenshots/edit-results.png is a copy of one run's.
    await page.setViewportSize({ width: 900, height: 1900 });
    await page.screenshot({ path: join(tmpdir(), 'imagine-edit-results.png') });

    await page.getByLabel('Message').fill(`/blend ${done.request.generationId} ${zoomed.request.generationId}`);
    await page.getByLabel('Message').press('Enter');
    const blend = await finished((await onlyChildOf(done.request.generationId, 'blend')).request.generationId);
    expect(blend).toMatchObject({
      status: 'succeeded',
      request: {
        params: { prompt: 'green apple, red apple', width: 64, height: 64 },
        blendParents: [
          { generationId: done.request.generationId, imageIndex: 0 },
          { generationId: zoomed.request.generationId, imageIndex: 0 },
        ],
      },
    });
    expect(await charged(blend.request.generationId)).toBe(imagineCost(blend));
    await page.locator('li.message.bot').filter({ hasText: '“green apple, red apple” — 64×64' }).waitFor({ timeout: GENERATION_TIMEOUT_MS });
    expect(errors).toEqual([]);
  }, 4 * GENERATION_TIMEOUT_MS);
});
