import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { dropSchema, openDatabase, parseDatabaseUrl, withSchema, type Database } from '../../src/store/database.js';

/** CI (.ci/run) starts this server; the tests that name PostgreSQL must not pass without it. */
export const TEST_POSTGRES_URL = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';

const HOW_TO_START =
  'start it with `pg_ctlcluster --skip-systemctl-redirect 15 main start` (trust auth on 127.0.0.1, a database named ' +
  '"test": see .ci/run), or point TEST_DATABASE_URL at another server';

export interface TestDatabase extends Database {
  /** The URL this database was opened with (PostgreSQL only). */
  url?: string;
}

export async function assertPostgresReachable(url = TEST_POSTGRES_URL): Promise<void> {
  const client = new pg.Client({ connectionString: parseDatabaseUrl(url).connectionString, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (error) {
    throw new Error(`PostgreSQL at ${url} is not reachable (${(error as Error).message}); ${HOW_TO_START}`, { cause: error });
  } finally {
    await client.end().catch(() => {});
  }
}

/** A migrated database in a schema of its own (t_<random>), dropped again by close(). */
export async function openTestPostgres(): Promise<TestDatabase> {
  await assertPostgresReachable();
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const url = withSchema(TEST_POSTGRES_URL, schema);
  const database = await openDatabase({ url });
  return {
    ...database,
    url,
    async close() {
      await database.close();
      await dropSchema(TEST_POSTGRES_URL, schema);
    },
  };
}

export async function openTestPGlite(): Promise<TestDatabase> {
  return openDatabase({ dataDir: 'memory://' });
}

export const TEST_BACKENDS = [
  ['PGlite', openTestPGlite],
  ['PostgreSQL', openTestPostgres],
] as const;
