/**
 * Registration through the HTTP API on DynamoDB Local + s3rver + onnxruntime-node: idempotent (per uploadId or
 * Idempotency-Key, also under concurrent duplicates), and within its time budget (202 with a PENDING version that
 * the work queue's worker completes READY or FAILED, never leaving it PENDING).
 */
import type { SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRegistryRepository } from '../../functions/adapters/dynamodb-registry';
import { OrtModelInspector } from '../../functions/adapters/ort-inspector';
import { S3ArtifactStore } from '../../functions/adapters/s3-artifact-store';
import type { AsyncWorkerDeps } from '../../functions/app/async-inference';
import type { BatchScoreDeps } from '../../functions/app/batch-score';
import { S3_KEYS } from '../../functions/contract/env';
import type { WorkMessage } from '../../functions/domain/async';
import { createAsyncWorkerHandler } from '../../functions/handlers/async-worker';
import type { HttpEvent, HttpResult } from '../../functions/handlers/http';
import {
  createRegistryHandler,
  type RegistryHandlerDeps,
  registrationGuard,
} from '../../functions/handlers/registry';
import { buildMlp } from '../../functions/local/onnx-builder';
import type { ModelInspector, RegistryEvent } from '../../functions/ports';
import { type ApiEventOptions, apiEvent, parseResult } from '../helpers/apigw';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';
import { gate } from '../helpers/gate';

// biome-ignore lint/suspicious/noExplicitAny: response bodies are inspected loosely in assertions
type Json = Record<string, any>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('registration: idempotency and the time budget', () => {
  let env: TestAwsEnv;
  let deps: RegistryHandlerDeps;
  const events: RegistryEvent[] = [];
  const sent: WorkMessage[] = [];
  /** Milliseconds the inspector waits before loading a model (a slow registration). */
  let inspectDelayMs = 0;
  /** While set, the inspector waits for it before loading a model (a registration held until the test goes on). */
  let held: Promise<void> | undefined;
  /** Makes the inspector fail with a transient (non-domain) error. */
  let inspectorDown = false;
  const mlp = buildMlp({ inFeatures: 4, layers: [8, 3], softmax: true });
  const ort = new OrtModelInspector();
  const inspector: ModelInspector = {
    inspect: async (bytes) => {
      if (inspectDelayMs) await sleep(inspectDelayMs);
      if (held) await held;
      if (inspectorDown) throw new Error('onnxruntime is out of memory');
      return ort.inspect(bytes);
    },
  };

  beforeAll(async () => {
    env = await createTestAwsEnv('reg-async');
    deps = {
      repo: new DynamoRegistryRepository({ doc: env.doc, table: env.table }),
      store: new S3ArtifactStore({ s3: env.s3, bucket: env.bucket }),
      inspector,
      events: { publish: async (e) => void events.push(e) },
      guard: registrationGuard(env.doc, env.table),
      queue: {
        send: async (m) => {
          sent.push(m);
          return `m-${sent.length}`;
        },
      },
      registrationBudgetMs: 20_000,
    };
  });
  afterAll(() => env.dispose());

  const handle = (e: HttpEvent): Promise<HttpResult> => createRegistryHandler(deps)(e);
  const call = async (method: string, path: string, opts: ApiEventOptions = {}) =>
    parseResult<Json>(await handle(apiEvent(method, path, opts)));
  let uploads = 0;
  const stage = async (name: string, bytes: Uint8Array = mlp) => {
    const id = `u-${++uploads}`;
    await deps.store.putObject(S3_KEYS.upload(name, id), bytes);
    return id;
  };

  /** The worker, fed one SQS record per message (receive count as given). */
  const worker = createAsyncWorkerHandler({
    worker: {} as AsyncWorkerDeps,
    batch: {} as BatchScoreDeps,
    get registry() {
      return deps;
    },
  });
  const deliver = (message: WorkMessage, receiveCount = 1) =>
    worker(
      {
        Records: [
          {
            messageId: `id-${receiveCount}`,
            receiptHandle: 'r',
            body: JSON.stringify(message),
            attributes: { ApproximateReceiveCount: String(receiveCount) },
            messageAttributes: {},
            md5OfBody: '',
            eventSource: 'aws:sqs',
            eventSourceARN: 'arn:aws:sqs:us-east-1:1:q',
            awsRegion: 'us-east-1',
          },
        ],
      } as unknown as SQSEvent,
      { getRemainingTimeInMillis: () => 60_000 },
    );

  describe('idempotency', () => {
    it('10 concurrent identical registrations of one uploadId: one version, the same body', {
      timeout: 60_000,
    }, async () => {
      const uploadId = await stage('dup');
      const results = await Promise.all(
        Array.from({ length: 10 }, () =>
          call('POST', '/models/dup/versions', { body: { uploadId, description: 'once' } }),
        ),
      );
      expect(results.map((r) => r.status).sort(), JSON.stringify(results.map((r) => r.body))).toEqual([
        200, 200, 200, 200, 200, 200, 200, 200, 200, 201,
      ]);
      for (const r of results) expect(r.body).toEqual(results[0]?.body);
      expect(results[0]?.body).toMatchObject({ version: 1, status: 'READY', description: 'once' });
      // The key is kept on the version in DynamoDB, hashed (what a retry after an unseen write finds it by); the API
      // shows it nowhere.
      expect((await deps.repo.getVersion('dup', 1))?.registrationKey).toMatch(/^[0-9a-f]{64}$/);
      expect(results[0]?.body.registrationKey).toBeUndefined();
      const versions = await call('GET', '/models/dup/versions');
      expect(versions.body.versions[0].registrationKey).toBeUndefined();
      expect(versions.body.versions).toHaveLength(1);
      expect(
        events.filter((e) => e.type === 'ModelVersionRegistered' && e.detail.name === 'dup'),
      ).toHaveLength(1);

      // A retry later (after a lost answer) gets the same version again.
      const retry = await call('POST', '/models/dup/versions', { body: { description: 'once', uploadId } });
      expect(retry.status).toBe(200);
      expect(retry.headers['idempotent-replayed']).toBe('true');
      expect(retry.body).toEqual(results[0]?.body);
    });

    it('the same key with a different body is a 409 IDEMPOTENCY_KEY_REUSED; nothing registered', async () => {
      const uploadId = await stage('mismatch');
      expect((await call('POST', '/models/mismatch/versions', { body: { uploadId } })).status).toBe(201);
      const other = await call('POST', '/models/mismatch/versions', {
        body: { uploadId, description: 'other' },
      });
      expect(other.status).toBe(409);
      expect(other.body).toEqual({
        error: expect.stringContaining('idempotency key'),
        code: 'IDEMPOTENCY_KEY_REUSED',
      });
      expect((await call('GET', '/models/mismatch')).body.latestVersion).toBe(1);
    });

    it('an Idempotency-Key header makes s3Uri registrations idempotent; without one each registers', async () => {
      const key = 'incoming/keyed/model.onnx';
      await deps.store.putObject(key, mlp);
      const body = { s3Uri: `s3://${env.bucket}/${key}` };
      const headers = { 'Idempotency-Key': 'deploy-42' };
      const first = await call('POST', '/models/keyed/versions', { body, headers });
      const again = await call('POST', '/models/keyed/versions', { body, headers });
      expect([first.status, again.status]).toEqual([201, 200]);
      expect(again.body.version).toBe(first.body.version);
      const unkeyed = await call('POST', '/models/keyed/versions', { body });
      expect(unkeyed.body.version).toBe(2);
      const bad = await call('POST', '/models/keyed/versions', {
        body,
        headers: { 'Idempotency-Key': 'a b' },
      });
      expect(bad.body.code).toBe('INVALID_IDEMPOTENCY_KEY');
    });

    it('a keyed registration of an artifact that is not a model answers the same 422 again, one FAILED version', async () => {
      const uploadId = await stage('junk', new TextEncoder().encode('not onnx'));
      const first = await call('POST', '/models/junk/versions', { body: { uploadId } });
      const again = await call('POST', '/models/junk/versions', { body: { uploadId } });
      expect(first.status).toBe(422);
      expect(again.body).toEqual(first.body);
      expect((await call('GET', '/models/junk')).body.latestVersion).toBe(1);
    });
  });

  describe('past the budget', () => {
    beforeAll(() => {
      deps = { ...deps, registrationBudgetMs: 1_500 };
    });
    it('answers 202 with a PENDING version that the worker completes READY (prod, events), idempotently', {
      timeout: 60_000,
    }, async () => {
      // The inspection waits until the test lets it go: the answers below come while it is still held, so they
      // did not wait for it.
      const inspection = gate();
      held = inspection.opened;
      try {
        const uploadId = await stage('slow');
        const r = await call('POST', '/models/slow/versions', {
          body: { uploadId, labels: ['a', 'b', 'c'] },
        });
        expect(r.status).toBe(202);
        expect(r.body).toMatchObject({
          name: 'slow',
          version: 1,
          status: 'PENDING',
          labels: ['a', 'b', 'c'],
        });
        expect((await call('GET', '/models/slow/versions/1')).body.status).toBe('PENDING');
        expect((await call('GET', '/models/slow/versions')).body.versions).toMatchObject([
          { status: 'PENDING' },
        ]);
        expect((await call('GET', '/models/slow')).body.aliases).toEqual({});
        // A retry while it is PENDING: the same version, still 202.
        const retry = await call('POST', '/models/slow/versions', {
          body: { uploadId, labels: ['a', 'b', 'c'] },
        });
        expect(retry.status).toBe(202);
        expect(retry.body.version).toBe(1);
        inspection.open();
        held = undefined;

        const message = sent.at(-1);
        expect(message).toEqual({ type: 'register-complete', name: 'slow', version: 1 });
        expect(await deliver(message as WorkMessage)).toEqual({ batchItemFailures: [] });
        const done = await call('GET', '/models/slow/versions/1');
        expect(done.body).toMatchObject({ status: 'READY', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
        expect((await call('GET', '/models/slow')).body.aliases).toEqual({ prod: 1 });
        expect(events).toContainEqual({
          type: 'ModelVersionRegistered',
          detail: { name: 'slow', version: 1, sha256: done.body.sha256 },
        });
        // Redelivered: nothing changes.
        expect(await deliver(message as WorkMessage, 2)).toEqual({ batchItemFailures: [] });
        expect((await call('GET', '/models/slow')).body.latestVersion).toBe(1);
        // The same request again after completion: the same version, now READY.
        const after = await call('POST', '/models/slow/versions', {
          body: { uploadId, labels: ['a', 'b', 'c'] },
        });
        expect([after.status, after.body.status, after.body.version]).toEqual([200, 'READY', 1]);
      } finally {
        inspection.open();
        held = undefined;
      }
    });

    it('the worker completes an artifact that is not a model FAILED with the reason', {
      timeout: 60_000,
    }, async () => {
      inspectDelayMs = 3_000;
      try {
        const uploadId = await stage('slowjunk', new TextEncoder().encode('not onnx'));
        const r = await call('POST', '/models/slowjunk/versions', { body: { uploadId } });
        expect(r.status).toBe(202);
        await deliver(sent.at(-1) as WorkMessage);
        const v = await call('GET', '/models/slowjunk/versions/1');
        expect(v.body).toMatchObject({ status: 'FAILED', failureReason: expect.any(String) });
        expect(events).toContainEqual({
          type: 'ModelVersionFailed',
          detail: { name: 'slowjunk', version: 1, reason: v.body.failureReason },
        });
      } finally {
        inspectDelayMs = 0;
      }
    });

    it('a transient failure is retried; on the last receive the version ends FAILED, never PENDING', {
      timeout: 60_000,
    }, async () => {
      inspectDelayMs = 3_000;
      const uploadId = await stage('flaky');
      const r = await call('POST', '/models/flaky/versions', { body: { uploadId } });
      expect(r.status).toBe(202);
      inspectDelayMs = 0;
      inspectorDown = true;
      try {
        const message = sent.at(-1) as WorkMessage;
        const first = await deliver(message, 1);
        expect(first.batchItemFailures).toHaveLength(1);
        expect((await call('GET', '/models/flaky/versions/1')).body.status).toBe('PENDING');
        await deliver(message, 3);
        const v = await call('GET', '/models/flaky/versions/1');
        expect(v.body).toMatchObject({
          status: 'FAILED',
          failureReason: expect.stringContaining('after 3 attempts'),
        });
      } finally {
        inspectorDown = false;
      }
    });

    it('a PENDING version whose message cannot be queued ends FAILED and the request fails', {
      timeout: 60_000,
    }, async () => {
      inspectDelayMs = 3_000;
      const queue = deps.queue;
      deps = {
        ...deps,
        queue: {
          send: async () => {
            throw new Error('SQS is down');
          },
        },
      };
      try {
        const uploadId = await stage('unqueued');
        const r = await call('POST', '/models/unqueued/versions', { body: { uploadId } });
        expect(r.status).toBe(500);
        expect((await call('GET', '/models/unqueued/versions/1')).body).toMatchObject({
          status: 'FAILED',
          failureReason: 'the registration could not be queued',
        });
      } finally {
        inspectDelayMs = 0;
        deps = { ...deps, ...(queue ? { queue } : {}) };
      }
    });
  });
});
