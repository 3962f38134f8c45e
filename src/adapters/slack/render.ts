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
