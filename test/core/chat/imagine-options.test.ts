import { describe, expect, it } from 'vitest';
import { isImagineError } from '../../../src/core/errors.js';
import { composerHints, parseImagine } from '../../../src/core/chat/imagine-options.js';
import type { ChatConfig } from '../../../src/core/chat/chat-config.js';
import { TEST_CHAT_CONFIG } from '../../support/chat-config.js';

const config = TEST_CHAT_CONFIG;
const fixedSeed = () => 42;

function problemOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (isImagineError(error) && error.kind === 'invalid_input') return error.userMessage;
    throw error;
  }
  throw new Error('expected an invalid_input error');
}

describe('parseImagine', () => {
  it('fills the model defaults and a random seed for a bare prompt', () => {
    const parsed = parseImagine({ prompt: 'a red fox' }, config, {}, fixedSeed);
    expect(parsed).toEqual({
      params: {
        prompt: 'a red fox',
        negativePrompt: '',
        width: 512,
        height: 512,
        steps: 30,
        guidance: 7,
        sampler: 'euler-a',
        seed: 42,
        batch: 4,
        model: 'emoji-tiny',
      },
      mode: 'fast',
      private: false,
    });
  });

  it('reads Midjourney-style flags inside the prompt', () => {
    const parsed = parseImagine(
      { prompt: 'a red fox in snow --ar 16:9 --seed 123 --no trees, houses --steps 40 --cfg 6.5 --sampler ddim --relax' },
      config,
    );
    expect(parsed.params).toMatchObject({
      prompt: 'a red fox in snow',
      negativePrompt: 'trees, houses',
      width: 680,
      height: 384,
      seed: 123,
      steps: 40,
      guidance: 6.5,
      sampler: 'ddim',
    });
    expect(parsed.mode).toBe('relax');
  });

  it('accepts the em dash phones put in place of --', () => {
    expect(parseImagine({ prompt: 'fox —seed 7' }, config).params.seed).toBe(7);
  });

  it('reads slash-command options', () => {
    const parsed = parseImagine(
      { prompt: 'fox', negative: 'blur', size: '256x768', seed: 9, steps: 12, guidance: 3, sampler: 'lcm', batch: 2, mode: 'relax', private: true },
      config,
    );
    expect(parsed.params).toMatchObject({ negativePrompt: 'blur', width: 256, height: 768, seed: 9, steps: 12, guidance: 3, sampler: 'lcm', batch: 2 });
    expect(parsed.private).toBe(true);
  });

  it('uses the model limits of --model', () => {
    const parsed = parseImagine({ prompt: 'fox --model pixel-32' }, config);
    expect(parsed.params).toMatchObject({ model: 'pixel-32', width: 32, height: 32, steps: 20, sampler: 'ddim' });
  });

  it('applies the user settings below what the request says', () => {
    expect(parseImagine({ prompt: 'fox' }, config, { model: 'pixel-32', mode: 'relax' }).params.model).toBe('pixel-32');
    expect(parseImagine({ prompt: 'fox --fast' }, config, { mode: 'relax' }).mode).toBe('fast');
  });

  it('reports every problem in one message that lists the accepted flags', () => {
    const message = problemOf(() => parseImagine({ prompt: 'fox --chaos 50 --steps many --ar 9' }, config));
    expect(message).toContain('--chaos is not a flag I know');
    expect(message).toContain('steps "many" is not a whole number from 1 to 60');
    expect(message).toContain('"9" is not an aspect ratio');
    expect(message).toContain('Accepted flags: --ar W:H, --seed 0–4294967295, --no WORDS');
    expect(message).toContain('--sampler ddpm|ddim|euler|euler-a|dpmpp-2m|dpmpp-2m-karras|lcm');
    expect(message).toContain('--model emoji-tiny|pixel-32');
  });

  it('refuses an unknown sampler and an unknown model', () => {
    const message = problemOf(() => parseImagine({ prompt: 'fox --sampler heun --model sdxl' }, config));
    expect(message).toContain('sampler "heun" is not one of');
    expect(message).toContain('model "sdxl" is not one of emoji-tiny, pixel-32');
  });

  it('refuses steps above the model maximum and a negative seed', () => {
    const message = problemOf(() => parseImagine({ prompt: 'fox --steps 61 --seed -1' }, config));
    expect(message).toContain('steps "61" is not a whole number from 1 to 60');
    expect(message).toContain('seed "-1" is not a whole number from 0 to 4294967295');
  });

  it('refuses a flag in the middle of the prompt that swallows words', () => {
    expect(problemOf(() => parseImagine({ prompt: 'fox --seed 12 on a mat' }, config))).toContain('--seed takes one value');
  });

  it('refuses the same setting given as option and as a different flag', () => {
    expect(problemOf(() => parseImagine({ prompt: 'fox --seed 1', seed: 2 }, config))).toContain('seed is given twice');
  });

  it('refuses both a size and an aspect ratio', () => {
    expect(problemOf(() => parseImagine({ prompt: 'fox --ar 1:1', size: '512x512' }, config))).toContain('either a size or an aspect ratio');
  });

  it('refuses a prompt made only of flags', () => {
    expect(problemOf(() => parseImagine({ prompt: '--seed 3' }, config))).toContain('the prompt is empty');
  });

  it('refuses a switch given a value', () => {
    expect(problemOf(() => parseImagine({ prompt: 'fox --fast please' }, config))).toContain('--fast takes no value');
  });
});

describe('models that make a few sizes only', () => {
  const base = TEST_CHAT_CONFIG.models[1];
  const onlySquare: ChatConfig = { ...config, models: [{ ...base, name: 'emoji-64', baseWidth: 64, baseHeight: 64, sizes: [[64, 64]] }], defaultModel: 'emoji-64' };
  const fewShapes: ChatConfig = {
    ...config,
    models: [{ ...base, name: 'tiny', baseWidth: 64, baseHeight: 64, maxSide: 128, sizes: [[64, 64], [128, 128], [64, 128], [128, 64]] }],
    defaultModel: 'tiny',
  };

  it('refuses an aspect ratio a 64×64-only model cannot make, saying to remove it, and leaves --ar out of the accepted flags', () => {
    const message = problemOf(() => parseImagine({ prompt: 'a fox in the snow --ar 16:9' }, onlySquare));
    expect(message).toContain('emoji-64 makes 64×64 only — remove `--ar 16:9`, or pick a model that supports it');
    expect(message).toMatch(/Accepted flags: --seed/);
  });

  it('picks the listed size of the asked shape, and refuses another shape naming the ratios it makes', () => {
    expect(parseImagine({ prompt: 'fox --ar 2:1' }, fewShapes).params).toMatchObject({ width: 128, height: 64 });
    expect(parseImagine({ prompt: 'fox --ar 1:1' }, fewShapes).params).toMatchObject({ width: 64, height: 64 });
    expect(problemOf(() => parseImagine({ prompt: 'fox --ar 16:9' }, fewShapes))).toContain(
      'tiny makes 64×64, 128×128, 64×128, 128×64 only — remove `--ar 16:9`, use one of --ar 1:1, --ar 1:2, --ar 2:1, or pick a model that supports it',
    );
  });

  it('refuses a typed size the model does not list', () => {
    expect(problemOf(() => parseImagine({ prompt: 'fox', size: '64x128' }, onlySquare))).toContain('emoji-64 makes 64×64 only — ask for one of those sizes');
  });

  it('gives an example and help for the chat box with only what the model takes', () => {
    expect(composerHints(onlySquare)).toEqual({
      example: '/imagine a fox in the snow',
      help: '/imagine PROMPT [--seed N --no WORDS --steps 1–50 --cfg N] · a {red, green} apple: one job per option, at most 4, each charged · /quota · /history · /info SEED · /cancel · /settings · /blend ID ID [ID ID] · on an upscale: 🖌️ Vary (Region), 🔍 Zoom Out, ⬅️ ➡️ ⬆️ ⬇️',
    });
    expect(composerHints(fewShapes).example).toBe('/imagine a fox in the snow --ar 1:2');
    expect(composerHints(fewShapes).help).toContain('--ar 1:1|1:2|2:1');
    expect(composerHints(config).example).toBe('/imagine a fox in the snow --ar 16:9');
  });
});

describe('--draft: the model distilled for a few lcm steps', () => {
  const withDraft: ChatConfig = {
    ...config,
    models: config.models.map((model) => (model.name === 'emoji-tiny' ? { ...model, draft: { steps: 4, guidance: 1 } } : model)),
  };

  it('runs the lcm sampler at the steps and guidance the model was distilled for, cheaper by its steps', () => {
    expect(parseImagine({ prompt: 'a fox --draft' }, withDraft, {}, fixedSeed).params).toMatchObject({ prompt: 'a fox', sampler: 'lcm', steps: 4, guidance: 1 });
    expect(parseImagine({ prompt: 'a fox', draft: true }, withDraft, {}, fixedSeed).params).toMatchObject({ sampler: 'lcm', steps: 4 });
  });

  it('lets explicit steps win, and gives --sampler lcm the same defaults', () => {
    expect(parseImagine({ prompt: 'a fox --draft --steps 2' }, withDraft).params).toMatchObject({ sampler: 'lcm', steps: 2, guidance: 1 });
    expect(parseImagine({ prompt: 'a fox --sampler lcm' }, withDraft).params).toMatchObject({ steps: 4, guidance: 1 });
  });

  it('keeps the distilled steps over the ones saved with /settings, which are for the full model', () => {
    expect(parseImagine({ prompt: 'a fox --draft' }, withDraft, { steps: 30, sampler: 'ddim' }).params).toMatchObject({ sampler: 'lcm', steps: 4 });
  });

  it('says what to remove when the model has no draft version or another sampler is asked for', () => {
    expect(problemOf(() => parseImagine({ prompt: 'a fox --draft --model pixel-32' }, withDraft))).toContain('pixel-32 has no draft version: remove --draft');
    expect(problemOf(() => parseImagine({ prompt: 'a fox --draft --sampler ddim' }, withDraft))).toContain('--draft runs the lcm sampler: remove --sampler ddim');
  });

  it('lists --draft among the accepted flags only when a model has a draft version', () => {
    expect(problemOf(() => parseImagine({ prompt: 'a fox --bogus' }, withDraft))).toContain('--draft');
    expect(problemOf(() => parseImagine({ prompt: 'a fox --bogus' }, config))).not.toContain('--draft');
  });
});
