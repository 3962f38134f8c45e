/**
 * Small ONNX models written from TypeScript: the engine's own graphs (the device check, guidance and scheduler steps)
 * built at load time, so they need no export step and no file in the repository. This is the protobuf wire format of
 * onnx.proto3 (ModelProto → GraphProto → NodeProto / ValueInfoProto / TensorProto), only the fields these graphs use.
 * The int8 rewrite (src/engine/quantize/) writes its new nodes and tensors with the same encoders.
 */

export type ElementType = 'float32' | 'uint8' | 'int8' | 'int32' | 'int64' | 'float16';
/** TensorProto.DataType numbers. */
export const ELEMENT_TYPE: Record<ElementType, number> = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, float16: 10 };

export interface ValueInfo {
  name: string;
  type: ElementType;
  /** Numbers are fixed dims, strings named dynamic ones; left out, the rank is unknown. */
  dims?: readonly (number | string)[];
}

export interface GraphNode {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attributes?: Record<string, number | readonly number[]>;
  /** Defaults to `${op}_${index}`. */
  name?: string;
  /** Operator set domain; the default ('') is ai.onnx. */
  domain?: string;
  /** AttributeProto messages taken as they are from another node (a Conv's attributes on the QLinearConv replacing it). */
  copiedAttributes?: readonly Uint8Array[];
}

export interface Initializer {
  name: string;
  /** The element type follows the array: float32, int8, uint8, int32, or float16 as raw bits (Uint16Array, as onnxruntime-node takes them). */
  values: Float32Array | Int8Array | Uint8Array | Int32Array | Uint16Array;
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
    ...graph.nodes.map((node, k) => field(1, encodeNode(node, node.name ?? `${node.op}_${k}`))),
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

export function encodeNode(node: GraphNode, name: string): Uint8Array {
  return message([
    ...node.inputs.map((input) => field(1, text(input))),
    ...node.outputs.map((output) => field(2, text(output))),
    field(3, text(name)),
    field(4, text(node.op)),
    ...Object.entries(node.attributes ?? {}).map(([key, value]) => field(5, encodeAttribute(key, value))),
    ...(node.copiedAttributes ?? []).map((attribute) => field(5, attribute)),
    ...(node.domain ? [field(7, text(node.domain))] : []),
  ]);
}

function encodeAttribute(name: string, value: number | readonly number[]): Uint8Array {
  // AttributeProto.type: INT = 2, INTS = 7; every attribute these graphs use is an integer or a list of them.
  if (typeof value === 'number') return message([field(1, text(name)), varintField(3, value), varintField(20, 2)]);
  return message([field(1, text(name)), ...value.map((v) => varintField(8, v)), varintField(20, 7)]);
}

export function encodeValueInfo(info: ValueInfo): Uint8Array {
  const shape = info.dims?.map((dim) => field(1, message([typeof dim === 'number' ? varintField(1, dim) : field(2, text(dim))])));
  const tensorType = message([varintField(1, ELEMENT_TYPE[info.type]), ...(shape ? [field(2, message(shape))] : [])]);
  return message([field(1, text(info.name)), field(2, message([field(1, tensorType)]))]);
}

export function encodeInitializer({ name, values, dims }: Initializer): Uint8Array {
  const type: ElementType =
    values instanceof Int8Array
      ? 'int8'
      : values instanceof Uint8Array
        ? 'uint8'
        : values instanceof Int32Array
          ? 'int32'
          : values instanceof Uint16Array
            ? 'float16'
            : 'float32';
  // raw_data is little-endian, as typed arrays are on every platform onnxruntime-node ships for.
  return message([
    ...dims.map((dim) => varintField(1, dim)),
    varintField(2, ELEMENT_TYPE[type]),
    field(8, text(name)),
    field(9, new Uint8Array(values.buffer, values.byteOffset, values.byteLength)),
  ]);
}

const encoder = new TextEncoder();
export const text = (value: string) => encoder.encode(value);

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
export function field(number: number, payload: Uint8Array): Uint8Array {
  return concatBytes([Uint8Array.from([...varint((number << 3) | 2), ...varint(payload.length)]), payload]);
}

export function varintField(number: number, value: number): Uint8Array {
  return Uint8Array.from([...varint(number << 3), ...varint(value)]);
}

export const message = concatBytes;

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
