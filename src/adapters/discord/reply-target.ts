import { z } from 'zod';

/**
 * Where a generation is rendered on Discord. Public messages are edited with the bot token (interaction tokens expire
 * after 15 minutes, long before a busy queue finishes); private ones can only be edited through the interaction webhook.
 */
export const DiscordReplyTarget = z.object({
  channelId: z.string(),
  messageId: z.string(),
  guildId: z.string().optional(),
  /** Set for ephemeral replies: the interaction webhook that can still edit them (a follow-up by its id, else the reply). */
  webhook: z.object({ applicationId: z.string(), token: z.string(), messageId: z.string().optional() }).optional(),
});
export type DiscordReplyTarget = z.infer<typeof DiscordReplyTarget>;

export const encodeReplyTarget = (target: DiscordReplyTarget): string => JSON.stringify({ discord: target });

export function decodeReplyTarget(replyTarget: string): DiscordReplyTarget | null {
  try {
    const parsed = DiscordReplyTarget.safeParse((JSON.parse(replyTarget) as { discord?: unknown }).discord);
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
