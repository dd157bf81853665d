/**
 * The `maas` CLI against the real handlers (local server + DynamoDB Local + s3rver + onnxruntime-node):
 * presigned upload and registration, labels and post-processing, the refusals it reports, and predict input forms.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../functions/cli/program';
import { type LocalServices, localPredictReaders } from '../../functions/local/compose';
import { buildMlp } from '../../functions/local/onnx-builder';
import { buildIrisModel } from '../../functions/local/sample-model';
import { type RunningLocalServer, startLocalServer } from '../../functions/local/server';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';
import { captureIo } from '../helpers/cli-io';
import { composeTestServices } from '../helpers/local-services';

describe('maas CLI on the local service', () => {
  let aws: TestAwsEnv;
  let services: LocalServices;
  let server: RunningLocalServer;
  const dir = mkdtempSync(join(tmpdir(), 'maas-cli-it-'));
  const cli = async (...args: string[]) => {
    const c = captureIo();
    const code = await run(['node', 'maas', '--endpoint', server.url, ...args], c);
    return { code, stdout: c.stdout(), stderr: c.stderr() };
  };

  beforeAll(async () => {
    aws = await createTestAwsEnv('cli');
    services = composeTestServices(aws);
    server = await startLocalServer({ port: 0, handlers: services.handlers });
    writeFileSync(join(dir, 'iris.onnx'), buildIrisModel());
    writeFileSync(
      join(dir, 'mlp.onnx'),
      buildMlp({
        inFeatures: 4,
        layers: [6, 3],
        inputName: 'features',
        outputName: 'probabilities',
        seed: 3,
      }),
    );
    writeFileSync(join(dir, 'labels.txt'), 'setosa\nversicolor\nvirginica\n');
    writeFileSync(join(dir, 'not-a-model.onnx'), 'definitely not protobuf');
    writeFileSync(join(dir, 'rows.json'), '[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]');
  });

  afterAll(async () => {
    await server?.close();
    await services?.close();
    await aws?.dispose();
  });

  it('registers a model through a presigned upload, with labels from a file and post-processing', async () => {
    const r = await cli(
      'register',
      join(dir, 'iris.onnx'),
      '--name',
      'flowers',
      '--labels-file',
      join(dir, 'labels.txt'),
      '--postprocess',
      '{"argmax":true}',
      '--description',
      'first',
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('registered flowers version 1 (READY)');
    expect(r.stdout).toContain('features:FP32[-1,4] -> probabilities:FP32[-1,3]');
    const v = await cli('--json', 'versions', 'flowers');
    const [first] = JSON.parse(v.stdout).versions;
    expect(first).toMatchObject({
      version: 1,
      status: 'READY',
      labels: ['setosa', 'versicolor', 'virginica'],
      postprocess: { argmax: true },
      description: 'first',
    });
  });

  it('predicts from rows in a file and from inline JSON, by alias and by version', async () => {
    const byFile = await cli('--json', 'predict', 'flowers', '--input', `@${join(dir, 'rows.json')}`);
    expect(byFile.code).toBe(0);
    const answer = JSON.parse(byFile.stdout);
    expect(answer.model_version).toBe('1');
    expect(answer.outputs.find((o: { name: string }) => o.name === 'label').data).toEqual([
      'setosa',
      'virginica',
    ]);
    const inline = await cli('predict', 'flowers@1', '--input', '{"features":[[6.4,3.2,4.5,1.5]]}');
    expect(inline.code).toBe(0);
    expect(inline.stdout).toContain('label BYTES[1]  ["versicolor"]');
  });

  it('reports the server refusing a file that is not a model (exit 1, 422)', async () => {
    const r = await cli('register', join(dir, 'not-a-model.onnx'), '--name', 'flowers');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/422 INVALID_MODEL/);
    // the attempt is recorded as a FAILED version, which cannot be promoted
    const v = await cli('--json', 'versions', 'flowers');
    expect(JSON.parse(v.stdout).versions[0]).toMatchObject({ version: 2, status: 'FAILED' });
    const p = await cli('promote', 'flowers', '2');
    expect(p.code).toBe(1);
    expect(p.stderr).toMatch(/409/);
  });

  it('reports invalid post-processing from the server (exit 1, 400) and malformed JSON locally (exit 2)', async () => {
    const bad = await cli(
      'register',
      join(dir, 'mlp.onnx'),
      '--name',
      'flowers',
      '--postprocess',
      '{"topK":0}',
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/\(400 /);
    const malformed = await cli(
      'register',
      join(dir, 'mlp.onnx'),
      '--name',
      'flowers',
      '--postprocess',
      '{topK',
    );
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain('--postprocess is not valid JSON');
  });

  it('promotes with --expect, rolls back and shows the history', async () => {
    const reg = await cli('register', join(dir, 'mlp.onnx'), '--name', 'flowers', '--labels', 'a,b,c');
    expect(reg.code).toBe(0);
    expect(reg.stdout).toContain('registered flowers version 3 (READY)');
    expect((await cli('promote', 'flowers', '3', '--expect', '2')).code).toBe(1);
    const p = await cli('promote', 'flowers', '3', '--expect', '1', '--reason', 'mlp');
    expect(p.code).toBe(0);
    expect(p.stdout).toContain('flowers@prod: version 1 -> version 3');
    const staging = await cli('--json', 'promote', 'flowers', '1', '--alias', 'staging');
    expect(JSON.parse(staging.stdout)).toMatchObject({ alias: 'staging', version: 1, previousVersion: null });
    // Conditional on where the caller saw prod (and its revision): 412, exit 1, nothing moved.
    const stale = await cli('rollback', 'flowers', '--expect', '1');
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain(
      "alias 'prod' of model 'flowers' points at version 3 (its latest move), not 1",
    );
    expect((await cli('rollback', 'flowers', '--expect', '3', '--expect-revision', '1')).stderr).toMatch(
      /412/,
    );
    const rb = await cli('rollback', 'flowers', '--expect', '3', '--expect-revision', '2');
    expect(rb.code).toBe(0);
    expect(rb.stdout).toContain('flowers@prod: version 3 -> version 1');
    const h = await cli('history', 'flowers');
    expect(h.stdout.split('\n')[0]).toMatch(/^AT\s+ALIAS\s+FROM\s+TO\s+ACTOR\s+REASON$/);
    expect(h.stdout).toMatch(/prod\s+1\s+3\s+\S+\s+mlp/);
    // One move a page, newest first: the rollback, then (its token given) the promotion.
    const first = await cli('history', 'flowers', '--limit', '1');
    expect(first.stdout).toMatch(/prod\s+3\s+1\s+/);
    expect(first.stdout).not.toMatch(/mlp/);
    const token = /\(more: --next-token (\S+)\)/.exec(first.stdout)?.[1];
    expect(token).toBeDefined();
    const second = await cli('history', 'flowers', '--limit', '1', '--next-token', token ?? '');
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/prod\s+1\s+3\s+\S+\s+mlp/);
    const models = await cli('models');
    expect(models.stdout).toMatch(/flowers\s+3\s+prod=1 staging=1/);
  });

  it('declares capture for an alias and for a version, shows it, and removes it', async () => {
    const alias = await cli('capture-config', 'flowers', '--alias', 'prod', '--sample', '10', '--no-output');
    expect(alias.code).toBe(0);
    expect(alias.stdout).toContain('flowers@prod: capture 10% of requests (input)');
    const version = await cli('--json', 'capture-config', 'flowers', '--version=1', '--sample', '0.5');
    expect(version.code).toBe(0);
    expect(JSON.parse(version.stdout)).toMatchObject({
      name: 'flowers',
      version: 1,
      capture: { samplePercent: 0.5, input: true, output: true },
    });
    // prod points at version 1: the predict path's one read of its item gives both declarations, the alias's
    // own and the version's.
    const { reader } = localPredictReaders({
      endpoints: { dynamodb: aws.dynamoEndpoint, s3: aws.s3Endpoint },
      table: aws.table,
      bucket: aws.bucket,
    });
    const prod = await reader.getAlias('flowers', 'prod');
    expect(prod?.capture).toEqual({ samplePercent: 10, input: true, output: false });
    expect(prod?.target?.capture).toEqual({ samplePercent: 0.5, input: true, output: true });
    const off = await cli('capture-config', 'flowers', '--alias', 'prod', '--off');
    expect(off.code).toBe(0);
    expect(off.stdout).toContain('flowers@prod: capture off');
    const refused = await cli('capture-config', 'flowers', '--alias', 'prod', '--sample', '0.001');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('400 INVALID_CAPTURE');
    const missing = await cli('capture-config', 'flowers', '--alias', 'nightly', '--off');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('404 ALIAS_NOT_FOUND');
  });

  it('reports an unknown model (exit 1, 404)', async () => {
    const r = await cli('predict', 'nothing-here', '--input', '[[1,2,3,4]]');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/404/);
  });
});

describe('maas register when the registration continues in the background (202, PENDING)', () => {
  let aws: TestAwsEnv;
  let services: LocalServices;
  let server: RunningLocalServer;
  const dir = mkdtempSync(join(tmpdir(), 'maas-cli-pending-'));
  const cli = async (...args: string[]) => {
    const c = captureIo();
    const code = await run(['node', 'maas', '--endpoint', server.url, ...args], c);
    return { code, stdout: c.stdout(), stderr: c.stderr() };
  };

  beforeAll(async () => {
    aws = await createTestAwsEnv('cli-pending');
    // No synchronous budget: every registration is answered 202 and completed by the in-process queue's worker.
    services = composeTestServices(aws, { registrationBudgetMs: 0 });
    server = await startLocalServer({ port: 0, handlers: services.handlers });
    writeFileSync(join(dir, 'iris.onnx'), buildIrisModel());
    writeFileSync(join(dir, 'not-a-model.onnx'), 'definitely not protobuf');
  });

  afterAll(async () => {
    await server?.close();
    await services?.close();
    await aws?.dispose();
  });

  it('waits for the version and prints what a synchronous registration prints', {
    timeout: 60_000,
  }, async () => {
    const r = await cli('register', join(dir, 'iris.onnx'), '--name', 'later', '--timeout', '30');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('registered later version 1 (READY)');
    expect(r.stdout).toMatch(/sha256\s+[0-9a-f]{64}/);
    const m = await cli('--json', 'models');
    expect(JSON.parse(m.stdout).models).toContainEqual(
      expect.objectContaining({ name: 'later', aliases: { prod: 1 } }),
    );
  });

  it('--no-wait returns the PENDING version at once', { timeout: 60_000 }, async () => {
    const r = await cli('--json', 'register', join(dir, 'iris.onnx'), '--name', 'later', '--no-wait');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'later', version: 2, status: 'PENDING' });
    await services.idle();
    const v = await cli('--json', 'versions', 'later');
    expect(JSON.parse(v.stdout).versions[0]).toMatchObject({ version: 2, status: 'READY' });
  });

  it('a file that is not a model ends as the synchronous refusal (exit 1, 422 INVALID_MODEL)', {
    timeout: 60_000,
  }, async () => {
    const r = await cli('register', join(dir, 'not-a-model.onnx'), '--name', 'later');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/422 INVALID_MODEL/);
    expect(r.stderr).toMatch(/version 3 of 'later' is FAILED/);
  });
});
