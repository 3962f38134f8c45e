import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeModel } from '../../src/engine/onnx-graph.js';

const run = promisify(execFile);
const MODEL = 'test/fixtures/models/tiny-sd';
let dir: string;

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'quantize', ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'imagine-cli-quantize-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('npm run cli -- quantize', () => {
  let int8: string;
  let result: Awaited<ReturnType<typeof cli>>;
  beforeAll(async () => {
    int8 = join(dir, 'tiny-sd-int8');
    result = await cli('--model', MODEL, '--out', int8, '--calibration-images', '2', '--threads', '1', '--json');
  });

  it('writes an int8 copy of the folder that generate runs, and reports what it rewrote as JSON', async () => {
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({
      model: 'tiny-sd',
      out: int8,
      components: [
        { component: 'text_encoder', file: 'text_encoder/model.onnx', matmuls: 8, convs: 0 },
        { component: 'unet', file: 'unet/model.onnx', matmuls: 19, convs: 16 },
      ],
      calibration: { images: 2, steps: 4 },
    });
    expect(report.folderBytes.after).toBeLessThan(report.folderBytes.before);
    const generated = await run(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'generate', 'a red fox', '--model', int8, '--seed', '1', '--out', join(dir, 'fox.png')]);
    expect(generated.stdout).toContain('fox.png');
  });

  it('exits 2 naming the file and node when the folder is already int8, writing nothing', async () => {
    const result = await cli('--model', int8, '--out', join(dir, 'twice'));
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/tiny-sd-int8\/text_encoder\/model\.onnx: node '.+' \(DynamicQuantizeMatMul\) is already a quantized operator/);
    expect(await readdir(dir)).not.toContain('twice');
  });

  it('exits 2 naming the node when the UNet has an operator it cannot rewrite, writing nothing', async () => {
    const folder = join(dir, 'with-conv-transpose');
    await cp(MODEL, folder, { recursive: true });
    await writeFile(
      join(folder, 'unet', 'model.onnx'),
      encodeModel({
        name: 'unet',
        inputs: [{ name: 'sample', type: 'float32', dims: ['batch', 4, 8, 8] }],
        outputs: [{ name: 'out_sample', type: 'float32', dims: ['batch', 4, 16, 16] }],
        nodes: [{ op: 'ConvTranspose', name: 'up_blocks.0.upsample', inputs: ['sample', 'weight'], outputs: ['out_sample'], attributes: { strides: [2, 2] } }],
        initializers: [{ name: 'weight', values: new Float32Array(4 * 4 * 2 * 2), dims: [4, 4, 2, 2] }],
      }),
    );
    const before = await readdir(dir);
    const result = await cli('--model', folder, '--out', join(dir, 'int8-of-conv-transpose'), '--json');
    expect(result.code).toBe(2);
    expect(JSON.parse(result.stdout)).toEqual({
      error: { kind: 'invalid_input', message: expect.stringContaining("with-conv-transpose/unet/model.onnx: node 'up_blocks.0.upsample' (ConvTranspose) holds stored weights") },
    });
    expect(await readdir(dir)).toEqual(before);
  });

  it('exits 2 when --out already exists, leaving it as it was', async () => {
    const existing = join(dir, 'existing');
    await mkdir(existing);
    await writeFile(join(existing, 'keep.txt'), 'mine');
    const result = await cli('--model', MODEL, '--out', existing);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${existing} already exists; give --out a folder that does not exist yet`);
    expect(await readdir(existing)).toEqual(['keep.txt']);
  });

  it('exits 2 and shows the usage without --out', async () => {
    const result = await cli('--model', MODEL);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--out is required');
    expect(result.stderr).toContain('Usage: npm run cli -- quantize');
  });
});
