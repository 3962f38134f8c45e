import type { types } from '@slack/bolt';
import { z } from 'zod';
import type { RegionForm } from '../../core/chat/edits.js';
import type { ChatView } from '../../core/chat/views.js';

/** Slack's limit for a section block's text. */
const MAX_SECTION_CHARS = 3000;

export interface SlackMessage {
  /** Notification and fallback text. */
  text: string;
  blocks: object[];
}

/**
 * A view as Block Kit: the text in a section, each button row as an actions block. Images are not blocks here: Block
 * Kit can only show an image from a public URL, so results are uploaded with files.uploadV2 beside the message.
 */
export function renderSlackMessage(view: ChatView): SlackMessage {
  const text = view.text.length > MAX_SECTION_CHARS ? `${view.text.slice(0, MAX_SECTION_CHARS - 1)}…` : view.text;
  const blocks: object[] = [{ type: 'section', text: { type: 'mrkdwn', text } }];
  view.buttonRows.forEach((row, index) =>
    blocks.push({
      type: 'actions',
      block_id: `actions-${index}`,
      elements: row.map((button) => ({
        type: 'button',
        action_id: button.customId,
        text: { type: 'plain_text', text: button.emoji ? `${button.emoji} ${button.label}` : button.label, emoji: true },
        ...(button.style !== 'secondary' && { style: button.style }),
      })),
    }),
  );
  return { text, blocks };
}

/** The Vary (Region) modal's callback id, and the block (and action) id of each of its inputs. */
export const REGION_VIEW_CALLBACK = 'ib1-vary-region';
export const REGION_BLOCKS = { preset: 'preset', rectangle: 'rectangle', prompt: 'prompt' } as const;

/** What a Vary (Region) modal carries back: the form (the result's button id) and the message it was opened from. */
export const RegionViewMetadata = z.object({ formId: z.string().max(200), channel: z.string().max(64), ts: z.string().max(64) });
export type RegionViewMetadata = z.infer<typeof RegionViewMetadata>;

/** A modal view (views.open): a preset menu, a rectangle, an optional prompt. Slack caps a modal's title at 24 characters. */
export function renderRegionModalView(form: RegionForm, metadata: RegionViewMetadata): types.ModalView {
  const { width, height } = form.picture;
  const plain = (text: string) => ({ type: 'plain_text' as const, text, emoji: true });
  return {
    type: 'modal',
    callback_id: REGION_VIEW_CALLBACK,
    private_metadata: JSON.stringify(metadata),
    title: plain(form.title.slice(0, 24)),
    submit: plain('Repaint'),
    close: plain('Cancel'),
    blocks: [
      {
        type: 'input' as const,
        block_id: REGION_BLOCKS.preset,
        optional: true,
        label: plain('Area to repaint'),
        element: {
          type: 'static_select' as const,
          action_id: REGION_BLOCKS.preset,
          placeholder: plain('Choose a preset'),
          options: form.presets.map((preset) => ({ text: plain(preset), value: preset })),
        },
      },
      {
        type: 'input' as const,
        block_id: REGION_BLOCKS.rectangle,
        optional: true,
        label: plain('Or a rectangle x,y,w,h'),
        hint: plain(`In the picture's ${width}x${height} pixels, e.g. 0,0,${Math.round(width / 2)},${Math.round(height / 2)}.`),
        element: { type: 'plain_text_input' as const, action_id: REGION_BLOCKS.rectangle, max_length: 64 },
      },
      {
        type: 'input' as const,
        block_id: REGION_BLOCKS.prompt,
        optional: true,
        label: plain('Prompt for that area'),
        element: { type: 'plain_text_input' as const, action_id: REGION_BLOCKS.prompt, multiline: true, initial_value: form.prompt.slice(0, 3000), max_length: 3000 },
      },
    ],
  };
}
