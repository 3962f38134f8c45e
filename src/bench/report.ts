import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';

const BENCHMARKS_FILE = 'docs/BENCHMARKS.md';

/** The machine a figure was measured on, as a reader of docs/BENCHMARKS.md needs it. */
export function machineDescription(): string {
  const cores = cpus();
  return `${cores[0]?.model.trim() ?? 'unknown CPU'} × ${cores.length} cores, ${Math.round(totalmem() / 1024 ** 3)} GiB, Node ${process.version}`;
}

/** Appends one row of figures under the benchmark's own heading in docs/BENCHMARKS.md (creating either if missing). */
export async function appendBenchmarkRow(benchmark: string, figures: Record<string, string | number>): Promise<void> {
  const heading = `## bench:${benchmark}`;
  const existing = existsSync(BENCHMARKS_FILE) ? await readFile(BENCHMARKS_FILE, 'utf8') : '# Benchmarks\n\nRows are appended by `npm run bench:*`; each names its machine and date.\n';
  const row = `| ${Object.values(figures).join(' | ')} |`;
  if (!existing.includes(heading)) {
    const keys = Object.keys(figures);
    const table = `\n${heading}\n\n| ${keys.join(' | ')} |\n|${keys.map(() => ' --- ').join('|')}|\n${row}\n`;
    await writeFile(BENCHMARKS_FILE, existing + table);
    return;
  }
  // Rows go at the end of their own section, so several benchmarks can share the file.
  const start = existing.indexOf(heading);
  const next = existing.indexOf('\n## ', start + heading.length);
  if (next === -1) {
    await appendFile(BENCHMARKS_FILE, `${existing.endsWith('\n') ? '' : '\n'}${row}\n`);
    return;
  }
  const before = existing.slice(0, next).replace(/\n+$/, '\n');
  await writeFile(BENCHMARKS_FILE, `${before}${row}\n${existing.slice(next)}`);
}
