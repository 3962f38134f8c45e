import { EngineError } from '../errors.js';
import { ELEMENT_TYPE, type GraphNode, type Initializer, type ValueInfo } from '../onnx-graph.js';
import { inlinedTensor, readFloatTensor, writeOnnxModel, type ModelNode, type ModelTensor, type OnnxModel, type OutputNode } from './onnx-file.js';

/**
 * The int8 rewrite of one ONNX graph, in the two shapes onnxruntime's CPU provider has fast int8 kernels for:
 * - MatMul / Gemm by a stored weight → com.microsoft.DynamicQuantizeMatMul: int8 weights, one scale per output column,
 *   the activation quantized to uint8 on the fly per call (onnxruntime's quantize_dynamic does the same). Needs no
 *   calibration, so the text encoder is quantized this way alone.
 * - Conv → QuantizeLinear → QLinearConv → DequantizeLinear (the QDQ form of onnxruntime's quantize_static): int8
 *   weights with one scale per output channel, an int32 bias, and uint8 activations whose ranges come from running
 *   the real pipeline (./calibrate.ts). Convolutions are most of a UNet's time, and quantizing them dynamically would
 *   cost a pass over every activation per call.
 * Weights are symmetric (zero point 0), so the int8 × uint8 products need no zero-point correction on the weight side.
 * Everything else (attention's activation × activation products, normalisation, the VAE) stays float32.
 */

export const MICROSOFT_DOMAIN = 'com.microsoft';

/** Operators that only an already-quantized graph has. */
const QUANTIZED_OPS = new Set([
  'QuantizeLinear',
  'DequantizeLinear',
  'DynamicQuantizeLinear',
  'QLinearConv',
  'QLinearMatMul',
  'MatMulInteger',
  'ConvInteger',
  'DynamicQuantizeMatMul',
  'MatMulIntegerToFloat',
  'QGemm',
  'QAttention',
  'DynamicQuantizeLSTM',
  'MatMulNBits',
  'MatMulBnb4',
]);

/** Operators that carry learned weights and have no rewrite here: quantizing around them would leave a half-int8 file. */
const UNREWRITABLE_WEIGHTED_OPS = new Set(['ConvTranspose', 'LSTM', 'GRU', 'RNN', 'Einsum', 'Attention', 'MultiHeadAttention']);

const KNOWN_DOMAINS = new Set(['', 'ai.onnx', MICROSOFT_DOMAIN]);

/** Nodes a stored weight passes through on its way to the operator (a float16 file casts its weights to float32). */
const WEIGHT_PATH_OPS = new Set(['Identity', 'Cast']);

interface StoredWeight {
  tensor: ModelTensor;
  /** The weight-path nodes between the tensor and the operator, which the rewrite leaves unused. */
  path: ModelNode[];
}

interface MatMulSite {
  kind: 'matmul';
  index: number;
  node: ModelNode;
  weight: StoredWeight;
  /** Gemm with transB = 1 keeps its weight as [N, K]. */
  transposed: boolean;
  bias?: StoredWeight;
}

interface ConvSite {
  kind: 'conv';
  index: number;
  node: ModelNode;
  weight: StoredWeight;
  bias?: StoredWeight;
}

export interface Int8Plan {
  model: OnnxModel;
  /** The file named in errors, relative to the folder. */
  label: string;
  matmuls: MatMulSite[];
  convs: ConvSite[];
}

export interface ActivationRange {
  min: number;
  max: number;
}

export interface Int8Options {
  /** 7-bit weights, for CPUs without VNNI whose int8 × uint8 instructions saturate (onnxruntime's reduce_range). */
  reduceRange?: boolean;
}

export interface Int8Counts {
  matmuls: number;
  convs: number;
}

function refuse(label: string, node: ModelNode | undefined, reason: string): EngineError {
  const where = node ? `node '${node.name || '(unnamed)'}' (${node.op})` : 'the graph';
  return new EngineError('invalid_input', `${label}: ${where} ${reason} Nothing was written.`, { file: label, ...(node && { node: node.name, op: node.op }) });
}

/**
 * What will be rewritten, or an error naming the first node that stops it: an already-quantized node, a weighted
 * operator with no rewrite, or a MatMul / Gemm / Conv whose weight the rewrite cannot take.
 */
export function planInt8(model: OnnxModel, label: string): Int8Plan {
  const producer = new Map<string, ModelNode>();
  for (const node of model.nodes) for (const output of node.outputs) producer.set(output, node);

  const stored = (name: string): StoredWeight | undefined => {
    const path: ModelNode[] = [];
    let current = name;
    for (;;) {
      const tensor = model.initializers.get(current);
      // An initializer that is also a graph input can be overridden at run time: it is not a constant.
      if (tensor && !model.inputNames.has(current)) return { tensor, path };
      const node = producer.get(current);
      if (!node || !WEIGHT_PATH_OPS.has(node.op) || node.domain !== '') return undefined;
      path.push(node);
      current = node.inputs[0];
    }
  };
  const computesInFloat32 = (weight: StoredWeight) => {
    const cast = weight.path.find((node) => node.op === 'Cast');
    const castTo = cast?.attributes.find((a) => a.name === 'to')?.int;
    if (weight.tensor.dataType === ELEMENT_TYPE.float32) return cast === undefined || castTo === ELEMENT_TYPE.float32;
    return weight.tensor.dataType === ELEMENT_TYPE.float16 && castTo === ELEMENT_TYPE.float32;
  };
  const checkWeight = (node: ModelNode, input: string, weight: StoredWeight) => {
    if (weight.tensor.dataType !== ELEMENT_TYPE.float32 && weight.tensor.dataType !== ELEMENT_TYPE.float16) {
      throw refuse(label, node, `takes weight '${input}' stored as data type ${weight.tensor.dataType}; only float32 and float16 weights are rewritten to int8.`);
    }
    if (!computesInFloat32(weight)) {
      throw refuse(
        label,
        node,
        `computes in float16 (weight '${input}' reaches it without a cast to float32); onnxruntime's int8 kernels take float32 activations. Quantize the float32 export of this model.`,
      );
    }
  };
  const attribute = (node: ModelNode, name: string) => node.attributes.find((a) => a.name === name);

  const defaultOpset = model.opsets.get('') ?? model.opsets.get('ai.onnx') ?? 0;
  if (defaultOpset < 10) throw refuse(label, undefined, `imports ONNX opset ${defaultOpset}; QuantizeLinear and QLinearConv need opset 10 or later. Re-export it with a newer opset.`);

  const matmuls: MatMulSite[] = [];
  const convs: ConvSite[] = [];
  model.nodes.forEach((node, index) => {
    if (QUANTIZED_OPS.has(node.op)) {
      throw refuse(label, node, 'is already a quantized operator: this model is already int8. Quantize the float32 (or float16) folder it was made from.');
    }
    if (!KNOWN_DOMAINS.has(node.domain)) {
      throw refuse(label, node, `is a custom operator (domain '${node.domain}') this tool cannot look inside, so it cannot tell whether it holds weights.`);
    }
    if (UNREWRITABLE_WEIGHTED_OPS.has(node.op) && node.inputs.slice(1).some((input) => input !== '' && stored(input))) {
      throw refuse(label, node, 'holds stored weights, and this tool has no int8 rewrite for it (it rewrites MatMul, Gemm and Conv). Keep this model in float32.');
    }
    if (node.op === 'MatMul' || node.op === 'Gemm') {
      const weightName = node.inputs[1];
      const weight = stored(weightName);
      if (!weight) return; // a product of two activations (attention), which stays float32
      checkWeight(node, weightName, weight);
      if (weight.tensor.dims.length !== 2) {
        throw refuse(label, node, `multiplies by a stored weight of rank ${weight.tensor.dims.length} ('${weightName}'); DynamicQuantizeMatMul takes a 2-D weight.`);
      }
      let bias: StoredWeight | undefined;
      let transposed = false;
      if (node.op === 'Gemm') {
        const alpha = attribute(node, 'alpha')?.float ?? 1;
        const beta = attribute(node, 'beta')?.float ?? 1;
        if ((attribute(node, 'transA')?.int ?? 0) !== 0 || alpha !== 1 || beta !== 1) {
          throw refuse(label, node, `has transA/alpha/beta of ${attribute(node, 'transA')?.int ?? 0}/${alpha}/${beta}; the int8 rewrite takes Gemm with transA 0, alpha 1 and beta 1 only.`);
        }
        transposed = (attribute(node, 'transB')?.int ?? 0) === 1;
        const columns = weight.tensor.dims[transposed ? 0 : 1];
        const biasName = node.inputs[2];
        if (biasName) {
          bias = stored(biasName);
          const count = bias?.tensor.dims.reduce((product, dim) => product * dim, 1);
          if (!bias || count !== columns || bias.tensor.dims.at(-1) !== columns) {
            throw refuse(label, node, `adds '${biasName}', which is not a stored bias of ${columns} values; the int8 rewrite takes a per-column bias only.`);
          }
          checkWeight(node, biasName, bias);
        }
      }
      matmuls.push({ kind: 'matmul', index, node, weight, transposed, ...(bias && { bias }) });
    }
    if (node.op === 'Conv') {
      const weightName = node.inputs[1];
      const weight = stored(weightName);
      if (!weight) throw refuse(label, node, `takes weight '${weightName}' computed in the graph rather than stored, so it cannot be stored as int8.`);
      checkWeight(node, weightName, weight);
      const biasName = node.inputs[2];
      const bias = biasName ? stored(biasName) : undefined;
      if (biasName && !bias) throw refuse(label, node, `takes bias '${biasName}' computed in the graph rather than stored; QLinearConv needs a stored int32 bias.`);
      if (bias) checkWeight(node, biasName!, bias);
      convs.push({ kind: 'conv', index, node, weight, ...(bias && { bias }) });
    }
  });
  return { model, label, matmuls, convs };
}

/** The tensors whose ranges QLinearConv needs: each Conv's input and output. */
export function calibrationTensors(plan: Int8Plan): string[] {
  return [...new Set(plan.convs.flatMap((site) => [site.node.inputs[0], site.node.outputs[0]]))];
}

/** The same model with every calibration tensor also a graph output, so the pipeline's own UNet calls expose them. */
export function calibrationModel(plan: Int8Plan): Uint8Array {
  const { model } = plan;
  const extraOutputs: ValueInfo[] = calibrationTensors(plan)
    .filter((name) => !model.inputNames.has(name) && !model.outputNames.has(name))
    .map((name) => ({ name, type: 'float32' }));
  return writeOnnxModel(model, {
    nodes: model.nodes.map((node) => ({ kept: node })),
    keptInitializers: [...model.initializers.keys()],
    addedInitializers: [],
    extraOutputs,
  });
}

/** Symmetric int8 per output channel: rows of a [rows, columns] matrix share a scale. */
function quantizeRows(values: Float32Array, rows: number, columns: number, qmax: number): { q: Int8Array; scales: Float32Array } {
  const q = new Int8Array(values.length);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let largest = 0;
    for (let c = 0; c < columns; c++) largest = Math.max(largest, Math.abs(values[r * columns + c]));
    const scale = largest > 0 ? largest / qmax : 1;
    scales[r] = scale;
    for (let c = 0; c < columns; c++) q[r * columns + c] = Math.max(-qmax, Math.min(qmax, Math.round(values[r * columns + c] / scale)));
  }
  return { q, scales };
}

function transpose(values: Float32Array, rows: number, columns: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < columns; c++) out[c * rows + r] = values[r * columns + c];
  return out;
}

/** uint8 scale and zero point covering a range (widened to hold 0, so zero padding is exact). */
export function activationQuantization(range: ActivationRange): { scale: number; zeroPoint: number } {
  const min = Math.min(range.min, 0);
  const max = Math.max(range.max, 0);
  const scale = max > min ? (max - min) / 255 : 1;
  return { scale, zeroPoint: Math.max(0, Math.min(255, Math.round(-min / scale))) };
}

/**
 * The int8 model. Conv sites need the range of their input and output (from calibrationTensors); MatMul sites need
 * none. Weight-path nodes and tensors the rewrite leaves unused are dropped, so the file holds int8 weights only.
 */
export async function rewriteInt8(plan: Int8Plan, ranges: ReadonlyMap<string, ActivationRange>, options: Int8Options = {}): Promise<{ bytes: Uint8Array; counts: Int8Counts }> {
  const { model } = plan;
  const qmax = options.reduceRange ? 63 : 127;
  const taken = new Set([...model.initializers.keys(), ...model.nodes.flatMap((node) => node.outputs)]);
  const unique = (base: string) => {
    let name = base;
    for (let k = 1; taken.has(name); k++) name = `${base}_${k}`;
    taken.add(name);
    return name;
  };
  const added: Initializer[] = [];
  const addTensor = (base: string, values: Initializer['values'], dims: readonly number[]) => {
    const name = unique(base);
    added.push({ name, values, dims });
    return name;
  };

  // A weight shared by several nodes is quantized once.
  const quantizedMatrices = new Map<string, { q: string; scale: string }>();
  const replacements = new Map<number, (GraphNode & { name: string })[]>();

  for (const site of plan.matmuls) {
    const { tensor } = site.weight;
    const key = `${tensor.name}|${site.transposed}`;
    let matrix = quantizedMatrices.get(key);
    if (!matrix) {
      const [rows, columns] = tensor.dims;
      const values = await readFloatTensor(model, tensor);
      // DynamicQuantizeMatMul takes B as [K, N] with one scale per column N: quantize B^T's rows.
      const byColumn = site.transposed ? values : transpose(values, rows, columns);
      const [k, n] = site.transposed ? [columns, rows] : [rows, columns];
      const { q, scales } = quantizeRows(byColumn, n, k, qmax);
      matrix = {
        q: addTensor(`${tensor.name}_int8`, transposeInt8(q, n, k), [k, n]),
        scale: addTensor(`${tensor.name}_int8_scale`, scales, [n]),
      };
      quantizedMatrices.set(key, matrix);
    }
    const inputs = [site.node.inputs[0], matrix.q, matrix.scale];
    if (site.bias) {
      const bias = await readFloatTensor(model, site.bias.tensor);
      inputs.push('', addTensor(`${site.bias.tensor.name}_bias`, bias, [bias.length]));
    }
    replacements.set(site.index, [
      { op: 'DynamicQuantizeMatMul', domain: MICROSOFT_DOMAIN, name: unique(`${site.node.name || site.node.op}_int8`), inputs, outputs: site.node.outputs },
    ]);
  }

  for (const site of plan.convs) {
    const [input] = site.node.inputs;
    const [output] = site.node.outputs;
    const inputRange = ranges.get(input);
    const outputRange = ranges.get(output);
    if (!inputRange || !outputRange) throw new Error(`no calibrated range for ${inputRange ? output : input}`);
    const x = activationQuantization(inputRange);
    const y = activationQuantization(outputRange);
    const { tensor } = site.weight;
    const channels = tensor.dims[0];
    const perChannel = tensor.dims.slice(1).reduce((product, dim) => product * dim, 1);
    const { q, scales } = quantizeRows(await readFloatTensor(model, tensor), channels, perChannel, qmax);
    const base = site.node.name || `Conv_${site.index}`;
    const xScale = addTensor(`${base}_x_scale`, Float32Array.of(x.scale), []);
    const xZero = addTensor(`${base}_x_zero_point`, Uint8Array.of(x.zeroPoint), []);
    const yScale = addTensor(`${base}_y_scale`, Float32Array.of(y.scale), []);
    const yZero = addTensor(`${base}_y_zero_point`, Uint8Array.of(y.zeroPoint), []);
    const weight = addTensor(`${tensor.name}_int8`, q, tensor.dims);
    const weightScale = addTensor(`${tensor.name}_int8_scale`, scales, [channels]);
    const weightZero = addTensor(`${tensor.name}_int8_zero_point`, new Int8Array(channels), [channels]);
    const inputs = [unique(`${base}_x_uint8`), xScale, xZero, weight, weightScale, weightZero, yScale, yZero];
    if (site.bias) {
      // int32 bias in the product's scale (x_scale × w_scale), so the kernel adds it before requantizing.
      const bias = await readFloatTensor(model, site.bias.tensor);
      const biasQ = Int32Array.from(bias, (value, channel) => Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, Math.round(value / (x.scale * scales[channel])))));
      inputs.push(addTensor(`${site.bias.tensor.name}_int32`, biasQ, [channels]));
    }
    const quantized = unique(`${base}_y_uint8`);
    replacements.set(site.index, [
      { op: 'QuantizeLinear', name: unique(`${base}_quantize`), inputs: [input, xScale, xZero], outputs: [inputs[0]] },
      { op: 'QLinearConv', name: unique(`${base}_int8`), inputs, outputs: [quantized], copiedAttributes: site.node.attributes.map((a) => a.raw) },
      { op: 'DequantizeLinear', name: unique(`${base}_dequantize`), inputs: [quantized, yScale, yZero], outputs: [output] },
    ]);
  }

  let nodes = model.nodes.flatMap((node, index): OutputNode[] => replacements.get(index)?.map((added) => ({ added })) ?? [{ kept: node }]);
  nodes = withoutUnusedWeightPaths(nodes, model.outputNames);
  const consumed = new Set([...nodes.flatMap((node) => ('kept' in node ? node.kept.inputs : node.added.inputs)), ...model.outputNames]);
  // A subgraph (If, Loop, Scan) may read an outer initializer by name without listing it as a node input.
  const hasSubgraphs = model.nodes.some((node) => ['If', 'Loop', 'Scan'].includes(node.op));
  const rewrittenWeights = new Set([...plan.matmuls, ...plan.convs].flatMap((site) => [site.weight.tensor.name, ...(site.bias ? [site.bias.tensor.name] : [])]));
  const keptInitializers = [...model.initializers.keys()].filter((name) => consumed.has(name) || (hasSubgraphs && !rewrittenWeights.has(name)));
  // Tensors kept from an external data file are written inline: the int8 file stands alone, and the float data file
  // (most of a large export's bytes) can be left out of the copy.
  const replacedTensors = new Map<string, Uint8Array>();
  for (const name of keptInitializers) {
    const tensor = model.initializers.get(name)!;
    if (tensor.external) replacedTensors.set(name, await inlinedTensor(model, { ...tensor, external: tensor.external }));
  }
  const bytes = writeOnnxModel(model, {
    replacedTensors,
    nodes,
    keptInitializers,
    addedInitializers: added.filter((initializer) => consumed.has(initializer.name)),
    extraOpsets: plan.matmuls.length > 0 && !model.opsets.has(MICROSOFT_DOMAIN) ? new Map([[MICROSOFT_DOMAIN, 1]]) : undefined,
  });
  return { bytes, counts: { matmuls: plan.matmuls.length, convs: plan.convs.length } };
}

/** The external data files a model reads its tensors from, relative to the model's folder. */
export function externalDataFiles(plan: Int8Plan): string[] {
  return [...new Set([...plan.model.initializers.values()].flatMap((tensor) => (tensor.external ? [tensor.external.location] : [])))];
}

function transposeInt8(values: Int8Array, rows: number, columns: number): Int8Array {
  const out = new Int8Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < columns; c++) out[c * rows + r] = values[r * columns + c];
  return out;
}

/** Drops Identity / Cast nodes whose outputs nothing reads any more (the float weights' casts), repeatedly. */
function withoutUnusedWeightPaths(nodes: OutputNode[], graphOutputs: ReadonlySet<string>): OutputNode[] {
  let current = nodes;
  for (;;) {
    const consumed = new Set(current.flatMap((node) => ('kept' in node ? node.kept.inputs : node.added.inputs)));
    const next = current.filter(
      (node) => !('kept' in node) || !WEIGHT_PATH_OPS.has(node.kept.op) || node.kept.outputs.some((output) => consumed.has(output) || graphOutputs.has(output)),
    );
    if (next.length === current.length) return next;
    current = next;
  }
}
