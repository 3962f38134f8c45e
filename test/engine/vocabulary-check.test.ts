import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeModelFolder } from '../../src/engine/model-description.js';
import { loadModelFolder, type ModelFolder } from '../../src/engine/model-folder.js';
import { generate } from '../../src/engine/pipeline.js';

let dir: string;
let withVocabulary: ModelFolder;
let without: ModelFolder;
const settings = { seed: 1, steps: 2, width: 64, height: 64 };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'imagine-vocabulary-'));
  await cp('test/fixtures/models/tiny-sd', dir, { recursive: true });
  const concepts = ['fox', 'cat', 'red apple', 'rocket'].map((label) => ({ id: label.replace(' ', '-'), label, synonyms: [], category: 'things' }));
  await writeFile(join(dir, 'vocabulary.json'), JSON.stringify({ concepts }));
  withVocabulary = await loadModelFolder(dir, { intraOpNumThreads: 1 });
  without = await loadModelFolder('test/fixtures/models/tiny-sd', { intraOpNumThreads: 1 });
});

afterAll(async () => {
  await withVocabulary?.release();
  await without?.release();
  await rm(dir, { recursive: true, force: true });
});

describe('a model that says what it knows', () => {
  it('adds no warning when the prompt names a concept it knows', async () => {
    expect((await generate(withVocabulary, { ...settings, prompt: 'two foxes on a blue background' })).warnings).toEqual([]);
  });

  it('warns, naming the closest concepts, when the prompt names none of them — and still draws', async () => {
    const result = await generate(withVocabulary, { ...settings, prompt: 'a kitten' });
    expect(result.images).toHaveLength(1);
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toMatch(/^This model knows 4 things and "a kitten" names none of them, so expect something else; closest: [a-z ]+, [a-z ]+, [a-z ]+\.$/);
  });

  it('says nothing for a folder without vocabulary.json (a Stable Diffusion export)', async () => {
    expect((await generate(without, { ...settings, prompt: 'a kitten' })).warnings).toEqual([]);
    expect((await describeModelFolder('test/fixtures/models/tiny-sd')).vocabulary).toBeNull();
  });

  it('refuses a vocabulary.json that does not fit its schema, naming the file', async () => {
    const broken = await mkdtemp(join(tmpdir(), 'imagine-vocabulary-broken-'));
    try {
      await cp('test/fixtures/models/tiny-sd', broken, { recursive: true });
      await writeFile(join(broken, 'vocabulary.json'), JSON.stringify({ concepts: [{ id: 'fox' }] }));
      await expect(describeModelFolder(broken)).rejects.toThrow(/vocabulary\.json: 'concepts\.0\.label'/);
    } finally {
      await rm(broken, { recursive: true, force: true });
    }
  });
});
