/** The registry planners (pure): what each decision plans from a given state, or which error it throws. */
import { describe, expect, it } from 'vitest';
import { LIMITS } from '../../functions/contract/limits';
import { storedSizeBytes } from '../../functions/contract/table';
import { ConflictError, NotFoundError, PreconditionFailedError } from '../../functions/domain/errors';
import {
  aliasCaptureRefusal,
  allowsVersionDeletion,
  allowsVersionUpdate,
  findLatestMove,
  latestMove,
  patchedVersion,
  planAliasMove,
  planAliasRouting,
  planRollback,
  planVersionCompletion,
  planVersionCreation,
  planVersionUpdate,
  ROLLBACK_HISTORY_PAGES,
  recanariedAliases,
  retargetedAliases,
  rollbackTargetDeleted,
  routingReason,
  sameSplit,
  servingSnapshot,
  signatureMismatch,
  versionDeletionRefusal,
  versionUpdateRefusal,
} from '../../functions/domain/registry-plans';
import type { AliasRouting, AliasState, ModelVersion, NewVersion } from '../../functions/domain/types';

const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-01-01T00:00:01.000Z';

const request = (extra: Partial<NewVersion> = {}): NewVersion => ({
  name: 'm',
  sha256: 'ab'.repeat(32),
  sizeBytes: 10,
  s3Key: 'models/m/x.onnx',
  signature: { inputs: [], outputs: [] },
  status: 'READY',
  ...extra,
});

const version = (v: number, extra: Partial<ModelVersion> = {}): ModelVersion => ({
  name: 'm',
  version: v,
  status: 'READY',
  sha256: 'ab'.repeat(32),
  sizeBytes: 10,
  s3Key: 'models/m/x.onnx',
  signature: { inputs: [], outputs: [] },
  createdAt: T0,
  ...extra,
});

const alias = (v: number, revision: number, updatedAt = T0): AliasState => ({
  alias: 'prod',
  version: v,
  revision,
  updatedAt,
});

describe('planVersionCreation', () => {
  it('creates the model with version 1; the first READY version becomes prod', () => {
    const plan = planVersionCreation(
      request({ createdBy: 'alice', description: undefined }),
      { counter: undefined, defaultAliasTaken: false },
      T0,
    );
    expect(plan).toMatchObject({ name: 'm', at: T0, expectedLatestVersion: undefined, firstReady: true });
    expect(plan.version).toEqual(version(1, { createdBy: 'alice' }));
    expect(plan.alias).toEqual({
      state: { alias: 'prod', version: 1, revision: 1, updatedAt: T0, target: version(1) },
      history: {
        alias: 'prod',
        version: 1,
        previousVersion: null,
        at: T0,
        actor: 'alice',
        reason: 'first READY version',
        revision: 1,
      },
    });
  });

  it('moves the counter on from what was read; later READY versions and FAILED ones get no alias', () => {
    const later = planVersionCreation(
      request(),
      { counter: { latestVersion: 4, firstReadyVersion: 2 }, defaultAliasTaken: false },
      T1,
    );
    expect(later).toMatchObject({ expectedLatestVersion: 4, firstReady: false, version: { version: 5 } });
    expect(later.alias).toBeUndefined();
    const failed = planVersionCreation(
      request({ status: 'FAILED', failureReason: 'bad' }),
      { counter: { latestVersion: 1 }, defaultAliasTaken: false },
      T1,
    );
    expect(failed).toMatchObject({
      expectedLatestVersion: 1,
      firstReady: false,
      version: { version: 2, status: 'FAILED', failureReason: 'bad' },
    });
    expect(failed.alias).toBeUndefined();
    // The first READY version after FAILED ones, with prod already taken by other means: recorded, not aliased.
    const taken = planVersionCreation(
      request(),
      { counter: { latestVersion: 2 }, defaultAliasTaken: true },
      T1,
    );
    expect(taken).toMatchObject({ firstReady: true, version: { version: 3 } });
    expect(taken.alias).toBeUndefined();
    expect(
      planVersionCreation(request(), { counter: { latestVersion: 2 }, defaultAliasTaken: false }, T1).alias
        ?.history.actor,
    ).toBe('system');
  });
});

describe('planAliasMove', () => {
  const state = { modelExists: true, alias: alias(1, 3, T0), target: version(2) };

  it('refuses to keep a canary or a shadow that cannot answer like the new stable version', () => {
    const sig = (n: number) => ({
      inputs: [{ name: 'x', datatype: 'FP32' as const, shape: [-1, n] }],
      outputs: [{ name: 'y', datatype: 'FP32' as const, shape: [-1, 2] }],
    });
    const four = (v: number) => version(v, { signature: sig(4) });
    const split = (routing: AliasState['routing'], canary?: ModelVersion): AliasState => ({
      ...alias(1, 3, T0),
      routing,
      ...(canary ? { canaryTarget: canary } : {}),
    });
    const move = { name: 'm', alias: 'prod', version: 5, actor: 'bob' };
    const wide = version(5, { signature: sig(5) });
    const withCanary = split({ canary: { version: 2, weight: 10 } }, four(2));
    expect(() => planAliasMove(move, { modelExists: true, alias: withCanary, target: wide }, T1)).toThrow(
      expect.objectContaining({ code: 'CANARY_INCOMPATIBLE' }),
    );
    const withShadow = split({ shadow: { version: 3, percent: 10 } });
    expect(() =>
      planAliasMove(move, { modelExists: true, alias: withShadow, target: wide, shadow: four(3) }, T1),
    ).toThrow(expect.objectContaining({ code: 'SHADOW_INCOMPATIBLE' }));
    // Alike, the split stays; promoting the canary or moving to the shadow ends that part of it.
    expect(
      planAliasMove({ ...move, version: 4 }, { modelExists: true, alias: withCanary, target: four(4) }, T1)
        .next?.routing,
    ).toEqual({ canary: { version: 2, weight: 10 } });
    expect(
      planAliasMove({ ...move, version: 2 }, { modelExists: true, alias: withCanary, target: four(2) }, T1)
        .next?.routing,
    ).toBeUndefined();
  });

  it('chains the history: previous version, revision + 1, the alias sets that change', () => {
    const plan = planAliasMove(
      { name: 'm', alias: 'prod', version: 2, actor: 'bob', reason: 'why' },
      state,
      T1,
    );
    expect(plan).toEqual({
      name: 'm',
      alias: 'prod',
      at: T1,
      expectedRevision: 3,
      next: { alias: 'prod', version: 2, revision: 4, updatedAt: T1, target: version(2) },
      history: {
        alias: 'prod',
        version: 2,
        previousVersion: 1,
        at: T1,
        actor: 'bob',
        reason: 'why',
        revision: 4,
      },
      gains: 2,
      releases: 1,
      result: { alias: 'prod', version: 2, previousVersion: 1, revision: 4 },
    });
  });

  it('never stamps a move earlier than the previous one', () => {
    const lagging = planAliasMove(
      { name: 'm', alias: 'prod', version: 2, actor: 'late' },
      { ...state, alias: alias(1, 3, T1) },
      T0,
    );
    expect(lagging.at).toBe(T1);
    expect(lagging.history.at).toBe(T1);
  });

  it('creates (expected revision 0), re-points at the same version, and removes', () => {
    const created = planAliasMove(
      { name: 'm', alias: 'canary', version: 2, expectedVersion: 0, actor: 'a' },
      { ...state, alias: undefined },
      T1,
    );
    expect(created).toMatchObject({
      expectedRevision: 0,
      gains: 2,
      releases: undefined,
      result: { previousVersion: null, revision: 1 },
    });
    const same = planAliasMove(
      { name: 'm', alias: 'prod', version: 1, actor: 'a' },
      { ...state, target: version(1) },
      T1,
    );
    expect(same).toMatchObject({ gains: undefined, releases: undefined, next: { version: 1, revision: 4 } });
    const removed = planAliasMove(
      { name: 'm', alias: 'prod', version: null, actor: 'a' },
      { ...state, target: undefined },
      T1,
    );
    expect(removed).toMatchObject({
      next: undefined,
      gains: undefined,
      releases: 1,
      history: { version: null, previousVersion: 1 },
    });
  });

  it('a re-created alias continues the revision of its removed past and follows its last entry', () => {
    // Removed at revision 5 (its last entry), then created again.
    const removedPast = { ...state, alias: undefined, lastHistory: { at: T1, revision: 5 } };
    const again = planAliasMove({ name: 'm', alias: 'prod', version: 2, actor: 'a' }, removedPast, T0);
    expect(again).toMatchObject({
      expectedRevision: 0,
      at: '2026-01-01T00:00:01.001Z',
      next: { revision: 6 },
      history: { revision: 6, previousVersion: null },
      result: { revision: 6 },
    });
    // A revision read of the removed alias does not hold against it; "must not exist" (0) does.
    const move = (expectedRevision: number) => () =>
      planAliasMove({ name: 'm', alias: 'prod', version: 2, expectedRevision, actor: 'a' }, removedPast, T0);
    expect(move(4)).toThrow(PreconditionFailedError);
    expect(move(0)).not.toThrow();
  });

  it('refuses in order: model 404, expectedVersion 412, expectedRevision 412, alias 404, version 404, not READY 409', () => {
    const err = (move: Partial<Parameters<typeof planAliasMove>[0]>, s: Partial<typeof state> = {}) => {
      try {
        planAliasMove({ name: 'm', alias: 'prod', version: 2, actor: 'a', ...move }, { ...state, ...s }, T1);
        return undefined;
      } catch (e) {
        return [(e as Error).constructor, (e as { code?: string }).code];
      }
    };
    expect(err({ expectedVersion: 9 }, { modelExists: false })).toEqual([NotFoundError, 'MODEL_NOT_FOUND']);
    expect(err({ expectedVersion: 9 })).toEqual([PreconditionFailedError, 'PRECONDITION_FAILED']);
    expect(err({ expectedVersion: 1 }, { alias: undefined })).toEqual([
      PreconditionFailedError,
      'PRECONDITION_FAILED',
    ]);
    expect(err({ expectedRevision: 2 })).toEqual([PreconditionFailedError, 'PRECONDITION_FAILED']);
    expect(err({ version: null }, { alias: undefined })).toEqual([NotFoundError, 'ALIAS_NOT_FOUND']);
    expect(err({}, { target: undefined })).toEqual([NotFoundError, 'VERSION_NOT_FOUND']);
    expect(err({ version: 3 })).toEqual([NotFoundError, 'VERSION_NOT_FOUND']);
    expect(err({}, { target: version(2, { status: 'ARCHIVED' }) })).toEqual([
      ConflictError,
      'VERSION_NOT_READY',
    ]);
    expect(err({ expectedVersion: 1, expectedRevision: 3 })).toBeUndefined();
  });
});

describe('sameSplit', () => {
  it('compares canary, weight, shadow, percent and key parameter; an empty split is no split', () => {
    const r = { canary: { version: 3, weight: 10 }, shadow: { version: 2, percent: 5 }, keyParameter: 'k' };
    expect(sameSplit(r, { ...r })).toBe(true);
    expect(sameSplit(undefined, null)).toBe(true);
    expect(sameSplit({}, null)).toBe(true);
    expect(sameSplit(r, { ...r, keyParameter: undefined })).toBe(false);
    expect(sameSplit(r, { ...r, canary: { version: 3, weight: 0 } })).toBe(false);
    expect(sameSplit(r, { ...r, canary: { version: 4, weight: 10 } })).toBe(false);
    expect(sameSplit(r, { ...r, shadow: { version: 2, percent: 6 } })).toBe(false);
    expect(sameSplit(r, { canary: r.canary, keyParameter: 'k' })).toBe(false);
    expect(sameSplit({ keyParameter: 'k' }, null)).toBe(false);
  });
});

describe('planRollback', () => {
  const entry = (v: number | null, previousVersion: number | null) => ({
    alias: 'prod',
    version: v,
    previousVersion,
    at: T0,
    actor: 'a',
  });

  it('moves back to the previous version, conditionally on the current one', () => {
    expect(planRollback({ name: 'm', alias: 'prod', actor: 'ops' }, entry(3, 2))).toEqual({
      name: 'm',
      alias: 'prod',
      version: 2,
      expectedVersion: 3,
      reason: 'rollback from 3 to 2',
      actor: 'ops',
    });
    // A removed alias comes back (it must not exist meanwhile).
    expect(
      planRollback({ name: 'm', alias: 'prod', actor: 'ops', reason: 'undo' }, entry(null, 4)),
    ).toMatchObject({
      version: 4,
      expectedVersion: 0,
      reason: 'undo',
    });
  });

  it('404 without history, 409 when the latest move created the alias', () => {
    expect(() => planRollback({ name: 'm', alias: 'prod', actor: 'ops' }, undefined)).toThrow(NotFoundError);
    expect(() => planRollback({ name: 'm', alias: 'prod', actor: 'ops' }, entry(1, null))).toThrow(
      expect.objectContaining({ code: 'NO_ROLLBACK_TARGET' }),
    );
  });

  it('a target deleted since: 409 NO_ROLLBACK_TARGET naming it', () => {
    const e = rollbackTargetDeleted('m', 'tmp', 8);
    expect(e).toBeInstanceOf(ConflictError);
    expect(e).toMatchObject({ status: 409, code: 'NO_ROLLBACK_TARGET' });
    expect(e.message).toContain("alias 'tmp' of model 'm'");
    expect(e.message).toContain('version 8');
    expect(e.message).toContain('deleted');
  });
});

describe('archive and delete rules', () => {
  it('archiving needs a READY (or ARCHIVED) version no alias points at; other changes only need the version', () => {
    const archive = planVersionUpdate({ status: 'ARCHIVED', description: 'old', tags: undefined });
    expect(archive).toEqual({ set: { status: 'ARCHIVED', description: 'old' }, archive: true });
    expect(allowsVersionUpdate(archive, { status: 'READY', aliases: [] })).toBe(true);
    expect(allowsVersionUpdate(archive, { status: 'ARCHIVED', aliases: [] })).toBe(true);
    expect(allowsVersionUpdate(archive, { status: 'FAILED', aliases: [] })).toBe(false);
    expect(allowsVersionUpdate(archive, { status: 'READY', aliases: ['prod'] })).toBe(false);
    expect(allowsVersionUpdate(archive, undefined)).toBe(false);
    const editOnly = planVersionUpdate({ description: 'x' });
    expect(editOnly).toEqual({ set: { description: 'x' }, archive: false });
    expect(allowsVersionUpdate(editOnly, { status: 'FAILED', aliases: ['prod'] })).toBe(true);
    expect(planVersionUpdate({})).toEqual({ set: {}, archive: false });

    expect(versionUpdateRefusal('m', 2, undefined)).toMatchObject({ status: 404, code: 'VERSION_NOT_FOUND' });
    expect(versionUpdateRefusal('m', 2, { status: 'READY', aliases: ['a', 'b'] })).toMatchObject({
      status: 409,
      code: 'VERSION_ALIASED',
      message: "version 2 of model 'm' is aliased (a, b); move the alias first",
    });
    expect(versionUpdateRefusal('m', 2, { status: 'FAILED', aliases: [] })).toMatchObject({
      status: 409,
      code: 'INVALID_STATUS_CHANGE',
    });
  });

  it('deleting needs a version no alias points at', () => {
    expect(allowsVersionDeletion({ status: 'FAILED', aliases: [] })).toBe(true);
    expect(allowsVersionDeletion({ status: 'READY', aliases: ['prod'] })).toBe(false);
    expect(allowsVersionDeletion(undefined)).toBe(false);
    expect(versionDeletionRefusal('m', 1, undefined)).toMatchObject({
      status: 404,
      code: 'VERSION_NOT_FOUND',
    });
    expect(versionDeletionRefusal('m', 1, { status: 'READY', aliases: ['prod'] })).toMatchObject({
      status: 409,
      code: 'VERSION_ALIASED',
      message: "version 1 of model 'm' is aliased (prod); move or delete the alias first",
    });
  });

  it('an alias carries the serving fields of its version only', () => {
    const full = version(1, {
      description: 'd',
      tags: { a: 'b' },
      labels: ['x'],
      createdBy: 'c',
      failureReason: 'f',
    });
    expect(servingSnapshot(full)).toEqual(version(1, { labels: ['x'] }));
  });
});

describe('capture declarations', () => {
  const TEN = { samplePercent: 10, input: true, output: true };
  const ONE = { samplePercent: 1, input: false, output: true };

  it("an alias's target carries its version's capture; a move keeps the alias's own and takes the new version's", () => {
    expect(servingSnapshot(version(2, { capture: TEN, description: 'd' }))).toEqual(
      version(2, { capture: TEN }),
    );
    const plan = planAliasMove(
      { name: 'm', alias: 'prod', version: 2, actor: 'a' },
      { modelExists: true, alias: { ...alias(1, 1), capture: ONE }, target: version(2, { capture: TEN }) },
      T1,
    );
    expect(plan.next).toEqual({
      alias: 'prod',
      version: 2,
      revision: 2,
      updatedAt: T1,
      target: version(2, { capture: TEN }),
      capture: ONE,
    });
    const bare = planAliasMove(
      { name: 'm', alias: 'canary', version: 2, actor: 'a' },
      { modelExists: true, alias: undefined, target: version(2) },
      T1,
    );
    expect(bare.next).not.toHaveProperty('capture');
    expect(bare.next?.target).not.toHaveProperty('capture');
  });

  it('a version patch sets, keeps or (null) removes the capture', () => {
    const stored = version(1, { capture: TEN, description: 'old' });
    expect(planVersionUpdate({ capture: null }).set).toEqual({ capture: null });
    expect(patchedVersion(stored, planVersionUpdate({ capture: ONE }))).toEqual({ ...stored, capture: ONE });
    expect(patchedVersion(stored, planVersionUpdate({ description: 'new' }))).toEqual({
      ...stored,
      description: 'new',
    });
    const removed = patchedVersion(stored, planVersionUpdate({ capture: null }));
    expect(removed).toEqual(version(1, { description: 'old' }));
    expect(removed).not.toHaveProperty('capture');
  });

  it('a capture change rewrites the targets of the aliases pointing at the version only; refusals are 404s', () => {
    const at1 = { ...alias(1, 3), target: version(1) };
    const at2 = { ...alias(2, 1), alias: 'canary', target: version(2) };
    const legacy = { ...alias(1, 1), alias: 'old' };
    expect(retargetedAliases(1, [at1, at2, legacy])).toEqual([at1]);
    expect(aliasCaptureRefusal('m', 'prod', true)).toMatchObject({ status: 404, code: 'ALIAS_NOT_FOUND' });
    expect(aliasCaptureRefusal('m', 'prod', false)).toMatchObject({ status: 404, code: 'MODEL_NOT_FOUND' });
  });
});

describe('planVersionCompletion', () => {
  const ready = {
    status: 'READY' as const,
    sha256: 'cd'.repeat(32),
    sizeBytes: 20,
    s3Key: 'models/m/cd.onnx',
    signature: { inputs: [], outputs: [] },
  };
  const pending = version(3, { status: 'PENDING', sha256: '', s3Key: 'uploads/m/u.onnx', createdBy: 'bob' });

  it('a PENDING version becomes READY and, as the first READY one, takes prod; later ones do not', () => {
    const first = planVersionCompletion(
      'm',
      3,
      ready,
      { stored: pending, counter: { latestVersion: 3 }, defaultAliasTaken: false },
      T1,
    );
    expect(first.version).toMatchObject({
      version: 3,
      status: 'READY',
      s3Key: 'models/m/cd.onnx',
      createdBy: 'bob',
      createdAt: T0,
    });
    expect(first.firstReady).toBe(true);
    expect(first.alias?.history).toMatchObject({
      alias: 'prod',
      version: 3,
      previousVersion: null,
      at: T1,
      actor: 'bob',
    });
    const later = planVersionCompletion(
      'm',
      3,
      ready,
      {
        stored: pending,
        counter: { latestVersion: 4, firstReadyVersion: 4 },
        defaultAliasTaken: false,
      },
      T1,
    );
    expect([later.firstReady, later.alias]).toEqual([false, undefined]);
  });

  it('FAILED keeps the version unaliased with its reason; 404 when gone, 409 when no longer PENDING', () => {
    const failed = planVersionCompletion(
      'm',
      3,
      { status: 'FAILED', failureReason: 'bad' },
      {
        stored: pending,
        counter: { latestVersion: 3 },
        defaultAliasTaken: false,
      },
      T1,
    );
    expect(failed).toMatchObject({ firstReady: false, version: { status: 'FAILED', failureReason: 'bad' } });
    expect(failed.alias).toBeUndefined();
    expect(() =>
      planVersionCompletion(
        'm',
        3,
        ready,
        { stored: undefined, counter: undefined, defaultAliasTaken: false },
        T1,
      ),
    ).toThrow(NotFoundError);
    expect(() =>
      planVersionCompletion(
        'm',
        3,
        ready,
        { stored: version(3), counter: undefined, defaultAliasTaken: false },
        T1,
      ),
    ).toThrow(ConflictError);
  });
});

describe('traffic splits', () => {
  const split = (v: number, weight: number, keyParameter?: string) => ({
    canary: { version: v, weight },
    ...(keyParameter !== undefined ? { keyParameter } : {}),
  });
  const change = (routing: Parameters<typeof planAliasRouting>[0]['routing'], extra = {}) => ({
    name: 'm',
    alias: 'prod',
    routing,
    actor: 'ann',
    ...extra,
  });

  it('plans a split: revision + 1, the canary copy, a history entry at the stable version, the canary held', () => {
    const capture = { samplePercent: 5, input: true, output: true };
    const current = { ...alias(1, 3), target: version(1), capture };
    const plan = planAliasRouting(
      change(split(3, 10, 'user')),
      { modelExists: true, alias: current, canary: version(3, { description: 'x' }) },
      T1,
    );
    expect(plan).toEqual({
      name: 'm',
      alias: 'prod',
      at: T1,
      expectedRevision: 3,
      unchanged: false,
      next: {
        ...current,
        revision: 4,
        updatedAt: T1,
        routing: split(3, 10, 'user'),
        canaryTarget: version(3),
      },
      history: {
        alias: 'prod',
        version: 1,
        previousVersion: 1,
        at: T1,
        actor: 'ann',
        reason: "canary v3 at 10% (key parameter 'user')",
        routing: split(3, 10, 'user'),
        revision: 4,
      },
      gains: 3,
      releases: undefined,
    });
    // Another weight keeps the canary held; another canary releases the first; null clears it all.
    const split3 = { ...current, routing: split(3, 10), canaryTarget: version(3) };
    const state = (canary?: ModelVersion) => ({ modelExists: true, alias: split3, canary });
    expect(planAliasRouting(change(split(3, 50)), state(version(3)), T1)).toMatchObject({
      gains: undefined,
      releases: undefined,
    });
    expect(planAliasRouting(change(split(2, 50)), state(version(2)), T1)).toMatchObject({
      gains: 2,
      releases: 3,
    });
    const cleared = planAliasRouting(change(null, { reason: 'done' }), state(), T1);
    expect(cleared).toMatchObject({ gains: undefined, releases: 3, history: { reason: 'done' } });
    expect(cleared.next.routing).toBeUndefined();
    expect(cleared.next.canaryTarget).toBeUndefined();
    expect(cleared.history.routing).toBeUndefined();
    // An empty split is no split.
    expect(planAliasRouting(change({}), state(), T1).next.routing).toBeUndefined();
  });

  it('the split the alias has already is unchanged: nothing to write, the alias answered as it is', () => {
    const bare = { ...alias(1, 3), target: version(1) };
    const none = { modelExists: true, alias: bare, canary: undefined };
    // Clearing a split the alias does not have, however it is asked.
    for (const routing of [null, {}, { canary: undefined, shadow: undefined }]) {
      const plan = planAliasRouting(change(routing, { reason: 'off' }), none, T1);
      expect(plan).toMatchObject({ unchanged: true, next: bare, expectedRevision: 3 });
      expect([plan.gains, plan.releases]).toEqual([undefined, undefined]);
    }
    // The same split, its fields in another order; with the revision the caller saw.
    const routing = {
      canary: { version: 3, weight: 10 },
      shadow: { version: 2, percent: 5 },
      keyParameter: 'k',
    };
    const split3 = { ...bare, routing, canaryTarget: version(3) };
    const same = planAliasRouting(
      change(
        { keyParameter: 'k', shadow: { percent: 5, version: 2 }, canary: { weight: 10, version: 3 } },
        { expectedRevision: 3 },
      ),
      { modelExists: true, alias: split3, canary: version(3), shadow: version(2) },
      T1,
    );
    expect(same).toMatchObject({ unchanged: true, next: split3 });
    // Anything else is a change: another weight, percent or key parameter, no shadow, no split.
    const st = { modelExists: true, alias: split3, canary: version(3), shadow: version(2) };
    for (const other of [
      { ...routing, canary: { version: 3, weight: 20 } },
      { ...routing, shadow: { version: 2, percent: 6 } },
      { canary: routing.canary, shadow: routing.shadow },
      { canary: routing.canary, keyParameter: 'k' },
      null,
    ]) {
      expect(planAliasRouting(change(other), st, T1), JSON.stringify(other)).toMatchObject({
        unchanged: false,
        next: { revision: 4 },
      });
    }
    // A canary without its copy (written by other means) is written again.
    const { canaryTarget: _c, ...uncopied } = split3;
    expect(planAliasRouting(change(routing), { ...st, alias: uncopied }, T1).unchanged).toBe(false);
    // A stale revision is a 412 all the same: the caller asked against a state it did not see.
    expect(() => planAliasRouting(change(null, { expectedRevision: 2 }), none, T1)).toThrow(
      PreconditionFailedError,
    );
  });

  it('refuses in order: model 404, alias 404, revision 412, the stable version 409, unknown 404, not READY 409', () => {
    const ok = { modelExists: true, alias: alias(1, 2), canary: version(3) };
    const refusal = (c: ReturnType<typeof change>, st: Parameters<typeof planAliasRouting>[1]) => {
      try {
        planAliasRouting(c, st, T1);
      } catch (e) {
        return [(e as { status: number }).status, (e as { code: string }).code];
      }
      return undefined;
    };
    expect(refusal(change(split(3, 1)), { ...ok, modelExists: false })).toEqual([404, 'MODEL_NOT_FOUND']);
    expect(refusal(change(split(3, 1)), { ...ok, alias: undefined })).toEqual([404, 'ALIAS_NOT_FOUND']);
    expect(refusal(change(split(3, 1), { expectedRevision: 1 }), ok)).toEqual([412, 'PRECONDITION_FAILED']);
    expect(refusal(change(split(1, 1)), { ...ok, canary: version(1) })).toEqual([409, 'CANARY_IS_STABLE']);
    expect(refusal(change(split(4, 1)), ok)).toEqual([404, 'VERSION_NOT_FOUND']);
    expect(refusal(change(split(3, 1)), { ...ok, canary: version(3, { status: 'FAILED' }) })).toEqual([
      409,
      'VERSION_NOT_READY',
    ]);
    expect(refusal(change(split(3, 1), { expectedRevision: 2 }), ok)).toBeUndefined();
  });

  it('a move keeps the split, a move to the canary promotes it (key parameter kept), a removal frees the canary', () => {
    const current: AliasState = {
      ...alias(1, 3),
      target: version(1),
      routing: split(3, 10, 'user'),
      canaryTarget: version(3),
    };
    const move = (v: number | null, target?: ModelVersion) =>
      planAliasMove(
        { name: 'm', alias: 'prod', version: v, actor: 'a' },
        { modelExists: true, alias: current, target },
        T1,
      );
    const other = move(2, version(2));
    expect(other.next).toMatchObject({ version: 2, routing: split(3, 10, 'user'), canaryTarget: version(3) });
    expect(other).toMatchObject({
      gains: 2,
      releases: 1,
      releasesCanary: undefined,
      routingChange: undefined,
    });
    expect(other.history.routing).toEqual(split(3, 10, 'user'));
    const promoted = move(3, version(3));
    expect(promoted.next).toMatchObject({ version: 3, routing: { keyParameter: 'user' } });
    expect(promoted.next?.canaryTarget).toBeUndefined();
    expect(promoted).toMatchObject({ gains: 3, releases: 1, routingChange: { keyParameter: 'user' } });
    const removed = move(null);
    expect(removed).toMatchObject({ next: undefined, releases: 1, releasesCanary: 3, routingChange: null });
    // Promotion of a split without key parameter removes it.
    const bare = planAliasMove(
      { name: 'm', alias: 'prod', version: 3, actor: 'a' },
      { modelExists: true, alias: { ...current, routing: split(3, 10) }, target: version(3) },
      T1,
    );
    expect(bare.routingChange).toBeNull();
    expect(bare.next?.routing).toBeUndefined();
  });

  it('refuses (409 ALIAS_TOO_LARGE) a split or a move whose two serving copies would not fit the alias', () => {
    // Labels of 275 001 bytes of JSON each (at most LIMITS.maxLabelsBytes), 225 003 as DynamoDB counts them: one
    // copy fits, two do not.
    const labels = Array.from({ length: 25_000 }, (_, i) => `lab${String(i).padStart(5, '0')}`);
    expect(Buffer.byteLength(JSON.stringify(labels))).toBeLessThanOrEqual(LIMITS.maxLabelsBytes);
    expect(storedSizeBytes(labels)).toBe(225_003);
    const big = (v: number) => version(v, { labels });
    const refusal = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return [(e as { status: number }).status, (e as { code: string }).code, (e as Error).message];
      }
      return undefined;
    };
    const stable = { ...alias(1, 2), target: big(1) };
    const canary = refusal(() =>
      planAliasRouting(change(split(2, 10)), { modelExists: true, alias: stable, canary: big(2) }, T1),
    );
    expect(canary?.slice(0, 2)).toEqual([409, 'ALIAS_TOO_LARGE']);
    expect(canary?.[2]).toMatch(/version 1 .*version 2 .*more than the 390000 an alias holds/);
    expect(canary?.[2]).toMatch(/shorter labels|without a canary/);
    // A small stable version leaves room for the big canary; a shadow is not copied.
    const small = { ...alias(1, 2), target: version(1) };
    expect(
      refusal(() =>
        planAliasRouting(change(split(2, 10)), { modelExists: true, alias: small, canary: big(2) }, T1),
      ),
    ).toBeUndefined();
    expect(
      refusal(() =>
        planAliasRouting(
          change({ shadow: { version: 2, percent: 10 } }),
          { modelExists: true, alias: stable, canary: undefined, shadow: big(2) },
          T1,
        ),
      ),
    ).toBeUndefined();
    // A move that keeps the big canary to another big version is refused; a promotion or a plain move is not.
    const split2: AliasState = { ...small, routing: split(2, 10), canaryTarget: big(2) };
    const move =
      (v: number, target: ModelVersion, current: AliasState = split2) =>
      () =>
        planAliasMove(
          { name: 'm', alias: 'prod', version: v, actor: 'a' },
          { modelExists: true, alias: current, target },
          T1,
        );
    const kept = refusal(move(3, big(3)));
    expect(kept?.slice(0, 2)).toEqual([409, 'ALIAS_TOO_LARGE']);
    expect(kept?.[2]).toMatch(/maas canary m --off --alias prod/);
    expect(refusal(move(2, big(2)))).toBeUndefined();
    expect(refusal(move(3, big(3), stable))).toBeUndefined();
  });

  it('counts the serving copies as DynamoDB does, not as JSON: many short labels that fit the item pass', () => {
    // 28 000 labels of 4 characters: 196 001 bytes of JSON each (two: 392 002, over the bound), 140 003 as DynamoDB
    // counts them (1 byte a list element, no quotes or commas): two copies fit the alias's item.
    const labels = Array.from({ length: 28_000 }, (_, i) => i.toString(36).padStart(4, '0'));
    expect(2 * Buffer.byteLength(JSON.stringify(labels))).toBeGreaterThan(LIMITS.maxAliasCopiesBytes);
    const stable = { ...alias(1, 2), target: version(1, { labels }) };
    expect(() =>
      planAliasRouting(
        change(split(2, 10)),
        { modelExists: true, alias: stable, canary: version(2, { labels }) },
        T1,
      ),
    ).not.toThrow();
  });

  it('capture changes reach the canary copies of the aliases whose canary the version is', () => {
    const a = { ...alias(1, 1), alias: 'a', routing: split(3, 5), canaryTarget: version(3) };
    const b = { ...alias(3, 1), alias: 'b', target: version(3) };
    const c = { ...alias(1, 1), alias: 'c', routing: { keyParameter: 'k' } };
    expect(recanariedAliases(3, [a, b, c]).map((x) => x.alias)).toEqual(['a']);
    expect(retargetedAliases(3, [a, b, c]).map((x) => x.alias)).toEqual(['b']);
  });

  it('validates a shadow: not the stable version, exists, READY, compatible; may be the canary; not copied or held', () => {
    const current = { ...alias(1, 3), target: version(1) };
    const sh = (v: number, percent: number) => ({ shadow: { version: v, percent } });
    const plan = planAliasRouting(
      change(sh(2, 20)),
      { modelExists: true, alias: current, canary: undefined, shadow: version(2) },
      T1,
    );
    expect(plan.next.routing).toEqual(sh(2, 20));
    expect(plan.next.canaryTarget).toBeUndefined();
    expect(plan.gains).toBeUndefined();
    expect(plan.history).toMatchObject({ reason: 'shadow v2 at 20%', routing: sh(2, 20) });
    // The canary's version read serves as the shadow's when they are the same.
    const same = planAliasRouting(
      change({ canary: { version: 3, weight: 5 }, shadow: { version: 3, percent: 50 } }),
      { modelExists: true, alias: current, canary: version(3) },
      T1,
    );
    expect(same.next).toMatchObject({ canaryTarget: version(3) });
    expect(same.history.reason).toBe('canary v3 at 5%, shadow v3 at 50%');
    const refused = (routing: object, shadow: ReturnType<typeof version> | undefined) => {
      try {
        planAliasRouting(
          change(routing),
          { modelExists: true, alias: current, canary: undefined, shadow },
          T1,
        );
      } catch (e) {
        return (e as { code?: string }).code;
      }
      return 'accepted';
    };
    expect(refused(sh(1, 5), version(1))).toBe('SHADOW_IS_STABLE');
    expect(refused(sh(4, 5), undefined)).toBe('VERSION_NOT_FOUND');
    expect(refused(sh(4, 5), version(3))).toBe('VERSION_NOT_FOUND');
    expect(refused(sh(4, 5), { ...version(4), status: 'ARCHIVED' })).toBe('VERSION_NOT_READY');
    // Against a stable version with an output 'y', a shadow without it cannot be compared.
    const y = { inputs: [], outputs: [{ name: 'y', datatype: 'FP32' as const, shape: [-1] }] };
    const withY = { ...current, target: version(1, { signature: y }) };
    expect(() =>
      planAliasRouting(
        change(sh(4, 5)),
        { modelExists: true, alias: withY, canary: undefined, shadow: version(4) },
        T1,
      ),
    ).toThrow(expect.objectContaining({ code: 'SHADOW_INCOMPATIBLE', status: 409 }));
    expect(
      planAliasRouting(
        change(sh(4, 5)),
        { modelExists: true, alias: withY, canary: undefined, shadow: version(4, { signature: y }) },
        T1,
      ).next.routing,
    ).toEqual(sh(4, 5));
  });

  it('moves and the shadow: a promotion keeps it, a move to it clears it, a removal removes it', () => {
    const routing = {
      canary: { version: 2, weight: 10 },
      shadow: { version: 3, percent: 5 },
      keyParameter: 'k',
    };
    const current = { ...alias(1, 3), target: version(1), routing, canaryTarget: version(2) };
    const st = (target: number) => ({ modelExists: true, alias: current, target: version(target) });
    const move = (v: number | null) => ({ name: 'm', alias: 'prod', version: v, actor: 'a' });
    const promoted = planAliasMove(move(2), st(2), T1);
    expect(promoted.next?.routing).toEqual({ shadow: { version: 3, percent: 5 }, keyParameter: 'k' });
    expect(promoted.next?.canaryTarget).toBeUndefined();
    expect(promoted.routingChange).toEqual({ shadow: { version: 3, percent: 5 }, keyParameter: 'k' });
    const unshadowed = planAliasMove(move(3), st(3), T1);
    expect(unshadowed.next?.routing).toEqual({ canary: { version: 2, weight: 10 }, keyParameter: 'k' });
    expect(unshadowed.next?.canaryTarget).toEqual(version(2));
    expect(unshadowed.history.routing).toEqual({ canary: { version: 2, weight: 10 }, keyParameter: 'k' });
    const other = planAliasMove(move(4), st(4), T1);
    expect(other.next?.routing).toEqual(routing);
    expect(other.routingChange).toBeUndefined();
    // Canary and shadow the same version, promoted, no key parameter: nothing left.
    const both = { canary: { version: 2, weight: 10 }, shadow: { version: 2, percent: 5 } };
    const all = planAliasMove(
      move(2),
      { modelExists: true, alias: { ...current, routing: both }, target: version(2) },
      T1,
    );
    expect(all.next?.routing).toBeUndefined();
    expect(all.routingChange).toBeNull();
  });

  it('reasons and the latest move past split changes', () => {
    expect(routingReason(undefined)).toBe('split cleared');
    expect(routingReason(split(3, 0.5))).toBe('canary v3 at 0.5%');
    expect(routingReason({ keyParameter: 'u' })).toBe("no canary (key parameter 'u')");
    expect(routingReason({ shadow: { version: 4, percent: 20 } })).toBe('shadow v4 at 20%');
    const h = (v: number | null, p: number | null) => ({
      alias: 'prod',
      version: v,
      previousVersion: p,
      at: T0,
      actor: 'a',
    });
    expect(latestMove([h(2, 2), h(2, 2), h(2, 1), h(1, null)])).toEqual(h(2, 1));
    expect(latestMove([h(null, 2)])).toEqual(h(null, 2));
    expect(latestMove([h(1, null)])).toEqual(h(1, null));
    expect(latestMove([h(1, 1)])).toBeUndefined();
  });

  it('findLatestMove reads further pages until a move, at most ROLLBACK_HISTORY_PAGES of them', async () => {
    const h = (v: number, p: number | null) => ({
      alias: 'prod',
      version: v,
      previousVersion: p,
      at: T0,
      actor: 'a',
    });
    // History pages of split changes (2 → 2), the move 1 → 2 on page `moveAt` (none when beyond the pages).
    const history = (pages: number, moveAt: number) => {
      const read: (string | undefined)[] = [];
      const page = (n: number) => ({
        items: n === moveAt ? [h(2, 2), h(2, 1), h(1, null)] : [h(2, 2), h(2, 2)],
        ...(n + 1 < pages ? { nextToken: String(n + 1) } : {}),
      });
      const next = async (token: string) => {
        read.push(token);
        return page(Number(token));
      };
      return { first: page(0), next, read };
    };
    const onThird = history(20, 2);
    await expect(findLatestMove(onThird.first, onThird.next)).resolves.toEqual({
      latest: h(2, 1),
      empty: false,
    });
    expect(onThird.read).toEqual(['1', '2']);
    const last = history(20, ROLLBACK_HISTORY_PAGES - 1);
    await expect(findLatestMove(last.first, last.next)).resolves.toEqual({ latest: h(2, 1), empty: false });
    const beyond = history(20, ROLLBACK_HISTORY_PAGES);
    await expect(findLatestMove(beyond.first, beyond.next)).resolves.toEqual({ empty: false });
    expect(beyond.read).toHaveLength(ROLLBACK_HISTORY_PAGES - 1);
    const onFirst = history(20, 0);
    await expect(findLatestMove(onFirst.first, onFirst.next)).resolves.toEqual({
      latest: h(2, 1),
      empty: false,
    });
    expect(onFirst.read).toEqual([]);
    await expect(findLatestMove({ items: [] }, onFirst.next)).resolves.toEqual({ empty: true });
  });
});

describe('signatureMismatch (a canary must answer what the stable version answers)', () => {
  const sig = (
    inputs: [string, string, number[]][],
    outputs: [string, string][],
  ): Pick<ModelVersion, 'signature'> => ({
    signature: {
      inputs: inputs.map(([name, datatype, shape]) => ({ name, datatype, shape }) as never),
      outputs: outputs.map(([name, datatype]) => ({ name, datatype, shape: [-1] }) as never),
    },
  });
  const stable = sig([['x', 'FP32', [-1, 4]]], [['y', 'FP32']]);

  it('accepts the same inputs and every output of the stable version (more outputs are fine)', () => {
    expect(signatureMismatch(stable, stable)).toBeUndefined();
    expect(
      signatureMismatch(
        stable,
        sig(
          [['x', 'FP32', [-1, 4]]],
          [
            ['y', 'FP32'],
            ['z', 'INT64'],
          ],
        ),
      ),
    ).toBeUndefined();
  });

  it.each([
    [
      sig([['x', 'FP32', [-1, 5]]], [['y', 'FP32']]),
      "its input 'x' is FP32[-1,5], the stable version's FP32[-1,4]",
    ],
    [sig([['x', 'FP64', [-1, 4]]], [['y', 'FP32']]), "its input 'x' is FP64[-1,4]"],
    [sig([['w', 'FP32', [-1, 4]]], [['y', 'FP32']]), "it has no input 'x'"],
    [
      sig(
        [
          ['x', 'FP32', [-1, 4]],
          ['w', 'FP32', [1]],
        ],
        [['y', 'FP32']],
      ),
      'it takes 2 input(s), the stable version 1',
    ],
    [sig([['x', 'FP32', [-1, 4]]], [['z', 'FP32']]), "it has no output 'y'"],
    [sig([['x', 'FP32', [-1, 4]]], [['y', 'FP16']]), "its output 'y' is FP16, the stable version's FP32"],
  ])('refuses %#: %s', (canary, reason) => {
    expect(signatureMismatch(stable, canary)).toContain(reason);
  });

  describe('compares what callers of the alias receive: model outputs and post-processing outputs', () => {
    const model = {
      inputs: [{ name: 'x', datatype: 'FP32' as const, shape: [-1, 4] }],
      outputs: [{ name: 'probs', datatype: 'FP32' as const, shape: [-1, 3] }],
    };
    const served = (extra: Partial<ModelVersion> = {}) => ({ signature: model, ...extra });
    const labels = ['setosa', 'versicolor', 'virginica'];

    it('refuses a canary of the same model without the stable version’s post-processing, naming every missing output', () => {
      const labelled = served({ labels, postprocess: { argmax: true } });
      expect(signatureMismatch(labelled, served())).toBe(
        "it has no outputs 'argmax', 'label' (post-processing of the stable version: declare the same postprocess and labels on this version)",
      );
      // Labels alone give `label` (BYTES): a canary with argmax but no labels still lacks it.
      expect(signatureMismatch(labelled, served({ postprocess: { argmax: true } }))).toContain(
        "it has no output 'label'",
      );
      expect(
        signatureMismatch(served({ postprocess: { topK: 2 } }), served({ postprocess: { softmax: true } })),
      ).toContain("it has no outputs 'topk_indices', 'topk_scores'");
    });

    it('refuses post-processing outputs of another datatype or shape', () => {
      // The stable model's own `label` output is INT64; the canary's `label` comes from its labels, BYTES.
      const ownLabel = {
        ...model,
        outputs: [...model.outputs, { name: 'label', datatype: 'INT64' as const, shape: [-1] }],
      };
      expect(signatureMismatch({ signature: ownLabel }, served({ labels }))).toBe(
        "its output 'label' is BYTES, the stable version's INT64",
      );
      expect(
        signatureMismatch(served({ postprocess: { topK: 3 } }), served({ postprocess: { topK: 2 } })),
      ).toBe(
        "its output 'topk_indices' has shape [-1,2], the stable version's [-1,3]; its output 'topk_scores' has shape [-1,2], the stable version's [-1,3]",
      );
    });

    it('accepts the same post-processing (label names may differ) and a canary that serves more outputs', () => {
      const labelled = served({ labels, postprocess: { argmax: true } });
      expect(
        signatureMismatch(labelled, served({ labels: ['a', 'b', 'c'], postprocess: { argmax: true } })),
      ).toBe(undefined);
      expect(
        signatureMismatch(
          labelled,
          served({ labels, postprocess: { argmax: true, softmax: true, topK: 2 } }),
        ),
      ).toBeUndefined();
      expect(signatureMismatch(served(), labelled)).toBeUndefined();
      // An output of any rank (shape []) matches any shape.
      const anyRank = { ...model, outputs: [{ name: 'probs', datatype: 'FP32' as const, shape: [] }] };
      expect(signatureMismatch({ signature: anyRank }, served())).toBeUndefined();
      expect(signatureMismatch(served(), { signature: anyRank })).toBeUndefined();
      // A dynamic dimension matches any size.
      const dynamic = { ...model, outputs: [{ name: 'probs', datatype: 'FP32' as const, shape: [-1, -1] }] };
      expect(
        signatureMismatch(
          { signature: dynamic, postprocess: { topK: 2 } },
          served({ postprocess: { topK: 2 } }),
        ),
      ).toBeUndefined();
    });
  });
});

describe('split compatibility covers post-processing (planAliasRouting, planAliasMove)', () => {
  const signature = {
    inputs: [{ name: 'x', datatype: 'FP32' as const, shape: [-1, 4] }],
    outputs: [{ name: 'probs', datatype: 'FP32' as const, shape: [-1, 3] }],
  };
  const labels = ['setosa', 'versicolor', 'virginica'];
  const labelled = (v: number) => version(v, { signature, labels, postprocess: { argmax: true } });
  const bare = (v: number) => version(v, { signature });
  const current: AliasState = { ...alias(1, 2, T0), target: labelled(1) };
  const change = (routing: AliasRouting) => ({ name: 'iris', alias: 'prod', routing, actor: 'bob' });
  const codeOf = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return { code: (e as { code?: string }).code, message: (e as Error).message };
    }
    return { code: 'accepted', message: '' };
  };

  it('refuses a canary or shadow without the stable version’s argmax and label (409)', () => {
    const canary = codeOf(() =>
      planAliasRouting(
        change({ canary: { version: 3, weight: 50 } }),
        { modelExists: true, alias: current, canary: bare(3) },
        T1,
      ),
    );
    expect(canary.code).toBe('CANARY_INCOMPATIBLE');
    expect(canary.message).toContain("it has no outputs 'argmax', 'label'");
    const shadow = codeOf(() =>
      planAliasRouting(
        change({ shadow: { version: 3, percent: 50 } }),
        { modelExists: true, alias: current, canary: undefined, shadow: bare(3) },
        T1,
      ),
    );
    expect(shadow.code).toBe('SHADOW_INCOMPATIBLE');
    // The same post-processing, or more of it, is fine.
    expect(
      planAliasRouting(
        change({ canary: { version: 3, weight: 50 } }),
        { modelExists: true, alias: current, canary: labelled(3) },
        T1,
      ).next.routing,
    ).toEqual({ canary: { version: 3, weight: 50 } });
  });

  it('refuses a move to a version whose post-processing the kept canary lacks', () => {
    const split: AliasState = {
      ...alias(2, 3, T0),
      target: bare(2),
      routing: { canary: { version: 3, weight: 10 } },
      canaryTarget: bare(3),
    };
    const move = { name: 'iris', alias: 'prod', version: 1, actor: 'bob' };
    expect(
      codeOf(() => planAliasMove(move, { modelExists: true, alias: split, target: labelled(1) }, T1)).code,
    ).toBe('CANARY_INCOMPATIBLE');
    expect(
      planAliasMove({ ...move, version: 4 }, { modelExists: true, alias: split, target: bare(4) }, T1).next
        ?.routing,
    ).toEqual({ canary: { version: 3, weight: 10 } });
  });
});
