/**
 * ModelInspector on onnxruntime-node: proves an artifact is a loadable ONNX model and reads its
 * signature. Before ORT sees the bytes, the protobuf is parsed (onnx-proto) and a model with any tensor in
 * an external data file, wherever the tensor lives, is rejected: a registered artifact must be self-contained, and
 * ORT must never be asked to open files next to the process (it reads a relative location from its working
 * directory). An input declared with no shape (any rank) is refused too: the protocol's metadata cannot describe it,
 * and ORT reports it as a scalar, so every other request would be refused.
 */
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { UnprocessableModelError } from '../domain/errors';
import type { Datatype, ModelSignature, TensorSpec } from '../domain/types';
import type { ModelInspector } from '../ports';

const { onnx } = onnxProto;

/** ORT tensor type names -> Open Inference Protocol datatypes. */
export const ORT_TO_OIP: Readonly<Record<string, Datatype>> = {
  bool: 'BOOL',
  uint8: 'UINT8',
  uint16: 'UINT16',
  uint32: 'UINT32',
  uint64: 'UINT64',
  int8: 'INT8',
  int16: 'INT16',
  int32: 'INT32',
  int64: 'INT64',
  float16: 'FP16',
  float32: 'FP32',
  float64: 'FP64',
  string: 'BYTES',
};

type Model = InstanceType<typeof onnx.ModelProto>;
type Attribute = InstanceType<typeof onnx.AttributeProto>;

/**
 * The default attribute values of the model's functions (`FunctionProto.attribute_proto`, field 11 of each
 * `ModelProto.functions` entry, field 25). onnx-proto's schema (ONNX 1.10) predates the field and its decoder
 * drops it, while onnxruntime reads it: it is read from the wire here, so that its tensors are checked too.
 */
export function functionAttributeDefaults(bytes: Uint8Array): Attribute[] {
  const found: Attribute[] = [];
  for (const fn of lengthDelimited(bytes, 25)) {
    for (const attribute of lengthDelimited(fn, 11)) found.push(onnx.AttributeProto.decode(attribute));
  }
  return found;
}

/** The values of one length-delimited field of a protobuf message's bytes (a minimal wire-format reader). */
function lengthDelimited(bytes: Uint8Array, field: number): Uint8Array[] {
  const values: Uint8Array[] = [];
  let pos = 0;
  const varint = (): number => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      if (pos >= bytes.length || shift > 63) throw new Error('truncated or malformed varint');
      const b = bytes[pos++] as number;
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
    }
  };
  while (pos < bytes.length) {
    const tag = varint();
    const wire = tag % 8;
    if (wire === 0) varint();
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      const length = varint();
      if (pos + length > bytes.length) throw new Error('truncated length-delimited field');
      if (Math.floor(tag / 8) === field) values.push(bytes.subarray(pos, pos + length));
      pos += length;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  if (pos > bytes.length) throw new Error('truncated field');
  return values;
}

/**
 * Names of the tensors stored outside the model bytes (`data_location` EXTERNAL or `external_data` entries), wherever
 * a TensorProto can live: every field of the decoded tree is walked, at any depth — initializers and sparse
 * initializers, node attributes (tensor, sparse tensor and their lists), subgraphs of If/Loop/Scan, function bodies,
 * training graphs — and so are the functions' default attribute values (`functionAttributeDefaults`).
 */
export function externalDataTensors(model: Model, extra: readonly Attribute[] = []): string[] {
  const found: string[] = [];
  const EXTERNAL = onnx.TensorProto.DataLocation.EXTERNAL;
  const isMessage = (v: object) =>
    typeof (v as { constructor?: { encode?: unknown } }).constructor?.encode === 'function';
  const stack: object[] = [model, ...extra];
  for (let v = stack.pop(); v !== undefined; v = stack.pop()) {
    if (v instanceof onnx.TensorProto) {
      if (v.dataLocation === EXTERNAL || (v.externalData?.length ?? 0) > 0) found.push(v.name || '(unnamed)');
      continue;
    }
    for (const field of Object.values(v)) {
      if (field === null || typeof field !== 'object' || ArrayBuffer.isView(field)) continue;
      if (!Array.isArray(field)) {
        if (isMessage(field)) stack.push(field);
      } else if (
        field.length > 0 &&
        typeof field[0] === 'object' &&
        field[0] !== null &&
        isMessage(field[0])
      ) {
        for (const item of field) stack.push(item);
      }
    }
  }
  return found;
}

/**
 * Names of the graph's tensor inputs declared with no shape at all (any rank: `tensor_type.shape` absent), which
 * onnxruntime reports as rank 0, like a scalar. An output declared so is not refused: it is listed with `shape: []`
 * (its rank unknown), and the answers carry the dims of what the model computed.
 */
export function unknownRankInputs(model: Model): Set<string> {
  const found = new Set<string>();
  for (const info of model.graph?.input ?? []) {
    const tensor = info.type?.tensorType;
    if (tensor && tensor.shape == null) found.add(info.name ?? '');
  }
  return found;
}

function toSpec(
  m: ort.InferenceSession.ValueMetadata,
  kind: 'input' | 'output',
  unknownRank: ReadonlySet<string>,
): TensorSpec {
  if (!m.isTensor) {
    throw new UnprocessableModelError(
      `${kind} '${m.name}' is not a tensor (sequences and maps are not supported by the inference protocol)`,
    );
  }
  const datatype = ORT_TO_OIP[m.type];
  if (!datatype) throw new UnprocessableModelError(`${kind} '${m.name}' has unsupported type '${m.type}'`);
  // The protocol's metadata gives every tensor a rank: an input of any rank would be advertised (and requests
  // validated) as a scalar.
  if (kind === 'input' && unknownRank.has(m.name)) {
    throw new UnprocessableModelError(
      `${kind} '${m.name}' declares no shape (any rank), which the inference protocol cannot describe; ` +
        'declare its shape in the model, with a symbolic dimension (e.g. "batch") for each one that varies',
    );
  }
  return {
    name: m.name,
    datatype,
    shape: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)),
  };
}

export class OrtModelInspector implements ModelInspector {
  /** Loads the bytes in onnxruntime-node; UnprocessableModelError when they are not a usable model. */
  async inspect(bytes: Uint8Array): Promise<ModelSignature> {
    let model: Model;
    try {
      model = onnx.ModelProto.decode(bytes);
    } catch (e) {
      throw new UnprocessableModelError(`the artifact is not an ONNX model: ${(e as Error).message}`);
    }
    if (!model.graph) throw new UnprocessableModelError('the artifact is not an ONNX model: it has no graph');
    let external: string[];
    try {
      external = externalDataTensors(model, functionAttributeDefaults(bytes));
    } catch (e) {
      throw new UnprocessableModelError(`the artifact is not an ONNX model: ${(e as Error).message}`);
    }
    if (external.length > 0) {
      throw new UnprocessableModelError(
        `the model references external data files (tensors: ${external.slice(0, 5).join(', ')}); ` +
          'register a self-contained model (save it without external data)',
      );
    }
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes);
    } catch (e) {
      throw new UnprocessableModelError(
        `onnxruntime cannot load the model: ${firstLine((e as Error).message)}`,
      );
    }
    const unknownRank = unknownRankInputs(model);
    try {
      return {
        inputs: session.inputMetadata.map((m) => toSpec(m, 'input', unknownRank)),
        outputs: session.outputMetadata.map((m) => toSpec(m, 'output', unknownRank)),
      };
    } finally {
      await session.release().catch(() => {});
    }
  }
}

function firstLine(s: string): string {
  const line = s.split('\n')[0] ?? s;
  return line.length > 500 ? `${line.slice(0, 500)}…` : line;
}
