/**
 * `maas feedback`, `maas capture` and `maas stats` over stand-in servers: what they send, what they print, their
 * usage errors; the Prometheus text parser, the quantile estimate (checked against prom-client's own text) and
 * `--version` after a command's name.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Counter, Histogram, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrometheusMetricsSink } from '../../functions/adapters/prometheus-metrics';
import { resolveSince } from '../../functions/cli/commands/observe';
import { UsageError } from '../../functions/cli/context';
import { commandVersionOption, run } from '../../functions/cli/program';
import {
  histogramQuantile,
  inferenceStats,
  PrometheusParseError,
  parsePrometheusText,
} from '../../functions/cli/prometheus';
import { PROMETHEUS, prometheusName } from '../../functions/contract/observability';
import { json } from '../../functions/handlers/http';
import { type RunningLocalServer, startLocalServer } from '../../functions/local/server';
import { captureIo } from '../helpers/cli-io';

const argv = (...args: string[]) => ['node', 'maas', ...args];

/** Runs the CLI against `endpoint`: its exit code and what it wrote. */
async function cliAt(endpoint: string, ...args: string[]) {
  const c = captureIo();
  const code = await run(argv('--endpoint', endpoint, ...args), c);
  return { code, out: c.stdout(), err: c.stderr() };
}

describe('Prometheus text', () => {
  it('parses samples with labels, escapes, special values and timestamps; skips comments', () => {
    const text = [
      '# HELP maas_requests_total Requests.',
      '# TYPE maas_requests_total counter',
      'maas_requests_total{model="a\\"b",version="1",alias="",route="stable"} 4',
      'maas_requests_total{model="x\\\\y\\nz"} 1e3 1700000000000',
      '',
      'up 1',
      'maas_latency_ms_bucket{le="+Inf",model="m"} +Inf',
      'g{a="1",} NaN',
    ].join('\n');
    const s = parsePrometheusText(text);
    expect(s.map((x) => x.name)).toEqual([
      'maas_requests_total',
      'maas_requests_total',
      'up',
      'maas_latency_ms_bucket',
      'g',
    ]);
    expect(s[0]).toEqual({
      name: 'maas_requests_total',
      labels: { model: 'a"b', version: '1', alias: '', route: 'stable' },
      value: 4,
    });
    expect(s[1]).toEqual({ name: 'maas_requests_total', labels: { model: 'x\\y\nz' }, value: 1000 });
    expect(s[3]?.value).toBe(Number.POSITIVE_INFINITY);
    expect(s[4]?.value).toBeNaN();
  });

  it.each([
    ['a value that is not a number', 'm 12abc'],
    ['no value', 'm{a="1"}'],
    ['an unterminated label value', 'm{a="1} 2'],
    ['a label without a value', 'm{a} 2'],
    ['no name', '{a="1"} 2'],
  ])('refuses %s', (_what, line) => {
    expect(() => parsePrometheusText(`ok 1\n${line}\n`)).toThrow(PrometheusParseError);
    expect(() => parsePrometheusText(line)).toThrow(/metrics line 1/);
  });

  it('estimates quantiles as histogram_quantile does', () => {
    const b = (...pairs: [number, number][]) => pairs.map(([le, count]) => ({ le, count }));
    const inf = Number.POSITIVE_INFINITY;
    // 10 observations: 4 in (0,10], 4 in (10,20], 2 above 20.
    const h = b([10, 4], [20, 8], [inf, 10]);
    expect(histogramQuantile(0.5, h)).toBeCloseTo(12.5); // rank 5: 1 of 4 into (10,20]
    expect(histogramQuantile(0.2, h)).toBeCloseTo(5); // rank 2: half of (0,10]
    expect(histogramQuantile(0.99, h)).toBe(20); // in +Inf: the highest finite bound
    expect(histogramQuantile(0.5, b([20, 8], [10, 4], [inf, 10]))).toBeCloseTo(12.5); // any order
    expect(histogramQuantile(0.5, b([10, 0], [inf, 0]))).toBeNaN(); // no observations
    expect(histogramQuantile(0.5, b([10, 3]))).toBeNaN(); // no +Inf bucket
    expect(histogramQuantile(0.5, b([-1, 2], [inf, 4]))).toBe(-1); // first bucket at or below 0
  });

  it('reads the text prom-client writes, and sums and groups the inference series', async () => {
    const registry = new Registry();
    const labelNames = ['model', 'version', 'alias', 'route'] as const;
    const requests = new Counter({
      name: prometheusName('Requests'),
      help: 'r',
      labelNames,
      registers: [registry],
    });
    const client = new Counter({
      name: prometheusName('ClientErrors'),
      help: 'c',
      labelNames,
      registers: [registry],
    });
    const latency = new Histogram({
      name: prometheusName('Latency'),
      help: 'l',
      labelNames,
      buckets: [...PROMETHEUS.latencyBucketsMs],
      registers: [registry],
    });
    const ops = new Counter({
      name: 'maas_registry_requests_total',
      help: 'o',
      labelNames: ['operation'],
      registers: [registry],
    });
    const iris1 = { model: 'iris', version: '1', alias: 'prod', route: 'stable' };
    const iris2 = { model: 'iris', version: '2', alias: '', route: 'stable' };
    const noVersion = { model: 'ghost', version: '', alias: 'prod', route: 'stable' };
    for (const ms of [3, 3, 3, 40]) {
      requests.inc(iris1);
      latency.observe(iris1, ms);
    }
    requests.inc(iris2, 2);
    latency.observe(iris2, 700);
    requests.inc(noVersion);
    client.inc(noVersion);
    ops.inc({ operation: 'moveAlias' });

    const stats = inferenceStats(parsePrometheusText(await registry.metrics()));
    expect(stats.map((s) => [s.model, s.version, s.alias, s.route, s.requests, s.clientErrors])).toEqual([
      ['ghost', '', 'prod', 'stable', 1, 1],
      ['iris', '1', 'prod', 'stable', 4, 0],
      ['iris', '2', '', 'stable', 2, 0],
    ]);
    const [, one, two] = stats;
    expect(one?.p50Ms).toBeCloseTo(2 + (5 - 2) * (2 / 3)); // rank 2 of 3 observations in (2,5]
    expect(one?.p99Ms).toBeCloseTo(25 + (50 - 25) * (3.96 - 3)); // rank 3.96: into (25,50]
    expect(two?.p50Ms).toBeCloseTo(500 + 500 * 0.5);
    expect(inferenceStats(parsePrometheusText(await registry.metrics()), 'ghost')).toHaveLength(1);
  });
});

describe('maas stats over the local metrics sink', () => {
  it('reads what PrometheusMetricsSink writes', async () => {
    const sink = new PrometheusMetricsSink();
    const base = { model: 'iris', route: 'stable', coldStart: false, payloadBytes: 100 } as const;
    sink.inference({ ...base, version: 1, alias: 'prod', status: 200, latencyMs: 3, coldStart: true });
    sink.inference({ ...base, version: 1, alias: 'prod', status: 200, latencyMs: 4 });
    sink.inference({ ...base, version: 1, alias: 'prod', status: 500, latencyMs: 40 });
    sink.inference({ ...base, status: 404, latencyMs: 1 });
    sink.operation({ operation: 'moveAlias', status: 200, latencyMs: 5, coldStart: false });
    const stats = inferenceStats(parsePrometheusText(await sink.text()));
    expect(
      stats.map((s) => [s.model, s.version, s.alias, s.requests, s.clientErrors, s.serverErrors]),
    ).toEqual([
      ['iris', '', '', 1, 1, 0],
      ['iris', '1', 'prod', 3, 0, 1],
    ]);
    expect(stats[1]).toMatchObject({ coldStarts: 1, payloadBytes: 300 });
    expect(stats[1]?.p50Ms).toBeGreaterThan(2);
    expect(stats[1]?.p50Ms).toBeLessThanOrEqual(5);
  });
});

describe('CLI argument handling', () => {
  it('turns 30m, 1h, 2d into ISO times, passes an ISO time on, and refuses any other form naming the forms', () => {
    const now = new Date('2026-12-01T12:00:00.000Z');
    expect(resolveSince('30m', now)).toBe('2026-12-01T11:30:00.000Z');
    expect(resolveSince('1h', now)).toBe('2026-12-01T11:00:00.000Z');
    expect(resolveSince('2d', now)).toBe('2026-11-29T12:00:00.000Z');
    expect(resolveSince('45s', now)).toBe('2026-12-01T11:59:15.000Z');
    expect(resolveSince('2026-12-01T00:00:00Z', now)).toBe('2026-12-01T00:00:00Z');
    expect(resolveSince('2026-12-01', now)).toBe('2026-12-01');
    expect(resolveSince('2026-12-01T04:00:00+02:00', now)).toBe('2026-12-01T04:00:00+02:00');
    for (const bad of ['soon', 'tomorrow', '1w', '2026-02-30', '-1h', '']) {
      expect(() => resolveSince(bad, now), bad).toThrow(UsageError);
      expect(() => resolveSince(bad, now), bad).toThrow(/45s, 30m, 1h, 2d.*ISO 8601 time/);
    }
  });

  it('keeps --version after a command name for the command', () => {
    expect(commandVersionOption(argv('capture', 'm', '--version', '2'))).toEqual(
      argv('capture', 'm', '--version=2'),
    );
    expect(
      commandVersionOption(argv('--endpoint', 'http://x', 'capture', 'm', '--version', '3', '--json')),
    ).toEqual(argv('--endpoint', 'http://x', 'capture', 'm', '--version=3', '--json'));
    expect(commandVersionOption(argv('--version'))).toEqual(argv('--version'));
    expect(commandVersionOption(argv('capture', 'm', '--version'))).toEqual(
      argv('capture', 'm', '--version'),
    );
    // Without a value, after a command with a --version of its own: the command's option, which refuses it.
    const own = new Set(['capture']);
    expect(commandVersionOption(argv('capture', 'm', '--version'), own)).toEqual(
      argv('capture', 'm', '--version='),
    );
    expect(commandVersionOption(argv('capture', 'm', '--version', '--json'), own)).toEqual(
      argv('capture', 'm', '--version=', '--json'),
    );
    expect(commandVersionOption(argv('predict', 'm', '--version'), own)).toEqual(
      argv('predict', 'm', '--version'),
    );
    expect(commandVersionOption(argv('--version', 'capture'), own)).toEqual(argv('--version', 'capture'));
  });

  it('refuses a --version without its number after capture and capture-config, and prints its own elsewhere', async () => {
    for (const command of [
      ['capture', 'm'],
      ['capture-config', 'm', '--sample', '5'],
    ]) {
      const c = captureIo();
      expect(await run(argv(...command, '--version'), c)).toBe(2);
      expect(c.stderr()).toMatch(/--version must be a non-negative integer, got ''/);
      expect(c.stdout()).toBe('');
    }
    const c = captureIo();
    expect(await run(argv('models', '--version'), c)).toBe(0);
    expect(c.stdout()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

interface Seen {
  method: string;
  url: string;
  body: string;
}

/** A stand-in HTTP API: answers each request with `answer(request)`. */
function fakeApi(answer: (s: Seen) => { status: number; body: unknown }) {
  const seen: Seen[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s = {
        method: req.method ?? '',
        url: req.url ?? '',
        body: Buffer.concat(chunks).toString('utf8'),
      };
      seen.push(s);
      const a = answer(s);
      res.writeHead(a.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(a.body));
    });
  });
  return {
    seen,
    start: () =>
      new Promise<string>((r) =>
        server.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)),
      ),
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('maas feedback', () => {
  const api = fakeApi((s) => {
    const body = JSON.parse(s.body) as unknown[];
    return { status: 201, body: { accepted: body.length } };
  });
  let url = '';
  const dir = mkdtempSync(join(tmpdir(), 'maas-feedback-'));
  beforeAll(async () => {
    url = await api.start();
  });
  afterAll(() => api.stop());
  const cli = (...args: string[]) => cliAt(url, ...args);

  it('sends one item with --label (a string) or --value (a number)', async () => {
    const a = await cli('feedback', 'iris', '--id', 'req-1', '--label', '2');
    expect(a).toEqual({ code: 0, out: '1 feedback item(s) accepted for iris\n', err: '' });
    expect(api.seen.at(-1)).toMatchObject({ method: 'POST', url: '/v2/models/iris/feedback' });
    expect(JSON.parse(api.seen.at(-1)?.body ?? '')).toEqual([{ inferenceId: 'req-1', label: '2' }]);
    const b = await cli('--json', 'feedback', 'iris', '--id', 'req-2', '--value', '-0.5');
    expect(JSON.parse(b.out)).toEqual({ accepted: 1 });
    expect(JSON.parse(api.seen.at(-1)?.body ?? '')).toEqual([{ inferenceId: 'req-2', value: -0.5 }]);
  });

  it('takes --value as a JSON number only: hexadecimal, blanks and numbers beyond the range are usage errors', async () => {
    const before = api.seen.length;
    for (const value of ['0x10', ' 5', '5 ', 'Infinity', '', '+5', '.5', '05', '1e400', '1e']) {
      const r = await cli('feedback', 'iris', '--id', 'r1', '--value', value);
      expect(r.code, value).toBe(2);
      expect(r.err, value).toContain(
        `--value must be a decimal number (e.g. -3.75 or 2.5e-7), got '${value}'`,
      );
    }
    expect(api.seen.length).toBe(before);
    // A number written with an exponent is the same number.
    for (const [value, sent] of [
      ['16', 16],
      ['-2.5e-7', -2.5e-7],
      ['1E3', 1000],
    ] as const) {
      expect((await cli('feedback', 'iris', '--id', 'r1', '--value', value)).code).toBe(0);
      expect(JSON.parse(api.seen.at(-1)?.body ?? '')).toEqual([{ inferenceId: 'r1', value: sent }]);
    }
  });

  it('sends the items of a JSON or a JSONL file, in requests of at most maxFeedbackItems', async () => {
    writeFileSync(join(dir, 'one.json'), '{"inferenceId":"a","label":true}');
    let r = await cli('feedback', 'iris', '--file', join(dir, 'one.json'));
    expect(r.out).toBe('1 feedback item(s) accepted for iris\n');
    expect(JSON.parse(api.seen.at(-1)?.body ?? '')).toEqual([{ inferenceId: 'a', label: true }]);
    const lines = Array.from({ length: 1500 }, (_, i) => JSON.stringify({ inferenceId: `i${i}`, label: i }));
    writeFileSync(join(dir, 'many.jsonl'), `${lines.join('\n')}\n`);
    const before = api.seen.length;
    r = await cli('feedback', 'iris', '--file', join(dir, 'many.jsonl'));
    expect(r).toEqual({ code: 0, out: '1500 feedback item(s) accepted for iris\n', err: '' });
    const sent = api.seen.slice(before).map((s) => JSON.parse(s.body) as unknown[]);
    expect(sent.map((b) => b.length)).toEqual([1000, 500]);
    expect(sent.flat()[1499]).toEqual({ inferenceId: 'i1499', label: 1499 });
  });

  it.each([
    ['no item at all', []],
    ['--id without --label or --value', ['--id', 'a']],
    ['both --label and --value', ['--id', 'a', '--label', 'x', '--value', '1']],
    ['--label without --id', ['--label', 'x']],
    ['--file with --id', ['--file', 'x.json', '--id', 'a']],
    ['a --value that is not a number', ['--id', 'a', '--value', 'abc']],
  ])('is a usage error with %s, sending nothing', async (_what, args) => {
    const before = api.seen.length;
    const r = await cli('feedback', 'iris', ...args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^error: /);
    expect(api.seen.length).toBe(before);
  });

  it('checks every item before it sends any: a bad item of a later request is a usage error naming its line', async () => {
    const lines = Array.from({ length: 1500 }, (_, i) =>
      i === 1200
        ? '{"inferenceId":"i1200","label":null}'
        : JSON.stringify({ inferenceId: `i${i}`, label: i }),
    );
    writeFileSync(join(dir, 'late-bad.jsonl'), `${lines.join('\n')}\n`);
    const before = api.seen.length;
    const r = await cli('feedback', 'iris', '--file', join(dir, 'late-bad.jsonl'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/late-bad\.jsonl line 1201: label must be a string/);
    expect(api.seen.length).toBe(before);
    writeFileSync(
      join(dir, 'bad-item.json'),
      '[{"inferenceId":"a","value":1},{"inferenceId":"b","label":9007199254740993}]',
    );
    const j = await cli('feedback', 'iris', '--file', join(dir, 'bad-item.json'));
    expect(j.code).toBe(2);
    expect(j.err).toMatch(/bad-item\.json item 1: label 9007199254740992 is an integer beyond/);
    expect(api.seen.length).toBe(before);
  });

  it('says how many items were stored when a later request fails', async () => {
    let calls = 0;
    const failing = fakeApi((s) => {
      calls++;
      return calls === 1
        ? { status: 201, body: { accepted: (JSON.parse(s.body) as unknown[]).length } }
        : { status: 503, body: { error: 'try again', code: 'UNAVAILABLE' } };
    });
    const at = await failing.start();
    try {
      const lines = Array.from({ length: 1500 }, (_, i) =>
        JSON.stringify({ inferenceId: `i${i}`, value: i }),
      );
      writeFileSync(join(dir, 'half.jsonl'), `${lines.join('\n')}\n`);
      const r = await cliAt(at, 'feedback', 'iris', '--file', join(dir, 'half.jsonl'));
      expect(r.code).toBe(1);
      expect(r.err).toMatch(
        /^1000 of 1500 feedback item\(s\) were accepted \(the first 1000\) before this request failed; send only the rest again\n/,
      );
      expect(r.err).toMatch(/UNAVAILABLE/);
      expect(r.out).toBe('');
    } finally {
      await failing.stop();
    }
  });

  it('reports a bad line of a JSONL file as a usage error', async () => {
    writeFileSync(join(dir, 'bad.jsonl'), '{"inferenceId":"a","value":1}\n{oops\n');
    const r = await cli('feedback', 'iris', '--file', join(dir, 'bad.jsonl'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/line 2 is not valid JSON/);
  });
});

describe('maas capture', () => {
  const record = (n: number) => ({
    captureData: {
      endpointInput: {
        observedContentType: 'application/json',
        mode: 'INPUT',
        data: `{"inputs":[{"data":[${n}, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]}]}`,
        encoding: 'JSON',
      },
      endpointOutput: {
        observedContentType: 'application/json',
        mode: 'OUTPUT',
        data: `{"outputs":[${n}]}`,
        encoding: 'JSON',
      },
    },
    eventMetadata: {
      eventId: `e${n}`,
      inferenceId: `req-${n}`,
      inferenceTime: `2026-12-01T04:00:0${n}.000Z`,
    },
    eventVersion: '0',
    model: 'iris',
    version: 3,
    alias: 'prod',
    route: 'stable',
    status: 200,
  });
  /** Pages of 2 records (whatever the limit asked), 5 records in all. */
  const api = fakeApi((s) => {
    const q = new URL(s.url, 'http://x').searchParams;
    const start = Number(q.get('nextToken') ?? '0');
    const n = Math.min(2, Number(q.get('limit')), 5 - start);
    const records = Array.from({ length: n }, (_, i) => record(start + i));
    return { status: 200, body: { records, ...(start + n < 5 ? { nextToken: String(start + n) } : {}) } };
  });
  let url = '';
  beforeAll(async () => {
    url = await api.start();
  });
  afterAll(() => api.stop());
  const cli = (...args: string[]) => cliAt(url, ...args);

  it('follows nextToken up to --limit and prints a table', async () => {
    const before = api.seen.length;
    const r = await cli(
      'capture',
      'iris',
      '--version',
      '3',
      '--since',
      '2026-12-01T00:00:00Z',
      '--limit',
      '3',
    );
    expect(r.code).toBe(0);
    const urls = api.seen.slice(before).map((s) => s.url);
    expect(urls).toEqual([
      '/models/iris/capture?version=3&since=2026-12-01T00%3A00%3A00Z&limit=3',
      '/models/iris/capture?version=3&since=2026-12-01T00%3A00%3A00Z&limit=1&nextToken=2',
    ]);
    const lines = r.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^TIME\s+INFERENCE ID\s+VERSION\s+ALIAS\s+ROUTE\s+STATUS\s+INPUT\s+OUTPUT$/);
    expect(lines).toHaveLength(4);
    expect(lines[1]).toMatch(
      /^2026-12-01 04:00:00.000Z\s+req-0\s+3\s+prod\s+stable\s+200\s+\{"inputs":\[\{"data":\[0, 2, 3, 4, 5, 6, 7…\s+\{"outputs":\[0\]\}$/,
    );
  });

  it('prints the records as JSON with --json, all of them when fewer than --limit', async () => {
    const r = await cli('--json', 'capture', 'iris');
    expect(r.code).toBe(0);
    const records = JSON.parse(r.out) as { eventMetadata: { inferenceId: string } }[];
    expect(records.map((x) => x.eventMetadata.inferenceId)).toEqual([
      'req-0',
      'req-1',
      'req-2',
      'req-3',
      'req-4',
    ]);
  });

  it('sends a relative --since as an ISO time', async () => {
    const before = Date.now();
    await cli('capture', 'iris', '--since', '1h', '--limit', '1');
    const since = new URL(api.seen.at(-1)?.url ?? '', 'http://x').searchParams.get('since') ?? '';
    expect(Date.parse(since)).toBeGreaterThanOrEqual(before - 3_600_000 - 1000);
    expect(Date.parse(since)).toBeLessThanOrEqual(Date.now() - 3_600_000);
  });

  it('refuses a --since of another form before sending anything (exit 2)', async () => {
    const before = api.seen.length;
    for (const since of ['1w', 'tomorrow']) {
      const r = await cli('capture', 'iris', '--since', since);
      expect(r.code, since).toBe(2);
      expect(r.err, since).toContain(`--since must be a time ago in s, m, h or d (45s, 30m, 1h, 2d)`);
    }
    expect(api.seen.length).toBe(before);
  });

  it('refuses a --limit out of range', async () => {
    expect((await cli('capture', 'iris', '--limit', '0')).code).toBe(2);
    expect((await cli('capture', 'iris', '--limit', '1001')).code).toBe(2);
  });
});

describe('maas stats', () => {
  const TEXT = [
    '# HELP maas_requests_total Requests',
    '# TYPE maas_requests_total counter',
    'maas_requests_total{model="iris",version="1",alias="prod",route="stable"} 10',
    'maas_requests_total{model="iris",version="2",alias="",route="stable"} 3',
    'maas_requests_total{model="wine",version="1",alias="prod",route="stable"} 1',
    'maas_client_errors_total{model="iris",version="1",alias="prod",route="stable"} 2',
    'maas_server_errors_total{model="iris",version="1",alias="prod",route="stable"} 1',
    'maas_cold_start_total{model="iris",version="1",alias="prod",route="stable"} 1',
    'maas_payload_bytes_total{model="iris",version="1",alias="prod",route="stable"} 2048',
    'maas_registry_requests_total{operation="moveAlias"} 5',
    '# TYPE maas_latency_ms histogram',
    'maas_latency_ms_bucket{le="10",model="iris",version="1",alias="prod",route="stable"} 4',
    'maas_latency_ms_bucket{le="20",model="iris",version="1",alias="prod",route="stable"} 8',
    'maas_latency_ms_bucket{le="+Inf",model="iris",version="1",alias="prod",route="stable"} 10',
    'maas_latency_ms_sum{model="iris",version="1",alias="prod",route="stable"} 150',
    'maas_latency_ms_count{model="iris",version="1",alias="prod",route="stable"} 10',
    '',
  ].join('\n');
  let local: RunningLocalServer;
  let plain: RunningLocalServer;
  beforeAll(async () => {
    local = await startLocalServer({ port: 0, handlers: {}, metrics: () => TEXT });
    plain = await startLocalServer({ port: 0, handlers: { registry: async () => json(200, {}) } });
  });
  afterAll(async () => {
    await local.close();
    await plain.close();
  });
  const cli = cliAt;

  it('prints one row per model, version, alias and route', async () => {
    const r = await cli(local.url, 'stats');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(
      r.out
        .trimEnd()
        .split('\n')
        .map((l) => l.split(/\s{2,}/)),
    ).toEqual([
      ['MODEL', 'VERSION', 'ALIAS', 'ROUTE', 'REQUESTS', '4XX', '5XX', 'P50 MS', 'P99 MS', 'COLD', 'PAYLOAD'],
      ['iris', '1', 'prod', 'stable', '10', '2', '1', '12.5', '20.0', '1', '2.0 KB'],
      ['iris', '2', '-', 'stable', '3', '0', '0', '-', '-', '0', '0 B'],
      ['wine', '1', 'prod', 'stable', '1', '0', '0', '-', '-', '0', '0 B'],
    ]);
  });

  it('shows only the model asked for, and JSON with --json', async () => {
    const r = await cli(local.url, '--json', 'stats', 'wine');
    expect(JSON.parse(r.out)).toEqual([
      {
        model: 'wine',
        version: '1',
        alias: 'prod',
        route: 'stable',
        requests: 1,
        clientErrors: 0,
        serverErrors: 0,
        coldStarts: 0,
        payloadBytes: 0,
        p50Ms: null,
        p99Ms: null,
      },
    ]);
  });

  it('tells to use the CloudWatch dashboard against an endpoint without /metrics', async () => {
    const r = await cli(plain.url, 'stats');
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toMatch(
      /serves no \/metrics \(it answered 404 application\/json\): only the local `maas dev` does; for a deployed stack, use its CloudWatch dashboard/,
    );
  });
});
