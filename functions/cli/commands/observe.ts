/**
 * The observability commands: `maas feedback` (ground truth for answered inferences), `maas capture` (captured
 * records read back) and `maas stats` (the local service's metrics per model, version, alias and route).
 */
import type { Command } from 'commander';
import { LIMITS } from '../../contract/limits';
import type { FeedbackItem } from '../../domain/capture';
import { parseSince } from '../../domain/capture-listing';
import { BadRequestError } from '../../domain/errors';
import { parseFeedbackItem } from '../../domain/feedback';
import { apiCall, MaasApiError, UnexpectedAnswerError } from '../client';
import { type CliContext, EXIT, UsageError } from '../context';
import { printable, table } from '../format';
import { nonNegativeInt, readBytes, signedNumber } from '../input';
import { inferenceStats, parsePrometheusText, type SeriesStats } from '../prometheus';

/** The most records `maas capture` fetches (the API's largest page). */
const MAX_CAPTURE_RECORDS = 1000;

/** The capture record fields the CLI shows. */
interface CapturedRecordJson {
  captureData: {
    endpointInput?: { data?: string; encoding?: string };
    endpointOutput?: { data?: string; encoding?: string };
  };
  eventMetadata: { inferenceId: string; inferenceTime: string };
  version: number;
  alias?: string;
  route: string;
  status: number;
  truncated?: true;
}

interface FeedbackOptions {
  readonly id?: string;
  readonly label?: string;
  readonly value?: number;
  readonly file?: string;
}

interface CaptureOptions {
  readonly version?: number;
  readonly since?: string;
  readonly limit: number;
}

/** Defines `maas feedback`, `maas capture` and `maas stats` on `program`. */
export function observeCommands(program: Command, ctx: CliContext): void {
  program
    .command('feedback')
    .description(
      'send ground truth for answered inferences (joined with captured records on the inference id)',
    )
    .argument('<model>', 'model name')
    .option(
      '--id <inferenceId>',
      'the inference id (the x-maas-inference-id header of the answer, or the request id)',
    )
    .option('--label <label>', 'the true label (sent as a string; use --file for numbers or booleans)')
    .option('--value <number>', 'the true value (regression)', signedNumber('--value'))
    .option('--file <items.json|items.jsonl>', 'a JSON item or array of items, or one item per line')
    .action(
      ctx.action(async (model: string, opts: FeedbackOptions) => {
        const items = feedbackItems(opts);
        const client = ctx.client();
        let accepted = 0;
        for (let i = 0; i < items.length; i += LIMITS.maxFeedbackItems) {
          const chunk = items.slice(i, i + LIMITS.maxFeedbackItems);
          try {
            const answer = await client.send<{ accepted: number }>(
              apiCall('modelFeedback', { name: model }),
              chunk,
            );
            accepted += answer.accepted;
          } catch (e) {
            // Requests before this one were stored: say which, so that only the rest is sent again.
            if (accepted > 0) {
              ctx.io.err(
                `${accepted} of ${items.length} feedback item(s) were accepted (the first ${i}) before this request failed; send only the rest again\n`,
              );
            }
            throw e;
          }
        }
        ctx.print({ accepted }, (a: { accepted: number }) =>
          printable(`${a.accepted} feedback item(s) accepted for ${model}`),
        );
        return EXIT.ok;
      }),
    );

  program
    .command('capture')
    .description('captured requests and responses of a model, oldest hour first')
    .argument('<model>', 'model name')
    .option('--version <n>', 'only this version', nonNegativeInt('--version'))
    .option(
      '--since <time>',
      'only records answered since: an ISO time, or 45s, 30m, 1h, 2d… ago (s, m, h, d)',
    )
    .option(
      '--limit <n>',
      `at most this many records (1-${MAX_CAPTURE_RECORDS})`,
      nonNegativeInt('--limit'),
      100,
    )
    .action(
      ctx.action(async (model: string, opts: CaptureOptions) => {
        if (opts.limit < 1 || opts.limit > MAX_CAPTURE_RECORDS) {
          throw new UsageError(`--limit must be from 1 to ${MAX_CAPTURE_RECORDS}, got ${opts.limit}`);
        }
        const since = opts.since !== undefined ? resolveSince(opts.since) : undefined;
        const client = ctx.client();
        const records: CapturedRecordJson[] = [];
        let token: string | undefined;
        do {
          const call = apiCall(
            'listCapture',
            { name: model },
            { version: opts.version, since, limit: opts.limit - records.length, nextToken: token },
          );
          const page = await client.send<{ records: CapturedRecordJson[]; nextToken?: string }>(call);
          if (!Array.isArray(page?.records)) {
            throw new UnexpectedAnswerError(`${client.endpoint} answered a capture page without its records`);
          }
          records.push(...page.records);
          // A page that names the token it was asked with again would be asked for ever.
          if (page.nextToken !== undefined && page.nextToken === token) {
            throw new UnexpectedAnswerError(
              `${client.endpoint} answered the same capture page again (nextToken '${printable(token)}')`,
            );
          }
          token = page.nextToken;
        } while (token !== undefined && records.length < opts.limit);
        ctx.print(records, formatCapture);
        return EXIT.ok;
      }),
    );

  program
    .command('stats')
    .description(
      'request counts, errors, latency and cold starts per model version (the local `maas dev` only)',
    )
    .argument('[model]', 'only this model')
    .action(
      ctx.action(async (model: string | undefined) => {
        const client = ctx.client();
        const res = await client.getText('/metrics');
        if (res.status !== 200 || !res.contentType.startsWith('text/plain')) {
          throw new MaasApiError(
            res.status,
            'NO_LOCAL_METRICS',
            `${client.endpoint} serves no /metrics (it answered ${res.status}${res.contentType ? ` ${res.contentType.split(';')[0]}` : ''}): only the local \`maas dev\` does; for a deployed stack, use its CloudWatch dashboard`,
            undefined,
          );
        }
        const stats = inferenceStats(parsePrometheusText(res.text), model);
        ctx.print(stats, (s: SeriesStats[]) => formatStats(s, model));
        return EXIT.ok;
      }),
    );
}

/**
 * The items of `maas feedback` (from --id with --label or --value, or from --file), each checked as the API checks it (`parseFeedbackItem`) before any is sent: a file of more
 * than `LIMITS.maxFeedbackItems` goes in several requests, and a bad item in a later one would leave the earlier
 * ones stored. A bad item is a usage error naming its place in the file.
 */
function feedbackItems(opts: FeedbackOptions): FeedbackItem[] {
  if (opts.file !== undefined) {
    if (opts.id !== undefined || opts.label !== undefined || opts.value !== undefined) {
      throw new UsageError('use --file, or --id with --label or --value, not both');
    }
    const items = readItems(opts.file);
    if (items.length === 0) throw new UsageError(`${opts.file} holds no feedback items`);
    return items.map(({ item, where }) => checked(() => parseFeedbackItem(item, `${opts.file} ${where}`)));
  }
  if (opts.id === undefined)
    throw new UsageError('pass --id <inferenceId> with --label or --value, or --file');
  if ((opts.label === undefined) === (opts.value === undefined)) {
    throw new UsageError('pass exactly one of --label and --value');
  }
  const item = {
    inferenceId: opts.id,
    ...(opts.label !== undefined ? { label: opts.label } : { value: opts.value }),
  };
  return [checked(() => parseFeedbackItem(item, 'the item'))];
}

/** A domain refusal of an item as a usage error (nothing was sent). */
function checked(parse: () => FeedbackItem): FeedbackItem {
  try {
    return parse();
  } catch (e) {
    if (e instanceof BadRequestError) throw new UsageError(e.message, { cause: e });
    throw e;
  }
}

/**
 * A JSON file (one item or an array of items: `item n`, from 0) or a JSONL file (one item per line: `line n`, from
 * 1), each item with its place in the file.
 */
function readItems(file: string): { item: unknown; where: string }[] {
  const text = readBytes(file).toString('utf8');
  try {
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed)
      ? parsed.map((item, i) => ({ item, where: `item ${i}` }))
      : [{ item: parsed, where: 'item' }];
  } catch {
    // not one JSON document: JSON lines
  }
  return text.split(/\r?\n/).flatMap((line, i) => {
    if (line.trim() === '') return [];
    try {
      return [{ item: JSON.parse(line) as unknown, where: `line ${i + 1}` }];
    } catch (e) {
      throw new UsageError(`${file} line ${i + 1} is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
  });
}

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/**
 * `--since`: `45s`, `30m`, `1h`, `2d` (ago, from `now`) as an ISO time; an ISO time as the API takes it
 * (`parseSince`) as written. Anything else (`1w`, `tomorrow`) is a usage error naming the forms.
 */
export function resolveSince(value: string, now: Date = new Date()): string {
  const m = /^(\d{1,6})([smhd])$/.exec(value.trim());
  if (m) return new Date(now.getTime() - Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS]).toISOString();
  try {
    parseSince(value);
  } catch (e) {
    if (!(e instanceof BadRequestError)) throw e;
    throw new UsageError(
      `--since must be a time ago in s, m, h or d (45s, 30m, 1h, 2d) or an ISO 8601 time (2026-12-01T04:00:00Z, 2026-12-01), got '${value}'`,
      { cause: e },
    );
  }
  return value;
}

/** A short excerpt of a captured body: its first characters, or why there is none. */
function excerpt(
  payload: { data?: string; encoding?: string } | undefined,
  truncated: boolean | undefined,
  width = 40,
): string {
  if (payload === undefined) return '-';
  if (payload.data === undefined) return truncated ? '(dropped: too large)' : '-';
  const flat = payload.encoding === 'BASE64' ? `base64:${payload.data}` : payload.data.replace(/\s+/g, ' ');
  return flat.length > width ? `${flat.slice(0, width - 1)}…` : flat;
}

const when = (iso: string) => iso.replace('T', ' ').replace(/Z$/, 'Z');

export function formatCapture(records: readonly CapturedRecordJson[]): string {
  if (records.length === 0) return 'no captured records (is capture enabled on the alias or version?)';
  return table(
    ['TIME', 'INFERENCE ID', 'VERSION', 'ALIAS', 'ROUTE', 'STATUS', 'INPUT', 'OUTPUT'],
    records.map((r) => [
      when(r.eventMetadata.inferenceTime),
      r.eventMetadata.inferenceId,
      String(r.version),
      r.alias ?? '-',
      r.route,
      String(r.status),
      excerpt(r.captureData.endpointInput, r.truncated),
      excerpt(r.captureData.endpointOutput, r.truncated),
    ]),
  );
}

const ms = (v: number) => (Number.isNaN(v) ? '-' : v >= 100 ? v.toFixed(0) : v.toFixed(1));

const bytes = (n: number): string => {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
};

export function formatStats(stats: readonly SeriesStats[], model?: string): string {
  if (stats.length === 0) return model ? `no requests to ${model} yet` : 'no inference requests yet';
  return table(
    ['MODEL', 'VERSION', 'ALIAS', 'ROUTE', 'REQUESTS', '4XX', '5XX', 'P50 MS', 'P99 MS', 'COLD', 'PAYLOAD'],
    stats.map((s) => [
      s.model,
      s.version || '-',
      s.alias || '-',
      s.route || '-',
      String(s.requests),
      String(s.clientErrors),
      String(s.serverErrors),
      ms(s.p50Ms),
      ms(s.p99Ms),
      String(s.coldStarts),
      bytes(s.payloadBytes),
    ]),
  );
}
