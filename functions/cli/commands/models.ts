/**
 * The model commands: `maas export-sample` (the bundled iris model as a file), `maas register` (presigned upload,
 * then registration of the next version, its pre-processing compiled in with `--preprocess`, waiting for a PENDING
 * one), `maas models` and `maas versions` (with
 * each derived version's parent and transforms).
 */
import { writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { apiCall, MaasApiError, uploadToPresignedUrl, waitWhilePending } from '../client';
import { type CliContext, EXIT, UsageError } from '../context';
import { formatModels, formatRegistered, printable } from '../format';
import { formatVersionsWithLineage } from '../format-derive';
import { nonNegativeInt, parseJsonOption, readBytes, readLabels } from '../input';
import { DEFAULT_WAIT_SECONDS, readJsonObject } from './derive';

interface RegisterOptions {
  readonly name: string;
  readonly description?: string;
  readonly labels?: string;
  readonly labelsFile?: string;
  readonly postprocess?: string;
  /** A JSON file: the pre-processing compiled into the registered model. */
  readonly preprocess?: string;
  /** Commander's `--no-wait`. */
  readonly wait: boolean;
  /** Seconds to wait for a PENDING version (default `DEFAULT_WAIT_SECONDS`). */
  readonly timeout?: number;
}

/** A version as the registry API answers it (what the CLI reads of it). */
interface VersionAnswer {
  readonly name: string;
  readonly version: number;
  readonly status: string;
  readonly failureReason?: string;
}

interface PageOptions {
  readonly limit?: number;
  readonly nextToken?: string;
}

/** Defines the model commands on `program`. */
export function modelCommands(program: Command, ctx: CliContext): void {
  program
    .command('export-sample')
    .description('write the bundled sample model (iris classifier, trained on the spot) as an ONNX file')
    .argument('<file>', 'where to write it, e.g. iris.onnx')
    .action(
      ctx.action(async (file: string) => {
        const { buildIrisModel, IRIS_LABELS } = await import('../../local/sample-model');
        const bytes = buildIrisModel();
        try {
          writeFileSync(file, bytes);
        } catch (e) {
          throw new UsageError(
            `cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
            { cause: e },
          );
        }
        const answer = { file, sizeBytes: bytes.length, labels: [...IRIS_LABELS] };
        ctx.print(answer, () => `wrote ${file} (${bytes.length} bytes; labels ${IRIS_LABELS.join(',')})`);
        return EXIT.ok;
      }),
    );

  program
    .command('register')
    .description('upload an ONNX file and register it as the next version of a model')
    .argument('<file>', 'the .onnx file')
    .requiredOption('--name <name>', 'model name')
    .option('--description <text>', 'version description')
    .option('--labels <list>', 'class labels, comma-separated, in output order')
    .option('--labels-file <file>', 'class labels: a JSON array or one per line')
    .option('--postprocess <json>', 'post-processing, e.g. \'{"softmax":true,"topK":3}\'')
    .option('--preprocess <file>', 'pre-processing compiled into the model: a JSON file, input name -> steps')
    .option('--no-wait', 'return at once when the registration continues in the background (PENDING)')
    .option(
      '--timeout <seconds>',
      `give up waiting for a PENDING version after this long (default ${DEFAULT_WAIT_SECONDS})`,
      nonNegativeInt('--timeout'),
    )
    .action(
      ctx.action(async (file: string, opts: RegisterOptions) => {
        if (opts.timeout !== undefined && !opts.wait) {
          throw new UsageError('--timeout goes with waiting; --no-wait does not wait');
        }
        const bytes = readBytes(file);
        const labels = readLabels(opts.labels, opts.labelsFile);
        const postprocess = parseJsonOption('--postprocess', opts.postprocess);
        const preprocess = opts.preprocess !== undefined ? readJsonObject(opts.preprocess) : undefined;
        const c = ctx.client();
        const model = { name: opts.name };
        // The size is signed into the upload URL: storage takes exactly these bytes.
        const upload = await c.send<{ uploadId: string; url: string }>(apiCall('createUpload', model), {
          sizeBytes: bytes.length,
        });
        const bar =
          ctx.io.isTty && !ctx.globals().json
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
        let version = await c.send<VersionAnswer>(apiCall('registerVersion', model), {
          uploadId: upload.uploadId,
          ...(opts.description !== undefined ? { description: opts.description } : {}),
          ...(labels !== undefined ? { labels } : {}),
          ...(postprocess !== undefined ? { postprocess } : {}),
          ...(preprocess !== undefined ? { preprocess } : {}),
        });
        // 202: the registration continues on the server; wait for its outcome unless told not to.
        if (version.status === 'PENDING' && opts.wait) {
          const progress =
            ctx.io.isTty && !ctx.globals().json
              ? (s: number) =>
                  ctx.io.err(
                    `\r${printable(`registering ${version.name} version ${version.version}: PENDING (${s} s)`)}`,
                  )
              : undefined;
          version = await waitWhilePending(
            c,
            version,
            (opts.timeout ?? DEFAULT_WAIT_SECONDS) * 1000,
            progress,
          );
          if (progress) ctx.io.err('\n');
          if (version.status === 'PENDING') {
            ctx.io.err(
              `${printable(`version ${version.version} of '${version.name}' is still PENDING after ${opts.timeout} s; see \`maas versions ${version.name}\``)}\n`,
            );
            ctx.print(version, formatRegistered);
            return EXIT.refused;
          }
          if (version.status === 'FAILED') {
            // The answer a synchronous registration of the same artifact gives.
            const message = `version ${version.version} of '${version.name}' is FAILED: ${version.failureReason ?? ''}`;
            throw new MaasApiError(422, 'INVALID_MODEL', message, { error: message, code: 'INVALID_MODEL' });
          }
        }
        ctx.print(version, formatRegistered);
        return EXIT.ok;
      }),
    );

  program
    .command('models')
    .description('list models with their aliases and latest version')
    .option('--limit <n>', 'page size', nonNegativeInt('--limit'))
    .option('--next-token <token>', 'continue a previous listing')
    .action(
      ctx.action(async (opts: PageOptions) => {
        ctx.print(await ctx.client().send(apiCall('listModels', {}, page(opts))), formatModels);
        return EXIT.ok;
      }),
    );

  program
    .command('versions')
    .description('list the versions of a model, newest first')
    .argument('<name>', 'model name')
    .option('--limit <n>', 'page size', nonNegativeInt('--limit'))
    .option('--next-token <token>', 'continue a previous listing')
    .action(
      ctx.action(async (name: string, opts: PageOptions) => {
        // Derived versions show where they come from (`FROM`: parent version and transforms).
        ctx.print(
          await ctx.client().send(apiCall('listVersions', { name }, page(opts))),
          formatVersionsWithLineage,
        );
        return EXIT.ok;
      }),
    );
}

/** The query of a listing page. */
const page = (opts: PageOptions) => ({ limit: opts.limit, nextToken: opts.nextToken });
