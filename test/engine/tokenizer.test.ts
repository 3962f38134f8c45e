import { describe, expect, it } from 'vitest';
import { loadTokenizer } from '../../src/engine/tokenizer.js';

const TINY_SD = 'test/fixtures/models/tiny-sd/tokenizer';
const TINY_SD_V2 = 'test/fixtures/models/tiny-sd-v2/tokenizer';

describe('CLIP tokenizer', () => {
  it('builds the tokenizer from vocab.json + merges.txt with the ids the reference encoder gives', async () => {
    const tokenizer = await loadTokenizer(TINY_SD, 77);
    const { ids } = tokenizer.encode('a red fox in the snow');
    expect(ids.slice(0, 8)).toEqual([752, 320, 553, 681, 517, 523, 734, 753]);
  });

  it('loads tokenizer.json with the ids the reference encoder gives', async () => {
    const tokenizer = await loadTokenizer(TINY_SD_V2, 77);
    const { ids } = tokenizer.encode('a red fox in the snow');
    expect(ids.slice(0, 10)).toEqual([638, 320, 553, 560, 343, 517, 523, 600, 342, 639]);
  });

  it('pads to the model length with the pad token', async () => {
    const tokenizer = await loadTokenizer(TINY_SD, 77);
    const { ids, droppedTokens } = tokenizer.encode('a red fox');
    expect(ids).toHaveLength(77);
    expect(ids.slice(-3)).toEqual([753, 753, 753]);
    expect(droppedTokens).toBe(0);
  });

  it('truncates a long prompt keeping EOS last, and reports what was dropped', async () => {
    const tokenizer = await loadTokenizer(TINY_SD, 77);
    const words = Array.from({ length: 100 }, (_, i) => (i < 75 ? 'red' : 'fox')).join(' ');
    const { ids, droppedTokens, droppedText } = tokenizer.encode(words);
    expect(ids).toHaveLength(77);
    expect(ids[0]).toBe(752);
    expect(ids[76]).toBe(753);
    expect(droppedTokens).toBe(25);
    expect(droppedText.split(' ').every((word) => word === 'fox')).toBe(true);
  });

  it('cuts a long prompt before the word that does not fit whole, and reports that word in full', async () => {
    const tokenizer = await loadTokenizer(TINY_SD, 77);
    const whole = tokenizer.encode('red '.repeat(74).trim());
    const longWord = 'zxqvbnmkj';
    const { ids, droppedTokens, droppedText } = tokenizer.encode(`${'red '.repeat(74)}${longWord} fox`);
    expect(tokenizer.encode(longWord).ids.indexOf(753) - 1).toBeGreaterThan(1);
    // 74 reds fit with room for one more token: the long word's first piece would fit, but not the word.
    expect(ids).toEqual(whole.ids);
    expect(droppedText).toBe(`${longWord} fox`);
    expect(droppedTokens).toBeGreaterThan(2);
  });

  it('treats case and repeated whitespace like CLIP does', async () => {
    const tokenizer = await loadTokenizer(TINY_SD_V2, 77);
    expect(tokenizer.encode('A  RED\tfox').ids).toEqual(tokenizer.encode('a red fox').ids);
  });
});
