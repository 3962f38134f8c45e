import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeModelFolder } from '../../src/engine/model-description.js';
import { loadModelFolder, type ModelFolder } from '../../src/engine/model-folder.js';
import { encodeModel } from '../../src/engine/onnx-graph.js';
import { generate } from '../../src/engine/pipeline.js';

const TINY_SD = 'test/fixtures/models/tiny-sd';
const scratch: string[] = [];

/** A stand-in for a distilled UNet with tiny-sd's interface: it predicts half the sample, whatever the prompt. */
function halfTheSampleUnet(hiddenSize: number): Uint8Array {
  return encodeModel({
    name: 'lcm-stand-in',
    inputs: [
      { name: 'sample', type: 'float32', dims: ['batch', 4, 'height', 'width'] },
      { name: 'timestep', type: 'int64', dims: ['batch'] },
      { name: 'encoder_hidden_states', type: 'float32', dims: ['batch', 'tokens', hiddenSize] },
    ],
    outputs: [{ name: 'out_sample', type: 'float32', dims: ['batch', 4, 'height', 'width'] }],
    nodes: [{ op: 'Mul', inputs: ['sample', 'half'], outputs: ['out_sample'] }],
    initializers: [{ name: 'half', values: new Float32Array([0.5]), dims: [] }],
  });
}

async function folderWithLcmUnet(unet: Uint8Array, imagine?: object): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'imagine-lcm-'));
  scratch.push(dir);
  await cp(TINY_SD, dir, { recursive: true });
  await mkdir(join(dir, 'unet_lcm'));
  await writeFile(join(dir, 'unet_lcm', 'model.onnx'), unet);
  if (imagine) {
    const settings = JSON.parse(await readFile(join(dir, 'imagine.json'), 'utf8'));
    await writeFile(join(dir, 'imagine.json'), JSON.stringify({ ...settings, ...imagine }));
  }
  return dir;
}

const picture = (model: ModelFolder, sampler: 'lcm' | 'ddim', settings: { steps?: number; guidance?: number } = {}) =>
  generate(model, { prompt: 'a red apple', seed: 7, sampler, ...settings });

describe('a folder with an LCM-distilled UNet (unet_lcm/)', () => {
  let plain: ModelFolder;
  let withLcm: ModelFolder;
  let hiddenSize: number;

  beforeAll(async () => {
    plain = await loadModelFolder(TINY_SD);
    hiddenSize = plain.unet.hiddenStates.dims[2] as number;
    withLcm = await loadModelFolder(await folderWithLcmUnet(halfTheSampleUnet(hiddenSize), { lcm: { steps: 3, guidance: 1 } }));
  });
  afterAll(async () => {
    await plain?.release();
    await withLcm?.release();
    await Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it('runs the distilled UNet for the lcm sampler, at the steps and guidance its imagine.json gives', async () => {
    const [distilled, main] = await Promise.all([picture(withLcm, 'lcm'), picture(plain, 'lcm', { steps: 3, guidance: 1 })]);
    expect(distilled.parameters[0]).toMatchObject({ sampler: 'lcm', steps: 3, guidance: 1 });
    expect(Buffer.from(distilled.images[0].data).equals(Buffer.from(main.images[0].data))).toBe(false);
  });

  it('keeps the main UNet for every other sampler', async () => {
    const [withFolder, plainFolder] = await Promise.all([picture(withLcm, 'ddim', { steps: 2 }), picture(plain, 'ddim', { steps: 2 })]);
    expect(Buffer.from(withFolder.images[0].data).equals(Buffer.from(plainFolder.images[0].data))).toBe(true);
  });

  it('takes 4 steps and no guidance when imagine.json says nothing about it', async () => {
    const model = await loadModelFolder(await folderWithLcmUnet(halfTheSampleUnet(hiddenSize)));
    try {
      expect(model.description.lcmUnet).toEqual({ steps: 4, guidance: 1 });
      expect((await picture(model, 'lcm')).parameters[0]).toMatchObject({ steps: 4, guidance: 1 });
    } finally {
      await model.release();
    }
  });

  it('splits the distilled UNet’s batch over lanes as it does the main UNet’s', async () => {
    const model = await loadModelFolder(withLcm.dir, { intraOpNumThreads: 2, unetLanes: 2 });
    try {
      expect(model.lcmUnet?.lanes).toHaveLength(1);
      const two = (folder: ModelFolder) => generate(folder, { prompt: 'a red apple', seed: 7, sampler: 'lcm', batch: 2 });
      const [laned, single] = await Promise.all([two(model), two(withLcm)]);
      for (const k of [0, 1]) expect(Buffer.from(laned.images[k].data).equals(Buffer.from(single.images[k].data))).toBe(true);
    } finally {
      await model.release();
    }
  });

  it('refuses a distilled UNet whose prompt states are not the main UNet’s, naming the file', async () => {
    const dir = await folderWithLcmUnet(halfTheSampleUnet(hiddenSize + 8));
    await expect(loadModelFolder(dir)).rejects.toThrow(/unet_lcm.model\.onnx.*encoder_hidden_states|unet_lcm/);
  });

  it('refuses an imagine.json that promises an lcm UNet the folder does not have, naming the missing file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'imagine-lcm-'));
    scratch.push(dir);
    await cp(TINY_SD, dir, { recursive: true });
    const settings = JSON.parse(await readFile(join(dir, 'imagine.json'), 'utf8'));
    await writeFile(join(dir, 'imagine.json'), JSON.stringify({ ...settings, lcm: { steps: 4 } }));
    await expect(describeModelFolder(dir)).rejects.toThrow(/unet_lcm.model\.onnx/);
  });
});
