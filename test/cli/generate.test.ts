import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTextChunks } from '../../src/engine/png-text.js';

const run = promisify(execFile);
const MODEL = 'test/fixtures/models/tiny-sd';
let dir: string;

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return cliCommand('generate', ...args);
}

async function cliCommand(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args]);
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

  it('answers --help on every command with each option, its description and its default', async () => {
    const overview = await cliCommand('--help');
    expect(overview.code).toBe(0);
    for (const name of ['generate', 'quantize', 'register', 'slack-manifest']) expect(overview.stdout).toMatch(new RegExp(`^  ${name} +\\S`, 'm'));
    const generate = await cli('--help');
    expect(generate.code).toBe(0);
    expect(generate.stdout).toMatch(/^  --seed N +Seed, 0–4294967295, for a repeatable image \(default: random\)$/m);
    expect(generate.stdout).toMatch(/^  --model DIR +Model folder .*\(default: models\/default\)$/m);
    for (const name of ['steps', 'guidance', 'sampler', 'size', 'batch', 'out', 'provider', 'json']) expect(generate.stdout).toContain(`--${name}`);
    expect((await cliCommand('register', '--help')).stdout).toMatch(/--guild ID +Register in this server only .*\(default: globally/);
    expect((await cliCommand('quantize', '--help')).stdout).toMatch(/--calibration-images N .*\(default: \d+\)/);
    expect((await cliCommand('slack-manifest', '--help')).stdout).toMatch(/--url URL .*\(default: Socket Mode/);
  });

  it('reads a negative number as the value it is, and says what the option takes', async () => {
    const result = await cli('a fox', '--model', MODEL, '--seed', '-1');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('The seed must be a whole number from 0 to 4294967295; got -1.');
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

  describe('edits', () => {
    let picture: string;
    let wide: string;
    let notAnImage: string;
    beforeAll(async () => {
      picture = join(dir, 'picture.png');
      wide = join(dir, 'wide.png');
      notAnImage = join(dir, 'not-an-image.png');
      await Promise.all([
        cli('a red fox in the snow', '--model', MODEL, '--seed', '5', '--steps', '2', '--out', picture),
        cli('a red fox', '--model', MODEL, '--seed', '1', '--steps', '1', '--size', '128x64', '--out', wide),
        writeFile(notAnImage, 'hello'),
      ]);
    });

    it('varies a region of a picture with its own prompt and writes the mask beside the result', async () => {
      const out = join(dir, 'region.png');
      const result = await cli('--init', picture, '--region', 'center', '--mask-blur', '2', '--model', MODEL, '--seed', '6', '--out', out, '--json');
      expect(result.code).toBe(0);
      const report = JSON.parse(result.stdout);
      expect(report).toMatchObject({
        files: [{ path: out, seed: 6 }],
        edit: { kind: 'vary-region', description: 'vary region center', mask: join(dir, 'region-mask.png'), maskBlurPx: 2, parents: [{ path: picture, width: 64, height: 64 }] },
      });
      expect(readTextChunks(await readFile(out)).parameters).toMatch(/^a red fox in the snow\n.*Denoising strength: 1, Mask blur: 2, Inpaint area: Whole picture, Edit: vary region center/);
      expect((await readFile(join(dir, 'region-mask.png'))).subarray(1, 4).toString()).toBe('PNG');
    });

    it('repaints what a mask file marks, with a new prompt', async () => {
      const out = join(dir, 'masked.png');
      const result = await cli('a blue bird', '--init', picture, '--mask', join(dir, 'region-mask.png'), '--model', MODEL, '--seed', '6', '--out', out, '--json');
      expect(JSON.parse(result.stdout).edit).toMatchObject({ description: 'vary region mask' });
      expect(readTextChunks(await readFile(out)).parameters).toMatch(/^a blue bird\n/);
    });

    it('zooms out, pans and blends', async () => {
      const zoomed = join(dir, 'zoomed.png');
      const panned = join(dir, 'panned.png');
      const blended = join(dir, 'blended.png');
      const zoom = await cli('--zoom-out', '1.5', '--from', picture, '--model', MODEL, '--seed', '1', '--out', zoomed, '--json');
      const pan = await cli('--pan', 'down', '--from', picture, '--model', MODEL, '--seed', '1', '--out', panned, '--json');
      const blend = await cli('--blend', `${picture},${zoomed}`, '--model', MODEL, '--seed', '1', '--out', blended, '--json');
      expect(JSON.parse(zoom.stdout).edit).toMatchObject({ kind: 'zoom-out', description: 'zoom out 1.5' });
      expect(JSON.parse(pan.stdout).edit).toMatchObject({ kind: 'pan', description: 'pan down' });
      expect(readTextChunks(await readFile(panned)).parameters).toMatch(/Size: 64x128/);
      expect(JSON.parse(blend.stdout).edit).toMatchObject({ kind: 'blend', parents: [{ path: picture }, { path: zoomed }] });
    });

    it.each([
      ['a zoom outside 1.1–2', ['--zoom-out', '3', '--from', 'PICTURE'], /from 1.1 to 2/],
      ['a pan past the model’s largest size', ['--pan', 'left', '--from', 'WIDE'], /already 128 px wide/],
      ['a region outside the picture', ['--init', 'PICTURE', '--region', '60,60,8,8'], /reaches outside/],
      ['a mask that is not an image', ['--init', 'PICTURE', '--mask', 'NOT_AN_IMAGE'], /mask is not an image/],
      ['both a mask and a region', ['--init', 'PICTURE', '--mask', 'PICTURE', '--region', 'left'], /either --mask FILE or --region/],
      ['a region without --init', ['--region', 'left'], /need --init FILE/],
      ['two edits at once', ['--zoom-out', '2', '--pan', 'left', '--from', 'PICTURE'], /--zoom-out and --pan ask for different things/],
    ])('exits 2 for %s, saying what to change', async (_label, args, message) => {
      const paths: Record<string, string> = { PICTURE: picture, WIDE: wide, NOT_AN_IMAGE: notAnImage };
      const result = await cli(...args.map((arg) => paths[arg] ?? arg), '--model', MODEL, '--json');
      expect(result.code).toBe(2);
      expect(JSON.parse(result.stdout)).toEqual({ error: { kind: 'invalid_input', message: expect.stringMatching(message) } });
    });
  });
});
