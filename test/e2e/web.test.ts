import { mkdir } from 'node:fs/promises';
import type { Locator } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { startWebChat, type WebChat } from '../../src/adapters/web/server.js';
import { createWebTranscriptStore } from '../../src/store/web-transcripts.js';
import { SESSION_COOKIE, sessionValue } from '../../src/adapters/web/session.js';
import { generationCost } from '../../src/core/quota.js';
import type { Requester } from '../../src/core/generation.js';
import { launchChromium, type LaunchedChromium } from '../support/chromium.js';
import { GENERATION_TIMEOUT_MS, startServiceStack, type ServiceStack } from '../support/service-stack.js';

/**
 * The local web chat over the real stack — Redis queue, embedded PostgreSQL, worker thread running the shipped
 * default model — in real Chromium: what `npm start` shows a person. Its screenshot is the one in docs/.
 */
const SCREENSHOT_PATH = 'docs/screenshots/web-chat.png';
const USER_ID = 'web-00000000000000000000000000000001';
const SESSION_KEYS = { secret: randomBytes(32) };

let stack: ServiceStack;
let chat: WebChat;
let browser: LaunchedChromium | undefined;

beforeAll(async () => {
  stack = await startServiceStack({ modelDir: 'models/default', previewIntervalMs: 100 });
  chat = await startWebChat({ service: stack.service, config: stack.chatConfig, port: 0, session: SESSION_KEYS });
});

afterAll(async () => {
  await browser?.close();
  await chat?.close();
  await stack?.stop();
});

const loadedWidth = (image: Locator) =>
  image.evaluate((img) => {
    const element = img as unknown as { complete: boolean; naturalWidth: number };
    return element.complete ? element.naturalWidth : 0;
  });

/** Every job the model's queue holds in any state: a refused command adds none. */
const USER = { platform: 'web', workspaceId: 'local', userId: USER_ID, isAdmin: false } as const;
const usedUnits = async (requester: Requester) => (await stack.ledger.standing(requester)).usedUnits;

const jobsEverQueued = async () => Object.values(await stack.modelQueue.getJobCounts()).reduce((sum, count) => sum + count, 0);

describe('the web chat on the real stack', () => {
  it('turns a typed /imagine into a grid from the default model, and U1 into a 4× upscale', async () => {
    browser = await launchChromium({ width: 900, height: 1000 });
    // A fixed session user id keeps the committed screenshot the same from run to run (the seed fixes the images).
    await browser.context.addCookies([{ name: SESSION_COOKIE, value: sessionValue(SESSION_KEYS, USER_ID), url: chat.url }]);
    const page = await browser.context.newPage();
    await page.goto(chat.url);
    await page.locator('#status[data-state="open"]').waitFor();

    await page.getByLabel('Message').fill('/imagine red apple --seed 1');
    await page.getByLabel('Message').press('Enter');
    const generation = page.locator('li.message.bot').first();
    const u1 = generation.getByRole('button', { name: 'U1', exact: true });
    await u1.waitFor({ timeout: GENERATION_TIMEOUT_MS });
    // Four 64×64 images of the default model in a 2×2 grid.
    await expect.poll(() => loadedWidth(generation.getByRole('img'))).toBe(128);

    await u1.click();
    const upscale = page.locator('li.message.bot').nth(1);
    await upscale.getByRole('button', { name: 'Upscale', exact: true }).waitFor({ timeout: GENERATION_TIMEOUT_MS });
    await expect.poll(() => loadedWidth(upscale.getByRole('img'))).toBe(256);

    const [record] = await stack.service.history({ platform: 'web', workspaceId: 'local', userId: USER_ID, isAdmin: false }, 1);
    expect(record).toMatchObject({ status: 'succeeded', request: { kind: 'upscale', parent: { imageIndex: 0 } } });

    await page.mouse.move(0, 0);
    await mkdir('docs/screenshots', { recursive: true });
    await page.screenshot({ path: SCREENSHOT_PATH });
  }, 3 * GENERATION_TIMEOUT_MS);

  it('shows only options the model honours under the chat box, and refuses --ar 16:9 on a 64×64-only model before queueing', async () => {
    browser ??= await launchChromium({ width: 900, height: 1000 });
    const page = await browser.context.newPage();
    await page.goto(chat.url);
    await page.locator('#status[data-state="open"]').waitFor();
    const line = page.getByLabel('Message');
    await expect.poll(() => page.locator('#hint').textContent()).toContain('--steps 1–');
    expect(await line.getAttribute('placeholder')).toBe('/imagine a fox in the snow');
    expect(await page.locator('#hint').textContent()).not.toContain('--ar');

    const queuedBefore = await jobsEverQueued();
    await line.fill('/imagine a fox in the snow --ar 16:9');
    await line.press('Enter');
    const refusal = page.locator('li.message.bot').last();
    await expect.poll(() => refusal.textContent()).toContain('imagine-emoji-64 makes 64×64 only — remove `--ar 16:9`, or pick a model that supports it');
    expect(await jobsEverQueued()).toBe(queuedBefore);
    await page.close();
  }, GENERATION_TIMEOUT_MS);

  it('labels an upscale with its real size, and on Vary (subtle) varies the picture it came from at the upscale\'s size', async () => {
    browser ??= await launchChromium({ width: 900, height: 1000 });
    await browser.context.addCookies([{ name: SESSION_COOKIE, value: sessionValue(SESSION_KEYS, USER_ID), url: chat.url }]);
    const page = await browser.context.newPage();
    await page.goto(chat.url);
    await page.locator('#status[data-state="open"]').waitFor();
    await page.getByLabel('Message').fill('/imagine green pear --seed 2');
    await page.getByLabel('Message').press('Enter');
    const generation = page.locator('li.message.bot').last();
    await generation.getByRole('button', { name: 'U1', exact: true }).waitFor({ timeout: GENERATION_TIMEOUT_MS });
    await expect.poll(() => generation.textContent()).toContain('64×64');

    await generation.getByRole('button', { name: 'U1', exact: true }).click();
    const upscale = page.locator('li.message.bot').last();
    await upscale.getByRole('button', { name: 'Vary (subtle)', exact: true }).waitFor({ timeout: GENERATION_TIMEOUT_MS });
    expect(await upscale.textContent()).toContain('upscaled 256×256 (4× of 64×64)');

    const unitsBefore = await usedUnits(USER);
    await upscale.getByRole('button', { name: 'Vary (subtle)', exact: true }).click();
    const variation = page.locator('li.message.bot').last();
    await variation.getByRole('button', { name: 'V1', exact: true }).waitFor({ timeout: GENERATION_TIMEOUT_MS });
    expect(await variation.textContent()).not.toContain('failed');
    // Four variations of the 64×64 picture the upscale came from, each upscaled to the 256×256 the user was looking at.
    expect(await variation.textContent()).toContain('256×256 (varied at 64×64, upscaled 4×)');
    await expect.poll(() => loadedWidth(variation.getByRole('img'))).toBe(512);
    // Charged as the variations at the model's size plus one 4× upscale of each, like a U click on each of them.
    const [varied] = await stack.service.history(USER, 1);
    const atModelSize = { ...varied.request.params, upscalePasses: undefined };
    const expectedUnits = generationCost({ kind: 'vary-subtle', params: atModelSize }) + 4 * generationCost({ kind: 'upscale', params: atModelSize });
    expect(await usedUnits(USER)).toBe(unitsBefore + expectedUnits);

    // Varying one of those varies it at the model's size and enlarges the result again.
    await variation.getByRole('button', { name: 'V1', exact: true }).click();
    const again = page.locator('li.message.bot').last();
    await again.getByRole('button', { name: 'V1', exact: true }).waitFor({ timeout: GENERATION_TIMEOUT_MS });
    expect(await again.textContent()).toContain('256×256 (varied at 64×64, upscaled 4×)');
    await expect.poll(() => loadedWidth(again.getByRole('img'))).toBe(512);
    await page.close();
  }, 4 * GENERATION_TIMEOUT_MS);

  it('keeps the conversation across a restart of the web chat, and /forget-me erases it', async () => {
    const userId = 'web-00000000000000000000000000000002';
    const transcriptStore = createWebTranscriptStore(stack.database.prisma);
    let restartable = await startWebChat({ service: stack.service, config: stack.chatConfig, port: 0, session: SESSION_KEYS, transcriptStore });
    const port = Number(new URL(restartable.url).port);
    try {
      browser ??= await launchChromium({ width: 900, height: 1000 });
      await browser.context.addCookies([{ name: SESSION_COOKIE, value: sessionValue(SESSION_KEYS, userId), url: restartable.url }]);
      const page = await browser.context.newPage();
      await page.goto(restartable.url);
      await page.locator('#status[data-state="open"]').waitFor();
      await page.getByLabel('Message').fill('/quota');
      await page.getByLabel('Message').press('Enter');
      await expect.poll(() => page.locator('li.message').count()).toBe(2);

      // The process goes away and comes back on the same port; the open page reconnects by itself.
      await restartable.close();
      await page.locator('#status[data-state="closed"]').waitFor();
      restartable = await startWebChat({ service: stack.service, config: stack.chatConfig, port, session: SESSION_KEYS, transcriptStore });
      await page.locator('#status[data-state="open"]').waitFor({ timeout: 30_000 });
      await expect.poll(() => page.locator('li.message').count()).toBe(2);
      expect(await page.locator('li.message').first().textContent()).toContain('/quota');

      await page.getByLabel('Message').fill('/forget-me yes');
      await page.getByLabel('Message').press('Enter');
      await expect.poll(() => page.locator('li.message').count()).toBe(1);
      expect(await page.locator('li.message').textContent()).toContain('Done:');
      await page.reload();
      await page.locator('#status[data-state="open"]').waitFor();
      await expect.poll(() => page.locator('li.message').count()).toBe(0);
      expect(await stack.database.prisma.webChatMessage.count({ where: { user: { platformUserId: userId } } })).toBe(0);
      await page.close();
    } finally {
      await restartable.close();
    }
  }, GENERATION_TIMEOUT_MS);

  it('tells in the chat which whole words of a prompt past the token limit were ignored', async () => {
    browser ??= await launchChromium({ width: 900, height: 1000 });
    const page = await browser.context.newPage();
    await page.goto(chat.url);
    await page.locator('#status[data-state="open"]').waitFor();
    const filler = Array.from({ length: 80 }, () => 'apple').join(' ');
    await page.getByLabel('Message').fill(`/imagine ${filler} snowflakes glitter --seed 3`);
    await page.getByLabel('Message').press('Enter');
    const generation = page.locator('li.message.bot').last();
    await generation.getByRole('button', { name: 'U1', exact: true }).waitFor({ timeout: GENERATION_TIMEOUT_MS });
    const text = (await generation.textContent()) ?? '';
    expect(text).toMatch(/The prompt is longer than the model reads \(\d+ tokens\); this part was ignored: "(apple )*apple snowflakes glitter"/);
    await page.close();
  }, 2 * GENERATION_TIMEOUT_MS);

  it('takes a long line whole in the chat box, and the server names the prompt limit it enforces', async () => {
    browser ??= await launchChromium({ width: 900, height: 1000 });
    const page = await browser.context.newPage();
    await page.goto(chat.url);
    await page.locator('#status[data-state="open"]').waitFor();
    const prompt = 'a'.repeat(4_500);
    await page.getByLabel('Message').fill(`/imagine ${prompt}`);
    expect(await page.getByLabel('Message').inputValue()).toHaveLength(prompt.length + 9);
    await page.getByLabel('Message').press('Enter');
    await expect.poll(() => page.locator('li.message.bot').last().textContent()).toContain('the prompt is 4500 characters (at most 2000)');
    await page.close();
  }, GENERATION_TIMEOUT_MS);

  it('deletes the result’s images and previews from the store on ❌, and marks its record deleted', async () => {
    browser ??= await launchChromium({ width: 900, height: 1000 });
    const page = await browser.context.newPage();
    await page.goto(chat.url);
    await page.locator('#status[data-state="open"]').waitFor();
    await page.getByLabel('Message').fill('/imagine blue plum --seed 4');
    await page.getByLabel('Message').press('Enter');
    const generation = page.locator('li.message.bot').last();
    await generation.getByRole('button', { name: 'U1', exact: true }).waitFor({ timeout: GENERATION_TIMEOUT_MS });
    const gridUrl = new URL((await generation.getByRole('img').getAttribute('src'))!, chat.url).href;
    expect((await page.request.get(gridUrl)).status()).toBe(200);
    const [record] = await stack.database.prisma.generation.findMany({ where: { prompt: 'blue plum' } });
    const storedKeys = [...record.imageKeys, record.gridKey!, `previews/${record.id}/1.webp`];
    for (const key of storedKeys.slice(0, -1)) expect(await stack.service.readImage(key)).toBeInstanceOf(Buffer);

    const messages = await page.locator('li.message').count();
    await generation.getByRole('button', { name: 'Delete', exact: true }).click();
    await expect.poll(() => page.locator('li.message').count()).toBe(messages - 1);

    expect((await page.request.get(gridUrl)).status()).toBe(404);
    for (const key of storedKeys) await expect(stack.service.readImage(key)).rejects.toThrow('no longer stored');
    const deleted = await stack.database.prisma.generation.findUniqueOrThrow({ where: { id: record.id } });
    expect(deleted).toMatchObject({ deletedAt: expect.any(Date), imageKeys: [], gridKey: null });
    await page.close();
  }, 2 * GENERATION_TIMEOUT_MS);

  it('takes /settings relax, and names the option when one is wrong', async () => {
    browser ??= await launchChromium({ width: 900, height: 1000 });
    const page = await browser.context.newPage();
    await page.goto(chat.url);
    await page.locator('#status[data-state="open"]').waitFor();
    const lastBotMessage = () => page.locator('li.message.bot').last().textContent();
    await page.getByLabel('Message').fill('/settings relax');
    await page.getByLabel('Message').press('Enter');
    await expect.poll(lastBotMessage).toContain('Saved. Your defaults: model imagine-emoji-64, mode relax,');
    await page.getByLabel('Message').fill('/settings model=sdxl fast');
    await page.getByLabel('Message').press('Enter');
    await expect.poll(lastBotMessage).toContain('Model "sdxl" is not one of imagine-emoji-64');
    await page.close();
  }, GENERATION_TIMEOUT_MS);
});
