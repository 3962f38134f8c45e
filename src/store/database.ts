import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import { databaseUnavailable, isDatabaseUnreachable } from './database-errors.js';
import { PrismaClient } from './generated/prisma/client.js';
import { applyMigrations } from './migrations.js';

export { PrismaClient };

export const DEFAULT_PGLITE_DIR = './data/pglite';

export interface DatabaseOptions {
  /** A postgres:// URL (Prisma's `?schema=` is honoured). Without one, an embedded PGlite database is used. */
  url?: string;
  /** Where the embedded database lives; 'memory://' keeps it in memory. Ignored when `url` is set. */
  dataDir?: string;
  migrationsDir?: string;
  /** Connections in the pool (PostgreSQL only). */
  poolSize?: number;
}

export interface Database {
  prisma: PrismaClient;
  backend: 'postgresql' | 'pglite';
  /** Names of the migrations applied while opening (empty when the schema was up to date). */
  appliedMigrations: string[];
  close(): Promise<void>;
}

/** Opens the database the service was configured with, migrated to the current schema. */
export async function openDatabase(options: DatabaseOptions = {}): Promise<Database> {
  return options.url ? openPostgres(options.url, options) : openPGlite(options.dataDir ?? DEFAULT_PGLITE_DIR, options);
}

/** Splits Prisma's `?schema=` off the URL: pg does not know it, and it must become the search_path. */
export function parseDatabaseUrl(url: string): { connectionString: string; schema?: string } {
  const parsed = new URL(url);
  const schema = parsed.searchParams.get('schema') ?? undefined;
  parsed.searchParams.delete('schema');
  return { connectionString: parsed.toString(), schema };
}

/** The same database with Prisma's `?schema=` set: everything opened through it lives in that schema. */
export function withSchema(url: string, schema: string): string {
  const parsed = new URL(url);
  parsed.searchParams.set('schema', schema);
  return parsed.toString();
}

const quoteIdentifier = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** Drops a PostgreSQL schema and everything in it: what a benchmark or a test made for itself (it names its own schema). */
export async function dropSchema(databaseUrl: string, schema: string): Promise<void> {
  const sql = new pg.Client({ connectionString: parseDatabaseUrl(databaseUrl).connectionString });
  await sql.connect();
  try {
    await sql.query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(schema)} CASCADE`);
  } finally {
    await sql.end();
  }
}

async function openPostgres(url: string, options: DatabaseOptions): Promise<Database> {
  const { connectionString, schema } = parseDatabaseUrl(url);
  // Raw statements (the quota ledger's) name tables without a schema; the search_path sends them to the right one.
  const searchPath = schema ? { options: `-c search_path=${quoteIdentifier(schema)}` } : {};
  const migrator = new pg.Client({ connectionString, ...searchPath });
  let appliedMigrations: string[];
  try {
    await migrator.connect();
    appliedMigrations = await applyMigrations(
      { query: (sql, params) => migrator.query(sql, params), exec: (sql) => migrator.query(sql) },
      { dir: options.migrationsDir, schema },
    );
  } catch (error) {
    if (isDatabaseUnreachable(error)) throw databaseUnavailable(error);
    throw error;
  } finally {
    await migrator.end().catch(() => {});
  }
  const pool = new pg.Pool({ connectionString, max: options.poolSize ?? 10, ...searchPath });
  // An idle connection dropped by the server must not crash the process; the next query reports it instead.
  pool.on('error', () => {});
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool, schema ? { schema } : undefined) });
  return {
    prisma,
    backend: 'postgresql',
    appliedMigrations,
    async close() {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

/**
 * initdb's 128MB of shared buffers live in PGlite's WebAssembly memory, touched from the start: idle RSS. The embedded
 * database holds one machine's history, so a smaller cache costs nothing noticeable and saves about 120 MB.
 */
const PGLITE_SHARED_BUFFERS = '16MB';

/**
 * Creating a PGlite database runs initdb in two extra WebAssembly instances (a second postgres and initdb itself) whose
 * memories, about 450 MB, nothing collects while the service idles on a small heap. Run in a thread of their own, they
 * go when the thread ends, and the service then opens the database it made like any existing one.
 */
async function createPGliteInThrowawayThread(dataDir: string): Promise<void> {
  const source = `const { workerData } = require('node:worker_threads');
import(workerData.pgliteUrl).then(async ({ PGlite }) => { const db = await PGlite.create(workerData.dataDir); await db.close(); });`;
  const thread = new Worker(source, { eval: true, workerData: { dataDir, pgliteUrl: import.meta.resolve('@electric-sql/pglite') } });
  await new Promise<void>((done, fail) => {
    thread.once('error', fail);
    thread.once('exit', (code) => (code === 0 ? done() : fail(new Error(`creating the embedded database in ${dataDir} stopped with exit code ${code}`))));
  });
}

async function openPGlite(dataDir: string, options: DatabaseOptions): Promise<Database> {
  const inMemory = dataDir.startsWith('memory://');
  if (!inMemory) await mkdir(dirname(resolve(dataDir)), { recursive: true });
  if (!inMemory && !existsSync(join(resolve(dataDir), 'PG_VERSION'))) await createPGliteInThrowawayThread(resolve(dataDir));
  const db = await PGlite.create(inMemory ? dataDir : resolve(dataDir), { startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${PGLITE_SHARED_BUFFERS}`] });
  try {
    const appliedMigrations = await applyMigrations(
      { query: (sql, params) => db.query(sql, params), exec: (sql) => db.exec(sql) },
      { dir: options.migrationsDir },
    );
    const prisma = new PrismaClient({ adapter: new PrismaPGlite(db) });
    return {
      prisma,
      backend: 'pglite',
      appliedMigrations,
      async close() {
        await prisma.$disconnect();
        await db.close();
      },
    };
  } catch (error) {
    await db.close();
    throw error;
  }
}
