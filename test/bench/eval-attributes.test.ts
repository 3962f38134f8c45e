import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { loadAttributeRules, readBackground, readCount, readPosition, readSize } from '../../src/bench/eval-attributes.js';
import { loadModelFolder } from '../../src/engine/model-folder.js';
import { vaeRoundTrip } from '../../src/engine/pipelines/stages.js';
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

  it('reads a small thing as small although a corner pixel is off-white, as the default decoder leaves it', async () => {
    const small = fixture.scenes.filter((scene) => scene.kind === 'small' && scene.background === 'white');
    expect(small.length).toBeGreaterThan(0);
    for (const scene of small) {
      const image = await decode(scene.png);
      // The bottom-right pixel the shipped VAE decoder draws on white (measured: 226/210/209 to 238/223/223).
      image.data.set([226, 210, 209], (63 * 64 + 63) * 3);
      expect(readSize(image, rules)).toBe('small');
    }
  });

  it('reads the real small and full-size scenes the same after the shipped VAE round trip', async () => {
    const model = await loadModelFolder('models/default', { intraOpNumThreads: 1 });
    try {
      for (const scene of fixture.scenes.filter((entry) => entry.kind === 'small' || entry.kind === 'plain')) {
        const roundTrip = await vaeRoundTrip(model, await decode(scene.png));
        expect({ kind: scene.kind, size: readSize(roundTrip, rules) }).toEqual({ kind: scene.kind, size: scene.size });
      }
    } finally {
      await model.release();
    }
  });
});
