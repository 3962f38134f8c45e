import { Session } from 'node:inspector/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineJob } from '../../src/engine/jobs.js';
import { createImageEngine } from '../../src/engine/image-engine.js';
import { loadModelFolder, type ModelFolder } from '../../src/engine/model-folder.js';
import { startThreadedEngine, type ThreadedEngine } from '../../src/engine/threaded-engine.js';

const TINY_SD = 'test/fixtures/models/tiny-sd';
let threaded: ThreadedEngine;
let inProcess: ModelFolder;

const request = (overrides: Partial<EngineJob['params']> = {}): EngineJob => ({
  kind: 'imagine',
  params: { prompt: 'a red fox', negativePrompt: '', width: 64, height: 64, steps: 6, guidance: 5, sampler: 'euler', seed: 3, batch: 2, ...overrides },
});

/**
 * Kills worker threads from outside, as a native crash or a bug would: through the inspector, each thread started
 * after `mark()` is made to throw an uncaught error at its next turn. Our own code is left as it runs in production.
 */
async function threadKiller() {
  const session = new Session();
  session.connect();
  const threads: string[] = [];
  session.on('NodeWorker.attachedToWorker', ({ params }) => {
    // Node's module loader threads are not ours.
    if (params.workerInfo.url !== 'node:internal/modules/esm/worker') threads.push(params.sessionId);
  });
  await session.post('NodeWorker.enable', { waitForDebuggerOnStart: false });
  let since = threads.length;
  return {
    mark: () => {
      since = threads.length;
    },
    crashStartedSinceMark: async () => {
      const victims = threads.slice(since);
      expect(victims).toHaveLength(1);
      const expression = "setImmediate(() => { throw new Error('engine thread crashed on purpose'); })";
      await session.post('NodeWorker.sendMessageToWorker', {
        sessionId: victims[0]!,
        message: JSON.stringify({ id: 1, method: 'Runtime.evaluate', params: { expression } }),
      });
    },
    close: () => session.disconnect(),
  };
}

beforeAll(async () => {
  threaded = await startThreadedEngine(TINY_SD, { intraOpNumThreads: 1 });
  inProcess = await loadModelFolder(TINY_SD, { intraOpNumThreads: 1 });
});
afterAll(async () => {
  await threaded?.release();
  await inProcess?.release();
});

describe('engine on a worker thread', () => {
  it('makes the same PNGs as the engine on the calling thread', async () => {
    const [fromThread, here] = await Promise.all([threaded.generate(request(), {}), createImageEngine(inProcess).generate(request(), {})]);
    expect(threaded.modelName).toBe('tiny-sd');
    expect(fromThread.seeds).toEqual([3, 4]);
    expect(fromThread.images.map((png) => png.toString('base64'))).toEqual(here.images.map((png) => png.toString('base64')));
    expect(fromThread.grid?.equals(here.grid!)).toBe(true);
  });

  it('reports every step and makes a WebP preview on request', async () => {
    const steps: number[] = [];
    let preview: Promise<Buffer> | undefined;
    await threaded.generate(request(), {
      onStep: (event) => {
        steps.push(event.step);
        if (event.step === 3) preview = event.preview();
      },
    });
    expect(steps).toEqual([1, 2, 3, 4, 5, 6]);
    expect((await preview!).subarray(8, 12).toString('latin1')).toBe('WEBP');
  });

  it('runs an edit on the thread and hands back the same PNGs and mask', async () => {
    const [picture] = (await threaded.generate(request({ batch: 1 }), {})).images;
    const zoom: EngineJob = { kind: 'zoom-out', params: { ...request({ batch: 1 }).params, zoomOut: 2 } };
    const [fromThread, here] = await Promise.all([threaded.generate(zoom, { parentImage: picture }), createImageEngine(inProcess).generate(zoom, { parentImage: picture })]);
    expect(fromThread.images[0].equals(here.images[0])).toBe(true);
    expect(Buffer.isBuffer(fromThread.edit?.mask)).toBe(true);
    expect(fromThread.edit?.mask?.equals(here.edit!.mask!)).toBe(true);
    expect(fromThread.edit).toMatchObject({ kind: 'zoom-out', description: 'zoom out 2' });
  });

  it('keeps the error kind and message of a refused request', async () => {
    await expect(threaded.generate(request({ steps: 151 }), {})).rejects.toMatchObject({ kind: 'invalid_input', userMessage: expect.stringContaining('from 1 to 150') });
  });

  it('stops between steps when the signal aborts', async () => {
    const controller = new AbortController();
    const run = threaded.generate(request({ steps: 40 }), { signal: controller.signal, onStep: (event) => event.step === 2 && controller.abort() });
    await expect(run).rejects.toMatchObject({ kind: 'cancelled' });
  });

  it('hands back a job past its timeout as transient, says it is hung until the thread lets go, then serves the next job', async () => {
    // The slow job takes about 1.5 s on an idle 2-core machine (longer under load), the next one about 20 ms: a timeout
    // between them, far from both, so the test holds on a fast idle machine and on a loaded one alike.
    const engine = await startThreadedEngine(TINY_SD, { intraOpNumThreads: 1 }, { jobTimeoutMs: 400 });
    try {
      let preview: Promise<Buffer> | undefined;
      // Far longer than the timeout: 150 steps of a 128×128 batch of 4.
      const slow = engine.generate(request({ width: 128, height: 128, batch: 4, steps: 150 }), {
        onStep: (event) => {
          if (event.step === 1) preview = event.preview();
        },
      });
      await expect(slow).rejects.toMatchObject({ kind: 'transient', userMessage: expect.stringContaining('longer than 400 ms') });
      expect(engine.health()).toBe('hung');
      expect((await preview!).subarray(8, 12).toString('latin1')).toBe('WEBP');

      const next = await engine.generate(request({ batch: 1, steps: 2 }), {});
      expect(next.images).toHaveLength(1);
      expect(engine.health()).toBe('ready');
      expect(engine.restarts).toBe(0);
    } finally {
      await engine.release();
    }
  });

  it('hands back a running job as transient when its thread dies, settles its preview, and serves the next job on a new thread', async () => {
    const killer = await threadKiller();
    killer.mark();
    const engine = await startThreadedEngine(TINY_SD, { intraOpNumThreads: 1 });
    try {
      let preview: Promise<Buffer> | undefined;
      let crashed: Promise<void> | undefined;
      // Far longer than it takes the crash to land: 150 steps of a 128×128 batch of 4.
      const running = engine.generate(request({ width: 128, height: 128, batch: 4, steps: 150 }), {
        onStep: (event) => {
          if (event.step !== 1) return;
          preview = event.preview();
          crashed = killer.crashStartedSinceMark();
        },
      });
      await expect(running).rejects.toMatchObject({ kind: 'transient', userMessage: expect.stringContaining('stopped unexpectedly') });
      await crashed;
      expect(engine.health()).toBe('restarting');
      // Made before the thread died, or refused as transient: never left waiting.
      expect(await preview!.then(() => 'made', (error: { kind?: string }) => error.kind)).toMatch(/^(made|transient)$/);

      const next = await engine.generate(request({ batch: 1, steps: 2 }), {});
      expect(next.images).toHaveLength(1);
      expect(engine.health()).toBe('ready');
      expect(engine.restarts).toBe(1);
    } finally {
      await engine.release();
      killer.close();
    }
  });

  it('fails to start with the loader’s error for a broken folder', async () => {
    await expect(startThreadedEngine('no/such/model')).rejects.toMatchObject({ kind: 'model_failure', userMessage: expect.stringContaining('does not exist') });
  });
});
