import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModelFolder, type ModelFolder } from '../../src/engine/model-folder.js';
import { generate } from '../../src/engine/pipeline.js';

const DEFAULT = 'models/default';
/** The repository's budget for the shipped model, both UNets included (issue 10 and 15). */
const BUDGET_BYTES = 25_000_000;

async function folderBytes(dir: string): Promise<number> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  const sizes = await Promise.all(entries.filter((entry) => entry.isFile()).map((entry) => stat(join(entry.parentPath, entry.name)).then((s) => s.size)));
  return sizes.reduce((sum, size) => sum + size, 0);
}

describe('the shipped default model', () => {
  let model: ModelFolder;
  beforeAll(async () => {
    model = await loadModelFolder(DEFAULT);
  });
  afterAll(() => model?.release());

  it('stays within its 25 MB budget', async () => {
    expect(await folderBytes(DEFAULT)).toBeLessThanOrEqual(BUDGET_BYTES);
  });

  it('carries an LCM-distilled UNet that the lcm sampler runs in 4 steps without guidance', async () => {
    expect(model.lcmUnet).toBeDefined();
    const result = await generate(model, { prompt: 'a red apple', seed: 1, sampler: 'lcm' });
    expect(result.parameters[0]).toMatchObject({ sampler: 'lcm', steps: 4, guidance: 1 });
  });
});
