/**
 * Batch is JSON only, against DynamoDB Local + s3rver + onnxruntime-node: a JSONL line that asks binary tensor
 * data (an input's binary_data_size, binary_data_output or an output's binary_data set true) gets an error line
 * of its own (BINARY_DATA_IN_BATCH) while its neighbours are answered; the same flags set false ask JSON and are
 * answered as usual.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerVersion } from '../../functions/app/registry';
import { BATCH_KEYS } from '../../functions/contract/events';
import { BINARY_DATA_IN_BATCH } from '../../functions/domain/batch';
import { createEventsTestEnv, type EventsTestEnv } from '../helpers/events-env';
import { addConstant } from '../helpers/predict-env';

let env: EventsTestEnv;

beforeAll(async () => {
  env = await createEventsTestEnv();
  const registry = env.flows.registry;
  if (!registry) throw new Error('registry deps are not wired');
  await env.put('uploads/adder/a.onnx', addConstant(1));
  await registerVersion(registry, { name: 'adder', sourceKey: 'uploads/adder/a.onnx' });
});
afterAll(async () => {
  await env?.dispose();
});

const x = (i: number, extra: Record<string, unknown> = {}) => ({
  name: 'x',
  shape: [1, 2],
  datatype: 'FP32',
  data: [i, -i],
  ...extra,
});

describe('batch is JSON only', () => {
  it('answers a line asking binary data with an error line of its own; the other lines as usual', async () => {
    const rows: [unknown, 'ok' | 'binary' | 'invalid'][] = [
      [{ id: 'r0', inputs: [x(0)] }, 'ok'],
      [{ id: 'r1', inputs: [{ ...x(1), data: undefined, parameters: { binary_data_size: 8 } }] }, 'binary'],
      [{ id: 'r2', inputs: [x(2)], parameters: { binary_data_output: true } }, 'binary'],
      [{ id: 'r3', inputs: [x(3)], outputs: [{ name: 'y', parameters: { binary_data: true } }] }, 'binary'],
      [{ id: 'r4', inputs: [x(4)], parameters: { binary_data_output: false } }, 'ok'],
      [{ id: 'r5', inputs: [x(5)], outputs: [{ name: 'y', parameters: { binary_data: false } }] }, 'ok'],
      [{ id: 'r6', inputs: [x(6)] }, 'ok'],
      // An output's own flag wins over the request's, as the predict routes decide.
      [
        {
          id: 'r7',
          inputs: [x(7)],
          outputs: [{ name: 'y', parameters: { binary_data: false } }],
          parameters: { binary_data_output: true },
        },
        'ok',
      ],
      [
        {
          id: 'r8',
          inputs: [x(8)],
          outputs: [{ name: 'y', parameters: { binary_data: true } }],
          parameters: { binary_data_output: false },
        },
        'binary',
      ],
      [
        { id: 'r9', inputs: [x(9)], outputs: [{ name: 'y' }], parameters: { binary_data_output: true } },
        'binary',
      ],
      // Flags that are not booleans are refused, as on the predict routes.
      [{ id: 'r10', inputs: [x(10)], parameters: { binary_data_output: 'yes' } }, 'invalid'],
      [{ id: 'r11', inputs: [x(11)], outputs: [{ name: 'y', parameters: { binary_data: 1 } }] }, 'invalid'],
    ];
    await env.put(BATCH_KEYS.job('bin-1'), JSON.stringify({ model: 'adder' }));
    const event = await env.put(
      BATCH_KEYS.input('bin-1'),
      `${rows.map(([r]) => JSON.stringify(r)).join('\n')}\n`,
    );
    const [outcome] = await env.s3Events(event);
    expect(outcome).toMatchObject({ kind: 'batch', jobId: 'bin-1', state: 'running', partsTotal: 1 });
    // The start queues the part; the worker scores it and assembles the output.
    await env.batchQueue.drain();
    const status = JSON.parse((await env.getText(BATCH_KEYS.status('bin-1'))) ?? 'null');
    expect(status).toMatchObject({ state: 'done', total: rows.length, succeeded: 5, failed: 7 });

    const lines = ((await env.getText(BATCH_KEYS.output('bin-1'))) ?? '').split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(rows.length);
    lines.forEach((line, i) => {
      const out = JSON.parse(line);
      if (rows[i]?.[1] === 'invalid') {
        expect(out, `line ${i}`).toEqual({ error: expect.any(String), code: 'INVALID_PARAMETERS' });
        return;
      }
      if (rows[i]?.[1] === 'binary') {
        expect(out, `line ${i}`).toEqual({ error: expect.any(String), code: BINARY_DATA_IN_BATCH });
        expect(out.error).toMatch(i === 1 ? /binary_data_size/ : /binary_data_output/);
        return;
      }
      expect(out.id, `line ${i}`).toBe(`r${i}`);
      expect(out.outputs, `line ${i}`).toEqual([
        { name: 'y', datatype: 'FP32', shape: [1, 2], data: [i + 1, -i + 1] },
      ]);
    });
  });
});
