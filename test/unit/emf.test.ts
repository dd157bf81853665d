/**
 * The EMF sinks: Powertools Metrics (`EmfMetricsSink`) and the predict path's template (`EmfLineSink`) write the
 * same document for the same report, with the contract's names, units and dimension sets.
 */
import { describe, expect, it } from 'vitest';
import { EmfLineSink } from '../../functions/adapters/emf-lines';
import { EmfMetricsSink } from '../../functions/adapters/emf-metrics';
import type { InferenceReport } from '../../functions/ports/telemetry';

type Doc = Record<string, unknown> & { _aws: { Timestamp: number; CloudWatchMetrics: unknown[] } };

function documentsOf(write: (sink: EmfMetricsSink | EmfLineSink) => void) {
  const out: Doc[][] = [[], []];
  const sinks = [
    new EmfMetricsSink({ serviceName: 'maas-predict', output: (l) => out[0]!.push(JSON.parse(l)) }),
    new EmfLineSink({ serviceName: 'maas-predict', output: (l) => out[1]!.push(JSON.parse(l)) }),
  ];
  for (const s of sinks) write(s);
  const strip = (d: Doc): Doc => ({ ...d, _aws: { ...d._aws, Timestamp: typeof d._aws.Timestamp as never } });
  return { powertools: out[0]!.map(strip), template: out[1]!.map(strip) };
}

const base: InferenceReport = {
  model: 'iris',
  version: 3,
  alias: 'prod',
  route: 'stable',
  status: 200,
  latencyMs: 1.25,
  inferenceMs: 0.5,
  coldStart: false,
  payloadBytes: 120,
  batchRows: 4,
  captureErrors: 0,
  inferenceId: 'req-"1"',
};

describe('EMF inference documents', () => {
  it.each([
    ['a warm 200', base],
    ['a cold 200 that loaded its model', { ...base, coldStart: true, modelLoadMs: 80.5 }],
    ['a 400 by version number', { ...base, status: 400, alias: undefined, inferenceMs: undefined }],
    [
      'a 404 before any version',
      { ...base, status: 404, version: undefined, inferenceMs: undefined, batchRows: undefined },
    ],
    ['a 503 with a failed capture', { ...base, status: 503, captureErrors: 1 }],
    ['an alias that needs escaping', { ...base, alias: 'a"b\\c', status: 400, version: undefined }],
  ] as const)('%s: the template writes what Powertools writes', (_name, report) => {
    const { powertools, template } = documentsOf((s) => s.inference(report));
    expect(template).toHaveLength(1);
    expect(template).toEqual(powertools);
  });

  it('uses the namespace, units and dimension sets of the contract', () => {
    const { template } = documentsOf((s) => s.inference({ ...base, coldStart: true, modelLoadMs: 2 }));
    expect(template[0]!._aws.CloudWatchMetrics).toEqual([
      {
        Namespace: 'maas',
        Dimensions: [['model'], ['model', 'version'], ['model', 'alias', 'route']],
        Metrics: [
          { Name: 'Requests', Unit: 'Count' },
          { Name: 'Latency', Unit: 'Milliseconds' },
          { Name: 'InferenceLatency', Unit: 'Milliseconds' },
          { Name: 'ModelLoadLatency', Unit: 'Milliseconds' },
          { Name: 'ColdStart', Unit: 'Count' },
          { Name: 'PayloadBytes', Unit: 'Bytes' },
          { Name: 'BatchRows', Unit: 'Count' },
        ],
      },
    ]);
    expect(template[0]).toMatchObject({
      model: 'iris',
      version: '3',
      alias: 'prod',
      route: 'stable',
      Requests: 1,
    });
  });

  it('written after the answer: one write after the current task, with every document of it', async () => {
    const writes: string[] = [];
    const sink = new EmfLineSink({ serviceName: 'x', afterAnswer: true, output: (l) => writes.push(l) });
    sink.inference(base);
    sink.inference({ ...base, status: 500 });
    expect(writes).toHaveLength(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes).toHaveLength(1);
    expect(writes[0]!.split('\n').map((l) => JSON.parse(l).status)).toEqual(['200', '500']);
  });

  it('caches per model, version and alias without mixing them', () => {
    const { template } = documentsOf((s) => {
      s.inference(base);
      s.inference({ ...base, alias: 'canary' });
      s.inference({ ...base, version: 4 });
      s.inference({ ...base, model: 'other' });
    });
    expect(template.map((d) => [d.model, d.version, d.alias])).toEqual([
      ['iris', '3', 'prod'],
      ['iris', '3', 'canary'],
      ['iris', '4', 'prod'],
      ['other', '3', 'prod'],
    ]);
  });

  it('never throws, whatever the sink', () => {
    const failing = new EmfLineSink({
      serviceName: 'x',
      output: () => {
        throw new Error('stdout closed');
      },
    });
    expect(() => failing.inference(base)).not.toThrow();
    const powertools = new EmfMetricsSink({
      serviceName: 'x',
      output: () => {
        throw new Error('stdout closed');
      },
    });
    expect(() => powertools.inference(base)).not.toThrow();
    // The failed document is dropped, not carried into the next one.
    const docs: Doc[] = [];
    const next = new EmfMetricsSink({ serviceName: 'x', output: (l) => docs.push(JSON.parse(l)) });
    next.inference(base);
    next.inference({ ...base, status: 500 });
    expect(docs[1]).toMatchObject({ ServerErrors: 1, Requests: 1 });
  });
});
