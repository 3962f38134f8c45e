import { z } from 'zod';

/** Where a generation is rendered on Slack: a message the bot posted (in a channel, or in the user's DM when private). */
export const SlackReplyTarget = z.object({ channel: z.string(), ts: z.string() });
export type SlackReplyTarget = z.infer<typeof SlackReplyTarget>;

export const encodeReplyTarget = (target: SlackReplyTarget): string => JSON.stringify({ slack: target });

export function decodeReplyTarget(replyTarget: string): SlackReplyTarget | null {
  try {
    const parsed = SlackReplyTarget.safeParse((JSON.parse(replyTarget) as { slack?: unknown }).slack);
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
