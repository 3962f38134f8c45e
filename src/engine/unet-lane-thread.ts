import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { laneBuffers, laneTensor, type FromUnetLane, type ToUnetLane, type UnetLaneData } from './unet-lane.js';

/** The thread side of src/engine/unet-lane.ts: one UNet session, one run per message, in the order they come. */
const port = parentPort!;
const { path, options } = workerData as UnetLaneData;
const post = (message: FromUnetLane, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

try {
  const session = await ort.InferenceSession.create(path, options);
  port.on('message', async (message: ToUnetLane) => {
    if (message.type === 'release') {
      await session.release();
      post({ type: 'released' });
      return;
    }
    try {
      const feeds = Object.fromEntries(Object.entries(message.feeds).map(([name, tensor]) => [name, new ort.Tensor(tensor.type, tensor.data, tensor.dims)]));
      const results = await session.run(feeds);
      const outputs = Object.fromEntries(Object.entries(results).map(([name, tensor]) => [name, laneTensor(tensor)]));
      post({ type: 'done', id: message.id, outputs }, laneBuffers(outputs));
    } catch (error) {
      post({ type: 'failed', id: message.id, message: (error as Error).message });
    }
  });
  post({ type: 'ready' });
} catch (error) {
  post({ type: 'load-failed', message: (error as Error).message });
}
