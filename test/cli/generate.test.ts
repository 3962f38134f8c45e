import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTextChunks } from '../../src/engine/png-text.js';

const run = promisify(execFile);
const MODEL = 'test/fixtures/models/tiny-sd';
let dir: string;

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'generate', ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'imagine-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('npm run cli -- generate', () => {
  it('writes the same PNG twice for the same seed, with prompt and seed in its parameters, and reports it as JSON', async () => {
    const first = join(dir, 'first.png');
    const second = join(dir, 'second.png');
    const result = await cli('a red fox in the snow', '--model', MODEL, '--seed', '7', '--steps', '3', '--out', first, '--json');
    await cli('a red fox in the snow', '--model', MODEL, '--seed', '7', '--steps', '3', '--out', second);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.files).toEqual([{ path: first, seed: 7 }]);
    expect(Object.keys(report.timingsMs)).toEqual(expect.arrayContaining(['textEncoderMs', 'unetMs', 'vaeMs', 'ortMs', 'wallMs']));
    const png = await readFile(first);
    expect(png.equals(await readFile(second))).toBe(true);
    expect(readTextChunks(png).parameters).toMatch(/^a red fox in the snow\nSteps: 3, .*Seed: 7, Size: 64x64, Model: tiny-sd/);
  });

  it('exits 2 with a message saying what to change for bad input', async () => {
    const result = await cli('a fox', '--model', MODEL, '--size', '70x64');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('multiples of 16');
  });

  it('prints the error as JSON with --json', async () => {
    const result = await cli('a fox', '--model', MODEL, '--sampler', 'heun', '--json');
    expect(result.code).toBe(2);
    expect(JSON.parse(result.stdout)).toEqual({ error: { kind: 'invalid_input', message: expect.stringContaining('--sampler must be one of') } });
  });

  it('says clearly when the model folder is missing', async () => {
    const result = await cli('a fox', '--model', join(dir, 'nowhere'));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('does not exist');
  });

  it('upscales 4× with the folder’s upscaler and says which was used', async () => {
    const source = join(dir, 'source.png');
    await cli('a fox', '--model', MODEL, '--seed', '1', '--steps', '2', '--out', source);
    const result = await cli('--upscale', source, '--model', MODEL, '--out', join(dir, 'up.png'), '--json');
    expect(JSON.parse(result.stdout)).toMatchObject({ upscaler: 'model', files: [{ path: join(dir, 'up.png') }] });
  });
});
