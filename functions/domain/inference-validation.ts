/**
 * Checks an OIP inference request against a model version's signature before the model runs, and decodes it
 * into domain tensors. Every problem is a `BadRequestError` (400) whose message names the input and what was
 * expected. Pure.
 */
import { LIMITS } from '../contract/limits';
import { binaryFlag, INVALID_BINARY_DATA } from './binary-tensors';
import { BadRequestError } from './errors';
import { hasLoneSurrogate, shownValue } from './names';
import { nestsDeeperThan } from './nesting';
import { decodeTensor, type OipRequest } from './oip-decode';
import type { Tensor } from './tensor';
import { DATATYPES, type Datatype, type ModelSignature, type TensorSpec } from './types';

/** A signature prepared once per version so that each request only does lookups. */
export interface CompiledSignature {
  /** Human name of what is served, e.g. `model 'iris' version 3` (used in messages). */
  readonly label: string;
  readonly inputs: ReadonlyMap<string, TensorSpec>;
  readonly inputNames: readonly string[];
  /** The model's own outputs. */
  readonly modelOutputs: readonly string[];
  /** Every output a request may name: model outputs and post-processing outputs. */
  readonly knownOutputs: ReadonlySet<string>;
}

/** Prepares `signature` (plus post-processing output names) for repeated validation. */
export function compileSignature(
  signature: ModelSignature,
  label: string,
  extraOutputs: readonly string[] = [],
): CompiledSignature {
  const modelOutputs = signature.outputs.map((o) => o.name);
  return {
    label,
    inputs: new Map(signature.inputs.map((i) => [i.name, i])),
    inputNames: signature.inputs.map((i) => i.name),
    modelOutputs,
    knownOutputs: new Set([...modelOutputs, ...extraOutputs]),
  };
}

/** A request that passed validation: decoded feeds and the outputs asked for. */
export interface ValidatedRequest {
  readonly id?: string;
  readonly feeds: Record<string, Tensor>;
  /** Output names the caller selected (deduplicated, in request order); undefined = all outputs. */
  readonly outputs?: readonly string[];
}

const DATATYPE_SET: ReadonlySet<string> = new Set(DATATYPES);

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

const fmtShape = (shape: readonly number[]) => `[${shape.join(',')}]`;

function bad(message: string, code: string): never {
  throw new BadRequestError(message, code);
}

function isShape(shape: unknown): boolean {
  if (!Array.isArray(shape)) return false;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (!Number.isSafeInteger(d) || d < 0) return false;
  }
  return true;
}

/**
 * `parameters` (of the request, an input or an output) is optional, and a JSON object when given, nesting at most
 * `LIMITS.maxNesting` levels.
 */
function checkParameters(parameters: unknown, what: string): void {
  if (parameters === undefined) return;
  if (isObject(parameters)) {
    if (nestsDeeperThan(parameters, LIMITS.maxNesting))
      bad(`${what} nests deeper than ${LIMITS.maxNesting} levels`, 'INVALID_PARAMETERS');
    return;
  }
  const got =
    parameters === null ? 'null' : Array.isArray(parameters) ? 'an array' : `a ${typeof parameters}`;
  bad(`${what} must be an object, got ${got}`, 'INVALID_PARAMETERS');
}

/**
 * Parameters of OIP extensions this server does not offer (`GET /v2` lists those it does): answering as if they
 * were not there would hand the client something else than it asked, so they are a 400 `UNSUPPORTED_PARAMETER`.
 */
const UNSUPPORTED: Readonly<Record<string, string>> = {
  // Triton's classification extension (an output's top classes as "score:index:label" strings).
  classification:
    "the classification extension is not offered; a version's postprocess (topK, labels) gives the top classes",
  // Triton's shared-memory extensions: no memory is shared with a function.
  shared_memory_region: 'shared memory is not offered; send the tensor in the request (JSON or binary data)',
};

function unsupported(parameters: unknown, what: string): void {
  for (const key in parameters as Record<string, unknown>) {
    const why = Object.hasOwn(UNSUPPORTED, key) ? UNSUPPORTED[key] : undefined;
    if (why !== undefined) bad(`${what}: parameter '${key}': ${why}`, 'UNSUPPORTED_PARAMETER');
  }
}

/**
 * Whether a request's `id` can be its inference id: 1 to `LIMITS.maxInferenceIdLength` characters, well-formed
 * UTF-16 (a lone surrogate has no UTF-8 form: it could be neither a header nor a stored record).
 */
export function isInferenceId(id: string): boolean {
  if (id.length === 0 || id.length > LIMITS.maxInferenceIdLength) return false;
  // An id without surrogates (most: ASCII, Latin, CJK) needs no pattern match.
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) return !hasLoneSurrogate(id);
  }
  return true;
}

/**
 * A request's own `id` when it can be its inference id (`isInferenceId`), else undefined: what names a request even
 * when it fails before it runs (sync, async and binary requests alike).
 */
export function ownInferenceId(request: unknown): string | undefined {
  const id = (request as { id?: unknown } | null | undefined)?.id;
  return typeof id === 'string' && isInferenceId(id) ? id : undefined;
}

/**
 * Validates the top-level structure of an OIP request (no signature needed). `parameters` of the request, of an
 * input and of an output must be objects when given, and the binary tensor data flags in them (`binary_data_output`,
 * an output's `binary_data`) booleans, checked before anything runs or is queued (400 `INVALID_PARAMETERS`).
 */
export function checkRequestShape(body: unknown): OipRequest {
  if (!isObject(body)) bad('request body must be a JSON object', 'INVALID_REQUEST');
  if (body.id !== undefined && typeof body.id !== 'string') {
    bad(`'id' must be a string, got ${typeof body.id}`, 'INVALID_REQUEST');
  }
  if (typeof body.id === 'string' && !isInferenceId(body.id)) {
    bad(
      `'id' must be 1 to ${LIMITS.maxInferenceIdLength} characters of well-formed text (it is the inference id)`,
      'INVALID_REQUEST',
    );
  }
  checkParameters(body.parameters, `'parameters'`);
  binaryFlag(body.parameters, 'binary_data_output', `'parameters'`);
  const inputs = body.inputs;
  if (!Array.isArray(inputs) || inputs.length === 0) {
    bad(`'inputs' must be a non-empty array of {name, shape, datatype, data}`, 'INVALID_REQUEST');
  }
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i];
    if (!isObject(input))
      bad(`inputs[${i}] must be an object {name, shape, datatype, data}`, 'INVALID_REQUEST');
    if (typeof input.name !== 'string' || input.name === '') {
      bad(`inputs[${i}].name must be a non-empty string`, 'INVALID_REQUEST');
    }
    const name = input.name;
    if (typeof input.datatype !== 'string' || !DATATYPE_SET.has(input.datatype)) {
      bad(
        `input '${name}': datatype ${shownValue(input.datatype)} is not one of ${DATATYPES.join(', ')}`,
        'INVALID_DATATYPE',
      );
    }
    const shape = input.shape;
    if (!isShape(shape)) {
      bad(`input '${name}': shape must be an array of non-negative integers`, 'INVALID_SHAPE');
    }
    checkParameters(input.parameters, `input '${name}': 'parameters'`);
    if (input.parameters !== undefined) unsupported(input.parameters, `input '${name}'`);
    if (input.data === undefined) {
      if (isObject(input.parameters) && input.parameters.binary_data_size !== undefined) {
        bad(
          `input '${name}': binary_data_size is given, but the request carries no binary data: send the JSON header's length in bytes as Inference-Header-Content-Length, and the tensors after the header`,
          INVALID_BINARY_DATA,
        );
      }
      bad(`input '${name}': 'data' is missing`, 'INVALID_DATA');
    }
  }
  const outputs = body.outputs;
  if (outputs !== undefined) {
    if (!Array.isArray(outputs)) bad(`'outputs' must be an array of {name}`, 'INVALID_REQUEST');
    for (let i = 0; i < outputs.length; i++) {
      const o = outputs[i];
      if (!isObject(o) || typeof o.name !== 'string' || o.name === '') {
        bad(`outputs[${i}] must be an object with a non-empty 'name'`, 'INVALID_REQUEST');
      }
      checkParameters(o.parameters, `output '${o.name}': 'parameters'`);
      if (o.parameters !== undefined) {
        unsupported(o.parameters, `output '${o.name}'`);
        binaryFlag(o.parameters, 'binary_data', `output '${o.name}'`);
      }
    }
  }
  return body as unknown as OipRequest;
}

/**
 * Checks each input's `data` against the input's own datatype and shape, as `validateInferenceRequest` does last
 * (oip-decode.ts `decodeTensor`: flat or nested data, length = product(shape), element types, ranges, finiteness),
 * and discards the decoded tensors: a check that needs no model, for a request that passed `checkRequestShape`.
 * Data of binary tensor data inputs (marked decoded) only has its length checked. Linear in the data; the sync
 * route does not call it (validateInferenceRequest decodes the inputs itself). Throws BadRequestError.
 */
export function checkInputsData(req: OipRequest): void {
  const inputs = req.inputs;
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i]!;
    decodeTensor(input.name, input.datatype as Datatype, input.shape, input.data);
  }
}

/**
 * Refuses an input given twice or an output asked twice, as `validateInferenceRequest` does (DUPLICATE_INPUT,
 * DUPLICATE_OUTPUT): a check that needs no model, for a request that passed `checkRequestShape`.
 */
export function checkNamesDistinct(req: OipRequest): void {
  const inputs = req.inputs;
  for (let i = 0; i < inputs.length; i++) {
    for (let j = 0; j < i; j++) if (inputs[j]!.name === inputs[i]!.name) duplicateInput(inputs[i]!.name);
  }
  const outputs = req.outputs ?? [];
  for (let i = 0; i < outputs.length; i++) {
    for (let j = 0; j < i; j++) if (outputs[j]!.name === outputs[i]!.name) duplicateOutput(outputs[i]!.name);
  }
}

const duplicateInput = (name: string): never =>
  bad(`input '${name}' is given more than once`, 'DUPLICATE_INPUT');
const duplicateOutput = (name: string): never =>
  bad(`output '${name}' is asked more than once`, 'DUPLICATE_OUTPUT');

/** Checks one request input's datatype and shape against the model's input spec. */
function checkAgainstSpec(
  label: string,
  name: string,
  datatype: Datatype,
  shape: readonly number[],
  spec: TensorSpec,
) {
  if (datatype !== spec.datatype) {
    bad(`input '${name}' has datatype ${datatype}; ${label} expects ${spec.datatype}`, 'DATATYPE_MISMATCH');
  }
  if (shape.length !== spec.shape.length) {
    bad(
      `input '${name}' has shape ${fmtShape(shape)} (rank ${shape.length}); ${label} expects rank ${spec.shape.length} ${fmtShape(spec.shape)} (-1 = any size)`,
      'SHAPE_MISMATCH',
    );
  }
  for (let d = 0; d < shape.length; d++) {
    const want = spec.shape[d]!;
    if (want >= 0 && shape[d] !== want) {
      bad(
        `input '${name}' has shape ${fmtShape(shape)}; ${label} expects ${fmtShape(spec.shape)} (dimension ${d} must be ${want})`,
        'SHAPE_MISMATCH',
      );
    }
  }
}

/**
 * Validates `body` against the compiled signature and decodes its inputs. Checks, in order: request structure,
 * unknown/duplicate input names, datatype, rank, fixed dimensions, missing inputs, requested output names, and
 * finally each input's data (length = product(shape), element types, ranges, finiteness). `decoded[i]`, when
 * given, is input `i`'s tensor already decoded with its datatype and shape (binary tensor data:
 * `BinaryRequest.binaryInputs`), taken as it is.
 */
export function validateInferenceRequest(
  body: unknown,
  sig: CompiledSignature,
  decoded?: readonly (Tensor | undefined)[],
): ValidatedRequest {
  const req = checkRequestShape(body);
  const inputs = req.inputs;
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i]!;
    const spec = sig.inputs.get(input.name);
    if (!spec) {
      bad(
        `input '${input.name}' is not an input of ${sig.label}; expected ${sig.inputNames.map((n) => `'${n}'`).join(', ')}`,
        'UNKNOWN_INPUT',
      );
    }
    for (let j = 0; j < i; j++) {
      if (inputs[j]!.name === input.name) duplicateInput(input.name);
    }
    checkAgainstSpec(sig.label, input.name, input.datatype as Datatype, input.shape, spec);
  }
  // Every name is known and distinct, so equal counts mean nothing is missing.
  if (inputs.length !== sig.inputNames.length) {
    const missing = sig.inputNames.filter((n) => !inputs.some((input) => input.name === n));
    const specs = missing.map((n) => {
      const s = sig.inputs.get(n)!;
      return `'${n}' (${s.datatype} ${fmtShape(s.shape)})`;
    });
    bad(
      `missing input${missing.length > 1 ? 's' : ''} ${specs.join(', ')} required by ${sig.label}`,
      'MISSING_INPUT',
    );
  }
  let outputs: string[] | undefined;
  if (req.outputs !== undefined && req.outputs.length > 0) {
    outputs = [];
    for (const o of req.outputs) {
      if (!sig.knownOutputs.has(o.name)) {
        bad(
          `output '${o.name}' is not an output of ${sig.label}; expected one of ${[...sig.knownOutputs].map((n) => `'${n}'`).join(', ')}`,
          'UNKNOWN_OUTPUT',
        );
      }
      if (outputs.includes(o.name)) duplicateOutput(o.name);
      outputs.push(o.name);
    }
  }
  const feeds: Record<string, Tensor> = {};
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i]!;
    feeds[input.name] =
      decoded?.[i] ?? decodeTensor(input.name, input.datatype as Datatype, input.shape, input.data);
  }
  return { id: req.id, feeds, outputs };
}
