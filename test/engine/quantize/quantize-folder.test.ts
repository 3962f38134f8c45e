import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModelFolder, type ModelFolder } from '../../../src/engine/model-folder.js';
import { generate } from '../../../src/engine/pipeline.js';
import { quantizeFolder, QUANTIZATION_FILE, type QuantizeReport } from '../../../src/engine/quantize/quantize-folder.js';
import { concatBytes, field, message, text, varintField } from '../../../src/engine/onnx-graph.js';
import { readOnnxModel, writeOnnxModel } from '../../../src/engine/quantize/onnx-file.js';

const SD15_SHAPED = 'test/fixtures/models/tiny-sd';
const FLOAT16_WEIGHTS = 'test/fixtures/models/tiny-sd-v2';
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'imagine-quantize-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const meanDifference = (a: Uint8Array, b: Uint8Array) => a.reduce((sum, value, i) => sum + Math.abs(value - b[i]), 0) / a.length;

async function draw(model: ModelFolder, seed: number): Promise<Uint8Array> {
  const { images } = await generate(model, { prompt: 'a red fox in the snow', seed, steps: 4 });
  return images[0].data;
}

async function readModel(file: string) {
  const model = readOnnxModel(file, await readFile(file));
  return { ops: new Set(model.nodes.map((node) => node.op)), tensors: [...model.initializers.values()] };
}

describe('quantizeFolder', () => {
  describe('an SD-1.5-shaped float32 folder', () => {
    let report: QuantizeReport;
    let out: string;
    beforeAll(async () => {
      out = join(dir, 'tiny-sd-int8');
      report = await quantizeFolder(SD15_SHAPED, out, { calibrationImages: 2, intraOpNumThreads: 1 });
    });

    it('rewrites the UNet and text encoder and copies every other file as it was', async () => {
      expect(report.components.map(({ component, matmuls, convs }) => ({ component, matmuls, convs }))).toEqual([
        { component: 'text_encoder', matmuls: 8, convs: 0 },
        { component: 'unet', matmuls: 19, convs: 16 },
      ]);
      const unet = await readModel(join(out, 'unet', 'model.onnx'));
      expect(unet.ops.has('Conv')).toBe(false);
      expect([...unet.ops]).toEqual(expect.arrayContaining(['QLinearConv', 'DynamicQuantizeMatMul']));
      for (const file of ['vae_decoder/model.onnx', 'tokenizer/vocab.json', 'scheduler/scheduler_config.json', 'imagine.json']) {
        expect((await readFile(join(out, file))).equals(await readFile(join(SD15_SHAPED, file)))).toBe(true);
      }
      expect(JSON.parse(await readFile(join(out, QUANTIZATION_FILE), 'utf8'))).toMatchObject({ format: 'int8', calibration: { images: 2 } });
    });

    it('stores the UNet in under a third of its float32 bytes', () => {
      const unet = report.components.find((c) => c.component === 'unet')!;
      expect(unet.bytesAfter / unet.bytesBefore).toBeLessThan(1 / 3);
      expect(report.folderBytes.after).toBeLessThan(report.folderBytes.before);
    });

    it('loads like any folder and draws the float32 picture of the same seed, up to quantization noise', async () => {
      const [float32, int8] = [await loadModelFolder(SD15_SHAPED, { intraOpNumThreads: 1 }), await loadModelFolder(out, { intraOpNumThreads: 1 })];
      try {
        const reference = await draw(float32, 3);
        const otherSeed = await draw(float32, 4);
        const quantized = await draw(int8, 3);
        expect(meanDifference(reference, quantized)).toBeLessThan(meanDifference(reference, otherSeed) / 5);
      } finally {
        await Promise.all([float32.release(), int8.release()]);
      }
    });
  });

  it('quantizes a folder that stores float16 weights, leaving only per-channel vectors (biases, norms) in float16', async () => {
    const out = join(dir, 'tiny-sd-v2-int8');
    const report = await quantizeFolder(FLOAT16_WEIGHTS, out, { calibrationImages: 1, intraOpNumThreads: 1 });
    expect(report.components.find((c) => c.component === 'unet')).toMatchObject({ matmuls: 19, convs: 16 });
    const { tensors } = await readModel(join(out, 'unet', 'model.onnx'));
    const float16Matrices = tensors.filter((tensor) => tensor.dataType === 10 && tensor.dims.filter((dim) => dim > 1).length > 1);
    expect(float16Matrices.map((tensor) => tensor.name)).toEqual([]);
    // int8: 19 MatMul weights, 16 Conv weights and their 16 zero-point vectors.
    expect(tensors.filter((tensor) => tensor.dataType === 3).length).toBe(19 + 16 + 16);
    const model = await loadModelFolder(out, { intraOpNumThreads: 1 });
    try {
      expect((await draw(model, 1)).length).toBe(64 * 64 * 3);
    } finally {
      await model.release();
    }
  });

  it('reads an export whose weights are in an external data file, and writes a standalone int8 UNet without it', async () => {
    const folder = join(dir, 'external-data');
    await cp(SD15_SHAPED, folder, { recursive: true });
    await moveWeightsToExternalData(join(folder, 'unet', 'model.onnx'), 'model.onnx_data');
    const float32 = await loadModelFolder(folder, { intraOpNumThreads: 1 }); // onnxruntime reads the fixture as written
    await float32.release();

    const out = join(dir, 'external-data-int8');
    const report = await quantizeFolder(folder, out, { calibrationImages: 1, intraOpNumThreads: 1 });
    expect(report.components.find((c) => c.component === 'unet')).toMatchObject({ matmuls: 19, convs: 16 });
    expect(await readdir(join(out, 'unet'))).toEqual(['config.json', 'model.onnx']);
    const model = await loadModelFolder(out, { intraOpNumThreads: 1 });
    try {
      expect((await draw(model, 1)).length).toBe(64 * 64 * 3);
    } finally {
      await model.release();
    }
  });

  it('refuses an int8 folder and leaves nothing behind', async () => {
    const first = join(dir, 'once');
    await quantizeFolder(SD15_SHAPED, first, { calibrationImages: 1, intraOpNumThreads: 1 });
    const before = await readdir(dir);
    await expect(quantizeFolder(first, join(dir, 'twice'))).rejects.toMatchObject({
      kind: 'invalid_input',
      userMessage: expect.stringMatching(/once\/text_encoder\/model\.onnx: node '.*' \(DynamicQuantizeMatMul\) is already a quantized operator/),
    });
    expect(await readdir(dir)).toEqual(before);
  });
});

/** Rewrites a model as Optimum saves one over 2 GB: every tensor of more than 16 values in one external data file. */
async function moveWeightsToExternalData(file: string, location: string): Promise<void> {
  const model = readOnnxModel(file, await readFile(file));
  const chunks: Uint8Array[] = [];
  let offset = 0;
  const replacedTensors = new Map<string, Uint8Array>();
  for (const tensor of model.initializers.values()) {
    if (!tensor.rawData || tensor.rawData.length <= 64) continue;
    const entry = (key: string, value: string) => field(13, message([field(1, text(key)), field(2, text(value))]));
    replacedTensors.set(
      tensor.name,
      message([
        ...tensor.dims.map((dim) => varintField(1, dim)),
        varintField(2, tensor.dataType),
        field(8, text(tensor.name)),
        entry('location', location),
        entry('offset', String(offset)),
        entry('length', String(tensor.rawData.length)),
        varintField(14, 1),
      ]),
    );
    chunks.push(tensor.rawData);
    offset += tensor.rawData.length;
  }
  expect(replacedTensors.size).toBeGreaterThan(30);
  await writeFile(join(file, '..', location), concatBytes(chunks));
  await writeFile(
    file,
    writeOnnxModel(model, { nodes: model.nodes.map((node) => ({ kept: node })), keptInitializers: [...model.initializers.keys()], addedInitializers: [], replacedTensors }),
  );
}
