import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.js';
import { readTextChunks, withTextChunk } from '../../src/engine/png-text.js';

let png: Buffer;

beforeAll(async () => {
  png = await sharp({ create: { width: 5, height: 4, channels: 3, background: '#3366cc' } }).png().toBuffer();
});

const chunkTypes = (file: Buffer): string[] => {
  const types: string[] = [];
  for (let offset = 8; offset < file.length; offset += 12 + file.readUInt32BE(offset)) {
    types.push(file.toString('latin1', offset + 4, offset + 8));
  }
  return types;
};

describe('withTextChunk', () => {
  it('writes ASCII text as a tEXt chunk right after IHDR', () => {
    const tagged = withTextChunk(png, 'parameters', 'a red fox\nSteps: 20, Seed: 1');
    expect(chunkTypes(tagged).slice(0, 2)).toEqual(['IHDR', 'tEXt']);
    expect(readTextChunks(tagged)).toEqual({ parameters: 'a red fox\nSteps: 20, Seed: 1' });
  });

  it('writes any other text as uncompressed UTF-8 iTXt and reads it back unchanged', () => {
    const text = 'ein Fuchs im Schnee, café, キツネ 🦊';
    const tagged = withTextChunk(png, 'parameters', text);
    expect(chunkTypes(tagged)[1]).toBe('iTXt');
    expect(readTextChunks(tagged).parameters).toBe(text);
  });

  it('leaves an image sharp still decodes, with the same pixels', async () => {
    const tagged = withTextChunk(withTextChunk(png, 'parameters', 'a fox'), 'Comment', 'Füchse');
    expect(await sharp(tagged).raw().toBuffer()).toEqual(await sharp(png).raw().toBuffer());
  });

  it("puts the text where sharp's metadata sees it, non-Latin-1 and accents included", async () => {
    const tagged = withTextChunk(withTextChunk(png, 'parameters', 'a fox, Steps: 4'), 'Title', 'Café 狐');
    const { comments } = await sharp(tagged).metadata();
    expect(comments).toEqual(
      expect.arrayContaining([
        { keyword: 'parameters', text: 'a fox, Steps: 4' },
        { keyword: 'Title', text: 'Café 狐' },
      ]),
    );
  });

  it.each(['', 'k'.repeat(80), ' leading', 'trailing ', 'two  spaces', 'tab\tkey', 'ключ'])('refuses the keyword "%s"', (keyword) => {
    expect(() => withTextChunk(png, keyword, 'text')).toThrow(EngineError);
  });

  it('accepts a 79-character Latin-1 keyword', () => {
    const keyword = 'é'.repeat(79);
    expect(readTextChunks(withTextChunk(png, keyword, 'x'))[keyword]).toBe('x');
  });

  it('refuses text with a NUL character and a file that is not a PNG', () => {
    expect(() => withTextChunk(png, 'parameters', 'a\0b')).toThrow(EngineError);
    expect(() => withTextChunk(Buffer.from('GIF89a'), 'parameters', 'x')).toThrow('is not a PNG');
  });
});

describe('readTextChunks', () => {
  it('returns nothing for a PNG without text', () => {
    expect(readTextChunks(png)).toEqual({});
  });

  it('reads Latin-1 tEXt and compressed zTXt and iTXt written by other tools', () => {
    const insert = (file: Buffer, type: string, data: Buffer): Buffer => {
      const chunk = Buffer.alloc(12 + data.length);
      chunk.writeUInt32BE(data.length, 0);
      chunk.write(type, 4, 'latin1');
      data.copy(chunk, 8);
      chunk.writeUInt32BE(crc32Of(chunk.subarray(4, 8 + data.length)), 8 + data.length);
      return Buffer.concat([file.subarray(0, 33), chunk, file.subarray(33)]);
    };
    let file = insert(png, 'tEXt', Buffer.concat([Buffer.from('Author\0', 'latin1'), Buffer.from('Zoë', 'latin1')]));
    file = insert(file, 'zTXt', Buffer.concat([Buffer.from('Description\0\0', 'latin1'), deflateSync(Buffer.from('naïve', 'latin1'))]));
    file = insert(file, 'iTXt', Buffer.concat([Buffer.from('Title\0\x01\0ja\0題\0', 'utf8'), deflateSync(Buffer.from('狐の絵', 'utf8'))]));
    expect(readTextChunks(file)).toEqual({ Author: 'Zoë', Description: 'naïve', Title: '狐の絵' });
  });

  it('refuses a PNG whose chunk fails its CRC', () => {
    const tagged = withTextChunk(png, 'parameters', 'a fox');
    tagged[45] ^= 0xff;
    expect(() => readTextChunks(tagged)).toThrow('damaged');
  });

  it('refuses a truncated PNG', () => {
    const tagged = withTextChunk(png, 'parameters', 'a fox');
    expect(() => readTextChunks(tagged.subarray(0, 40))).toThrow(EngineError);
  });
});

// The test's own CRC-32 (IEEE 802.3, reflected 0xEDB88320), so the reader is checked against an independent writer.
function crc32Of(bytes: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}
