import { z } from 'zod';

/** Where a generation is rendered in the web chat: one message of one local user's transcript. */
export const WebReplyTarget = z.object({ userId: z.string(), messageId: z.string() });
export type WebReplyTarget = z.infer<typeof WebReplyTarget>;

export const encodeReplyTarget = (target: WebReplyTarget): string => JSON.stringify({ web: target });

export function decodeReplyTarget(replyTarget: string): WebReplyTarget | null {
  try {
    const parsed = WebReplyTarget.safeParse((JSON.parse(replyTarget) as { web?: unknown }).web);
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
