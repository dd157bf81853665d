/**
 * Runs every IEEE 754 half bit pattern (0x0000..0xffff) through the onnxruntime engine (functions/adapters/ort-engine.ts)
 * on a model with `y = Identity(x)` (FP16 in, FP16 out: the input bits handed back), `f = Cast(x, FLOAT)` (onnxruntime
 * reads them as halves) and `h = Cast(f, FLOAT16)` (FP16 onnxruntime computes into a fresh buffer), and reports what
 * came back: the datatypes, the array types of the domain tensors, and the bits and values. ort-engine-fp16.test.ts
 * runs it in its own process and, as a script (`node --import tsx test/unit/ort-fp16-roundtrip.ts`, JSON on
 * stdout), on the Node.js of the Lambda runtime, where `Float16Array` is a global.
 */
import { pathToFileURL } from 'node:url';
import { OrtEngine } from '../../functions/adapters/ort-engine';
import { buildModel, ElemType } from '../../functions/local/onnx-builder';

export interface Fp16RoundTrip {
  readonly node: string;
  readonly globalFloat16Array: boolean;
  readonly outputs: Record<
    string,
    { datatype: string; shape: number[]; array: string; values: (number | string)[] }
  >;
}

/** JSON-safe: NaN, the infinities and -0 as strings. */
const jsonNumber = (v: number): number | string =>
  Number.isNaN(v) ? 'NaN' : Object.is(v, -0) ? '-0' : Number.isFinite(v) ? v : String(v);

export async function fp16RoundTrip(): Promise<Fp16RoundTrip> {
  const model = buildModel({
    name: 'fp16-round-trip',
    inputs: [{ name: 'x', elemType: ElemType.FLOAT16, shape: ['n'] }],
    outputs: [
      { name: 'y', elemType: ElemType.FLOAT16, shape: ['n'] },
      { name: 'f', elemType: ElemType.FLOAT, shape: ['n'] },
      { name: 'h', elemType: ElemType.FLOAT16, shape: ['n'] },
    ],
    nodes: [
      { opType: 'Identity', inputs: ['x'], outputs: ['y'] },
      { opType: 'Cast', inputs: ['x'], outputs: ['f'], attributes: { to: ElemType.FLOAT } },
      { opType: 'Cast', inputs: ['f'], outputs: ['h'], attributes: { to: ElemType.FLOAT16 } },
    ],
  });
  const engine = new OrtEngine();
  const session = await engine.createSession(model);
  const bits = new Uint16Array(0x10000).map((_, i) => i);
  const out = await engine.run(session, { x: { datatype: 'FP16', shape: [bits.length], data: bits } }, [
    'y',
    'f',
    'h',
  ]);
  await engine.release(session);
  const outputs: Fp16RoundTrip['outputs'] = {};
  for (const [name, t] of Object.entries(out)) {
    outputs[name] = {
      datatype: t.datatype,
      shape: [...t.shape],
      array: t.data.constructor.name,
      values: Array.from(t.data as ArrayLike<number>, jsonNumber),
    };
  }
  return { node: process.version, globalFloat16Array: 'Float16Array' in globalThis, outputs };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(`${JSON.stringify(await fp16RoundTrip())}\n`);
}
