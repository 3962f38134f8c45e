import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { appendBenchmarkRow } from '../../src/bench/report.js';

const START = '# Benchmarks\n\n## bench:a\n\n| x | y |\n| --- | --- |\n| 1 | 2 |\n\n## bench:b\n\n| z |\n| --- |\n| 9 |\n';

async function fileWith(text: string): Promise<string> {
  const file = join(await mkdtemp(join(tmpdir(), 'bench-report-')), 'BENCHMARKS.md');
  await writeFile(file, text);
  return file;
}

describe('benchmark rows in docs/BENCHMARKS.md', () => {
  it('go at the end of their own section, under its table', async () => {
    const file = await fileWith(START);
    await appendBenchmarkRow('a', { x: 3, y: 4 }, file);
    expect(await readFile(file, 'utf8')).toBe(START.replace('| 1 | 2 |\n', '| 1 | 2 |\n| 3 | 4 |\n'));
  });

  it('start a new table in their section when the benchmark reports other figures', async () => {
    const file = await fileWith(START);
    await appendBenchmarkRow('a', { x: 3, y: 4, w: 5 }, file);
    expect(await readFile(file, 'utf8')).toBe(START.replace('| 1 | 2 |\n', '| 1 | 2 |\n\n| x | y | w |\n| --- | --- | --- |\n| 3 | 4 | 5 |\n'));
  });

  it('start their section at the end of the file when it has none', async () => {
    const file = await fileWith(START);
    await appendBenchmarkRow('c', { v: 7 }, file);
    expect(await readFile(file, 'utf8')).toBe(`${START}\n## bench:c\n\n| v |\n| --- |\n| 7 |\n`);
  });
});
