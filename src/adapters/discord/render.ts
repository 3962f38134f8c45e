import { ButtonStyle, ComponentType, MessageFlags, type APIActionRowComponent, type APIButtonComponent } from 'discord.js';
import type { ChatView } from '../../core/chat/views.js';

/** Discord refuses attachments above 10 MiB for bots in servers without boosts. */
export const MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024;

/** Discord allows at most 2000 characters of message content. */
const MAX_CONTENT_CHARS = 2000;

const STYLES = { primary: ButtonStyle.Primary, secondary: ButtonStyle.Secondary, danger: ButtonStyle.Danger } as const;

export interface DiscordFile {
  name: string;
  data: Buffer;
}

export interface DiscordMessageBody {
  content: string;
  components: APIActionRowComponent<APIButtonComponent>[];
  /** Replaces the message's attachments with exactly the files sent with this body. */
  attachments: { id: number; filename: string }[];
  flags?: number;
}

export function renderDiscordMessage(view: ChatView, files: readonly DiscordFile[]): DiscordMessageBody {
  const content = view.text.length > MAX_CONTENT_CHARS ? `${view.text.slice(0, MAX_CONTENT_CHARS - 1)}…` : view.text;
  return {
    content,
    components: view.buttonRows.map((row) => ({
      type: ComponentType.ActionRow,
      components: row.map((button) => ({
        type: ComponentType.Button,
        style: STYLES[button.style],
        label: button.label,
        custom_id: button.customId,
        ...(button.emoji && { emoji: { name: button.emoji } }),
      })),
    })),
    attachments: files.map((file, index) => ({ id: index, filename: file.name })),
    ...(view.ephemeral && { flags: MessageFlags.Ephemeral }),
  };
}

/** The view's images as files, leaving out (and saying so) any that Discord would refuse. */
export async function viewFiles(view: ChatView, readImage: (key: string) => Promise<Buffer>): Promise<{ view: ChatView; files: DiscordFile[] }> {
  const files: DiscordFile[] = [];
  const notes: string[] = [];
  for (const image of view.images) {
    const data = await readImage(image.key);
    if (data.byteLength >= MAX_ATTACHMENT_BYTES) {
      notes.push(`(${image.fileName} is ${(data.byteLength / 1024 / 1024).toFixed(1)} MiB, over Discord's 10 MiB limit; use /info to get its parameters.)`);
    } else {
      files.push({ name: image.fileName, data });
    }
  }
  return { view: notes.length ? { ...view, text: `${view.text}\n${notes.join('\n')}` } : view, files };
}
