import { defineConfig } from 'prisma/config';

// The CLI reads the url from here (Prisma 7); the app itself connects through src/store/database.ts.
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres' },
});
