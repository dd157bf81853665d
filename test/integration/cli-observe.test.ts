/**
 * `maas feedback` and `maas capture` against the local service as `maas dev` composes it (local server + DynamoDB
 * Local + s3rver): feedback lands in the bucket under the real layout, captured records written there are read back.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../functions/cli/program';
import { CAPTURE_KEYS } from '../../functions/contract/observability';
import { captureLine } from '../../functions/domain/capture';
import type { LocalServices } from '../../functions/local/compose';
import { type RunningLocalServer, startLocalServer } from '../../functions/local/server';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';
import { captureIo } from '../helpers/cli-io';
import { composeTestServices } from '../helpers/local-services';

describe('maas feedback and maas capture on the local service', () => {
  let aws: TestAwsEnv;
  let services: LocalServices;
  let server: RunningLocalServer;
  const dir = mkdtempSync(join(tmpdir(), 'maas-observe-it-'));
  const cli = async (...args: string[]) => {
    const c = captureIo();
    const code = await run(['node', 'maas', '--endpoint', server.url, ...args], c);
    return { code, stdout: c.stdout(), stderr: c.stderr() };
  };

  beforeAll(async () => {
    aws = await createTestAwsEnv('cliobs');
    services = composeTestServices(aws);
    server = await startLocalServer({ port: 0, handlers: services.handlers, actor: 'local:tester' });
  });
  afterAll(async () => {
    await server?.close();
    await services?.close();
    await aws?.dispose();
  });

  it('stores feedback from options and from a file as JSONL under feedback/{model}/yyyy/mm/dd/hh/', async () => {
    const before = new Date();
    const a = await cli('feedback', 'iris', '--id', 'req-1', '--label', 'setosa');
    expect(a).toEqual({ code: 0, stdout: '1 feedback item(s) accepted for iris\n', stderr: '' });
    writeFileSync(
      join(dir, 'items.jsonl'),
      '{"inferenceId":"req-2","value":1.5}\n{"inferenceId":"req-3","label":2}\n',
    );
    const b = await cli('feedback', 'iris', '--file', join(dir, 'items.jsonl'));
    expect(b.stdout).toBe('2 feedback item(s) accepted for iris\n');

    const listed = await aws.s3.send(
      new ListObjectsV2Command({ Bucket: aws.bucket, Prefix: 'feedback/iris/' }),
    );
    const keys = (listed.Contents ?? []).map((o) => o.Key as string);
    expect(keys).toHaveLength(2);
    for (const key of keys) {
      expect(
        key.startsWith(CAPTURE_KEYS.feedbackHour('iris', before)) ||
          key.startsWith(CAPTURE_KEYS.feedbackHour('iris', new Date())),
      ).toBe(true);
    }
    const records = (
      await Promise.all(
        keys.map(
          async (Key) =>
            (await (
              await aws.s3.send(new GetObjectCommand({ Bucket: aws.bucket, Key }))
            ).Body?.transformToString()) ?? '',
        ),
      )
    )
      .join('')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .sort((x, y) => String(x.inferenceId).localeCompare(String(y.inferenceId)));
    expect(records).toEqual([
      {
        inferenceId: 'req-1',
        label: 'setosa',
        model: 'iris',
        receivedAt: expect.any(String),
        actor: 'local:tester',
      },
      {
        inferenceId: 'req-2',
        value: 1.5,
        model: 'iris',
        receivedAt: expect.any(String),
        actor: 'local:tester',
      },
      {
        inferenceId: 'req-3',
        label: 2,
        model: 'iris',
        receivedAt: expect.any(String),
        actor: 'local:tester',
      },
    ]);
  });

  it('refuses a bad feedback item before sending anything (exit 2, the check the API makes)', async () => {
    writeFileSync(join(dir, 'bad.json'), '[{"inferenceId":"a","label":"x","value":1}]');
    const r = await cli('feedback', 'iris', '--file', join(dir, 'bad.json'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bad\.json item 0 must have exactly one of label and value/);
  });

  it('reads captured records back as a table and as JSON, filtered by version and since', async () => {
    const write = async (version: number, at: string, n: number) => {
      const line = captureLine({
        config: { samplePercent: 100, input: true, output: true },
        eventId: `e${n}`,
        inferenceId: `req-${n}`,
        at: new Date(at),
        model: 'wine',
        version,
        alias: 'prod',
        route: 'stable',
        status: 200,
        request: { text: `{"inputs":[${n}]}`, contentType: 'application/json' },
        response: { text: `{"outputs":[${n}]}`, contentType: 'application/json' },
      });
      const Key = `${CAPTURE_KEYS.captureHour('wine', version, new Date(at))}f${n}.jsonl`;
      await aws.s3.send(new PutObjectCommand({ Bucket: aws.bucket, Key, Body: `${line}\n` }));
    };
    await write(1, '2026-11-30T10:00:00.000Z', 1);
    await write(1, '2026-12-01T10:00:00.000Z', 2);
    await write(2, '2026-12-01T11:00:00.000Z', 3);

    const all = await cli('capture', 'wine');
    expect(all.code).toBe(0);
    const rows = all.stdout.trimEnd().split('\n');
    expect(rows).toHaveLength(4);
    expect(rows[1]).toMatch(
      /^2026-11-30 10:00:00.000Z\s+req-1\s+1\s+prod\s+stable\s+200\s+\{"inputs":\[1\]\}\s+\{"outputs":\[1\]\}$/,
    );

    const v1 = JSON.parse((await cli('--json', 'capture', 'wine', '--version', '1')).stdout) as {
      eventMetadata: { inferenceId: string };
    }[];
    expect(v1.map((r) => r.eventMetadata.inferenceId)).toEqual(['req-1', 'req-2']);
    const since = JSON.parse(
      (await cli('--json', 'capture', 'wine', '--since', '2026-12-01T00:00:00Z', '--limit', '1')).stdout,
    ) as {
      eventMetadata: { inferenceId: string };
    }[];
    expect(since.map((r) => r.eventMetadata.inferenceId)).toEqual(['req-2']);
  });

  it('refuses a --since the service would refuse (400 INVALID_SINCE) as a usage error naming the forms (exit 2)', async () => {
    for (const since of ['last tuesday', '1w', '2026-02-30']) {
      const r = await cli('capture', 'wine', '--since', since);
      expect(r.code, since).toBe(2);
      expect(r.stderr, since).toContain(
        '--since must be a time ago in s, m, h or d (45s, 30m, 1h, 2d) or an ISO 8601 time',
      );
    }
  });
});
