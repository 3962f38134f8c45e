import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import type { Locator, Page } from 'playwright-core';
import { startWebChat, type WebChat } from '../../../src/adapters/web/server.js';
import { SESSION_COOKIE } from '../../../src/adapters/web/session.js';
import { createWebTranscriptStore } from '../../../src/store/web-transcripts.js';
import { launchChromium, type LaunchedChromium } from '../../support/chromium.js';
import { GENERATION_TIMEOUT_MS, startServiceStack, type ServiceStack } from '../../support/service-stack.js';

/**
 * The web chat page in Chromium over the real stack (Redis queue, PGlite, worker running the tiny-sd fixture, the real
 * ImagineService): what the page draws while a generation forms, and the admin sign-in it keeps out of the chat. The
 * rest of the page's flows (U1 and the upscale, refusals, restart, ❌, /settings) are in test/e2e/web.test.ts.
 */
const ADMIN_TOKEN = 'browser-test-admin-token';
const SESSION_KEYS = { secret: randomBytes(32), adminToken: ADMIN_TOKEN };
const OTHER_USER_ID = 'web-0000000000000000000000000000b0b0';

let stack: ServiceStack;
let chat: WebChat;
let browser: LaunchedChromium | undefined;
let page: Page;

beforeAll(async () => {
  // Every step makes a preview, so the page has some to show before the result replaces them.
  stack = await startServiceStack({ name: 'web-browser', previewIntervalMs: 0 });
  const transcriptStore = createWebTranscriptStore(stack.database.prisma);
  chat = await startWebChat({ service: stack.service, config: stack.chatConfig, port: 0, session: SESSION_KEYS, transcriptStore });
});

afterAll(async () => {
  await browser?.close();
  await chat?.close();
  await stack?.stop();
});

/** The decoded width of an <img>, 0 until it has loaded (the tsconfig has no DOM types, hence the shapes). */
const loadedWidth = (image: Locator) =>
  image.evaluate((img) => {
    const element = img as unknown as { complete: boolean; naturalWidth: number };
    return element.complete ? element.naturalWidth : 0;
  });

/** One state of a bot message as the page drew it. */
interface DrawnMessage {
  text: string;
  images: { alt: string; src: string }[];
}

interface ElementLike {
  textContent: string | null;
  getAttribute(name: string): string | null;
  querySelector(selectors: string): ElementLike | null;
  querySelectorAll(selectors: string): Iterable<ElementLike>;
}

/** The page's globals, typed by hand; the callbacks run in the page, so the casts are inside them. */
interface PageGlobals {
  document: ElementLike & { cookie: string };
  MutationObserver: new (callback: () => void) => { observe(target: unknown, options: object): void };
  drawnBotMessages?: DrawnMessage[];
}

/** Keeps every state the page draws of its bot messages: a preview is on screen only until the result replaces it. */
const recordBotMessages = () =>
  page.evaluate(() => {
    const globals = globalThis as unknown as PageGlobals;
    const drawn: DrawnMessage[] = [];
    globals.drawnBotMessages = drawn;
    new globals.MutationObserver(() => {
      for (const item of globals.document.querySelectorAll('li.message.bot')) {
        const images = [...item.querySelectorAll('img')].map((img) => ({ alt: img.getAttribute('alt') ?? '', src: img.getAttribute('src') ?? '' }));
        drawn.push({ text: item.querySelector('.text')?.textContent ?? '', images });
      }
    }).observe(globals.document.querySelector('#messages'), { childList: true, subtree: true, characterData: true, attributes: true });
  });

const drawnBotMessages = () => page.evaluate(() => (globalThis as unknown as PageGlobals).drawnBotMessages ?? []);

const send = async (line: string) => {
  await page.getByLabel('Message').fill(line);
  await page.getByLabel('Message').press('Enter');
};

/** Opens the chat in a new tab; gives the visitor id the page shows (one cookie jar: the same for every tab). */
async function openChat(): Promise<string> {
  // Launched inside a test, so a machine without Chromium reports a failed test, not a skipped one.
  browser ??= await launchChromium({ width: 1100, height: 1400 });
  page = await browser.context.newPage();
  await page.goto(chat.url);
  await page.locator('#status[data-state="open"]').waitFor();
  await expect.poll(() => page.locator('#who').textContent()).toMatch(/^you are web-[0-9a-f]{32}$/);
  return (await page.locator('#who').textContent())!.replace('you are ', '');
}

const botMessages = () => page.locator('li.message.bot');

describe('the web chat in Chromium', () => {
  it('shows the id the server gave it (in a cookie the page cannot read), runs /imagine from the chat box through its previews to the grid with its buttons, and shows it again after a reload', async () => {
    const userId = await openChat();
    const [cookie] = await browser!.context.cookies(chat.url);
    expect(cookie).toMatchObject({ name: SESSION_COOKIE, httpOnly: true, sameSite: 'Strict' });
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).document.cookie)).toBe('');

    await recordBotMessages();
    await send('/imagine a red fox --seed 1234 --steps 4');
    const generation = botMessages().first();
    await generation.getByRole('button', { name: 'U1', exact: true }).waitFor({ timeout: GENERATION_TIMEOUT_MS });

    // The request was made as the visitor the page names.
    const [record] = await stack.service.history({ platform: 'web', workspaceId: 'local', userId, isAdmin: false }, 5);
    expect(record).toMatchObject({
      status: 'succeeded',
      request: { kind: 'imagine', params: { prompt: 'a red fox', seed: 1234, batch: 4, steps: 4 }, requester: { platform: 'web', workspaceId: 'local', userId, isAdmin: false } },
    });

    const previews = (await drawnBotMessages()).filter((drawn) => drawn.images.some((image) => image.alt === 'Preview of the image being made'));
    expect(previews.length).toBeGreaterThan(0);
    for (const drawn of previews) expect(drawn.text).toMatch(/^🎨 “a red fox” — step [1-4]\/4$/);
    const previewUrl = new URL(previews[0].images[0].src, chat.url).href;
    expect(previewUrl).toContain(record.request.generationId);
    const preview = await page.request.get(previewUrl);
    // The four forming 64×64 pictures, in a 2×2 grid like the result.
    expect(await sharp(await preview.body()).metadata()).toMatchObject({ format: 'webp', width: 128, height: 128 });

    const buttonLabels = await generation.locator('.rows button').evaluateAll((buttons) => buttons.map((button) => (button as unknown as ElementLike).getAttribute('aria-label')));
    expect(buttonLabels).toEqual(['U1', 'U2', 'U3', 'U4', 'V1', 'V2', 'V3', 'V4', 'Reroll', 'Show me the parameters', 'Delete']);
    await expect(generation.locator('button.chip').allTextContents()).resolves.toEqual(['🔄', '✉️', '❌']);

    await page.reload();
    await page.locator('#status[data-state="open"]').waitFor();
    await expect(botMessages().count()).resolves.toBe(1);
    await botMessages().first().getByRole('button', { name: 'U1', exact: true }).waitFor();
    // The 2×2 grid of 64×64 pictures.
    await expect.poll(() => loadedWidth(botMessages().first().getByRole('img'))).toBe(128);
  }, 2 * GENERATION_TIMEOUT_MS);

  it('signs in as admin with /admin login <token> typed in the chat box, without the token entering the chat', async () => {
    const userId = await openChat();
    const grant = `/admin quota grant @${OTHER_USER_ID} 5`;
    const grants = () => stack.database.prisma.adminAction.findMany({ where: { action: 'quota.grant' } });
    await send(grant);
    await expect.poll(() => botMessages().last().textContent()).toContain('Only admins can use /admin.');
    expect(await grants()).toEqual([]);

    await send('/admin login not-the-token-at-all');
    await page.getByText('⚠️ That is not the admin token.').waitFor();
    await send(`/admin login ${ADMIN_TOKEN}`);
    await page.getByText('Signed in as admin.').waitFor();
    await page.getByText(`you are ${userId} · admin`).waitFor();

    await send(grant);
    await expect.poll(grants).toEqual([expect.objectContaining({ platform: 'web', actorUserId: userId, target: OTHER_USER_ID, details: expect.objectContaining({ units: 5 }) })]);
    expect((await stack.ledger.standing({ platform: 'web', workspaceId: 'local', userId: OTHER_USER_ID })).usedUnits).toBe(-5);

    expect(await page.locator('body').textContent()).not.toContain(ADMIN_TOKEN);
    // The stored conversation has the commands sent over the socket, and none of the sign-in lines.
    const storedTranscript = async () =>
      (await stack.database.prisma.webChatMessage.findMany({ where: { user: { platformUserId: userId } } })).map((row) => JSON.stringify(row.message)).join('\n');
    await expect.poll(storedTranscript).toContain(grant);
    expect(await storedTranscript()).not.toMatch(new RegExp(`admin login|${ADMIN_TOKEN}|not-the-token-at-all`));
  }, GENERATION_TIMEOUT_MS);
});
