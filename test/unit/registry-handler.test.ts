/**
 * The registry handler on the in-memory repository and a stub store: error mapping, body encodings and the
 * caller's identity.
 */
import { describe, expect, it } from 'vitest';
import { MemoryRegistryRepository } from '../../functions/adapters/memory-registry';
import type {
  AliasMove,
  AliasMoveResult,
  Model,
  ModelVersion,
  NewVersion,
  Page,
} from '../../functions/domain/types';
import { createRegistryHandler, handler } from '../../functions/handlers/registry';
import type { ArtifactStore, ModelInspector } from '../../functions/ports';
import { apiEvent, parseResult } from '../helpers/apigw';

const unused = () => {
  throw new Error('not used by this test');
};
const store: ArtifactStore = {
  bucket: 'b',
  getObject: unused,
  putObject: unused,
  headObject: unused,
  deleteObject: unused,
  presignPut: async (key: string) => `https://s3.example/${key}`,
};
const inspector: ModelInspector = { inspect: unused };

/** A READY version of `name` as the repository would be asked to create it. */
const newVersion = (name: string): NewVersion => ({
  name,
  sha256: 'a'.repeat(64),
  sizeBytes: 1,
  s3Key: `models/${name}/x.onnx`,
  signature: { inputs: [], outputs: [] },
  status: 'READY',
});

describe('registry handler (fakes)', () => {
  it('answers 503 with Retry-After when DynamoDB throttles, and a generic 500 for the unexpected', async () => {
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
    class FailingRepository extends MemoryRegistryRepository {
      override async getModel(): Promise<Model | undefined> {
        throw throttled;
      }
      override async listModels(): Promise<Page<Model>> {
        throw new Error('secret internals at line 42');
      }
    }
    const h = createRegistryHandler({ repo: new FailingRepository(), store, inspector });
    const r503 = parseResult(await h(apiEvent('GET', '/models/m')));
    expect(r503.status).toBe(503);
    expect(r503.headers['retry-after']).toBe('1');
    expect(r503.body).toEqual({ error: expect.any(String), code: 'UNAVAILABLE' });
    const r500 = parseResult(await h(apiEvent('GET', '/models')));
    expect(r500).toMatchObject({ status: 500, body: { error: 'internal error', code: 'INTERNAL' } });
    expect(JSON.stringify(r500.body)).not.toContain('secret');
  });

  it('reads base64-encoded bodies and takes the actor from JWT claims when there is no IAM principal', async () => {
    const moves: AliasMove[] = [];
    class RecordingRepository extends MemoryRegistryRepository {
      override moveAlias(m: AliasMove): Promise<AliasMoveResult> {
        moves.push(m);
        return super.moveAlias(m);
      }
    }
    const repo = new RecordingRepository();
    for (let i = 0; i < 4; i++) await repo.createVersion(newVersion('m'));
    const h = createRegistryHandler({ repo, store, inspector });
    const r = parseResult(
      await h(
        apiEvent('PUT', '/models/m/aliases/beta', {
          body: { version: 4, reason: 'why not' },
          base64: true,
          jwtClaims: { sub: 'user-7' },
        }),
      ),
    );
    expect(r).toMatchObject({
      status: 200,
      body: { alias: 'beta', version: 4, previousVersion: null, revision: 1 },
    });
    expect(moves).toEqual([{ name: 'm', alias: 'beta', version: 4, reason: 'why not', actor: 'user-7' }]);
  });

  it('returns uploads with the configured TTL and hides the storage key of versions', async () => {
    const clock = { now: () => new Date('2026-01-01T00:00:00.000Z') };
    const repo = new MemoryRegistryRepository({ clock });
    const version: ModelVersion = await repo.createVersion(newVersion('m'));
    expect(version).toMatchObject({ s3Key: 'models/m/x.onnx', createdAt: '2026-01-01T00:00:00.000Z' });
    const h = createRegistryHandler({ repo, store, inspector, uploadTtlSeconds: 60, clock });
    const up = parseResult(await h(apiEvent('POST', '/models/m/uploads', { body: { sizeBytes: 10 } })));
    expect(up.status).toBe(201);
    expect(up.body).toMatchObject({ expiresAt: '2026-01-01T00:01:00.000Z' });
    const v = parseResult(await h(apiEvent('GET', '/models/m/versions/1')));
    expect(v.body).toEqual({
      name: 'm',
      version: 1,
      status: 'READY',
      sha256: 'a'.repeat(64),
      sizeBytes: 1,
      signature: { inputs: [], outputs: [] },
      createdAt: '2026-01-01T00:00:00.000Z',
    });
  });

  it('the Lambda entry answers a JSON 500 (no stack) when its environment is not configured', async () => {
    // The premise: the module was imported without MAAS_TABLE.
    expect(process.env.MAAS_TABLE).toBeUndefined();
    const r = parseResult(await handler(apiEvent('GET', '/models')));
    expect(r).toMatchObject({ status: 500, body: { error: 'internal error', code: 'INTERNAL' } });
  });
});

describe('registry handler metrics', () => {
  it('reports one EMF document per request, by operation, with its error class and latency', async () => {
    const docs: Record<string, unknown>[] = [];
    const { EmfMetricsSink } = await import('../../functions/adapters/emf-metrics');
    const repo = new MemoryRegistryRepository();
    await repo.createVersion(newVersion('m'));
    const h = createRegistryHandler({
      repo,
      store,
      inspector,
      metrics: new EmfMetricsSink({ serviceName: 'maas-registry', output: (l) => docs.push(JSON.parse(l)) }),
    });
    expect((await h(apiEvent('GET', '/models/m'))).statusCode).toBe(200);
    expect((await h(apiEvent('GET', '/models/nope'))).statusCode).toBe(404);
    expect(docs).toHaveLength(2);
    const [ok, missing] = docs as {
      _aws: { CloudWatchMetrics: { Dimensions: string[][]; Metrics: { Name: string }[] }[] };
    }[];
    expect(ok!._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([['operation']]);
    expect(ok).toMatchObject({ operation: 'getModel', Requests: 1, ColdStart: 1, status: '200' });
    expect(ok).not.toHaveProperty('ClientErrors');
    expect(missing).toMatchObject({ operation: 'getModel', Requests: 1, ClientErrors: 1, status: '404' });
    expect(missing).not.toHaveProperty('ColdStart');
    expect(missing!._aws.CloudWatchMetrics[0]!.Metrics.map((m) => m.Name)).toEqual([
      'Requests',
      'ClientErrors',
      'Latency',
    ]);
  });
});
