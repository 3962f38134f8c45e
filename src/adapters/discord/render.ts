import {
  ButtonStyle,
  ComponentType,
  MessageFlags,
  TextInputStyle,
  type APIActionRowComponent,
  type APIButtonComponent,
  type APIModalInteractionResponseCallbackData,
} from 'discord.js';
import type { RegionForm } from '../../core/chat/edits.js';
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

/** The ids of the Vary (Region) modal's text inputs. */
export const REGION_FIELDS = { region: 'region', prompt: 'prompt' } as const;

/** Discord caps a modal's title and its inputs' labels at 45 characters and a text input's value at 4000. */
export function renderRegionModal(form: RegionForm): APIModalInteractionResponseCallbackData {
  const { width, height } = form.picture;
  const input = (custom_id: string, label: string, style: TextInputStyle, extra: Record<string, unknown>) => ({
    type: ComponentType.ActionRow as const,
    components: [{ type: ComponentType.TextInput as const, custom_id, label, style, required: false, ...extra }],
  });
  return {
    custom_id: form.formId,
    title: form.title,
    components: [
      input(REGION_FIELDS.region, 'Area to repaint', TextInputStyle.Short, {
        placeholder: `${form.presets.join(', ')}, or x,y,w,h in ${width}x${height}`.slice(0, 100),
        max_length: 64,
        required: true,
      }),
      input(REGION_FIELDS.prompt, 'Prompt for that area (optional)', TextInputStyle.Paragraph, { value: form.prompt.slice(0, 2000), max_length: 2000 }),
    ],
  };
}
