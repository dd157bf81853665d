import { describe, expect, it } from 'vitest';
import { CAPTURE_KEYS, prometheusName } from '../../functions/contract/observability';
import {
  type CaptureInput,
  captureLine,
  fnv1a,
  isSampled,
  parseCaptureConfig,
  sampleHash,
} from '../../functions/domain/capture';
import { codeOf } from '../helpers/errors';

const ids = (n: number, prefix = '') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('capture sampling', () => {
  it('samples nothing at 0 % and everything at 100 %', () => {
    const all = ids(10_000);
    expect(all.filter((id) => isSampled(id, 0))).toHaveLength(0);
    expect(all.filter((id) => isSampled(id, 100))).toHaveLength(10_000);
  });

  it.each([1, 10, 25, 50, 90])('samples ~%d %% of 10 000 ids, within a binomial bound', (percent) => {
    const n = 10_000;
    const p = percent / 100;
    const sd = Math.sqrt(n * p * (1 - p));
    for (const prefix of ['', 'req-', '0b6c5d8e-']) {
      const sampled = ids(n, prefix).filter((id) => isSampled(id, percent)).length;
      // 4.5 standard deviations: a fair hash fails this about once in 150 000 runs.
      expect(Math.abs(sampled - n * p)).toBeLessThan(4.5 * sd);
    }
  });

  it('raising the rate keeps what was sampled (a record is never dropped by turning capture up)', () => {
    const ids10 = ids(2000, 'x').filter((id) => isSampled(id, 10));
    expect(ids10.length).toBeGreaterThan(100);
    for (const id of ids10) expect(isSampled(id, 30)).toBe(true);
  });

  it('hashes with FNV-1a (the published test vectors) and a final mix', () => {
    expect([fnv1a(''), fnv1a('a'), fnv1a('foobar')]).toEqual([0x811c9dc5, 0xe40c292c, 0xbf9cf968]);
    // Pinned: a change would re-decide which requests every deployment records.
    expect([sampleHash('a'), sampleHash('req-1'), sampleHash('req-2')]).toEqual([
      444641715, 1216658960, 4249376621,
    ]);
  });
});

describe('parseCaptureConfig', () => {
  it('accepts {samplePercent} with input and output defaulting to true', () => {
    expect(parseCaptureConfig({ samplePercent: 12.5 })).toEqual({
      samplePercent: 12.5,
      input: true,
      output: true,
    });
    expect(parseCaptureConfig({ samplePercent: 0, output: false })).toEqual({
      samplePercent: 0,
      input: true,
      output: false,
    });
  });

  it.each([
    null,
    [],
    'x',
    {},
    { samplePercent: -1 },
    { samplePercent: 101 },
    { samplePercent: 0.001 },
    { samplePercent: '5' },
    { samplePercent: Number.NaN },
    { samplePercent: 5, input: 'yes' },
    { samplePercent: 5, input: false, output: false },
    { samplePercent: 5, extra: 1 },
  ])('refuses %j with 400 INVALID_CAPTURE', (value) => {
    expect(codeOf(() => parseCaptureConfig(value))).toBe('INVALID_CAPTURE');
  });

  it('accepts every step of 0.01, however the decimal reads as a double', () => {
    const steps = Array.from({ length: 10_001 }, (_, n) => Number((n / 100).toFixed(2)));
    const refused = steps.filter((samplePercent) => {
      try {
        return parseCaptureConfig({ samplePercent }).samplePercent !== samplePercent;
      } catch {
        return true;
      }
    });
    expect(refused).toEqual([]);
  });

  // A number near 0 is no step of 0.01, and 1e-300 is one DynamoDB cannot store (a 500 at the write once).
  it.each([1e-300, 1e-11, 1e-9, 0.005, 0.015, 0.1 + 0.2, 99.995])(
    'refuses samplePercent %d with 400 INVALID_CAPTURE, saying what is allowed',
    (samplePercent) => {
      expect(codeOf(() => parseCaptureConfig({ samplePercent }))).toBe('INVALID_CAPTURE');
      expect(() => parseCaptureConfig({ samplePercent })).toThrow(
        'samplePercent must be a number from 0 to 100 in steps of 0.01 (0, 0.01, 0.02 … 100)',
      );
    },
  );
});

describe('capture records', () => {
  const input = (over: Partial<CaptureInput> = {}): CaptureInput => ({
    config: { samplePercent: 100, input: true, output: true },
    eventId: 'e-1',
    inferenceId: 'i-1',
    at: new Date('2026-12-01T03:04:05.678Z'),
    model: 'iris',
    version: 3,
    alias: 'prod',
    route: 'stable',
    status: 200,
    request: { text: '{"inputs":[]}', contentType: 'application/json' },
    response: { text: '{"outputs":[]}', contentType: 'application/json' },
    ...over,
  });

  it("has SageMaker Data Capture's shape plus model, version, alias and route", () => {
    expect(JSON.parse(captureLine(input()))).toEqual({
      captureData: {
        endpointInput: {
          observedContentType: 'application/json',
          mode: 'INPUT',
          data: '{"inputs":[]}',
          encoding: 'JSON',
        },
        endpointOutput: {
          observedContentType: 'application/json',
          mode: 'OUTPUT',
          data: '{"outputs":[]}',
          encoding: 'JSON',
        },
      },
      eventMetadata: { eventId: 'e-1', inferenceId: 'i-1', inferenceTime: '2026-12-01T03:04:05.678Z' },
      eventVersion: '0',
      model: 'iris',
      version: 3,
      alias: 'prod',
      route: 'stable',
      status: 200,
    });
  });

  it('records only the halves the declaration asks for, and no alias for a request by number', () => {
    const onlyOutput = JSON.parse(
      captureLine(input({ config: { samplePercent: 5, input: false, output: true }, alias: undefined })),
    );
    expect(Object.keys(onlyOutput.captureData)).toEqual(['endpointOutput']);
    expect(onlyOutput).not.toHaveProperty('alias');
  });

  it('is one line, whatever the bodies hold', () => {
    const line = captureLine(
      input({ request: { text: '{\n"a":"b\\nc"}', contentType: 'application/json' } }),
    );
    expect(line).not.toContain('\n');
    expect(JSON.parse(line).captureData.endpointInput.data).toBe('{\n"a":"b\\nc"}');
  });

  it('keeps the metadata and drops both bodies past the size limit, saying so', () => {
    const big = 'x'.repeat(2000);
    const record = JSON.parse(
      captureLine(input({ request: { text: big, contentType: 'application/json' } }), 1000),
    );
    expect(record.truncated).toBe(true);
    expect(record.captureData.endpointInput).not.toHaveProperty('data');
    expect(record.captureData.endpointOutput).not.toHaveProperty('data');
    expect(record.eventMetadata.inferenceId).toBe('i-1');
    // Multi-byte text is measured in UTF-8 bytes.
    const wide = captureLine(
      input({ request: { text: 'é'.repeat(250), contentType: 'application/json' } }),
      1000,
    );
    expect(JSON.parse(wide).truncated).toBeUndefined();
    const wider = captureLine(
      input({ request: { text: 'é'.repeat(450), contentType: 'application/json' } }),
      1000,
    );
    expect(JSON.parse(wider).truncated).toBe(true);
  });
});

describe('the observability contract', () => {
  it('lays capture and feedback out by hour (UTC)', () => {
    const at = new Date('2026-03-04T05:59:59Z');
    expect(CAPTURE_KEYS.captureHour('iris', 12, at)).toBe('capture/iris/12/2026/03/04/05/');
    expect(CAPTURE_KEYS.feedbackHour('iris', at)).toBe('feedback/iris/2026/03/04/05/');
  });

  it('names the Prometheus series after the metrics', () => {
    expect(prometheusName('Requests')).toBe('maas_requests_total');
    expect(prometheusName('ModelLoadLatency')).toBe('maas_model_load_latency_ms');
    expect(prometheusName('PayloadBytes')).toBe('maas_payload_bytes_total');
  });
});
