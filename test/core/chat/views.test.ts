import { describe, expect, it } from 'vitest';
import type { GenerationRequest } from '../../../src/core/generation.js';
import { acceptedView, doneView, formatWait, parametersView, viewOfEvent } from '../../../src/core/chat/views.js';

const request: GenerationRequest = {
  generationId: 'gen-0001-abcdef',
  kind: 'imagine',
  params: { prompt: 'a fox', negativePrompt: 'trees', width: 512, height: 512, steps: 30, guidance: 7, sampler: 'euler-a', seed: 9, batch: 1, model: 'emoji-tiny' },
  requester: { platform: 'web', workspaceId: 'local', userId: 'u1', isAdmin: false },
  mode: 'fast',
  replyTarget: 'anywhere',
};

const progress = { type: 'progress', generationId: request.generationId, platform: 'web', replyTarget: '', step: 4, totalSteps: 20, previewKey: 'p' } as const;

describe('chat views', () => {
  it('says seconds for short waits and minutes for long ones', () => {
    expect(formatWait(400)).toBe('about 1 s');
    expect(formatWait(42_000)).toBe('about 42 s');
    expect(formatWait(600_000)).toBe('about 10 min');
  });

  it('says when a generation is starting right away', () => {
    expect(acceptedView(request, { position: 0, etaMs: 5000 }).text).toBe('🎨 “a fox” — starting now, ready in about 5 s.');
  });

  it('shows a single result with its image, single-image buttons and emoji actions', () => {
    const view = doneView(request, { generationId: request.generationId, imageKeys: ['k0'], seeds: [9], timingsMs: {} });
    expect(view.images).toEqual([{ key: 'k0', fileName: 'gen-0001-abcdef.png' }]);
    expect(view.buttonRows.flat().map((button) => button.label)).toContain('Vary (strong)');
    expect(view.reactions).toContain('🔍');
    expect(view.ephemeral).toBe(false);
  });

  it('renders progress with the preview image', () => {
    const view = viewOfEvent(progress, { request, status: 'running', createdAt: new Date() })!;
    expect(view.text).toBe('🎨 “a fox” — step 4/20');
    expect(view.images).toEqual([{ key: 'p', fileName: 'preview.webp' }]);
  });

  it('ignores a progress event that arrives after the generation finished', () => {
    expect(viewOfEvent(progress, { request, status: 'succeeded', createdAt: new Date() })).toBeNull();
  });

  it('lists everything needed to make the image again', () => {
    const text = parametersView({ request, status: 'succeeded', createdAt: new Date() }).text;
    expect(text.split('\n')).toEqual([
      'Prompt: a fox',
      'Negative prompt: trees',
      'Seed: 9',
      'Size: 512×512, steps: 30, cfg: 7, sampler: euler-a',
      'Model: emoji-tiny, batch: 1, kind: imagine, status: succeeded',
      'Generation: gen-0001-abcdef',
    ]);
  });

  it('says in /info what an edit did, to which picture, and where its mask is', () => {
    const parent = { generationId: 'gen-0000-parent', imageIndex: 0 };
    const edit = (change: Partial<GenerationRequest>, params: Partial<GenerationRequest['params']> = {}) =>
      parametersView({
        request: { ...request, parent, ...change, params: { ...request.params, ...params } },
        status: 'succeeded',
        createdAt: new Date(),
        result: { generationId: request.generationId, imageKeys: ['k0'], seeds: [9], timingsMs: {}, maskKey: 'generations/gen-0001-abcdef/mask.png' },
      }).text.split('\n');
    const zoomed = edit({ kind: 'zoom-out' }, { zoomOut: 1.5 });
    expect(zoomed).toContain('Edit: zoom out 1.5×');
    expect(zoomed).toContain('Parent: gen-0000-parent, image 1');
    expect(zoomed).toContain('Mask: generations/gen-0001-abcdef/mask.png');
    expect(edit({ kind: 'pan' }, { pan: 'up' })).toContain('Edit: pan up');
    expect(edit({ kind: 'vary-region' }, { region: '0,0,8,8' })).toContain('Edit: vary region 0,0,8,8');
    expect(edit({ kind: 'vary-region', maskKey: 'generations/x/drawn-mask.png' })).toContain('Edit: vary region (painted mask)');
    const blended = edit({ kind: 'blend', blendParents: [parent, { generationId: 'gen-0002-other', imageIndex: 0 }] });
    expect(blended).toContain('Blend of: gen-0000-parent, gen-0002-other');
    expect(blended.some((line) => line.startsWith('Parent:'))).toBe(false);
  });
});
