import { isImagineError } from '../core/errors.js';
import { openDatabase } from './database.js';

/**
 * `npm run db:migrate`: applies prisma/migrations to DATABASE_URL (or the embedded database under DATA_DIR) the way
 * `prisma migrate deploy` does, without the Prisma CLI's downloaded engines; the deploy/ migration Job runs this.
 */
const url = process.env.DATABASE_URL || undefined;
const dataDir = url ? undefined : `${process.env.DATA_DIR || './data'}/pglite`;
openDatabase({ url, dataDir }).then(
  async (database) => {
    const applied = database.appliedMigrations;
    process.stdout.write(applied.length > 0 ? `applied ${applied.join(', ')}\n` : 'the database schema is up to date\n');
    await database.close();
  },
  (error: unknown) => {
    process.stderr.write(`${isImagineError(error) ? error.userMessage : (error as Error).message}\n`);
    process.exit(1);
  },
);
