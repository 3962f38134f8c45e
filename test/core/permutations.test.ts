import { describe, expect, it } from 'vitest';
import { expandPermutations } from '../../src/core/permutations.js';

describe('permutation prompts', () => {
  it('makes one prompt per option of a {…} group', () => {
    expect(expandPermutations('a {red, green} apple')).toEqual(['a red apple', 'a green apple']);
  });

  it('multiplies several groups, in reading order', () => {
    expect(expandPermutations('a {red, green} {apple, pear}')).toEqual(['a red apple', 'a red pear', 'a green apple', 'a green pear']);
  });

  it('expands nested groups inside an option', () => {
    expect(expandPermutations('a {red, {dark, light} blue} fox')).toEqual(['a red fox', 'a dark blue fox', 'a light blue fox']);
  });

  it('leaves a prompt without braces as it is', () => {
    expect(expandPermutations('a fox in the snow')).toEqual(['a fox in the snow']);
  });

  it('reads \\, \\{ and \\} as literal characters', () => {
    expect(expandPermutations('a {red\\, shiny, green} apple \\{sic\\}')).toEqual(['a red, shiny apple {sic}', 'a green apple {sic}']);
  });

  it('tidies the spaces around options', () => {
    expect(expandPermutations('a {  red ,green  }   apple')).toEqual(['a red apple', 'a green apple']);
  });

  it('refuses more than four combinations, saying how many it would make', () => {
    expect(() => expandPermutations('a {red, green, blue} {apple, pear}')).toThrow(/at least 6 prompts; one command runs at most 4/);
  });

  it('does not build a huge product before refusing it', () => {
    const many = Array.from({ length: 30 }, () => '{a, b}').join(' ');
    expect(() => expandPermutations(many)).toThrow(/at most 4/);
  });

  it.each([
    ['a {red, green apple', /\{ without its \}/],
    ['a red} apple', /\} without its \{/],
    ['a {red, } apple', /empty option/],
    ['a {} apple', /empty option/],
  ])('refuses %j with what to change', (prompt, message) => {
    expect(() => expandPermutations(prompt)).toThrow(expect.objectContaining({ kind: 'invalid_input', userMessage: expect.stringMatching(message) }));
  });
});
