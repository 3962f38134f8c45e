import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImageEngine } from '../../src/engine/image-engine.js';
import { loadModelFolder, type ModelFolder } from '../../src/engine/model-folder.js';
import { createGenerationQueue, type GenerationQueue } from '../../src/queue/producer.js';
import { startWorker, type RunningWorker } from '../../src/service/worker.js';
import { createDirImageStore } from '../support/dir-image-store.js';
import { imagineRequest } from '../support/generation-requests.js';
import { eventsUntil, terminalEventsOf } from '../support/queue-events.js';
import { createRedisPorts, type RecordingPorts } from '../support/redis-ports.js';
import { deletePrefix, sharedRedisUrl, testPrefix } from '../support/redis.js';

let redisUrl: string;
let prefix: string;
let ports: RecordingPorts;
let queue: GenerationQueue;
let imageDir: string;
let model: ModelFolder;
let worker: RunningWorker;

beforeAll(async () => {
  redisUrl = await sharedRedisUrl();
  prefix = testPrefix('real-engine');
  ports = createRedisPorts(redisUrl, prefix);
  queue = createGenerationQueue({ redisUrl, prefix, ledger: ports.ledger, history: ports.history });
  imageDir = await mkdtemp(join(tmpdir(), 'imagine-images-'));
  model = await loadModelFolder('test/fixtures/models/tiny-sd', { intraOpNumThreads: 1 });
  worker = await startWorker({ redisUrl, prefix, engine: createImageEngine(model), ...ports, images: createDirImageStore(imageDir), previewIntervalMs: 0 });
});

afterAll(async () => {
  await worker?.stop();
  await model?.release();
  await queue?.close();
  ports?.close();
  await deletePrefix(redisUrl, prefix);
  await rm(imageDir, { recursive: true, force: true });
});

describe('the queue with the real engine and the tiny-sd fixture model', () => {
  it('turns an imagine job into stored PNGs, then upscales one of them from the image store', async () => {
    const base = imagineRequest();
    const imagine = imagineRequest({ params: { ...base.params, model: model.name, width: 64, height: 64, steps: 3, batch: 2 } });
    await queue.enqueue(imagine, { units: 2 });
    const events = await eventsUntil({ redisUrl, prefix, model: model.name }, (seen) => terminalEventsOf(seen, imagine.generationId).length > 0);
    const [completed] = terminalEventsOf(events, imagine.generationId);
    expect(completed).toMatchObject({ type: 'completed', imageKeys: [`generations/${imagine.generationId}/0.png`, `generations/${imagine.generationId}/1.png`] });
    expect(events.some((event) => event.type === 'progress' && event.previewKey)).toBe(true);
    const first = await sharp(await readFile(join(imageDir, `generations/${imagine.generationId}/1.png`))).metadata();
    expect([first.format, first.width, first.height]).toEqual(['png', 64, 64]);

    const upscale = imagineRequest({
      kind: 'upscale',
      params: { ...imagine.params, batch: 1 },
      parent: { generationId: imagine.generationId, imageIndex: 1 },
    });
    await queue.enqueue(upscale, { units: 1 });
    const more = await eventsUntil({ redisUrl, prefix, model: model.name }, (seen) => terminalEventsOf(seen, upscale.generationId).length > 0);
    expect(terminalEventsOf(more, upscale.generationId)).toEqual([expect.objectContaining({ type: 'completed' })]);
    const upscaled = await sharp(await readFile(join(imageDir, `generations/${upscale.generationId}/0.png`))).metadata();
    expect(upscaled.width).toBeGreaterThan(64);
    expect(await ports.ledgerState(upscale.generationId)).toBe('committed');
  });
});
