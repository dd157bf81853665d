/**
 * Composition root of the local service: builds the same handler objects the Lambda functions run, over
 * adapters bound to the local DynamoDB table and S3 bucket, plus the hooks that feed S3 object events to
 * the event handlers. Import it only after the environment points at the local services (handler modules
 * build their Lambda defaults from `process.env` when they are loaded).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { S3Event } from 'aws-lambda';
import { DynamoRegistryRepository } from '../adapters/dynamodb-registry';
import { sharedOrtEngine } from '../adapters/ort-engine';
import { OrtModelInspector } from '../adapters/ort-inspector';
import { S3ArtifactStore } from '../adapters/s3-artifact-store';
import { createPredictor } from '../app/predict';
import type { RegistryDeps } from '../app/registry';
import type { FunctionId } from '../contract/routes';
import { createPredictHandler } from '../handlers/predict';
import { createRegistryHandler } from '../handlers/registry';
import type { LocalHttpHandler } from './server';

export interface LocalResources {
  readonly doc: DynamoDBDocumentClient;
  readonly s3: S3Client;
  readonly table: string;
  readonly bucket: string;
}

/** Receives every S3 event record batch the local object store emits (as S3 would notify Lambda). */
export type S3EventSubscriber = (event: S3Event) => Promise<void>;

export interface LocalServices {
  /** HTTP handlers per function of the route table (a missing one answers 501). */
  readonly handlers: Partial<Record<FunctionId, LocalHttpHandler>>;
  /** Called, in order, for each S3 event of the bucket. */
  readonly s3EventSubscribers: S3EventSubscriber[];
  /** The registry use cases' dependencies (the dev command registers the sample model with them). */
  readonly registry: RegistryDeps;
  /** Stops background work (queue runners); called before the emulators stop. */
  close(): Promise<void>;
}

/** Builds every local handler over the given table and bucket. */
export function composeLocal(res: LocalResources): LocalServices {
  const repo = new DynamoRegistryRepository({ doc: res.doc, table: res.table });
  const store = new S3ArtifactStore({ s3: res.s3, bucket: res.bucket });
  const registry: RegistryDeps = { repo, store, inspector: new OrtModelInspector() };
  const engine = sharedOrtEngine({ threads: 1 });
  const predictor = createPredictor({ repo, store, engine });
  const closers: (() => Promise<void>)[] = [];
  return {
    handlers: {
      registry: createRegistryHandler(registry),
      predict: createPredictHandler({ repo, store, engine, predictor }),
    },
    s3EventSubscribers: [],
    registry,
    async close() {
      for (const close of closers.reverse()) await close().catch(() => {});
    },
  };
}
