/**
 * The predict path's readers (signed GetItem/GetObject without the generated SDK clients) against the suite's
 * DynamoDB Local and s3rver: they must read exactly what the repository and the artifact store wrote. (Neither
 * emulator checks SigV4 signatures; test/unit/aws-http.test.ts checks them against an independent signer.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRegistryReader } from '../../functions/adapters/dynamodb-registry-reader';
import { S3ArtifactReader } from '../../functions/adapters/s3-artifact-reader';
import { sha256Hex } from '../../functions/app/session-cache';
import { NotFoundError } from '../../functions/domain/errors';
import { localClientOptions } from '../../functions/local/emulators';
import { buildMlp } from '../../functions/local/onnx-builder';
import { addConstant, createPredictTestEnv, type PredictTestEnv } from '../helpers/predict-env';

describe('DynamoRegistryReader', () => {
  let env: PredictTestEnv;
  beforeAll(async () => {
    env = await createPredictTestEnv();
    await env.register('reader', addConstant(1), { description: 'one', tags: { team: 'a' } });
    await env.register('reader', addConstant(2), { labels: ['a', 'b'] });
    await env.moveAlias('reader', 'staging', 2);
  });
  afterAll(() => env.dispose());

  it('reads the model, its versions and its aliases exactly as the repository does', async () => {
    expect(await env.reader.getModel('reader')).toEqual(await env.repo.getModel('reader'));
    for (const v of [1, 2]) {
      expect(await env.reader.getVersion('reader', v)).toEqual(await env.repo.getVersion('reader', v));
    }
    for (const alias of ['prod', 'staging']) {
      expect(await env.reader.getAlias('reader', alias)).toEqual(await env.repo.getAlias('reader', alias));
    }
    const staging = await env.reader.getAlias('reader', 'staging');
    expect(staging).toMatchObject({
      alias: 'staging',
      version: 2,
      target: { version: 2, labels: ['a', 'b'] },
    });
    expect((await env.reader.getModel('reader'))?.aliases).toEqual({ prod: 1, staging: 2 });
  });

  it('answers undefined for what does not exist', async () => {
    expect(await env.reader.getModel('nobody')).toBeUndefined();
    expect(await env.reader.getVersion('reader', 9)).toBeUndefined();
    expect(await env.reader.getAlias('reader', 'canary')).toBeUndefined();
  });

  it('pings a reachable table and fails on a missing one with the service error', async () => {
    await expect(env.reader.ping()).resolves.toBeUndefined();
    const missing = new DynamoRegistryReader({
      ...localClientOptions(env.aws.dynamoEndpoint),
      table: 'no-such-table',
    });
    await expect(missing.ping()).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
      $metadata: { httpStatusCode: 400 },
    });
  });
});

describe('S3ArtifactReader', () => {
  let env: PredictTestEnv;
  beforeAll(async () => {
    env = await createPredictTestEnv();
  });
  afterAll(() => env.dispose());

  it('fetches keys with characters that need encoding, with their sha256', async () => {
    const bytes = buildMlp({ inFeatures: 64, layers: [128, 4], seed: 9 });
    for (const key of ['models/plain/a.onnx', "models/we ird/+!'()*~é.onnx", 'models/deep/a/b/c=d&e.onnx']) {
      await env.store.putObject(key, bytes);
      const got = await env.artifacts.getObjectHashed(key);
      expect(Buffer.from(got.bytes).equals(Buffer.from(bytes))).toBe(true);
      expect(got.sha256).toBe(sha256Hex(bytes));
      expect(Buffer.from(await env.artifacts.getObject(key)).equals(Buffer.from(bytes))).toBe(true);
    }
  });

  it('answers ARTIFACT_NOT_FOUND for a missing key, and the service error for a missing bucket', async () => {
    const missingKey = await env.artifacts.getObjectHashed('models/plain/none.onnx').catch((e: unknown) => e);
    expect(missingKey).toBeInstanceOf(NotFoundError);
    expect(missingKey).toMatchObject({ code: 'ARTIFACT_NOT_FOUND' });
    const noBucket = new S3ArtifactReader({
      ...localClientOptions(env.aws.s3Endpoint),
      bucket: 'no-such-bucket',
    });
    const missingBucket = await noBucket.getObject('models/plain/a.onnx').catch((e: unknown) => e);
    expect(missingBucket).not.toBeInstanceOf(NotFoundError);
    expect(missingBucket).toMatchObject({ name: 'NoSuchBucket', $metadata: { httpStatusCode: 404 } });
  });
});
