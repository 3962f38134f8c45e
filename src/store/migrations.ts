import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/**
 * Applies prisma/migrations the way `prisma migrate deploy` does, over a plain SQL session, so that neither a fresh
 * machine nor the embedded PGlite needs Prisma's native schema engine. It writes the same `_prisma_migrations` rows
 * (checksum = sha256 of migration.sql) and takes the same advisory lock, so a user may switch to `prisma migrate
 * deploy` (or back) at any time.
 */

export const MIGRATIONS_DIR = resolve(import.meta.dirname, '../../prisma/migrations');

/** Prisma's schema engine locks with this key, so our migrator and theirs never run at once. */
const PRISMA_MIGRATE_LOCK_KEY = 72707369;

export interface SqlSession {
  query(sql: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
  /** Runs a script of several statements. */
  exec(sql: string): Promise<unknown>;
}

interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

async function readMigrations(dir: string): Promise<Migration[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries.filter((entry) => entry.isDirectory()).map((entry) => entry.name).sort();
  return Promise.all(
    names.map(async (name) => {
      const sql = await readFile(join(dir, name, 'migration.sql'), 'utf8');
      return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    }),
  );
}

/**
 * Returns the names of the migrations it applied (none when the database is up to date). `schema` is created when
 * missing; the session's search_path must already lead to it.
 */
export async function applyMigrations(session: SqlSession, options: { dir?: string; schema?: string } = {}): Promise<string[]> {
  const migrations = await readMigrations(options.dir ?? MIGRATIONS_DIR);
  // Locked before anything is created: two processes creating the same table at once collide on its type name.
  await session.query('SELECT pg_advisory_lock($1)', [PRISMA_MIGRATE_LOCK_KEY]);
  try {
    if (options.schema) await session.exec(`CREATE SCHEMA IF NOT EXISTS "${options.schema.replaceAll('"', '""')}"`);
    await session.exec(`CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
      "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
      "checksum"              VARCHAR(64) NOT NULL,
      "finished_at"           TIMESTAMPTZ,
      "migration_name"        VARCHAR(255) NOT NULL,
      "logs"                  TEXT,
      "rolled_back_at"        TIMESTAMPTZ,
      "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
      "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
    )`);
    const rows = (
      await session.query('SELECT migration_name, checksum, finished_at FROM "_prisma_migrations" WHERE rolled_back_at IS NULL')
    ).rows as { migration_name: string; checksum: string; finished_at: Date | null }[];
    const failed = rows.find((row) => row.finished_at === null);
    if (failed) {
      throw new Error(
        `migration ${failed.migration_name} failed earlier and was not rolled back; fix the database, then run ` +
          `\`npx prisma migrate resolve --rolled-back ${failed.migration_name}\``,
      );
    }
    const applied = new Map(rows.map((row) => [row.migration_name, row.checksum]));
    const done: string[] = [];
    for (const migration of migrations) {
      const checksum = applied.get(migration.name);
      if (checksum !== undefined) {
        if (checksum !== migration.checksum) {
          throw new Error(`migration ${migration.name} was changed after it was applied; restore the file from git`);
        }
        continue;
      }
      // Unlike the engine, one transaction per migration: a failure leaves neither half a schema nor a failed row.
      await session.exec('BEGIN');
      try {
        const id = randomUUID();
        await session.query(
          'INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at) VALUES ($1, $2, $3, now())',
          [id, migration.checksum, migration.name],
        );
        await session.exec(migration.sql);
        await session.query('UPDATE "_prisma_migrations" SET finished_at = now(), applied_steps_count = 1 WHERE id = $1', [id]);
        await session.exec('COMMIT');
      } catch (error) {
        await session.exec('ROLLBACK');
        throw new Error(`migration ${migration.name} failed: ${(error as Error).message}`, { cause: error });
      }
      done.push(migration.name);
    }
    return done;
  } finally {
    await session.query('SELECT pg_advisory_unlock($1)', [PRISMA_MIGRATE_LOCK_KEY]);
  }
}
