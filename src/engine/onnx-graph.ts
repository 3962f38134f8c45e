/**
 * Small ONNX models written from TypeScript: the engine's own graphs (the device check, guidance and scheduler steps)
 * built at load time, so they need no export step and no file in the repository. This is the protobuf wire format of
 * onnx.proto3 (ModelProto → GraphProto → NodeProto / ValueInfoProto / TensorProto), only the fields these graphs use.
 */

export type ElementType = 'float32' | 'float16' | 'int64';
const ELEMENT_TYPE: Record<ElementType, number> = { float32: 1, int64: 7, float16: 10 };

export interface ValueInfo {
  name: string;
  type: ElementType;
  /** Numbers are fixed dims, strings named dynamic ones; absent, any shape (any rank). */
  dims?: readonly (number | string)[];
}

export interface GraphNode {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attributes?: Record<string, number | readonly number[]>;
}

export interface Initializer {
  name: string;
  values: Float32Array;
  dims: readonly number[];
}

export interface GraphDefinition {
  name: string;
  inputs: readonly ValueInfo[];
  outputs: readonly ValueInfo[];
  nodes: readonly GraphNode[];
  initializers?: readonly Initializer[];
  /** Default-domain opset; 17 is what onnxruntime 1.16+ and every SD export here use. */
  opset?: number;
}

export function encodeModel(graph: GraphDefinition): Uint8Array {
  const graphProto = message([
    ...graph.nodes.map((node, k) => field(1, encodeNode(node, `${node.op}_${k}`))),
    field(2, text(graph.name)),
    ...(graph.initializers ?? []).map((initializer) => field(5, encodeInitializer(initializer))),
    ...graph.inputs.map((input) => field(11, encodeValueInfo(input))),
    ...graph.outputs.map((output) => field(12, encodeValueInfo(output))),
  ]);
  return message([
    varintField(1, 8), // ir_version 8 (onnx 1.10+)
    field(2, text('imagine-bot')),
    field(7, graphProto),
    field(8, message([field(1, text('')), varintField(2, graph.opset ?? 17)])),
  ]);
}

function encodeNode(node: GraphNode, name: string): Uint8Array {
  return message([
    ...node.inputs.map((input) => field(1, text(input))),
    ...node.outputs.map((output) => field(2, text(output))),
    field(3, text(name)),
    field(4, text(node.op)),
    ...Object.entries(node.attributes ?? {}).map(([key, value]) => field(5, encodeAttribute(key, value))),
  ]);
}

function encodeAttribute(name: string, value: number | readonly number[]): Uint8Array {
  // AttributeProto.type: INT = 2, INTS = 7; every attribute these graphs use is an integer or a list of them.
  if (typeof value === 'number') return message([field(1, text(name)), varintField(3, value), varintField(20, 2)]);
  return message([field(1, text(name)), ...value.map((v) => varintField(8, v)), varintField(20, 7)]);
}

function encodeValueInfo(info: ValueInfo): Uint8Array {
  const dims = info.dims?.map((dim) => field(1, message([typeof dim === 'number' ? varintField(1, dim) : field(2, text(dim))])));
  const tensorType = message([varintField(1, ELEMENT_TYPE[info.type]), ...(dims ? [field(2, message(dims))] : [])]);
  return message([field(1, text(info.name)), field(2, message([field(1, tensorType)]))]);
}

function encodeInitializer({ name, values, dims }: Initializer): Uint8Array {
  return message([
    ...dims.map((dim) => varintField(1, dim)),
    varintField(2, ELEMENT_TYPE.float32),
    field(8, text(name)),
    field(9, new Uint8Array(values.buffer, values.byteOffset, values.byteLength)),
  ]);
}

const encoder = new TextEncoder();
const text = (value: string) => encoder.encode(value);

function varint(value: number): number[] {
  const bytes: number[] = [];
  let rest = BigInt.asUintN(64, BigInt(value));
  do {
    const low = Number(rest & 0x7fn);
    rest >>= 7n;
    bytes.push(rest > 0n ? low | 0x80 : low);
  } while (rest > 0n);
  return bytes;
}

/** A length-delimited field (wire type 2): strings, bytes and embedded messages. */
function field(number: number, payload: Uint8Array): Uint8Array {
  return concatBytes([Uint8Array.from([...varint((number << 3) | 2), ...varint(payload.length)]), payload]);
}

function varintField(number: number, value: number): Uint8Array {
  return Uint8Array.from([...varint(number << 3), ...varint(value)]);
}

const message = concatBytes;

function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
