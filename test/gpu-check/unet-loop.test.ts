import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const scratch: string[] = [];
afterAll(async () => {
  await Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true })));
});

/**
 * The Node half of the GPU check (scripts/gpu-check/): what runs on the GPU machine is the esbuild bundle that
 * prepare.sh makes, with its own node and onnxruntime-node and without sharp. Here it runs on the CPU provider against
 * the tiny fixture; the GPU figures come from scripts/gpu-check/run.sh on a GPU machine.
 */
describe('GPU check: the engine loop', () => {
  it('times the engine loop on a model folder and writes its figures as JSON', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'imagine-gpu-check-'));
    scratch.push(dir);
    const json = join(dir, 'engine.json');
    await run('npx', ['--no-install', 'tsx', 'scripts/gpu-check/unet-loop.ts', '--model', 'test/fixtures/models/tiny-sd', '--provider', 'cpu', '--steps', '2', '--warmup-steps', '1', '--json', json]);
    const figures = JSON.parse(await readFile(json, 'utf8'));
    expect(figures).toMatchObject({ model: 'tiny-sd', provider: 'cpu', size: '64x64', latent: [1, 4, 8, 8], steps: 2, uploadsPerStep: 0, downloadsPerStep: 0 });
    expect(figures.stepMs).toBeGreaterThan(0);
    expect(figures.unetMs).toBeGreaterThan(0);
    expect(figures.stepMs).toBeGreaterThanOrEqual(figures.unetMs);
  }, 120_000);

  it('bundles into one file that runs with onnxruntime-node alone beside it (no sharp)', async () => {
    // Inside the repository (out/ is git-ignored) so that `onnxruntime-node` resolves, as it does from .gpu-check/.
    const bundle = join('out', `gpu-check-test-${process.pid}`, 'unet-loop.mjs');
    scratch.push(join('out', `gpu-check-test-${process.pid}`));
    await run('npx', [
      '--no-install', 'esbuild', 'scripts/gpu-check/unet-loop.ts', '--bundle', '--platform=node', '--format=esm', '--target=node20',
      '--external:onnxruntime-node', '--alias:sharp=./scripts/gpu-check/no-sharp.ts', `--outfile=${bundle}`, '--log-level=warning',
      "--banner:js=import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    ]);
    const source = await readFile(bundle, 'utf8');
    expect(source).not.toMatch(/from ["']sharp["']|require\(["']sharp["']\)/);
    const { stdout } = await run(process.execPath, [bundle, '--model', 'test/fixtures/models/tiny-sd', '--provider', 'cpu', '--steps', '1', '--warmup-steps', '1']);
    expect(JSON.parse(stdout)).toMatchObject({ model: 'tiny-sd', steps: 1 });
  }, 120_000);
});
