import { createHash } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deployWithPrismaEngine, diffMigrationsToSchema } from '../../prisma/schema-engine.js';
import { PrismaPg } from '@prisma/adapter-pg';
import { GenerationRequest } from '../../src/core/generation.js';
import { dropSchema, openDatabase, parseDatabaseUrl, PrismaClient, withSchema } from '../../src/store/database.js';
import { createGenerationHistory } from '../../src/store/generations.js';
import { PrismaQuotaLedger } from '../../src/store/quota-ledger.js';
import { imagineRequest } from '../support/generation-requests.js';
import { applyMigrations, MIGRATIONS_DIR } from '../../src/store/migrations.js';
import { freePort } from '../support/redis.js';
import { openTestPostgres, type TestDatabase } from '../support/postgres.js';

let tempDir: string;
beforeAll(async () => {
  tempDir = await mkdtemp(join(tmpdir(), 'imagine-database-'));
});
afterAll(async () => {
  await rm(tempDir, { recursive: true, force: true });
});

// Each test opens one or two fresh PGlite databases (initdb in a throwaway thread, then the migrations): seconds on an
// idle machine, but close to a minute beside the Chromium suites on two busy cores.
describe('the embedded PGlite database', { timeout: 180_000 }, () => {
  it('is created, migrated and kept in its data directory between runs', async () => {
    const dataDir = join(tempDir, 'nested', 'pglite');
    const first = await openDatabase({ dataDir });
    expect(first.backend).toBe('pglite');
    expect(first.appliedMigrations.length).toBeGreaterThan(0);
    await first.prisma.workspace.create({ data: { platform: 'web', platformWorkspaceId: 'local' } });
    await first.close();

    const second = await openDatabase({ dataDir });
    try {
      expect(second.appliedMigrations).toEqual([]);
      expect(await second.prisma.workspace.count()).toBe(1);
    } finally {
      await second.close();
    }
  });

  it("is migrated by our migrator into a state Prisma's own engine finds up to date", async () => {
    const db = new PGlite();
    try {
      const session = { query: (sql: string, params?: unknown[]) => db.query(sql, params), exec: (sql: string) => db.exec(sql) };
      expect((await applyMigrations(session)).length).toBeGreaterThan(0);
      expect(await applyMigrations(session)).toEqual([]);
      expect(await deployWithPrismaEngine(db)).toEqual([]);
    } finally {
      await db.close();
    }
  });

  it('has a migration for every change in schema.prisma', async () => {
    expect(await diffMigrationsToSchema()).toBe('');
  });

  it('refuses to start when an applied migration was edited afterwards', async () => {
    const migrationsDir = join(tempDir, 'edited-migrations');
    await cp(MIGRATIONS_DIR, migrationsDir, { recursive: true });
    const dataDir = join(tempDir, 'edited');
    await (await openDatabase({ dataDir, migrationsDir })).close();
    const [first] = (await readdir(migrationsDir)).filter((name) => name !== 'migration_lock.toml');
    const script = join(migrationsDir, first, 'migration.sql');
    await writeFile(script, `${await readFile(script, 'utf8')}\n-- edited\n`);
    await expect(openDatabase({ dataDir, migrationsDir })).rejects.toThrow(/was changed after it was applied/);
  });
});

describe('a PostgreSQL database', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await openTestPostgres();
  });
  afterAll(async () => {
    await database?.close();
  });

  it('applies the migrations once, recording them as prisma migrate deploy does', async () => {
    expect(database.backend).toBe('postgresql');
    const [again, concurrently] = await Promise.all([openDatabase({ url: database.url }), openDatabase({ url: database.url })]);
    try {
      expect(again.appliedMigrations).toEqual([]);
      expect(concurrently.appliedMigrations).toEqual([]);
      const rows = await again.prisma.$queryRaw<{ migration_name: string; checksum: string; finished_at: Date | null; applied_steps_count: number }[]>`
        SELECT migration_name, checksum, finished_at, applied_steps_count FROM "_prisma_migrations" ORDER BY migration_name`;
      const expected = await Promise.all(
        database.appliedMigrations.map(async (name) => {
          const sql = await readFile(join(MIGRATIONS_DIR, name, 'migration.sql'));
          return { migration_name: name, checksum: createHash('sha256').update(sql).digest('hex'), finished_at: expect.any(Date), applied_steps_count: 1 };
        }),
      );
      expect(expected.length).toBeGreaterThan(0);
      expect(rows).toEqual(expected);
    } finally {
      await again.close();
      await concurrently.close();
    }
  });

  it('migrates a new schema once when two processes start at the same time', async () => {
    const twin = `${parseDatabaseUrl(database.url!).schema}_twin`;
    const url = withSchema(database.url!, twin);
    const both = await Promise.all([openDatabase({ url }), openDatabase({ url })]);
    try {
      expect(both.map((opened) => opened.appliedMigrations.length).sort()).toEqual([0, database.appliedMigrations.length]);
    } finally {
      await Promise.all(both.map((opened) => opened.close()));
      await dropSchema(url, twin);
    }
  });

  it('says the database is unavailable when the server cannot be reached', async () => {
    const url = `postgresql://postgres@127.0.0.1:${await freePort()}/test`;
    await expect(openDatabase({ url })).rejects.toMatchObject({
      kind: 'transient',
      userMessage: 'the database is unavailable, try again shortly',
    });
  });

  it('turns a lost server into the transient error in the ledger and the history too', async () => {
    const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: `postgresql://postgres@127.0.0.1:${await freePort()}/test` }) });
    const request = GenerationRequest.parse(imagineRequest());
    const ledger = new PrismaQuotaLedger(prisma, {
      defaultPolicy: { unitsPerPeriod: 5, period: 'day', maxPixels: 1 << 20, maxSteps: 50, maxBatch: 4, allowedModels: [], fastAllowed: true, relaxAllowed: true },
    });
    try {
      await expect(ledger.reserve(request, 1)).rejects.toMatchObject({ kind: 'transient' });
      await expect(ledger.refund(request.generationId, 'failed')).rejects.toMatchObject({ kind: 'transient' });
      await expect(createGenerationHistory(prisma).recordQueued(request)).rejects.toMatchObject({ kind: 'transient' });
    } finally {
      await prisma.$disconnect();
    }
  });
});
