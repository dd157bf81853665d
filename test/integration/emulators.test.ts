import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../functions/contract/table';
import { buildMlp } from '../../functions/local/onnx-builder';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';

describe('test harness', () => {
  let env: TestAwsEnv;
  beforeAll(async () => {
    env = await createTestAwsEnv();
  });
  afterAll(() => env.dispose());

  it('round-trips an item through DynamoDB Local', async () => {
    const item = { pk: keys.modelPk('harness'), sk: keys.modelSk, latestVersion: 7 };
    await env.doc.send(new PutCommand({ TableName: env.table, Item: item }));
    const got = await env.doc.send(
      new GetCommand({ TableName: env.table, Key: { pk: item.pk, sk: item.sk } }),
    );
    expect(got.Item).toEqual(item);
  });

  it('round-trips a generated model through s3rver and runs it in onnxruntime-node', async () => {
    const bytes = buildMlp({ inFeatures: 4, layers: [8, 3], softmax: true });
    await env.s3.send(new PutObjectCommand({ Bucket: env.bucket, Key: 'm.onnx', Body: Buffer.from(bytes) }));
    const got = await env.s3.send(new GetObjectCommand({ Bucket: env.bucket, Key: 'm.onnx' }));
    const back = await got.Body!.transformToByteArray();
    expect(Buffer.from(back).equals(Buffer.from(bytes))).toBe(true);
    const session = await ort.InferenceSession.create(back);
    const out = await session.run({
      input: new ort.Tensor('float32', new Float32Array([1, 2, 3, 4]), [1, 4]),
    });
    const probs = Array.from(out.output!.data as Float32Array);
    expect(probs).toHaveLength(3);
    expect(probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  });

  it('serves the old or the new object of a key written again while it is read, never a mix (as S3 does)', async () => {
    const bodies = [Buffer.alloc(1 << 20, 'a'), Buffer.alloc(300_000, 'b'), Buffer.alloc(700_000, 'c')];
    const key = 'rewritten.bin';
    await env.s3.send(new PutObjectCommand({ Bucket: env.bucket, Key: key, Body: bodies[0] }));
    const read = async (): Promise<Buffer> => {
      const got = await env.s3.send(new GetObjectCommand({ Bucket: env.bucket, Key: key }));
      return Buffer.from(await got.Body!.transformToByteArray());
    };
    // Four readers read the key over and over while it is written 30 times, one write after the other.
    let writing = true;
    const writes = (async () => {
      for (let i = 0; i < 30; i++) {
        await env.s3.send(new PutObjectCommand({ Bucket: env.bucket, Key: key, Body: bodies[i % 3] }));
      }
    })().finally(() => {
      writing = false;
    });
    const seen: Buffer[] = [];
    const reader = async () => {
      while (writing && seen.length < 1000) seen.push(await read());
    };
    await Promise.all([writes, reader(), reader(), reader(), reader()]);
    const which = seen.map((body) => bodies.findIndex((b) => b.equals(body)));
    expect(which.filter((i) => i < 0)).toEqual([]);
    // The reads overlapped the writes: they saw more than one of the objects. The last write stays.
    expect(new Set(which).size).toBeGreaterThan(1);
    expect((await read()).equals(bodies[29 % 3]!)).toBe(true);
  });
});
