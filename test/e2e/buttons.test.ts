import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDiscordBot, type DiscordBot } from '../../src/adapters/discord/bot.js';
import type { SlackBot } from '../../src/adapters/slack/bot.js';
import { decodeReplyTarget as decodeWebTarget } from '../../src/adapters/web/reply-target.js';
import { startWebChat, type WebChat } from '../../src/adapters/web/server.js';
import { encodeActionId, type ResultActionName } from '../../src/core/chat/result-actions.js';
import type { GenerationRecord } from '../../src/core/chat/service.js';
import type { Requester } from '../../src/core/generation.js';
import { childGenerations } from '../../src/store/generations.js';
import { FakeDiscord, type FakeMember } from '../support/fake-discord.js';
import { FakeSlack } from '../support/fake-slack.js';
import { waitFor } from '../support/wait-for.js';
import { eventually, GENERATION_TIMEOUT_MS, startServiceStack, type ServiceStack } from '../support/service-stack.js';
import { slackResult, startSocketModeBot, stopSocketModeBot } from '../support/slack-socket-bot.js';
import { openWebChatPage } from '../support/web-chat-client.js';

/**
 * Buttons on results, on every platform, over the real queue, worker, store and ledger: the generation checked is the
 * one the clicked message shows (from the platform's copy of the message), delete is the owner's or an admin's, an
 * upscale of someone else's image is charged to whoever clicked, and an id that is not valid gets a private answer.
 */

const INVALID = '⚠️ This button is no longer valid.';
const NOT_YOURS = '⚠️ Only the person who asked for this image, or an admin, can delete it.';

let stack: ServiceStack;

beforeAll(async () => {
  stack = await startServiceStack({ name: 'e2e-buttons', quotaUnitsPerPeriod: 1000 });
});
afterAll(async () => {
  await stack?.stop();
});

const id = (action: ResultActionName, generationId: string, imageIndex = 0) => encodeActionId({ action, generationId, imageIndex });
const usedUnits = async (requester: Requester) => (await stack.ledger.standing(requester)).usedUnits;
const onlyChildOf = (parentId: string) =>
  eventually(async () => {
    const children = await childGenerations(stack.database.prisma, parentId);
    return children.length === 1 ? children[0] : undefined;
  });

describe('result buttons on Discord', () => {
  let fake: FakeDiscord;
  let bot: DiscordBot;
  const owner: FakeMember = { userId: '940000000000000011' };
  const other: FakeMember = { userId: '940000000000000012' };
  const requester = (member: FakeMember): Requester => ({ platform: 'discord', workspaceId: fake.guildId, userId: member.userId, isAdmin: false });

  beforeAll(async () => {
    fake = await FakeDiscord.start();
    bot = await startDiscordBot({ token: 'fake-token', service: stack.service, config: stack.chatConfig, apiBaseUrl: fake.apiUrl, restRetries: 0, editIntervalMs: 50 });
  });
  afterAll(async () => {
    await bot?.stop();
    await fake?.close();
  });

  async function result(member: FakeMember, prompt: string): Promise<{ messageId: string; record: GenerationRecord }> {
    const { token } = fake.slashCommand('imagine', [{ name: 'prompt', type: 3, value: `${prompt} --steps 2` }, { name: 'batch', type: 4, value: 1 }], member);
    const message = await waitFor(() => (fake.originalMessage(token)?.components?.length ? fake.originalMessage(token) : undefined), GENERATION_TIMEOUT_MS);
    const [record] = await stack.service.history(requester(member), 1);
    return { messageId: message.id, record };
  }

  /** What the bot answered this interaction privately: its ephemeral reply, or its ephemeral follow-up. */
  const privateAnswer = (interaction: { id: string; token: string }) =>
    fake.waitForRequest(
      (call) =>
        call.method === 'POST' &&
        (call.path === `/interactions/${interaction.id}/${interaction.token}/callback` || call.path === `/webhooks/${fake.applicationId}/${interaction.token}`) &&
        ((call.body?.data?.flags ?? call.body?.flags) & 64) === 64,
    );
  const contentOf = (call: { body: any }) => call.body?.data?.content ?? call.body?.content;
  const deletes = (messageId: string) => fake.requests.filter((call) => call.method === 'DELETE' && call.path.endsWith(`/messages/${messageId}`));

  it('checks the generation the clicked message shows: a Delete naming the clicker\'s own image, on someone else\'s result, deletes nothing', async () => {
    const mine = await result(owner, 'a lighthouse');
    const theirs = await result(other, 'a sailboat');
    const click = fake.clickButton(mine.messageId, id('delete', theirs.record.request.generationId), other);
    expect(contentOf(await privateAnswer(click))).toBe(INVALID);
    expect(deletes(mine.messageId)).toEqual([]);
    expect(deletes(theirs.messageId)).toEqual([]);
    expect(await stack.service.findGeneration(mine.record.request.generationId)).not.toBeNull();
  });

  it('answers an unknown or tampered button id privately instead of leaving the interaction to fail', async () => {
    const mine = await result(owner, 'a windmill');
    for (const customId of ['ib1:delete:short:0', `ib1:upscale:${mine.record.request.generationId}:7`, 'someone-elses-button']) {
      expect(contentOf(await privateAnswer(fake.clickButton(mine.messageId, customId, owner)))).toBe(INVALID);
    }
    expect(await childGenerations(stack.database.prisma, mine.record.request.generationId)).toEqual([]);
  });

  it('charges an upscale of someone else\'s image to the person who clicked, and lets only the owner delete the result', async () => {
    const mine = await result(owner, 'a red barn');
    const [ownerBefore, otherBefore] = [await usedUnits(requester(owner)), await usedUnits(requester(other))];
    fake.clickButton(mine.messageId, id('upscale', mine.record.request.generationId), other);
    const upscale = await onlyChildOf(mine.record.request.generationId);
    expect(upscale.request.requester.userId).toBe(other.userId);
    expect(await usedUnits(requester(other))).toBe(otherBefore + 1);
    expect(await usedUnits(requester(owner))).toBe(ownerBefore);

    expect(contentOf(await privateAnswer(fake.clickButton(mine.messageId, id('delete', mine.record.request.generationId), other)))).toBe(NOT_YOURS);
    expect(deletes(mine.messageId)).toEqual([]);
    fake.clickButton(mine.messageId, id('delete', mine.record.request.generationId), owner);
    await waitFor(() => deletes(mine.messageId).length === 1);
  });
});

describe('result buttons on Slack', () => {
  let fake: FakeSlack;
  let bot: SlackBot;
  const requester = (userId: string): Requester => ({ platform: 'slack', workspaceId: fake.teamId, userId, isAdmin: false });

  beforeAll(async () => {
    fake = await FakeSlack.start();
    bot = await startSocketModeBot(fake, { service: stack.service, config: stack.chatConfig });
  });
  afterAll(async () => {
    await stopSocketModeBot(bot, fake);
  });

  const result = (userId: string, prompt: string) => slackResult(fake, stack, requester(userId), prompt);

  const click = (target: { channel: string; ts: string }, actionId: string, userId: string) => {
    const payload = fake.buttonClickPayload(target.channel, target.ts, actionId, userId);
    fake.push('interactive', payload);
    return payload.response_url as string;
  };
  const answerTo = (responseUrl: string) => waitFor(() => fake.responses.find((response) => responseUrl.endsWith(response.url)));
  const deleted = (target: { channel: string; ts: string }) =>
    fake.calls.filter((call) => call.method === 'chat.delete' && call.args.channel === target.channel && call.args.ts === target.ts);

  it('checks the generation the clicked message shows, and answers any id it did not make, privately', async () => {
    const mine = await result('UANA', 'a lighthouse');
    const theirs = await result('UBOB', 'a sailboat');
    const answer = await answerTo(click(mine, id('delete', theirs.record.request.generationId), 'UBOB'));
    expect(answer.body).toMatchObject({ response_type: 'ephemeral', text: INVALID });
    for (const actionId of ['ib1:delete:short:0', 'an-action-of-another-app']) {
      expect((await answerTo(click(mine, actionId, 'UANA'))).body).toMatchObject({ response_type: 'ephemeral', text: INVALID });
    }
    expect(deleted(mine)).toEqual([]);
    expect(deleted(theirs)).toEqual([]);
  });

  it('charges an upscale of someone else\'s image to the person who clicked, and lets only the owner delete the result', async () => {
    const mine = await result('UANA', 'a red barn');
    const [anaBefore, bobBefore] = [await usedUnits(requester('UANA')), await usedUnits(requester('UBOB'))];
    click(mine, id('upscale', mine.record.request.generationId), 'UBOB');
    const upscale = await onlyChildOf(mine.record.request.generationId);
    expect(upscale.request.requester.userId).toBe('UBOB');
    expect(await usedUnits(requester('UBOB'))).toBe(bobBefore + 1);
    expect(await usedUnits(requester('UANA'))).toBe(anaBefore);

    expect((await answerTo(click(mine, id('delete', mine.record.request.generationId), 'UBOB'))).body.text).toBe(NOT_YOURS);
    expect(deleted(mine)).toEqual([]);
    click(mine, id('delete', mine.record.request.generationId), 'UANA');
    await waitFor(() => deleted(mine).length === 1);
  });
});

describe('result buttons in the web chat', () => {
  let chat: WebChat;

  beforeAll(async () => {
    chat = await startWebChat({ service: stack.service, config: stack.chatConfig, port: 0, session: { secret: randomBytes(32) } });
  });
  afterAll(async () => {
    await chat?.close();
  });

  /** A page's side of the socket: the messages it shows, kept up to date as the page does. */
  async function openPage() {
    const { socket, shown, userId, send } = await openWebChatPage(chat.url);
    const page = {
      socket,
      shown,
      requester: (): Requester => ({ platform: 'web', workspaceId: 'local', userId: userId(), isAdmin: false }),
      send,
      /** Resolves with the next message whose text is `text`. */
      answer: (text: string) => {
        const seen = new Set([...shown.values()].filter((message) => message.text === text).map((message) => message.id));
        return waitFor(() => [...shown.values()].find((message) => message.text === text && !seen.has(message.id)));
      },
      async result(prompt: string): Promise<{ messageId: string; record: GenerationRecord }> {
        const before = (await stack.service.history(page.requester(), 1))[0]?.request.generationId;
        page.send({ type: 'command', text: `/imagine ${prompt} --steps 2` });
        const record = await eventually(async () => {
          const [latest] = await stack.service.history(page.requester(), 1);
          return latest && latest.request.generationId !== before ? latest : undefined;
        });
        const { messageId } = decodeWebTarget(record.request.replyTarget)!;
        await waitFor(() => (shown.get(messageId)?.buttonRows.length ?? 0) > 0, GENERATION_TIMEOUT_MS);
        return { messageId, record };
      },
    };
    return page;
  }

  it('checks the generation the clicked message shows, answers bad ids and reactions on unknown messages, and deletes only what the message shows', async () => {
    const page = await openPage();
    try {
      const first = await page.result('a lighthouse');
      const second = await page.result('a sailboat');
      let answer = page.answer(INVALID);
      page.send({ type: 'button', messageId: first.messageId, customId: id('delete', second.record.request.generationId) });
      await answer;
      answer = page.answer(INVALID);
      page.send({ type: 'button', messageId: first.messageId, customId: 'ib1:delete:short:0' });
      await answer;
      answer = page.answer(INVALID);
      page.send({ type: 'reaction', messageId: 'no-such-message', emoji: '❌' });
      await answer;
      expect(page.shown.has(first.messageId) && page.shown.has(second.messageId)).toBe(true);

      page.send({ type: 'button', messageId: first.messageId, customId: id('delete', first.record.request.generationId) });
      await waitFor(() => !page.shown.has(first.messageId));
      expect(page.shown.has(second.messageId)).toBe(true);
    } finally {
      page.socket.close();
    }
  });

  it('gives someone else\'s message id and button nothing to act on: each person clicks only in their own conversation', async () => {
    const ana = await openPage();
    const bob = await openPage();
    try {
      const anas = await ana.result('a red barn');
      const answer = bob.answer(INVALID);
      bob.send({ type: 'button', messageId: anas.messageId, customId: id('upscale', anas.record.request.generationId) });
      await answer;
      expect(await childGenerations(stack.database.prisma, anas.record.request.generationId)).toEqual([]);
      expect(await usedUnits(bob.requester())).toBe(0);
    } finally {
      ana.socket.close();
      bob.socket.close();
    }
  });
});
