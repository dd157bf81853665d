/**
 * Register on upload (issue 6.1) and registry events (6.4) against DynamoDB Local + s3rver + onnxruntime-node:
 * duplicate, concurrent and reordered S3 deliveries register each object exactly once (Powertools idempotency
 * on the registry table); an unloadable model is one FAILED version; registry events reach EventBridge's
 * PutEvents (recorded: there is no EventBridge emulator) with source `maas` and detail-type = event type.
 */
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRegistryRepository } from '../../functions/adapters/dynamodb-registry';
import { moveAlias, rollbackAlias } from '../../functions/app/registry';
import { IDEMPOTENCY } from '../../functions/contract/events';
import { TABLE } from '../../functions/contract/table';
import type { S3RecordOutcome } from '../../functions/handlers/s3-events';
import { buildMlp } from '../../functions/local/onnx-builder';
import { createEventsTestEnv, EVENT_BUS_NAME, type EventsTestEnv, s3Event } from '../helpers/events-env';

let env: EventsTestEnv;
let repo: DynamoRegistryRepository;

beforeAll(async () => {
  env = await createEventsTestEnv();
  repo = new DynamoRegistryRepository({ doc: env.aws.doc, table: env.aws.table });
});
afterAll(async () => {
  await env?.dispose();
});

const model = (seed: number) => buildMlp({ inFeatures: 4, layers: [3], seed });

describe('register on upload', () => {
  it('registers an object delivered 10 times (sequential and concurrent) exactly once', async () => {
    const event = await env.put('incoming/iris/model.onnx', model(1));
    const sequential: S3RecordOutcome[] = [];
    for (let i = 0; i < 3; i++) sequential.push(...(await env.s3Events(event)));
    const concurrent = (await Promise.all(Array.from({ length: 7 }, () => env.s3Events(event)))).flat();

    const all = [...sequential, ...concurrent];
    expect(all).toHaveLength(10);
    for (const o of all)
      expect(o).toMatchObject({ kind: 'register', status: 'REGISTERED', name: 'iris', version: 1 });
    const versions = await repo.listVersions('iris', 100);
    expect(versions.items.map((v) => [v.version, v.status])).toEqual([[1, 'READY']]);
    expect((await repo.getModel('iris'))?.aliases).toEqual({ prod: 1 });
  });

  it('registers each of several objects once when their events arrive duplicated and out of order', async () => {
    const a = await env.put('incoming/reorder/a.onnx', model(2));
    const b = await env.put('incoming/reorder/sub/b.onnx', model(3));
    const c = await env.put('incoming/reorder/c.onnx', model(4));
    // c's event first, then interleaved duplicates, some concurrent.
    await env.s3Events(c);
    await Promise.all([env.s3Events(a), env.s3Events(c), env.s3Events(b)]);
    await Promise.all([env.s3Events(b), env.s3Events(a)]);
    await env.s3Events(c);

    const versions = (await repo.listVersions('reorder', 100)).items;
    expect(versions).toHaveLength(3);
    expect(versions.map((v) => v.version).sort()).toEqual([1, 2, 3]);
    // c was delivered first, so it is version 1; each object is one version (distinct artifacts).
    expect(new Set(versions.map((v) => v.sha256)).size).toBe(3);
    const first = await env.s3Events(c);
    expect(first[0]).toMatchObject({ status: 'REGISTERED', version: 1 });
  });

  it('keeps one idempotency record per object in the registry table, under its own partition key', async () => {
    const out = await env.aws.doc.send(
      new QueryCommand({
        TableName: env.aws.table,
        KeyConditionExpression: '#pk = :pk',
        ExpressionAttributeNames: { '#pk': TABLE.partitionKey },
        ExpressionAttributeValues: { ':pk': IDEMPOTENCY.staticPk },
      }),
    );
    const records = (out.Items ?? []).filter((i) =>
      String(i.sk).startsWith(IDEMPOTENCY.keyPrefix.registerOnUpload),
    );
    expect(records).toHaveLength(4); // iris/model, reorder a, b, c
    for (const r of records) {
      expect(r[IDEMPOTENCY.statusAttr]).toBe('COMPLETED');
      expect(r[TABLE.ttlAttribute]).toBeGreaterThan(Date.now() / 1000);
    }
  });

  it('records an unloadable model as one FAILED version with the reason, without failing the event', async () => {
    const event = await env.put('incoming/broken/model.onnx', new TextEncoder().encode('this is not onnx'));
    const outcomes = (
      await Promise.all([env.s3Events(event), env.s3Events(event), env.s3Events(event)])
    ).flat();
    expect(outcomes).toHaveLength(3);
    for (const o of outcomes) expect(o).toMatchObject({ kind: 'register', status: 'FAILED', name: 'broken' });
    const versions = (await repo.listVersions('broken', 100)).items;
    expect(versions).toHaveLength(1);
    expect(versions[0]).toMatchObject({ version: 1, status: 'FAILED' });
    expect(versions[0]?.failureReason).toMatch(/not an ONNX model/);
  });

  it('ignores keys that are not incoming/{name}/….onnx and objects that are gone', async () => {
    const other = await env.put('incoming/iris/readme.txt', 'hello');
    const bad = await env.put('incoming/Bad Name/m.onnx', model(5));
    const gone = s3Event(env.aws.bucket, 'incoming/ghost/m.onnx');
    const outcomes = [
      ...(await env.s3Events(other)),
      ...(await env.s3Events(bad)),
      ...(await env.s3Events(gone)),
    ];
    expect(outcomes.map((o) => o.kind === 'register' && o.status)).toEqual(['IGNORED', 'IGNORED', 'IGNORED']);
    expect(await repo.getModel('ghost')).toBeUndefined();
  });
});

describe('registry events on EventBridge', () => {
  it('published ModelVersionRegistered / ModelVersionFailed once per version, source maas, detail-type = type', () => {
    const registered = env.sentEvents.filter((e) => e.DetailType === 'ModelVersionRegistered');
    const failed = env.sentEvents.filter((e) => e.DetailType === 'ModelVersionFailed');
    expect(registered.map((e) => `${e.detail.name}@${e.detail.version}`).sort()).toEqual([
      'iris@1',
      'reorder@1',
      'reorder@2',
      'reorder@3',
    ]);
    expect(failed).toHaveLength(1);
    expect(failed[0]?.detail).toMatchObject({ name: 'broken', version: 1 });
    expect(String(failed[0]?.detail.reason)).toMatch(/not an ONNX model/);
    for (const e of env.sentEvents) {
      expect(e.Source).toBe('maas');
      expect(e.EventBusName).toBe(EVENT_BUS_NAME);
    }
    expect(registered[0]?.detail.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('publishes AliasMoved with the previous and the new version on moves and rollbacks', async () => {
    const registry = env.flows.registry;
    if (!registry) throw new Error('registry deps are not wired');
    const before = env.sentEvents.length;
    await moveAlias(registry, { name: 'reorder', alias: 'prod', version: 3, actor: 'test' });
    await rollbackAlias(registry, { name: 'reorder', alias: 'prod', actor: 'test' });
    const moves = env.sentEvents.slice(before).filter((e) => e.DetailType === 'AliasMoved');
    expect(moves.map((e) => e.detail)).toEqual([
      { name: 'reorder', alias: 'prod', version: 3, previousVersion: 1 },
      { name: 'reorder', alias: 'prod', version: 1, previousVersion: 3 },
    ]);
  });
});
