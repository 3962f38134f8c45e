import { crc32, inflateSync } from 'node:zlib';
import { invalidInput } from './errors.js';

/**
 * PNG text chunks (PNG spec §11.3.4), because sharp cannot write them. AUTOMATIC1111 (through PIL) stores its
 * `parameters` right after IHDR as tEXt when the text is Latin-1 and as iTXt (UTF-8) otherwise. We write tEXt only for
 * ASCII: sharp's reader decodes every text chunk as UTF-8, so Latin-1 accents in a tEXt would come back as U+FFFD there,
 * while PIL and A1111 read the iTXt just as well. Right after IHDR also keeps them before IDAT, where sharp looks.
 */

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const MAX_KEYWORD_CHARS = 79;

/** A copy of `png` with one text chunk `keyword` = `text` inserted right after IHDR. */
export function withTextChunk(png: Buffer, keyword: string, text: string): Buffer {
  assertKeyword(keyword);
  if (text.includes('\0')) throw invalidInput('PNG text cannot contain a NUL character.');
  const chunks = readChunks(png);
  const ihdr = chunks[0];
  if (ihdr?.type !== 'IHDR') throw invalidInput('That PNG does not start with its IHDR header chunk.');
  const keywordBytes = Buffer.from(keyword, 'latin1');
  const chunk = isAscii(text)
    ? encodeChunk('tEXt', Buffer.concat([keywordBytes, Buffer.of(0), Buffer.from(text, 'latin1')]))
    : // iTXt: keyword NUL, compression flag 0, method 0, empty language tag NUL, empty translated keyword NUL, UTF-8.
      encodeChunk('iTXt', Buffer.concat([keywordBytes, Buffer.of(0, 0, 0, 0, 0), Buffer.from(text, 'utf8')]));
  return Buffer.concat([png.subarray(0, ihdr.end), chunk, png.subarray(ihdr.end)]);
}

/** Every tEXt, zTXt and iTXt chunk of `png` as keyword → text (a later chunk with the same keyword wins). */
export function readTextChunks(png: Buffer): Record<string, string> {
  const texts: Record<string, string> = {};
  for (const { type, data } of readChunks(png)) {
    const keywordEnd = data.indexOf(0);
    if (keywordEnd < 1 || !['tEXt', 'zTXt', 'iTXt'].includes(type)) continue;
    const keyword = data.subarray(0, keywordEnd).toString('latin1');
    const rest = data.subarray(keywordEnd + 1);
    if (type === 'tEXt') texts[keyword] = rest.toString('latin1');
    else if (type === 'zTXt') texts[keyword] = inflateText(rest.subarray(1)).toString('latin1');
    else {
      const compressed = rest[0] === 1;
      const languageEnd = rest.indexOf(0, 2);
      const translatedEnd = rest.indexOf(0, languageEnd + 1);
      if (languageEnd < 0 || translatedEnd < 0) throw damaged(`its iTXt chunk "${keyword}" is truncated`);
      const body = rest.subarray(translatedEnd + 1);
      texts[keyword] = (compressed ? inflateText(body) : body).toString('utf8');
    }
  }
  return texts;
}

interface Chunk {
  type: string;
  data: Buffer;
  /** Offset just past the chunk's CRC. */
  end: number;
}

function readChunks(png: Buffer): Chunk[] {
  if (png.length < PNG_SIGNATURE.length || !png.subarray(0, PNG_SIGNATURE.length).equals(PNG_SIGNATURE)) {
    throw invalidInput('That file is not a PNG (its first bytes are not the PNG signature).');
  }
  const chunks: Chunk[] = [];
  let offset = PNG_SIGNATURE.length;
  while (offset < png.length) {
    if (offset + 12 > png.length) throw damaged('it ends inside a chunk header');
    const length = png.readUInt32BE(offset);
    const end = offset + 12 + length;
    if (end > png.length) throw damaged('a chunk runs past the end of the file');
    const typeAndData = png.subarray(offset + 4, offset + 8 + length);
    if (crc32(typeAndData) !== png.readUInt32BE(offset + 8 + length)) throw damaged('a chunk fails its CRC check');
    const type = typeAndData.subarray(0, 4).toString('latin1');
    chunks.push({ type, data: typeAndData.subarray(4), end });
    offset = end;
    if (type === 'IEND') break;
  }
  return chunks;
}

function encodeChunk(type: string, data: Buffer): Buffer {
  const chunk = Buffer.alloc(12 + data.length);
  chunk.writeUInt32BE(data.length, 0);
  chunk.write(type, 4, 'latin1');
  data.copy(chunk, 8);
  chunk.writeUInt32BE(crc32(chunk.subarray(4, 8 + data.length)), 8 + data.length);
  return chunk;
}

function inflateText(compressed: Buffer): Buffer {
  try {
    return inflateSync(compressed);
  } catch {
    throw damaged('a compressed text chunk does not inflate');
  }
}

/** The PNG spec allows printable Latin-1 (32–126, 161–255) with no leading, trailing or doubled spaces. */
function assertKeyword(keyword: string): void {
  const printable = [...keyword].every((char) => {
    const code = char.charCodeAt(0);
    return (code >= 32 && code <= 126) || (code >= 161 && code <= 255);
  });
  if (keyword.length < 1 || keyword.length > MAX_KEYWORD_CHARS || !printable || /^ | $| {2}/.test(keyword)) {
    throw invalidInput(
      `A PNG text keyword must be 1–${MAX_KEYWORD_CHARS} printable Latin-1 characters without leading, trailing or double spaces (got "${keyword}").`,
    );
  }
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

function damaged(reason: string) {
  return invalidInput(`That PNG is damaged: ${reason}.`);
}
