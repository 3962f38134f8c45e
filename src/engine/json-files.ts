import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { modelFailure } from './errors.js';

/** Model folders are mostly JSON beside ONNX files; a broken one is a model_failure that names the file. */
export async function readJson(path: string): Promise<any> {
  try {
    return parsePythonJson(await readFile(path, 'utf8'));
  } catch (error) {
    throw modelFailure(`${path} could not be read as JSON: ${(error as Error).message}`, { file: path }, error);
  }
}

export async function readJsonIfPresent(path: string): Promise<any | undefined> {
  return existsSync(path) ? readJson(path) : undefined;
}

const NON_FINITE: Record<string, number> = { NaN: Number.NaN, Infinity: Number.POSITIVE_INFINITY, '-Infinity': Number.NEGATIVE_INFINITY };
const NON_FINITE_MARK = '\u0000python:';

/**
 * JSON as Python's `json.dump` writes it, which is what diffusers and Optimum save: `NaN`, `Infinity` and `-Infinity`
 * are allowed as bare values (diffusers' DPM++ configs hold `"lambda_min_clipped": -Infinity`). They are read as the
 * numbers they name; the same words inside strings are left alone.
 */
export function parsePythonJson(text: string): unknown {
  let rewritten = '';
  let copiedUpTo = 0;
  let inString = false;
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index];
    if (inString) {
      if (char === '\\') index += 1;
      else if (char === '"') inString = false;
      continue;
    }
    if (char === '"') {
      inString = true;
      continue;
    }
    const word = /^(-?Infinity|NaN)/.exec(text.slice(index, index + 9))?.[0];
    if (word) {
      rewritten += `${text.slice(copiedUpTo, index)}"${JSON.stringify(NON_FINITE_MARK + word).slice(1, -1)}"`;
      index += word.length - 1;
      copiedUpTo = index + 1;
    }
  }
  if (copiedUpTo === 0) return JSON.parse(text);
  return JSON.parse(rewritten + text.slice(copiedUpTo), (_key, value: unknown) =>
    typeof value === 'string' && value.startsWith(NON_FINITE_MARK) ? NON_FINITE[value.slice(NON_FINITE_MARK.length)] : value,
  );
}
