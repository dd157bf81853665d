/**
 * `maas derive` and the lineage in `maas versions` against the local server (DynamoDB Local + s3rver +
 * onnxruntime-node), the derive messages run by the derivation use case as the work queue's worker runs them.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OnnxModelTransformer } from '../../functions/adapters/onnx-transformer';
import { sharedOrtEngine } from '../../functions/adapters/ort-engine';
import { type DeriveDeps, runDerive } from '../../functions/app/derive';
import { run } from '../../functions/cli/program';
import { DeriveMessageSchema } from '../../functions/domain/derive';
import { createRegistryHandler } from '../../functions/handlers/registry';
import type { LocalServices } from '../../functions/local/compose';
import { buildMlp, warmUpModel } from '../../functions/local/onnx-builder';
import { type RunningLocalServer, startLocalServer } from '../../functions/local/server';
import { defaultReduceRange } from '../../functions/transforms/quantize';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';
import { captureIo } from '../helpers/cli-io';
import { composeTestServices } from '../helpers/local-services';

/** `quantize int8` as the worker applies it on this machine. */
const INT8 = `quantize int8 (${defaultReduceRange() ? 'reduced' : 'full'} range)`;

describe('maas derive on the local service', () => {
  let aws: TestAwsEnv;
  let services: LocalServices;
  let server: RunningLocalServer;
  const running: Promise<unknown>[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'maas-cli-derive-'));
  const cli = async (...args: string[]) => {
    const c = captureIo();
    const code = await run(['node', 'maas', '--endpoint', server.url, ...args], c);
    return { code, stdout: c.stdout(), stderr: c.stderr() };
  };

  beforeAll(async () => {
    aws = await createTestAwsEnv('cli-derive');
    services = composeTestServices(aws);
    const deps: DeriveDeps = {
      ...services.registry,
      transformer: new OnnxModelTransformer(),
      engine: sharedOrtEngine(),
    };
    // The work queue's worker, for derive messages.
    const registry = createRegistryHandler({
      repo: deps.repo,
      store: deps.store,
      inspector: deps.inspector,
      queue: {
        send: async (m) => {
          running.push(runDerive(deps, DeriveMessageSchema.parse(m)));
          return `m-${running.length}`;
        },
      },
    });
    server = await startLocalServer({ port: 0, handlers: { ...services.handlers, registry } });
    writeFileSync(join(dir, 'mlp.onnx'), buildMlp({ inFeatures: 16, layers: [64, 5], seed: 11 }));
    writeFileSync(join(dir, 'identity.onnx'), warmUpModel());
    const rows = Array.from({ length: 4 }, (_, i) =>
      JSON.stringify({
        inputs: [
          {
            name: 'input',
            datatype: 'FP32',
            shape: [2, 16],
            data: Array.from({ length: 32 }, (_, j) => Math.cos(i * 32 + j)),
          },
        ],
      }),
    );
    writeFileSync(join(dir, 'sample.jsonl'), `${rows.join('\n')}\n`);
  });

  afterAll(async () => {
    await Promise.allSettled(running);
    await server?.close();
    await services?.close();
    await aws?.dispose();
  });

  it('derives int8, waits for the gate and prints its figures; `maas versions` shows the lineage', {
    timeout: 60_000,
  }, async () => {
    expect((await cli('register', join(dir, 'mlp.onnx'), '--name', 'mlp')).code).toBe(0);
    const r = await cli('derive', 'mlp', '1', '--quantize', 'int8', '--wait');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('derived mlp version 2 from version 1 (READY)');
    // The range the worker gave the weights (the architecture's default) is part of the lineage.
    expect(r.stdout).toContain(`  transforms   ${INT8}\n`);
    expect(r.stdout).toMatch(
      /gate {9}passed: argmax agreement [01](\.\d+)? \(min 0\.99\) on 1000 generated rows, \d+ near-ties? left out/,
    );
    expect(r.stdout).toMatch(/output {7}output: max abs diff [\d.e-]+, max rel diff [\d.e-]+, agreement/);

    const versions = await cli('versions', 'mlp');
    expect(versions.code).toBe(0);
    const lines = versions.stdout.split('\n');
    expect(lines[0]).toMatch(/^VERSION\s+STATUS\s+SHA256\s+SIZE\s+CREATED\s+FROM\s+DESCRIPTION/);
    expect(lines[1]).toMatch(/^2\s+READY\s+[0-9a-f]{12}\s/);
    expect(lines[1]).toContain(`v1: ${INT8}`);
    expect(lines[1]).toMatch(/\)\s+derived from version 1: quantize int8\s*$/);
    expect(lines[2]).toMatch(/^1\s+READY\s.*\s-\s*$/);

    const json = JSON.parse((await cli('--json', 'versions', 'mlp')).stdout);
    expect(json.versions[0]).toMatchObject({
      version: 2,
      derivedFrom: 1,
    });
    expect(json.versions[0].transforms).toEqual([
      { quantize: 'int8', reduceRange: defaultReduceRange(), perChannel: false },
    ]);
  });

  it('uploads a sample, which the gate uses as given, with the thresholds given', {
    timeout: 60_000,
  }, async () => {
    const r = await cli(
      '--json',
      'derive',
      'mlp',
      '1',
      '--quantize',
      'int8',
      '--per-channel',
      '--no-reduce-range',
      '--sample',
      join(dir, 'sample.jsonl'),
      '--min-agreement',
      '0.5',
      '--wait',
    );
    expect(r.code, r.stderr).toBe(0);
    const v = JSON.parse(r.stdout);
    expect(v).toMatchObject({
      status: 'READY',
      transforms: [{ quantize: 'int8', perChannel: true, reduceRange: false }],
      evaluation: { rows: 8, source: 'sample', nearTiesExcluded: 0, thresholds: { minAgreement: 0.5 } },
    });
  });

  it('a derivation that fails ends FAILED: exit 1, the reason printed', { timeout: 60_000 }, async () => {
    expect((await cli('register', join(dir, 'identity.onnx'), '--name', 'ident')).code).toBe(0);
    const r = await cli('derive', 'ident', '1', '--quantize', 'int8', '--wait');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('derived ident version 2 from version 1 (FAILED)');
    expect(r.stdout).toContain(`  failed       ${INT8}: the model has no MatMul or Gemm`);
  });

  it('without --wait it answers the PENDING version; usage errors exit 2; refusals are reported', async () => {
    const pending = await cli('--json', 'derive', 'mlp', '1', '--quantize', 'int8');
    expect(pending.code).toBe(0);
    expect(JSON.parse(pending.stdout)).toMatchObject({ status: 'PENDING', derivedFrom: 1 });
    expect((await cli('derive', 'mlp', '1')).code).toBe(2);
    expect((await cli('derive', 'mlp', '1', '--quantize', 'int4')).code).toBe(2);
    expect((await cli('derive', 'mlp', '1', '--per-channel')).code).toBe(2);
    expect((await cli('derive', 'mlp', '1', '--quantize', 'int8', '--min-agreement', '2')).code).toBe(2);
    // --rows is refused here as the service would refuse it (1 to 10 000), nothing sent.
    const before = JSON.parse((await cli('--json', 'versions', 'mlp')).stdout).versions.length;
    for (const rows of ['0', '10001', '1.5', '', 'x']) {
      const bad = await cli('derive', 'mlp', '1', '--quantize', 'int8', '--rows', rows);
      expect(bad.code, rows).toBe(2);
      expect(bad.stderr).toContain(`--rows must be a whole number from 1 to 10000, got '${rows}'`);
    }
    expect(JSON.parse((await cli('--json', 'versions', 'mlp')).stdout).versions).toHaveLength(before);
    const missing = await cli('derive', 'mlp', '99', '--quantize', 'int8');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/VERSION_NOT_FOUND|not found/);
  });
});
