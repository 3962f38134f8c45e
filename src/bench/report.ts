import { readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';

const BENCHMARKS_FILE = 'docs/BENCHMARKS.md';

/** The machine a figure was measured on, as a reader of docs/BENCHMARKS.md needs it. */
export function machineDescription(): string {
  const cores = cpus();
  return `${cores[0]?.model.trim() ?? 'unknown CPU'} × ${cores.length} cores, ${Math.round(totalmem() / 1024 ** 3)} GiB, Node ${process.version}`;
}

/**
 * Appends one row of figures under the benchmark's own heading in docs/BENCHMARKS.md (creating either if missing).
 * When the section's last table has other columns (a benchmark that gained figures), the row starts a new table there.
 */
export async function appendBenchmarkRow(benchmark: string, figures: Record<string, string | number>, file = BENCHMARKS_FILE): Promise<void> {
  const heading = `## bench:${benchmark}`;
  const existing = existsSync(file) ? await readFile(file, 'utf8') : '# Benchmarks\n\nRows are appended by `npm run bench:*`; each names its machine and date.\n';
  const keys = Object.keys(figures);
  const header = `| ${keys.join(' | ')} |\n|${keys.map(() => ' --- ').join('|')}|\n`;
  const row = `| ${Object.values(figures).join(' | ')} |\n`;
  const start = existing.indexOf(`${heading}\n`);
  if (start === -1) {
    await writeFile(file, `${existing.replace(/\n*$/, '\n')}\n${heading}\n\n${header}${row}`);
    return;
  }
  // Rows go at the end of their own section, so several benchmarks can share the file.
  const next = existing.indexOf('\n## ', start + heading.length);
  const section = existing.slice(start, next === -1 ? existing.length : next).replace(/\n+$/, '\n');
  const headers = section.split('\n').filter((line, k, lines) => line.startsWith('| ') && lines[k + 1]?.startsWith('| ---'));
  const sameColumns = headers.at(-1) === header.split('\n')[0];
  const added = sameColumns ? row : `\n${header}${row}`;
  const rest = next === -1 ? '' : existing.slice(next);
  await writeFile(file, `${existing.slice(0, start)}${section}${added}${rest}`);
}
