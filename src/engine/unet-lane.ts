import type * as ort from 'onnxruntime-node';
import { modelFailure } from './errors.js';
import { startTypescriptWorker } from './typescript-worker.js';

/**
 * A second copy of the UNet session on its own thread, so one denoising step can run two parts of its batch at once.
 * onnxruntime-node runs session.run() synchronously on the calling thread, and on a small CPU model a step is a long
 * chain of small operators that one session cannot keep two cores busy on (two intra-op threads gave 1.3× one, where
 * two single-threaded sessions on half the batch each give 1.9×). The engine thread runs the first part on its own
 * session while this thread runs the rest.
 */
export interface UnetLane {
  run(feeds: ort.InferenceSession.FeedsType): Promise<ort.InferenceSession.ReturnType>;
  release(): Promise<void>;
}

export interface UnetLaneData {
  path: string;
  options: ort.InferenceSession.SessionOptions;
}

/** A tensor as it crosses the thread: dtype, dims and its own copy of the values. */
export interface LaneTensor {
  type: ort.Tensor.Type;
  data: ort.Tensor.DataType;
  dims: readonly number[];
}

export type ToUnetLane = { type: 'run'; id: number; feeds: Record<string, LaneTensor> } | { type: 'release' };
export type FromUnetLane =
  | { type: 'ready' }
  | { type: 'load-failed'; message: string }
  | { type: 'done'; id: number; outputs: Record<string, LaneTensor> }
  | { type: 'failed'; id: number; message: string }
  | { type: 'released' };

/** The values of a tensor that may be a view into a larger buffer, copied so only they cross (and can be moved). */
export function laneTensor(tensor: { type: ort.Tensor.Type; data: ort.Tensor.DataType; dims: readonly number[] }): LaneTensor {
  const data = tensor.data as unknown as { slice(): ort.Tensor.DataType };
  return { type: tensor.type, data: data.slice(), dims: [...tensor.dims] };
}

export function laneBuffers(tensors: Record<string, LaneTensor>): ArrayBuffer[] {
  return Object.values(tensors).map((tensor) => (tensor.data as unknown as { buffer: ArrayBuffer }).buffer);
}

export async function openUnetLane(data: UnetLaneData): Promise<UnetLane> {
  const { Tensor } = await import('onnxruntime-node');
  const worker = startTypescriptWorker(new URL('./unet-lane-thread.ts', import.meta.url), data satisfies UnetLaneData);
  const pending = new Map<number, { resolve(outputs: ort.InferenceSession.ReturnType): void; reject(error: Error): void }>();
  let nextId = 0;
  let released: (() => void) | undefined;
  let dead: Error | undefined;

  const fail = (error: Error) => {
    dead = error;
    for (const call of pending.values()) call.reject(error);
    pending.clear();
  };

  await new Promise<void>((resolve, reject) => {
    worker.on('message', (message: FromUnetLane) => {
      switch (message.type) {
        case 'ready':
          return resolve();
        case 'load-failed':
          return reject(modelFailure(`${data.path} could not be opened on a second UNet thread: ${message.message}`, { file: data.path }));
        case 'done': {
          const call = pending.get(message.id);
          pending.delete(message.id);
          const outputs = Object.fromEntries(Object.entries(message.outputs).map(([name, tensor]) => [name, new Tensor(tensor.type, tensor.data, tensor.dims)]));
          return call?.resolve(outputs as ort.InferenceSession.ReturnType);
        }
        case 'failed': {
          const call = pending.get(message.id);
          pending.delete(message.id);
          return call?.reject(modelFailure(`${data.path} failed on the second UNet thread: ${message.message}`, { file: data.path }));
        }
        case 'released':
          return released?.();
      }
    });
    worker.on('error', (error) => {
      reject(error);
      fail(error);
    });
    worker.on('exit', (code) => {
      const error = new Error(`the second UNet thread exited with code ${code}`);
      reject(error);
      fail(error);
      released?.();
    });
  });

  return {
    run(feeds) {
      if (dead) return Promise.reject(modelFailure(`${data.path}: ${dead.message}`, { file: data.path }));
      const id = nextId++;
      const tensors = Object.fromEntries(Object.entries(feeds).map(([name, tensor]) => [name, laneTensor(tensor)]));
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        worker.postMessage({ type: 'run', id, feeds: tensors } satisfies ToUnetLane, laneBuffers(tensors));
      });
    },
    async release() {
      if (dead) return;
      await new Promise<void>((resolve) => {
        released = resolve;
        worker.postMessage({ type: 'release' } satisfies ToUnetLane);
      });
      await worker.terminate();
    },
  };
}
