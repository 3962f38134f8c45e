import { randomUUID } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import { EngineError, type EngineErrorKind } from './errors.js';
import type { EditLineage } from './edits.js';
import type { EngineOutput, ImageEngine } from './image-engine.js';
import type { EngineJob } from './jobs.js';
import type { RuntimeOptions } from './model-folder.js';
import { startTypescriptWorker } from './typescript-worker.js';

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

export type EngineHealth = 'ready' | 'hung' | 'restarting' | 'failed';

export interface ThreadedEngine extends ImageEngine {
  /**
   * 'hung' while a generation given up on by the timeout still runs on the thread; 'restarting' while a new thread loads
   * the model after the last one died; 'failed' when that load failed too.
   */
  health(): EngineHealth;
  /** How many times a dead thread has been replaced. */
  readonly restarts: number;
  release(): Promise<void>;
}

export interface ThreadedEngineOptions {
  /**
   * A generation still running after this long is handed back as transient (the queue retries it) and asked to stop
   * at its next step; until it has, health() says 'hung' (default 15 min).
   */
  jobTimeoutMs?: number;
}

const DEFAULT_JOB_TIMEOUT_MS = 15 * 60_000;

const revive = (error: SerialisedError): Error =>
  error.kind ? new EngineError(error.kind, error.userMessage ?? error.message, error.details ?? {}) : new Error(error.message);

interface PendingJob {
  onStep?: (step: number, totalSteps: number) => void;
  resolve(output: EngineOutput): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * Loads the model folder on a new worker thread; resolves once it is loaded, or rejects with the loader's error. A thread
 * that dies later (a native crash, an uncaught error) settles everything that was waiting on it (generations as
 * transient, so the queue retries them) and is replaced by a new one.
 */
export async function startThreadedEngine(modelDir: string, runtime: RuntimeOptions = {}, options: ThreadedEngineOptions = {}): Promise<ThreadedEngine> {
  const entry = new URL('./engine-thread.ts', import.meta.url);
  const jobTimeoutMs = options.jobTimeoutMs ?? DEFAULT_JOB_TIMEOUT_MS;

  const jobs = new Map<string, PendingJob>();
  const previews = new Map<string, { resolve(webp: Buffer): void; reject(error: Error): void }>();
  let released: (() => void) | undefined;
  let releasing = false;
  let health: EngineHealth = 'ready';
  let restarts = 0;

  /** Generations given up on by the timeout that the thread is still running. */
  const hung = new Set<string>();
  const recovered = (id: string) => {
    if (hung.delete(id) && hung.size === 0 && health === 'hung') health = 'ready';
  };

  const handBack = (message: string, cause?: unknown) => {
    hung.clear();
    for (const job of jobs.values()) {
      clearTimeout(job.timer);
      job.reject(new EngineError('transient', message, {}, { cause }));
    }
    jobs.clear();
    for (const preview of previews.values()) preview.reject(new EngineError('transient', 'The engine stopped before the preview was made.', {}));
    previews.clear();
  };

  const spawn = () =>
    new Promise<{ worker: Worker; name: string }>((resolve, reject) => {
      const worker = startTypescriptWorker(entry, { modelDir, runtime } satisfies EngineThreadData);
      let loaded = false;
      let crash: unknown;
      worker.on('error', (error) => {
        crash = error;
        if (!loaded) reject(error);
      });
      worker.on('exit', (code) => {
        if (!loaded) return reject(crash ?? new Error(`the engine thread exited with ${code} while loading`));
        if (!releasing) replace(crash ?? new Error(`the engine thread exited with code ${code}`));
      });
      worker.on('message', (message: FromEngineThread) => {
        switch (message.type) {
          case 'ready':
            loaded = true;
            resolve({ worker, name: message.name });
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
            recovered(message.id);
            const job = jobs.get(message.id);
            jobs.delete(message.id);
            if (job) clearTimeout(job.timer);
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
            recovered(message.id);
            const job = jobs.get(message.id);
            jobs.delete(message.id);
            if (job) clearTimeout(job.timer);
            job?.reject(revive(message.error));
            break;
          }
          case 'released':
            released?.();
            break;
        }
      });
    });

  const first = await spawn();
  let thread: Promise<Worker> = Promise.resolve(first.worker);

  // Called once per dead thread: its exit event fires once.
  function replace(cause: unknown) {
    handBack('The engine stopped unexpectedly; the job will be retried.', cause);
    health = 'restarting';
    restarts += 1;
    const next = spawn();
    thread = next.then((spawned) => spawned.worker);
    thread.catch(() => {});
    next.then(
      () => {
        health = 'ready';
      },
      () => {
        health = 'failed';
      },
    );
  }

  return {
    modelName: first.name,
    health: () => health,
    get restarts() {
      return restarts;
    },
    async generate(request, hooks) {
      let worker: Worker;
      try {
        worker = await thread;
      } catch (error) {
        throw new EngineError('transient', 'The engine could not be restarted; the job will be retried elsewhere.', {}, { cause: error });
      }
      const id = randomUUID();
      return new Promise<EngineOutput>((resolve, reject) => {
        const abort = () => worker.postMessage({ type: 'abort', id } satisfies ToEngineThread);
        hooks.signal?.addEventListener('abort', abort, { once: true });
        const settle = <T>(finish: (value: T) => void) => (value: T) => {
          hooks.signal?.removeEventListener('abort', abort);
          finish(value);
        };
        const timer = setTimeout(() => {
          const job = jobs.get(id);
          if (!job) return;
          jobs.delete(id);
          job.reject(new EngineError('transient', `The engine took longer than ${jobTimeoutMs < 1000 ? `${jobTimeoutMs} ms` : `${Math.round(jobTimeoutMs / 1000)} s`} on this image; the job will be retried.`, { timeoutMs: jobTimeoutMs }));
          // Ending the thread mid-session.run aborts the whole process (ONNX Runtime throws across N-API), so the
          // thread is asked to stop between steps instead, and the engine is not ready until it has.
          hung.add(id);
          health = 'hung';
          abort();
        }, jobTimeoutMs);
        timer.unref();
        jobs.set(id, {
          timer,
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
      releasing = true;
      const worker = await thread.catch(() => undefined);
      if (!worker) return;
      await new Promise<void>((resolve) => {
        released = resolve;
        worker.once('exit', () => resolve());
        worker.postMessage({ type: 'release' } satisfies ToEngineThread);
      });
      await worker.terminate();
      handBack('The engine was released.');
    },
  };
}
