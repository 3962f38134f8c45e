import { z } from 'zod';
import { MaskDrawing, type RegionForm } from '../../core/chat/edits.js';
import type { ActionButton } from '../../core/chat/views.js';
import { LIMITS } from '../../engine/limits.js';

/**
 * What the page and the server say to each other over the WebSocket at `/chat`, as JSON text frames. Who is talking
 * is the session cookie's user (src/adapters/web/session.ts), never something in a frame or the URL. The page sends
 * what the person did; the server answers with whole messages to put in place.
 */

/** How a web user is named in `/admin` options: the id the page shows (`web-<32 hex>`, made by the server). */
/** Far above any command's own limit (a 2,000-character prompt and its flags), within the socket's 64 KiB frames. */
export const MAX_COMMAND_CHARS = 16_000;

export const LOCAL_USER_ID = /^[A-Za-z0-9_-]{8,64}$/;

export const ClientMessage = z.discriminatedUnion('type', [
  /**
   * A line typed into the chat box, e.g. `/imagine a fox --ar 1:1`. The box does not cut what is typed: the command's
   * own limits (the prompt's LIMITS.promptChars) refuse it with the number, so this bound is only the frame's.
   */
  z.object({ type: z.literal('command'), text: z.string().min(1).max(MAX_COMMAND_CHARS) }),
  /** A click on one of a message's buttons; `customId` is the button's id from the core view. */
  z.object({ type: z.literal('button'), messageId: z.string().max(100), customId: z.string().max(200) }),
  /** A click on one of a message's reaction chips. */
  z.object({ type: z.literal('reaction'), messageId: z.string().max(100), emoji: z.string().max(16) }),
  /** The Vary (Region) editor's answer: the mask painted over the picture (or a region), and an optional new prompt. */
  z.object({
    type: z.literal('form'),
    messageId: z.string().max(100),
    formId: z.string().max(200),
    mask: MaskDrawing.optional(),
    region: z.string().max(64).optional(),
    prompt: z.string().max(LIMITS.promptChars).optional(),
  }),
]);
export type ClientMessage = z.infer<typeof ClientMessage>;

export interface WebImage {
  key: string;
  fileName: string;
  /** Where the page loads it: `/images/<key>`. */
  url: string;
}

export interface WebReaction {
  emoji: string;
  /** What clicking it does, for screen readers and the tooltip. */
  label: string;
}

export interface WebMessage {
  id: string;
  author: 'you' | 'bot';
  text: string;
  images: WebImage[];
  buttonRows: ActionButton[][];
  reactions: WebReaction[];
  /** An answer meant for the asker only (errors, /quota): the page shows it quieter. */
  ephemeral: boolean;
  sentAt: string;
}

export type ServerMessage =
  /** Sent once on connect: the user's conversation so far, oldest first. */
  | { type: 'transcript'; userId: string; isAdmin: boolean; messages: WebMessage[] }
  /** A new message, or a new version of one already shown (same id): replace it in place. */
  | { type: 'upsert'; message: WebMessage }
  | { type: 'remove'; messageId: string }
  /** Open the Vary (Region) editor over the picture of message `messageId`. */
  | { type: 'form'; messageId: string; form: RegionForm & { imageUrl: string } }
  /** The chat box's example line and command summary, for the user's model (sent on connect and after /settings). */
  | { type: 'composer'; example: string; help: string };
