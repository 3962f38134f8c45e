import { describe, expect, it } from 'vitest';
import { MAX_ATTACHMENT_BYTES, renderDiscordMessage, viewFiles } from '../../../src/adapters/discord/render.js';
import { textView, type ChatView } from '../../../src/core/chat/views.js';

const withImage = (key: string): ChatView => ({ ...textView('done', false), images: [{ key, fileName: `${key}.png` }] });

describe('Discord rendering', () => {
  it('attaches images under 10 MiB', async () => {
    const { files, view } = await viewFiles(withImage('small'), async () => Buffer.alloc(1000));
    expect(files.map((file) => file.name)).toEqual(['small.png']);
    expect(view.text).toBe('done');
  });

  it('leaves out an image of 10 MiB or more and says so', async () => {
    const { files, view } = await viewFiles(withImage('huge'), async () => Buffer.alloc(MAX_ATTACHMENT_BYTES));
    expect(files).toEqual([]);
    expect(view.text).toContain("huge.png is 10.0 MiB, over Discord's 10 MiB limit");
  });

  it('marks private views ephemeral and replaces attachments with exactly the files sent', () => {
    const body = renderDiscordMessage(textView('secret'), [{ name: 'a.png', data: Buffer.alloc(1) }]);
    expect(body).toEqual({ content: 'secret', components: [], attachments: [{ id: 0, filename: 'a.png' }], flags: 64 });
  });

  it('cuts content at Discord’s 2000 characters', () => {
    expect(renderDiscordMessage(textView('x'.repeat(2500), false), []).content).toHaveLength(2000);
  });
});
