/**
 * ModelInspector on onnxruntime-node: proves an artifact is a loadable ONNX model and reads its
 * signature. Before ORT sees the bytes, the protobuf is parsed (onnx-proto) and models whose tensors
 * live in external data files are rejected: a registered artifact must be self-contained, and ORT must
 * never be asked to open files next to the process. An input or output declared with no shape (any rank) is
 * refused too: the protocol's metadata cannot describe it, and ORT reports it as a scalar.
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

type Tensor = InstanceType<typeof onnx.TensorProto>;
type Graph = InstanceType<typeof onnx.GraphProto>;

/** Names of tensors (initializers, constants, subgraphs included) stored outside the model bytes. */
export function externalDataTensors(model: InstanceType<typeof onnx.ModelProto>): string[] {
  const found: string[] = [];
  const EXTERNAL = onnx.TensorProto.DataLocation.EXTERNAL;
  const tensor = (t: Tensor | null | undefined) => {
    if (!t) return;
    if (t.dataLocation === EXTERNAL || (t.externalData?.length ?? 0) > 0) found.push(t.name || '(unnamed)');
  };
  const graph = (g: Graph | null | undefined, depth: number) => {
    if (!g || depth > 64) return;
    for (const t of g.initializer ?? []) tensor(t as Tensor);
    for (const s of g.sparseInitializer ?? []) {
      tensor(s.values as Tensor);
      tensor(s.indices as Tensor);
    }
    for (const node of g.node ?? []) {
      for (const a of node.attribute ?? []) {
        tensor(a.t as Tensor);
        for (const t of a.tensors ?? []) tensor(t as Tensor);
        graph(a.g as Graph, depth + 1);
        for (const sg of a.graphs ?? []) graph(sg as Graph, depth + 1);
      }
    }
  };
  graph(model.graph as Graph, 0);
  for (const f of model.functions ?? []) {
    for (const node of f.node ?? []) {
      for (const a of node.attribute ?? []) {
        tensor(a.t as Tensor);
        graph(a.g as Graph, 1);
      }
    }
  }
  return found;
}

/**
 * Names of the graph's tensor inputs and outputs declared with no shape at all (any rank: `tensor_type.shape`
 * absent), which onnxruntime reports as rank 0, like a scalar.
 */
export function unknownRankTensors(model: InstanceType<typeof onnx.ModelProto>): Set<string> {
  const found = new Set<string>();
  const graph = model.graph;
  for (const info of [...(graph?.input ?? []), ...(graph?.output ?? [])]) {
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
  // The protocol's metadata gives every tensor a rank: a tensor of any rank would be advertised (and validated)
  // as a scalar.
  if (unknownRank.has(m.name)) {
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
    let model: InstanceType<typeof onnx.ModelProto>;
    try {
      model = onnx.ModelProto.decode(bytes);
    } catch (e) {
      throw new UnprocessableModelError(`the artifact is not an ONNX model: ${(e as Error).message}`);
    }
    if (!model.graph) throw new UnprocessableModelError('the artifact is not an ONNX model: it has no graph');
    const external = externalDataTensors(model);
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
    const unknownRank = unknownRankTensors(model);
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
