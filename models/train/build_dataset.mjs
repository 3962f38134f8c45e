// Builds the training sprites from the emoji image packages installed in models/train/node_modules: every concept of
// ../default/vocabulary.json in up to five art styles, as 64×64 RGBA (transparent background, so the training
// scripts can composite them at any size, place and background colour). Nothing is downloaded.
//
//   cd models/train && npm ci && node build_vocabulary.mjs && node build_dataset.mjs
//     → work/sprites.u8 [N,64,64,4], work/dataset.json, work/style-sheet.png (every concept in every style, to look at)
//
// Styles: Noto (emoji-datasource-google PNGs, Apache-2.0), Twemoji (emoji-datasource-twitter PNGs, CC BY 4.0),
// Fluent Flat (@iconify-json/fluent-emoji-flat SVGs, MIT), Noto v1 — the older "blob" Noto (@iconify-json/noto-v1 SVGs,
// Apache-2.0) and Firefox OS emoji (@iconify-json/fxemoji SVGs, Apache-2.0), rendered from SVG with sharp.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, 'package.json'));
// sharp is a dependency of the product, so it resolves from the repository root.
const sharp = createRequire(join(here, '..', '..', 'package.json'))('sharp');

const SIZE = 64;
const vocabulary = JSON.parse(readFileSync(join(here, '..', 'default', 'vocabulary.json'), 'utf8')).concepts;
const emojis = new Map(require('emoji-datasource/emoji.json').map((emoji) => [emoji.unified, emoji]));
const emojibase = new Map(require('emojibase-data/en/data.json').map((entry) => [withoutVariation(entry.hexcode), entry]));

function withoutVariation(hex) {
  return hex.toUpperCase().split('-').filter((part) => part !== 'FE0F').join('-');
}
const squash = (text) => text.toLowerCase().replace(/[^a-z0-9]+/g, '');
const slug = (text) => text.toLowerCase().replace(/[’']/g, '').replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

function iconSet(pkg) {
  const set = require(`${pkg}/icons.json`);
  const chars = require(`${pkg}/chars.json`);
  const byChar = new Map(Object.entries(chars).map(([hex, name]) => [withoutVariation(hex), name]));
  const resolve = (name) => set.icons[name] ?? (set.aliases?.[name] ? set.icons[set.aliases[name].parent] : undefined);
  return { set, byChar, resolve };
}

async function renderSvg(set, icon) {
  const width = icon.width ?? set.width ?? 16;
  const height = icon.height ?? set.height ?? 16;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="${icon.left ?? 0} ${icon.top ?? 0} ${width} ${height}" width="${SIZE}" height="${SIZE}">${icon.body}</svg>`;
  return sharp(Buffer.from(svg)).resize(SIZE, SIZE, { fit: 'contain', background: { r: 0, g: 0, b: 0, alpha: 0 } }).ensureAlpha().raw().toBuffer();
}
async function renderPng(file) {
  return sharp(file).resize(SIZE, SIZE, { fit: 'contain', background: { r: 0, g: 0, b: 0, alpha: 0 } })
    .toColourspace('srgb').ensureAlpha().raw().toBuffer();
}

function pngStyle(word, pkg, dir, has) {
  const imageDir = join(dirname(require.resolve(`${pkg}/package.json`)), dir);
  return {
    word,
    async render(concept) {
      const emoji = emojis.get(concept.unified);
      return emoji?.[has] ? renderPng(join(imageDir, emoji.image)) : null;
    },
  };
}

// Iconify sets name icons, not code points. Fluent ships a code point map; Noto v1 names icons by CLDR label slug;
// Firefox OS emoji by squashed Unicode names, with "cat" for the cat's face and "catside" for the whole cat.
function fluentStyle() {
  const { set, byChar, resolve } = iconSet('@iconify-json/fluent-emoji-flat');
  return { word: 'fluent', async render(concept) {
    const icon = resolve(byChar.get(withoutVariation(concept.unified)) ?? '');
    return icon ? renderSvg(set, icon) : null;
  } };
}
function notoV1Style() {
  const { set, resolve } = iconSet('@iconify-json/noto-v1');
  return { word: 'noto-v1', async render(concept) {
    const label = emojibase.get(withoutVariation(concept.unified))?.label ?? concept.label;
    const icon = resolve(slug(label));
    return icon ? renderSvg(set, icon) : null;
  } };
}
function fxemojiStyle() {
  const { set, resolve } = iconSet('@iconify-json/fxemoji');
  return { word: 'fxemoji', async render(concept) {
    const emoji = emojis.get(concept.unified);
    const base = emojibase.get(withoutVariation(concept.unified))?.label ?? concept.label;
    const names = [emoji.name, ...emoji.short_names, base].map(squash);
    const faceOf = /face$/.test(names[0]) ? names[0].replace(/face$/, '') : null;
    let name;
    if (faceOf && resolve(`${faceOf}side`)) name = faceOf;
    else if (names.some((n) => resolve(`${n}side`))) name = `${names.find((n) => resolve(`${n}side`))}side`;
    else name = names.find((n) => resolve(n) && !resolve(`${n}side`));
    return name ? renderSvg(set, resolve(name)) : null;
  } };
}

const STYLES = [
  pngStyle('noto', 'emoji-datasource-google', 'img/google/64', 'has_img_google'),
  pngStyle('twemoji', 'emoji-datasource-twitter', 'img/twitter/64', 'has_img_twitter'),
  fluentStyle(),
  notoV1Style(),
  fxemojiStyle(),
];

const records = [];
const sprites = [];
const missing = {};
for (const [index, concept] of vocabulary.entries()) {
  for (const style of STYLES) {
    const rgba = await style.render(concept);
    if (!rgba) {
      (missing[style.word] ??= []).push(concept.id);
      continue;
    }
    if (rgba.length !== SIZE * SIZE * 4) throw new Error(`${concept.id} (${style.word}): expected ${SIZE}×${SIZE} RGBA, got ${rgba.length} bytes`);
    sprites.push(rgba);
    records.push({ concept: index, style: style.word });
  }
}

const workDir = join(here, 'work');
mkdirSync(workDir, { recursive: true });
writeFileSync(join(workDir, 'sprites.u8'), Buffer.concat(sprites));
writeFileSync(join(workDir, 'dataset.json'), JSON.stringify({ size: SIZE, styles: STYLES.map((s) => s.word), concepts: vocabulary, records }));
await writeStyleSheet(join(workDir, 'style-sheet.png'));
const perStyle = Object.fromEntries(STYLES.map((s) => [s.word, records.filter((r) => r.style === s.word).length]));
console.log(JSON.stringify({ sprites: records.length, concepts: vocabulary.length, perStyle,
  missing: Object.fromEntries(Object.entries(missing).map(([k, v]) => [k, v.length])) }));

/** One row per concept, one column per style, on white: to check by eye that every style drew the same thing. */
async function writeStyleSheet(file) {
  const columns = STYLES.length;
  const tile = 32;
  const tiles = [];
  for (const [k, record] of records.entries()) {
    const column = STYLES.findIndex((s) => s.word === record.style);
    const input = await sharp(sprites[k], { raw: { width: SIZE, height: SIZE, channels: 4 } }).resize(tile, tile).png().toBuffer();
    const row = record.concept;
    tiles.push({ input, left: (Math.floor(row / 100) * (columns + 1) + column) * tile, top: (row % 100) * tile });
  }
  const blocks = Math.ceil(vocabulary.length / 100);
  await sharp({ create: { width: blocks * (columns + 1) * tile, height: 100 * tile, channels: 3, background: '#ffffff' } })
    .composite(tiles).png().toFile(file);
}
