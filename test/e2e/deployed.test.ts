/**
 * Opt-in end-to-end test against a deployed stack: `MAAS_E2E_URL=https://… npm test -- test/e2e`.
 * vitest.config.ts includes this folder only when MAAS_E2E_URL is set, so it is never counted (nor skipped)
 * in a run without it. Requests are SigV4-signed with the standard AWS credential chain.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { apiCall, MaasClient, uploadToPresignedUrl } from '../../functions/cli/client';
import { pathFor } from '../../functions/contract/routes';
import { buildIrisModel, IRIS_LABELS } from '../../functions/local/sample-model';

const endpoint = process.env.MAAS_E2E_URL;
if (!endpoint) throw new Error('MAAS_E2E_URL is not set: this suite runs only against a deployed stack');

describe('deployed stack', () => {
  const client = new MaasClient({ endpoint });
  const name = `e2e-iris-${randomUUID().slice(0, 8)}`;

  it('answers health without signing', async () => {
    const res = await fetch(`${endpoint.replace(/\/$/, '')}${pathFor('serverLive', {})}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ live: true });
  });

  it('registers a model through a presigned upload and serves it as prod', { timeout: 120_000 }, async () => {
    const model = buildIrisModel();
    const upload = await client.send<{ uploadId: string; url: string }>(apiCall('createUpload', { name }), {
      sizeBytes: model.byteLength,
    });
    await uploadToPresignedUrl(upload.url, model, () => {});
    const version = await client.send<{ version: number; status: string }>(
      apiCall('registerVersion', { name }),
      {
        uploadId: upload.uploadId,
        labels: [...IRIS_LABELS],
        postprocess: { argmax: true },
      },
    );
    expect(version).toMatchObject({ version: 1, status: 'READY' });
    const answer = await client.send<{
      model_version: string;
      outputs: { name: string; data: unknown[] }[];
    }>(apiCall('modelInfer', { name }), {
      inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] }],
    });
    expect(answer.model_version).toBe('1');
    expect(answer.outputs.find((o) => o.name === 'label')?.data).toEqual(['setosa']);
  });
});
