import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The engine is a library: nothing under src/engine imports the application, and what the application reads of it
 * without running a model (limits, job schema, folder descriptions, edit sizes, regions) loads neither onnxruntime nor
 * sharp, so the bot role checks requests without them. Read from the
 * source's static imports, the way a bundler would follow them.
 */
const ROOT = resolve(import.meta.dirname, '..', '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** Static `import … from '…'` and `export … from '…'` specifiers; `import type` loads nothing at run time. */
function runtimeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^(?:import|export)\s+(?!type\s)[^;]*?from\s+'([^']+)'/gms)].map((match) => match[1]);
}

function resolveLocal(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const path = resolve(dirname(from), specifier).replace(/\.js$/, '.ts');
  return existsSync(path) ? path : undefined;
}

/** Every package the module loads, directly or through our own modules. */
function packagesLoadedBy(entry: string): Set<string> {
  const packages = new Set<string>();
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const specifier of runtimeImports(file)) {
      const local = resolveLocal(file, specifier);
      if (local) visit(local);
      else if (!specifier.startsWith('.')) packages.add(specifier);
    }
  };
  visit(resolve(ROOT, entry));
  return packages;
}

describe('the engine’s boundaries', () => {
  it('has no import of src/core anywhere under src/engine', () => {
    const offenders = sourceFiles(join(ROOT, 'src', 'engine')).flatMap((file) =>
      [...readFileSync(file, 'utf8').matchAll(/from\s+'([^']+)'/g)]
        .map((match) => match[1])
        .filter((specifier) => resolve(dirname(file), specifier).startsWith(join(ROOT, 'src', 'core')))
        .map((specifier) => `${relative(ROOT, file)} → ${specifier}`),
    );
    expect(offenders).toEqual([]);
  });

  it.each(['src/engine/model-description.ts', 'src/engine/jobs.ts', 'src/engine/limits.ts', 'src/engine/edit-sizes.ts', 'src/engine/regions.ts', 'src/core/generation.ts', 'src/service/main.ts'])(
    '%s loads neither onnxruntime nor sharp',
    (entry) => {
      expect([...packagesLoadedBy(entry)].filter((name) => name === 'onnxruntime-node' || name === 'sharp')).toEqual([]);
    },
  );

  it('would notice onnxruntime behind an import (the check can fail)', () => {
    expect(packagesLoadedBy('src/engine/model-folder.ts')).toContain('onnxruntime-node');
  });
});
