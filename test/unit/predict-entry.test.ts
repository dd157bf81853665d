/**
 * The predict Lambda entry built from a bad environment: it must start and answer JSON 500s (no stack trace),
 * not fail INIT.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { apiEvent, parseResult } from '../helpers/apigw';

const saved = { ...process.env };
afterEach(() => {
  process.env = { ...saved };
  vi.resetModules();
});

describe('predict Lambda entry', () => {
  it.each([
    ['MAAS_TABLE unset', {}],
    ['MAAS_BUCKET unset', { MAAS_TABLE: 't' }],
    ['MAAS_ALIAS_TTL_MS not a number', { MAAS_TABLE: 't', MAAS_BUCKET: 'b', MAAS_ALIAS_TTL_MS: 'soon' }],
    [
      'AWS_REGION outside the partitions the readers know',
      { MAAS_TABLE: 't', MAAS_BUCKET: 'b', AWS_REGION: 'us-iso-east-1' },
    ],
  ])('answers a JSON 500 when %s', async (_case, env) => {
    delete process.env.MAAS_TABLE;
    delete process.env.MAAS_BUCKET;
    for (const name of Object.keys(process.env))
      if (name.startsWith('AWS_ENDPOINT_URL')) delete process.env[name];
    Object.assign(process.env, env);
    vi.resetModules();
    const written: string[] = [];
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      written.push(String(chunk));
      return true;
    });
    try {
      const { handler } = await import('../../functions/handlers/predict');
      const r = parseResult(await handler(apiEvent('GET', '/v2/models/iris'), { awsRequestId: 'req-1' }));
      expect(r).toMatchObject({ status: 500, body: { error: 'internal error', code: 'INTERNAL' } });
      expect(JSON.stringify(r.body)).not.toMatch(/at .*\.ts/);
      // The cause is logged: a JSON line of the function's logger, naming the request.
      await vi.waitFor(
        () => {
          const lines = written.flatMap((w) => w.split('\n')).filter((l) => l.startsWith('{'));
          expect(lines.map((l) => JSON.parse(l))).toContainEqual(
            expect.objectContaining({
              level: 'ERROR',
              message: 'unhandled error',
              service: 'maas-predict',
              function_request_id: 'req-1',
            }),
          );
        },
        { timeout: 5_000 },
      );
    } finally {
      stderr.mockRestore();
    }
  });
});
