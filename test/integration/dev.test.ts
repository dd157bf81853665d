/**
 * `npm start` as a user runs it: the dev server on a free port with its own DynamoDB Local and s3rver
 * (not the suite's), the sample model over HTTP, a second model registered/promoted/rolled back with the
 * CLI, Ctrl-C (SIGINT to the process group), no orphaned processes, and a second start over the same data, which
 * runs an async request the stop left unanswered.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { s3Client } from '../../functions/adapters/aws-clients';
import { ASYNC_KEYS } from '../../functions/contract/events';
import { freePort, localClientOptions } from '../../functions/local/emulators';
import { buildMlp } from '../../functions/local/onnx-builder';

const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/maas.js');

/** The environment of a user's shell: nothing that points at the suite's emulators or another stack. */
function userEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(AWS_|MAAS_|VITEST|PORT$)/.test(k)) delete env[k];
  }
  return { ...env, ...extra };
}

interface Started {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

function start(command: string, args: string[], env: NodeJS.ProcessEnv): Started {
  // Own process group, like a terminal's foreground job: Ctrl-C signals the whole group.
  const child = spawn(command, args, { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  return { child, output: () => output, exited };
}

/**
 * `fetch`, sent once more on a new connection when it fails before an answer (a TypeError): the CLI calls block
 * this process's event loop (execFileSync), so fetch may reuse a kept-alive connection the server closed meanwhile.
 * A server that is gone fails the second one too.
 */
function send(url: string, init?: RequestInit): Promise<Response> {
  return fetch(url, init).catch((e: unknown) => {
    if (!(e instanceof TypeError)) throw e;
    return fetch(url, init);
  });
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  s?: Started,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (s && s.child.exitCode !== null) throw new Error(`${what}: the server exited:\n${s.output()}`);
    if (Date.now() > deadline) throw new Error(`${what}: timed out\n${s?.output() ?? ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Pids still alive in process group `pgid`, plus any of `pids` still alive. */
function survivors(pgid: number, pids: number[]): string[] {
  const table = execFileSync('ps', ['-eo', 'pid=,pgid=,stat=,args='], { encoding: 'utf8' });
  return table
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .filter((l) => {
      const [pid, group, stat] = l.split(/\s+/);
      if (stat?.startsWith('Z')) return false; // reaped by nobody yet, but not running
      return Number(group) === pgid || pids.includes(Number(pid));
    });
}

async function stopWithCtrlC(s: Started): Promise<void> {
  process.kill(-(s.child.pid as number), 'SIGINT');
  await Promise.race([
    s.exited,
    new Promise((_, rej) => setTimeout(() => rej(new Error(`did not stop:\n${s.output()}`)), 30_000)),
  ]);
}

function cli(args: string[], env: NodeJS.ProcessEnv): { code: number; stdout: string; stderr: string } {
  try {
    const stdout = execFileSync(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env,
      encoding: 'utf8',
      stdio: 'pipe',
    });
    return { code: 0, stdout, stderr: '' };
  } catch (e) {
    const err = e as { status: number; stdout: string; stderr: string };
    return { code: err.status, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('npm start (maas dev) and the maas CLI', () => {
  const home = mkdtempSync(join(tmpdir(), 'maas-home-'));
  let port: number;
  let env: NodeJS.ProcessEnv;
  let server: Started | undefined;
  /** An async request the first run accepted and never ran (its message lost at the stop). */
  const unanswered = randomUUID();

  beforeAll(async () => {
    port = await freePort();
    env = userEnv({ MAAS_HOME: home, PORT: String(port) });
  });

  afterAll(async () => {
    if (server && server.child.exitCode === null) {
      process.kill(-(server.child.pid as number), 'SIGKILL');
    }
    rmSync(home, { recursive: true, force: true });
  });

  it('starts, serves the sample model, registers/promotes/rolls back with the CLI, stops cleanly', async () => {
    server = start('npm', ['start', '--silent'], env);
    const endpointsFile = join(home, 'endpoints.json');
    const endpoints = await waitFor(
      'endpoints.json',
      async () => (existsSync(endpointsFile) ? JSON.parse(readFileSync(endpointsFile, 'utf8')) : undefined),
      120_000,
      server,
    );
    const api = `http://127.0.0.1:${port}`;
    expect(endpoints).toMatchObject({ api, bucket: expect.any(String), table: expect.any(String) });
    expect(endpoints.dynamodb).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(endpoints.s3).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(typeof endpoints.dynamodbPid).toBe('number');
    const ready = await send(`${api}/v2/health/ready`);
    expect(await ready.json()).toEqual({ ready: true });
    expect(server.output()).toContain(`curl -s ${api}/v2/models/iris/infer`);

    // The sample model over HTTP, exactly as the banner's curl command sends it.
    const infer = await send(`${api}/v2/models/iris/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        inputs: [
          {
            name: 'features',
            shape: [3, 4],
            datatype: 'FP32',
            data: [5.1, 3.5, 1.4, 0.2, 6.4, 3.2, 4.5, 1.5, 6.7, 3.0, 5.2, 2.3],
          },
        ],
      }),
    });
    expect(infer.status).toBe(200);
    const answer = (await infer.json()) as {
      model_version: string;
      outputs: { name: string; data: unknown[] }[];
    };
    expect(answer.model_version).toBe('1');
    expect(answer.outputs.find((o) => o.name === 'label')?.data).toEqual([
      'setosa',
      'versicolor',
      'virginica',
    ]);

    // A second model, registered as iris version 2 with the CLI (presigned upload + registration).
    const file = join(home, 'mlp.onnx');
    writeFileSync(
      file,
      buildMlp({
        inFeatures: 4,
        layers: [8, 3],
        softmax: true,
        inputName: 'features',
        outputName: 'probabilities',
        seed: 7,
      }),
    );
    const cliEnv = userEnv({ MAAS_HOME: home });
    const reg = cli(
      [
        'register',
        file,
        '--name',
        'iris',
        '--labels',
        'setosa,versicolor,virginica',
        '--description',
        'an MLP',
      ],
      cliEnv,
    );
    expect(reg.stderr).toBe('');
    expect(reg.code).toBe(0);
    expect(reg.stdout).toContain('registered iris version 2 (READY)');

    const versions = cli(['--json', 'versions', 'iris'], cliEnv);
    expect(versions.code).toBe(0);
    expect(JSON.parse(versions.stdout).versions.map((v: { version: number }) => v.version)).toEqual([2, 1]);

    const stale = cli(['promote', 'iris', '2', '--expect', '2'], cliEnv);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain('PRECONDITION_FAILED');

    const promote = cli(['promote', 'iris', '2', '--expect', '1', '--reason', 'try the MLP'], cliEnv);
    expect(promote.code).toBe(0);
    expect(promote.stdout).toContain('iris@prod: version 1 -> version 2');

    const predicted = cli(['--json', 'predict', 'iris@2', '--input', '[[5.1,3.5,1.4,0.2]]'], cliEnv);
    expect(predicted.code).toBe(0);
    expect(JSON.parse(predicted.stdout).model_version).toBe('2');

    const rollback = cli(['rollback', 'iris'], cliEnv);
    expect(rollback.code).toBe(0);
    expect(rollback.stdout).toContain('iris@prod: version 2 -> version 1');

    const history = cli(['--json', 'history', 'iris'], cliEnv);
    expect(
      JSON.parse(history.stdout).history.map((h: { previousVersion: number | null; version: number }) => [
        h.previousVersion,
        h.version,
      ]),
    ).toEqual([
      [2, 1],
      [1, 2],
      [null, 1],
    ]);
    const models = cli(['--json', 'models'], cliEnv);
    expect(JSON.parse(models.stdout).models).toEqual([
      expect.objectContaining({ name: 'iris', latestVersion: 2, aliases: { prod: 1 } }),
    ]);

    // A batch job through the local bucket's S3 events: output line n answers input line n.
    const input = join(home, 'input.jsonl');
    const row = (data: number[]) =>
      JSON.stringify({ inputs: [{ name: 'features', shape: [1, data.length], datatype: 'FP32', data }] });
    writeFileSync(
      input,
      `${[row([5.1, 3.5, 1.4, 0.2]), row([6.7, 3.0, 5.2]), row([6.7, 3.0, 5.2, 2.3])].join('\n')}\n`,
    );
    const out = join(home, 'output.jsonl');
    const batch = cli(['batch', 'iris', input, '--out', out], cliEnv);
    expect(batch.code).toBe(0);
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(3);
    expect(lines[0].outputs.find((o: { name: string }) => o.name === 'label').data).toEqual(['setosa']);
    expect(lines[1]).toMatchObject({ code: expect.any(String), error: expect.stringContaining('shape') });
    expect(lines[2].outputs.find((o: { name: string }) => o.name === 'label').data).toEqual(['virginica']);
    const unknown = cli(['batch', 'no-such-model', input], cliEnv);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('MODEL_NOT_FOUND');

    // Observability: capture declared on prod, an inference with its own id, the numbers (`/metrics`, `maas
    // stats`), the captured record read back (`maas capture`), and ground truth for it (`maas feedback`).
    const declared = cli(['capture-config', 'iris', '--alias', 'prod', '--sample', '100'], cliEnv);
    expect(declared.code).toBe(0);
    // The alias cache of the predict path: the declaration is seen within MAAS_ALIAS_TTL_MS (5 s).
    const observedInfer = () =>
      send(`${api}/v2/models/iris/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          id: 'dev-observed-1',
          inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] }],
        }),
      });
    const observed = await observedInfer();
    expect(observed.headers.get('x-maas-inference-id')).toBe('dev-observed-1');
    const captured = await waitFor(
      'the captured record',
      async () => {
        await observedInfer();
        const listed = cli(['--json', 'capture', 'iris', '--version', '1'], cliEnv);
        const records = listed.code === 0 ? (JSON.parse(listed.stdout) as unknown[]) : [];
        return records.length > 0 ? records : undefined;
      },
      30_000,
      server,
    );
    expect(captured[0]).toMatchObject({
      model: 'iris',
      version: 1,
      alias: 'prod',
      eventMetadata: { inferenceId: 'dev-observed-1' },
      captureData: { endpointInput: { mode: 'INPUT' }, endpointOutput: { mode: 'OUTPUT' } },
    });
    const metricsText = await (await send(`${api}/metrics`)).text();
    expect(metricsText).toMatch(
      /maas_requests_total\{model="iris",version="1",alias="prod",route="stable"\} \d+/,
    );
    const stats = cli(['stats', 'iris'], cliEnv);
    expect(stats.code).toBe(0);
    expect(stats.stdout).toMatch(/^MODEL\s+VERSION\s+ALIAS/m);
    expect(stats.stdout).toMatch(/^iris\s+1\s+prod\s+stable\s+\d+/m);
    const feedback = cli(['feedback', 'iris', '--id', 'dev-observed-1', '--label', 'setosa'], cliEnv);
    expect(feedback.code).toBe(0);
    expect(feedback.stdout).toContain('1 feedback item');

    // An async request accepted whose message the stop loses: its document stored as the async API stores it, its
    // message never sent. It stays pending; the next start queues it again.
    const s3 = s3Client(localClientOptions(endpoints.s3));
    await s3.send(
      new PutObjectCommand({
        Bucket: endpoints.bucket,
        Key: ASYNC_KEYS.request(unanswered),
        Body: JSON.stringify({
          requestId: unanswered,
          name: 'iris',
          ref: 'prod',
          request: {
            id: 'left-by-the-stop',
            inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] }],
          },
          createdAt: new Date().toISOString(),
          actor: 'dev.test',
        }),
      }),
    );
    expect(await (await send(`${api}/async/${unanswered}`)).json()).toEqual({ status: 'pending' });

    // Ctrl-C: everything in the job's process group goes away, java included.
    const pgid = server.child.pid as number;
    await stopWithCtrlC(server);
    await waitFor(
      'no survivors',
      async () => (survivors(pgid, [endpoints.pid, endpoints.dynamodbPid]).length === 0 ? true : undefined),
      15_000,
    ).catch(() => {
      throw new Error(
        `orphaned processes:\n${survivors(pgid, [endpoints.pid, endpoints.dynamodbPid]).join('\n')}`,
      );
    });
    expect(existsSync(endpointsFile)).toBe(false);
    expect(server.output()).toContain('stopped');
  }, 240_000);

  it('a second start reuses the data and does not register the sample again', async () => {
    server = start(process.execPath, [BIN, 'dev'], env);
    await waitFor(
      'ready',
      async () => (existsSync(join(home, 'endpoints.json')) ? true : undefined),
      120_000,
      server,
    );
    const api = `http://127.0.0.1:${port}`;
    const models = (await (await send(`${api}/models`)).json()) as {
      models: { name: string; latestVersion: number; aliases: Record<string, number> }[];
    };
    expect(models.models).toEqual([
      expect.objectContaining({ name: 'iris', latestVersion: 2, aliases: { prod: 1 } }),
    ]);
    expect(server.output()).toContain("sample model 'iris' already registered");
    // The request the first run left unanswered is queued again at the start, and answered.
    expect(server.output()).toContain('re-queued 1 async request left unfinished by the last stop');
    const answered = await waitFor(
      'the request left by the stop answered',
      async () => {
        const body = (await (await send(`${api}/async/${unanswered}`)).json()) as {
          status: string;
          result?: { id: string; outputs: { name: string; data: unknown[] }[] };
        };
        return body.status === 'pending' ? undefined : body;
      },
      30_000,
      server,
    );
    expect(answered.status).toBe('done');
    expect(answered.result?.id).toBe('left-by-the-stop');
    expect(answered.result?.outputs.find((o) => o.name === 'label')?.data).toEqual(['setosa']);
    // SIGTERM to the server alone (as a service manager sends it): it must stop java itself.
    const javaPid = JSON.parse(readFileSync(join(home, 'endpoints.json'), 'utf8')).dynamodbPid as number;
    const pgid = server.child.pid as number;
    process.kill(pgid, 'SIGTERM');
    expect(await server.exited).toBe(0);
    await waitFor(
      'no survivors',
      async () => (survivors(pgid, [javaPid]).length === 0 ? true : undefined),
      15_000,
    );
  }, 180_000);

  it('a second maas dev over the same home is refused (exit 2), and a stop removes only its own endpoints.json', async () => {
    const shared = mkdtempSync(join(tmpdir(), 'maas-shared-'));
    const first = start(
      process.execPath,
      [BIN, 'dev', '--in-memory', '--port', '0'],
      userEnv({ MAAS_HOME: shared }),
    );
    let second: Started | undefined;
    try {
      const file = join(shared, 'endpoints.json');
      const recorded = await waitFor(
        'ready',
        async () => (existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : undefined),
        120_000,
        first,
      );
      // A second one, before any emulator starts: a usage error naming the running one and another home.
      second = start(
        process.execPath,
        [BIN, 'dev', '--in-memory', '--port', String(await freePort())],
        userEnv({ MAAS_HOME: shared }),
      );
      const refused = await Promise.race([
        second.exited,
        new Promise((r) => setTimeout(() => r('still running'), 30_000)),
      ]);
      expect(refused, second.output()).toBe(2);
      expect(second.output()).toContain(
        `maas dev already runs over ${shared} (pid ${recorded.pid}, ${recorded.api})`,
      );
      expect(second.output()).toContain('MAAS_HOME=');
      expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(recorded);
      const models = cli(['models'], userEnv({ MAAS_HOME: shared }));
      expect(models.code, models.stderr).toBe(0);

      // endpoints.json taken over by another live process (this one): the first's stop leaves it.
      const other = { ...recorded, pid: process.pid, api: 'http://127.0.0.1:1' };
      writeFileSync(file, JSON.stringify(other));
      await stopWithCtrlC(first);
      expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(other);
    } finally {
      for (const s of [first, second]) {
        if (s && s.child.exitCode === null) process.kill(-(s.child.pid as number), 'SIGKILL');
      }
      rmSync(shared, { recursive: true, force: true });
    }
  }, 180_000);

  it('a port in use: one clear line and exit code 1, before any emulator starts', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const taken = (blocker.address() as AddressInfo).port;
    try {
      const s = start(
        process.execPath,
        [BIN, 'dev', '--in-memory', '--port', String(taken)],
        userEnv({ MAAS_HOME: home }),
      );
      expect(await s.exited).toBe(1);
      expect(s.output().trim()).toBe(
        `maas dev: port ${taken} is in use: stop what runs there or pick another with --port or PORT`,
      );
    } finally {
      blocker.close();
    }
  }, 60_000);

  it('without Java: one clear line and exit code 1', async () => {
    const noJava = {
      ...userEnv({ MAAS_HOME: mkdtempSync(join(tmpdir(), 'maas-nojava-')) }),
      PATH: mkdtempSync(join(tmpdir(), 'empty-path-')),
    };
    const s = start(process.execPath, [BIN, 'dev', '--in-memory', '--port', '0'], noJava);
    expect(await s.exited).toBe(1);
    const lines = s.output().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^Java 17\+ is required to run DynamoDB Local: install a JRE/);
    expect(lines[0]).toContain('AWS_ENDPOINT_URL_DYNAMODB');
  }, 60_000);
});
