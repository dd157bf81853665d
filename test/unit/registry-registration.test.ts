/**
 * Registration within a time budget and idempotently (functions/app/registration.ts) on the in-memory repository,
 * a fake store and a controllable inspector: 202/PENDING past the budget, completion by the worker's use case,
 * failure when the message cannot be queued, and one version per idempotency key.
 */
import { describe, expect, it } from 'vitest';
import { MemoryRegistryRepository } from '../../functions/adapters/memory-registry';
import {
  completePendingVersion,
  failPendingVersion,
  registerVersionOnce,
  registerVersionWithin,
} from '../../functions/app/registration';
import type { RegistryDeps } from '../../functions/app/registry';
import { UnavailableError, UnprocessableModelError } from '../../functions/domain/errors';
import type { ModelSignature } from '../../functions/domain/types';
import type { RegistryEvent } from '../../functions/ports';
import { MemoryGuard, RecordingQueue } from '../helpers/events-fakes';
import { MemoryArtifactStore } from '../helpers/memory-artifact-store';

const SIG: ModelSignature = {
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 2] }],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 2] }],
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function setup(opts: { delayMs?: number; refuse?: boolean } = {}) {
  const store = new MemoryArtifactStore();
  const events: RegistryEvent[] = [];
  let inspections = 0;
  const deps: RegistryDeps = {
    repo: new MemoryRegistryRepository(),
    store,
    inspector: {
      inspect: async () => {
        inspections++;
        if (opts.delayMs) await sleep(opts.delayMs);
        if (opts.refuse) throw new UnprocessableModelError('not a model');
        return SIG;
      },
    },
    events: { publish: async (e) => void events.push(e) },
  };
  store.objects.set('uploads/m/u1.onnx', new Uint8Array([1, 2, 3]));
  return { deps, store, events, inspections: () => inspections };
}

const input = { name: 'm', sourceKey: 'uploads/m/u1.onnx', labels: ['a', 'b'], actor: 'alice' };

describe('registerVersionWithin', () => {
  it('finishes synchronously within the budget (READY, prod)', async () => {
    const { deps } = setup();
    const queue = new RecordingQueue();
    const r = await registerVersionWithin(deps, input, { remainingMs: () => 5_000, queue });
    expect(r).toMatchObject({ pending: false, version: { version: 1, status: 'READY' } });
    expect(queue.sent).toEqual([]);
    expect((await deps.repo.getModel('m'))?.aliases).toEqual({ prod: 1 });
  });

  it('past the budget: a PENDING version (number allocated, no alias) and a register-complete message', async () => {
    const { deps, events } = setup({ delayMs: 200 });
    const queue = new RecordingQueue();
    const r = await registerVersionWithin(deps, input, { remainingMs: () => 20, queue });
    expect(r.pending).toBe(true);
    expect(r.version).toMatchObject({
      version: 1,
      status: 'PENDING',
      labels: ['a', 'b'],
      createdBy: 'alice',
    });
    expect(queue.sent).toEqual([{ type: 'register-complete', name: 'm', version: 1 }]);
    expect((await deps.repo.getModel('m'))?.aliases).toEqual({});
    // The abandoned verification writes nothing to the registry.
    await sleep(300);
    expect((await deps.repo.getModel('m'))?.latestVersion).toBe(1);
    expect(events).toEqual([]);

    expect(await completePendingVersion(deps, 'm', 1)).toBe('READY');
    expect(await deps.repo.getVersion('m', 1)).toMatchObject({
      status: 'READY',
      s3Key: expect.stringMatching(/^models\/m\//),
    });
    expect((await deps.repo.getModel('m'))?.aliases).toEqual({ prod: 1 });
    expect(events).toEqual([
      { type: 'ModelVersionRegistered', detail: expect.objectContaining({ name: 'm', version: 1 }) },
    ]);
    // A redelivery changes nothing.
    expect(await completePendingVersion(deps, 'm', 1)).toBe('READY');
    expect(events).toHaveLength(1);
  });

  it('the worker completes an artifact that is not a model FAILED with the reason', async () => {
    const { deps, events } = setup({ delayMs: 100, refuse: true });
    const queue = new RecordingQueue();
    await registerVersionWithin(deps, input, { remainingMs: () => 0, queue });
    expect(await completePendingVersion(deps, 'm', 1)).toBe('FAILED');
    expect(await deps.repo.getVersion('m', 1)).toMatchObject({
      status: 'FAILED',
      failureReason: 'not a model',
    });
    expect(events).toEqual([
      { type: 'ModelVersionFailed', detail: { name: 'm', version: 1, reason: 'not a model' } },
    ]);
  });

  it('a message that cannot be queued fails the PENDING version at once and the request', async () => {
    const { deps } = setup({ delayMs: 100 });
    const queue = {
      send: async () => {
        throw new Error('queue down');
      },
    };
    await expect(registerVersionWithin(deps, input, { remainingMs: () => 0, queue })).rejects.toThrow(
      'queue down',
    );
    expect(await deps.repo.getVersion('m', 1)).toMatchObject({
      status: 'FAILED',
      failureReason: 'the registration could not be queued',
    });
  });

  it('failPendingVersion leaves a completed version alone', async () => {
    const { deps } = setup();
    await registerVersionWithin(deps, input);
    expect(await failPendingVersion(deps, 'm', 1, 'late')).toBe(false);
    expect((await deps.repo.getVersion('m', 1))?.status).toBe('READY');
  });

  it('a worker that runs out of time throws (the message is retried), leaving the version PENDING', async () => {
    const { deps } = setup({ delayMs: 200 });
    await registerVersionWithin(deps, input, { remainingMs: () => 0, queue: new RecordingQueue() });
    await expect(
      completePendingVersion(deps, 'm', 1, { budget: { getRemainingTimeInMillis: () => 50 }, reserveMs: 0 }),
    ).rejects.toThrow(/did not finish within the worker's time/);
    expect((await deps.repo.getVersion('m', 1))?.status).toBe('PENDING');
  });
});

describe('registerVersionOnce', () => {
  it('10 concurrent requests with one key: one registration, one version', async () => {
    const { deps, inspections } = setup({ delayMs: 50 });
    const guard = new MemoryGuard();
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        registerVersionOnce(deps, input, { key: 'upload:u1', payload: 'p', guard }),
      ),
    );
    expect(new Set(results.map((r) => r.version.version))).toEqual(new Set([1]));
    expect(results.filter((r) => !r.replayed)).toHaveLength(1);
    expect(inspections()).toBe(1);
    expect((await deps.repo.getModel('m'))?.latestVersion).toBe(1);
  });

  it('a retry after a 503 whose write landed unseen answers the version it wrote, not a second one', async () => {
    // Prepare: the registry writes the version, then its answer is lost (the request is answered 503, and the
    // guard releases the key, as Powertools does on a failure).
    const { deps } = setup();
    const repo = deps.repo as MemoryRegistryRepository;
    const write = repo.createVersion.bind(repo);
    let stalls = 1;
    repo.createVersion = async (v) => {
      const written = await write(v);
      if (stalls-- > 0) throw new UnavailableError('the model registry did not answer in time', 1);
      return written;
    };
    const guard = new MemoryGuard();
    const opts = { key: 'upload:u1', payload: 'p', guard };
    await expect(registerVersionOnce(deps, input, opts)).rejects.toBeInstanceOf(UnavailableError);
    // Act
    const retry = await registerVersionOnce(deps, input, opts);
    // Assess
    expect(retry).toMatchObject({ replayed: true, pending: false, version: { version: 1, status: 'READY' } });
    expect((await deps.repo.getModel('m'))?.latestVersion).toBe(1);
    // Another key registers the same artifact again: a new version.
    const other = await registerVersionOnce(deps, input, { ...opts, key: 'upload:u2' });
    expect(other).toMatchObject({ replayed: false, version: { version: 2 } });
    // The key is kept hashed on the version, never as sent.
    const v1 = await deps.repo.getVersion('m', 1);
    expect(v1?.registrationKey).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(v1)).not.toContain('upload:u1');
  });

  it('without a key every request registers', async () => {
    const { deps } = setup();
    await registerVersionOnce(deps, input, { payload: 'p', guard: new MemoryGuard() });
    await registerVersionOnce(deps, input, { payload: 'p', guard: new MemoryGuard() });
    expect((await deps.repo.getModel('m'))?.latestVersion).toBe(2);
  });

  it('a retry after a 202 whose version the worker then failed answers 422, never a 2xx', async () => {
    // Prepare: the first request goes on in the background (202) and the worker records the artifact FAILED.
    const { deps } = setup({ delayMs: 100, refuse: true });
    const guard = new MemoryGuard();
    const budget = { remainingMs: () => 0, queue: new RecordingQueue() };
    const first = await registerVersionOnce(deps, input, { key: 'k', payload: 'p', guard, budget });
    expect(first).toMatchObject({ pending: true, replayed: false, version: { status: 'PENDING' } });
    expect(await completePendingVersion(deps, 'm', 1)).toBe('FAILED');
    // Act
    const retry = await registerVersionOnce(deps, input, { key: 'k', payload: 'p', guard, budget }).catch(
      (e: unknown) => e,
    );
    // Assess
    expect(retry).toBeInstanceOf(UnprocessableModelError);
    expect((retry as Error).message).toContain('not a model');
    expect((await deps.repo.getModel('m'))?.latestVersion).toBe(1);
  });

  it('replays the 422 of an artifact recorded FAILED without recording another', async () => {
    const { deps } = setup({ refuse: true });
    const guard = new MemoryGuard();
    const opts = { key: 'k', payload: 'p', guard };
    const first = await registerVersionOnce(deps, input, opts).catch((e) => e);
    const again = await registerVersionOnce(deps, input, opts).catch((e) => e);
    expect(first).toBeInstanceOf(UnprocessableModelError);
    expect(again).toBeInstanceOf(UnprocessableModelError);
    expect((again as Error).message).toBe((first as Error).message);
    expect((await deps.repo.getModel('m'))?.latestVersion).toBe(1);
  });
});
