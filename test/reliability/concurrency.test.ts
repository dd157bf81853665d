/**
 * Concurrency as a caller sees it: simultaneous requests through the real HTTP handlers (API Gateway v2 events),
 * composed as the local server composes them (registry with its idempotency guard and in-process work queue,
 * predict over the same readers the predict Lambda uses), over the suite's DynamoDB Local + s3rver and real
 * onnxruntime-node. Every assertion is about answers and the registry's final state, never about time:
 *
 * 1. N simultaneous registrations of distinct uploads of one model: versions 1..N exactly, each answer is its
 *    own upload's version, the first READY version is `prod`.
 * 2. 10 simultaneous identical registrations with one idempotency key (an `Idempotency-Key` header; an `uploadId`):
 *    one version, every answer names it (docs/api.md, "Idempotency").
 * 3. 50 simultaneous alias moves with one `expectedVersion`: one 200, 49 × 412; then simultaneous moves and
 *    rollbacks: none lost, the alias on a READY version, its history one unbroken chain.
 * 4. Inference on `prod` while it moves from version 1 to 2: every answer 200 from version 1 or 2, never an error.
 *
 * Missing emulators fail the file (createTestAwsEnv throws, the global setup cannot start them): nothing is skipped.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OrtEngine } from '../../functions/adapters/ort-engine';
import { SessionCache } from '../../functions/app/session-cache';
import { S3_KEYS } from '../../functions/contract/env';
import type { HttpEvent, HttpResult } from '../../functions/handlers/http';
import { createPredictHandler } from '../../functions/handlers/predict';
import { type LocalServices, localPredictReaders } from '../../functions/local/compose';
import { type ApiEventOptions, apiEvent, parseResult } from '../helpers/apigw';
import { createTestAwsEnv, type TestAwsEnv } from '../helpers/aws-env';
import { composeTestServices } from '../helpers/local-services';
import { addConstant } from '../helpers/predict-env';
import { silentLogger } from '../helpers/recording-logger';

// biome-ignore lint/suspicious/noExplicitAny: response bodies are inspected loosely in assertions
type Json = Record<string, any>;
type Answer = { status: number; headers: Record<string, string>; body: Json };

let env: TestAwsEnv;
let services: LocalServices;
let registry: (e: HttpEvent) => Promise<HttpResult>;
/** The composed predict handler: shared caches, the default alias TTL (a warm Lambda). */
let predictWarm: (e: HttpEvent) => Promise<HttpResult>;
/** A predict handler that reads the alias on every request (alias TTL 0: a cold Lambda per request). */
let predictCold: (e: HttpEvent) => Promise<HttpResult>;
let coldSessions: SessionCache;

beforeAll(async () => {
  env = await createTestAwsEnv('concurrency');
  services = composeTestServices(env, { logger: silentLogger });
  const { registry: reg, predict } = services.handlers;
  if (!reg || !predict) throw new Error('the local composition has no registry or predict handler');
  registry = reg as (e: HttpEvent) => Promise<HttpResult>;
  predictWarm = predict as (e: HttpEvent) => Promise<HttpResult>;
  const { reader, artifacts } = localPredictReaders({
    endpoints: { dynamodb: env.dynamoEndpoint, s3: env.s3Endpoint },
    table: env.table,
    bucket: env.bucket,
  });
  coldSessions = new SessionCache({ engine: new OrtEngine() });
  predictCold = createPredictHandler({
    repo: reader,
    store: artifacts,
    sessions: coldSessions,
    aliasTtlMs: 0,
    logger: silentLogger,
  });
});

afterAll(async () => {
  await services?.close();
  await coldSessions?.close();
  await env?.dispose();
});

const call = async (method: string, path: string, opts: ApiEventOptions = {}): Promise<Answer> =>
  parseResult<Json>(await registry(apiEvent(method, path, opts)));

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Uploads as a client does: an upload slot from the API, then a PUT of the bytes to its presigned URL. */
async function upload(name: string, bytes: Uint8Array): Promise<string> {
  const slot = await call('POST', `/models/${name}/uploads`, { body: { sizeBytes: bytes.byteLength } });
  expect(slot.status, JSON.stringify(slot.body)).toBe(201);
  const put = await fetch(slot.body.url, { method: 'PUT', body: Buffer.from(bytes) });
  expect(put.status).toBe(200);
  return slot.body.uploadId as string;
}

/** Registers one upload sequentially (setup); expects 201. */
async function registerNow(name: string, bytes: Uint8Array): Promise<number> {
  const r = await call('POST', `/models/${name}/versions`, { body: { uploadId: await upload(name, bytes) } });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body.version as number;
}

/** Every version of `name`, oldest first, once the work queue has completed whatever was answered 202. */
async function settledVersions(name: string): Promise<Json[]> {
  await services.idle();
  const r = await call('GET', `/models/${name}/versions`, { query: { limit: '100' } });
  expect(r.status).toBe(200);
  expect(r.body.nextToken).toBeUndefined();
  return [...(r.body.versions as Json[])].reverse();
}

/** The whole history of `alias`, newest first. */
async function history(name: string, alias: string): Promise<Json[]> {
  const r = await call('GET', `/models/${name}/aliases/${alias}/history`, { query: { limit: '100' } });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  expect(r.body.nextToken).toBeUndefined();
  return r.body.history as Json[];
}

/** An error answer is exactly `{error, code}`. */
const errorBody = (code: string) => ({ error: expect.any(String), code });

describe('concurrent registrations of one model', () => {
  it('20 distinct uploads at once: versions 1..20 exactly, each answer its own upload, the first READY is prod', async () => {
    const name = 'burst';
    const N = 20;
    const models = Array.from({ length: N }, (_, i) => addConstant(100 + i));
    const uploads = await Promise.all(models.map((bytes) => upload(name, bytes)));

    const answers = await Promise.all(
      uploads.map((uploadId, i) =>
        call('POST', `/models/${name}/versions`, { body: { uploadId, description: `upload-${i}` } }),
      ),
    );
    const dump = JSON.stringify(answers.map((a) => [a.status, a.body]));
    for (const [i, a] of answers.entries()) {
      expect([201, 202], dump).toContain(a.status);
      expect(a.headers['idempotent-replayed'], dump).toBeUndefined();
      expect(a.body).toMatchObject({
        name,
        description: `upload-${i}`,
        status: a.status === 201 ? 'READY' : 'PENDING',
      });
      if (a.status === 201) expect(a.body.sha256).toBe(sha256(models[i] as Uint8Array));
    }
    console.log(
      `20 registrations: ${answers.filter((a) => a.status === 201).length} × 201, ${answers.filter((a) => a.status === 202).length} × 202`,
    );
    const numbers = answers.map((a) => a.body.version as number);
    expect([...numbers].sort((x, y) => x - y)).toEqual(Array.from({ length: N }, (_, i) => i + 1));

    // The registry holds exactly those N versions, all READY, each the bytes of the upload whose answer named it.
    const versions = await settledVersions(name);
    expect(versions.map((v) => v.version)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    for (const [i, a] of answers.entries()) {
      const v = versions[(a.body.version as number) - 1] as Json;
      expect(v).toMatchObject({
        name,
        version: a.body.version,
        status: 'READY',
        description: `upload-${i}`,
        sha256: sha256(models[i] as Uint8Array),
      });
    }

    // prod was created once, by the first version to become READY: version 1 when every answer was 201.
    const model = await call('GET', `/models/${name}`);
    expect(model.status).toBe(200);
    expect(model.body.latestVersion).toBe(N);
    const prod = model.body.aliases.prod as number;
    // With answers of 202, which version was READY first is the background's: one of the N, set once (below).
    if (answers.every((a) => a.status === 201)) expect(prod).toBe(1);
    else expect(numbers).toContain(prod);
    expect(await history(name, 'prod')).toEqual([
      {
        alias: 'prod',
        version: prod,
        previousVersion: null,
        at: expect.any(String),
        actor: expect.any(String),
        reason: 'first READY version',
        revision: 1,
      },
    ]);
  });
});

describe('concurrent identical registrations (one idempotency key)', () => {
  /**
   * The contract of docs/api.md ("Idempotency"): one request registers (201, or 202 while PENDING, no
   * Idempotent-Replayed); every duplicate answers that version with `Idempotent-Replayed: true` (200, or 202 while
   * PENDING), or 409 REGISTRATION_IN_PROGRESS when the first outlasts the duplicate's own time.
   */
  async function expectRegisteredOnce(name: string, answers: Answer[]): Promise<void> {
    const dump = JSON.stringify(answers.map((a) => [a.status, a.headers['idempotent-replayed'], a.body]));
    const fresh = answers.filter((a) => a.headers['idempotent-replayed'] === undefined && a.status !== 409);
    expect(fresh, dump).toHaveLength(1);
    const first = fresh[0] as Answer;
    expect([201, 202], dump).toContain(first.status);
    expect(first.body).toMatchObject({ name, version: 1 });
    for (const a of answers) {
      if (a === first) continue;
      if (a.status === 409) {
        expect(a.body, dump).toEqual(errorBody('REGISTRATION_IN_PROGRESS'));
        continue;
      }
      expect([200, 202], dump).toContain(a.status);
      expect(a.headers['idempotent-replayed'], dump).toBe('true');
      expect(a.body, dump).toMatchObject({ name, version: 1 });
    }
    // Answers of the READY version are the same version record, byte for byte.
    const ready = answers.filter((a) => a.status === 200 || a.status === 201);
    for (const a of ready) expect(a.body, dump).toEqual(ready[0]?.body);

    const versions = await settledVersions(name);
    expect(versions.map((v) => [v.version, v.status])).toEqual([[1, 'READY']]);
  }

  it('10 at once with the same Idempotency-Key header (s3Uri registration): exactly one version', async () => {
    const name = 'idem-header';
    const uploadId = await upload(name, addConstant(7));
    const body = { s3Uri: `s3://${env.bucket}/${S3_KEYS.upload(name, uploadId)}`, description: 'keyed' };
    const headers = { 'Idempotency-Key': 'deploy-2026-12-01' };
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => call('POST', `/models/${name}/versions`, { body, headers })),
    );
    await expectRegisteredOnce(name, answers);
    const retry = await call('POST', `/models/${name}/versions`, { body, headers });
    expect(retry.status).toBe(200);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.body).toMatchObject({ name, version: 1, status: 'READY', description: 'keyed' });
  });

  it('10 at once with the same uploadId: exactly one version', async () => {
    const name = 'idem-upload';
    const uploadId = await upload(name, addConstant(8));
    const body = { uploadId, description: 'once' };
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => call('POST', `/models/${name}/versions`, { body })),
    );
    await expectRegisteredOnce(name, answers);
    const retry = await call('POST', `/models/${name}/versions`, { body });
    expect(retry.status).toBe(200);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.body).toMatchObject({ name, version: 1, status: 'READY', description: 'once' });
  });
});

describe('concurrent alias moves', () => {
  const name = 'moves';

  beforeAll(async () => {
    // Versions 1..4, READY; prod -> 1 (the first READY version), history of one entry.
    for (let c = 1; c <= 4; c++) expect(await registerNow(name, addConstant(c))).toBe(c);
  });

  it('50 at once with the same expectedVersion: exactly one 200, 49 × 412 PRECONDITION_FAILED, one history entry', async () => {
    expect(await history(name, 'prod')).toHaveLength(1);
    const target = (i: number) => 2 + (i % 3);
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        call('PUT', `/models/${name}/aliases/prod`, {
          body: { version: target(i), expectedVersion: 1, reason: `mover-${i}` },
        }),
      ),
    );
    const dump = JSON.stringify(answers.map((a) => [a.status, a.body]));
    const winners = [...answers.entries()].filter(([, a]) => a.status === 200);
    expect(winners, dump).toHaveLength(1);
    const [wi, win] = winners[0] as [number, Answer];
    expect(win.body).toEqual({ alias: 'prod', version: target(wi), previousVersion: 1, revision: 2 });
    for (const a of answers) {
      if (a === win) continue;
      expect(a.status, dump).toBe(412);
      expect(a.body, dump).toEqual(errorBody('PRECONDITION_FAILED'));
    }

    const h = await history(name, 'prod');
    expect(h).toHaveLength(2);
    expect(h[0]).toEqual({
      alias: 'prod',
      version: target(wi),
      previousVersion: 1,
      at: expect.any(String),
      actor: expect.any(String),
      reason: `mover-${wi}`,
      revision: 2,
    });
    expect(h[1]).toMatchObject({ version: 1, previousVersion: null, reason: 'first READY version' });
    expect((await call('GET', `/models/${name}`)).body.aliases).toEqual({ prod: target(wi) });
  });

  it('moves and rollbacks at once: none lost, prod on a READY version, the history one unbroken chain', async () => {
    const before = await history(name, 'prod');
    const moves = Array.from({ length: 10 }, (_, i) =>
      call('PUT', `/models/${name}/aliases/prod`, { body: { version: 1 + (i % 4), reason: `move-${i}` } }),
    );
    const rollbacks = Array.from({ length: 10 }, (_, i) =>
      call('POST', `/models/${name}/aliases/prod/rollback`, { body: { reason: `rollback-${i}` } }),
    );
    const moved = await Promise.all(moves);
    const rolled = await Promise.all(rollbacks);
    const dump = JSON.stringify([...moved, ...rolled].map((a) => [a.status, a.body]));

    // An unconditional move is serialized with the others, never lost; a rollback is conditional on the alias
    // still pointing where the latest history entry says: it applies, or answers 412.
    for (const a of moved) expect(a.status, dump).toBe(200);
    for (const a of rolled) {
      expect([200, 412], dump).toContain(a.status);
      if (a.status === 412) expect(a.body, dump).toEqual(errorBody('PRECONDITION_FAILED'));
    }
    const applied = [
      ...moved.map((a, i) => ({ a, reason: `move-${i}` })),
      ...rolled.map((a, i) => ({ a, reason: `rollback-${i}` })),
    ].filter(({ a }) => a.status === 200);
    expect(applied.length, dump).toBeGreaterThanOrEqual(10);
    console.log(`moves + rollbacks: ${applied.length - 10} of 10 rollbacks applied, the rest 412`);

    // Each applied change took the next revision: they were serialized, one after the other.
    const revisions = applied.map(({ a }) => a.body.revision as number).sort((x, y) => x - y);
    expect(revisions).toEqual(Array.from({ length: applied.length }, (_, i) => before.length + 1 + i));

    // The history gained exactly one entry per applied change, each as its answer said.
    const h = await history(name, 'prod');
    expect(h).toHaveLength(before.length + applied.length);
    expect(h.slice(applied.length)).toEqual(before);
    const added = h.slice(0, applied.length);
    expect(added.map((e) => e.reason).sort()).toEqual(applied.map(({ reason }) => reason).sort());
    for (const { a, reason } of applied) {
      const entry = added.find((e) => e.reason === reason);
      expect(entry, reason).toMatchObject({
        alias: 'prod',
        version: a.body.version,
        previousVersion: a.body.previousVersion,
      });
    }
    // Newest first: every entry starts where the one before it (older) ended.
    for (let i = 0; i < h.length - 1; i++) {
      expect(h[i]?.previousVersion, `history entry ${i}: ${JSON.stringify(h)}`).toBe(h[i + 1]?.version);
    }
    expect(h[h.length - 1]?.previousVersion).toBeNull();
    // Answers in revision order tell the same chain.
    const byRevision = applied.map(({ a }) => a.body).sort((x, y) => x.revision - y.revision);
    let at = before[0]?.version;
    for (const b of byRevision) {
      expect(b.previousVersion, JSON.stringify(byRevision)).toBe(at);
      at = b.version;
    }

    // The alias points where the newest entry says, at a READY version.
    const model = await call('GET', `/models/${name}`);
    expect(model.body.aliases).toEqual({ prod: h[0]?.version });
    const target = await call('GET', `/models/${name}/versions/${h[0]?.version}`);
    expect(target.status).toBe(200);
    expect(target.body.status).toBe('READY');
  });
});

describe('inference during an alias move', () => {
  const name = 'served';
  /** `y = x + c` with c = the version number (versions built with addConstant(1) and addConstant(2)). */
  const input = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2] }] };

  beforeAll(async () => {
    expect(await registerNow(name, addConstant(1))).toBe(1);
    expect(await registerNow(name, addConstant(2))).toBe(2);
  });

  /**
   * One request, arriving in a turn of the event loop of its own as a request from the network does (a warm
   * handler can answer without any I/O: called back to back from one loop, it would never let the loop turn).
   */
  const infer = async (handler: (e: HttpEvent) => Promise<HttpResult>, i: number): Promise<Answer> =>
    parseResult<Json>(
      await new Promise<HttpResult>((resolve, reject) => {
        setImmediate(() =>
          handler(
            apiEvent('POST', i % 2 ? `/v2/models/${name}/versions/prod/infer` : `/v2/models/${name}/infer`, {
              body: input,
            }),
          ).then(resolve, reject),
        );
      }),
    );
  /** An answer of version `v`: 200, named `v`, computed by version `v`'s model. */
  const expectServedBy = (a: Answer, versions: readonly string[], dump: () => string) => {
    expect(a.status, dump()).toBe(200);
    expect(a.body.model_name).toBe(name);
    expect(versions, dump()).toContain(a.body.model_version);
    const c = Number(a.body.model_version);
    expect(a.body.outputs, dump()).toEqual([
      expect.objectContaining({ name: 'y', datatype: 'FP32', shape: [1, 2], data: [1 + c, 2 + c] }),
    ]);
  };

  it('requests on prod while it moves from 1 to 2 all answer 200 from version 1 or 2', async () => {
    // Before: both handlers serve version 1 (the warm one caches the alias).
    for (const h of [predictWarm, predictCold])
      expectServedBy(await infer(h, 0), ['1'], () => 'before the move');

    // Clients that call prod one request after the other, without pause, from before the move is sent until
    // after it has answered: some of their requests are in flight while the alias moves.
    const CLIENTS = 6;
    const AFTER = 3;
    let moveAnswered = false;
    let started = 0;
    let release: () => void = () => {};
    const allStarted = new Promise<void>((r) => {
      release = r;
    });
    type Served = { a: Answer; cold: boolean; afterMove: boolean };
    const client = async (c: number): Promise<Served[]> => {
      const cold = c % 2 === 0;
      const out: Served[] = [];
      let after = 0;
      for (let i = 0; after < AFTER; i++) {
        const afterMove = moveAnswered;
        out.push({ a: await infer(cold ? predictCold : predictWarm, i), cold, afterMove });
        if (i === 0 && ++started === CLIENTS) release();
        if (afterMove) after++;
      }
      return out;
    };
    const clients = Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
    await allStarted;
    const moved = await call('PUT', `/models/${name}/aliases/prod`, {
      body: { version: 2, expectedVersion: 1 },
    });
    moveAnswered = true;
    const served = (await clients).flat();

    expect(moved.status, JSON.stringify(moved.body)).toBe(200);
    expect(moved.body).toEqual({ alias: 'prod', version: 2, previousVersion: 1, revision: 2 });
    const dump = () =>
      JSON.stringify(
        served.map((s) => [
          s.cold ? 'cold' : 'warm',
          s.afterMove,
          s.a.status,
          s.a.body.model_version ?? s.a.body,
        ]),
      );
    // Never an error: every answer is version 1's or version 2's, its output computed by that version.
    for (const s of served) expectServedBy(s.a, ['1', '2'], dump);
    // A request sent after the move answered, through a handler that reads the alias per request, is version 2's;
    // the warm handler may serve its cached version 1 for the alias TTL.
    const coldAfter = served.filter((s) => s.cold && s.afterMove);
    expect(coldAfter.length).toBe((CLIENTS / 2) * AFTER);
    for (const s of coldAfter) expect(s.a.body.model_version, dump()).toBe('2');
    const count = (v: string) => served.filter((s) => s.a.body.model_version === v).length;
    console.log(
      `inference on prod around the move: ${served.length} requests, ${count('1')} × version 1, ${count('2')} × version 2`,
    );
  });
});
