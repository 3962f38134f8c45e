import { Worker } from 'node:worker_threads';

/**
 * A worker thread that runs one of our TypeScript modules. Worker threads do not inherit tsx's module hooks on Node 20,
 * so the thread registers them before it loads its entry.
 */
export function startTypescriptWorker(entry: URL, workerData: unknown): Worker {
  const bootstrap = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(bootstrap, { eval: true, workerData });
}
