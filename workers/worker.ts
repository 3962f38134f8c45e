import { runMain } from '../src/service/main.js';

/**
 * `npm run worker`: the worker role alone — loads MODEL_DIR once, takes that model's jobs, serves /healthz, /readyz and
 * /metrics on HTTP_PORT, and on SIGTERM finishes the running job within WORKER_SHUTDOWN_DEADLINE_MS (else hands it back)
 * and exits 0. It needs DATABASE_URL and REDIS_URL; see docs/DEPLOY.md.
 */
runMain('worker');
