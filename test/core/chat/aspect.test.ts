import { describe, expect, it } from 'vitest';
import { parseAspectRatio, parseSize, sizeForAspectRatio } from '../../../src/core/chat/aspect.js';
import { TEST_CHAT_CONFIG } from '../../support/chat-config.js';

const model = TEST_CHAT_CONFIG.models[0];

describe('aspect ratio to size', () => {
  it('keeps the base pixel count and rounds each side to the size multiple', () => {
    expect(sizeForAspectRatio({ w: 16, h: 9 }, model)).toEqual({ width: 680, height: 384 });
    expect(sizeForAspectRatio({ w: 2, h: 3 }, model)).toEqual({ width: 416, height: 624 });
    expect(sizeForAspectRatio({ w: 1, h: 1 }, model)).toEqual({ width: 512, height: 512 });
  });

  it('works from the model limits given as data', () => {
    expect(sizeForAspectRatio({ w: 2, h: 1 }, { ...model, baseWidth: 1024, baseHeight: 1024, sizeMultiple: 64, maxSide: 2048 })).toEqual({
      width: 1472,
      height: 704,
    });
  });

  it('refuses ratios beyond 4:1', () => {
    expect(() => parseAspectRatio('5:1')).toThrow(/between 1:4 and 4:1/);
  });

  it('refuses text that is not W:H', () => {
    expect(() => parseAspectRatio('wide')).toThrow(/W:H/);
    expect(() => parseAspectRatio('16:0')).toThrow(/W:H/);
  });

  it('refuses a typed size that is not a multiple of the size multiple instead of rounding it', () => {
    expect(() => parseSize('500x512', model)).toThrow(/multiples of 8/);
    expect(parseSize('768x512', model)).toEqual({ width: 768, height: 512 });
  });

  it('refuses a size above the model maximum', () => {
    expect(() => parseSize('2048x512', model)).toThrow(/between 8 and 1024/);
  });
});
