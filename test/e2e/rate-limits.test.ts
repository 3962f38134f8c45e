import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeReplyTarget } from '../../src/adapters/web/reply-target.js';
import { startWebChat, type WebChat } from '../../src/adapters/web/server.js';
import { encodeActionId, type ResultActionName } from '../../src/core/chat/result-actions.js';
import type { GenerationRecord } from '../../src/core/chat/service.js';
import type { Requester } from '../../src/core/generation.js';
import { withSafety } from '../../src/core/safety.js';
import { createRedisRateLimiter } from '../../src/service/rate-limit.js';
import { waitFor } from '../support/wait-for.js';
import { deletePrefix, sharedRedisUrl, testPrefix } from '../support/redis.js';
import { eventually, GENERATION_TIMEOUT_MS, startServiceStack, type ServiceStack } from '../support/service-stack.js';
import { openWebChatPage } from '../support/web-chat-client.js';

/**
 * The per-user command limit as `npm start` puts it in front of the service (withSafety over a Redis counter), driven
 * through the web chat: commands and clicks that start work count; clicks that only show something (✉️ parameters,
 * the Vary (Region) form) or hide something (❌) do not, so ordinary clicking around never hits "slow down".
 */

const COMMANDS_PER_MINUTE = 3;

let stack: ServiceStack;
let redisUrl: string;
let redis: Redis;
let prefix: string;
let chat: WebChat;

beforeAll(async () => {
  stack = await startServiceStack({ name: 'e2e-rate-limits' });
  redisUrl = await sharedRedisUrl();
  redis = new Redis(redisUrl);
  prefix = testPrefix('rate-limits');
  const limiter = (scope: string, commandsPerMinute: number) => createRedisRateLimiter({ redis, keyPrefix: `${prefix}:${scope}`, commandsPerMinute });
  const service = withSafety(stack.service, { blocklist: [], perUser: limiter('user', COMMANDS_PER_MINUTE), perWorkspace: limiter('workspace', 1000) });
  chat = await startWebChat({ service, config: stack.chatConfig, port: 0, session: { secret: randomBytes(32) } });
});
afterAll(async () => {
  await chat?.close();
  if (redis) {
    await deletePrefix(redisUrl, prefix);
    redis.disconnect();
  }
  await stack?.stop();
});

describe('the per-user command limit in the web chat', () => {
  it('counts commands and clicks that start work, not clicks that only show or hide', async () => {
    const { socket, shown, userId, forms, send } = await openWebChatPage(chat.url);
    const requester: Requester = { platform: 'web', workspaceId: 'local', userId: userId(), isAdmin: false };
    const messagesSaying = (text: string) => [...shown.values()].filter((message) => message.text.includes(text)).length;
    const generations = async () => (await stack.service.history(requester, 20)).length;
    /** The newest generation once it has finished and its message shows its buttons. */
    const finishedResult = async (count: number): Promise<{ messageId: string; record: GenerationRecord }> => {
      const record = await eventually(async () => {
        const [latest] = await stack.service.history(requester, 1);
        return (await generations()) === count && latest?.status === 'succeeded' ? latest : undefined;
      });
      const { messageId } = decodeReplyTarget(record.request.replyTarget)!;
      await waitFor(() => (shown.get(messageId)?.buttonRows.length ?? 0) > 0, GENERATION_TIMEOUT_MS);
      return { messageId, record };
    };
    const click = (result: { messageId: string; record: GenerationRecord }, action: ResultActionName) =>
      send({ type: 'button', messageId: result.messageId, customId: encodeActionId({ action, generationId: result.record.request.generationId, imageIndex: 0 }) });

    try {
      // Counted: 1.
      send({ type: 'command', text: '/imagine a lighthouse --steps 2' });
      const grid = await finishedResult(1);

      // Shown, not counted: the parameters, five times over.
      for (let k = 1; k <= 5; k++) {
        click(grid, 'dm');
        await waitFor(() => messagesSaying('Prompt: a lighthouse') === k || messagesSaying('slow down') > 0);
        expect(messagesSaying('slow down')).toBe(0);
      }

      // Counted: 2.
      click(grid, 'upscale');
      const upscale = await finishedResult(2);

      // Shown, not counted: the Vary (Region) form, three times; hidden, not counted: ❌ on the upscale.
      for (let k = 1; k <= 3; k++) {
        click(upscale, 'vary-region');
        await waitFor(() => forms() === k || messagesSaying('slow down') > 0);
        expect(messagesSaying('slow down')).toBe(0);
      }
      click(upscale, 'delete');
      await waitFor(() => !shown.has(upscale.messageId));

      // Counted: 3, the last one this minute allows.
      click(grid, 'vary-subtle');
      await finishedResult(3);
      expect(messagesSaying('slow down')).toBe(0);

      // Counted: 4, one more than the limit.
      click(grid, 'vary-subtle');
      await waitFor(() => messagesSaying(`slow down: you can run ${COMMANDS_PER_MINUTE} commands a minute`) === 1);
      expect(await generations()).toBe(3);
    } finally {
      socket.close();
    }
  }, 3 * GENERATION_TIMEOUT_MS);
});
