/**
 * The registry HTTP handler end to end (APIGW v2 events -> handler -> DynamoDB Local + s3rver +
 * onnxruntime-node): every route, every 4xx of the error model (docs/ARCHITECTURE.md, "Errors"), pagination, archive/delete rules,
 * alias moves, rollback and history.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRegistryRepository } from '../../functions/adapters/dynamodb-registry';
import { OrtModelInspector } from '../../functions/adapters/ort-inspector';
import { S3ArtifactStore } from '../../functions/adapters/s3-artifact-store';
import { S3_KEYS } from '../../functions/contract/env';
import { LIMITS } from '../../functions/contract/limits';
import type { HttpEvent, HttpResult } from '../../functions/handlers/http';
import { createRegistryHandler, type RegistryHandlerDeps } from '../../functions/handlers/registry';
import { buildMlp, buildModel, ElemType } from '../../functions/local/onnx-builder';
import { type ApiEventOptions, apiEvent, parseResult } from '../helpers/apigw';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';

// biome-ignore lint/suspicious/noExplicitAny: response bodies are inspected loosely in assertions
type Json = Record<string, any>;

describe('registry HTTP API', () => {
  let env: TestAwsEnv;
  let deps: RegistryHandlerDeps;
  let handle: (e: HttpEvent) => Promise<HttpResult>;
  const mlp = buildMlp({ inFeatures: 4, layers: [8, 3], softmax: true });
  const ALICE = 'arn:aws:iam::123456789012:user/alice';

  beforeAll(async () => {
    env = await createTestAwsEnv('reg-http');
    deps = {
      repo: new DynamoRegistryRepository({ doc: env.doc, table: env.table }),
      store: new S3ArtifactStore({ s3: env.s3, bucket: env.bucket }),
      inspector: new OrtModelInspector(),
    };
    handle = createRegistryHandler(deps);
  });
  afterAll(() => env.dispose());

  const call = async (method: string, path: string, opts: ApiEventOptions = {}, h = handle) =>
    parseResult<Json>(await h(apiEvent(method, path, opts)));

  const expectError = (r: { status: number; body: Json }, status: number, code?: string) => {
    expect(r.status).toBe(status);
    expect(r.body).toEqual({ error: expect.any(String), code: code ?? expect.any(String) });
    expect(JSON.stringify(r.body)).not.toMatch(/\n\s+at /);
  };

  let uploads = 0;
  /** Puts bytes where an upload would land and returns the uploadId. */
  const stage = async (name: string, bytes: Uint8Array = mlp) => {
    const id = `t-${++uploads}`;
    await deps.store.putObject(S3_KEYS.upload(name, id), bytes);
    return id;
  };
  const register = async (name: string, extra: Json = {}, opts: ApiEventOptions = {}) =>
    call('POST', `/models/${name}/versions`, { body: { uploadId: await stage(name), ...extra }, ...opts });

  describe('upload and registration', () => {
    it('signs the declared sizeBytes into the upload URL (SigV4 then refuses another length); none is 400, over the limit 413', async () => {
      // Prepare
      const bytes = Buffer.from(mlp);
      // Act
      const up = await call('POST', '/models/sized/uploads', { body: { sizeBytes: bytes.length } });
      const undeclared = await call('POST', '/models/sized/uploads');
      const exact = await fetch(up.body.url, { method: 'PUT', body: bytes });
      const tooLarge = await call('POST', '/models/sized/uploads', {
        body: { sizeBytes: LIMITS.maxModelBytes + 1 },
      });
      const notANumber = await call('POST', '/models/sized/uploads', { body: { sizeBytes: '12' } });
      // Assess: content-length is one of the signed headers (the emulator does not check signatures; S3 does).
      const signed = (url: string) => new URL(url).searchParams.get('X-Amz-SignedHeaders')?.split(';');
      expect(up.status).toBe(201);
      expect(signed(up.body.url)).toContain('content-length');
      expect([undeclared.status, undeclared.body.code]).toEqual([400, 'VALIDATION_ERROR']);
      expect(undeclared.body.error).toContain('sizeBytes');
      expect(exact.status).toBe(200);
      const stored = Buffer.from(await deps.store.getObject(S3_KEYS.upload('sized', up.body.uploadId)));
      expect(stored.equals(bytes)).toBe(true);
      expect([tooLarge.status, tooLarge.body.code]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
      expect([notANumber.status, notANumber.body.code]).toEqual([400, 'VALIDATION_ERROR']);
    });

    it('presigns an upload URL that accepts a PUT, then registers from the uploadId (201)', async () => {
      const up = await call('POST', '/models/churn/uploads', { body: { sizeBytes: mlp.byteLength } });
      expect(up.status).toBe(201);
      expect(up.body).toEqual({
        uploadId: expect.any(String),
        url: expect.any(String),
        expiresAt: expect.any(String),
      });
      expect(up.body.url).toContain(`/uploads/churn/${up.body.uploadId}.onnx`);
      expect(Date.parse(up.body.expiresAt)).toBeGreaterThan(Date.now());

      const put = await fetch(up.body.url, { method: 'PUT', body: Buffer.from(mlp) });
      expect(put.status).toBe(200);

      const reg = await call('POST', '/models/churn/versions', {
        body: { uploadId: up.body.uploadId, description: 'v1', tags: { a: 'b' }, labels: ['x', 'y', 'z'] },
      });
      expect(reg.status).toBe(201);
      expect(reg.body).toMatchObject({
        name: 'churn',
        version: 1,
        status: 'READY',
        sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        sizeBytes: mlp.byteLength,
        description: 'v1',
        tags: { a: 'b' },
        labels: ['x', 'y', 'z'],
        createdBy: 'anonymous',
        signature: {
          inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }],
          outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 3] }],
        },
      });
      expect(reg.body.s3Key).toBeUndefined();
      const model = await call('GET', '/models/churn');
      expect(model.status).toBe(200);
      expect(model.body).toMatchObject({ name: 'churn', latestVersion: 1, aliases: { prod: 1 } });
    });

    it("keeps tags named like Object's members ('constructor', 'toString', 'hasOwnProperty'), as registered and patched", async () => {
      const tags = { constructor: 'x', toString: 'y', hasOwnProperty: 'z', valueOf: 'w' };
      const reg = await register('objkeys', { tags });
      expect(reg.status).toBe(201);
      expect(reg.body.tags).toEqual(tags);
      const patched = await call('PATCH', '/models/objkeys/versions/1', {
        body: { tags: { constructor: 'v' } },
      });
      expect(patched.status).toBe(200);
      expect((await call('GET', '/models/objkeys/versions/1')).body.tags).toEqual({ constructor: 'v' });
    });

    it("refuses a topK larger than the model's fixed class count (400), and takes one up to it", async () => {
      const tooWide = await register('topk-wide', { postprocess: { topK: 4 } });
      expectError(tooWide, 400, 'VALIDATION_ERROR');
      expect(tooWide.body.error).toContain('topK 4 exceeds the 3 classes');
      expect((await call('GET', '/models/topk-wide')).status).toBe(404);
      expect((await register('topk-wide', { postprocess: { topK: 3 } })).status).toBe(201);
    });

    it('registers from an s3Uri in the service bucket and records the IAM principal as actor', async () => {
      const key = 'incoming/fraud/model.onnx';
      await deps.store.putObject(key, mlp);
      const r = await call('POST', '/models/fraud/versions', {
        body: { s3Uri: `s3://${env.bucket}/${key}`, postprocess: { softmax: true, topK: 2 } },
        actor: ALICE,
      });
      expect(r.status).toBe(201);
      expect(r.body).toMatchObject({ version: 1, createdBy: ALICE, postprocess: { softmax: true, topK: 2 } });
      const h = await call('GET', '/models/fraud/aliases/prod/history');
      expect(h.body.history[0]).toMatchObject({
        alias: 'prod',
        version: 1,
        previousVersion: null,
        actor: ALICE,
      });
    });

    it('400 for an s3Uri outside the service bucket, malformed s3Uri, or both/neither source', async () => {
      expectError(
        await call('POST', '/models/fraud/versions', { body: { s3Uri: 's3://someone-else/x.onnx' } }),
        400,
        'INVALID_S3_URI',
      );
      expectError(
        await call('POST', '/models/fraud/versions', {
          body: { s3Uri: `s3://${env.bucket}/batch/j/input.jsonl` },
        }),
        400,
        'INVALID_S3_URI',
      );
      expectError(
        await call('POST', '/models/fraud/versions', { body: { s3Uri: 'http://x/y' } }),
        400,
        'INVALID_S3_URI',
      );
      expectError(
        await call('POST', '/models/fraud/versions', {
          body: { uploadId: 'a', s3Uri: `s3://${env.bucket}/k` },
        }),
        400,
        'VALIDATION_ERROR',
      );
      expectError(
        await call('POST', '/models/fraud/versions', { body: { description: 'x' } }),
        400,
        'VALIDATION_ERROR',
      );
    });

    it('400 when the upload does not exist', async () => {
      expectError(
        await call('POST', '/models/fraud/versions', { body: { uploadId: 'never-uploaded' } }),
        400,
        'ARTIFACT_NOT_FOUND',
      );
    });

    it('422 for corrupt bytes: a FAILED version with its reason, no READY version, no alias', async () => {
      const uploadId = await stage('corrupt', new TextEncoder().encode('definitely not onnx'));
      const r = await call('POST', '/models/corrupt/versions', { body: { uploadId } });
      expectError(r, 422, 'INVALID_MODEL');
      const list = await call('GET', '/models/corrupt/versions');
      expect(list.body.versions).toEqual([
        expect.objectContaining({ version: 1, status: 'FAILED', failureReason: expect.any(String) }),
      ]);
      expect((await call('GET', '/models/corrupt')).body.aliases).toEqual({});
      // A FAILED version cannot be aliased.
      expectError(
        await call('PUT', '/models/corrupt/aliases/prod', { body: { version: 1 } }),
        409,
        'VERSION_NOT_READY',
      );
    });

    it('422 for a model referencing external data', async () => {
      const bytes = buildModel({
        inputs: [{ name: 'x', elemType: ElemType.FLOAT, shape: [2] }],
        outputs: [{ name: 'y', elemType: ElemType.FLOAT, shape: [2] }],
        nodes: [{ opType: 'Add', inputs: ['x', 'W'], outputs: ['y'] }],
        initializers: [
          { name: 'W', elemType: ElemType.FLOAT, dims: [2], externalLocation: '../../etc/passwd' },
        ],
      });
      const uploadId = await stage('ext', bytes);
      const r = await call('POST', '/models/ext/versions', { body: { uploadId } });
      expectError(r, 422, 'INVALID_MODEL');
      expect(r.body.error).toMatch(/external data/);
    });

    it('422 for a model whose input declares no shape (any rank): FAILED, never advertised as a scalar', async () => {
      const bytes = buildModel({
        inputs: [{ name: 'x', elemType: ElemType.FLOAT, shape: null }],
        outputs: [{ name: 'y', elemType: ElemType.FLOAT, shape: ['n', 'm'] }],
        nodes: [{ opType: 'Identity', inputs: ['x'], outputs: ['y'] }],
      });
      const uploadId = await stage('norank', bytes);
      const r = await call('POST', '/models/norank/versions', { body: { uploadId } });
      expectError(r, 422, 'INVALID_MODEL');
      expect(r.body.error).toMatch(/input 'x' declares no shape/);
      const list = await call('GET', '/models/norank/versions');
      expect(list.body.versions).toEqual([expect.objectContaining({ version: 1, status: 'FAILED' })]);
    });

    it('400 when postprocess.output names an output the model does not have (nothing recorded)', async () => {
      const r = await register('pp', { postprocess: { output: 'nope', argmax: true } });
      expectError(r, 400, 'VALIDATION_ERROR');
      expectError(await call('GET', '/models/pp'), 404, 'MODEL_NOT_FOUND');
    });

    it('413 for an artifact over the size limit and for an oversized request body', async () => {
      const small = createRegistryHandler({ ...deps, maxModelBytes: 100, maxBodyBytes: 64 });
      const uploadId = await stage('huge');
      expectError(
        await call('POST', '/models/huge/versions', { body: { uploadId } }, small),
        413,
        'PAYLOAD_TOO_LARGE',
      );
      expectError(
        await call(
          'POST',
          '/models/huge/versions',
          { body: { uploadId, description: 'x'.repeat(100) } },
          small,
        ),
        413,
        'PAYLOAD_TOO_LARGE',
      );
      expectError(await call('GET', '/models/huge'), 404);
    });
  });

  describe('validation (400) and unknown resources (404)', () => {
    it('400 for malformed JSON, a non-object body, unknown fields and wrong types (naming the field)', async () => {
      expectError(await call('POST', '/models/m1/versions', { body: '{"uploadId":' }), 400, 'MALFORMED_JSON');
      expectError(await call('POST', '/models/m1/versions', { body: '[1,2]' }), 400, 'MALFORMED_JSON');
      expectError(await call('POST', '/models/m1/versions'), 400, 'MALFORMED_JSON');
      const unknown = await call('POST', '/models/m1/versions', { body: { uploadId: 'a', color: 'red' } });
      expectError(unknown, 400, 'VALIDATION_ERROR');
      expect(unknown.body.error).toContain('color');
      const wrongType = await call('POST', '/models/m1/versions', {
        body: { uploadId: 'a', tags: { a: 1 } },
      });
      expectError(wrongType, 400, 'VALIDATION_ERROR');
      expect(wrongType.body.error).toContain('tags.a');
      const wrongPp = await call('POST', '/models/m1/versions', {
        body: { uploadId: 'a', postprocess: { topK: 'x' } },
      });
      expect(wrongPp.body.error).toContain('postprocess.topK');
      const badAlias = await call('PUT', '/models/m1/aliases/prod', { body: { version: '2' } });
      expectError(badAlias, 400, 'VALIDATION_ERROR');
      expect(badAlias.body.error).toContain('version');
      const badUpload = await call('POST', '/models/m1/uploads', { body: { size: 3 } });
      expectError(badUpload, 400, 'VALIDATION_ERROR');
      const badUploadId = await call('POST', '/models/m1/versions', { body: { uploadId: '../../models/x' } });
      expectError(badUploadId, 400, 'VALIDATION_ERROR');
    });

    it('400 for bad model names, version numbers, alias names, limits and page tokens', async () => {
      expectError(await call('GET', '/models/Bad_Name'), 400, 'INVALID_NAME');
      expectError(await call('GET', `/models/${'a'.repeat(65)}`), 400, 'INVALID_NAME');
      expectError(await call('POST', '/models/-x/uploads'), 400, 'INVALID_NAME');
      expectError(await call('GET', '/models/churn/versions/abc'), 400, 'INVALID_VERSION');
      expectError(await call('GET', '/models/churn/versions/0'), 400, 'INVALID_VERSION');
      expectError(
        await call('PUT', '/models/churn/aliases/123', { body: { version: 1 } }),
        400,
        'INVALID_ALIAS',
      );
      expectError(
        await call('PUT', '/models/churn/aliases/Prod', { body: { version: 1 } }),
        400,
        'INVALID_ALIAS',
      );
      expectError(await call('GET', '/models', { query: { limit: '0' } }), 400, 'INVALID_LIMIT');
      expectError(await call('GET', '/models', { query: { limit: '101' } }), 400, 'INVALID_LIMIT');
      expectError(
        await call('GET', '/models/churn/versions', { query: { limit: 'ten' } }),
        400,
        'INVALID_LIMIT',
      );
      expectError(await call('GET', '/models', { query: { nextToken: 'garbage!' } }), 400, 'INVALID_TOKEN');
      expectError(
        await call('GET', '/models', { query: { nextToken: Buffer.from('{"pk":1').toString('base64url') } }),
        400,
        'INVALID_TOKEN',
      );
      // Well-formed tokens with attributes DynamoDB would refuse are a 400 too, never a 500.
      const forged = (key: object) => Buffer.from(JSON.stringify(key)).toString('base64url');
      expectError(
        await call('GET', '/models', {
          query: { nextToken: forged({ pk: 'MODEL#churn', sk: 'MODEL', gsi1pk: 'MODELS' }) },
        }),
        400,
        'INVALID_TOKEN',
      );
      expectError(
        await call('GET', '/models/churn/versions', {
          query: { nextToken: forged({ pk: 'MODEL#churn', sk: 'VERSION#000000001', extra: 'x' }) },
        }),
        400,
        'INVALID_TOKEN',
      );
      // A token of another listing is rejected too.
      const foreign = Buffer.from(JSON.stringify({ pk: 'MODEL#fraud', sk: 'VERSION#000000001' })).toString(
        'base64url',
      );
      expectError(
        await call('GET', '/models/churn/versions', { query: { nextToken: foreign } }),
        400,
        'INVALID_TOKEN',
      );
    });

    it('404 for unknown models, versions, aliases and routes', async () => {
      expectError(await call('GET', '/models/nobody'), 404, 'MODEL_NOT_FOUND');
      expectError(await call('GET', '/models/nobody/versions'), 404, 'MODEL_NOT_FOUND');
      expectError(await call('GET', '/models/nobody/versions/1'), 404, 'MODEL_NOT_FOUND');
      expectError(await call('GET', '/models/churn/versions/99'), 404, 'VERSION_NOT_FOUND');
      expectError(await call('PATCH', '/models/churn/versions/99', { body: { description: 'x' } }), 404);
      expectError(await call('DELETE', '/models/churn/versions/99'), 404, 'VERSION_NOT_FOUND');
      expectError(
        await call('PUT', '/models/churn/aliases/prod', { body: { version: 99 } }),
        404,
        'VERSION_NOT_FOUND',
      );
      expectError(
        await call('PUT', '/models/nobody/aliases/prod', { body: { version: 1 } }),
        404,
        'MODEL_NOT_FOUND',
      );
      expectError(await call('GET', '/models/churn/aliases/staging/history'), 404, 'ALIAS_NOT_FOUND');
      expectError(await call('DELETE', '/models/churn/aliases/staging'), 404, 'ALIAS_NOT_FOUND');
      expectError(await call('POST', '/models/churn/aliases/staging/rollback'), 404, 'ALIAS_NOT_FOUND');
      expectError(await call('DELETE', '/models/nobody/aliases/prod'), 404, 'MODEL_NOT_FOUND');
      expectError(await call('GET', '/nowhere'), 404, 'ROUTE_NOT_FOUND');
    });
  });

  describe('aliases', () => {
    it('moves with expectedVersion (412 on mismatch), appends history, rolls back, and removes', async () => {
      for (let i = 0; i < 3; i++) expect((await register('shop')).status).toBe(201);
      // prod -> 1 automatically; staging does not exist yet.
      expectError(
        await call('PUT', '/models/shop/aliases/staging', { body: { version: 2, expectedVersion: 1 } }),
        412,
        'PRECONDITION_FAILED',
      );
      const created = await call('PUT', '/models/shop/aliases/staging', {
        body: { version: 2, expectedVersion: 0, reason: 'try 2' },
        actor: ALICE,
      });
      expect(created).toMatchObject({
        status: 200,
        body: { alias: 'staging', version: 2, previousVersion: null, revision: 1 },
      });
      expectError(
        await call('PUT', '/models/shop/aliases/prod', { body: { version: 3, expectedVersion: 2 } }),
        412,
        'PRECONDITION_FAILED',
      );
      const moved = await call('PUT', '/models/shop/aliases/prod', {
        body: { version: 3, expectedVersion: 1, reason: 'promote 3' },
        actor: ALICE,
      });
      expect(moved.body).toEqual({ alias: 'prod', version: 3, previousVersion: 1, revision: 2 });
      // Without expectedVersion the move applies to whatever is current.
      const again = await call('PUT', '/models/shop/aliases/prod', { body: { version: 2 } });
      expect(again.body).toEqual({ alias: 'prod', version: 2, previousVersion: 3, revision: 3 });

      const history = await call('GET', '/models/shop/aliases/prod/history');
      expect(history.status).toBe(200);
      expect(history.body.history).toEqual([
        {
          alias: 'prod',
          version: 2,
          previousVersion: 3,
          at: expect.any(String),
          actor: 'anonymous',
          revision: 3,
        },
        {
          alias: 'prod',
          version: 3,
          previousVersion: 1,
          at: expect.any(String),
          actor: ALICE,
          reason: 'promote 3',
          revision: 2,
        },
        {
          alias: 'prod',
          version: 1,
          previousVersion: null,
          at: expect.any(String),
          actor: 'anonymous',
          reason: expect.any(String),
          revision: 1,
        },
      ]);
      const ats = history.body.history.map((h: Json) => h.at);
      expect([...ats].sort().reverse()).toEqual(ats);

      const rb = await call('POST', '/models/shop/aliases/prod/rollback', { body: { reason: 'bad deploy' } });
      expect(rb.body).toEqual({ alias: 'prod', version: 3, previousVersion: 2, revision: 4 });
      const latest = (await call('GET', '/models/shop/aliases/prod/history', { query: { limit: '1' } })).body;
      expect(latest.history).toEqual([
        expect.objectContaining({ version: 3, previousVersion: 2, reason: 'bad deploy' }),
      ]);
      expect(latest.nextToken).toEqual(expect.any(String));

      // staging was created by its only move: nothing to roll back to.
      expectError(await call('POST', '/models/shop/aliases/staging/rollback'), 409, 'NO_ROLLBACK_TARGET');

      const model = await call('GET', '/models/shop');
      expect(model.body).toMatchObject({ latestVersion: 3, aliases: { prod: 3, staging: 2 } });

      const removed = await call('DELETE', '/models/shop/aliases/staging', { actor: ALICE });
      expect(removed.body).toEqual({ alias: 'staging', version: null, previousVersion: 2, revision: 2 });
      expect((await call('GET', '/models/shop')).body.aliases).toEqual({ prod: 3 });
      const sh = await call('GET', '/models/shop/aliases/staging/history');
      expect(sh.body.history[0]).toMatchObject({
        alias: 'staging',
        version: null,
        previousVersion: 2,
        actor: ALICE,
      });
      // Rolling back a removal restores the alias.
      const restored = await call('POST', '/models/shop/aliases/staging/rollback');
      expect(restored.body).toMatchObject({ alias: 'staging', version: 2, previousVersion: null });
    });

    it('a rollback to a version deleted since is a 409 NO_ROLLBACK_TARGET naming it; to one archived, 409 VERSION_NOT_READY', async () => {
      for (let i = 0; i < 8; i++) expect((await register('rb-gone')).status).toBe(201);
      expect((await call('PUT', '/models/rb-gone/aliases/tmp', { body: { version: 8 } })).status).toBe(200);
      expect((await call('PUT', '/models/rb-gone/aliases/tmp', { body: { version: 5 } })).status).toBe(200);
      expect((await call('DELETE', '/models/rb-gone/versions/8')).status).toBe(204);
      const gone = await call('POST', '/models/rb-gone/aliases/tmp/rollback');
      expectError(gone, 409, 'NO_ROLLBACK_TARGET');
      expect(gone.body.error).toContain('version 8');
      expect(gone.body.error).toContain('deleted');
      // A stale precondition is answered first, as for any rollback.
      expectError(
        await call('POST', '/models/rb-gone/aliases/tmp/rollback', { body: { expectedRevision: 1 } }),
        412,
        'PRECONDITION_FAILED',
      );
      expect((await call('PUT', '/models/rb-gone/aliases/tmp', { body: { version: 6 } })).status).toBe(200);
      expect(
        (await call('PATCH', '/models/rb-gone/versions/5', { body: { status: 'ARCHIVED' } })).status,
      ).toBe(200);
      expectError(await call('POST', '/models/rb-gone/aliases/tmp/rollback'), 409, 'VERSION_NOT_READY');
      expect((await call('GET', '/models/rb-gone')).body.aliases).toMatchObject({ tmp: 6 });
    });

    it('rolls back only the alias the caller saw: expectedVersion / expectedRevision (412, nothing moved), 400 when malformed', async () => {
      for (let i = 0; i < 3; i++) expect((await register('seen')).status).toBe(201);
      // A page shows prod at 2 (revision 2), its last move from 1; another client moves it to 3 meanwhile.
      await call('PUT', '/models/seen/aliases/prod', { body: { version: 2 } });
      await call('PUT', '/models/seen/aliases/prod', { body: { version: 3, reason: 'someone else' } });
      const history = async () => (await call('GET', '/models/seen/aliases/prod/history')).body.history;
      const before = await history();
      const stale = await call('POST', '/models/seen/aliases/prod/rollback', {
        body: { expectedVersion: 2, expectedRevision: 2 },
      });
      expectError(stale, 412, 'PRECONDITION_FAILED');
      expect(stale.body.error).toContain('points at version 3');
      expectError(
        await call('POST', '/models/seen/aliases/prod/rollback', {
          body: { expectedVersion: 3, expectedRevision: 2 },
        }),
        412,
        'PRECONDITION_FAILED',
      );
      for (const body of [
        { expectedVersion: -1 },
        { expectedVersion: '3' },
        { expectedVersion: 2.5 },
        { expectedRevision: -1 },
        { expectedRevision: null },
        { expected: 3 },
      ]) {
        expectError(
          await call('POST', '/models/seen/aliases/prod/rollback', { body }),
          400,
          'VALIDATION_ERROR',
        );
      }
      expect((await call('GET', '/models/seen')).body.aliases).toEqual({ prod: 3 });
      expect(await history()).toEqual(before);
      // What the caller sees now holds: the rollback applies.
      const rb = await call('POST', '/models/seen/aliases/prod/rollback', {
        body: { expectedVersion: 3, expectedRevision: 3, reason: 'seen at 3' },
      });
      expect(rb.body).toEqual({ alias: 'prod', version: 2, previousVersion: 3, revision: 4 });
    });
  });

  describe('capture', () => {
    const INVALID_CAPTURES: [string, unknown][] = [
      ['a string', 'on'],
      ['an array', [10]],
      ['no samplePercent', { input: true }],
      ['samplePercent over 100', { samplePercent: 100.01 }],
      ['samplePercent negative', { samplePercent: -1 }],
      ['samplePercent finer than 0.01', { samplePercent: 0.005 }],
      ['samplePercent a string', { samplePercent: '10' }],
      ['input not a boolean', { samplePercent: 10, input: 'yes' }],
      ['recording nothing', { samplePercent: 10, input: false, output: false }],
      ['an unknown field', { samplePercent: 10, headers: true }],
    ];

    it('PATCH of a version sets its capture (defaults input/output), shows it, copies it to its aliases; null removes it', async () => {
      expect((await register('cap-http')).status).toBe(201);
      expect((await register('cap-http')).status).toBe(201);
      const set = await call('PATCH', '/models/cap-http/versions/1', {
        body: { capture: { samplePercent: 12.5 }, description: 'watched' },
      });
      expect(set.status).toBe(200);
      expect(set.body).toMatchObject({
        version: 1,
        description: 'watched',
        capture: { samplePercent: 12.5, input: true, output: true },
      });
      expect(set.body.s3Key).toBeUndefined();
      expect((await call('GET', '/models/cap-http/versions/1')).body.capture).toEqual(set.body.capture);
      const listed = (await call('GET', '/models/cap-http/versions')).body.versions as Json[];
      expect(listed.find((v) => v.version === 1)?.capture).toEqual(set.body.capture);
      expect(listed.find((v) => v.version === 2)?.capture).toBeUndefined();
      // The predict path reads it from the alias item: prod points at version 1.
      expect((await deps.repo.getAlias('cap-http', 'prod'))?.target?.capture).toEqual(set.body.capture);

      const removed = await call('PATCH', '/models/cap-http/versions/1', { body: { capture: null } });
      expect(removed.status).toBe(200);
      expect(removed.body).not.toHaveProperty('capture');
      expect(removed.body.description).toBe('watched');
      expect((await deps.repo.getAlias('cap-http', 'prod'))?.target?.capture).toBeUndefined();

      for (const [what, capture] of INVALID_CAPTURES) {
        const r = await call('PATCH', '/models/cap-http/versions/2', { body: { capture } });
        expect([r.status, r.body.code], what).toEqual([400, 'INVALID_CAPTURE']);
      }
      expect((await call('GET', '/models/cap-http/versions/2')).body.capture).toBeUndefined();
      expectError(
        await call('PATCH', '/models/cap-http/versions/9', { body: { capture: { samplePercent: 1 } } }),
        404,
        'VERSION_NOT_FOUND',
      );
      expectError(
        await call('PATCH', '/models/cap-nobody/versions/1', { body: { capture: null } }),
        404,
        'MODEL_NOT_FOUND',
      );
    });

    it('PATCH of an alias sets its own capture and answers the alias; null removes it; a move keeps it', async () => {
      expect((await register('cap-alias-http')).status).toBe(201);
      expect((await register('cap-alias-http')).status).toBe(201);
      const set = await call('PATCH', '/models/cap-alias-http/aliases/prod', {
        body: { capture: { samplePercent: 5, output: false } },
      });
      expect(set).toMatchObject({ status: 200 });
      expect(set.body).toEqual({
        alias: 'prod',
        version: 1,
        revision: 1,
        updatedAt: expect.any(String),
        capture: { samplePercent: 5, input: true, output: false },
      });
      // Not a move: no history entry, the version's own declaration untouched.
      expect((await call('GET', '/models/cap-alias-http/aliases/prod/history')).body.history).toHaveLength(1);
      expect((await call('GET', '/models/cap-alias-http/versions/1')).body.capture).toBeUndefined();
      await call('PATCH', '/models/cap-alias-http/versions/2', { body: { capture: { samplePercent: 100 } } });
      const moved = await call('PUT', '/models/cap-alias-http/aliases/prod', { body: { version: 2 } });
      expect(moved.body).toMatchObject({ version: 2, revision: 2 });
      const alias = await deps.repo.getAlias('cap-alias-http', 'prod');
      expect(alias?.capture).toEqual({ samplePercent: 5, input: true, output: false });
      expect(alias?.target?.capture).toEqual({ samplePercent: 100, input: true, output: true });

      const cleared = await call('PATCH', '/models/cap-alias-http/aliases/prod', { body: { capture: null } });
      expect(cleared.status).toBe(200);
      expect(cleared.body).toEqual({ alias: 'prod', version: 2, revision: 2, updatedAt: expect.any(String) });

      for (const [what, capture] of INVALID_CAPTURES) {
        const r = await call('PATCH', '/models/cap-alias-http/aliases/prod', { body: { capture } });
        expect([r.status, r.body.code], what).toEqual([400, 'INVALID_CAPTURE']);
      }
      for (const body of [{}, { capture: null, version: 1 }, { sample: 10 }]) {
        expectError(
          await call('PATCH', '/models/cap-alias-http/aliases/prod', { body }),
          400,
          'VALIDATION_ERROR',
        );
      }
      expectError(
        await call('PATCH', '/models/cap-alias-http/aliases/prod', { body: '{"capture":' }),
        400,
        'MALFORMED_JSON',
      );
      expectError(
        await call('PATCH', '/models/cap-alias-http/aliases/Prod!', { body: { capture: null } }),
        400,
      );
      expectError(
        await call('PATCH', '/models/cap-alias-http/aliases/staging', { body: { capture: null } }),
        404,
        'ALIAS_NOT_FOUND',
      );
      expectError(
        await call('PATCH', '/models/cap-nobody/aliases/prod', { body: { capture: { samplePercent: 1 } } }),
        404,
        'MODEL_NOT_FOUND',
      );
      expect((await deps.repo.getAlias('cap-alias-http', 'prod'))?.capture).toBeUndefined();
    });
  });

  describe('routing (traffic splits)', () => {
    it('PATCH of an alias sets a split (answered with routing, not the serving copies), conditionally; null clears it', async () => {
      for (let i = 0; i < 3; i++) expect((await register('split-http')).status).toBe(201);
      const set = await call('PATCH', '/models/split-http/aliases/prod', {
        body: {
          routing: { canary: { version: 3, weight: 12.5 }, keyParameter: 'user' },
          expectedRevision: 1,
        },
        actor: ALICE,
      });
      expect(set.status).toBe(200);
      expect(set.body).toEqual({
        alias: 'prod',
        version: 1,
        revision: 2,
        updatedAt: expect.any(String),
        routing: { canary: { version: 3, weight: 12.5 }, keyParameter: 'user' },
      });
      const history = (await call('GET', '/models/split-http/aliases/prod/history')).body.history;
      expect(history[0]).toEqual({
        alias: 'prod',
        version: 1,
        previousVersion: 1,
        at: set.body.updatedAt,
        actor: ALICE,
        reason: "canary v3 at 12.5% (key parameter 'user')",
        routing: { canary: { version: 3, weight: 12.5 }, keyParameter: 'user' },
        revision: 2,
      });
      expect((await call('GET', '/models/split-http')).body).toMatchObject({
        aliases: { prod: 1 },
        splits: { prod: { canary: { version: 3, weight: 12.5 }, keyParameter: 'user' } },
      });
      expect((await deps.repo.getAlias('split-http', 'prod'))?.canaryTarget).toMatchObject({ version: 3 });
      // The canary is held.
      expectError(
        await call('PATCH', '/models/split-http/versions/3', { body: { status: 'ARCHIVED' } }),
        409,
        'VERSION_ALIASED',
      );
      expectError(await call('DELETE', '/models/split-http/versions/3'), 409, 'VERSION_ALIASED');
      // Stale revision, the stable version, unknown and unknown-alias.
      const patch = (body: Json, alias = 'prod', name = 'split-http') =>
        call('PATCH', `/models/${name}/aliases/${alias}`, { body });
      expectError(
        await patch({ routing: { canary: { version: 2, weight: 1 } }, expectedRevision: 1 }),
        412,
        'PRECONDITION_FAILED',
      );
      expectError(await patch({ routing: { canary: { version: 1, weight: 1 } } }), 409, 'CANARY_IS_STABLE');
      expectError(await patch({ routing: { canary: { version: 9, weight: 1 } } }), 404, 'VERSION_NOT_FOUND');
      // A canary that takes other inputs than the stable version would fail its share of the alias's callers.
      const other = await call('POST', '/models/split-http/versions', {
        body: { uploadId: await stage('split-http', buildMlp({ inFeatures: 5, layers: [3] })) },
      });
      expect(other.status).toBe(201);
      const incompatible = await patch({ routing: { canary: { version: other.body.version, weight: 5 } } });
      expectError(incompatible, 409, 'CANARY_INCOMPATIBLE');
      expect(incompatible.body.error).toContain(
        "its input 'input' is FP32[-1,5], the stable version's FP32[-1,4]",
      );
      expectError(await patch({ routing: null }, 'staging'), 404, 'ALIAS_NOT_FOUND');
      expectError(await patch({ routing: null }, 'prod', 'split-nobody'), 404, 'MODEL_NOT_FOUND');
      // Capture and routing in one request.
      const both = await patch({
        routing: { canary: { version: 2, weight: 0 } },
        capture: { samplePercent: 1 },
      });
      expect(both.body).toMatchObject({
        revision: 3,
        routing: { canary: { version: 2, weight: 0 } },
        capture: { samplePercent: 1, input: true, output: true },
      });
      // A promotion clears the canary.
      const promoted = await call('PUT', '/models/split-http/aliases/prod', { body: { version: 2 } });
      expect(promoted.body).toMatchObject({ version: 2, previousVersion: 1, revision: 4 });
      expect((await deps.repo.getAlias('split-http', 'prod'))?.routing).toBeUndefined();
      expect((await call('GET', '/models/split-http')).body.splits).toBeUndefined();
      await patch({ routing: { canary: { version: 3, weight: 100 } } });
      const cleared = await patch({ routing: null, reason: 'done' });
      expect(cleared.status).toBe(200);
      expect(cleared.body.routing).toBeUndefined();
      expect(cleared.body.revision).toBe(6);
      expect((await call('GET', '/models/split-http/aliases/prod/history')).body.history[0]).toMatchObject({
        reason: 'done',
      });
      expect((await call('DELETE', '/models/split-http/versions/3')).status).toBe(204);
    });

    it('PATCH of a split the alias has already writes nothing: 200 with the alias as it is, 412 when stale', async () => {
      for (let i = 0; i < 3; i++) expect((await register('split-noop')).status).toBe(201);
      const patch = (body: Json) => call('PATCH', '/models/split-noop/aliases/prod', { body });
      const history = async () => (await call('GET', '/models/split-noop/aliases/prod/history')).body.history;
      const before = await history();
      // No split to clear: `{}` or null, again and again.
      for (const routing of [{}, null, null]) {
        const r = await patch({ routing });
        expect(r.status).toBe(200);
        expect(r.body).toEqual({ alias: 'prod', version: 1, revision: 1, updatedAt: before[0].at });
      }
      expect(await history()).toEqual(before);
      expectError(await patch({ routing: null, expectedRevision: 5 }), 412, 'PRECONDITION_FAILED');
      expect((await patch({ routing: null, expectedRevision: 1 })).body.revision).toBe(1);
      // `maas canary --off` twice then `maas shadow --off`: one entry for each change of the split.
      const split = { canary: { version: 2, weight: 10 }, shadow: { version: 3, percent: 20 } };
      expect((await patch({ routing: split, expectedRevision: 1 })).body.revision).toBe(2);
      expect((await patch({ routing: split })).body.revision).toBe(2);
      expect((await patch({ routing: { shadow: split.shadow } })).body.revision).toBe(3);
      expect((await patch({ routing: { shadow: split.shadow } })).body.revision).toBe(3);
      expect((await patch({ routing: null })).body.revision).toBe(4);
      expect((await patch({ routing: null })).body.revision).toBe(4);
      expect((await history()).map((h: Json) => [h.revision, h.reason])).toEqual([
        [4, 'split cleared'],
        [3, 'shadow v3 at 20%'],
        [2, 'canary v2 at 10%, shadow v3 at 20%'],
        [1, expect.any(String)],
      ]);
      expect((await call('GET', '/models/split-noop')).body.splits).toBeUndefined();
      // With a capture: the capture is set, the split left as it is.
      const both = await patch({ routing: null, capture: { samplePercent: 3 } });
      expect(both.body).toMatchObject({ revision: 4, capture: { samplePercent: 3 } });
      expect(await history()).toHaveLength(4);
    });

    it('refuses a canary or shadow without the post-processing outputs the stable version serves (409)', async () => {
      const name = 'split-post';
      const labels = ['setosa', 'versicolor', 'virginica'];
      expect((await register(name, { labels, postprocess: { argmax: true } })).status).toBe(201); // v1: prod
      expect((await register(name)).status).toBe(201); // v2: the same model, no post-processing
      expect((await register(name, { labels: ['a', 'b', 'c'], postprocess: { argmax: true } })).status).toBe(
        201,
      );
      const patch = (body: Json) => call('PATCH', `/models/${name}/aliases/prod`, { body });
      const before = await deps.repo.getAlias(name, 'prod');
      const canary = await patch({ routing: { canary: { version: 2, weight: 50 } } });
      expectError(canary, 409, 'CANARY_INCOMPATIBLE');
      expect(canary.body.error).toContain("it has no outputs 'argmax', 'label'");
      expectError(
        await patch({ routing: { shadow: { version: 2, percent: 50 } } }),
        409,
        'SHADOW_INCOMPATIBLE',
      );
      expect(await deps.repo.getAlias(name, 'prod')).toEqual(before);
      // The same post-processing (other label names) answers alike.
      expect((await patch({ routing: { canary: { version: 3, weight: 50 } } })).status).toBe(200);
    });

    it('refuses a move that would keep a canary or shadow unable to answer like the new stable version (409), writing nothing', async () => {
      const name = 'split-move';
      for (let i = 0; i < 3; i++) expect((await register(name)).status).toBe(201); // v1-v3: FP32[-1,4]
      const wide = await call('POST', `/models/${name}/versions`, {
        body: { uploadId: await stage(name, buildMlp({ inFeatures: 5, layers: [3] })) },
      });
      expect(wide.body.version).toBe(4); // FP32[-1,5]
      const patch = (body: Json) => call('PATCH', `/models/${name}/aliases/prod`, { body });
      const move = (version: number) => call('PUT', `/models/${name}/aliases/prod`, { body: { version } });
      expect((await patch({ routing: { canary: { version: 2, weight: 50 } } })).status).toBe(200);
      const before = await deps.repo.getAlias(name, 'prod');
      const canary = await move(4);
      expectError(canary, 409, 'CANARY_INCOMPATIBLE');
      expect(canary.body.error).toContain('while version 2 is its canary');
      expect(canary.body.error).toContain(`maas canary ${name} --off`);
      expect(await deps.repo.getAlias(name, 'prod')).toEqual(before);
      // The shadow likewise; a move to a version that answers alike keeps the split.
      expect((await patch({ routing: { shadow: { version: 2, percent: 20 } } })).status).toBe(200);
      expectError(await move(4), 409, 'SHADOW_INCOMPATIBLE');
      expect((await move(3)).status).toBe(200);
      expect((await deps.repo.getAlias(name, 'prod'))?.routing).toEqual({
        shadow: { version: 2, percent: 20 },
      });
      // Once the split is ended, the move goes through.
      expect((await patch({ routing: null })).status).toBe(200);
      expect((await move(4)).body).toMatchObject({ version: 4, previousVersion: 3 });
    });

    it('refuses a malformed routing with 400 INVALID_ROUTING, and stray fields with VALIDATION_ERROR', async () => {
      expect((await register('split-bad')).status).toBe(201);
      for (const routing of [
        'on',
        [1],
        { canary: { version: 2 } },
        { canary: { version: 0, weight: 1 } },
        { canary: { version: 2, weight: 101 } },
        { canary: { version: 2, weight: -1 } },
        { canary: { version: 2, weight: 0.05 } },
        { canary: { version: '2', weight: 1 } },
        { canary: null },
        { canary: { version: 2, weight: 1, extra: 1 } },
        { keyParameter: '' },
        { keyParameter: 'has space' },
        { stable: 1 },
      ]) {
        const r = await call('PATCH', '/models/split-bad/aliases/prod', { body: { routing } });
        expect([r.status, r.body.code], JSON.stringify(routing)).toEqual([400, 'INVALID_ROUTING']);
      }
      for (const body of [
        {},
        { expectedRevision: 1 },
        { capture: null, reason: 'why' },
        { routing: null, expectedRevision: -1 },
        { routing: null, weight: 1 },
      ]) {
        expectError(await call('PATCH', '/models/split-bad/aliases/prod', { body }), 400, 'VALIDATION_ERROR');
      }
      expect((await deps.repo.getAlias('split-bad', 'prod'))?.revision).toBe(1);
    });
  });

  describe('archive and delete', () => {
    it('archives READY versions only while unaliased; archived versions cannot be aliased', async () => {
      for (let i = 0; i < 2; i++) expect((await register('arch')).status).toBe(201);
      expectError(
        await call('PATCH', '/models/arch/versions/1', { body: { status: 'ARCHIVED' } }),
        409,
        'VERSION_ALIASED',
      );
      expectError(
        await call('PATCH', '/models/arch/versions/2', { body: { status: 'READY' } }),
        400,
        'VALIDATION_ERROR',
      );
      expectError(await call('PATCH', '/models/arch/versions/2', { body: {} }), 400, 'VALIDATION_ERROR');
      const patched = await call('PATCH', '/models/arch/versions/2', {
        body: { status: 'ARCHIVED', description: 'old', tags: { k: 'v' } },
      });
      expect(patched.status).toBe(200);
      expect(patched.body).toMatchObject({
        version: 2,
        status: 'ARCHIVED',
        description: 'old',
        tags: { k: 'v' },
      });
      expect((await call('GET', '/models/arch/versions/2')).body.status).toBe('ARCHIVED');
      expectError(
        await call('PUT', '/models/arch/aliases/canary', { body: { version: 2 } }),
        409,
        'VERSION_NOT_READY',
      );
      // Description and tags stay editable.
      const desc = await call('PATCH', '/models/arch/versions/1', { body: { description: 'the first' } });
      expect(desc.body).toMatchObject({ version: 1, status: 'READY', description: 'the first' });

      const failedId = await stage('arch', new Uint8Array([1, 2, 3]));
      expectError(await call('POST', '/models/arch/versions', { body: { uploadId: failedId } }), 422);
      expectError(
        await call('PATCH', '/models/arch/versions/3', { body: { status: 'ARCHIVED' } }),
        409,
        'INVALID_STATUS_CHANGE',
      );
    });

    it('deletes versions only while no alias points at them (409), then 404', async () => {
      for (let i = 0; i < 2; i++) expect((await register('del')).status).toBe(201);
      expect((await call('PUT', '/models/del/aliases/staging', { body: { version: 2 } })).status).toBe(200);
      expectError(await call('DELETE', '/models/del/versions/1'), 409, 'VERSION_ALIASED');
      expectError(await call('DELETE', '/models/del/versions/2'), 409, 'VERSION_ALIASED');
      expect((await call('PUT', '/models/del/aliases/staging', { body: { version: 1 } })).status).toBe(200);
      const del = await call('DELETE', '/models/del/versions/2');
      expect(del.status).toBe(204);
      expectError(await call('GET', '/models/del/versions/2'), 404, 'VERSION_NOT_FOUND');
      expectError(
        await call('PUT', '/models/del/aliases/prod', { body: { version: 2 } }),
        404,
        'VERSION_NOT_FOUND',
      );
      // Numbers are never reused.
      expect((await register('del')).body.version).toBe(3);
    });
  });

  describe('pagination', () => {
    it('pages through models and versions with limit and nextToken', async () => {
      const names = ['page-a', 'page-b', 'page-c', 'page-d', 'page-e'];
      for (const n of names) expect((await register(n)).status).toBe(201);
      for (let i = 0; i < 4; i++) expect((await register('page-a')).status).toBe(201);

      const seen: string[] = [];
      let token: string | undefined;
      let pages = 0;
      do {
        const r = await call('GET', '/models', {
          query: { limit: '2', ...(token ? { nextToken: token } : {}) },
        });
        expect(r.status).toBe(200);
        expect(r.body.models.length).toBeLessThanOrEqual(2);
        for (const m of r.body.models) {
          expect(m).toEqual(
            expect.objectContaining({
              name: expect.any(String),
              latestVersion: expect.any(Number),
              aliases: expect.any(Object),
            }),
          );
          seen.push(m.name);
        }
        token = r.body.nextToken;
        pages++;
      } while (token && pages < 50);
      for (const n of names) expect(seen).toContain(n);
      expect(new Set(seen).size).toBe(seen.length);
      expect(pages).toBeGreaterThanOrEqual(3);

      const versions: number[] = [];
      token = undefined;
      do {
        const r = await call('GET', '/models/page-a/versions', {
          query: { limit: '2', ...(token ? { nextToken: token } : {}) },
        });
        versions.push(...r.body.versions.map((v: Json) => v.version));
        token = r.body.nextToken;
      } while (token);
      expect(versions).toEqual([5, 4, 3, 2, 1]);
    });
  });
});
