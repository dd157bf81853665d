/**
 * The predict path wired to the suite's emulators (DynamoDB Local + s3rver) and real onnxruntime-node, with a
 * controllable clock, plus helpers that register generated models through the registry use case.
 */
import { randomUUID } from 'node:crypto';
import { DynamoRegistryRepository } from '../../functions/adapters/dynamodb-registry';
import type { DynamoRegistryReader } from '../../functions/adapters/dynamodb-registry-reader';
import { OrtEngine } from '../../functions/adapters/ort-engine';
import { OrtModelInspector } from '../../functions/adapters/ort-inspector';
import type { S3ArtifactReader } from '../../functions/adapters/s3-artifact-reader';
import { S3ArtifactStore } from '../../functions/adapters/s3-artifact-store';
import { moveAlias, type RegisterVersionInput, registerVersion } from '../../functions/app/registry';
import { SessionCache } from '../../functions/app/session-cache';
import { S3_KEYS } from '../../functions/contract/env';
import type { ModelVersion } from '../../functions/domain/types';
import { createPredictHandler, type PredictHandlerDeps } from '../../functions/handlers/predict';
import { localPredictReaders } from '../../functions/local/compose';
import { buildModel, ElemType, type ElemTypeCode } from '../../functions/local/onnx-builder';
import { apiEvent, parseResult } from './apigw';
import { createTestAwsEnv, type TestAwsEnv } from './aws-env';

export interface PredictTestEnv {
  readonly aws: TestAwsEnv;
  /** The registry and artifact store of registration (setup). */
  readonly repo: DynamoRegistryRepository;
  readonly store: S3ArtifactStore;
  /** The predict path's reads of the same table and bucket, as the predict Lambda builds them. */
  readonly reader: DynamoRegistryReader;
  readonly artifacts: S3ArtifactReader;
  /** The predict path's session cache, over real onnxruntime-node. */
  readonly sessions: SessionCache;
  /** Milliseconds since the epoch of the injected clock; tests move it. */
  now: number;
  handler: ReturnType<typeof createPredictHandler>;
  /** Uploads `bytes` under `uploads/` and registers them as the next version of `name`. */
  register(
    name: string,
    bytes: Uint8Array,
    extra?: Omit<RegisterVersionInput, 'name' | 'sourceKey'>,
  ): Promise<ModelVersion>;
  moveAlias(name: string, alias: string, version: number): Promise<void>;
  /** Calls the handler with an APIGW v2 event; returns status, headers and the parsed JSON body. */
  call<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; headers: Record<string, string>; body: T }>;
  dispose(): Promise<void>;
}

export async function createPredictTestEnv(
  overrides: Partial<Omit<PredictHandlerDeps, 'repo' | 'store' | 'sessions' | 'clock'>> = {},
): Promise<PredictTestEnv> {
  const aws = await createTestAwsEnv('predict');
  const repo = new DynamoRegistryRepository({ doc: aws.doc, table: aws.table });
  const store = new S3ArtifactStore({ s3: aws.s3, bucket: aws.bucket });
  const { reader, artifacts } = localPredictReaders({
    endpoints: { dynamodb: aws.dynamoEndpoint, s3: aws.s3Endpoint },
    table: aws.table,
    bucket: aws.bucket,
  });
  const sessions = new SessionCache({ engine: new OrtEngine() });
  const inspector = new OrtModelInspector();
  const env: PredictTestEnv = {
    aws,
    repo,
    store,
    reader,
    artifacts,
    sessions,
    now: Date.parse('2026-01-01T00:00:00Z'),
    handler: undefined as unknown as PredictTestEnv['handler'],
    async register(name, bytes, extra = {}) {
      const sourceKey = S3_KEYS.upload(name, randomUUID());
      await store.putObject(sourceKey, bytes);
      return registerVersion({ repo, store, inspector }, { name, sourceKey, ...extra });
    },
    async moveAlias(name, alias, version) {
      await moveAlias({ repo }, { name, alias, version, actor: 'test' });
    },
    async call(method, path, body) {
      return parseResult(await env.handler(apiEvent(method, path, body === undefined ? {} : { body })));
    },
    async dispose() {
      await sessions.close();
      await aws.dispose();
    },
  };
  env.handler = createPredictHandler({
    repo: reader,
    store: artifacts,
    sessions,
    clock: { now: () => new Date(env.now) },
    aliasTtlMs: 5000,
    ...overrides,
  });
  return env;
}

/** OIP datatype -> ONNX element type. */
export const ELEM_OF = {
  BOOL: ElemType.BOOL,
  UINT8: ElemType.UINT8,
  UINT16: ElemType.UINT16,
  UINT32: ElemType.UINT32,
  UINT64: ElemType.UINT64,
  INT8: ElemType.INT8,
  INT16: ElemType.INT16,
  INT32: ElemType.INT32,
  INT64: ElemType.INT64,
  FP16: ElemType.FLOAT16,
  FP32: ElemType.FLOAT,
  FP64: ElemType.DOUBLE,
  BYTES: ElemType.STRING,
} as const satisfies Record<string, ElemTypeCode>;

/** A model with one Identity per datatype: input `x_{DT}` -> output `y_{DT}`, both `[batch, 2]`. */
export function identityAllTypes(): Uint8Array {
  const types = Object.entries(ELEM_OF);
  return buildModel({
    name: 'identity-all',
    inputs: types.map(([dt, elemType]) => ({ name: `x_${dt}`, elemType, shape: ['batch', 2] })),
    outputs: types.map(([dt, elemType]) => ({ name: `y_${dt}`, elemType, shape: ['batch', 2] })),
    nodes: types.map(([dt]) => ({ opType: 'Identity', inputs: [`x_${dt}`], outputs: [`y_${dt}`] })),
  });
}

/** Batch input lines for {@link addConstant} models: `n` requests, request `i` being x = [i, i]. */
export function addConstantRows(n: number): string {
  return Array.from(
    { length: n },
    (_, i) =>
      `${JSON.stringify({ inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP32', data: [i, i] }] })}\n`,
  ).join('');
}

/** `y = x + c` on FP32 `[batch, 2]`: versions built with different `c` answer differently. */
export function addConstant(c: number): Uint8Array {
  return buildModel({
    name: `add-${c}`,
    inputs: [{ name: 'x', elemType: ElemType.FLOAT, shape: ['batch', 2] }],
    outputs: [{ name: 'y', elemType: ElemType.FLOAT, shape: ['batch', 2] }],
    initializers: [{ name: 'c', elemType: ElemType.FLOAT, dims: [1], floats: [c] }],
    nodes: [{ opType: 'Add', inputs: ['x', 'c'], outputs: ['y'] }],
  });
}

/** `y = a + b` on FP32 with independent dynamic lengths: mismatched lengths make ORT itself fail. */
export function addTwoInputs(): Uint8Array {
  return buildModel({
    name: 'add-two',
    inputs: [
      { name: 'a', elemType: ElemType.FLOAT, shape: ['n'] },
      { name: 'b', elemType: ElemType.FLOAT, shape: ['m'] },
    ],
    outputs: [{ name: 'y', elemType: ElemType.FLOAT, shape: ['k'] }],
    nodes: [{ opType: 'Add', inputs: ['a', 'b'], outputs: ['y'] }],
  });
}
