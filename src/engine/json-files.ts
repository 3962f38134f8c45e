import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { modelFailure } from './errors.js';

/** Model folders are mostly JSON beside ONNX files; a broken one is a model_failure that names the file. */
export async function readJson(path: string): Promise<any> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw modelFailure(`${path} could not be read as JSON: ${(error as Error).message}`, { file: path }, error);
  }
}

export async function readJsonIfPresent(path: string): Promise<any | undefined> {
  return existsSync(path) ? readJson(path) : undefined;
}
