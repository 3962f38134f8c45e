import * as ort from 'onnxruntime-node';
import { modelFailure } from './errors.js';
import { fromFloat16Bits, toFloat16Bits } from './float16.js';
import type { DeviceGraphs } from './device-graphs.js';
import type { TensorPort } from './model-folder.js';

/** Plain arrays ↔ ONNX Runtime tensors in whatever dtype a model's port declares. */

export function idsTensor(port: TensorPort, prompts: number[][]): ort.Tensor {
  const flat = prompts.flat();
  const dims = [prompts.length, prompts[0].length];
  return port.type === 'int64'
    ? new ort.Tensor('int64', BigInt64Array.from(flat, (id) => BigInt(id)), dims)
    : new ort.Tensor('int32', Int32Array.from(flat), dims);
}

export function floatTensor(port: TensorPort, data: Float32Array, dims: readonly number[]): ort.Tensor {
  return port.type === 'float16' ? new ort.Tensor('float16', toFloat16Bits(data), dims) : new ort.Tensor('float32', data, dims);
}

/** Older exports take int64 [batch] timesteps (truncated, as diffusers' ONNX pipeline casts), newer ones a float. */
export function timestepTensor(port: TensorPort, timestep: number, batch: number): ort.Tensor {
  const dims = port.dims.length === 0 ? [] : [batch];
  const count = port.dims.length === 0 ? 1 : batch;
  if (port.type === 'int64') return new ort.Tensor('int64', new BigInt64Array(count).fill(BigInt(Math.trunc(timestep))), dims);
  const values = new Float32Array(count).fill(timestep);
  return port.type === 'float16' ? new ort.Tensor('float16', toFloat16Bits(values), dims) : new ort.Tensor('float32', values, dims);
}

export function floatData(tensor: ort.Tensor): Float32Array {
  if (tensor.type === 'float32') return tensor.data as Float32Array;
  if (tensor.type === 'float16') return fromFloat16Bits(tensor.data as Uint16Array);
  throw modelFailure(`A model returned a ${tensor.type} tensor where float32 or float16 was expected.`);
}

/**
 * A float tensor's values on the host. A `gpu-buffer` tensor (the UNet's output on webgpu) is downloaded through the
 * model's download graph (reading it directly aborts the process in onnxruntime-node 1.30); the caller disposes it.
 */
export async function hostFloatData(tensor: ort.Tensor, device: DeviceGraphs | undefined): Promise<Float32Array> {
  if (tensor.location === 'cpu') return floatData(tensor);
  if (!device) throw modelFailure(`A ${tensor.location} tensor came back from a session that has no way to read it.`);
  return floatData(await device.download(tensor));
}
