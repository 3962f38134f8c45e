import { randomUUID } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { EngineError, type EngineErrorKind } from './errors.js';
import type { EditLineage } from './edits.js';
import type { EngineOutput, ImageEngine } from './image-engine.js';
import type { EngineJob } from './jobs.js';
import type { RuntimeOptions } from './model-folder.js';

/**
 * onnxruntime-node runs each session.run() synchronously on the calling thread, so an engine on the main thread
 * freezes everything else in the process — chat acks, Redis locks, health checks — for every UNet step. This engine
 * keeps the ONNX sessions on a worker thread and speaks to it in messages; the ImageEngine port stays the same.
 */
export interface EngineThreadData {
  modelDir: string;
  runtime: RuntimeOptions;
}

interface SerialisedError {
  kind?: EngineErrorKind;
  userMessage?: string;
  details?: Record<string, unknown>;
  message: string;
}

export type ToEngineThread =
  | { type: 'generate'; id: string; request: EngineJob; parentImage?: Uint8Array; maskImage?: Uint8Array; blendImages?: Uint8Array[] }
  | { type: 'preview'; id: string; requestId: string }
  | { type: 'abort'; id: string }
  | { type: 'release' };

export type FromEngineThread =
  | { type: 'ready'; name: string }
  | { type: 'load-failed'; error: SerialisedError }
  | { type: 'step'; id: string; step: number; totalSteps: number }
  | { type: 'preview'; id: string; requestId: string; webp?: Uint8Array; error?: SerialisedError }
  | { type: 'done'; id: string; output: { images: Uint8Array[]; grid?: Uint8Array; seeds: number[]; timingsMs: Record<string, number>; warnings?: string[]; edit?: ThreadEditLineage } }
  | { type: 'failed'; id: string; error: SerialisedError }
  | { type: 'released' };

/** Buffers cross the thread as plain Uint8Arrays. */
type ThreadEditLineage = Omit<EditLineage, 'mask'> & { mask?: Uint8Array };

export interface ThreadedEngine extends ImageEngine {
  release(): Promise<void>;
}

const revive = (error: SerialisedError): Error =>
  error.kind ? new EngineError(error.kind, error.userMessage ?? error.message, error.details ?? {}) : new Error(error.message);

/** Loads the model folder on a new worker thread; resolves once it is loaded, or rejects with the loader's error. */
export async function startThreadedEngine(modelDir: string, runtime: RuntimeOptions = {}): Promise<ThreadedEngine> {
  const entry = new URL('./engine-thread.ts', import.meta.url).href;
  // Worker threads do not inherit tsx's module hooks on Node 20; the thread registers them before loading its entry.
  const bootstrap = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(entry)}); })`;
  const worker = new Worker(bootstrap, { eval: true, workerData: { modelDir, runtime } satisfies EngineThreadData });

  const jobs = new Map<string, { onStep?: (step: number, totalSteps: number) => void; resolve(output: EngineOutput): void; reject(error: Error): void }>();
  const previews = new Map<string, { resolve(webp: Buffer): void; reject(error: Error): void }>();
  let released: (() => void) | undefined;

  const name = await new Promise<string>((resolve, reject) => {
    worker.once('error', reject);
    worker.on('message', (message: FromEngineThread) => {
      switch (message.type) {
        case 'ready':
          resolve(message.name);
          break;
        case 'load-failed':
          reject(revive(message.error));
          void worker.terminate();
          break;
        case 'step':
          jobs.get(message.id)?.onStep?.(message.step, message.totalSteps);
          break;
        case 'preview': {
          const waiting = previews.get(message.requestId);
          previews.delete(message.requestId);
          if (message.webp) waiting?.resolve(Buffer.from(message.webp));
          else waiting?.reject(revive(message.error ?? { message: 'no preview' }));
          break;
        }
        case 'done': {
          const job = jobs.get(message.id);
          jobs.delete(message.id);
          const { images, grid, seeds, timingsMs, warnings, edit } = message.output;
          job?.resolve({
            images: images.map((bytes) => Buffer.from(bytes)),
            grid: grid && Buffer.from(grid),
            seeds,
            timingsMs,
            ...(warnings && { warnings }),
            ...(edit && { edit: { ...edit, mask: edit.mask && Buffer.from(edit.mask) } }),
          });
          break;
        }
        case 'failed': {
          const job = jobs.get(message.id);
          jobs.delete(message.id);
          job?.reject(revive(message.error));
          break;
        }
        case 'released':
          released?.();
          break;
      }
    });
  });

  // A thread that dies takes its running generations with it: fail them as transient so the queue retries elsewhere.
  worker.on('error', (error) => {
    for (const job of jobs.values()) job.reject(new EngineError('transient', 'The engine stopped unexpectedly; the job will be retried.', {}, { cause: error }));
    jobs.clear();
  });

  return {
    modelName: name,
    generate(request, hooks) {
      const id = randomUUID();
      return new Promise<EngineOutput>((resolve, reject) => {
        const abort = () => worker.postMessage({ type: 'abort', id } satisfies ToEngineThread);
        hooks.signal?.addEventListener('abort', abort, { once: true });
        const settle = <T>(finish: (value: T) => void) => (value: T) => {
          hooks.signal?.removeEventListener('abort', abort);
          finish(value);
        };
        jobs.set(id, {
          onStep: hooks.onStep
            ? (step, totalSteps) =>
                hooks.onStep!({
                  step,
                  totalSteps,
                  preview: () =>
                    new Promise<Buffer>((resolvePreview, rejectPreview) => {
                      const requestId = randomUUID();
                      previews.set(requestId, { resolve: resolvePreview, reject: rejectPreview });
                      worker.postMessage({ type: 'preview', id, requestId } satisfies ToEngineThread);
                    }),
                })
            : undefined,
          resolve: settle(resolve),
          reject: settle(reject),
        });
        const copy = (bytes: Buffer) => new Uint8Array(bytes);
        const parentImage = hooks.parentImage && copy(hooks.parentImage);
        const maskImage = hooks.maskImage && copy(hooks.maskImage);
        const blendImages = hooks.blendImages?.map(copy);
        const transfer = [parentImage, maskImage, ...(blendImages ?? [])].flatMap((bytes) => (bytes ? [bytes.buffer as ArrayBuffer] : []));
        worker.postMessage({ type: 'generate', id, request, parentImage, maskImage, blendImages } satisfies ToEngineThread, transfer);
        if (hooks.signal?.aborted) abort();
      });
    },
    async release() {
      await new Promise<void>((resolve) => {
        released = resolve;
        worker.postMessage({ type: 'release' } satisfies ToEngineThread);
      });
      await worker.terminate();
    },
  };
}
