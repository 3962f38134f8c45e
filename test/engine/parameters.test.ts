import { describe, expect, it } from 'vitest';
import { formatParameters, parseParameters, type GenerationParameters } from '../../src/engine/parameters.js';
import { SAMPLER_NAMES } from '../../src/engine/types.js';

const base: GenerationParameters = {
  prompt: 'a red fox in the snow',
  negativePrompt: 'blurry',
  steps: 20,
  sampler: 'euler-a',
  guidance: 7,
  seed: 123,
  width: 512,
  height: 512,
  model: 'tiny-sd',
};

describe('formatParameters', () => {
  it("writes AUTOMATIC1111's three-part text", () => {
    expect(formatParameters(base)).toBe(
      'a red fox in the snow\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 123, Size: 512x512, Model: tiny-sd',
    );
  });

  it('omits the negative prompt line when there is none', () => {
    expect(formatParameters({ ...base, negativePrompt: '' })).toBe(
      'a red fox in the snow\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 123, Size: 512x512, Model: tiny-sd',
    );
  });

  it('adds variation and denoising fields in A1111 order when present', () => {
    const text = formatParameters({ ...base, guidance: 7.5, width: 768, variationSeed: 99, variationStrength: 0.3, denoisingStrength: 0.5 });
    expect(text.split('\n').at(-1)).toBe(
      'Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 123, Size: 768x512, Model: tiny-sd, Variation seed: 99, Variation seed strength: 0.3, Denoising strength: 0.5',
    );
  });

  it.each([
    ['ddpm', 'DDPM'],
    ['ddim', 'DDIM'],
    ['euler', 'Euler'],
    ['euler-a', 'Euler a'],
    ['dpmpp-2m', 'DPM++ 2M'],
    ['dpmpp-2m-karras', 'DPM++ 2M Karras'],
    ['lcm', 'LCM'],
  ] as const)('names the %s sampler "%s" as A1111 does', (sampler, display) => {
    expect(formatParameters({ ...base, sampler })).toContain(`, Sampler: ${display}, `);
  });

  it('quotes a value with a comma or colon as a JSON string', () => {
    expect(formatParameters({ ...base, model: 'fox, v2: final' })).toContain('Model: "fox, v2: final"');
  });
});

describe('parseParameters', () => {
  it.each(SAMPLER_NAMES)('round-trips every field with the %s sampler', (sampler) => {
    const p: GenerationParameters = { ...base, sampler, variationSeed: 4294967295, variationStrength: 0.25, denoisingStrength: 0.75 };
    expect(parseParameters(formatParameters(p))).toEqual({ ...p, extra: {} });
  });

  it('round-trips multi-line prompts, an empty negative prompt and a quoted model name', () => {
    const p = { ...base, prompt: 'a fox\nin the snow, at dusk', negativePrompt: '', model: 'my "fox", v2' };
    expect(parseParameters(formatParameters(p))).toEqual({ ...p, extra: {} });
  });

  it('reads a text written by AUTOMATIC1111 1.10, keeping fields it does not know as extras', () => {
    const a1111 = [
      'masterpiece, a cat wearing a hat',
      'Negative prompt: lowres, bad anatomy',
      'worst quality',
      'Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3827364, Size: 512x768, Model hash: 6ce0161689, ' +
        'Model: v1-5-pruned-emaonly, Denoising strength: 0.7, Clip skip: 2, Lora hashes: "add_detail: 7c6bad76eb54", Version: v1.10.1',
    ].join('\n');
    expect(parseParameters(a1111)).toEqual({
      prompt: 'masterpiece, a cat wearing a hat',
      negativePrompt: 'lowres, bad anatomy\nworst quality',
      steps: 30,
      sampler: 'dpmpp-2m-karras',
      guidance: 6.5,
      seed: 3827364,
      width: 512,
      height: 768,
      model: 'v1-5-pruned-emaonly',
      denoisingStrength: 0.7,
      extra: { 'Model hash': '6ce0161689', 'Clip skip': '2', 'Lora hashes': 'add_detail: 7c6bad76eb54', Version: 'v1.10.1' },
    });
  });

  it('reads our upscaled images, whose parameters line gains postprocessing fields', () => {
    const text = `${formatParameters(base)}, Postprocess upscale by: 4, Postprocess upscaler: Lanczos`;
    expect(parseParameters(text)).toEqual({ ...base, extra: { 'Postprocess upscale by': '4', 'Postprocess upscaler': 'Lanczos' } });
  });

  it('treats a text without a parameters line as all prompt', () => {
    expect(parseParameters('just a prompt, with a comma')).toEqual({ prompt: 'just a prompt, with a comma', negativePrompt: '', extra: {} });
  });

  it('leaves out a sampler or schedule we do not implement rather than guessing', () => {
    const parsed = parseParameters('a fox\nSteps: 20, Sampler: DPM++ SDE, CFG scale: 7, Seed: 1, Size: 64x64');
    expect(parsed.sampler).toBeUndefined();
    expect(parseParameters('a fox\nSteps: 20, Sampler: Euler, Schedule type: Exponential, Seed: 1').sampler).toBeUndefined();
    expect(parseParameters('a fox\nSteps: 20, Sampler: Euler a, Schedule type: Automatic, Seed: 1').sampler).toBe('euler-a');
  });

  it('leaves out malformed numbers', () => {
    const parsed = parseParameters('a fox\nSteps: many, CFG scale: high, Seed: -4, Size: big');
    expect(parsed).toEqual({ prompt: 'a fox', negativePrompt: '', extra: {} });
  });
});
