/**
 * The Tracer port's Powertools adapter (functions/adapters/powertools-tracer.ts) with the real Powertools Tracer and
 * X-Ray SDK in a Lambda-like environment (Lambda's variables, a trace header per invocation, a UDP socket standing in
 * for the X-Ray daemon): each invocation of an entry point (`withInvocationDeadline`) runs in its `## {handler}`
 * subsegment, where its spans nest and its annotations go, and nothing is written to the function's output.
 */
import { createSocket, type Socket } from 'node:dgram';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { withInvocationDeadline } from '../../functions/adapters/deadline';
import { MemoryRegistryRepository } from '../../functions/adapters/memory-registry';
import { loadTracer } from '../../functions/adapters/powertools-tracer';
import type { InferenceObservation } from '../../functions/app/inference';
import type { Predictor } from '../../functions/app/predict';
import type { ServedVersion } from '../../functions/app/version-resolver';
import { TRACE_SPANS } from '../../functions/contract/observability';
import { createPredictHandler } from '../../functions/handlers/predict';
import { createRegistryHandler } from '../../functions/handlers/registry';
import type { ArtifactStore, ModelInspector } from '../../functions/ports';
import type { Tracer } from '../../functions/ports/telemetry';
import { apiEvent, parseResult } from '../helpers/apigw';

const ROOT = (n: number) => `1-5759e988-bd862e3fe1be46a99427279${n}`;
const PARENT = (n: number) => `53995c3f42cd8ad${n}`;

interface XrayDocument {
  readonly type?: string;
  readonly name: string;
  readonly id: string;
  readonly parent_id: string;
  readonly trace_id: string;
  readonly annotations?: Record<string, unknown>;
  readonly fault?: boolean;
}

let socket: Socket;
const datagrams: string[] = [];
/** What the process wrote: console calls and stdout/stderr writes. */
let written: unknown[][];

beforeAll(async () => {
  socket = createSocket('udp4');
  socket.on('message', (m) => datagrams.push(m.toString('utf8')));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  // Lambda's variables before Powertools and the X-Ray SDK load (the SDK reads them when it is required).
  vi.stubEnv('AWS_EXECUTION_ENV', 'AWS_Lambda_nodejs22.x');
  vi.stubEnv('AWS_LAMBDA_FUNCTION_NAME', 'maas-predict');
  vi.stubEnv('AWS_LAMBDA_INITIALIZATION_TYPE', 'on-demand');
  vi.stubEnv('LAMBDA_TASK_ROOT', '/var/task');
  vi.stubEnv('_HANDLER', 'index.handler');
  vi.stubEnv('_X_AMZN_TRACE_ID', `Root=${ROOT(0)};Parent=${PARENT(0)};Sampled=1`);
  vi.stubEnv('AWS_XRAY_DAEMON_ADDRESS', `127.0.0.1:${socket.address().port}`);
  vi.stubEnv('POWERTOOLS_TRACE_ENABLED', '');
  vi.stubEnv('POWERTOOLS_DEV', '');
});

afterAll(() => {
  socket?.close();
  vi.unstubAllEnvs();
});

beforeEach(() => {
  datagrams.length = 0;
  written = [];
  const record = (...args: unknown[]) => {
    written.push(args);
  };
  for (const level of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    vi.spyOn(console, level).mockImplementation(record);
  }
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    written.push([chunk]);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    written.push([chunk]);
    return true;
  });
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** The X-Ray documents received so far (each datagram: a header line, then the document). */
const received = (): XrayDocument[] =>
  datagrams.map((d) => JSON.parse(d.split('\n')[1] ?? 'null') as XrayDocument);

/** Waits until `n` documents have arrived (they are sent as each subsegment closes). */
async function receivedAtLeast(n: number): Promise<XrayDocument[]> {
  for (let i = 0; i < 100 && datagrams.length < n; i++) await new Promise((r) => setTimeout(r, 10));
  return received();
}

/** Runs `call` as the invocation of trace `n` (Lambda sets the trace header of each invocation). */
function inTrace<T>(n: number, call: () => Promise<T>): Promise<T> {
  vi.stubEnv('_X_AMZN_TRACE_ID', `Root=${ROOT(n)};Parent=${PARENT(n)};Sampled=1`);
  return call();
}

const invocationOf = (docs: readonly XrayDocument[], n: number): XrayDocument | undefined =>
  docs.find((d) => d.name === '## index.handler' && d.trace_id === ROOT(n));

/** A predictor whose run is one `Run` span of `tracer`, answered by version 3. */
function spanningPredictor(tracer: Tracer): Predictor {
  return {
    capture: () => undefined,
    async inferJson(_name, _ref, _body, observation) {
      await tracer.span(TRACE_SPANS.run, async () => undefined);
      const obs = observation as InferenceObservation;
      obs.served = { version: { version: 3 } } as ServedVersion;
      obs.inferenceId ??= 'inference-1';
      return '{"model_name":"iris","model_version":"3","outputs":[]}';
    },
  } as Partial<Predictor> as Predictor;
}

describe('loadTracer in a traced Lambda', () => {
  it('runs each predict invocation in its subsegment: spans nested, annotations recorded, no line written', async () => {
    const tracer = await loadTracer('maas-predict', 'index.handler');
    expect(tracer.enabled).toBe(true);
    const handler = withInvocationDeadline(
      createPredictHandler({
        repo: { ping: async () => {} },
        predictor: spanningPredictor(tracer),
        tracer,
      } as never),
    );
    const infer = () => handler(apiEvent('POST', '/v2/models/iris/infer', { body: { inputs: [] } }));
    expect(parseResult(await inTrace(1, infer)).status).toBe(200);
    expect(parseResult(await inTrace(2, infer)).status).toBe(200);

    const docs = await receivedAtLeast(4);
    expect(docs).toHaveLength(4);
    for (const [n, coldStart] of [
      [1, true],
      [2, false],
    ] as const) {
      const invocation = invocationOf(docs, n);
      // A subsegment of Lambda's segment of that invocation, holding the request's annotations.
      expect(invocation).toMatchObject({ type: 'subsegment', parent_id: PARENT(n) });
      expect(invocation?.annotations).toEqual({
        ColdStart: coldStart,
        Service: 'maas-predict',
        model: 'iris',
        version: 3,
        alias: 'prod',
      });
      // The request's spans are subsegments of the invocation's.
      expect(docs.filter((d) => d.name === TRACE_SPANS.run && d.trace_id === ROOT(n))).toEqual([
        expect.objectContaining({ parent_id: invocation?.id }),
      ]);
    }
    // Powertools refuses annotations on Lambda's own segment with a warning line: none is written.
    expect(written).toEqual([]);
  });

  it('annotates a registry invocation with its operation on its subsegment', async () => {
    const tracer = await loadTracer('maas-registry', 'index.handler');
    const unused = () => {
      throw new Error('not used by this test');
    };
    const handler = withInvocationDeadline(
      createRegistryHandler({
        repo: new MemoryRegistryRepository(),
        store: { bucket: 'b', getObject: unused } as Partial<ArtifactStore> as ArtifactStore,
        inspector: { inspect: unused } as ModelInspector,
        tracer,
      }),
    );
    expect(parseResult(await inTrace(3, () => handler(apiEvent('GET', '/models')))).status).toBe(200);
    const docs = await receivedAtLeast(1);
    expect(invocationOf(docs, 3)?.annotations).toMatchObject({
      Service: 'maas-registry',
      operation: 'listModels',
    });
    expect(written).toEqual([]);
  });

  it('closes the subsegment of an invocation that throws as a fault; the next one is not nested in it', async () => {
    const tracer = await loadTracer('maas-predict', 'index.handler');
    const handler = withInvocationDeadline(async (fail: boolean) => {
      await tracer.span(TRACE_SPANS.registryRead, async () => undefined);
      if (fail) throw new Error('boom');
      return 'ok';
    });
    await expect(inTrace(4, () => handler(true))).rejects.toThrow('boom');
    expect(await inTrace(5, () => handler(false))).toBe('ok');
    const docs = await receivedAtLeast(4);
    expect(invocationOf(docs, 4)).toMatchObject({ parent_id: PARENT(4), fault: true });
    expect(invocationOf(docs, 5)).toMatchObject({ parent_id: PARENT(5) });
    expect(invocationOf(docs, 5)?.fault).toBeUndefined();
  });

  it('with tracing disabled, records nothing: invocations run as they are', async () => {
    vi.stubEnv('POWERTOOLS_TRACE_ENABLED', 'false');
    const tracer = await loadTracer('maas-predict', 'index.handler');
    expect(tracer.enabled).toBe(false);
    const handler = withInvocationDeadline(async () => tracer.span(TRACE_SPANS.run, async () => 7));
    expect(await inTrace(6, () => handler(undefined))).toBe(7);
    await new Promise((r) => setTimeout(r, 100));
    expect(datagrams).toEqual([]);
  });
});
