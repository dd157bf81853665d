import { describe, expect, it } from 'vitest';
import { parseInferenceBody, readNumericData } from '../../functions/domain/body-parser';
import { BadRequestError } from '../../functions/domain/errors';
import { decodeTensor } from '../../functions/domain/oip-decode';
import { codeOf as anyCodeOf } from '../helpers/errors';

const codeOf = (fn: () => unknown) => anyCodeOf(fn, BadRequestError);

describe('parseInferenceBody', () => {
  it('keeps INT64 literals beyond 2^53 exact', () => {
    const body = parseInferenceBody(
      '{"inputs":[{"name":"x","datatype":"INT64","shape":[3],"data":[9223372036854775807,-9007199254740993,1]}],"id":"12345678901234567890"}',
    ) as { inputs: { data: unknown[] }[]; id: string };
    expect(body.inputs[0]!.data).toEqual(['9223372036854775807', '-9007199254740993', 1]);
    expect(body.id).toBe('12345678901234567890');
    const t = decodeTensor('x', 'INT64', [3], body.inputs[0]!.data);
    expect(Array.from(t.data as BigInt64Array)).toEqual([9223372036854775807n, -9007199254740993n, 1n]);
  });
  it('re-reads only the 64-bit integer inputs: other inputs and parameters keep their numbers', () => {
    const body = parseInferenceBody(
      '{"inputs":[{"name":"f","datatype":"FP64","shape":[1],"data":[12345678901234567]},' +
        '{"name":"i","datatype":"INT64","shape":[1],"data":[9223372036854775807]}],"parameters":{"seed":12345678901234567}}',
    ) as { inputs: { data: unknown[] }[]; parameters: { seed: unknown } };
    expect(body.inputs[0]!.data).toEqual([Number('12345678901234567')]);
    expect(body.inputs[1]!.data).toEqual(['9223372036854775807']);
    expect(body.parameters.seed).toBe(Number('12345678901234567'));
  });
  it('leaves other bodies untouched', () => {
    const text = '{"inputs":[{"name":"x","datatype":"FP64","shape":[1],"data":[0.12345678901234567]}]}';
    expect(parseInferenceBody(text)).toEqual(JSON.parse(text));
  });
  it('answers malformed JSON with MALFORMED_JSON', () => {
    expect(codeOf(() => parseInferenceBody('{"inputs": ['))).toBe('MALFORMED_JSON');
  });
});

describe('numeric data read straight from the body', () => {
  it('reads flat number arrays into Float64Array with the values JSON.parse gives', () => {
    const values = Array.from({ length: 4000 }, (_, i) =>
      i % 3 === 0
        ? Math.fround(Math.sin(i) * 100)
        : i % 3 === 1
          ? Math.cos(i) * 10 ** ((i % 30) - 20)
          : -(i % 997) / 7,
    );
    const text = JSON.stringify({
      inputs: [{ name: 'x', datatype: 'FP64', shape: [values.length], data: values }],
    });
    const body = parseInferenceBody(text) as { inputs: { data: unknown }[] };
    expect(body.inputs[0]!.data).toBeInstanceOf(Float64Array);
    expect(Array.from(body.inputs[0]!.data as Float64Array)).toEqual(JSON.parse(text).inputs[0].data);
  });

  it.each([
    ['[1, 2 ,3 ]', [1, 2, 3]],
    ['[ ]', []],
    ['[1E+2,-0.5e-1,0]', [100, -0.05, 0]],
  ])('accepts %s', (text, expected) => {
    expect(Array.from(readNumericData(text, 0)!.values)).toEqual(expected);
  });

  it.each([
    '[01]',
    '[1.]',
    '[-]',
    '[1e]',
    '[.5]',
    '[1,]',
    '[1 2]',
    '[[1]]',
    '[null]',
    '[true]',
    '["1"]',
    '[12345678901234567890]',
  ])('leaves %s to JSON.parse', (text) => {
    expect(readNumericData(text, 0)).toBeUndefined();
  });

  it('keeps everything else as JSON.parse does, including look-alike strings and nested data', () => {
    const filler = 'x'.repeat(17_000);
    const text = JSON.stringify({
      id: `"data":[1,2] ${filler}`,
      parameters: { data: [1, 2, 3] },
      inputs: [
        {
          name: 'a',
          datatype: 'FP32',
          shape: [2, 2],
          data: [
            [1, 2],
            [3, 4],
          ],
        },
        { name: 'b', datatype: 'BYTES', shape: [1], data: ['data'] },
      ],
    });
    expect(parseInferenceBody(text)).toEqual(JSON.parse(text));
  });

  it('never gives an input the numbers of another "data" array, whatever string its own data is', () => {
    // A large body (read by the fast path) whose input's data is a string naming a numeric array read elsewhere.
    const filler = 'x'.repeat(17_000);
    for (const forged of ['\u0000maas-data:0', '\u0000maas-data:0:0', 'maas-data:0']) {
      const text = JSON.stringify({
        parameters: { pad: filler, data: [5.1, 3.5, 1.4, 0.2] },
        inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: forged }],
      });
      expect(parseInferenceBody(text), JSON.stringify(forged)).toEqual(JSON.parse(text));
    }
  });
});
