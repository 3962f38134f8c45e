import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { bindMigrationAwareSqlAdapterFactory } from '@prisma/driver-adapter-utils';
import type { DiffResult, MigrationList, SchemaEngine } from '@prisma/schema-engine-wasm';
import { PrismaPGlite } from 'pglite-prisma-adapter';

/**
 * Prisma's own schema engine, compiled to Wasm, driven over an in-memory PGlite: the 7.10 CLI downloads a native engine
 * for `migrate diff`, which this machine (and CI) cannot do. The versions are pinned together in package.json
 * (@prisma/schema-engine-wasm must equal @prisma/engines-version).
 */

export const SCHEMA_PATH = resolve(import.meta.dirname, 'schema.prisma');
export const MIGRATIONS_DIR = resolve(import.meta.dirname, 'migrations');

const NO_FILTERS = { externalTables: [], externalEnums: [] };

type WasmExports = Record<string, unknown>;

// The project's lib setting (ES2023, no DOM) leaves out the WebAssembly JS API types; Node has the API itself.
const { WebAssembly: wasmApi } = globalThis as unknown as {
  WebAssembly: { instantiate(bytes: Uint8Array, imports: object): Promise<{ instance: { exports: WasmExports } }> };
};

interface WasmGlue {
  __wbg_set_wasm(exports: WasmExports): void;
  SchemaEngine: { new: (options: unknown, log: (line: string) => void, adapter: object) => Promise<SchemaEngine> };
}

let loaded: Promise<WasmGlue> | undefined;

/** Instantiated once per process: the glue module holds a single Wasm instance that every engine shares. */
function loadSchemaEngineModule(): Promise<WasmGlue> {
  loaded ??= instantiateSchemaEngine();
  return loaded;
}

async function instantiateSchemaEngine(): Promise<WasmGlue> {
  // Node 20 cannot import a .wasm file as an ES module, so the glue module serves as the instance's import object.
  const require = createRequire(import.meta.url);
  const dir = dirname(require.resolve('@prisma/schema-engine-wasm/schema_engine_bg'));
  const glue = (await import(join(dir, 'schema_engine_bg.js'))) as WasmGlue;
  const { instance } = await wasmApi.instantiate(await readFile(join(dir, 'schema_engine_bg.wasm')), {
    './schema_engine_bg.js': glue,
  });
  glue.__wbg_set_wasm(instance.exports);
  (instance.exports.__wbindgen_start as () => void)();
  return glue;
}

export async function readMigrationList(baseDir = MIGRATIONS_DIR): Promise<MigrationList> {
  const names = (await readdir(baseDir, { withFileTypes: true }).catch(() => []))
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  const lockPath = join(baseDir, 'migration_lock.toml');
  return {
    baseDir,
    lockfile: { path: lockPath, content: await readFile(lockPath, 'utf8').catch(() => null) },
    shadowDbInitScript: '',
    migrationDirectories: await Promise.all(
      names.map(async (name) => ({
        path: name,
        migrationFile: {
          path: 'migration.sql',
          content: await readFile(join(baseDir, name, 'migration.sql'), 'utf8').then(
            (sql) => ({ tag: 'ok' as const, value: sql }),
            (error: Error) => ({ tag: 'error' as const, value: error.message }),
          ),
        },
      })),
    ),
  };
}

async function openSchemaEngine(db: PGlite, schema: string): Promise<SchemaEngine> {
  const glue = await loadSchemaEngineModule();
  return glue.SchemaEngine.new({ datamodels: [[SCHEMA_PATH, schema]] }, () => {}, bindMigrationAwareSqlAdapterFactory(new PrismaPGlite(db)));
}

/** The SQL that takes a database from the committed migrations to `schema.prisma`; empty when they agree. */
export async function diffMigrationsToSchema(): Promise<string> {
  const schema = await readFile(SCHEMA_PATH, 'utf8');
  // The engine replays the migrations into this shadow database to learn where they lead.
  const shadow = new PGlite();
  try {
    const engine = await openSchemaEngine(shadow, schema);
    const migrations = await readMigrationList();
    const result: DiffResult = await engine.diff({
      from: migrations.migrationDirectories.length === 0 ? { tag: 'empty' } : { tag: 'migrations', ...migrations },
      to: { tag: 'schemaDatamodel', files: [{ path: SCHEMA_PATH, content: schema }] },
      script: true,
      exitCode: null,
      filters: NO_FILTERS,
    });
    const sql = result.stdout ?? '';
    return /^\s*(-- This is an empty migration\.)?\s*$/.test(sql) ? '' : sql;
  } finally {
    await shadow.close();
  }
}

/** What `prisma migrate deploy` would apply to this database: Prisma's own engine, so its history check is the real one. */
export async function deployWithPrismaEngine(db: PGlite, baseDir = MIGRATIONS_DIR): Promise<string[]> {
  const engine = await openSchemaEngine(db, await readFile(SCHEMA_PATH, 'utf8'));
  const output = await engine.applyMigrations({ migrationsList: await readMigrationList(baseDir), filters: NO_FILTERS });
  return output.appliedMigrationNames;
}
