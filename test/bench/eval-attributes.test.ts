import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { loadAttributeRules, readBackground, readCount, readPosition, readSize } from '../../src/bench/eval-attributes.js';
import type { RgbImage } from '../../src/engine/types.js';

interface FixtureScene {
  kind: string;
  png: string;
  background: string;
  position: string | null;
  size: string | null;
  count: number;
}
const fixture: { scenes: FixtureScene[] } = JSON.parse(readFileSync('test/fixtures/attribute-scenes.json', 'utf8'));
const rules = loadAttributeRules();

async function decode(png: string): Promise<RgbImage> {
  const { data, info } = await sharp(Buffer.from(png, 'base64')).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data) };
}

describe('the eval reads attributes from pixels as the training data builder does', () => {
  it('reads every real training scene as models/train/scenes.py reads it', async () => {
    expect(fixture.scenes.map((scene) => scene.kind)).toEqual(expect.arrayContaining(['plain', 'background', 'small', 'position', 'pair']));
    for (const scene of fixture.scenes) {
      const image = await decode(scene.png);
      expect({
        background: readBackground(image, rules),
        position: readPosition(image, rules),
        size: readSize(image, rules),
        count: readCount(image, rules),
      }).toEqual({ background: scene.background, position: scene.position, size: scene.size, count: scene.count });
    }
  });

  it('finds no shape, place or size on a blank picture', () => {
    const blank: RgbImage = { width: 64, height: 64, data: new Uint8Array(64 * 64 * 3).fill(255) };
    expect([readBackground(blank, rules), readPosition(blank, rules), readSize(blank, rules), readCount(blank, rules)]).toEqual(['white', null, null, 0]);
  });
});
