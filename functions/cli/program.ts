/**
 * The `maas` command line (commander): the everyday registry and inference workflow against the local
 * service or a deployed stack, plus `maas dev`. Exit codes: 0 ok, 1 the server (or the network) said no,
 * 2 usage error.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { SingleBar } from 'cli-progress';
import { Command, CommanderError, Option } from 'commander';
import { version as packageVersion } from '../../package.json';
import { ConnectionError, MaasApiError, MaasClient, resolveEndpoint, uploadToPresignedUrl } from './client';
import {
  formatHistory,
  formatModels,
  formatMoveResult,
  formatPrediction,
  formatRegistered,
  formatVersions,
} from './format';

/** Exit codes of the CLI. */
export const EXIT = { ok: 0, refused: 1, usage: 2 } as const;

/** A mistake in how the command was called (bad file, malformed JSON…): exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Where the CLI writes; tests capture it. */
export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
  /** Whether progress bars may be drawn. */
  readonly isTty: boolean;
}

export const processIo = (): CliIo => ({
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
  isTty: Boolean(process.stderr.isTTY),
});

interface GlobalOptions {
  endpoint?: string;
  region?: string;
  json?: boolean;
}

/** `name`, `name@3` or `name@prod` -> the OIP path prefix of that model (and ref). */
export function modelPath(spec: string): { name: string; ref?: string; path: string } {
  const at = spec.indexOf('@');
  const name = at < 0 ? spec : spec.slice(0, at);
  const ref = at < 0 ? undefined : spec.slice(at + 1);
  if (!name || ref === '')
    throw new UsageError(`'${spec}' is not a model reference (name, name@version or name@alias)`);
  const base = `/v2/models/${encodeURIComponent(name)}`;
  return ref ? { name, ref, path: `${base}/versions/${encodeURIComponent(ref)}` } : { name, path: base };
}

/** Reads `--input`: inline JSON, `@file`, or the path of an existing file. */
export function readInput(value: string): unknown {
  let text = value;
  if (value.startsWith('@')) text = readText(value.slice(1));
  else if (!/^\s*[[{]/.test(value) && existsSync(value)) text = readText(value);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--input is not valid JSON: ${(e as Error).message}`);
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

interface InputSpec {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
}

/** Shape of a nested array (`[[1,2],[3,4]]` -> [2,2]); ragged arrays are a usage error. */
export function shapeOf(value: unknown): number[] {
  const shape: number[] = [];
  let level: unknown = value;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0];
  }
  const check = (v: unknown, depth: number): void => {
    if (depth === shape.length) {
      if (Array.isArray(v)) throw new UsageError('input arrays are ragged (rows of different lengths)');
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      throw new UsageError('input arrays are ragged (rows of different lengths)');
    }
    for (const item of v) check(item, depth + 1);
  };
  check(value, 0);
  return shape;
}

/**
 * Turns `--input` into an OIP request. Accepted: a full request (`{"inputs":[…]}`), an array of rows (or
 * one row) for a model with one input, or `{"<input name>": rows, …}`. `inputs` are the model's inputs.
 */
export function toInferenceRequest(input: unknown, inputs: readonly InputSpec[]): Record<string, unknown> {
  if (input !== null && typeof input === 'object' && !Array.isArray(input) && 'inputs' in input) {
    return input as Record<string, unknown>;
  }
  const tensor = (spec: InputSpec, data: unknown) => {
    if (!Array.isArray(data)) throw new UsageError(`input '${spec.name}' must be an array`);
    let shape = shapeOf(data);
    // One row for a batched model: [a, b, c, d] -> [[a, b, c, d]].
    if (shape.length === spec.shape.length - 1) shape = [1, ...shape];
    return { name: spec.name, shape, datatype: spec.datatype, data: data.flat(Number.POSITIVE_INFINITY) };
  };
  if (Array.isArray(input)) {
    if (inputs.length !== 1) {
      throw new UsageError(
        `the model has ${inputs.length} inputs (${inputs.map((i) => i.name).join(', ')}): pass {"<input>": [...], ...}`,
      );
    }
    return { inputs: [tensor(inputs[0] as InputSpec, input)] };
  }
  if (input !== null && typeof input === 'object') {
    return {
      inputs: Object.entries(input).map(([name, data]) => {
        const spec = inputs.find((i) => i.name === name);
        if (!spec)
          throw new UsageError(
            `the model has no input '${name}' (it has ${inputs.map((i) => i.name).join(', ')})`,
          );
        return tensor(spec, data);
      }),
    };
  }
  throw new UsageError('--input must be a JSON array of rows, {"<input>": rows} or an inference request');
}

/** Parses `--labels a,b,c` / `--labels-file` (a JSON array or one label per line). */
export function readLabels(labels: string | undefined, labelsFile: string | undefined): string[] | undefined {
  if (labels !== undefined && labelsFile !== undefined)
    throw new UsageError('use --labels or --labels-file, not both');
  if (labels !== undefined) return labels.split(',').map((l) => l.trim());
  if (labelsFile === undefined) return undefined;
  const text = readText(labelsFile);
  if (text.trim().startsWith('[')) {
    try {
      const parsed = JSON.parse(text) as unknown;
      if (Array.isArray(parsed) && parsed.every((l) => typeof l === 'string')) return parsed;
    } catch {
      // fall through
    }
    throw new UsageError(`${labelsFile} must hold a JSON array of strings or one label per line`);
  }
  return text.split(/\r?\n/).filter((l) => l.trim() !== '');
}

function parseJsonOption(name: string, value: string | undefined): unknown {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (e) {
    throw new UsageError(`${name} is not valid JSON: ${(e as Error).message}`);
  }
}

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0)
      throw new UsageError(`${name} must be a non-negative integer, got '${value}'`);
    return n;
  };
}

/** Builds the program; `run` executes it and maps every outcome to an exit code. */
export function buildProgram(io: CliIo): Command {
  const program = new Command('maas')
    .description(
      'ONNX models as an HTTPS inference service: the local service and the registry/inference CLI',
    )
    .option(
      '--endpoint <url>',
      'service URL (default: MAAS_ENDPOINT, the running `maas dev`, http://127.0.0.1:3000)',
    )
    .option(
      '--region <region>',
      'AWS region for SigV4 signing of https endpoints (default: the region in an execute-api URL, else AWS_REGION)',
    )
    .option('--json', 'print the raw JSON answer')
    .version(packageVersion, '-V, --version', 'print the version of maas')
    .showHelpAfterError(false)
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .exitOverride();

  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  const client = () => {
    const g = globals();
    const endpoint = resolveEndpoint(g.endpoint, io.env);
    if (!URL.canParse(endpoint) || !/^https?:$/.test(new URL(endpoint).protocol)) {
      throw new UsageError(`--endpoint must be an http(s) URL, got '${endpoint}'`);
    }
    return new MaasClient({
      endpoint,
      ...(g.region ? { region: g.region } : {}),
    });
  };
  const print = (answer: unknown, human: (a: never) => string) => {
    io.out(globals().json ? `${JSON.stringify(answer, null, 2)}\n` : `${human(answer as never)}\n`);
  };

  program
    .command('dev')
    .description('run the whole service locally (DynamoDB Local + s3rver) with the sample model')
    .option('--in-memory', 'keep no data (nothing is written under $MAAS_HOME but endpoints.json)')
    .option('--port <port>', 'HTTP port (default: PORT or 3000)', positiveInt('--port'))
    .action(async (opts: { inMemory?: boolean; port?: number }) => {
      const { runDev } = await import('../local/dev');
      const code = await runDev({
        inMemory: Boolean(opts.inMemory),
        ...(opts.port !== undefined ? { port: opts.port } : {}),
        log: (line) => io.out(`${line}\n`),
      });
      program.setOptionValue('__exitCode', code);
    });

  program
    .command('export-sample')
    .description('write the bundled sample model (iris classifier, trained on the spot) as an ONNX file')
    .argument('<file>', 'where to write it, e.g. iris.onnx')
    .action(async (file: string) => {
      const { buildIrisModel, IRIS_LABELS } = await import('../local/sample-model');
      const bytes = buildIrisModel();
      try {
        writeFileSync(file, bytes);
      } catch (e) {
        throw new UsageError(
          `cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        );
      }
      const answer = { file, sizeBytes: bytes.length, labels: [...IRIS_LABELS] };
      print(answer, () => `wrote ${file} (${bytes.length} bytes; labels ${IRIS_LABELS.join(',')})`);
    });

  program
    .command('register')
    .description('upload an ONNX file and register it as the next version of a model')
    .argument('<file>', 'the .onnx file')
    .requiredOption('--name <name>', 'model name')
    .option('--description <text>', 'version description')
    .option('--labels <list>', 'class labels, comma-separated, in output order')
    .option('--labels-file <file>', 'class labels: a JSON array or one per line')
    .option('--postprocess <json>', 'post-processing, e.g. \'{"softmax":true,"topK":3}\'')
    .action(
      async (
        file: string,
        opts: {
          name: string;
          description?: string;
          labels?: string;
          labelsFile?: string;
          postprocess?: string;
        },
      ) => {
        let bytes: Uint8Array;
        try {
          bytes = readFileSync(file);
        } catch (e) {
          throw new UsageError(
            `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
          );
        }
        const labels = readLabels(opts.labels, opts.labelsFile);
        const postprocess = parseJsonOption('--postprocess', opts.postprocess);
        const c = client();
        const name = encodeURIComponent(opts.name);
        const upload = await c.request<{ uploadId: string; url: string }>('POST', `/models/${name}/uploads`);
        const showBar = io.isTty && !globals().json;
        const bar = showBar
          ? new SingleBar({
              format: `uploading ${basename(file)} [{bar}] {percentage}% {value}/{total} bytes`,
              stream: process.stderr,
              hideCursor: true,
            })
          : undefined;
        bar?.start(bytes.length, 0);
        try {
          await uploadToPresignedUrl(upload.url, bytes, (sent) => bar?.update(sent));
        } finally {
          bar?.stop();
        }
        const version = await c.request('POST', `/models/${name}/versions`, {
          uploadId: upload.uploadId,
          ...(opts.description !== undefined ? { description: opts.description } : {}),
          ...(labels !== undefined ? { labels } : {}),
          ...(postprocess !== undefined ? { postprocess } : {}),
        });
        print(version, formatRegistered);
      },
    );

  program
    .command('models')
    .description('list models with their aliases and latest version')
    .option('--limit <n>', 'page size', positiveInt('--limit'))
    .option('--next-token <token>', 'continue a previous listing')
    .action(async (opts: { limit?: number; nextToken?: string }) => {
      print(await client().request('GET', `/models${query(opts)}`), formatModels);
    });

  program
    .command('versions')
    .description('list the versions of a model, newest first')
    .argument('<name>', 'model name')
    .option('--limit <n>', 'page size', positiveInt('--limit'))
    .option('--next-token <token>', 'continue a previous listing')
    .action(async (name: string, opts: { limit?: number; nextToken?: string }) => {
      print(
        await client().request('GET', `/models/${encodeURIComponent(name)}/versions${query(opts)}`),
        formatVersions,
      );
    });

  program
    .command('promote')
    .description('point an alias (default prod) at a version')
    .argument('<name>', 'model name')
    .argument('<version>', 'version number', positiveInt('<version>'))
    .option('--alias <alias>', 'alias to move', 'prod')
    .option(
      '--expect <version>',
      'only if the alias currently points at this version (0 = unset)',
      positiveInt('--expect'),
    )
    .option('--reason <text>', 'recorded in the alias history')
    .action(
      async (name: string, version: number, opts: { alias: string; expect?: number; reason?: string }) => {
        const answer = await client().request(
          'PUT',
          `/models/${encodeURIComponent(name)}/aliases/${encodeURIComponent(opts.alias)}`,
          {
            version,
            ...(opts.expect !== undefined ? { expectedVersion: opts.expect } : {}),
            ...(opts.reason !== undefined ? { reason: opts.reason } : {}),
          },
        );
        print(answer, (a) => formatMoveResult(name, a));
      },
    );

  program
    .command('rollback')
    .description('move an alias (default prod) back to the version it had before')
    .argument('<name>', 'model name')
    .option('--alias <alias>', 'alias to roll back', 'prod')
    .option('--reason <text>', 'recorded in the alias history')
    .action(async (name: string, opts: { alias: string; reason?: string }) => {
      const answer = await client().request(
        'POST',
        `/models/${encodeURIComponent(name)}/aliases/${encodeURIComponent(opts.alias)}/rollback`,
        opts.reason !== undefined ? { reason: opts.reason } : {},
      );
      print(answer, (a) => formatMoveResult(name, a));
    });

  program
    .command('history')
    .description('the moves of an alias (default prod), newest first')
    .argument('<name>', 'model name')
    .option('--alias <alias>', 'alias', 'prod')
    .option('--limit <n>', 'page size', positiveInt('--limit'))
    .action(async (name: string, opts: { alias: string; limit?: number }) => {
      print(
        await client().request(
          'GET',
          `/models/${encodeURIComponent(name)}/aliases/${encodeURIComponent(opts.alias)}/history${query({
            ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
          })}`,
        ),
        formatHistory,
      );
    });

  program
    .command('predict')
    .description('run inference: rows for a one-input model, {"<input>": rows}, or a full OIP request')
    .argument('<model>', 'name, name@version or name@alias (default alias prod)')
    .addOption(new Option('--input <json|@file|file>', 'the input').makeOptionMandatory())
    .action(async (spec: string, opts: { input: string }) => {
      const target = modelPath(spec);
      const input = readInput(opts.input);
      const c = client();
      let request: Record<string, unknown>;
      if (input !== null && typeof input === 'object' && !Array.isArray(input) && 'inputs' in input) {
        request = input as Record<string, unknown>;
      } else {
        const meta = await c.request<{ inputs: InputSpec[] }>('GET', target.path);
        request = toInferenceRequest(input, meta.inputs);
      }
      print(await c.request('POST', `${target.path}/infer`, request), formatPrediction);
    });

  program
    .command('batch')
    .description(
      'score a JSONL file (one inference request per line) with the batch pipeline and wait for it',
    )
    .argument('<model>', 'name, name@version or name@alias (default alias prod)')
    .argument('<input>', 'the .jsonl file')
    .option('--out <file>', 'write output.jsonl here (default: standard output)')
    .option('--job-id <id>', 'job id (default: cli-<time>-<random>)')
    .option('--bucket <bucket>', "a deployed stack's model bucket (default: the running `maas dev`'s)")
    .option('--timeout <seconds>', 'give up waiting after this long', positiveInt('--timeout'), 600)
    .action(
      async (
        spec: string,
        file: string,
        opts: { out?: string; jobId?: string; bucket?: string; timeout: number },
      ) => {
        const target = modelPath(spec);
        const input = (() => {
          try {
            return readFileSync(file);
          } catch (e) {
            throw new UsageError(
              `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
            );
          }
        })();
        const g = globals();
        const { batchStore, newJobId, runBatch } = await import('./batch');
        const store = batchStore(
          {
            endpoint: resolveEndpoint(g.endpoint, io.env),
            ...(opts.bucket ? { bucket: opts.bucket } : {}),
            ...(g.region ? { region: g.region } : {}),
          },
          io.env,
        );
        if (!store) {
          throw new UsageError(
            'no bucket for batch jobs: start `maas dev`, or pass --bucket <the stack’s model bucket>',
          );
        }
        const jobId = opts.jobId ?? newJobId();
        const result = await runBatch(
          store,
          { jobId, model: target.name, ...(target.ref ? { ref: target.ref } : {}), input },
          {
            timeoutMs: opts.timeout * 1000,
            ...(io.isTty && !g.json
              ? {
                  onStatus: (st) =>
                    io.err(`\rjob ${jobId}: ${st.state} ${st.succeeded + st.failed}/${st.total} rows`),
                }
              : {}),
          },
        );
        if (io.isTty && !g.json) io.err('\n');
        const st = result.status;
        if (result.output && opts.out) writeFileSync(opts.out, result.output);
        else if (result.output && !g.json) io.out(Buffer.from(result.output).toString('utf8'));
        if (g.json) io.out(`${JSON.stringify(st, null, 2)}\n`);
        else {
          io.err(
            st.state === 'done'
              ? `job ${jobId}: ${st.total} rows scored with ${target.name} version ${st.version}: ${st.succeeded} ok, ${st.failed} failed${opts.out ? ` -> ${opts.out}` : ''}\n`
              : `job ${jobId} failed: ${st.error ?? 'unknown error'} (${st.code ?? 'FAILED'})\n`,
          );
        }
        if (st.state === 'failed') program.setOptionValue('__exitCode', EXIT.refused);
      },
    );

  return program;
}

function query(opts: { limit?: number; nextToken?: string }): string {
  const q = new URLSearchParams();
  if (opts.limit !== undefined) q.set('limit', String(opts.limit));
  if (opts.nextToken !== undefined) q.set('nextToken', opts.nextToken);
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Runs the CLI on `argv` (as process.argv: node, script, args…) and returns the exit code. */
export async function run(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...argv]);
    const code = program.getOptionValue('__exitCode') as number | undefined;
    return code ?? EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        (e.code === 'commander.help' && e.exitCode === 0)
      ) {
        return EXIT.ok;
      }
      return EXIT.usage; // commander already printed the message
    }
    if (e instanceof UsageError) {
      io.err(`error: ${e.message}\n`);
      return EXIT.usage;
    }
    const json = Boolean(program.opts<GlobalOptions>().json);
    if (e instanceof MaasApiError) {
      if (json && e.body !== undefined && typeof e.body === 'object')
        io.out(`${JSON.stringify(e.body, null, 2)}\n`);
      io.err(`error: ${e.message} (${e.status} ${e.code})\n`);
      return EXIT.refused;
    }
    if (e instanceof ConnectionError) {
      io.err(`error: ${e.message}\n`);
      return EXIT.refused;
    }
    io.err(`error: ${(e as Error)?.message ?? String(e)}\n`);
    return EXIT.refused;
  }
}
