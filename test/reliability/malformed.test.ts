/**
 * Malformed requests over every route of the route table, against the real handlers (predict, async API,
 * registry) over DynamoDB Local + s3rver + onnxruntime-node, with one registered model so that the predict
 * routes reach request validation. Every answer must be a 4xx with a JSON body of exactly `{error, code}`:
 * never a 5xx (which tells the client to retry something that can never succeed), never a stack trace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRolloutRepository } from '../../functions/adapters/dynamodb-rollouts';
import { OrtEngine } from '../../functions/adapters/ort-engine';
import { SessionCache } from '../../functions/app/session-cache';
import { matchRoute, ROUTES, routeKey } from '../../functions/contract/routes';
import { createAsyncApiHandler } from '../../functions/handlers/async-api';
import type { HttpEvent, HttpResult } from '../../functions/handlers/http';
import { createPredictHandler } from '../../functions/handlers/predict';
import { createRegistryHandler } from '../../functions/handlers/registry';
import { localPredictReaders } from '../../functions/local/compose';
import { type ApiEventOptions, apiEvent, parseResult } from '../helpers/apigw';
import { createEventsTestEnv, type EventsTestEnv } from '../helpers/events-env';
import { addConstant } from '../helpers/predict-env';
import { recordingLogger } from '../helpers/recording-logger';

const MAX_BODY = 64 * 1024;

let env: EventsTestEnv;
let handlers: Record<'predict' | 'registry' | 'async', (e: HttpEvent) => Promise<HttpResult>>;
let sessions: SessionCache;
/** The content-addressed key of model `other`'s artifact (what a traversal would try to reach). */
let otherKey = '';
let bucket = '';

beforeAll(async () => {
  env = await createEventsTestEnv();
  const aws = env.aws;
  bucket = aws.bucket;
  const registryDeps = env.flows.registry;
  if (!registryDeps) throw new Error('registry deps are not wired');
  const logger = recordingLogger();
  const { reader, artifacts } = localPredictReaders({
    endpoints: { dynamodb: aws.dynamoEndpoint, s3: aws.s3Endpoint },
    table: aws.table,
    bucket: aws.bucket,
  });
  sessions = new SessionCache({ engine: new OrtEngine() });
  handlers = {
    predict: createPredictHandler({
      repo: reader,
      store: artifacts,
      sessions,
      maxBodyBytes: MAX_BODY,
      logger,
    }),
    registry: createRegistryHandler({
      ...registryDeps,
      rollouts: new DynamoRolloutRepository({ doc: aws.doc, table: aws.table }),
      // Derive requests reach their checks (the queue is detached below: nothing valid is sent here).
      queue: env.queue,
      maxBodyBytes: MAX_BODY,
      logger,
    }),
    async: createAsyncApiHandler({ ...env.flows.asyncApi, maxBodyBytes: MAX_BODY, logger }),
  };
  env.queue.detach();
  await env.put('uploads/m/first.onnx', addConstant(1));
  const m = await handlers.registry(apiEvent('POST', '/models/m/versions', { body: { uploadId: 'first' } }));
  if (m.statusCode !== 201) throw new Error(`setup: ${m.body}`);
  await env.put('uploads/other/a.onnx', addConstant(2));
  const other = parseResult<{ sha256: string }>(
    await handlers.registry(apiEvent('POST', '/models/other/versions', { body: { uploadId: 'a' } })),
  );
  otherKey = `models/other/${other.body.sha256}.onnx`;
});
afterAll(async () => {
  await sessions?.close();
  await env?.dispose();
});

/** One malformed request: the route it aims at (route key), what it is, the request, and what must come back. */
interface Case {
  readonly route: string;
  readonly what: string;
  readonly method: string;
  readonly path: string | (() => string);
  readonly opts?: ApiEventOptions | (() => ApiEventOptions);
  readonly status?: number;
  readonly code?: string;
}

const CASES: Case[] = [];
const add = (
  route: string,
  what: string,
  method: string,
  path: Case['path'],
  opts?: Case['opts'],
  status?: number,
  code?: string,
) => {
  CASES.push({
    route,
    what,
    method,
    path,
    ...(opts ? { opts } : {}),
    ...(status ? { status } : {}),
    ...(code ? { code } : {}),
  });
};

// ---------------------------------------------------------------------------------------------------------
// Building blocks

const BAD_NAMES: [string, string][] = [
  ['upper case', 'Model'],
  ['punctuation', 'm!'],
  ['too long', 'm'.repeat(65)],
  ['leading dash', '-m'],
  ['dot segment', '..'],
  ['encoded slash', 'a%2Fb'],
  ['encoded NUL', 'a%00b'],
  ['non-ASCII', 'm%C3%B6del'],
  ['emoji', '%F0%9F%98%80'],
  ['zero-width space', 'm%E2%80%8B'],
  ['fullwidth letter', '%EF%BD%8D'],
  ['RTL override', 'm%E2%80%AEx'],
  ['encoded lone surrogate', '%ED%A0%80'],
  ['space', 'a%20b'],
];
const BAD_REFS: [string, string][] = [
  ['version 0', '0'],
  ['leading zero', '01'],
  ['negative', '-1'],
  ['fractional', '1.5'],
  ['exponent', '1e3'],
  ['huge number', '99999999999999999999999'],
  ['punctuation', 'Prod!'],
  ['dot segment', '..'],
  ['encoded NUL', 'a%00'],
  ['too long alias', 'a'.repeat(65)],
];
const BAD_VERSIONS: [string, string][] = [
  ['zero', '0'],
  ['leading zero', '01'],
  ['negative', '-1'],
  ['fractional', '1.5'],
  ['huge', '99999999999999999999999'],
  ['letters', 'abc'],
  ['plus sign', '+1'],
  ['hex', '0x1'],
  ['encoded NUL', '1%00'],
];
const BAD_ALIASES: [string, string][] = [
  ['upper case', 'Prod'],
  ['dot segment', '..'],
  ['encoded slash', 'a%2Fb'],
  ['encoded NUL', 'p%00'],
  ['too long', 'a'.repeat(65)],
  ['non-ASCII', 'pr%C3%B6d'],
];
const BAD_LIMITS = ['0', '-1', '1.5', 'abc', '1e2', '1001', '99999999999999999999', ' 1', '0x10'];
const BAD_TOKENS: [string, string][] = [
  ['garbage', 'not-a-token!'],
  ['base64 of an empty object', 'e30'],
  ['base64 of a JSON string', Buffer.from('"x"').toString('base64url')],
  [
    'base64 of another listing',
    Buffer.from(JSON.stringify({ PK: 'MODEL#zzz', SK: 'X' })).toString('base64url'),
  ],
  ['control characters', Buffer.from('\u0000\u0001').toString('base64url')],
  ['very long', 'A'.repeat(5000)],
];

const body = (b: unknown, extra: ApiEventOptions = {}): ApiEventOptions => ({ body: b, ...extra });
const x = (over: Record<string, unknown>) => ({
  inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2], ...over }],
});
const xs = (over: Record<string, unknown>) => ({ ...x({}), ...over });
/** `text` as Latin-1 bytes: `\u00c3(` is the byte 0xC3 then `(`, which no UTF-8 text holds. */
const notUtf8 = (text: string) => Buffer.from(text, 'latin1');
/** `n` nested empty arrays: JSON nested deeper than any request means. */
const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
const X_INPUT = '"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[1,2]}]';
const oversized = () =>
  body({ inputs: [{ name: 'x', datatype: 'BYTES', shape: [1], data: ['a'.repeat(MAX_BODY)] }] });

/** Bodies every OIP inference route (sync) must refuse, with their codes. */
const INFER_BODIES: [string, ApiEventOptions, number, string][] = [
  ['empty body', body(''), 400, 'MALFORMED_JSON'],
  ['truncated JSON', body('{"inputs": ['), 400, 'MALFORMED_JSON'],
  ['trailing garbage', body('{"inputs": []} x'), 400, 'MALFORMED_JSON'],
  ['single quotes', body("{'inputs': []}"), 400, 'MALFORMED_JSON'],
  [
    'NaN literal',
    body('{"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[NaN,1]}]}'),
    400,
    'MALFORMED_JSON',
  ],
  [
    'form body as text/plain',
    body('inputs=1', { headers: { 'content-type': 'text/plain' } }),
    400,
    'MALFORMED_JSON',
  ],
  [
    'urlencoded form',
    body('a=1&b=2', { headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
    400,
    'MALFORMED_JSON',
  ],
  [
    'binary octet-stream',
    body('\u0000\u0001\u0002', { headers: { 'content-type': 'application/octet-stream' }, base64: true }),
    400,
    'MALFORMED_JSON',
  ],
  [
    'JSON whose bytes are not UTF-8',
    body(notUtf8('{"id":"\u00c3(","inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[1,2]}]}'), {
      headers: { 'content-type': 'application/octet-stream' },
    }),
    400,
    'MALFORMED_JSON',
  ],
  ['JSON array', body([]), 400, 'INVALID_REQUEST'],
  ['JSON string', body('"x"'), 400, 'INVALID_REQUEST'],
  ['JSON null', body('null'), 400, 'INVALID_REQUEST'],
  ['JSON number', body('42'), 400, 'INVALID_REQUEST'],
  ['no inputs', body({ id: 'a' }), 400, 'INVALID_REQUEST'],
  ['empty inputs', body({ inputs: [] }), 400, 'INVALID_REQUEST'],
  ['inputs an object', body({ inputs: { x: 1 } }), 400, 'INVALID_REQUEST'],
  ['input a number', body({ inputs: [42] }), 400, 'INVALID_REQUEST'],
  ['input without name', body(x({ name: undefined })), 400, 'INVALID_REQUEST'],
  ['input name a number', body(x({ name: 3 })), 400, 'INVALID_REQUEST'],
  ['unknown input', body(x({ name: 'nope' })), 400, 'UNKNOWN_INPUT'],
  ['input name with NUL', body(x({ name: 'x\u0000' })), 400, 'UNKNOWN_INPUT'],
  ['duplicate input', body({ inputs: [...x({}).inputs, ...x({}).inputs] }), 400, 'DUPLICATE_INPUT'],
  ['unknown datatype', body(x({ datatype: 'FLOAT32' })), 400, 'INVALID_DATATYPE'],
  ['lower-case datatype', body(x({ datatype: 'fp32' })), 400, 'INVALID_DATATYPE'],
  ['wrong datatype', body(x({ datatype: 'INT32' })), 400, 'DATATYPE_MISMATCH'],
  ['shape a string', body(x({ shape: '1,2' })), 400, 'INVALID_SHAPE'],
  ['negative dimension', body(x({ shape: [-1, 2] })), 400, 'INVALID_SHAPE'],
  ['fractional dimension', body(x({ shape: [1.5, 2] })), 400, 'INVALID_SHAPE'],
  ['huge dimension', body(x({ shape: [1e300, 2] })), 400, 'INVALID_SHAPE'],
  ['wrong rank', body(x({ shape: [2] })), 400, 'SHAPE_MISMATCH'],
  ['wrong fixed dimension', body(x({ shape: [1, 3], data: [1, 2, 3] })), 400, 'SHAPE_MISMATCH'],
  ['no data', body(x({ data: undefined })), 400, 'INVALID_DATA'],
  ['data a string', body(x({ data: '1,2' })), 400, 'INVALID_DATA'],
  ['null element', body(x({ data: [1, null] })), 400, 'INVALID_DATA'],
  ['string element', body(x({ data: [1, '2'] })), 400, 'INVALID_DATA'],
  ['boolean element', body(x({ data: [1, true] })), 400, 'INVALID_DATA'],
  ['FP32 overflow', body(x({ data: [1, 1e39] })), 400, 'NON_FINITE'],
  [
    'number literal overflowing a double',
    body('{"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[1,1e400]}]}'),
    400,
    'NON_FINITE',
  ],
  ['too much data', body(x({ data: [1, 2, 3] })), 400, 'DATA_LENGTH_MISMATCH'],
  ['ragged nested data', body(x({ data: [[1], [2]] })), 400, 'DATA_LENGTH_MISMATCH'],
  ['nesting deeper than the shape', body(x({ data: [[[1, 2]]] })), 400, 'DATA_LENGTH_MISMATCH'],
  ['id a number', body(xs({ id: 7 })), 400, 'INVALID_REQUEST'],
  ['outputs an object', body(xs({ outputs: { name: 'y' } })), 400, 'INVALID_REQUEST'],
  ['output without name', body(xs({ outputs: [{}] })), 400, 'INVALID_REQUEST'],
  ['unknown output', body(xs({ outputs: [{ name: 'z' }] })), 400, 'UNKNOWN_OUTPUT'],
  ['duplicate output', body(xs({ outputs: [{ name: 'y' }, { name: 'y' }] })), 400, 'DUPLICATE_OUTPUT'],
  ['parameters an array', body(xs({ parameters: [] })), 400, 'INVALID_PARAMETERS'],
  ['parameters a string', body(xs({ parameters: 'fast' })), 400, 'INVALID_PARAMETERS'],
  ['input parameters a number', body(x({ parameters: 1 })), 400, 'INVALID_PARAMETERS'],
  [
    'output parameters a string',
    body(xs({ outputs: [{ name: 'y', parameters: 's' }] })),
    400,
    'INVALID_PARAMETERS',
  ],
  [
    'lone surrogate in the input name',
    body('{"inputs":[{"name":"\\ud800","datatype":"FP32","shape":[1,2],"data":[1,2]}]}'),
    400,
    'UNKNOWN_INPUT',
  ],
  [
    'data nested 12 000 deep',
    body(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":${deep(12_000)}}]}`),
    400,
    'DATA_LENGTH_MISMATCH',
  ],
  [
    'INT64 data nested 12 000 deep',
    body(`{"inputs":[{"name":"x","datatype":"INT64","shape":[1,2],"data":${deep(12_000)}}]}`),
    400,
    'DATATYPE_MISMATCH',
  ],
  [
    'parameters nested 3 000 deep',
    body(`{${X_INPUT},"parameters":{"p":${deep(3_000)}}}`),
    400,
    'INVALID_PARAMETERS',
  ],
  [
    'output asking classification',
    body(xs({ outputs: [{ name: 'y', parameters: { classification: 2 } }] })),
    400,
    'UNSUPPORTED_PARAMETER',
  ],
  [
    'output into shared memory',
    body(
      xs({
        outputs: [{ name: 'y', parameters: { shared_memory_region: 'out', shared_memory_byte_size: 8 } }],
      }),
    ),
    400,
    'UNSUPPORTED_PARAMETER',
  ],
  [
    'input in shared memory',
    body(x({ data: undefined, parameters: { shared_memory_region: 'in', shared_memory_byte_size: 8 } })),
    400,
    'UNSUPPORTED_PARAMETER',
  ],
  ['body over the limit', oversized(), 413, 'PAYLOAD_TOO_LARGE'],
];

/**
 * Bodies the async submission must refuse: what the sync route refuses before it needs the model, with the same
 * codes (the rest is checked when the request runs).
 */
const ASYNC_BODIES = INFER_BODIES.filter(
  ([what, , , code]) =>
    ['MALFORMED_JSON', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_PARAMETER'].includes(code) ||
    // Data that does not fit its own datatype and shape: no model needed.
    [
      'data a string',
      'null element',
      'string element',
      'boolean element',
      'FP32 overflow',
      'too much data',
      'ragged nested data',
      'nesting deeper than the shape',
    ].includes(what),
).concat(
  (
    [
      ['JSON array', body([]), 'INVALID_REQUEST'],
      ['JSON null', body('null'), 'INVALID_REQUEST'],
      ['no inputs', body({ id: 'a' }), 'INVALID_REQUEST'],
      ['empty inputs', body({ inputs: [] }), 'INVALID_REQUEST'],
      ['input a number', body({ inputs: [42] }), 'INVALID_REQUEST'],
      ['input without name', body(x({ name: undefined })), 'INVALID_REQUEST'],
      ['id a number', body(xs({ id: 5 })), 'INVALID_REQUEST'],
      ['outputs a number', body(xs({ outputs: 5 })), 'INVALID_REQUEST'],
      ['unknown datatype', body(x({ datatype: 'XX' })), 'INVALID_DATATYPE'],
      ['shape a string', body(x({ shape: '1,2' })), 'INVALID_SHAPE'],
      ['negative dimension', body(x({ shape: [-1, 2] })), 'INVALID_SHAPE'],
      ['fractional dimension', body(x({ shape: [1.5, 2] })), 'INVALID_SHAPE'],
      ['no data', body(x({ data: undefined })), 'INVALID_DATA'],
      ['BOOL data that is not booleans', body(x({ datatype: 'BOOL', data: [1, 0] })), 'INVALID_DATA'],
      ['BYTES data that is numbers', body(x({ datatype: 'BYTES', data: [1, 2] })), 'INVALID_DATA'],
      ['INT8 data out of range', body(x({ datatype: 'INT8', data: [1, 300] })), 'OUT_OF_RANGE'],
      ['nested data short of the shape', body(x({ shape: [2, 2], data: [[1, 2]] })), 'DATA_LENGTH_MISMATCH'],
      ['parameters an array', body(xs({ parameters: [] })), 'INVALID_PARAMETERS'],
      [
        'binary_data not a boolean',
        body(xs({ outputs: [{ name: 'y', parameters: { binary_data: 'yes' } }] })),
        'INVALID_PARAMETERS',
      ],
      [
        'data nested 3 000 deep',
        body(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":${deep(3_000)}}]}`),
        'INVALID_REQUEST',
      ],
      [
        'parameters nested 3 000 deep',
        body(`{${X_INPUT},"parameters":{"p":${deep(3_000)}}}`),
        'INVALID_PARAMETERS',
      ],
      [
        'input parameters nested 3 000 deep',
        body(
          `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[1,2],"parameters":{"p":${deep(3_000)}}}]}`,
        ),
        'INVALID_PARAMETERS',
      ],
    ] as [string, ApiEventOptions, string][]
  ).map(([what, opts, code]) => [what, opts, 400, code] as [string, ApiEventOptions, number, string]),
  // Numbers JSON cannot keep until the request runs.
  [
    [
      'number literal overflowing a double',
      body('{"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[1,1e400]}]}'),
      400,
      'NON_FINITE',
    ],
    [
      'number literal overflowing a double in a large body (read into a typed array)',
      body(
        `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,9000],"data":[${'1,'.repeat(8999)}-1e400]}]}`,
      ),
      400,
      'NON_FINITE',
    ],
    ['parameter overflowing a double', body(`{${X_INPUT},"parameters":{"t":1e400}}`), 400, 'NON_FINITE'],
  ] as [string, ApiEventOptions, number, string][],
);

// ---------------------------------------------------------------------------------------------------------
// The table

// Health and server metadata: only GET exists; anything else is refused by the route table.
for (const path of ['/v2/health/live', '/v2/health/ready', '/v2']) {
  const route = `GET ${path}`;
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
    add(route, `${method} instead of GET`, method, path, body({ x: 1 }), 405, 'METHOD_NOT_ALLOWED');
  }
  add(route, 'unknown sub-path', 'GET', `${path}/extra`, undefined, 404);
}

// Model metadata and readiness, on the default alias and on /versions/{ref}.
for (const suffix of ['', '/ready']) {
  const plain = `GET /v2/models/{name}${suffix}`;
  const versioned = `GET /v2/models/{name}/versions/{ref}${suffix}`;
  for (const [what, n] of BAD_NAMES)
    add(plain, `bad name: ${what}`, 'GET', `/v2/models/${n}${suffix}`, undefined, 400);
  add(plain, 'unknown model', 'GET', `/v2/models/ghost${suffix}`, undefined, 404, 'MODEL_NOT_FOUND');
  add(plain, 'POST instead of GET', 'POST', `/v2/models/m${suffix}`, body({}), 405, 'METHOD_NOT_ALLOWED');
  // A ref is a version number or an alias name: '1.5' is a (missing) alias, so 400 or 404.
  for (const [what, ref] of BAD_REFS) {
    add(versioned, `bad ref: ${what}`, 'GET', `/v2/models/m/versions/${ref}${suffix}`);
  }
  add(
    versioned,
    'unknown version',
    'GET',
    `/v2/models/m/versions/99${suffix}`,
    undefined,
    404,
    'VERSION_NOT_FOUND',
  );
  add(
    versioned,
    'unknown alias',
    'GET',
    `/v2/models/m/versions/nope${suffix}`,
    undefined,
    404,
    'ALIAS_NOT_FOUND',
  );
  add(versioned, 'bad name', 'GET', `/v2/models/M/versions/1${suffix}`, undefined, 400, 'INVALID_NAME');
}

// Inference, on the default alias and on /versions/{ref}.
for (const [route, path] of [
  ['POST /v2/models/{name}/infer', '/v2/models/m/infer'],
  ['POST /v2/models/{name}/versions/{ref}/infer', '/v2/models/m/versions/1/infer'],
] as const) {
  for (const [what, opts, status, code] of INFER_BODIES) add(route, what, 'POST', path, opts, status, code);
  add(route, 'GET instead of POST', 'GET', path, undefined, 405, 'METHOD_NOT_ALLOWED');
}
for (const [what, n] of BAD_NAMES) {
  add('POST /v2/models/{name}/infer', `bad name: ${what}`, 'POST', `/v2/models/${n}/infer`, body(x({})), 400);
}
add('POST /v2/models/{name}/infer', 'unknown model', 'POST', '/v2/models/ghost/infer', body(x({})), 404);
for (const [what, ref] of BAD_REFS) {
  add(
    'POST /v2/models/{name}/versions/{ref}/infer',
    `bad ref: ${what}`,
    'POST',
    `/v2/models/m/versions/${ref}/infer`,
    body(x({})),
  );
}
add(
  'POST /v2/models/{name}/versions/{ref}/infer',
  'unknown version',
  'POST',
  '/v2/models/m/versions/7/infer',
  body(x({})),
  404,
);

// Async submission and results.
for (const [route, path] of [
  ['POST /v2/models/{name}/infer-async', '/v2/models/m/infer-async'],
  ['POST /v2/models/{name}/versions/{ref}/infer-async', '/v2/models/m/versions/1/infer-async'],
] as const) {
  for (const [what, opts, status, code] of ASYNC_BODIES) add(route, what, 'POST', path, opts, status, code);
  add(route, 'GET instead of POST', 'GET', path, undefined, 405, 'METHOD_NOT_ALLOWED');
}
for (const [what, ref] of BAD_REFS.filter(([w]) => !['fractional', 'exponent'].includes(w))) {
  add(
    'POST /v2/models/{name}/versions/{ref}/infer-async',
    `bad ref: ${what}`,
    'POST',
    `/v2/models/m/versions/${ref}/infer-async`,
    body(x({})),
    400,
  );
}
for (const [what, n] of BAD_NAMES.slice(0, 6)) {
  add(
    'POST /v2/models/{name}/infer-async',
    `bad name: ${what}`,
    'POST',
    `/v2/models/${n}/infer-async`,
    body(x({})),
    400,
  );
}
for (const [what, id] of [
  ['not a UUID', 'abc'],
  ['dot segment', '..'],
  ['encoded slash', 'a%2Fb'],
  ['encoded NUL', 'a%00b'],
  ['too long', 'a'.repeat(300)],
  ['upper-case UUID', 'AAAAAAAA-AAAA-4AAA-8AAA-AAAAAAAAAAAA'],
  ['unknown UUID', '00000000-0000-4000-8000-000000000000'],
] as const) {
  add('GET /async/{requestId}', `requestId ${what}`, 'GET', `/async/${id}`);
}
add(
  'GET /async/{requestId}',
  'DELETE instead of GET',
  'DELETE',
  '/async/00000000-0000-4000-8000-000000000000',
  undefined,
  405,
);

// Registry: listings.
for (const [route, path] of [
  ['GET /models', '/models'],
  ['GET /models/{name}/versions', '/models/m/versions'],
  ['GET /models/{name}/aliases/{alias}/history', '/models/m/aliases/prod/history'],
] as const) {
  for (const limit of BAD_LIMITS) {
    add(route, `limit ${JSON.stringify(limit)}`, 'GET', path, { query: { limit } }, 400, 'INVALID_LIMIT');
  }
  for (const [what, token] of BAD_TOKENS) {
    add(route, `nextToken ${what}`, 'GET', path, { query: { nextToken: token } }, 400, 'INVALID_TOKEN');
  }
}
// Tokens of the right shape whose sort key DynamoDB could not take (over 1024 bytes, a lone surrogate).
for (const [what, sk] of [
  ['a sort key over 1024 bytes', `VERSION#${'9'.repeat(1100)}`],
  ['a sort key with a lone surrogate', 'VERSION#\ud800'],
] as const) {
  const token = Buffer.from(JSON.stringify({ pk: 'MODEL#m', sk })).toString('base64url');
  add(
    'GET /models/{name}/versions',
    `nextToken with ${what}`,
    'GET',
    '/models/m/versions',
    { query: { nextToken: token } },
    400,
    'INVALID_TOKEN',
  );
}
add('GET /models', 'DELETE instead of GET', 'DELETE', '/models');

// Registry: a model.
for (const [what, n] of BAD_NAMES)
  add('GET /models/{name}', `bad name: ${what}`, 'GET', `/models/${n}`, undefined, 400);
add('GET /models/{name}', 'unknown model', 'GET', '/models/ghost', undefined, 404, 'MODEL_NOT_FOUND');
for (const [what, n] of BAD_NAMES.slice(0, 5)) {
  add('GET /models/{name}/versions', `bad name: ${what}`, 'GET', `/models/${n}/versions`, undefined, 400);
}
add('GET /models/{name}/versions', 'unknown model', 'GET', '/models/ghost/versions', undefined, 404);

// Registry: uploads.
const UPLOADS = 'POST /models/{name}/uploads';
for (const [what, n] of BAD_NAMES.slice(0, 6))
  add(UPLOADS, `bad name: ${what}`, 'POST', `/models/${n}/uploads`, undefined, 400);
for (const [what, opts, code] of [
  ['unknown field', body({ ttl: 10, sizeBytes: 1 }), 'VALIDATION_ERROR'],
  ['no sizeBytes', body({}), 'VALIDATION_ERROR'],
  ['sizeBytes as a string', body({ sizeBytes: '12' }), 'VALIDATION_ERROR'],
  ['sizeBytes zero', body({ sizeBytes: 0 }), 'VALIDATION_ERROR'],
  ['sizeBytes negative', body({ sizeBytes: -5 }), 'VALIDATION_ERROR'],
  ['sizeBytes fractional', body({ sizeBytes: 1.5 }), 'VALIDATION_ERROR'],
  ['sizeBytes over the model limit', body({ sizeBytes: 257 * 1024 * 1024 }), 'PAYLOAD_TOO_LARGE'],
  ['JSON array', body([]), undefined],
  ['truncated JSON', body('{"a":'), 'MALFORMED_JSON'],
  ['JSON string', body('"x"'), undefined],
  [
    'urlencoded form',
    body('a=1', { headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
    'MALFORMED_JSON',
  ],
  ['body over the limit', body({ pad: 'a'.repeat(MAX_BODY) }), 'PAYLOAD_TOO_LARGE'],
] as [string, ApiEventOptions, string | undefined][]) {
  add(UPLOADS, what, 'POST', '/models/m/uploads', opts, undefined, code);
}

// Registry: registration.
const REGISTER = 'POST /models/{name}/versions';
const reg = (b: unknown) => () => body(b);
const s3 = (key: string) => () => body({ s3Uri: `s3://${bucket}/${key}` });
for (const [what, opts, code] of [
  ['empty body', reg(''), 'MALFORMED_JSON'],
  ['truncated JSON', reg('{"uploadId":'), 'MALFORMED_JSON'],
  ['JSON array', reg([]), undefined],
  ['JSON null', reg('null'), undefined],
  ['no source', reg({}), 'VALIDATION_ERROR'],
  ['both sources', reg({ uploadId: 'first', s3Uri: 's3://b/uploads/m/x.onnx' }), 'VALIDATION_ERROR'],
  ['unknown field', reg({ uploadId: 'first', extra: 1 }), 'VALIDATION_ERROR'],
  ['uploadId a number', reg({ uploadId: 42 }), 'VALIDATION_ERROR'],
  ['uploadId with a dot segment', reg({ uploadId: '..' }), 'VALIDATION_ERROR'],
  ['uploadId escaping its prefix', reg({ uploadId: '../../models/other/x' }), 'VALIDATION_ERROR'],
  ['uploadId with a slash', reg({ uploadId: 'a/b' }), 'VALIDATION_ERROR'],
  ['uploadId with NUL', reg({ uploadId: 'a\u0000' }), 'VALIDATION_ERROR'],
  ['uploadId too long', reg({ uploadId: 'a'.repeat(65) }), 'VALIDATION_ERROR'],
  ['uploadId empty', reg({ uploadId: '' }), 'VALIDATION_ERROR'],
  ['uploadId that was never uploaded', reg({ uploadId: 'never' }), 'ARTIFACT_NOT_FOUND'],
  ['s3Uri a number', reg({ s3Uri: 7 }), 'VALIDATION_ERROR'],
  ['s3Uri not s3://', reg({ s3Uri: 'https://bucket/uploads/m/a.onnx' }), 'INVALID_S3_URI'],
  ['s3Uri without key', reg({ s3Uri: 's3://bucket' }), 'INVALID_S3_URI'],
  ['s3Uri of another bucket', reg({ s3Uri: 's3://someone-else/uploads/m/a.onnx' }), 'INVALID_S3_URI'],
  [
    's3Uri outside uploads/ and incoming/',
    () => body({ s3Uri: `s3://${bucket}/${otherKey}` }),
    'INVALID_S3_URI',
  ],
  [
    's3Uri traversal from uploads/',
    () => body({ s3Uri: `s3://${bucket}/uploads/../${otherKey}` }),
    'INVALID_S3_URI',
  ],
  [
    's3Uri traversal from incoming/',
    () => body({ s3Uri: `s3://${bucket}/incoming/m/../../${otherKey}` }),
    'INVALID_S3_URI',
  ],
  ['s3Uri with a ./ segment', s3('uploads/./m/first.onnx'), 'INVALID_S3_URI'],
  [
    's3Uri percent-encoded traversal',
    () => body({ s3Uri: `s3://${bucket}/uploads/%2e%2e/${otherKey}` }),
    'INVALID_S3_URI',
  ],
  ['s3Uri key with NUL', s3('uploads/m/a\u0000b.onnx'), 'INVALID_S3_URI'],
  ['s3Uri key with a newline', s3('uploads/m/a\nb.onnx'), 'INVALID_S3_URI'],
  ['s3Uri key with DEL', s3('uploads/m/a\u007fb.onnx'), 'INVALID_S3_URI'],
  [
    's3Uri key with a lone surrogate',
    () => body(`{"s3Uri":"s3://${bucket}/uploads/m/\\ud800.onnx"}`),
    'INVALID_S3_URI',
  ],
  ['s3Uri key of 2000 characters', s3(`uploads/m/${'a'.repeat(2000)}.onnx`), 'INVALID_S3_URI'],
  ['s3Uri key over 1024 UTF-8 bytes', s3(`uploads/m/${'é'.repeat(600)}.onnx`), 'INVALID_S3_URI'],
  ['s3Uri over 2048 characters', reg({ s3Uri: `s3://b/${'a'.repeat(2100)}` }), 'VALIDATION_ERROR'],
  ['s3Uri of a missing object', s3('uploads/m/none.onnx'), 'ARTIFACT_NOT_FOUND'],
  ['description a number', reg({ uploadId: 'first', description: 1 }), 'VALIDATION_ERROR'],
  ['description too long', reg({ uploadId: 'first', description: 'd'.repeat(5000) }), 'VALIDATION_ERROR'],
  ['tags an array', reg({ uploadId: 'first', tags: ['a'] }), 'VALIDATION_ERROR'],
  ['tag value a number', reg({ uploadId: 'first', tags: { a: 1 } }), 'VALIDATION_ERROR'],
  ['tag with an empty key', reg({ uploadId: 'first', tags: { '': 'x' } }), 'VALIDATION_ERROR'],
  ['tag named __proto__', () => body('{"uploadId":"first","tags":{"__proto__":"x"}}'), 'VALIDATION_ERROR'],
  // Lone surrogates: text with no UTF-8 form, which DynamoDB and the model's BYTES would store as U+FFFD.
  [
    'description with a lone surrogate',
    reg({ uploadId: 'first', description: 'a\ud800b' }),
    'VALIDATION_ERROR',
  ],
  ['tag name with a lone surrogate', reg({ uploadId: 'first', tags: { '\udc00': 'x' } }), 'VALIDATION_ERROR'],
  ['tag value with a lone surrogate', reg({ uploadId: 'first', tags: { t: 'x\udbff' } }), 'VALIDATION_ERROR'],
  ['label with a lone surrogate', reg({ uploadId: 'first', labels: ['a', '\ud800'] }), 'VALIDATION_ERROR'],
  [
    'postprocess output with a lone surrogate',
    reg({ uploadId: 'first', postprocess: { output: 'y\ud800', argmax: true } }),
    'VALIDATION_ERROR',
  ],
  // Constants that are 0 as FP32, the input's type (fitted to the model at registration): every answer NaN.
  [
    'preprocess std that is 0 as FP32',
    reg({ uploadId: 'first', preprocess: { x: { normalize: { mean: 0, std: 1e-50 } } } }),
    'INVALID_PREPROCESS',
  ],
  [
    'preprocess minmax range that is 0 as FP32',
    reg({ uploadId: 'first', preprocess: { x: { minmax: { min: 0, max: 1e-46 } } } }),
    'INVALID_PREPROCESS',
  ],
  [
    'preprocess vocabulary with a lone surrogate',
    reg({
      uploadId: 'first',
      preprocess: { x: [{ stringToIndex: { vocabulary: ['a', '\ud800'], oov: 2 } }] },
    }),
    'INVALID_PREPROCESS',
  ],
  [
    'preprocess nested 6 000 deep',
    () => body(`{"uploadId":"first","preprocess":{"x":${deep(6_000)}}}`),
    'INVALID_PREPROCESS',
  ],
  [
    'preprocess input named __proto__',
    () => body('{"uploadId":"first","preprocess":{"__proto__":{"normalize":{"mean":0,"std":1}}}}'),
    'INVALID_PREPROCESS',
  ],
  ['labels a string', reg({ uploadId: 'first', labels: 'a,b' }), 'VALIDATION_ERROR'],
  ['label a number', reg({ uploadId: 'first', labels: [1] }), 'VALIDATION_ERROR'],
  ['postprocess a string', reg({ uploadId: 'first', postprocess: 'softmax' }), 'VALIDATION_ERROR'],
  [
    'postprocess unknown field',
    reg({ uploadId: 'first', postprocess: { sigmoid: true } }),
    'VALIDATION_ERROR',
  ],
  ['topK negative', reg({ uploadId: 'first', postprocess: { topK: -1 } }), 'VALIDATION_ERROR'],
  ['topK fractional', reg({ uploadId: 'first', postprocess: { topK: 1.5 } }), 'VALIDATION_ERROR'],
  ['topK huge', reg({ uploadId: 'first', postprocess: { topK: 1e300 } }), 'VALIDATION_ERROR'],
  ['topK a string', reg({ uploadId: 'first', postprocess: { topK: '2' } }), 'VALIDATION_ERROR'],
  ['softmax a string', reg({ uploadId: 'first', postprocess: { softmax: 'yes' } }), 'VALIDATION_ERROR'],
  ['body over the limit', reg({ uploadId: 'first', description: 'a'.repeat(MAX_BODY) }), 'PAYLOAD_TOO_LARGE'],
] as [string, () => ApiEventOptions, string | undefined][]) {
  add(REGISTER, what, 'POST', '/models/m/versions', opts, undefined, code);
}
for (const [what, n] of BAD_NAMES.slice(0, 6)) {
  add(REGISTER, `bad name: ${what}`, 'POST', `/models/${n}/versions`, body({ uploadId: 'first' }), 400);
}

// Registry: one version.
for (const [method, route] of [
  ['GET', 'GET /models/{name}/versions/{version}'],
  ['PATCH', 'PATCH /models/{name}/versions/{version}'],
  ['DELETE', 'DELETE /models/{name}/versions/{version}'],
] as const) {
  const opts = method === 'PATCH' ? body({ description: 'd' }) : undefined;
  for (const [what, v] of BAD_VERSIONS)
    add(route, `bad version: ${what}`, method, `/models/m/versions/${v}`, opts, 400);
  add(route, 'unknown version', method, '/models/m/versions/42', opts, 404, 'VERSION_NOT_FOUND');
  add(route, 'unknown model', method, '/models/ghost/versions/1', opts, 404, 'MODEL_NOT_FOUND');
  add(route, 'bad name', method, '/models/M!/versions/1', opts, 400, 'INVALID_NAME');
}
const PATCH = 'PATCH /models/{name}/versions/{version}';
for (const [what, b, code] of [
  ['empty object', {}, 'VALIDATION_ERROR'],
  ['status READY', { status: 'READY' }, 'VALIDATION_ERROR'],
  ['status lower case', { status: 'archived' }, 'VALIDATION_ERROR'],
  ['unknown field', { name: 'x' }, 'VALIDATION_ERROR'],
  ['description an object', { description: {} }, 'VALIDATION_ERROR'],
  ['description with a lone surrogate', { description: '\udfff' }, 'VALIDATION_ERROR'],
  ['tag with a lone surrogate', { tags: { t: '\ud800' } }, 'VALIDATION_ERROR'],
  ['tags a string', { tags: 'a=b' }, 'VALIDATION_ERROR'],
  [
    'too many tags',
    { tags: Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, 'v'])) },
    'VALIDATION_ERROR',
  ],
  ['truncated JSON', '{"status":', 'MALFORMED_JSON'],
  ['JSON whose bytes are not UTF-8', notUtf8('{"description":"caf\u00e9"}'), 'MALFORMED_JSON'],
  ['JSON array', [], undefined],
] as [string, unknown, string | undefined][]) {
  add(PATCH, what, 'PATCH', '/models/m/versions/1', body(b), undefined, code);
}
add(
  PATCH,
  'archiving the version prod points at',
  'PATCH',
  '/models/m/versions/1',
  body({ status: 'ARCHIVED' }),
  409,
);
add(
  'DELETE /models/{name}/versions/{version}',
  'deleting the version prod points at',
  'DELETE',
  '/models/m/versions/1',
  undefined,
  409,
);

// Registry: aliases.
const MOVE = 'PUT /models/{name}/aliases/{alias}';
for (const [what, b, status, code] of [
  ['no version', {}, 400, 'VALIDATION_ERROR'],
  ['version 0', { version: 0 }, 400, 'VALIDATION_ERROR'],
  ['negative version', { version: -1 }, 400, 'VALIDATION_ERROR'],
  ['fractional version', { version: 1.5 }, 400, 'VALIDATION_ERROR'],
  ['version a string', { version: '1' }, 400, 'VALIDATION_ERROR'],
  ['version null', { version: null }, 400, 'VALIDATION_ERROR'],
  ['huge version', { version: 1e300 }, 400, 'VALIDATION_ERROR'],
  ['version beyond 2^53', '{"version": 9007199254740993}', 400, 'VALIDATION_ERROR'],
  ['unknown version', { version: 42 }, 404, 'VERSION_NOT_FOUND'],
  ['expectedVersion negative', { version: 1, expectedVersion: -1 }, 400, 'VALIDATION_ERROR'],
  ['expectedVersion fractional', { version: 1, expectedVersion: 0.5 }, 400, 'VALIDATION_ERROR'],
  ['expectedVersion a string', { version: 1, expectedVersion: '1' }, 400, 'VALIDATION_ERROR'],
  ['expectedVersion huge', { version: 1, expectedVersion: 1e300 }, 400, 'VALIDATION_ERROR'],
  ['expectedVersion stale', { version: 1, expectedVersion: 7 }, 412, undefined],
  ['expectedVersion 0 for an existing alias', { version: 1, expectedVersion: 0 }, 412, undefined],
  ['reason too long', { version: 1, reason: 'r'.repeat(5000) }, 400, 'VALIDATION_ERROR'],
  ['reason with a lone surrogate', { version: 1, reason: 'r\ud800' }, 400, 'VALIDATION_ERROR'],
  ['unknown field', { version: 1, force: true }, 400, 'VALIDATION_ERROR'],
  ['truncated JSON', '{"version": 1', 400, 'MALFORMED_JSON'],
  ['empty body', '', 400, 'MALFORMED_JSON'],
] as [string, unknown, number, string | undefined][]) {
  add(MOVE, what, 'PUT', '/models/m/aliases/prod', body(b), status, code);
}
for (const [what, a] of [...BAD_ALIASES, ['all digits', '123'] as [string, string]]) {
  add(MOVE, `bad alias: ${what}`, 'PUT', `/models/m/aliases/${a}`, body({ version: 1 }), 400);
  add(
    'DELETE /models/{name}/aliases/{alias}',
    `bad alias: ${what}`,
    'DELETE',
    `/models/m/aliases/${a}`,
    undefined,
    400,
  );
  add(
    'POST /models/{name}/aliases/{alias}/rollback',
    `bad alias: ${what}`,
    'POST',
    `/models/m/aliases/${a}/rollback`,
    undefined,
    400,
  );
  add(
    'GET /models/{name}/aliases/{alias}/history',
    `bad alias: ${what}`,
    'GET',
    `/models/m/aliases/${a}/history`,
    undefined,
    400,
  );
}
add(MOVE, 'unknown model', 'PUT', '/models/ghost/aliases/prod', body({ version: 1 }), 404);
add(
  'DELETE /models/{name}/aliases/{alias}',
  'unknown alias',
  'DELETE',
  '/models/m/aliases/never',
  undefined,
  404,
);
add(
  'DELETE /models/{name}/aliases/{alias}',
  'unknown model',
  'DELETE',
  '/models/ghost/aliases/prod',
  undefined,
  404,
);
// Registry: an alias's capture declaration.
const CAPTURE = 'PATCH /models/{name}/aliases/{alias}';
for (const [what, b, status, code] of [
  ['no capture', {}, 400, 'VALIDATION_ERROR'],
  ['unknown field', { capture: null, version: 1 }, 400, 'VALIDATION_ERROR'],
  ['capture a string', { capture: 'on' }, 400, 'INVALID_CAPTURE'],
  ['capture an array', { capture: [10] }, 400, 'INVALID_CAPTURE'],
  ['capture without samplePercent', { capture: { input: true } }, 400, 'INVALID_CAPTURE'],
  ['samplePercent over 100', { capture: { samplePercent: 101 } }, 400, 'INVALID_CAPTURE'],
  ['samplePercent negative', { capture: { samplePercent: -0.01 } }, 400, 'INVALID_CAPTURE'],
  ['samplePercent finer than 0.01', { capture: { samplePercent: 33.333 } }, 400, 'INVALID_CAPTURE'],
  ['samplePercent a string', { capture: { samplePercent: '5' } }, 400, 'INVALID_CAPTURE'],
  ['samplePercent huge', '{"capture":{"samplePercent":1e400}}', 400, 'INVALID_CAPTURE'],
  ['output a number', { capture: { samplePercent: 5, output: 1 } }, 400, 'INVALID_CAPTURE'],
  ['records nothing', { capture: { samplePercent: 5, input: false, output: false } }, 400, 'INVALID_CAPTURE'],
  ['routing reason with a lone surrogate', { routing: null, reason: '\ud800' }, 400, 'VALIDATION_ERROR'],
  ['unknown capture field', { capture: { samplePercent: 5, body: true } }, 400, 'INVALID_CAPTURE'],
  ['truncated JSON', '{"capture":', 400, 'MALFORMED_JSON'],
  ['empty body', '', 400, 'MALFORMED_JSON'],
  ['JSON array', [], 400, undefined],
] as [string, unknown, number, string | undefined][]) {
  add(CAPTURE, what, 'PATCH', '/models/m/aliases/prod', body(b), status, code);
}
for (const [what, a] of BAD_ALIASES) {
  add(CAPTURE, `bad alias: ${what}`, 'PATCH', `/models/m/aliases/${a}`, body({ capture: null }), 400);
}
for (const [what, n] of BAD_NAMES.slice(0, 6)) {
  add(CAPTURE, `bad name: ${what}`, 'PATCH', `/models/${n}/aliases/prod`, body({ capture: null }), 400);
}
add(
  CAPTURE,
  'unknown alias',
  'PATCH',
  '/models/m/aliases/never',
  body({ capture: null }),
  404,
  'ALIAS_NOT_FOUND',
);
add(
  CAPTURE,
  'unknown model',
  'PATCH',
  '/models/ghost/aliases/prod',
  body({ capture: null }),
  404,
  'MODEL_NOT_FOUND',
);
const DERIVE = 'POST /models/{name}/versions/{version}/derive';
const DERIVE_PATH = '/models/m/versions/1/derive';
const INT8 = { quantize: 'int8' };
add(DERIVE, 'no body', 'POST', DERIVE_PATH, undefined, 400, 'MALFORMED_JSON');
add(DERIVE, 'truncated JSON', 'POST', DERIVE_PATH, body('{"transforms":['), 400, 'MALFORMED_JSON');
add(DERIVE, 'JSON array', 'POST', DERIVE_PATH, body([INT8]), 400, 'MALFORMED_JSON');
add(
  DERIVE,
  'description with a lone surrogate',
  'POST',
  DERIVE_PATH,
  body({ transforms: [INT8], description: 'd\ud800' }),
  400,
  'VALIDATION_ERROR',
);
add(
  DERIVE,
  'preprocess nested 6 000 deep',
  'POST',
  DERIVE_PATH,
  body(`{"transforms":[{"preprocess":{"x":${deep(6_000)}}}]}`),
  400,
);
add(
  DERIVE,
  'tag named __proto__',
  'POST',
  DERIVE_PATH,
  body('{"transforms":[{"quantize":"int8"}],"tags":{"__proto__":"x","a":"b"}}'),
  400,
  'VALIDATION_ERROR',
);
add(
  DERIVE,
  'preprocess input named __proto__',
  'POST',
  DERIVE_PATH,
  body('{"transforms":[{"preprocess":{"__proto__":{"clip":{"min":0}},"x":{"clip":{"min":0}}}}]}'),
  400,
  'VALIDATION_ERROR',
);
add(DERIVE, 'no transforms', 'POST', DERIVE_PATH, body({ transforms: [] }), 400, 'VALIDATION_ERROR');
// Numbers the registry could not store (DynamoDB's range, the SDK's ±2^53).
for (const [what, transform] of [
  ['a clip bound beyond 2^53', { preprocess: { x: { clip: { max: 1e16 } } } }],
  ['a clip bound below 1e-130', { preprocess: { x: { clip: { min: 1e-140 } } } }],
  ['a fillMissing value beyond 2^53', { preprocess: { x: { fillMissing: { value: 1e39 } } } }],
] as const) {
  add(
    DERIVE,
    `preprocess with ${what}`,
    'POST',
    DERIVE_PATH,
    body({ transforms: [transform] }),
    400,
    'INVALID_PREPROCESS',
  );
}
for (const gate of [{ maxAbsDiff: 1e-140 }, { maxRelDiff: 1e20 }, { nearTieMargin: 1e-200 }]) {
  add(
    DERIVE,
    `gate threshold the registry cannot store: ${JSON.stringify(gate)}`,
    'POST',
    DERIVE_PATH,
    body({ transforms: [INT8], gate }),
    400,
    'VALIDATION_ERROR',
  );
}
add(
  DERIVE,
  'unknown transform',
  'POST',
  DERIVE_PATH,
  body({ transforms: [{ prune: 0.5 }] }),
  400,
  'VALIDATION_ERROR',
);
add(
  DERIVE,
  'quantize int4',
  'POST',
  DERIVE_PATH,
  body({ transforms: [{ quantize: 'int4' }] }),
  400,
  'VALIDATION_ERROR',
);
add(
  DERIVE,
  'optimize all',
  'POST',
  DERIVE_PATH,
  body({ transforms: [{ optimize: 'all' }] }),
  400,
  'VALIDATION_ERROR',
);
add(
  DERIVE,
  'transform given twice',
  'POST',
  DERIVE_PATH,
  body({ transforms: [INT8, INT8] }),
  400,
  'INVALID_TRANSFORMS',
);
add(
  DERIVE,
  'unknown field',
  'POST',
  DERIVE_PATH,
  body({ transforms: [INT8], force: true }),
  400,
  'VALIDATION_ERROR',
);
add(
  DERIVE,
  'agreement above 1',
  'POST',
  DERIVE_PATH,
  body({ transforms: [INT8], gate: { minAgreement: 2 } }),
  400,
  'VALIDATION_ERROR',
);
add(
  DERIVE,
  'relative difference above 1',
  'POST',
  DERIVE_PATH,
  body({ transforms: [INT8], gate: { maxRelDiff: 1.5 } }),
  400,
  'VALIDATION_ERROR',
);
add(
  DERIVE,
  'near-tie margin above 0.5',
  'POST',
  DERIVE_PATH,
  body({ transforms: [INT8], gate: { nearTieMargin: 0.75 } }),
  400,
  'VALIDATION_ERROR',
);
add(
  DERIVE,
  'preprocess naming an input the model does not have',
  'POST',
  DERIVE_PATH,
  body({ transforms: [{ preprocess: { nope: { clip: { min: 0 } } } }] }),
  400,
  'INVALID_PREPROCESS',
);
add(
  DERIVE,
  'rows beyond the limit',
  'POST',
  DERIVE_PATH,
  body({ transforms: [INT8], gate: { rows: 10_000_001 } }),
  400,
  'VALIDATION_ERROR',
);
add(
  DERIVE,
  'sample id with a slash',
  'POST',
  DERIVE_PATH,
  body({ transforms: [INT8], sample: { uploadId: '../x' } }),
  400,
  'VALIDATION_ERROR',
);
add(
  DERIVE,
  'sample not uploaded',
  'POST',
  DERIVE_PATH,
  body({ transforms: [INT8], sample: { uploadId: 'none' } }),
  400,
  'SAMPLE_NOT_FOUND',
);
add(
  DERIVE,
  'version not a number',
  'POST',
  '/models/m/versions/one/derive',
  body({ transforms: [INT8] }),
  400,
);
add(DERIVE, 'unknown version', 'POST', '/models/m/versions/99/derive', body({ transforms: [INT8] }), 404);
add(DERIVE, 'unknown model', 'POST', '/models/ghost/versions/1/derive', body({ transforms: [INT8] }), 404);
add(
  DERIVE,
  'bad name',
  'POST',
  '/models/M!/versions/1/derive',
  body({ transforms: [INT8] }),
  400,
  'INVALID_NAME',
);
const ROLLBACK = 'POST /models/{name}/aliases/{alias}/rollback';
add(
  ROLLBACK,
  'unknown field',
  'POST',
  '/models/m/aliases/prod/rollback',
  body({ to: 1 }),
  400,
  'VALIDATION_ERROR',
);
add(
  ROLLBACK,
  'reason a number',
  'POST',
  '/models/m/aliases/prod/rollback',
  body({ reason: 1 }),
  400,
  'VALIDATION_ERROR',
);
add(
  ROLLBACK,
  'truncated JSON',
  'POST',
  '/models/m/aliases/prod/rollback',
  body('{"reason":'),
  400,
  'MALFORMED_JSON',
);
add(ROLLBACK, 'JSON array', 'POST', '/models/m/aliases/prod/rollback', body([]), 400);
add(
  ROLLBACK,
  'reason with a lone surrogate',
  'POST',
  '/models/m/aliases/prod/rollback',
  body({ reason: '\udc00r' }),
  400,
  'VALIDATION_ERROR',
);
add(ROLLBACK, 'no earlier move to roll back to', 'POST', '/models/m/aliases/prod/rollback', undefined, 409);
add(ROLLBACK, 'unknown alias', 'POST', '/models/m/aliases/never/rollback', undefined, 404);
add(ROLLBACK, 'unknown model', 'POST', '/models/ghost/aliases/prod/rollback', undefined, 404);
add(
  'GET /models/{name}/aliases/{alias}/history',
  'unknown alias',
  'GET',
  '/models/m/aliases/never/history',
  undefined,
  404,
);
add(
  'GET /models/{name}/aliases/{alias}/history',
  'unknown model',
  'GET',
  '/models/ghost/aliases/prod/history',
  undefined,
  404,
);

// Feedback and the capture listing (async function).
const FEEDBACK = 'POST /v2/models/{name}/feedback';
for (const [what, opts, code] of [
  ['empty body', body(''), 'MALFORMED_JSON'],
  ['truncated JSON', body('{"inferenceId":'), 'MALFORMED_JSON'],
  ['JSON string', body('"x"'), 'INVALID_FEEDBACK'],
  ['JSON null', body('null'), 'INVALID_FEEDBACK'],
  ['empty array', body([]), 'INVALID_FEEDBACK'],
  ['no inferenceId', body({ label: 'a' }), 'INVALID_FEEDBACK'],
  ['empty inferenceId', body({ inferenceId: '', label: 'a' }), 'INVALID_FEEDBACK'],
  ['inferenceId a number', body({ inferenceId: 1, label: 'a' }), 'INVALID_FEEDBACK'],
  ['inferenceId too long', body({ inferenceId: 'i'.repeat(257), label: 'a' }), 'INVALID_FEEDBACK'],
  ['neither label nor value', body({ inferenceId: 'a' }), 'INVALID_FEEDBACK'],
  ['both label and value', body({ inferenceId: 'a', label: 'x', value: 1 }), 'INVALID_FEEDBACK'],
  ['label an object', body({ inferenceId: 'a', label: {} }), 'INVALID_FEEDBACK'],
  ['label too long', body({ inferenceId: 'a', label: 'x'.repeat(1025) }), 'INVALID_FEEDBACK'],
  // Neither can be kept as sent: the integer would lose digits, the id could match no request.
  ['label an integer beyond 2^53', body('{"inferenceId":"a","label":9007199254740993}'), 'INVALID_FEEDBACK'],
  ['inferenceId with a lone surrogate', body('{"inferenceId":"a\\ud800","label":"x"}'), 'INVALID_FEEDBACK'],
  ['label with a lone surrogate', body('{"inferenceId":"a","label":"\\udc00"}'), 'INVALID_FEEDBACK'],
  ['value a string', body({ inferenceId: 'a', value: '1' }), 'INVALID_FEEDBACK'],
  ['unknown field', body({ inferenceId: 'a', value: 1, extra: true }), 'INVALID_FEEDBACK'],
  [
    'too many items',
    body(Array.from({ length: 1001 }, () => ({ inferenceId: 'a', value: 1 }))),
    'INVALID_FEEDBACK',
  ],
  ['body over the limit', body({ inferenceId: 'a', label: 'a'.repeat(MAX_BODY) }), 'PAYLOAD_TOO_LARGE'],
] as [string, ApiEventOptions, string][]) {
  add(FEEDBACK, what, 'POST', '/v2/models/m/feedback', opts, undefined, code);
}
for (const [what, n] of BAD_NAMES.slice(0, 6)) {
  add(
    FEEDBACK,
    `bad name: ${what}`,
    'POST',
    `/v2/models/${n}/feedback`,
    body({ inferenceId: 'a', value: 1 }),
    400,
  );
}
add(FEEDBACK, 'GET instead of POST', 'GET', '/v2/models/m/feedback', undefined, 405, 'METHOD_NOT_ALLOWED');

const LIST_CAPTURE = 'GET /models/{name}/capture';
for (const [what, query, code] of [
  ['version zero', { version: '0' }, 'INVALID_VERSION'],
  ['version not a number', { version: 'prod' }, 'INVALID_VERSION'],
  ['since not a time', { since: 'yesterday' }, 'INVALID_SINCE'],
  ['since relative', { since: '1h' }, 'INVALID_SINCE'],
  ['since a day that does not exist', { since: '2026-02-31T00:00:00Z' }, 'INVALID_SINCE'],
  ['since hour 25', { since: '2026-02-01T25:00:00Z' }, 'INVALID_SINCE'],
  ['limit zero', { limit: '0' }, 'INVALID_LIMIT'],
  ['limit over 1000', { limit: '1001' }, 'INVALID_LIMIT'],
  ['limit fractional', { limit: '1.5' }, 'INVALID_LIMIT'],
  ...BAD_TOKENS.map(([w, token]) => [`nextToken ${w}`, { nextToken: token }, 'INVALID_TOKEN']),
  ...(
    [
      ['a NUL', 'capture/m/x\u0000'],
      ['a lone surrogate', 'capture/m/\ud800'],
      ['over 1024 UTF-8 bytes', `capture/m/${'é'.repeat(600)}`],
    ] as const
  ).map(([w, k]) => [
    `nextToken naming a key with ${w}`,
    { nextToken: Buffer.from(JSON.stringify({ k, l: 0 })).toString('base64url') },
    'INVALID_TOKEN',
  ]),
] as [string, Record<string, string>, string][]) {
  add(LIST_CAPTURE, what, 'GET', '/models/m/capture', { query }, 400, code);
}
for (const [what, n] of BAD_NAMES.slice(0, 6))
  add(LIST_CAPTURE, `bad name: ${what}`, 'GET', `/models/${n}/capture`, undefined, 400);
add(LIST_CAPTURE, 'POST instead of GET', 'POST', '/models/m/capture', body({}), 405, 'METHOD_NOT_ALLOWED');

// Registry: an alias's traffic split (the `routing` field of the alias PATCH).
for (const [what, b, status, code] of [
  ['routing a string', { routing: 'canary' }, 400, 'INVALID_ROUTING'],
  ['routing an array', { routing: [2, 10] }, 400, 'INVALID_ROUTING'],
  ['canary without weight', { routing: { canary: { version: 2 } } }, 400, 'INVALID_ROUTING'],
  ['canary weight over 100', { routing: { canary: { version: 2, weight: 100.1 } } }, 400, 'INVALID_ROUTING'],
  [
    'canary weight finer than 0.1',
    { routing: { canary: { version: 2, weight: 0.05 } } },
    400,
    'INVALID_ROUTING',
  ],
  ['canary weight huge', '{"routing":{"canary":{"version":2,"weight":1e400}}}', 400, 'INVALID_ROUTING'],
  ['canary version 0', { routing: { canary: { version: 0, weight: 1 } } }, 400, 'INVALID_ROUTING'],
  ['canary version a string', { routing: { canary: { version: '2', weight: 1 } } }, 400, 'INVALID_ROUTING'],
  ['canary null', { routing: { canary: null } }, 400, 'INVALID_ROUTING'],
  ['unknown routing field', { routing: { stable: 1 } }, 400, 'INVALID_ROUTING'],
  ['keyParameter with a space', { routing: { keyParameter: 'a b' } }, 400, 'INVALID_ROUTING'],
  ['expectedRevision without routing', { expectedRevision: 1 }, 400, 'VALIDATION_ERROR'],
  ['expectedRevision negative', { routing: null, expectedRevision: -1 }, 400, 'VALIDATION_ERROR'],
  [
    'canary is the stable version',
    { routing: { canary: { version: 1, weight: 5 } } },
    409,
    'CANARY_IS_STABLE',
  ],
  ['canary version unknown', { routing: { canary: { version: 99, weight: 5 } } }, 404, 'VERSION_NOT_FOUND'],
  ['stale expectedRevision', { routing: null, expectedRevision: 999 }, 412, 'PRECONDITION_FAILED'],
] as [string, unknown, number, string | undefined][]) {
  add(CAPTURE, `routing: ${what}`, 'PATCH', '/models/m/aliases/prod', body(b), status, code);
}
add(
  CAPTURE,
  'routing: unknown alias',
  'PATCH',
  '/models/m/aliases/never',
  body({ routing: null }),
  404,
  'ALIAS_NOT_FOUND',
);

// Registry: staged rollouts.
const START_ROLLOUT = 'PUT /models/{name}/aliases/{alias}/rollout';
const GET_ROLLOUT = 'GET /models/{name}/aliases/{alias}/rollout';
const ROLLOUT_ACTION = 'POST /models/{name}/aliases/{alias}/rollout/{action}';
const steps = [{ weight: 10, bakeSeconds: 60 }, { weight: 100 }];
for (const [what, b, status, code] of [
  ['body not JSON', '{"version": 2,', 400, undefined],
  ['body an array', [2], 400, undefined],
  ['no steps', { version: 2 }, 400, 'INVALID_ROLLOUT'],
  ['no version', { steps }, 400, 'INVALID_ROLLOUT'],
  ['empty steps', { version: 2, steps: [] }, 400, 'INVALID_ROLLOUT'],
  ['weights not increasing', { version: 2, steps: [{ weight: 50 }, { weight: 10 }] }, 400, 'INVALID_ROLLOUT'],
  ['weight over 100', { version: 2, steps: [{ weight: 101 }] }, 400, 'INVALID_ROLLOUT'],
  ['bake negative', { version: 2, steps: [{ weight: 5, bakeSeconds: -5 }] }, 400, 'INVALID_ROLLOUT'],
  ['alarms a string', { version: 2, steps, alarms: 'errors' }, 400, 'INVALID_ROLLOUT'],
  ['alarm name with a lone surrogate', { version: 2, steps, alarms: ['e\ud800'] }, 400, 'INVALID_ROLLOUT'],
  ['maxDivergence empty', { version: 2, steps, maxDivergence: {} }, 400, 'INVALID_ROLLOUT'],
  [
    'divergence bounds with a first step of 100 % (nothing could be compared)',
    { version: 2, steps: [{ weight: 100 }], maxDivergence: { minArgmaxAgreement: 0.9 } },
    400,
    'INVALID_ROLLOUT',
  ],
  ['unknown field', { version: 2, steps, speed: 'fast' }, 400, 'INVALID_ROLLOUT'],
  ['expectedRevision a string', { version: 2, steps, expectedRevision: '3' }, 400, 'INVALID_ROLLOUT'],
  ['version unknown', { version: 99, steps }, 404, 'VERSION_NOT_FOUND'],
  ['version is the stable one', { version: 1, steps }, 409, 'CANARY_IS_STABLE'],
] as [string, unknown, number, string | undefined][]) {
  add(START_ROLLOUT, what, 'PUT', '/models/m/aliases/prod/rollout', body(b), status, code);
}
add(
  START_ROLLOUT,
  'unknown alias',
  'PUT',
  '/models/m/aliases/never/rollout',
  body({ version: 2, steps }),
  404,
  'ALIAS_NOT_FOUND',
);
add(
  START_ROLLOUT,
  'unknown model',
  'PUT',
  '/models/nomodel/aliases/prod/rollout',
  body({ version: 2, steps }),
  404,
  'MODEL_NOT_FOUND',
);
add(
  START_ROLLOUT,
  'bad alias',
  'PUT',
  '/models/m/aliases/123/rollout',
  body({ version: 2, steps }),
  400,
  'INVALID_ALIAS',
);
add(
  GET_ROLLOUT,
  'no rollout yet',
  'GET',
  '/models/m/aliases/prod/rollout',
  undefined,
  404,
  'ROLLOUT_NOT_FOUND',
);
add(GET_ROLLOUT, 'bad name', 'GET', '/models/M!/aliases/prod/rollout', undefined, 400, 'INVALID_NAME');
add(GET_ROLLOUT, 'bad alias', 'GET', '/models/m/aliases/prod%2Fx/rollout', undefined, 400, 'INVALID_ALIAS');
add(
  ROLLOUT_ACTION,
  'unknown action',
  'POST',
  '/models/m/aliases/prod/rollout/restart',
  undefined,
  400,
  'INVALID_ACTION',
);
add(
  ROLLOUT_ACTION,
  'pause without a rollout',
  'POST',
  '/models/m/aliases/prod/rollout/pause',
  undefined,
  404,
  'ROLLOUT_NOT_FOUND',
);
add(
  ROLLOUT_ACTION,
  'abort without a rollout',
  'POST',
  '/models/m/aliases/prod/rollout/abort',
  undefined,
  404,
  'ROLLOUT_NOT_FOUND',
);

// ---------------------------------------------------------------------------------------------------------

const FN_OF = new Map(ROUTES.map((r) => [routeKey(r), r.fn]));

describe('malformed requests over every route', () => {
  it('has at least 200 cases and covers every route of the route table', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(200);
    const covered = new Set(CASES.map((c) => c.route));
    for (const r of ROUTES) expect(covered.has(routeKey(r)), routeKey(r)).toBe(true);
    for (const route of covered) expect(FN_OF.has(route), route).toBe(true);
    const perRoute: Record<string, number> = {};
    for (const c of CASES) perRoute[c.route] = (perRoute[c.route] ?? 0) + 1;
    console.info(
      `malformed cases per route (${CASES.length} in all):\n${Object.entries(perRoute)
        .map(([r, n]) => `  ${String(n).padStart(3)}  ${r}`)
        .join('\n')}`,
    );
  });

  it.each(CASES.map((c) => [`${c.route} — ${c.what}`, c] as const))('%s', async (_label, c) => {
    const path = typeof c.path === 'function' ? c.path() : c.path;
    const opts = typeof c.opts === 'function' ? c.opts() : (c.opts ?? {});
    const event = apiEvent(c.method, path, opts);
    // A request the route table cannot route reaches the function of the route it aimed at.
    const found = matchRoute(c.method, path.split('?')[0] ?? path);
    const fn = (found && 'route' in found ? found.route.fn : undefined) ?? FN_OF.get(c.route)!;
    const raw = await handlers[fn](event);
    const r = parseResult<Record<string, unknown>>(raw);
    expect(r.status, raw.body).toBeGreaterThanOrEqual(400);
    expect(r.status, raw.body).toBeLessThan(500);
    if (c.status !== undefined) expect(r.status, raw.body).toBe(c.status);
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    expect(Object.keys(r.body).sort()).toEqual(['code', 'error']);
    expect(typeof r.body.error).toBe('string');
    expect(r.body.code).toMatch(/^[A-Z][A-Z0-9_]*$/);
    if (c.code !== undefined) expect(r.body.code, raw.body).toBe(c.code);
    expect(raw.body).not.toMatch(/\n\s+at |at .*\.(ts|js):\d+/);
  });
});
