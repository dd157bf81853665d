/**
 * `maas batch` as a user runs it: the real CLI (`node bin/maas.js`, a child process) against the local service
 * wired as `maas dev` wires it — the handlers over the suite's DynamoDB Local and an s3rver of this file's own,
 * whose object events reach the S3 events handler (the suite's s3rver runs in another process), the in-process
 * queues and workers. Two input files cut into several parts give the output of their concatenation scored as
 * one file; `maas batch status` reads the finished job and `maas batch cancel` refuses it.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DeleteTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { dynamoDocumentClient, s3Client } from '../../functions/adapters/aws-clients';
import { S3BlobStore, S3RangedObjects } from '../../functions/adapters/s3-blob-store';
import { registerVersion } from '../../functions/app/registry';
import { BATCH_KEYS } from '../../functions/contract/events';
import { composeLocal, type LocalServices } from '../../functions/local/compose';
import {
  LOCAL_REGION,
  localClientOptions,
  type RunningS3,
  startS3rver,
} from '../../functions/local/emulators';
import { ensureBucket, ensureTable } from '../../functions/local/provision';
import { buildIrisModel, SAMPLE_MODEL } from '../../functions/local/sample-model';
import { type RunningLocalServer, startLocalServer } from '../../functions/local/server';

const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/maas.js');
/** Rows per input file: about 85 KB each, so `--part-bytes 64k` cuts each into two parts. */
const ROWS = 800;
/** Line of the second file whose request does not fit the model (its output line is an error line). */
const BAD = 400;

/** One iris request per line, ids `{name}-{i}`. */
function inputFile(name: string, seed: number): string {
  const lines: string[] = [];
  for (let i = 0; i < ROWS; i++) {
    const v = (k: number) => Math.round((1 + (((i + 1) * (k + seed) * 7919) % 60) / 10) * 10) / 10;
    const data = name === 'b' && i === BAD ? [v(0), v(1), v(2)] : [v(0), v(1), v(2), v(3)];
    lines.push(
      JSON.stringify({
        id: `${name}-${i}`,
        inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data }],
      }),
    );
  }
  return `${lines.join('\n')}\n`;
}

interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

describe('maas batch (the CLI process) on the local service', () => {
  const dir = mkdtempSync(join(tmpdir(), 'maas-cli-batch-'));
  const home = join(dir, 'home');
  const id = randomUUID().slice(0, 8);
  const table = `cli-batch-${id}`;
  const bucket = `cli-batch-${id}`;
  const doc = dynamoDocumentClient(localClientOptions(inject('dynamoEndpoint')));
  let s3: RunningS3 | undefined;
  let services: LocalServices | undefined;
  let server: RunningLocalServer | undefined;
  let blobs: S3BlobStore;
  let objects: S3RangedObjects;

  /**
   * Runs the CLI in a child process (asynchronously: the service answering it runs in this process), in the
   * environment of a user's shell: nothing that points at the suite's emulators, `MAAS_HOME` naming the service.
   */
  const maas = (...args: string[]): Promise<CliRun> => maasAt(server?.url ?? '', ...args);
  const userEnv = (): NodeJS.ProcessEnv => {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (!/^(AWS_|MAAS_|VITEST|PORT$)/.test(k)) env[k] = v;
    }
    env.MAAS_HOME = home;
    return env;
  };
  const maasAt = (endpoint: string, ...args: string[]): Promise<CliRun> => {
    const env = userEnv();
    return new Promise((done) => {
      execFile(
        process.execPath,
        [BIN, '--endpoint', endpoint, ...args],
        { cwd: dir, env, encoding: 'utf8' },
        (err, stdout, stderr) => {
          const code = err ? ((err as { code?: unknown }).code as number) : 0;
          done({ code: typeof code === 'number' ? code : -1, stdout, stderr });
        },
      );
    });
  };

  beforeAll(async () => {
    s3 = await startS3rver({ directory: join(dir, 's3'), buckets: [bucket] });
    const s3c = s3Client(localClientOptions(s3.endpoint));
    await Promise.all([ensureTable(doc, table), ensureBucket(s3c, bucket)]);
    services = composeLocal({
      doc,
      s3: s3c,
      endpoints: { dynamodb: inject('dynamoEndpoint'), s3: s3.endpoint },
      table,
      bucket,
      log: () => {},
    });
    services.attachObjectStore(s3.server);
    server = await startLocalServer({ port: 0, handlers: services.handlers });
    blobs = new S3BlobStore(s3c, bucket);
    objects = new S3RangedObjects(s3c, bucket);

    // The sample model, registered as `maas dev` registers it.
    const key = `uploads/iris/${randomUUID()}.onnx`;
    await services.registry.store.putObject(key, buildIrisModel(), 'application/octet-stream');
    await registerVersion(services.registry, {
      name: SAMPLE_MODEL.name,
      sourceKey: key,
      labels: [...SAMPLE_MODEL.labels],
      postprocess: SAMPLE_MODEL.postprocess,
    });
    writeFileSync(join(dir, 'a.jsonl'), inputFile('a', 1));
    writeFileSync(join(dir, 'b.jsonl'), inputFile('b', 2));
    writeFileSync(join(dir, 'ab.jsonl'), inputFile('a', 1) + inputFile('b', 2));
    // What `maas dev` writes for the CLI: the API it serves and the bucket batch jobs go to.
    mkdirSync(home, { recursive: true });
    writeFileSync(
      join(home, 'endpoints.json'),
      JSON.stringify({
        api: server.url,
        dynamodb: inject('dynamoEndpoint'),
        s3: s3.endpoint,
        bucket,
        table,
        region: LOCAL_REGION,
        pid: process.pid,
        inMemory: true,
      }),
    );
  });

  afterAll(async () => {
    await server?.close();
    await services?.close();
    await s3?.stop();
    await (doc as unknown as DynamoDBClient)
      .send(new DeleteTableCommand({ TableName: table }))
      .catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });

  it('scores two files in several parts as their concatenation scored as one; status reads it, cancel refuses it', {
    timeout: 60_000,
  }, async () => {
    // The two files (input/0000-a.jsonl, input/0001-b.jsonl, then input/_SUCCESS) and, at the same time, their
    // concatenation as one input.jsonl of one part.
    const [two, one] = await Promise.all([
      maas(
        'batch',
        'iris',
        'a.jsonl',
        'b.jsonl',
        '--part-bytes',
        '64k',
        '--job-id',
        'two-files',
        '--out',
        'two.jsonl',
      ),
      maas('batch', 'iris', 'ab.jsonl', '--job-id', 'one-file', '--out', 'one.jsonl'),
    ]);
    expect(two.stderr).toContain('job two-files: iris, 2 input files');
    expect(two.code, two.stderr).toBe(0);
    expect(one.code, one.stderr).toBe(0);
    const summary = `${2 * ROWS} rows scored with iris version 1: ${2 * ROWS - 1} ok, 1 failed`;
    expect(two.stderr).toContain(`job two-files: ${summary} -> two.jsonl`);
    expect(one.stderr).toContain(`job one-file: ${summary} -> one.jsonl`);

    const output = readFileSync(join(dir, 'two.jsonl'), 'utf8');
    expect(output).toBe(readFileSync(join(dir, 'one.jsonl'), 'utf8'));
    const lines = output.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(2 * ROWS);
    lines.forEach((line, n) => {
      const row = JSON.parse(line);
      if (n === ROWS + BAD) {
        expect(row).toMatchObject({ code: 'DATA_LENGTH_MISMATCH' });
        return;
      }
      expect(row.id, `line ${n}`).toBe(n < ROWS ? `a-${n}` : `b-${n - ROWS}`);
      expect(row.model_version).toBe('1');
    });

    // Two parts per file, each file cut on its own; the last progress line (no terminal: status lines) says so.
    const status = JSON.parse(
      Buffer.from((await blobs.get(BATCH_KEYS.status('two-files'))) ?? '').toString(),
    );
    expect(status).toMatchObject({ state: 'done', total: 2 * ROWS, succeeded: 2 * ROWS - 1, failed: 1 });
    expect(status.partsTotal).toBe(4);
    expect(status.partsDone).toBe(status.partsTotal);
    const parts = `${status.partsTotal}/${status.partsTotal} parts`;
    expect(two.stderr).toContain(`job two-files: done ${parts}, ${2 * ROWS} rows (1 failed)`);
    // The output segments are gone once output.jsonl is assembled.
    expect(await objects.list('batch/two-files/parts/')).toEqual([]);

    const [shown, cancel] = await Promise.all([
      maas('batch', 'status', 'two-files'),
      maas('batch', 'cancel', 'two-files'),
    ]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(
      new RegExp(`^job two-files: done ${parts}, ${2 * ROWS} rows \\(1 failed\\), [\\d.]+ rows/s\\n$`),
    );
    expect(cancel.code).toBe(1);
    expect(cancel.stdout).toContain(
      `job two-files had ended already (done), nothing to cancel: done ${parts}, ${2 * ROWS} rows (1 failed)`,
    );
    // Nothing was asked of the finished job.
    expect(await blobs.head(BATCH_KEYS.cancel('two-files'))).toBeUndefined();
  });
  it('checks --out and the model name before uploading; status --out writes the output of a job done; --json names it', {
    timeout: 60_000,
  }, async () => {
    // A folder that does not exist, a folder where a file goes, a model name the service refuses: exit 2, no job.
    for (const [args, message] of [
      [
        ['iris', 'a.jsonl', '--out', 'nowhere/x.jsonl'],
        /--out nowhere\/x.jsonl: its folder .*nowhere does not exist/,
      ],
      [['iris', 'a.jsonl', '--out', '.'], /--out \. is a folder: name a file/],
      [['Iris', 'a.jsonl'], /invalid model name 'Iris'/],
    ] as const) {
      const r = await maas('batch', ...args, '--job-id', 'refused');
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    expect(await objects.list('batch/refused/')).toEqual([]);

    // With --json and no --out, the status printed names where the output is.
    const json = await maas('--json', 'batch', 'iris', 'a.jsonl', '--job-id', 'json-out');
    expect(json.code, json.stderr).toBe(0);
    const printed = JSON.parse(json.stdout);
    expect(printed).toMatchObject({ state: 'done', output: { bucket, key: BATCH_KEYS.output('json-out') } });

    // The output of a job that is done, written later; the endpoint spelled localhost is the same service.
    const localhost = (server?.url ?? '').replace('127.0.0.1', 'localhost');
    const later = await maasAt(localhost, 'batch', 'status', 'json-out', '--out', 'later.jsonl');
    expect(later.code, later.stderr).toBe(0);
    expect(later.stderr).toContain('job json-out: output -> later.jsonl');
    expect(readFileSync(join(dir, 'later.jsonl'), 'utf8')).toBe(
      Buffer.from((await blobs.get(BATCH_KEYS.output('json-out'))) ?? '').toString(),
    );
    expect(readFileSync(join(dir, 'later.jsonl'), 'utf8').split('\n')).toHaveLength(ROWS + 1);
    // A link is written through, in place (as a device such as /dev/stdout is): it stays a link.
    writeFileSync(join(dir, 'target.jsonl'), 'old\n');
    symlinkSync(join(dir, 'target.jsonl'), join(dir, 'link.jsonl'));
    const linked = await maas('batch', 'status', 'json-out', '--out', 'link.jsonl');
    expect(linked.code, linked.stderr).toBe(0);
    expect(lstatSync(join(dir, 'link.jsonl')).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(dir, 'target.jsonl'), 'utf8')).toBe(
      readFileSync(join(dir, 'later.jsonl'), 'utf8'),
    );
    // A job done whose output is gone says so (exit 1), and writes no file: one of that name is left as it was.
    await blobs.delete(BATCH_KEYS.output('json-out'));
    writeFileSync(join(dir, 'keep.jsonl'), 'precious\n');
    const gone = await maas('batch', 'status', 'json-out', '--out', 'keep.jsonl');
    expect(gone.code).toBe(1);
    expect(readFileSync(join(dir, 'keep.jsonl'), 'utf8')).toBe('precious\n');
    expect(gone.stderr).toContain(
      `job json-out is done, but ${BATCH_KEYS.output('json-out')} is not in bucket ${bucket}`,
    );
    // No job, no output: exit 1; cancel takes no --out.
    const none = await maas('batch', 'status', 'no-such-job', '--out', 'none.jsonl');
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no batch job 'no-such-job'/);
    expect((await maas('batch', 'cancel', 'json-out', '--out', 'x.jsonl')).stderr).toMatch(/takes no --out/);
  });

  /**
   * Runs the CLI with its standard output a pipe that this process reads only once `reading` says so: until then
   * the pipe fills and the CLI's writes wait, as they do for a slow reader (`| gzip`, `| ssh …`).
   */
  const maasPiped = (
    args: string[],
    reading: (child: ChildProcess, stderr: () => string) => Promise<void>,
  ): Promise<CliRun & { readonly stdoutBytes: Buffer }> => {
    const child = spawn(process.execPath, [BIN, '--endpoint', server?.url ?? '', ...args], {
      cwd: dir,
      env: userEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const chunks: Buffer[] = [];
    const exited = new Promise<number>((done) => child.on('close', (code) => done(code ?? -1)));
    return reading(child, () => stderr).then(async () => {
      if (!child.stdout?.destroyed) child.stdout?.on('data', (d: Buffer) => chunks.push(d));
      const code = await exited;
      const stdoutBytes = Buffer.concat(chunks);
      return { code, stdout: stdoutBytes.toString('utf8'), stderr, stdoutBytes };
    });
  };

  /** Resolves when `stderr()` matches `pattern`. */
  const untilStderr = async (stderr: () => string, pattern: RegExp) => {
    for (let i = 0; i < 600 && !pattern.test(stderr()); i++) await new Promise((r) => setTimeout(r, 50));
    expect(stderr()).toMatch(pattern);
  };

  it('writes the whole output to a pipe whose reader is slower, and ends with an error when its reader goes away', {
    timeout: 60_000,
  }, async () => {
    // Read only a second after the job is done: the CLI waits for the pipe, it does not exit with writes queued.
    const slow = await maasPiped(
      ['batch', 'iris', 'ab.jsonl', '--job-id', 'piped'],
      async (_child, stderr) => {
        await untilStderr(stderr, /job piped: done \d+\/\d+ parts/);
        await new Promise((r) => setTimeout(r, 1000));
      },
    );
    expect(slow.code, slow.stderr).toBe(0);
    const stored = Buffer.from((await blobs.get(BATCH_KEYS.output('piped'))) ?? new Uint8Array());
    expect(stored.length).toBeGreaterThan(4 * 65_536);
    expect(slow.stdoutBytes.equals(stored)).toBe(true);

    // A reader that takes the first bytes and goes away (`| head -c 300`): exit code 1 and what to do, no stack.
    const gone = await maasPiped(['batch', 'iris', 'ab.jsonl', '--job-id', 'head'], async (child) => {
      await new Promise<void>((done) => child.stdout?.once('data', () => done()));
      child.stdout?.destroy();
    });
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('standard output was closed before the whole output was written (EPIPE)');
    expect(gone.stderr).toContain('maas batch status head --out <file>');
    expect(gone.stderr).not.toMatch(/\n\s+at /);
  });
});
