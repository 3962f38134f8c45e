import { randomBytes, randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Queue, Worker, type ConnectionOptions } from 'bullmq';
import { Redis } from 'ioredis';
import type { GenerationHistory, GenerationIntake, ImageEngine, ImageStore, QuotaLedger } from '../core/ports.js';
import { createGenerationQueue } from '../queue/producer.js';
import { redisOptions } from '../service/redis.js';
import { startWorker } from '../service/worker.js';
import { dropSchema, withSchema } from '../store/database.js';
import { appendBenchmarkRow, machineDescription } from './report.js';
import { openUnlimitedStores } from './stores.js';

/**
 * `npm run bench:queue -- [--jobs N] [--latency-jobs N] [--redis URL] [--database URL] [--json]`
 * What our queue costs around the engine, with an engine that does nothing: enqueue→pickup latency (one job at a time,
 * worker idle), jobsPerSecond through enqueue + worker + events + bookkeeping (jobs queued up front, concurrency 1),
 * overheadMsPerJob = 1000 / jobsPerSecond, and the same count of no-op jobs through bare BullMQ (addBulk + a Worker
 * that returns at once) for `vsBareBullmq` = ours ÷ bare. Two rows: the headline with the quota ledger, generation
 * history and intake on PostgreSQL (a schema of its own), as the service runs them; then the same with ports that keep
 * nothing (`ports: no-op`), which is the queue's own share.
 */
const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '500' },
    'latency-jobs': { type: 'string', default: '100' },
    redis: { type: 'string', default: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' },
    database: { type: 'string', default: process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/test' },
    json: { type: 'boolean', default: false },
  },
});
const jobCount = Number(values.jobs);
const latencyJobCount = Number(values['latency-jobs']);
const redisUrl = values.redis;
const prefix = `bench-${randomUUID().slice(0, 8)}`;

interface Ports {
  ledger: QuotaLedger;
  history: GenerationHistory;
  intake?: GenerationIntake;
}

const noOpPorts: Ports = {
  ledger: { reserve: async (request, units) => ({ generationId: request.generationId, units }), commit: async () => {}, refund: async () => {} },
  history: { recordQueued: async () => {}, markRunning: async () => {}, markSucceeded: async () => 'succeeded', markFailed: async (_id, status) => status },
};
const images: ImageStore = { put: async () => {}, get: async () => null, delete: async () => {}, deletePrefix: async () => {} };

let onPickup: (atMs: number) => void = () => {};
let onDone: () => void = () => {};
const PNG_1X1 = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010800000000376ef9240000000a49444154789c6360000000020001e221bc330000000049454e44ae426082', 'hex');
const engine: ImageEngine = {
  modelName: 'bench-no-op',
  async generate(request) {
    onPickup(performance.now());
    return { images: [PNG_1X1], seeds: [request.params.seed], timingsMs: {} };
  },
};

const requestFor = (index: number) => ({
  generationId: `bench-${index}-${randomUUID().slice(0, 8)}`,
  kind: 'imagine' as const,
  params: { prompt: 'bench', width: 64, height: 64, steps: 1, guidance: 7, sampler: 'euler' as const, seed: index, batch: 1, model: engine.modelName },
  requester: { platform: 'cli' as const, workspaceId: 'bench', userId: 'bench' },
  replyTarget: 'bench',
});

/** Pickup latency and throughput of our queue over the given ports; a job is done once its charge is committed. */
async function measure(ports: Ports) {
  let completed = 0;
  const ledger: QuotaLedger = {
    ...ports.ledger,
    commit: async (generationId) => {
      await ports.ledger.commit(generationId);
      completed += 1;
      onDone();
    },
  };
  const { history, intake } = ports;
  const queue = createGenerationQueue({ redisUrl, prefix, ledger, history, intake, caps: { perUser: jobCount + 1, perWorkspace: jobCount + 1 } });
  const worker = await startWorker({ redisUrl, prefix, engine, ledger, history, images });

  const latenciesMs: number[] = [];
  for (let index = 0; index < latencyJobCount; index += 1) {
    const picked = new Promise<number>((resolve) => (onPickup = resolve));
    const finished = new Promise<void>((resolve) => (onDone = resolve));
    const startMs = performance.now();
    await queue.enqueue(requestFor(index), { units: 1 });
    latenciesMs.push((await picked) - startMs);
    await finished;
  }
  onPickup = () => {};

  await worker.stop();
  completed = 0;
  const allDone = new Promise<void>((resolve) => (onDone = () => completed === jobCount && resolve()));
  for (let index = 0; index < jobCount; index += 1) await queue.enqueue(requestFor(index), { units: 1 });
  const throughputStartMs = performance.now();
  const throughputWorker = await startWorker({ redisUrl, prefix, engine, ledger, history, images });
  await allDone;
  const jobsPerSecond = (jobCount * 1000) / (performance.now() - throughputStartMs);
  await throughputWorker.stop();
  await queue.close();

  latenciesMs.sort((a, b) => a - b);
  const percentile = (fraction: number) => latenciesMs[Math.min(latenciesMs.length - 1, Math.floor(fraction * latenciesMs.length))]!;
  return { pickupP50Ms: round(percentile(0.5)), pickupP99Ms: round(percentile(0.99)), jobsPerSecond };
}

const schema = `bench_queue_${randomBytes(6).toString('hex')}`;
const { database, ...postgresPorts } = await openUnlimitedStores(withSchema(values.database, schema));
let withDatabase: Awaited<ReturnType<typeof measure>>;
try {
  withDatabase = await measure(postgresPorts);
} finally {
  await database.close();
  await dropSchema(values.database, schema);
}
const withNoOpPorts = await measure(noOpPorts);

const connection = redisOptions(redisUrl, 'worker') as ConnectionOptions;
const bareQueue = new Queue('bare', { connection, prefix });
await bareQueue.addBulk(Array.from({ length: jobCount }, (_, index) => ({ name: 'no-op', data: { index }, opts: { removeOnComplete: true } })));
let bareCompleted = 0;
const bareStartMs = performance.now();
const bareWorker = new Worker('bare', async () => {}, { connection, prefix });
await new Promise<void>((resolve) => {
  bareWorker.on('completed', () => {
    bareCompleted += 1;
    if (bareCompleted === jobCount) resolve();
  });
});
const bareJobsPerSecond = (jobCount * 1000) / (performance.now() - bareStartMs);
await bareWorker.close();
await bareQueue.close();

const cleanup = new Redis(redisUrl);
let cursor = '0';
do {
  const [next, keys] = await cleanup.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
  cursor = next;
  if (keys.length > 0) await cleanup.del(...keys);
} while (cursor !== '0');
cleanup.disconnect();

const rows = [
  { ports: 'postgres', ...withDatabase },
  { ports: 'no-op', ...withNoOpPorts },
].map(({ ports, pickupP50Ms, pickupP99Ms, jobsPerSecond }) => ({
  jobs: jobCount,
  ports,
  pickupP50Ms,
  pickupP99Ms,
  jobsPerSecond: round(jobsPerSecond),
  overheadMsPerJob: round(1000 / jobsPerSecond),
  bareBullmqJobsPerSecond: round(bareJobsPerSecond),
  vsBareBullmq: round(jobsPerSecond / bareJobsPerSecond),
  machine: machineDescription(),
  date: new Date().toISOString().slice(0, 10),
}));
for (const row of rows) {
  await appendBenchmarkRow('queue', row);
  process.stdout.write(values.json ? `${JSON.stringify(row)}\n` : `${JSON.stringify(row, null, 2)}\n`);
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
