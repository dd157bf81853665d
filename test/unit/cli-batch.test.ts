/**
 * `maas batch`: its arguments and options, the job.json and input objects it writes (one file, several files, a
 * large one), the progress it renders from a sequence of status documents, the output it streams, and how cancel
 * waits — over an in-memory bucket. Runs against the service are in the end-to-end tests.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  type BarStream,
  type BatchBucket,
  cancelJob,
  fetchOutput,
  formatProgress,
  inputLayout,
  inputObjectName,
  type JobStatus,
  progressBar,
  progressFields,
  progressLines,
  runBatch,
  SINGLE_PUT_BYTES,
  sameEndpoint,
  submitBatch,
  waitForJob,
} from '../../functions/cli/batch';
import {
  type BatchOptions,
  byteSize,
  cancelSummary,
  inputFiles,
  jobIdOption,
  maxConcurrencyOption,
  outFile,
  parseBatchCall,
  parseByteSize,
  partBytesOption,
  runSummary,
} from '../../functions/cli/commands/batch';
import { EXIT } from '../../functions/cli/context';
import { run } from '../../functions/cli/program';
import { BATCH } from '../../functions/contract/events';
import { captureIo } from '../helpers/cli-io';

const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : Buffer.from(b).toString('utf8'));

/**
 * A bucket in memory: every put in order; `status` scripts what status.json says at each read (the last entry
 * repeats), starting once `startsAfter` has been written (undefined before).
 */
class MemoryBucket implements BatchBucket {
  readonly bucket = 'mem';
  readonly objects = new Map<string, Uint8Array>();
  readonly puts: { key: string; body: string; contentType?: string }[] = [];
  statusReads = 0;
  /** Whether status.json reads follow the script. */
  started = false;
  constructor(
    readonly script: {
      jobId?: string;
      startsAfter?: (key: string) => boolean;
      statuses?: readonly Partial<JobStatus>[];
    } = {},
  ) {}

  async get(key: string) {
    const { jobId, statuses } = this.script;
    if (jobId && statuses && key === `batch/${jobId}/status.json` && this.started) {
      const s = statuses[Math.min(this.statusReads++, statuses.length - 1)];
      return Buffer.from(
        JSON.stringify({ jobId, state: 'running', total: 0, succeeded: 0, failed: 0, ...s }),
      );
    }
    return this.objects.get(key);
  }
  async put(key: string, body: Uint8Array | string, contentType?: string) {
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    this.objects.set(key, bytes);
    this.puts.push({ key, body: text(bytes) ?? '', ...(contentType ? { contentType } : {}) });
    if (this.script.startsAfter?.(key)) this.started = true;
  }
  async delete(key: string) {
    this.objects.delete(key);
  }
  /** As S3's conditional write: the check and the write happen at once. */
  async putNew(key: string, body: Uint8Array | string, contentType?: string) {
    if (this.objects.has(key)) return false;
    await this.put(key, body, contentType);
    return true;
  }
  async head(key: string) {
    const o = this.objects.get(key);
    return o ? { sizeBytes: o.byteLength } : undefined;
  }
}

const noSleep = async () => {};

describe('maas batch arguments', () => {
  const none: BatchOptions = { timeout: 600 };

  it('reads <model> <input...> as a run, keeping the order of the files', () => {
    expect(parseBatchCall('iris', ['a.jsonl'], none)).toEqual({
      kind: 'run',
      model: 'iris',
      files: ['a.jsonl'],
    });
    expect(parseBatchCall('iris@3', ['b.jsonl', 'a.jsonl', 'c.jsonl'], none)).toEqual({
      kind: 'run',
      model: 'iris',
      ref: '3',
      files: ['b.jsonl', 'a.jsonl', 'c.jsonl'],
    });
    expect(() => parseBatchCall('iris', [], none)).toThrow(/give the input file/);
    expect(() => parseBatchCall('iris@', ['a'], none)).toThrow(/not a model reference/);
  });

  it('reads status|cancel <jobId> as an action; a model named so is written name@prod', () => {
    expect(parseBatchCall('status', ['cli-1'], none)).toEqual({ kind: 'status', jobId: 'cli-1' });
    expect(parseBatchCall('cancel', ['cli-1'], { timeout: 5 })).toEqual({ kind: 'cancel', jobId: 'cli-1' });
    expect(parseBatchCall('cancel@prod', ['in.jsonl'], none)).toEqual({
      kind: 'run',
      model: 'cancel',
      ref: 'prod',
      files: ['in.jsonl'],
    });
    expect(() => parseBatchCall('cancel', [], none)).toThrow(/takes one job id, got 0.*cancel@prod/);
    expect(() => parseBatchCall('status', ['a', 'b'], none)).toThrow(/takes one job id, got 2/);
    expect(() => parseBatchCall('cancel', ['cli-1'], { timeout: 1, out: 'o', partBytes: 65536 })).toThrow(
      /takes no --out, --part-bytes/,
    );
    expect(() => parseBatchCall('status', ['a/b'], none)).toThrow(/the job id must be/);
    // status takes --out (the output of a job done), and no other option of a run.
    expect(parseBatchCall('status', ['cli-1'], { timeout: 1, out: 'o.jsonl' })).toEqual({
      kind: 'status',
      jobId: 'cli-1',
    });
    expect(() => parseBatchCall('status', ['cli-1'], { timeout: 1, out: 'o', jobId: 'x' })).toThrow(
      /status takes no --job-id:/,
    );
    // A model name the service would refuse once the files are uploaded.
    expect(() => parseBatchCall('Iris', ['a.jsonl'], none)).toThrow(/invalid model name 'Iris'/);
    // A file where a job id goes: the caller most likely meant a model named so.
    const dir = mkdtempSync(join(tmpdir(), 'maas-batch-'));
    const file = join(dir, 'rows.jsonl');
    writeFileSync(file, '{}\n');
    expect(() => parseBatchCall('cancel', [file], none)).toThrow(/is a file, not a job id.*cancel@prod/);
  });

  it('parses --part-bytes with k, m, g suffixes within the bounds job.json accepts', () => {
    expect(parseByteSize('--x', '65536')).toBe(65_536);
    expect(parseByteSize('--x', '64k')).toBe(64 * 1024);
    expect(parseByteSize('--x', '16m')).toBe(16 * 1024 * 1024);
    expect(parseByteSize('--x', '16MiB')).toBe(16 * 1024 * 1024);
    expect(parseByteSize('--x', '1G')).toBe(1024 ** 3);
    expect(parseByteSize('--x', ' 2 mb ')).toBe(2 * 1024 * 1024);
    for (const bad of ['', 'm', '1.5m', '-1m', '16t', '16 m b', '0x10']) {
      expect(() => parseByteSize('--part-bytes', bad)).toThrow(/--part-bytes must be a size/);
    }
    expect(partBytesOption('64k')).toBe(BATCH.minPartBytes);
    expect(partBytesOption('512m')).toBe(BATCH.maxPartBytes);
    expect(() => partBytesOption('63k')).toThrow(/from 64k to 512m, got '63k'/);
    expect(() => partBytesOption('1g')).toThrow(/from 64k to 512m, got '1g'/);
    expect(byteSize(16 * 1024 * 1024)).toBe('16m');
    expect(byteSize(1000)).toBe('1000');
  });

  it('parses --max-concurrency and job ids', () => {
    expect(maxConcurrencyOption('1')).toBe(1);
    expect(maxConcurrencyOption(String(BATCH.maxConcurrencyLimit))).toBe(1000);
    for (const bad of ['0', '1001', '2.5', '', 'ten']) {
      expect(() => maxConcurrencyOption(bad)).toThrow(/--max-concurrency must be an integer from 1 to 1000/);
    }
    expect(jobIdOption('--job-id', 'nightly-2026-12-01.a=1')).toBe('nightly-2026-12-01.a=1');
    for (const bad of ['', '-x', 'a/b', 'a b', 'x'.repeat(129)]) {
      expect(() => jobIdOption('--job-id', bad)).toThrow(/--job-id must be/);
    }
  });

  it('checks --out before anything is written: a file that can be written, or a new one in a folder that exists', () => {
    const dir = mkdtempSync(join(tmpdir(), 'maas-batch-'));
    writeFileSync(join(dir, 'old.jsonl'), 'x');
    mkdirSync(join(dir, 'sub'));
    expect(() => outFile(join(dir, 'old.jsonl'))).not.toThrow();
    expect(() => outFile(join(dir, 'new.jsonl'))).not.toThrow();
    expect(() => outFile(join(dir, 'sub'))).toThrow(/is a folder: name a file/);
    expect(() => outFile(`${join(dir, 'new')}/`)).toThrow(/names a folder: name a file/);
    expect(() => outFile('')).toThrow(/--out needs a file name/);
    expect(() => outFile(join(dir, 'missing', 'x.jsonl'))).toThrow(/its folder .*missing does not exist/);
    expect(() => outFile(join(dir, 'old.jsonl', 'x.jsonl'))).toThrow(/(is not a folder|ENOTDIR)/);
  });

  it('takes any name of the loopback interface for the local service, and nothing else', () => {
    expect(sameEndpoint('http://127.0.0.1:3000', 'http://localhost:3000/')).toBe(true);
    expect(sameEndpoint('http://127.0.0.1:3000', 'http://[::1]:3000')).toBe(true);
    expect(sameEndpoint('http://127.0.0.1:3000', 'http://127.0.0.1:3001')).toBe(false);
    expect(sameEndpoint('http://127.0.0.1:3000', 'https://127.0.0.1:3000')).toBe(false);
    expect(sameEndpoint('http://127.0.0.1:3000', 'http://10.0.0.1:3000')).toBe(false);
    expect(sameEndpoint('http://127.0.0.1:3000', 'http://127.0.0.1:3000/prod')).toBe(false);
    expect(sameEndpoint('not a url', 'not a url')).toBe(true);
  });

  it('checks every input file before anything is written', () => {
    const dir = mkdtempSync(join(tmpdir(), 'maas-batch-'));
    writeFileSync(join(dir, 'a.jsonl'), '{}\n{}\n');
    mkdirSync(join(dir, 'sub'));
    expect(inputFiles([join(dir, 'a.jsonl')])).toEqual([
      { name: join(dir, 'a.jsonl'), path: join(dir, 'a.jsonl'), sizeBytes: 6 },
    ]);
    expect(() => inputFiles([join(dir, 'a.jsonl'), join(dir, 'missing.jsonl')])).toThrow(/ENOENT/);
    expect(() => inputFiles([join(dir, 'sub')])).toThrow(/is not a file/);
  });

  it('refuses bad calls with exit code 2 before it looks for a bucket, and says where to find one', async () => {
    const home = mkdtempSync(join(tmpdir(), 'maas-home-'));
    const cli = async (...args: string[]) => {
      const io = captureIo({ MAAS_HOME: home });
      const code = await run(['node', 'maas', '--endpoint', 'http://127.0.0.1:9', ...args], io);
      return { code, err: io.stderr(), out: io.stdout() };
    };
    expect(await cli('batch', 'status')).toMatchObject({
      code: EXIT.usage,
      err: expect.stringMatching(/takes one job id/),
    });
    expect(await cli('batch', 'iris', 'a.jsonl', '--part-bytes', '16x')).toMatchObject({
      code: EXIT.usage,
      err: expect.stringMatching(/--part-bytes must be a size/),
    });
    expect(await cli('batch', 'iris', 'a.jsonl', '--max-concurrency', '0')).toMatchObject({
      code: EXIT.usage,
    });
    expect(await cli('batch', 'cancel', 'j1', '--job-id', 'j2')).toMatchObject({
      code: EXIT.usage,
      err: expect.stringMatching(/takes no --job-id/),
    });
    expect(await cli('batch', 'status', 'j1')).toMatchObject({
      code: EXIT.usage,
      err: expect.stringMatching(/no bucket for batch jobs: start `maas dev`, or pass --bucket/),
    });
    const help = await cli('batch', '--help');
    expect(help.code).toBe(EXIT.ok);
    expect(help.out).toContain('Usage: maas batch [options] <model> <input...>');
    expect(help.out).toContain('maas batch status <jobId>');
    expect(help.out).toContain('maas batch cancel <jobId>');
    expect(help.out).toContain(`one file of up to ${SINGLE_PUT_BYTES / 1024 / 1024} MiB`);
    expect(help.out).toContain('--part-bytes <size>    input bytes per part: 64k .. 512m (default 16m)');
  });
});

describe('what maas batch writes', () => {
  it('names input objects {nnnn}-{name}.jsonl, in the order given, safe as keys', () => {
    expect(inputObjectName(0, 3, '/data/day 1.jsonl')).toBe('0000-day_1.jsonl');
    expect(inputObjectName(2, 3, 'rows.ndjson')).toBe('0002-rows.ndjson.jsonl');
    expect(inputObjectName(1, 3, 'input.jsonl')).toBe('0001-input.jsonl');
    expect(inputObjectName(0, 1, '.jsonl')).toBe('0000-input.jsonl');
    expect(inputObjectName(7, 12_000, 'x.JSONL')).toBe('00007-x.jsonl');
    expect(inputObjectName(0, 1, `${'é'.repeat(300)}.jsonl`)).toBe(`0000-${'_'.repeat(100)}.jsonl`);
    const names = Array.from({ length: 10_001 }, (_, i) => inputObjectName(i, 10_001, `f${10_000 - i}`));
    expect([...names].sort()).toEqual(names);
  });

  it('lays one small input out as input.jsonl, several (or one large) as input/ objects and _SUCCESS', () => {
    const a = { name: 'a.jsonl', bytes: Buffer.from('{}\n') };
    const b = { name: 'dir/b.jsonl', path: '/dev/null', sizeBytes: 10 };
    expect(inputLayout('j', [a])).toEqual({ objects: [{ key: 'batch/j/input.jsonl', input: a }] });
    expect(inputLayout('j', [b, a])).toEqual({
      objects: [
        { key: 'batch/j/input/0000-b.jsonl', input: b },
        { key: 'batch/j/input/0001-a.jsonl', input: a },
      ],
      marker: 'batch/j/input/_SUCCESS',
    });
    const large = { name: 'big.jsonl', path: '/x', sizeBytes: SINGLE_PUT_BYTES + 1 };
    expect(inputLayout('j', [large])).toEqual({
      objects: [{ key: 'batch/j/input/0000-big.jsonl', input: large }],
      marker: 'batch/j/input/_SUCCESS',
    });
    expect(inputLayout('j', [b], 9).marker).toBe('batch/j/input/_SUCCESS');
  });

  it('writes job.json with the options given, then the files in order, then the empty _SUCCESS', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'maas-batch-'));
    writeFileSync(join(dir, 'b.jsonl'), '{"b":1}\n');
    writeFileSync(join(dir, 'a.jsonl'), '{"a":1}\n{"a":2}\n');
    const store = new MemoryBucket();
    const progress: number[] = [];
    await submitBatch(
      store,
      {
        jobId: 'j1',
        spec: { model: 'iris', ref: 'prod', partBytes: 65_536, maxConcurrency: 4 },
        inputs: inputFiles([join(dir, 'b.jsonl'), join(dir, 'a.jsonl')]),
      },
      { onUpload: (p) => progress.push(p.sent / p.total) },
    );
    expect(store.puts).toEqual([
      {
        key: 'batch/j1/job.json',
        body: '{"model":"iris","ref":"prod","partBytes":65536,"maxConcurrency":4}',
      },
      { key: 'batch/j1/input/0000-b.jsonl', body: '{"b":1}\n', contentType: 'application/x-ndjson' },
      { key: 'batch/j1/input/0001-a.jsonl', body: '{"a":1}\n{"a":2}\n', contentType: 'application/x-ndjson' },
      { key: 'batch/j1/input/_SUCCESS', body: '', contentType: 'application/octet-stream' },
    ]);
    expect(progress).toEqual([8 / 24, 1]);
  });

  it('writes job.json without the options not given and one input as input.jsonl (as before)', async () => {
    const store = new MemoryBucket();
    await submitBatch(store, {
      jobId: 'j2',
      spec: { model: 'iris' },
      inputs: [{ name: 'x', bytes: Buffer.from('{}\n') }],
    });
    expect(store.puts.map((p) => [p.key, p.body])).toEqual([
      ['batch/j2/job.json', '{"model":"iris"}'],
      ['batch/j2/input.jsonl', '{}\n'],
    ]);
  });

  it('uploads through putFile when the bucket has it (large files part by part), reporting bytes sent', async () => {
    const store = new MemoryBucket() as MemoryBucket & { putFile: BatchBucket['putFile'] };
    const files: string[] = [];
    const progress: number[] = [];
    store.putFile = async (key, path, size, onBytes) => {
      files.push(`${key} <- ${path}`);
      onBytes?.(size / 2);
      onBytes?.(size);
    };
    await submitBatch(
      store,
      {
        jobId: 'j3',
        spec: { model: 'm' },
        inputs: [
          { name: 'a', path: '/in/a', sizeBytes: 100 },
          { name: 'b', path: '/in/b', sizeBytes: 300 },
        ],
      },
      { onUpload: (p) => progress.push(p.sent) },
    );
    expect(files).toEqual(['batch/j3/input/0000-a.jsonl <- /in/a', 'batch/j3/input/0001-b.jsonl <- /in/b']);
    expect(progress).toEqual([50, 100, 100, 250, 400, 400]);
    expect(store.puts.at(-1)?.key).toBe('batch/j3/input/_SUCCESS');
  });

  it('refuses a job id that names a job already, writing nothing', async () => {
    for (const existing of ['batch/j/job.json', 'batch/j/status.json']) {
      const store = new MemoryBucket();
      store.objects.set(existing, Buffer.from('{}'));
      await expect(
        submitBatch(store, {
          jobId: 'j',
          spec: { model: 'm' },
          inputs: [{ name: 'x', bytes: Buffer.from('') }],
        }),
      ).rejects.toThrow(/job id 'j' is taken/);
      expect(store.puts).toEqual([]);
    }
  });

  it('of two runs started at once with the same job id, one goes on and the other is refused, writing nothing', async () => {
    const store = new MemoryBucket();
    const submit = (model: string) =>
      submitBatch(store, {
        jobId: 'j',
        spec: { model },
        inputs: [{ name: 'x', bytes: Buffer.from(`{"${model}":1}\n`) }],
      });
    // Both pass the check that the job id is free before either writes job.json.
    const [a, b] = await Promise.allSettled([submit('first'), submit('second')]);
    expect(a.status).toBe('fulfilled');
    expect(b).toMatchObject({
      status: 'rejected',
      reason: { message: expect.stringMatching(/job id 'j' is taken/) },
    });
    expect(store.puts.map((p) => [p.key, p.body])).toEqual([
      ['batch/j/job.json', '{"model":"first"}'],
      ['batch/j/input.jsonl', '{"first":1}\n'],
    ]);
  });

  it('runs several inputs to the end and returns the output (runBatch)', async () => {
    const store = new MemoryBucket({
      jobId: 'j4',
      startsAfter: (k) => k.endsWith('/_SUCCESS'),
      statuses: [
        { partsDone: 0, partsTotal: 2 },
        { state: 'done', total: 3, succeeded: 3, version: 2 },
      ],
    });
    store.objects.set('batch/j4/output.jsonl', Buffer.from('{"o":1}\n{"o":2}\n{"o":3}\n'));
    const seen: string[] = [];
    const r = await runBatch(
      store,
      {
        jobId: 'j4',
        model: 'iris',
        maxConcurrency: 2,
        inputs: [
          { name: 'p1', bytes: Buffer.from('{}\n{}\n') },
          { name: 'p2', bytes: Buffer.from('{}\n') },
        ],
      },
      { pollMs: 1, onStatus: (s) => seen.push(formatProgress(s)) },
    );
    expect(text(store.objects.get('batch/j4/job.json'))).toBe('{"model":"iris","maxConcurrency":2}');
    expect(r.status.state).toBe('done');
    expect(text(r.output)).toBe('{"o":1}\n{"o":2}\n{"o":3}\n');
    expect(seen).toEqual(['running 0/2 parts, 0 rows', 'done, 3 rows']);
  });
});

describe('progress', () => {
  /** A job of 40 parts as status.json tells it, part by part. */
  const sequence: JobStatus[] = [
    {
      jobId: 'j',
      state: 'running',
      total: 0,
      succeeded: 0,
      failed: 0,
      partsDone: 0,
      partsTotal: 40,
      rowsPerSecond: 0,
    },
    {
      jobId: 'j',
      state: 'running',
      total: 120_000,
      succeeded: 119_997,
      failed: 3,
      partsDone: 12,
      partsTotal: 40,
      rowsPerSecond: 8532.4,
      etaSeconds: 192.2,
    },
    {
      jobId: 'j',
      state: 'running',
      total: 399_000,
      succeeded: 398_997,
      failed: 3,
      partsDone: 39,
      partsTotal: 40,
      rowsPerSecond: 8700,
      etaSeconds: 0.4,
    },
    {
      jobId: 'j',
      state: 'done',
      total: 400_000,
      succeeded: 399_997,
      failed: 3,
      partsDone: 40,
      partsTotal: 40,
      rowsPerSecond: 8702,
      version: 3,
    },
  ];

  it('renders each status as a line: parts, rows, rows/s, ETA while running', () => {
    expect(sequence.map(formatProgress)).toEqual([
      'running 0/40 parts, 0 rows',
      'running 12/40 parts, 120000 rows (3 failed), 8532 rows/s, ETA 3m12s',
      'running 39/40 parts, 399000 rows (3 failed), 8700 rows/s, ETA 0s',
      'done 40/40 parts, 400000 rows (3 failed), 8702 rows/s',
    ]);
    expect(
      formatProgress({
        jobId: 'j',
        state: 'failed',
        total: 500,
        succeeded: 500,
        failed: 0,
        partsDone: 1,
        partsTotal: 4,
        rowsPerSecond: 2.345,
        error: 'part 1 (batch/j/input.jsonl bytes 100-200) failed after 3 attempts: boom',
        code: 'BATCH_PART_FAILED',
      }),
    ).toBe(
      'failed 1/4 parts, 500 rows, 2.3 rows/s: part 1 (batch/j/input.jsonl bytes 100-200) failed after 3 attempts: boom (BATCH_PART_FAILED)',
    );
    // Every part done while the job still runs: the output is being assembled, and there is no ETA to show.
    expect(
      formatProgress({
        jobId: 'j',
        state: 'running',
        total: 400_000,
        succeeded: 400_000,
        failed: 0,
        partsDone: 40,
        partsTotal: 40,
        rowsPerSecond: 8702,
        etaSeconds: 0,
      }),
    ).toBe('assembling 40/40 parts, 400000 rows, 8702 rows/s');
    // A status of an earlier release (no parts, no rate).
    expect(formatProgress({ jobId: 'j', state: 'done', total: 7, succeeded: 7, failed: 0 })).toBe(
      'done, 7 rows',
    );
    expect(
      progressFields({ jobId: 'j', state: 'cancelled', total: 5, succeeded: 5, failed: 0, etaSeconds: 9 }),
    ).toEqual({
      state: 'cancelled',
      parts: '-',
      rows: '5',
      failedRows: '0',
      rate: '-',
      eta: '-',
    });
  });

  it('draws a cli-progress bar on a terminal from the sequence, ending full', async () => {
    let drawn = '';
    const stream = {
      isTTY: true,
      columns: 200,
      write(chunk: string) {
        drawn += chunk;
        return true;
      },
    } as unknown as BarStream;
    const bar = progressBar(stream, { fps: 1000 });
    const screens: string[] = [];
    // Each redraw starts with a move to column 1.
    const plain = () =>
      stripVTControlCharacters(drawn.replaceAll('\u001b[1G', '\n')).split(/\r|\n/).filter(Boolean);
    for (const s of sequence) {
      bar.update(s);
      await new Promise((r) => setTimeout(r, 20));
      screens.push(plain().at(-1) ?? '');
    }
    bar.stop();
    expect(screens[0]).toBe('running [░░░░░░░░░░░░░░░░░░░░] 0/40 parts | 0 rows | - rows/s | ETA -');
    expect(screens[1]).toBe(
      'running [██████░░░░░░░░░░░░░░] 12/40 parts | 120000 rows (3 failed) | 8532 rows/s | ETA 3m12s',
    );
    expect(screens[3]).toBe(
      'done [████████████████████] 40/40 parts | 400000 rows (3 failed) | 8702 rows/s | ETA -',
    );
    expect(drawn.endsWith('\n')).toBe(true);
  });

  it('writes status lines without a terminal: when the line changes, at most every interval unless the state does', () => {
    const lines: string[] = [];
    let clock = 0;
    const view = progressLines('j', (t) => lines.push(t), { intervalMs: 5_000, now: () => clock });
    view.update(sequence[0] as JobStatus);
    view.update(sequence[0] as JobStatus);
    clock = 1_000;
    view.update(sequence[1] as JobStatus); // within 5 s of the last line, same state: held back
    clock = 6_000;
    view.update(sequence[1] as JobStatus);
    clock = 6_500;
    view.update(sequence[3] as JobStatus); // the state changed: at once
    view.stop();
    expect(lines).toEqual([
      'job j: running 0/40 parts, 0 rows\n',
      'job j: running 12/40 parts, 120000 rows (3 failed), 8532 rows/s, ETA 3m12s\n',
      'job j: done 40/40 parts, 400000 rows (3 failed), 8702 rows/s\n',
    ]);
  });

  it('waits until the job ends, showing every status read, and gives up after the timeout', async () => {
    const store = new MemoryBucket({ jobId: 'j', startsAfter: () => true, statuses: sequence });
    await store.put('batch/j/job.json', '{}');
    const seen: JobStatus[] = [];
    const st = await waitForJob(store, 'j', { pollMs: 1, sleep: noSleep, onStatus: (s) => seen.push(s) });
    expect(st.state).toBe('done');
    expect(seen.map((s) => s.partsDone)).toEqual([0, 12, 39, 40]);
    let clock = 0;
    const stuck = new MemoryBucket({
      jobId: 'k',
      startsAfter: () => true,
      statuses: [sequence[1] as JobStatus],
    });
    await stuck.put('batch/k/job.json', '{}');
    await expect(
      waitForJob(stuck, 'k', {
        timeoutMs: 3_000,
        now: () => clock,
        sleep: async (ms) => {
          clock += ms;
        },
        pollMs: 1_000,
      }),
    ).rejects.toThrow(/job k did not finish in time; follow it with `maas batch status k`/);
    expect(stuck.statusReads).toBe(4);
  });

  it('reads a status again when a read fails or catches it half-written; fails only when the time is up', async () => {
    const store = new MemoryBucket({ jobId: 'j', startsAfter: () => true, statuses: sequence });
    await store.put('batch/j/job.json', '{}');
    const get = store.get.bind(store);
    let reads = 0;
    // Every other read fails (a busy store's timeout), and one comes back cut short (a rewrite in progress).
    store.get = async (key: string) => {
      reads++;
      if (reads % 2 === 0) throw new Error('socket timed out');
      if (reads === 3) return Buffer.from('{"jobId":"j","sta');
      return get(key);
    };
    const st = await waitForJob(store, 'j', { pollMs: 1, sleep: noSleep });
    expect(st.state).toBe('done');

    let clock = 0;
    const broken = new MemoryBucket();
    broken.get = async () => {
      throw new Error('connection refused');
    };
    await expect(
      waitForJob(broken, 'z', {
        timeoutMs: 2_000,
        now: () => clock,
        sleep: async (ms) => {
          clock += ms;
        },
        pollMs: 1_000,
      }),
    ).rejects.toThrow('connection refused');
  });

  it('says how a run ended, with its exit code', () => {
    const done = sequence[3] as JobStatus;
    expect(runSummary(done, 'iris', 'out.jsonl')).toEqual({
      line: 'job j: 400000 rows scored with iris version 3: 399997 ok, 3 failed -> out.jsonl',
      code: EXIT.ok,
    });
    expect(
      runSummary({ ...done, state: 'cancelled', partsDone: 12, total: 120_000 }, 'iris', undefined),
    ).toEqual({
      line: 'job j cancelled after 12/40 parts (120000 rows)',
      code: EXIT.refused,
    });
    expect(
      runSummary(
        {
          jobId: 'j',
          state: 'failed',
          total: 0,
          succeeded: 0,
          failed: 0,
          error: 'no model',
          code: 'MODEL_NOT_FOUND',
        },
        'x',
        undefined,
      ),
    ).toEqual({ line: 'job j failed: no model (MODEL_NOT_FOUND)', code: EXIT.refused });
  });
});

describe('output', () => {
  it('streams output.jsonl when the bucket can, else reads it whole; false without one', async () => {
    const store = new MemoryBucket();
    const chunks: string[] = [];
    expect(await fetchOutput(store, 'j', (c) => void chunks.push(text(c) ?? ''))).toBe(false);
    store.objects.set('batch/j/output.jsonl', Buffer.from('a\nb\n'));
    expect(await fetchOutput(store, 'j', (c) => void chunks.push(text(c) ?? ''))).toBe(true);
    expect(chunks).toEqual(['a\nb\n']);
    const streaming = Object.assign(new MemoryBucket(), {
      async *stream(key: string) {
        expect(key).toBe('batch/j/output.jsonl');
        yield Buffer.from('a\n');
        yield Buffer.from('b\n');
      },
    });
    streaming.objects.set('batch/j/output.jsonl', Buffer.from('a\nb\n'));
    const parts: string[] = [];
    expect(await fetchOutput(streaming, 'j', (c) => void parts.push(text(c) ?? ''))).toBe(true);
    expect(parts).toEqual(['a\n', 'b\n']);
  });
});

describe('maas batch cancel', () => {
  const running = { partsDone: 3, partsTotal: 10, total: 300, succeeded: 300 };

  /** A job that runs until its cancel object is written, then reads `after` (one status per read). */
  function jobUntilCancel(after: readonly Partial<JobStatus>[]) {
    const store = new MemoryBucket({ jobId: 'j', startsAfter: () => true, statuses: [running] });
    store.objects.set('batch/j/job.json', Buffer.from('{"model":"m"}'));
    const put = store.put.bind(store);
    store.put = async (key, body, contentType) => {
      await put(key, body, contentType);
      if (key === 'batch/j/cancel') {
        store.script.statuses = [...Array.from({ length: store.statusReads + 1 }, () => running), ...after];
      }
    };
    store.started = true;
    return store;
  }

  it('writes batch/{jobId}/cancel and waits until the status says cancelled', async () => {
    const store = jobUntilCancel([running, running, { ...running, state: 'cancelled', partsDone: 4 }]);
    const outcome = await cancelJob(store, 'j', { pollMs: 1, sleep: noSleep });
    expect(outcome.requested).toBe(true);
    expect(outcome.status).toMatchObject({ state: 'cancelled', partsDone: 4 });
    expect(store.puts.map((p) => p.key)).toEqual(['batch/j/cancel']);
    expect(JSON.parse(store.puts[0]?.body ?? '')).toHaveProperty('requestedAt');
    expect(cancelSummary('j', outcome, formatProgress(outcome.status))).toEqual({
      line: 'job j cancelled: cancelled 4/10 parts, 300 rows',
      code: EXIT.ok,
    });
  });

  it('says so when the job ended done (or failed) before the cancel took effect: exit 1', async () => {
    const store = jobUntilCancel([{ ...running, state: 'done', partsDone: 10, total: 1000, version: 1 }]);
    const outcome = await cancelJob(store, 'j', { pollMs: 1, sleep: noSleep });
    expect(outcome).toMatchObject({ requested: true, status: { state: 'done' } });
    expect(cancelSummary('j', outcome, formatProgress(outcome.status))).toEqual({
      line: 'job j ended done before the cancel took effect: done 10/10 parts, 1000 rows',
      code: EXIT.refused,
    });
  });

  it('leaves a job that has ended alone: nothing written; cancelled already is exit 0, done or failed exit 1', async () => {
    for (const [state, code] of [
      ['cancelled', EXIT.ok],
      ['failed', EXIT.refused],
      ['done', EXIT.refused],
    ] as const) {
      const store = new MemoryBucket({ jobId: 'j', startsAfter: () => true, statuses: [{ state }] });
      await store.put('batch/j/job.json', '{}');
      const outcome = await cancelJob(store, 'j', { pollMs: 1, sleep: noSleep });
      expect(outcome.requested).toBe(false);
      expect(store.puts.map((p) => p.key)).toEqual(['batch/j/job.json']);
      const summary = cancelSummary('j', outcome, state);
      expect(summary.code).toBe(code);
      expect(summary.line).toMatch(state === 'cancelled' ? /was cancelled already/ : /had ended already/);
    }
  });

  it('waits for a submitted job to start before writing its cancel; refuses an unknown job; gives up after the timeout', async () => {
    // The job's start records it (status.json, running) at the third read; its cancel is written only then.
    const submitted = new MemoryBucket();
    submitted.objects.set('batch/s/job.json', Buffer.from('{}'));
    const status = (state: string) =>
      Buffer.from(JSON.stringify({ jobId: 's', state, total: 0, succeeded: 0, failed: 0 }));
    let reads = 0;
    const get = submitted.get.bind(submitted);
    submitted.get = async (key) => {
      if (key === 'batch/s/status.json' && ++reads === 3) submitted.objects.set(key, status('running'));
      return get(key);
    };
    const put = submitted.put.bind(submitted);
    submitted.put = async (key, body, ct) => {
      expect(submitted.objects.has('batch/s/status.json')).toBe(true);
      await put(key, body, ct);
      if (key === 'batch/s/cancel') submitted.objects.set('batch/s/status.json', status('cancelled'));
    };
    expect(await cancelJob(submitted, 's', { pollMs: 1, sleep: noSleep })).toMatchObject({
      requested: true,
      status: { state: 'cancelled' },
    });
    expect(reads).toBeGreaterThan(3);

    const never = new MemoryBucket();
    never.objects.set('batch/n/job.json', Buffer.from('{}'));
    let waited = 0;
    await expect(
      cancelJob(never, 'n', {
        timeoutMs: 2_000,
        pollMs: 500,
        now: () => waited,
        sleep: async (ms) => {
          waited += ms;
        },
      }),
    ).rejects.toThrow(/job n has not started .*nothing was cancelled/);
    expect(never.objects.has('batch/n/cancel')).toBe(false);

    await expect(cancelJob(new MemoryBucket(), 'nope', { sleep: noSleep })).rejects.toThrow(
      /no batch job 'nope' \(batch\/nope\/job.json does not exist\)/,
    );

    let clock = 0;
    const stuck = jobUntilCancel([running]);
    await expect(
      cancelJob(stuck, 'j', {
        timeoutMs: 2_000,
        pollMs: 500,
        now: () => clock,
        sleep: async (ms) => {
          clock += ms;
        },
      }),
    ).rejects.toThrow(
      /job j is still running after the cancel request; follow it with `maas batch status j`/,
    );
    expect(stuck.puts.map((p) => p.key)).toEqual(['batch/j/cancel']);
  });
});
