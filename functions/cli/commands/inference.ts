/**
 * `maas predict`: one inference request, built from rows with the model's metadata when needed. Sent with binary
 * tensor data when the server announces the extension (`GET /v2`), as JSON with `--json` or when it does not.
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import {
  BINARY_TENSOR_DATA,
  decodeInferResponse,
  encodeInferRequest,
  INFERENCE_HEADER_CONTENT_LENGTH,
  type InferInput,
  type OipDatatype,
  toJsonData,
} from '../../client/oip-binary';
import { hasLoneSurrogate } from '../../domain/names';
import { DATATYPES } from '../../domain/types';
import { apiCall, MaasApiError, type MaasClient } from '../client';
import { type CliContext, EXIT } from '../context';
import { formatPrediction } from '../format';
import {
  type InputSpec,
  isInferenceRequest,
  isRecord,
  type ModelRef,
  modelPath,
  readInput,
  settleRequest,
  toInferenceRequest,
} from '../input';

/** An inference answer in its JSON form (what `formatPrediction` and `--json` print). */
export interface PredictionJson {
  model_name: string;
  model_version: string;
  id?: string;
  parameters?: Record<string, unknown>;
  outputs: { name: string; datatype: string; shape: number[]; data?: unknown[]; parameters?: unknown }[];
}

/** How one prediction travelled: binary tensor data or JSON. */
export type PredictTransport = 'binary' | 'json';

/** Whether the server announces the binary tensor data extension (`GET /v2`); a refused probe means no. */
export async function serverSpeaksBinary(client: MaasClient): Promise<boolean> {
  try {
    const meta = await client.send<{ extensions?: unknown }>(apiCall('serverMetadata', {}));
    return Array.isArray(meta?.extensions) && meta.extensions.includes(BINARY_TENSOR_DATA);
  } catch (e) {
    if (e instanceof MaasApiError) return false;
    throw e;
  }
}

/** The fixed-size datatypes a JSON request can carry (BF16 travels only as binary data). */
const FIXED = new Set<string>(DATATYPES.filter((d) => d !== 'BYTES'));
const FP32_MAX = 3.4028234663852886e38;
const FP16_LIMIT = 65520; // the first magnitude that rounds to an infinite half

/**
 * `data` flat, when it is flat with the shape's number of elements or nested exactly as `shape` (the two forms the
 * JSON path takes); undefined otherwise.
 */
function flatData(data: unknown, shape: readonly number[]): unknown[] | undefined {
  if (!Array.isArray(data)) return undefined;
  if (!data.some(Array.isArray)) return data.length === shape.reduce((n, d) => n * d, 1) ? data : undefined;
  return nestedAs(data, shape, 0) ? (data.flat(shape.length - 1) as unknown[]) : undefined;
}

/** Whether `v` nests as `shape` from `depth` down: arrays of exactly its lengths, elements that are no arrays. */
function nestedAs(v: unknown, shape: readonly number[], depth: number): boolean {
  if (depth === shape.length) return !Array.isArray(v);
  return Array.isArray(v) && v.length === shape[depth] && v.every((x) => nestedAs(x, shape, depth + 1));
}

/** Whether every element is one the JSON path takes for `datatype` (so that binary data means the same). */
function plainElementsFit(datatype: string, flat: readonly unknown[]): boolean {
  const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  switch (datatype) {
    case 'BYTES':
      // NUL and lone surrogates have no binary form the server takes: such input goes as JSON, which it refuses.
      return flat.every((v) => typeof v === 'string' && !v.includes('\u0000') && !hasLoneSurrogate(v));
    case 'BOOL':
      return flat.every((v) => typeof v === 'boolean');
    case 'FP64':
      return flat.every(isNum);
    case 'FP32':
      return flat.every((v) => isNum(v) && Math.abs(v) <= FP32_MAX);
    case 'FP16':
      return flat.every((v) => isNum(v) && Math.abs(v) < FP16_LIMIT);
    case 'INT64':
      // Range is checked by the encoder; the decimal strings are those the JSON path takes.
      return flat.every((v) => Number.isSafeInteger(v) || (typeof v === 'string' && /^-?\d{1,20}$/.test(v)));
    case 'UINT64':
      return flat.every((v) => Number.isSafeInteger(v) || (typeof v === 'string' && /^\d{1,20}$/.test(v)));
    default:
      return flat.every((v) => Number.isInteger(v));
  }
}

/**
 * An input of a JSON request as a binary input, when it can be one: a known datatype, a shape of non-negative
 * integers, `data` (flat or nested) with the shape's number of elements that the JSON path would take, no
 * `binary_data_size` already. Undefined otherwise: the input is then sent as JSON `data` as given, and the server
 * judges it as it judges a JSON request.
 */
function asBinaryInput(input: unknown): InferInput | undefined {
  if (input === null || typeof input !== 'object') return undefined;
  const { name, datatype, shape, data, parameters } = input as Record<string, unknown>;
  if (typeof name !== 'string' || typeof datatype !== 'string') return undefined;
  if (datatype !== 'BYTES' && !FIXED.has(datatype)) return undefined;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return undefined;
  if (parameters !== undefined && !isRecord(parameters)) return undefined;
  if ((parameters as Record<string, unknown> | undefined)?.binary_data_size !== undefined) return undefined;
  const flat = flatData(data, shape as number[]);
  if (!flat || !plainElementsFit(datatype, flat)) return undefined;
  return {
    name,
    datatype: datatype as OipDatatype,
    shape: shape as number[],
    data: flat as InferInput['data'],
    ...(parameters ? { parameters: parameters as Record<string, unknown> } : {}),
  };
}

/**
 * The binary form of a JSON inference request: each input that `asBinaryInput` takes (and the encoder accepts) as
 * binary data; any other input is left as JSON `data` exactly as given, for the server to judge as it judges a
 * JSON request. Every output is asked as binary data (`binary_data_output`) unless the request says itself how
 * its outputs are to come.
 */
export function binaryRequest(request: Record<string, unknown>): {
  body: Uint8Array;
  headers: Record<string, string>;
} {
  const { inputs, outputs, parameters, ...rest } = request as {
    inputs: unknown;
    outputs?: unknown;
    parameters?: Record<string, unknown>;
  };
  const data: Uint8Array[] = [];
  const headerInputs = (Array.isArray(inputs) ? inputs : []).map((input: unknown) => {
    const b = asBinaryInput(input);
    if (!b) return input;
    let bytes: Uint8Array;
    try {
      const one = encodeInferRequest({ inputs: [b] });
      bytes = one.body.subarray(one.headerLength);
    } catch {
      return input; // e.g. a 64-bit integer out of range: the server refuses it as JSON, with its own message
    }
    data.push(bytes);
    return {
      ...(input as Record<string, unknown>),
      data: undefined,
      parameters: { ...b.parameters, binary_data_size: bytes.length },
    };
  });
  const asksOwn =
    parameters?.binary_data_output !== undefined ||
    (Array.isArray(outputs) &&
      outputs.some(
        (o) =>
          (o as { parameters?: { binary_data?: unknown } } | null)?.parameters?.binary_data !== undefined,
      ));
  const head = new TextEncoder().encode(
    JSON.stringify({
      ...rest,
      // Parameters that are no object go as they are, for the server to refuse as it refuses them in JSON.
      parameters:
        asksOwn || (parameters !== undefined && !isRecord(parameters))
          ? parameters
          : { ...parameters, binary_data_output: true },
      inputs: Array.isArray(inputs) ? headerInputs : inputs,
      ...(outputs !== undefined ? { outputs } : {}),
    }),
  );
  let size = head.length;
  for (const d of data) size += d.length;
  const body = new Uint8Array(size);
  body.set(head);
  let at = head.length;
  for (const d of data) {
    body.set(d, at);
    at += d.length;
  }
  return {
    body,
    headers: {
      [INFERENCE_HEADER_CONTENT_LENGTH]: String(head.length),
      'content-type': 'application/octet-stream',
    },
  };
}

/**
 * Runs one prediction of `request` on `target`: as binary tensor data unless `json` (then, or when the server does
 * not announce the extension, as JSON). Resolves with the answer in its JSON form either way, binary outputs
 * converted back to plain arrays, and how it travelled. Refusals reject with MaasApiError.
 */
export async function predict(
  client: MaasClient,
  target: ModelRef,
  request: Record<string, unknown>,
  json = false,
): Promise<{ answer: PredictionJson; transport: PredictTransport }> {
  if (json || !(await serverSpeaksBinary(client))) {
    return {
      answer: await client.send<PredictionJson>(apiCall('modelInfer', target), request),
      transport: 'json',
    };
  }
  const { body, headers } = binaryRequest(request);
  const res = await client.sendBytes(apiCall('modelInfer', target), body, headers);
  const length = res.headers.get(INFERENCE_HEADER_CONTENT_LENGTH);
  if (length === null && res.headers.get('content-type')?.startsWith('application/octet-stream')) {
    throw new Error(
      `the answer is binary data without its ${INFERENCE_HEADER_CONTENT_LENGTH} header (a proxy may drop it): try --json`,
    );
  }
  const decoded = decodeInferResponse(res.body, length === null ? undefined : Number(length));
  const answer: PredictionJson = {
    model_name: decoded.model_name,
    model_version: decoded.model_version,
    ...(decoded.id !== undefined ? { id: decoded.id } : {}),
    ...(decoded.parameters !== undefined ? { parameters: decoded.parameters } : {}),
    outputs: decoded.outputs.map((o) => ({
      name: o.name,
      datatype: o.datatype,
      shape: o.shape,
      data: toJsonData(o),
    })),
  };
  return { answer, transport: 'binary' };
}

/** Defines `maas predict` on `program`. */
export function inferenceCommands(program: Command, ctx: CliContext): void {
  program
    .command('predict')
    .description(
      'run inference: rows for a one-input model, {"<input>": rows}, or a full OIP request; binary tensor data when the server offers it (--json: JSON both ways)',
    )
    .argument('<model>', 'name, name@version or name@alias (default alias prod)')
    .addOption(
      new Option('--input <json|@file|file|->', 'the input (- reads standard input)').makeOptionMandatory(),
    )
    .action(
      ctx.action(async (spec: string, opts: { input: string }) => {
        const target = modelPath(spec);
        const input = readInput(opts.input);
        const c = ctx.client();
        let request: Record<string, unknown>;
        if (isInferenceRequest(input)) {
          request = settleRequest(input);
        } else {
          const meta = await c.send<{ inputs: InputSpec[] }>(apiCall('modelMetadata', target));
          request = toInferenceRequest(input, meta.inputs);
        }
        const { answer } = await predict(c, target, request, Boolean(ctx.globals().json));
        ctx.print(answer, formatPrediction);
        return EXIT.ok;
      }),
    );
}
