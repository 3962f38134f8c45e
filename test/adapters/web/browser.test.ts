import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import type { Locator, Page } from 'playwright-core';
import { decodeReplyTarget } from '../../../src/adapters/web/reply-target.js';
import { startWebChat, type WebChat } from '../../../src/adapters/web/server.js';
import { SESSION_COOKIE, sessionValue } from '../../../src/adapters/web/session.js';
import { launchChromium, type LaunchedChromium } from '../../support/chromium.js';
import { RecordingImagineService, TEST_CHAT_CONFIG } from '../../support/recording-imagine-service.js';

const SCREENSHOT_PATH = join(tmpdir(), 'imagine-web-chat-staged.png');
const SCREENSHOT_USER_ID = 'web-0123456789abcdef0123456789abcdef';
const ADMIN_TOKEN = 'browser-test-admin-token';
const SESSION_KEYS = { secret: randomBytes(32), adminToken: ADMIN_TOKEN };

/** A small painted fox, so the screenshot shows what a person would see rather than placeholder bytes. */
function foxSvg(sizePx: number, skyHue: number, offsetX: number): Buffer {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${sizePx}" height="${sizePx}" viewBox="0 0 100 100">
    <defs><linearGradient id="sky" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="hsl(${skyHue},45%,32%)"/><stop offset="1" stop-color="hsl(${skyHue},35%,72%)"/>
    </linearGradient></defs>
    <rect width="100" height="100" fill="url(#sky)"/>
    <ellipse cx="50" cy="96" rx="70" ry="16" fill="#eef2f7"/>
    <g transform="translate(${offsetX} 0)">
      <path d="M30 30 L38 12 L46 34 Z M54 34 L62 12 L70 30 Z" fill="#c4501a"/>
      <path d="M26 32 Q50 22 74 32 L50 76 Z" fill="#e4672a"/>
      <path d="M32 44 Q42 52 50 76 Q40 62 32 44 Z M68 44 Q58 52 50 76 Q60 62 68 44 Z" fill="#fbf3ea"/>
      <circle cx="41" cy="42" r="3" fill="#1b1b1b"/><circle cx="59" cy="42" r="3" fill="#1b1b1b"/>
      <circle cx="50" cy="74" r="3.4" fill="#1b1b1b"/>
    </g>
  </svg>`;
  return Buffer.from(svg);
}

const png = (svg: Buffer) => sharp(svg).png().toBuffer();

async function gridPng(): Promise<Buffer> {
  const tiles = await Promise.all([200, 30, 270, 160].map((hue, k) => png(foxSvg(256, hue, (k - 1.5) * 6))));
  return sharp({ create: { width: 512, height: 512, channels: 3, background: '#000' } })
    .composite(tiles.map((input, k) => ({ input, left: (k % 2) * 256, top: Math.floor(k / 2) * 256 })))
    .png()
    .toBuffer();
}

let service: RecordingImagineService;
let chat: WebChat;
let browser: LaunchedChromium;
let page: Page;

beforeAll(async () => {
  service = new RecordingImagineService();
  chat = await startWebChat({ service, config: TEST_CHAT_CONFIG, port: 0, session: SESSION_KEYS });
});

afterAll(async () => {
  await browser?.close();
  await chat?.close();
});

/** The decoded width of an <img>, 0 until it has loaded (the tsconfig has no DOM types, hence the shape). */
const loadedWidth = (image: Locator) =>
  image.evaluate((img) => {
    const element = img as unknown as { complete: boolean; naturalWidth: number };
    return element.complete ? element.naturalWidth : 0;
  });

/** The page's document, typed by hand for the same reason; the callbacks run in the page, so the cast is inside. */
type PageGlobals = { document: { cookie: string } };

const botMessages = () => page.locator('li.message.bot');

describe('the web chat in Chromium', () => {
  it('shows the id the server gave it (in a cookie the page cannot read), runs /imagine from the chat box through preview, grid, U1 and the upscale, and shows it all again after a reload', async () => {
    // Launched inside the test, so a machine without Chromium reports this test failed, not skipped.
    browser = await launchChromium({ width: 1100, height: 1400 });
    page = await browser.context.newPage();
    await page.goto(chat.url);
    await page.locator('#status[data-state="open"]').waitFor();
    await expect.poll(() => page.locator('#who').textContent()).toMatch(/^you are web-[0-9a-f]{32}$/);
    const [cookie] = await browser.context.cookies(chat.url);
    expect(cookie).toMatchObject({ name: SESSION_COOKIE, httpOnly: true, sameSite: 'Strict' });
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).document.cookie)).toBe('');
    // A fixed id (and seed) keep the committed screenshot the same from run to run.
    await browser.context.addCookies([{ name: SESSION_COOKIE, value: sessionValue(SESSION_KEYS, SCREENSHOT_USER_ID), url: chat.url }]);
    await page.reload();
    await page.getByText(`you are ${SCREENSHOT_USER_ID}`).waitFor();
    await page.locator('#status[data-state="open"]').waitFor();

    const submitted = service.nextSubmit();
    await page.getByLabel('Message').fill('/imagine a red fox --seed 1234');
    await page.getByLabel('Message').press('Enter');
    const request = await submitted;
    expect(request).toMatchObject({
      kind: 'imagine',
      params: { prompt: 'a red fox', seed: 1234, batch: 4 },
      requester: { platform: 'web', workspaceId: 'local', userId: SCREENSHOT_USER_ID, isAdmin: false },
    });
    const { messageId } = decodeReplyTarget(request.replyTarget)!;
    const generationMessage = page.locator(`#m-${messageId}`);
    await generationMessage.getByText('“a red fox” — position 2 in the queue').waitFor();

    const previewKey = `previews/${request.generationId}/12.webp`;
    service.images.set(previewKey, await sharp(foxSvg(256, 200, 0)).blur(14).webp().toBuffer());
    service.emit({ type: 'progress', generationId: request.generationId, platform: 'web', replyTarget: request.replyTarget, step: 12, totalSteps: 30, previewKey });
    await generationMessage.getByText('step 12/30').waitFor();
    const preview = generationMessage.getByRole('img', { name: 'Preview of the image being made' });
    await expect.poll(() => loadedWidth(preview)).toBe(256);

    const record = service.finish(request.generationId, [0, 1, 2, 3].map((k) => `generations/${request.generationId}/${k}.png`), `generations/${request.generationId}/grid.png`);
    service.images.set(record.result!.gridKey!, await gridPng());
    service.emit({ type: 'succeeded', generationId: request.generationId, platform: 'web', replyTarget: request.replyTarget, result: record.result! });
    const u1 = generationMessage.getByRole('button', { name: 'U1', exact: true });
    await u1.waitFor();
    for (const name of ['U4', 'V1', 'V4', 'Reroll']) await expect(generationMessage.getByRole('button', { name, exact: true }).count()).resolves.toBe(1);
    await expect(generationMessage.locator('button.chip').allTextContents()).resolves.toEqual(['🔄', '✉️', '❌']);
    const grid = generationMessage.getByRole('img');
    await expect.poll(() => loadedWidth(grid)).toBe(512);

    const upscaleSubmitted = service.nextSubmit();
    await u1.click();
    const upscale = await upscaleSubmitted;
    expect(upscale).toMatchObject({ kind: 'upscale', parent: { generationId: request.generationId, imageIndex: 0 }, requester: request.requester });
    const upscaleMessage = page.locator(`#m-${decodeReplyTarget(upscale.replyTarget)!.messageId}`);
    await upscaleMessage.getByText('position 2 in the queue').waitFor();
    await expect(botMessages().count()).resolves.toBe(2);

    const upscaled = service.finish(upscale.generationId, [`generations/${upscale.generationId}/0.png`]);
    service.images.set(upscaled.result!.imageKeys[0], await png(foxSvg(512, 200, -9)));
    service.emit({ type: 'succeeded', generationId: upscale.generationId, platform: 'web', replyTarget: upscale.replyTarget, result: upscaled.result! });
    // A 2048×2048 upscale is as large as the engine makes: no Upscale button that could only fail.
    await upscaleMessage.getByRole('button', { name: 'Vary (subtle)', exact: true }).waitFor();
    expect(await upscaleMessage.getByRole('button', { name: 'Upscale', exact: true }).count()).toBe(0);
    await expect.poll(() => loadedWidth(upscaleMessage.getByRole('img'))).toBe(512);

    await page.mouse.move(0, 0);
    await page.screenshot({ path: SCREENSHOT_PATH });

    await page.reload();
    await page.locator('#status[data-state="open"]').waitFor();
    await expect(botMessages().count()).resolves.toBe(2);
    await page.locator(`#m-${messageId}`).getByRole('button', { name: 'U1', exact: true }).waitFor();
  }, 60_000);

  it('signs in as admin with /admin login <token> typed in the chat box, without the token entering the chat', async () => {
    await page.getByLabel('Message').fill('/admin login not-the-token-at-all');
    await page.getByLabel('Message').press('Enter');
    await page.getByText('⚠️ That is not the admin token.').waitFor();
    await page.getByLabel('Message').fill(`/admin login ${ADMIN_TOKEN}`);
    await page.getByLabel('Message').press('Enter');
    await page.getByText('Signed in as admin.').waitFor();
    await page.getByText(`you are ${SCREENSHOT_USER_ID} · admin`).waitFor();
    await page.getByLabel('Message').fill('/admin quota grant @web-0000000000000000000000000000b0b0 5');
    await page.getByLabel('Message').press('Enter');
    await expect.poll(() => service.adminCalls).toEqual(['grantQuota local web-0000000000000000000000000000b0b0 5']);
    expect(await page.locator('body').textContent()).not.toContain(ADMIN_TOKEN);
  }, 30_000);
});
