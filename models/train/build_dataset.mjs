// Builds the training set from the emoji image packages installed in models/train/node_modules:
// the 64×64 PNGs of every base emoji (skin-tone variants skipped) in Noto and Twemoji style, flattened onto
// white, written as one raw uint8 array plus a JSON file of captions. Nothing is downloaded.
//
//   cd models/train && npm ci && node build_dataset.mjs   → work/images.u8 [N,64,64,3], work/dataset.json
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, 'package.json'));
// sharp is a dependency of the product, so it resolves from the repository root.
const sharp = createRequire(join(here, '..', '..', 'package.json'))('sharp');

const SIZE = 64;
const STYLES = [
  { word: 'noto', pkg: 'emoji-datasource-google', dir: 'img/google/64', has: 'has_img_google' },
  { word: 'twemoji', pkg: 'emoji-datasource-twitter', dir: 'img/twitter/64', has: 'has_img_twitter' },
];

const emojis = require('emoji-datasource/emoji.json');
const emojibase = require('emojibase-data/en/data.json');
const heldout = JSON.parse(readFileSync(join(here, 'heldout_paraphrases.json'), 'utf8'));
const heldoutPhrases = new Set(heldout.map((entry) => entry.phrase.toLowerCase()));

const withoutVariation = (hex) => hex.toUpperCase().split('-').filter((part) => part !== 'FE0F').join('-');
const keywordsByHex = new Map(emojibase.map((entry) => [withoutVariation(entry.hexcode), entry]));

function captionsFor(emoji) {
  const phrases = new Set();
  const add = (text) => {
    const phrase = text.toLowerCase().replace(/[_:]+/g, ' ').replace(/\s+/g, ' ').trim();
    if (phrase.length > 0 && !heldoutPhrases.has(phrase)) phrases.add(phrase);
  };
  add(emoji.name);
  for (const shortName of emoji.short_names) add(shortName.replace(/-/g, ' '));
  const base = keywordsByHex.get(withoutVariation(emoji.unified));
  if (base) {
    add(base.label);
    // Keywords are shared by many emoji ("face", "happy"); a few of them teach synonyms without drowning the name.
    for (const tag of (base.tags ?? []).slice(0, 4)) add(tag);
  }
  return [...phrases];
}

const sorted = [...emojis].sort((a, b) => a.sort_order - b.sort_order);
const concepts = sorted.map((emoji) => ({
  name: emoji.name.toLowerCase(),
  unified: emoji.unified,
  category: emoji.category,
  captions: captionsFor(emoji),
}));

const records = [];
const pixels = [];
for (const style of STYLES) {
  const imageDir = join(dirname(require.resolve(`${style.pkg}/package.json`)), style.dir);
  for (const [label, emoji] of sorted.entries()) {
    if (!emoji[style.has]) continue;
    const rgb = await sharp(join(imageDir, emoji.image))
      .resize(SIZE, SIZE, { fit: 'contain', background: { r: 255, g: 255, b: 255, alpha: 0 } })
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .toColourspace('srgb')
      .removeAlpha()
      .raw()
      .toBuffer();
    if (rgb.length !== SIZE * SIZE * 3) throw new Error(`${emoji.image}: expected ${SIZE}×${SIZE} RGB, got ${rgb.length} bytes`);
    pixels.push(rgb);
    records.push({ label, style: style.word });
  }
}

const workDir = join(here, 'work');
mkdirSync(workDir, { recursive: true });
writeFileSync(join(workDir, 'images.u8'), Buffer.concat(pixels));
writeFileSync(join(workDir, 'dataset.json'), JSON.stringify({ size: SIZE, concepts, records }));
console.log(JSON.stringify({ images: records.length, concepts: concepts.length, heldout: heldoutPhrases.size }));
