import { open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fromFloat16Bits } from '../float16.js';
import { ELEMENT_TYPE, concatBytes, encodeInitializer, encodeNode, encodeValueInfo, field, message, text, varintField, type GraphNode, type Initializer, type ValueInfo } from '../onnx-graph.js';

/**
 * An existing ONNX model read for rewriting: the nodes, initializers and opset imports are decoded, everything else
 * (doc strings, metadata, value_info, inputs) is kept as the bytes it was read as, so a rewrite changes only what it
 * means to. The new nodes and tensors are written with the engine's own encoders (src/engine/onnx-graph.ts).
 */

interface WireField {
  number: number;
  wireType: number;
  /** Varints as bigint (int64 fields may be negative); length-delimited fields as their payload. */
  value: bigint | Uint8Array;
  /** The whole field, tag included, to write back unchanged. */
  raw: Uint8Array;
}

export interface Attribute {
  name: string;
  int?: number;
  ints?: number[];
  float?: number;
  raw: Uint8Array;
}

export interface ModelNode {
  name: string;
  op: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: Attribute[];
  /** The NodeProto as it was read. */
  raw: Uint8Array;
}

export interface ModelTensor {
  name: string;
  dataType: number;
  dims: number[];
  /** The TensorProto as it was read, written back unchanged while the tensor is kept. */
  raw: Uint8Array;
  /** Fields needed to read the values: raw_data, or float_data/int32_data, or an external file's location. */
  rawData?: Uint8Array;
  floatData?: Uint8Array;
  int32Data?: Uint8Array;
  external?: { location: string; offset: number; length?: number };
}

export interface OnnxModel {
  file: string;
  nodes: ModelNode[];
  initializers: Map<string, ModelTensor>;
  inputNames: Set<string>;
  outputNames: Set<string>;
  opsets: Map<string, number>;
  /** ModelProto fields other than the graph and opset imports, as read. */
  modelFields: Uint8Array[];
  /** GraphProto fields other than nodes and initializers, as read. */
  graphFields: Uint8Array[];
}

/** A node as written back: an unchanged one as its original bytes, a new one encoded. */
export type OutputNode = { kept: ModelNode } | { added: GraphNode & { name: string } };

const decoder = new TextDecoder();
const str = (value: bigint | Uint8Array) => (value instanceof Uint8Array ? decoder.decode(value) : '');
const int = (value: bigint | Uint8Array) => (typeof value === 'bigint' ? Number(BigInt.asIntN(64, value)) : 0);

export class OnnxFormatError extends Error {}

function readFields(bytes: Uint8Array): WireField[] {
  const fields: WireField[] = [];
  let offset = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (offset >= bytes.length) throw new OnnxFormatError('truncated varint');
      const byte = bytes[offset++];
      result |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return result;
      shift += 7n;
    }
  };
  while (offset < bytes.length) {
    const start = offset;
    const tag = Number(varint());
    const number = tag >>> 3;
    const wireType = tag & 7;
    let value: bigint | Uint8Array;
    if (wireType === 0) value = varint();
    else if (wireType === 2) {
      const length = Number(varint());
      if (offset + length > bytes.length) throw new OnnxFormatError('truncated field');
      value = bytes.subarray(offset, offset + length);
      offset += length;
    } else if (wireType === 5 || wireType === 1) {
      const size = wireType === 5 ? 4 : 8;
      value = bytes.subarray(offset, offset + size);
      offset += size;
    } else throw new OnnxFormatError(`unsupported protobuf wire type ${wireType}`);
    fields.push({ number, wireType, value, raw: bytes.subarray(start, offset) });
  }
  return fields;
}

/** A repeated int64 field, packed or not. */
function readInts(fields: WireField[], number: number): number[] {
  const out: number[] = [];
  for (const f of fields.filter((candidate) => candidate.number === number)) {
    if (typeof f.value === 'bigint') out.push(int(f.value));
    else {
      let offset = 0;
      const bytes = f.value;
      while (offset < bytes.length) {
        let result = 0n;
        let shift = 0n;
        for (;;) {
          const byte = bytes[offset++];
          result |= BigInt(byte & 0x7f) << shift;
          if (byte < 0x80) break;
          shift += 7n;
        }
        out.push(Number(BigInt.asIntN(64, result)));
      }
    }
  }
  return out;
}

function readAttribute(raw: Uint8Array): Attribute {
  const fields = readFields(raw);
  const name = str(fields.find((f) => f.number === 1)?.value ?? new Uint8Array());
  const i = fields.find((f) => f.number === 3);
  const f = fields.find((candidate) => candidate.number === 2 && candidate.wireType === 5);
  const ints = readInts(fields, 8);
  return {
    name,
    raw,
    ...(i && { int: int(i.value) }),
    ...(ints.length > 0 && { ints }),
    ...(f && { float: new DataView((f.value as Uint8Array).slice().buffer).getFloat32(0, true) }),
  };
}

function readNode(bytes: Uint8Array): ModelNode {
  const fields = readFields(bytes);
  const strings = (number: number) => fields.filter((f) => f.number === number).map((f) => str(f.value));
  return {
    inputs: strings(1),
    outputs: strings(2),
    name: strings(3)[0] ?? '',
    op: strings(4)[0] ?? '',
    domain: strings(7)[0] ?? '',
    attributes: fields.filter((f) => f.number === 5).map((f) => readAttribute(f.value as Uint8Array)),
    raw: bytes,
  };
}

function readTensor(raw: Uint8Array): ModelTensor {
  const fields = readFields(raw);
  const payload = (number: number) => {
    const found = fields.filter((f) => f.number === number);
    return found.length === 0 ? undefined : concatBytes(found.map((f) => f.value as Uint8Array));
  };
  const tensor: ModelTensor = {
    name: str(fields.find((f) => f.number === 8)?.value ?? new Uint8Array()),
    dataType: int(fields.find((f) => f.number === 2)?.value ?? 0n),
    dims: readInts(fields, 1),
    raw,
    rawData: payload(9),
    floatData: payload(4),
    int32Data: payload(5),
  };
  const externalLocation = fields.find((f) => f.number === 14);
  if (externalLocation && int(externalLocation.value) === 1) {
    const entries = new Map(
      fields
        .filter((f) => f.number === 13)
        .map((f) => {
          const entry = readFields(f.value as Uint8Array);
          return [str(entry.find((e) => e.number === 1)?.value ?? new Uint8Array()), str(entry.find((e) => e.number === 2)?.value ?? new Uint8Array())];
        }),
    );
    const location = entries.get('location');
    if (location) {
      tensor.external = { location, offset: Number(entries.get('offset') ?? 0), ...(entries.has('length') && { length: Number(entries.get('length')) }) };
    }
  }
  return tensor;
}

export function readOnnxModel(file: string, bytes: Uint8Array): OnnxModel {
  // A plain view, not a Node Buffer, whose slice() would share memory instead of copying.
  const modelFields = readFields(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const graph = modelFields.find((f) => f.number === 7);
  if (!graph) throw new OnnxFormatError('no graph');
  const opsets = new Map<string, number>();
  for (const f of modelFields.filter((candidate) => candidate.number === 8)) {
    const entry = readFields(f.value as Uint8Array);
    opsets.set(str(entry.find((e) => e.number === 1)?.value ?? new Uint8Array()), int(entry.find((e) => e.number === 2)?.value ?? 0n));
  }
  const graphFields = readFields(graph.value as Uint8Array);
  const valueName = (f: WireField) => str(readFields(f.value as Uint8Array).find((e) => e.number === 1)?.value ?? new Uint8Array());
  const initializers = new Map<string, ModelTensor>();
  for (const f of graphFields.filter((candidate) => candidate.number === 5)) {
    const tensor = readTensor(f.value as Uint8Array);
    initializers.set(tensor.name, tensor);
  }
  return {
    file,
    nodes: graphFields.filter((f) => f.number === 1).map((f) => readNode(f.value as Uint8Array)),
    initializers,
    inputNames: new Set(graphFields.filter((f) => f.number === 11).map(valueName)),
    outputNames: new Set(graphFields.filter((f) => f.number === 12).map(valueName)),
    opsets,
    modelFields: modelFields.filter((f) => f.number !== 7 && f.number !== 8).map((f) => f.raw),
    graphFields: graphFields.filter((f) => f.number !== 1 && f.number !== 5).map((f) => f.raw),
  };
}

/** Bytes per element of the data types stored as raw_data here. */
const ELEMENT_BYTES: Record<number, number> = { 1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2 };

/** The raw_data of a tensor kept in an external data file (Optimum's model.onnx_data for models over 2 GB). */
async function readExternalBytes(model: OnnxModel, tensor: ModelTensor & { external: NonNullable<ModelTensor['external']> }): Promise<Uint8Array> {
  const count = tensor.dims.reduce((product, dim) => product * dim, 1);
  const length = tensor.external.length ?? count * (ELEMENT_BYTES[tensor.dataType] ?? 0);
  const handle = await open(join(dirname(model.file), tensor.external.location), 'r');
  try {
    const buffer = new Uint8Array(length);
    await handle.read(buffer, 0, length, tensor.external.offset);
    return buffer;
  } finally {
    await handle.close();
  }
}

/** A TensorProto with its external data read into raw_data, so the written file stands alone. */
export async function inlinedTensor(model: OnnxModel, tensor: ModelTensor & { external: NonNullable<ModelTensor['external']> }): Promise<Uint8Array> {
  return message([
    ...tensor.dims.map((dim) => varintField(1, dim)),
    varintField(2, tensor.dataType),
    field(8, text(tensor.name)),
    field(9, await readExternalBytes(model, tensor)),
  ]);
}

/** The float values of a float32 or float16 tensor, wherever the file keeps them. */
export async function readFloatTensor(model: OnnxModel, tensor: ModelTensor): Promise<Float32Array> {
  const count = tensor.dims.reduce((product, dim) => product * dim, 1);
  const bytes = tensor.external ? await readExternalBytes(model, { ...tensor, external: tensor.external }) : tensor.rawData;
  if (tensor.dataType === ELEMENT_TYPE.float32) {
    if (bytes) return new Float32Array(bytes.slice().buffer, 0, count);
    return new Float32Array((tensor.floatData ?? new Uint8Array()).slice().buffer, 0, count);
  }
  if (tensor.dataType === ELEMENT_TYPE.float16) {
    if (bytes) return fromFloat16Bits(new Uint16Array(bytes.slice().buffer, 0, count));
    // Without raw_data, float16 values are the low 16 bits of packed int32_data varints.
    const halves = readInts([{ number: 5, wireType: 2, value: tensor.int32Data ?? new Uint8Array(), raw: new Uint8Array() }], 5);
    return fromFloat16Bits(Uint16Array.from(halves, (value) => value & 0xffff));
  }
  throw new OnnxFormatError(`tensor '${tensor.name}' has data type ${tensor.dataType}, not float32 or float16`);
}

export interface ModelRewrite {
  nodes: readonly OutputNode[];
  /** Kept initializers (by name) and new ones. */
  keptInitializers: readonly string[];
  addedInitializers: readonly Initializer[];
  extraOutputs?: readonly ValueInfo[];
  extraOpsets?: ReadonlyMap<string, number>;
  /** TensorProto bytes written instead of a kept tensor's own (its external data read in). */
  replacedTensors?: ReadonlyMap<string, Uint8Array>;
}

export function writeOnnxModel(model: OnnxModel, rewrite: ModelRewrite): Uint8Array {
  const opsets = new Map([...model.opsets, ...(rewrite.extraOpsets ?? [])]);
  const graph = message([
    ...rewrite.nodes.map((node) => ('kept' in node ? field(1, node.kept.raw) : field(1, encodeNode(node.added, node.added.name)))),
    ...model.graphFields,
    ...rewrite.keptInitializers.map((name) => field(5, rewrite.replacedTensors?.get(name) ?? model.initializers.get(name)!.raw)),
    ...rewrite.addedInitializers.map((initializer) => field(5, encodeInitializer(initializer))),
    ...(rewrite.extraOutputs ?? []).map((output) => field(12, encodeValueInfo(output))),
  ]);
  return message([
    ...model.modelFields,
    field(7, graph),
    ...[...opsets].map(([domain, version]) => field(8, message([field(1, text(domain)), varintField(2, version)]))),
  ]);
}
