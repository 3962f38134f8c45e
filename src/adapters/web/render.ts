import { REACTION_ACTIONS, parseActionId, type ResultActionName } from '../../core/chat/result-actions.js';
import type { ActionButton, ChatView } from '../../core/chat/views.js';
import type { WebImage, WebMessage, WebReaction } from './protocol.js';

const ACTION_LABELS: Record<ResultActionName, string> = {
  upscale: 'Upscale',
  'vary-subtle': 'Vary (subtle)',
  'vary-strong': 'Vary (strong)',
  reroll: 'Reroll',
  dm: 'Show me the parameters',
  delete: 'Delete',
  'vary-region': 'Vary (Region)',
  'zoom-out-2': 'Zoom Out 2×',
  'zoom-out-1.5': 'Zoom Out 1.5×',
  'pan-left': 'Pan left',
  'pan-right': 'Pan right',
  'pan-up': 'Pan up',
  'pan-down': 'Pan down',
};

/** Keys are store paths like `generations/<id>/0.png`; each segment is escaped, the slashes stay. */
export const imageUrl = (key: string): string => `/images/${key.split('/').map(encodeURIComponent).join('/')}`;

function reactionOf(emoji: string): WebReaction {
  const entry = REACTION_ACTIONS.find((candidate) => candidate.emoji === emoji);
  return { emoji, label: entry ? ACTION_LABELS[entry.action] : emoji };
}

// There are no DMs on the web: the parameters appear in the user's own conversation, and the button says so.
const webButton = (button: ActionButton): ActionButton =>
  parseActionId(button.customId)?.action === 'dm' ? { ...button, label: ACTION_LABELS.dm } : button;

export function renderWebMessage(id: string, author: WebMessage['author'], view: ChatView, sentAt = new Date()): WebMessage {
  const images: WebImage[] = view.images.map((image) => ({ key: image.key, fileName: image.fileName, url: imageUrl(image.key) }));
  return {
    id,
    author,
    text: view.text,
    images,
    buttonRows: view.buttonRows.map((row) => row.map(webButton)),
    reactions: view.reactions.map(reactionOf),
    ephemeral: view.ephemeral,
    sentAt: sentAt.toISOString(),
  };
}
