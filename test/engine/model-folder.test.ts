import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModelFolder } from '../../src/engine/model-folder.js';

const TINY_SD = 'test/fixtures/models/tiny-sd';
const TINY_SD_V2 = 'test/fixtures/models/tiny-sd-v2';
const scratch: string[] = [];

async function copyOfFixture(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'imagine-model-'));
  scratch.push(dir);
  await cp(TINY_SD, dir, { recursive: true });
  return dir;
}

afterAll(async () => {
  await Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('model folder loader', () => {
  it('loads an older export: int32 ids, int64 [batch] timesteps, latent_sample encoder, upscaler', async () => {
    const model = await loadModelFolder(TINY_SD);
    try {
      expect(model.name).toBe('tiny-sd');
      expect(model.textEncoder.ids.type).toBe('int32');
      expect(model.unet.timestep).toMatchObject({ type: 'int64', dims: ['batch_size'] });
      expect(model.vaeEncoder?.outputsMeanAndLogvar).toBe(false);
      expect(model.upscaler).toBeDefined();
      expect(model.description.vaeScaleFactor).toBe(8);
      expect(model.description.sizeMultiple).toBe(16);
      expect(model.tokenizer.maxLength).toBe(77);
    } finally {
      await model.release();
    }
  });

  it('loads a newer export: int64 ids, float32 scalar timestep, float16 UNet, latent_parameters, TAESD', async () => {
    const model = await loadModelFolder(TINY_SD_V2);
    try {
      expect(model.textEncoder.ids.type).toBe('int64');
      expect(model.unet.timestep).toMatchObject({ type: 'float32', dims: [] });
      expect(model.unet.sample.type).toBe('float16');
      expect(model.vaeEncoder?.outputsMeanAndLogvar).toBe(true);
      expect(model.taesdDecoder).toBeDefined();
      expect(model.upscaler).toBeUndefined();
    } finally {
      await model.release();
    }
  });

  it('names the missing file when a component is absent', async () => {
    const dir = await copyOfFixture();
    await rm(join(dir, 'unet'), { recursive: true });
    await expect(loadModelFolder(dir)).rejects.toMatchObject({ kind: 'model_failure', userMessage: expect.stringContaining(join('unet', 'model.onnx')) });
  });

  it('names the file, the tensor and what was expected when a model does not fit its slot', async () => {
    const dir = await copyOfFixture();
    await cp(join(dir, 'vae_decoder', 'model.onnx'), join(dir, 'unet', 'model.onnx'));
    await expect(loadModelFolder(dir)).rejects.toMatchObject({
      kind: 'model_failure',
      userMessage: expect.stringMatching(/unet.model\.onnx.*'sample'.*latent_sample/s),
    });
  });

  it('refuses a folder that does not exist, saying what a model folder contains', async () => {
    await expect(loadModelFolder('no/such/folder')).rejects.toMatchObject({ userMessage: expect.stringContaining('model_index.json') });
  });

  it('refuses an unknown execution provider by name', async () => {
    await expect(loadModelFolder(TINY_SD, { executionProviders: ['tpu' as never] })).rejects.toMatchObject({
      kind: 'invalid_input',
      userMessage: expect.stringContaining("'tpu'"),
    });
  });

  it('stops with a clear error when an execution provider cannot be loaded, instead of falling back to CPU', async () => {
    await expect(loadModelFolder(TINY_SD, { executionProviders: ['cuda'] })).rejects.toMatchObject({
      kind: 'model_failure',
      userMessage: expect.stringContaining('cuda'),
    });
  });
});
