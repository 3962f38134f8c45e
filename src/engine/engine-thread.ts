import { parentPort, workerData } from 'node:worker_threads';
import { isEngineError } from './errors.js';
import { createImageEngine } from './image-engine.js';
import { loadModelFolder } from './model-folder.js';
import type { StepEvent } from './pipeline.js';
import type { EngineThreadData, ToEngineThread, FromEngineThread } from './threaded-engine.js';

/**
 * The thread side of src/engine/threaded-engine.ts: owns the ONNX sessions and runs one generation per message,
 * answering preview requests for the step it is on.
 */
const port = parentPort!;
const { modelDir, runtime } = workerData as EngineThreadData;
const post = (message: FromEngineThread, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

const serialise = (error: unknown) =>
  isEngineError(error)
    ? { kind: error.kind, userMessage: error.userMessage, details: error.details, message: error.message }
    : { message: error instanceof Error ? error.message : String(error) };

try {
  const model = await loadModelFolder(modelDir, runtime);
  const engine = createImageEngine(model);
  const running = new Map<string, { abort: AbortController; latestPreview?: StepEvent['preview'] }>();

  port.on('message', (message: ToEngineThread) => {
    switch (message.type) {
      case 'generate': {
        const job = { abort: new AbortController() } as { abort: AbortController; latestPreview?: StepEvent['preview'] };
        running.set(message.id, job);
        engine
          .generate(message.request, {
            signal: job.abort.signal,
            parentImage: message.parentImage ? Buffer.from(message.parentImage) : undefined,
            maskImage: message.maskImage ? Buffer.from(message.maskImage) : undefined,
            blendImages: message.blendImages?.map((bytes) => Buffer.from(bytes)),
            onStep: (event) => {
              job.latestPreview = event.preview;
              post({ type: 'step', id: message.id, step: event.step, totalSteps: event.totalSteps });
            },
          })
          .then(
            (output) => {
              const images = output.images.map((png) => new Uint8Array(png));
              const grid = output.grid ? new Uint8Array(output.grid) : undefined;
              const mask = output.edit?.mask ? new Uint8Array(output.edit.mask) : undefined;
              const edit = output.edit && { ...output.edit, mask };
              post(
                { type: 'done', id: message.id, output: { images, grid, seeds: output.seeds, timingsMs: output.timingsMs, warnings: output.warnings, edit } },
                [...images, ...(grid ? [grid] : []), ...(mask ? [mask] : [])].map((bytes) => bytes.buffer as ArrayBuffer),
              );
            },
            (error: unknown) => post({ type: 'failed', id: message.id, error: serialise(error) }),
          )
          .finally(() => running.delete(message.id));
        break;
      }
      case 'preview': {
        const preview = running.get(message.id)?.latestPreview;
        if (!preview) {
          post({ type: 'preview', id: message.id, requestId: message.requestId, error: serialise(new Error('the generation has no preview yet')) });
          break;
        }
        preview().then(
          (webp) => {
            const bytes = new Uint8Array(webp);
            post({ type: 'preview', id: message.id, requestId: message.requestId, webp: bytes }, [bytes.buffer as ArrayBuffer]);
          },
          (error: unknown) => post({ type: 'preview', id: message.id, requestId: message.requestId, error: serialise(error) }),
        );
        break;
      }
      case 'abort':
        running.get(message.id)?.abort.abort();
        break;
      case 'release':
        void model.release().finally(() => post({ type: 'released' }));
        break;
    }
  });
  post({ type: 'ready', name: model.name });
} catch (error) {
  post({ type: 'load-failed', error: serialise(error) });
}
