import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { toFloat16Bits } from '../../../src/engine/float16.js';
import { encodeModel, type GraphDefinition, type GraphNode, type Initializer } from '../../../src/engine/onnx-graph.js';
import { calibrationModel, calibrationTensors, planInt8, rewriteInt8, type ActivationRange } from '../../../src/engine/quantize/int8-graph.js';
import { readOnnxModel } from '../../../src/engine/quantize/onnx-file.js';

/** Deterministic values in [-1, 1), so each test's tolerance holds on every run. */
function pattern(length: number, seed: number): Float32Array {
  let state = seed;
  return Float32Array.from({ length }, () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return (state / 2 ** 31) * 2 - 1;
  });
}

const FEATURES = 16;
const COLUMNS = 8;

function graph(nodes: GraphNode[], initializers: Initializer[], input: { name: string; dims: number[] }, outputDims: number[]): GraphDefinition {
  return {
    name: 'quantize_test',
    inputs: [{ name: input.name, type: 'float32', dims: input.dims }],
    outputs: [{ name: 'y', type: 'float32', dims: outputDims }],
    nodes,
    initializers,
    opset: 14,
  };
}

async function run(bytes: Uint8Array, name: string, values: Float32Array, dims: number[]): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const result = await session.run({ [name]: new ort.Tensor('float32', values, dims) });
    return Object.fromEntries(Object.entries(result).map(([key, tensor]) => [key, tensor.data as Float32Array]));
  } finally {
    await session.release();
  }
}

const maxDifference = (a: Float32Array, b: Float32Array) => a.reduce((worst, value, i) => Math.max(worst, Math.abs(value - b[i])), 0);
const largest = (a: Float32Array) => a.reduce((worst, value) => Math.max(worst, Math.abs(value)), 0);
const opsOf = (bytes: Uint8Array) => readOnnxModel('rewritten.onnx', bytes).nodes.map((node) => node.op);

describe('int8 rewrite of one graph', () => {
  it('turns MatMul and Gemm by stored weights into DynamicQuantizeMatMul, within int8 rounding of float32', async () => {
    const bytes = encodeModel(
      graph(
        [
          { op: 'MatMul', inputs: ['x', 'w1'], outputs: ['h'], name: 'first' },
          { op: 'Gemm', inputs: ['h', 'w2', 'b2'], outputs: ['y'], attributes: { transB: 1 }, name: 'second' },
        ],
        [
          { name: 'w1', values: pattern(FEATURES * COLUMNS, 1), dims: [FEATURES, COLUMNS] },
          { name: 'w2', values: pattern(COLUMNS * COLUMNS, 2), dims: [COLUMNS, COLUMNS] },
          { name: 'b2', values: pattern(COLUMNS, 3), dims: [COLUMNS] },
        ],
        { name: 'x', dims: [4, FEATURES] },
        [4, COLUMNS],
      ),
    );
    const plan = planInt8(readOnnxModel('model.onnx', bytes), 'model.onnx');
    expect(calibrationTensors(plan)).toEqual([]);
    const { bytes: int8, counts } = await rewriteInt8(plan, new Map());
    expect(counts).toEqual({ matmuls: 2, convs: 0 });
    expect(opsOf(int8)).toEqual(['DynamicQuantizeMatMul', 'DynamicQuantizeMatMul']);

    const x = pattern(4 * FEATURES, 4);
    const [reference, quantized] = [await run(bytes, 'x', x, [4, FEATURES]), await run(int8, 'x', x, [4, FEATURES])];
    expect(maxDifference(reference.y, quantized.y)).toBeLessThan(0.015 * largest(reference.y));
    expect(maxDifference(reference.y, quantized.y)).toBeGreaterThan(0);
  });

  it('turns Conv into QuantizeLinear → QLinearConv → DequantizeLinear with the calibrated ranges', async () => {
    const bytes = encodeModel(
      graph(
        [{ op: 'Conv', inputs: ['x', 'w', 'b'], outputs: ['y'], attributes: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, name: 'conv' }],
        [
          { name: 'w', values: pattern(8 * 4 * 9, 5), dims: [8, 4, 3, 3] },
          { name: 'b', values: pattern(8, 6), dims: [8] },
        ],
        { name: 'x', dims: [1, 4, 6, 6] },
        [1, 8, 6, 6],
      ),
    );
    const plan = planInt8(readOnnxModel('model.onnx', bytes), 'model.onnx');
    expect(calibrationTensors(plan)).toEqual(['x', 'y']);

    const x = pattern(4 * 36, 7);
    const reference = await run(calibrationModel(plan), 'x', x, [1, 4, 6, 6]);
    const range = (values: Float32Array): ActivationRange => ({ min: Math.min(...values), max: Math.max(...values) });
    const { bytes: int8, counts } = await rewriteInt8(plan, new Map([['x', range(x)], ['y', range(reference.y)]]));
    expect(counts).toEqual({ matmuls: 0, convs: 1 });
    expect(opsOf(int8)).toEqual(['QuantizeLinear', 'QLinearConv', 'DequantizeLinear']);
    const quantized = await run(int8, 'x', x, [1, 4, 6, 6]);
    expect(maxDifference(reference.y, quantized.y)).toBeLessThan(0.02 * largest(reference.y));
  });

  it('reads float16 weights through their Cast and keeps no float copy of them', async () => {
    const weights = pattern(FEATURES * COLUMNS, 8);
    const bytes = encodeModel(
      graph(
        [
          { op: 'Cast', inputs: ['w_half'], outputs: ['w'], attributes: { to: 1 } },
          { op: 'MatMul', inputs: ['x', 'w'], outputs: ['y'] },
        ],
        [{ name: 'w_half', values: toFloat16Bits(weights), dims: [FEATURES, COLUMNS] }],
        { name: 'x', dims: [2, FEATURES] },
        [2, COLUMNS],
      ),
    );
    const { bytes: int8 } = await rewriteInt8(planInt8(readOnnxModel('model.onnx', bytes), 'model.onnx'), new Map());
    const rewritten = readOnnxModel('model.onnx', int8);
    expect(rewritten.nodes.map((node) => node.op)).toEqual(['DynamicQuantizeMatMul']);
    expect([...rewritten.initializers.values()].map((tensor) => tensor.dataType)).toEqual([3, 1]); // int8 weight, float32 scales
    const x = pattern(2 * FEATURES, 9);
    const [reference, quantized] = [await run(bytes, 'x', x, [2, FEATURES]), await run(int8, 'x', x, [2, FEATURES])];
    expect(maxDifference(reference.y, quantized.y)).toBeLessThan(0.015 * largest(reference.y));
  });

  it('leaves a product of two activations (attention) in float32', async () => {
    const bytes = encodeModel(
      graph(
        [
          { op: 'Transpose', inputs: ['x'], outputs: ['xt'], attributes: { perm: [1, 0] } },
          { op: 'MatMul', inputs: ['x', 'xt'], outputs: ['y'] },
        ],
        [],
        { name: 'x', dims: [3, 4] },
        [3, 3],
      ),
    );
    const plan = planInt8(readOnnxModel('model.onnx', bytes), 'model.onnx');
    expect(plan.matmuls).toEqual([]);
    expect(opsOf((await rewriteInt8(plan, new Map())).bytes)).toEqual(['Transpose', 'MatMul']);
  });

  describe('refuses, naming the file and the node', () => {
    const refusal = (nodes: GraphNode[], initializers: Initializer[]) => {
      const bytes = encodeModel(graph(nodes, initializers, { name: 'x', dims: [2, FEATURES] }, [2, COLUMNS]));
      return () => planInt8(readOnnxModel('unet/model.onnx', bytes), 'unet/model.onnx');
    };
    const weight = { name: 'w', values: pattern(FEATURES * COLUMNS, 10), dims: [FEATURES, COLUMNS] };

    it('a graph that is already int8', () => {
      const check = refusal([{ op: 'DynamicQuantizeMatMul', domain: 'com.microsoft', inputs: ['x', 'w'], outputs: ['y'], name: 'proj_int8' }], [weight]);
      expect(check).toThrow(/unet\/model\.onnx: node 'proj_int8' \(DynamicQuantizeMatMul\) is already a quantized operator: this model is already int8/);
    });

    it('a weighted operator the rewrite has no int8 form for', () => {
      const check = refusal(
        [{ op: 'ConvTranspose', inputs: ['x', 'w'], outputs: ['y'], name: 'up' }],
        [{ name: 'w', values: pattern(4 * 4 * 4, 11), dims: [4, 4, 2, 2] }],
      );
      expect(check).toThrow(/unet\/model\.onnx: node 'up' \(ConvTranspose\) holds stored weights, and this tool has no int8 rewrite for it/);
    });

    it('a Gemm with a transposed input', () => {
      const check = refusal([{ op: 'Gemm', inputs: ['x', 'w'], outputs: ['y'], attributes: { transA: 1 }, name: 'odd' }], [weight]);
      expect(check).toThrow(/node 'odd' \(Gemm\) has transA\/alpha\/beta of 1\/1\/1/);
    });

    it('a MatMul that computes in float16', () => {
      const check = refusal([{ op: 'MatMul', inputs: ['x', 'w'], outputs: ['y'], name: 'half' }], [{ ...weight, values: toFloat16Bits(weight.values) }]);
      expect(check).toThrow(/node 'half' \(MatMul\) computes in float16/);
    });

    it('with the file and node in the error details', () => {
      const check = refusal([{ op: 'DynamicQuantizeMatMul', domain: 'com.microsoft', inputs: ['x', 'w'], outputs: ['y'], name: 'proj_int8' }], [weight]);
      expect(check).toThrow(expect.objectContaining({ kind: 'invalid_input', details: { file: 'unet/model.onnx', node: 'proj_int8', op: 'DynamicQuantizeMatMul' } }));
    });
  });
});
