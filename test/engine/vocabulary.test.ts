import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { conceptsNamedIn, nearestConcepts, unknownConceptWarning, vocabularySample, vocabularySchema } from '../../src/engine/vocabulary.js';

const vocabulary = vocabularySchema.parse({
  concepts: [
    { id: 'fox', label: 'fox', synonyms: ['fox face'], category: 'animals', plural: 'foxes' },
    { id: 'cat', label: 'cat', synonyms: [], category: 'animals', plural: 'cats' },
    { id: 'red-apple', label: 'red apple', synonyms: ['apple'], category: 'food & drink', plural: 'red apples' },
    { id: 'cherries', label: 'cherries', synonyms: ['cherry'], category: 'food & drink', plural: null },
  ],
});

describe('what a model folder says it can draw', () => {
  it('recognises a concept named by its label, a synonym or a plural, as whole words', () => {
    expect(conceptsNamedIn('a fox in the snow', vocabulary).map((c) => c.id)).toEqual(['fox']);
    expect(conceptsNamedIn('two Foxes on a blue background', vocabulary).map((c) => c.id)).toEqual(['fox']);
    expect(conceptsNamedIn('an apple', vocabulary).map((c) => c.id)).toEqual(['red-apple']);
    expect(conceptsNamedIn('a bowl of cherries', vocabulary).map((c) => c.id)).toEqual(['cherries']);
    expect(conceptsNamedIn('a catalogue', vocabulary)).toEqual([]);
    expect(conceptsNamedIn('a kitten', vocabulary)).toEqual([]);
  });

  it('suggests the concepts whose vectors point closest to the prompt', () => {
    const labels = [new Float32Array([1, 0]), new Float32Array([0.9, 0.1]), new Float32Array([0, 1]), new Float32Array([-1, 0])];
    expect(nearestConcepts(new Float32Array([0.2, 1]), labels, vocabulary, 2).map((c) => c.id)).toEqual(['red-apple', 'cat']);
  });

  it('says how much the model knows and what is closest', () => {
    expect(unknownConceptWarning('a kitten', vocabulary, [vocabulary.concepts[1], vocabulary.concepts[0]])).toBe(
      'This model knows 4 things and "a kitten" names none of them, so expect something else; closest: cat, fox.',
    );
  });

  it('samples labels across categories for help', () => {
    const sample = vocabularySample(vocabulary, 3);
    expect(sample).toHaveLength(3);
    expect(new Set(sample.map((label) => vocabulary.concepts.find((c) => c.label === label)!.category)).size).toBe(2);
  });

  it('reads the default model folder’s vocabulary', () => {
    const shipped = vocabularySchema.parse(JSON.parse(readFileSync('models/default/vocabulary.json', 'utf8')));
    expect(shipped.concepts.length).toBeGreaterThanOrEqual(400);
    expect(shipped.concepts.length).toBeLessThanOrEqual(600);
    expect(new Set(shipped.concepts.map((c) => c.id)).size).toBe(shipped.concepts.length);
    expect(conceptsNamedIn('a red apple', shipped).map((c) => c.id)).toContain('red-apple');
  });
});
