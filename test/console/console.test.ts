/**
 * The console in headless Chromium against the local service: the models page lists the sample, the model page
 * shows versions and alias history, promote and rollback through the page move the alias (read back through the
 * API), a stale promotion is explained, Try it returns the sample's label (and the curl it shows answers the same),
 * a canary's answer is labelled with the canary's labels, API errors show their code and message (the rollout page of
 * an unknown model or alias its 404), Live charts the local /metrics, a rollout is paused, resumed and aborted (a
 * rollback or an abort from a page gone stale is refused and explained), long names keep the pages within the window.
 * Each page is a screenshot under docs/ (rewritten with MAAS_UPDATE_SCREENSHOTS=1).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../functions/cli/program';
import { LIMITS } from '../../functions/contract/limits';
import { buildIrisModel, SAMPLE_MODEL } from '../../functions/local/sample-model';
import { captureIo } from '../helpers/cli-io';
import { launchBrowser, saveScreenshot, type TestBrowser } from './browser';
import { type ConsoleTarget, startConsoleTarget } from './target';

const DOCS = join(import.meta.dirname, '..', '..', 'docs');
const shot = (page: Page, name: string, fullPage = false) =>
  saveScreenshot(page, join(DOCS, `console-${name}.png`), fullPage);

describe('the console in a browser', () => {
  let target: ConsoleTarget;
  let chrome: TestBrowser;
  let page: Page;
  let problems: string[];
  let loads = 0;
  /** Loads the page anew (a query of its own: never just a change of fragment) at `hash`. */
  const open = async (hash: string) => {
    await page.goto(`${target.url}/console/?load=${++loads}${hash}`);
    await page.waitForSelector('main h1');
  };
  const prodVersion = async () => (await target.call('GET', '/models/iris')).body.aliases.prod as number;

  // A machine without Chromium installs it first (apt-get): minutes, not seconds.
  beforeAll(async () => {
    [target, chrome] = await Promise.all([startConsoleTarget('console'), launchBrowser()]);
    ({ page, problems } = await chrome.page());
    page.setDefaultTimeout(15_000);
  }, 900_000);

  afterAll(async () => {
    await chrome?.close();
    await target?.close();
  });

  it('lists the sample on the models page, and finds it by name', async () => {
    await open('');
    const row = page.locator('tr[data-model="iris"]');
    await row.waitFor();
    await expect(row.textContent()).resolves.toMatch(/v3.*prod → v1/);
    await shot(page, 'models');
    await page.getByLabel('Search by name').fill('zzz');
    await page.getByText('No model name contains “zzz”').waitFor();
    await page.getByLabel('Search by name').fill('IRI');
    await row.waitFor();
    await page.getByRole('link', { name: 'iris' }).click();
    await page.waitForSelector('tr[data-version="3"]');
    expect(page.url()).toMatch(/#\/models\/iris$/);
  });

  it('shows the versions and the alias history on the model page', async () => {
    await open('#/models/iris');
    await page.waitForSelector('tr[data-version="1"]');
    await expect(page.locator('table.versions tbody tr').count()).resolves.toBe(3);
    const v1 = await page.locator('tr[data-version="1"]').textContent();
    expect(v1).toContain('READY');
    expect(v1).toContain('features:FP32[-1,4] → probabilities:FP32[-1,3]');
    expect(v1).toContain('setosa, versicolor, virginica');
    expect(v1).toMatch(/[0-9a-f]{12}/);
    await expect(page.locator('tr[data-version="2"]').textContent()).resolves.toContain(
      'refit with more rows',
    );
    const history = page.locator('ol.timeline[data-alias="prod"] li');
    await expect(history.first().textContent()).resolves.toMatch(/created at v1.*by local:tester/);
  });

  it('promotes and rolls back through the page, moving the alias', async () => {
    await open('#/models/iris');
    // From the keyboard: Enter opens the confirmation, Escape cancels it and gives the focus back.
    const promote2 = page.getByRole('button', { name: 'Promote version 2' });
    await promote2.focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    // The dialog is opened as a modal, and the focus moved into it, after it is on the page (an effect).
    await expect
      .poll(() => page.evaluate('document.activeElement.id'), { timeout: 15_000 })
      .toBe('promote-alias');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    await expect
      .poll(() => promote2.evaluate((b) => b === b.ownerDocument.activeElement), { timeout: 15_000 })
      .toBe(true);
    await promote2.click();
    await expect(dialog.textContent()).resolves.toContain('prod points at v1 on this page');
    await page.getByLabel('Reason (kept in the alias history)').fill('better on the holdout');
    await shot(page, 'promote');
    await dialog.getByRole('button', { name: 'Point prod at v2' }).click();
    await page.getByText('prod now points at v2.').waitFor();
    expect(await prodVersion()).toBe(2);
    await page.waitForSelector('tr[data-alias="prod"] .alias-version:text("v2")');
    await expect(page.locator('ol.timeline[data-alias="prod"] li').first().textContent()).resolves.toMatch(
      /v1 → v2.*better on the holdout/,
    );

    // A split change after the move is no move: the rollback still undoes v1 → v2, as the API does, and the
    // notice says where the API took the alias.
    const split = await target.call('PATCH', '/models/iris/aliases/prod', {
      routing: { canary: { version: 3, weight: 10 } },
    });
    expect(split.status).toBe(200);
    await page.getByRole('button', { name: 'Refresh' }).click();
    await page.waitForSelector('tr[data-alias="prod"] :text("v3")');
    await page.getByRole('button', { name: 'Roll back prod' }).click();
    await expect(page.getByRole('dialog').textContent()).resolves.toContain('points it at v1 again');
    await page.getByRole('dialog').getByRole('button', { name: 'Roll back prod' }).click();
    await page.getByText('prod was rolled back to v1.').waitFor();
    expect(await prodVersion()).toBe(1);
    await page.waitForSelector('tr[data-alias="prod"] .alias-version:text("v1")');
    await expect(page.locator('ol.timeline[data-alias="prod"] li').first().textContent()).resolves.toContain(
      'v2 → v1',
    );
    await shot(page, 'model', true);
  });

  it('previews the rollback the API makes when more than a page of split changes follows the latest move', async () => {
    const call = async (method: string, path: string, body?: unknown) => {
      const r = await target.call(method, path, body);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
    };
    await call('PUT', '/models/iris/aliases/staging', { version: 1 });
    await call('PUT', '/models/iris/aliases/staging', { version: 2 });
    // 120 split changes: the page's 100 newest history entries hold no move; the API looks further.
    for (let i = 0; i < 120; i++) {
      await call('PATCH', '/models/iris/aliases/staging', {
        routing: { canary: { version: 3, weight: i % 2 ? 20 : 10 } },
      });
    }
    try {
      await open('#/models/iris');
      await page.getByRole('button', { name: 'Roll back staging' }).click();
      const dialog = page.getByRole('dialog');
      await expect(dialog.textContent()).resolves.toContain(
        'Its last move came from v1: rolling back points it at v1 again',
      );
      await dialog.getByRole('button', { name: 'Roll back staging' }).click();
      await page.getByText('staging was rolled back to v1.').waitFor();
      expect((await target.call('GET', '/models/iris')).body.aliases.staging).toBe(1);
    } finally {
      await target.call('DELETE', '/models/iris/aliases/staging');
    }
  });

  it('explains a promotion refused because the page was stale (412)', async () => {
    await open('#/models/iris');
    await page.waitForSelector('tr[data-alias="prod"] .alias-version:text("v1")');
    // Someone else moves prod while the page still shows v1.
    const moved = await target.call('PUT', '/models/iris/aliases/prod', { version: 3, expectedVersion: 1 });
    expect(moved.status).toBe(200);
    await page.getByRole('button', { name: 'Promote version 2' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Point prod at v2' }).click();
    const alert = page.locator('[role="alert"][data-code="PRECONDITION_FAILED"]');
    await alert.waitFor();
    const text = await alert.textContent();
    expect(text).toContain('HTTP 412');
    expect(text).toContain("alias 'prod' of model 'iris' points at version 3, not 1");
    expect(text).toContain('This page was out of date');
    expect(text).toContain('expectedVersion: 1');
    expect(await prodVersion()).toBe(3);
    await shot(page, 'stale-promote');
    await page.getByRole('button', { name: 'Reload the model' }).click();
    await page.waitForSelector('tr[data-alias="prod"] .alias-version:text("v3")');
    expect((await target.call('PUT', '/models/iris/aliases/prod', { version: 1 })).status).toBe(200);
  });

  it('rolls back only the alias the dialog showed: a move meanwhile is refused (412), explained, and kept', async () => {
    await open('#/models/iris');
    await page.waitForSelector('tr[data-alias="prod"] .alias-version:text("v1")');
    await page.getByRole('button', { name: 'Roll back prod' }).click();
    const dialog = page.getByRole('dialog');
    await expect(dialog.textContent()).resolves.toContain(
      'prod points at v1. Its last move came from v3: rolling back points it at v3 again.',
    );
    // Someone else moves prod while the dialog is open: confirming must not undo that move.
    const moved = await target.call('PUT', '/models/iris/aliases/prod', { version: 2 });
    expect(moved.status).toBe(200);
    await dialog.getByRole('button', { name: 'Roll back prod' }).click();
    const alert = page.locator('[role="alert"][data-code="PRECONDITION_FAILED"]');
    await alert.waitFor();
    const text = await alert.textContent();
    expect(text).toContain("alias 'prod' of model 'iris' points at version 2 (its latest move), not 1");
    expect(text).toContain('This page was out of date');
    expect(text).toContain('the rollback to v3 was sent on the condition');
    expect(text).toContain('expectedVersion: 1');
    expect(await prodVersion()).toBe(2);
    const latest = (await target.call('GET', '/models/iris/aliases/prod/history?limit=1')).body.history[0];
    expect(latest).toMatchObject({ version: 2, previousVersion: 1 });
    await page.getByRole('button', { name: 'Reload the model' }).click();
    await page.waitForSelector('tr[data-alias="prod"] .alias-version:text("v2")');
    expect((await target.call('PUT', '/models/iris/aliases/prod', { version: 1 })).status).toBe(200);
  });

  it('rolls back only the alias the dialog showed: a move away and back meanwhile is refused too', async () => {
    await open('#/models/iris');
    await page.waitForSelector('tr[data-alias="prod"] .alias-version:text("v1")');
    await page.getByRole('button', { name: 'Roll back prod' }).click();
    const dialog = page.getByRole('dialog');
    await expect(dialog.textContent()).resolves.toContain(
      'prod points at v1. Its last move came from v2: rolling back points it at v2 again.',
    );
    // Away and back while the dialog is open: prod points where the page showed it, but its last move now came
    // from v3, so confirming would roll back to v3, not to the v2 the dialog said.
    for (const version of [3, 1]) {
      expect((await target.call('PUT', '/models/iris/aliases/prod', { version })).status).toBe(200);
    }
    await dialog.getByRole('button', { name: 'Roll back prod' }).click();
    const alert = page.locator('[role="alert"][data-code="PRECONDITION_FAILED"]');
    await alert.waitFor();
    const text = await alert.textContent();
    expect(text).toContain('HTTP 412');
    expect(text).toContain('This page was out of date');
    expect(text).toContain(
      'the rollback to v2 was sent on the condition that it still pointed there and had not changed since',
    );
    expect(text).toMatch(/expectedVersion: 1, expectedRevision: \d+/);
    expect(await prodVersion()).toBe(1);
    const latest = (await target.call('GET', '/models/iris/aliases/prod/history?limit=1')).body.history[0];
    expect(latest).toMatchObject({ version: 1, previousVersion: 3 });
  });

  it('offers no archive of a version a shadow uses, and looks an alias named constructor up as any other', async () => {
    const shadow = await target.call('PATCH', '/models/iris/aliases/prod', {
      routing: { shadow: { version: 3, percent: 20 } },
    });
    expect(shadow.status, JSON.stringify(shadow.body)).toBe(200);
    await open('#/models/iris');
    await page.waitForSelector('tr[data-alias="prod"] .alias-version:text("v1")');
    await expect(page.getByRole('button', { name: 'Archive version 3' }).count()).resolves.toBe(0);
    expect((await target.call('PATCH', '/models/iris/aliases/prod', { routing: null })).status).toBe(200);
    // An alias that does not exist but is a property of every object: the page says it does not exist yet.
    await page.getByRole('button', { name: 'Refresh' }).click();
    await page.getByRole('button', { name: 'Promote version 2' }).click();
    await page.locator('#promote-alias').fill('constructor');
    const dialog = page.getByRole('dialog');
    await expect(dialog.textContent()).resolves.not.toContain('function');
    await page.keyboard.press('Escape');
    await open('#/models');
    await expect(page.locator('body').textContent()).resolves.not.toContain('function Object');
  });

  it('says a model has no version left when every version was deleted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'maas-console-'));
    writeFileSync(join(dir, 'm.onnx'), buildIrisModel());
    const io = captureIo();
    expect(
      await run(
        ['node', 'maas', '--endpoint', target.url, 'register', join(dir, 'm.onnx'), '--name', 'lonely'],
        io,
      ),
    ).toBe(0);
    expect((await target.call('DELETE', '/models/lonely/aliases/prod')).status).toBe(200);
    const deleted = await target.call('DELETE', '/models/lonely/versions/1');
    expect(deleted.status, JSON.stringify(deleted.body)).toBeLessThan(300);
    await open('#/models/lonely');
    await expect(page.locator('[data-empty="versions"]').textContent()).resolves.toContain(
      'every version of this model was deleted',
    );
  });

  it('archives a version through the page', async () => {
    await open('#/models/iris');
    await page.waitForSelector('tr[data-alias="prod"] .alias-version:text("v1")');
    await page.getByRole('button', { name: 'Archive version 3' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Archive v3' }).click();
    await page.getByText('v3 is archived.').waitFor();
    expect((await target.call('GET', '/models/iris/versions/3')).body.status).toBe('ARCHIVED');
    await page.waitForSelector('tr[data-version="3"] .badge:text("ARCHIVED")');
  });

  it('runs the sample in Try it, with the label, and shows a curl that answers the same', async () => {
    await open('#/models/iris/try');
    const cells = page.locator('fieldset[data-input="features"] input.cell');
    await cells.first().waitFor();
    const row = ['5.1', '3.5', '1.4', '0.2'];
    for (const [i, v] of row.entries()) await cells.nth(i).fill(v);
    await page.getByRole('button', { name: 'Run inference' }).click();
    await expect(page.locator('.prediction [data-row="0"] .predicted').textContent()).resolves.toBe('setosa');
    const probabilities = page.locator('[data-output="probabilities"] table');
    await expect(probabilities.locator('thead').textContent()).resolves.toMatch(
      /setosa.*versicolor.*virginica/,
    );
    const predict = await page.locator('#cmd-predict').textContent();
    expect(predict).toBe(`npx maas --endpoint ${target.url} predict iris@prod --input '[[5.1,3.5,1.4,0.2]]'`);
    const curl = (await page.locator('#cmd-curl').textContent()) as string;
    expect(curl).toContain(`${target.url}/v2/models/iris/versions/prod/infer`);
    await shot(page, 'try');
    const { stdout } = await promisify(execFile)('sh', ['-c', curl]);
    const answer = JSON.parse(stdout);
    expect(answer.outputs.find((o: { name: string }) => o.name === 'label').data).toEqual(['setosa']);
  });

  it("labels a canary's answer with the labels of the version that answered, as they are written", async () => {
    // pets: v1 (prod) labelled as the sample, v2 labelled cat, dog, bird; a canary of v2 takes every request.
    const dir = mkdtempSync(join(tmpdir(), 'maas-console-'));
    writeFileSync(join(dir, 'm.onnx'), buildIrisModel());
    for (const labels of [SAMPLE_MODEL.labels.join(','), 'cat,dog,bird']) {
      const io = captureIo();
      const args = ['register', join(dir, 'm.onnx'), '--name', 'pets', '--labels', labels];
      args.push('--postprocess', JSON.stringify(SAMPLE_MODEL.postprocess));
      expect(await run(['node', 'maas', '--endpoint', target.url, ...args], io), io.stderr()).toBe(0);
    }
    const canary = await target.call('PATCH', '/models/pets/aliases/prod', {
      routing: { canary: { version: 2, weight: 100 } },
    });
    expect(canary.status, JSON.stringify(canary.body)).toBe(200);
    await open('#/models/pets/try');
    const cells = page.locator('fieldset[data-input="features"] input.cell');
    await cells.first().waitFor();
    for (const [i, v] of ['5.1', '3.5', '1.4', '0.2'].entries()) await cells.nth(i).fill(v);
    await page.getByRole('button', { name: 'Run inference' }).click();
    await expect(page.locator('.prediction [data-row="0"] .predicted').textContent()).resolves.toBe('cat');
    await expect(page.locator('.answer > p.muted').textContent()).resolves.toMatch(/^pets v2/);
    const head = page.locator('[data-output="probabilities"] table thead th');
    // innerText: the headers as shown (a text-transform changes them), labels being case-sensitive data.
    await expect(head.allInnerTexts()).resolves.toEqual(['Row', 'cat', 'dog', 'bird']);
  });

  it("shows an API error's code and message, never a blank page", async () => {
    await open('#/models/no-such-model');
    const alert = page.locator('[role="alert"][data-code="MODEL_NOT_FOUND"]');
    await alert.waitFor();
    await expect(alert.textContent()).resolves.toMatch(/HTTP 404.*model 'no-such-model' not found/);
    await shot(page, 'error');

    // An inference the API refuses: the whole request as JSON, with a shape its data does not fill.
    await open('#/models/iris/try');
    await page.locator('fieldset[data-input="features"]').waitFor();
    await page.getByLabel('Edit the whole request as JSON').check();
    const bad = { inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3] }] };
    await page.getByLabel('Request body (Open Inference Protocol JSON)').fill(JSON.stringify(bad));
    await page.getByRole('button', { name: 'Run inference' }).click();
    const refused = page.locator('[role="alert"]', { hasText: 'The inference failed' });
    await refused.waitFor();
    const code = await refused.getAttribute('data-code');
    expect(code).toMatch(/^[A-Z_]+$/);
    await expect(refused.textContent()).resolves.toContain('HTTP 400');

    // A body whose inputs are no array: the API's refusal is shown, and the page goes on working.
    await page.getByLabel('Request body (Open Inference Protocol JSON)').fill('{"inputs": 5}');
    await page.getByRole('button', { name: 'Run inference' }).click();
    await page.locator('[role="alert"][data-code]', { hasText: 'HTTP 400' }).waitFor();
    await expect(page.locator('#cmd-predict').textContent()).resolves.toContain(`--input '{"inputs":5}'`);
    // A request that asks one output: maas predict is given the whole request, not the rows alone.
    const one = {
      outputs: [{ name: 'argmax' }],
      inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }],
    };
    await page.getByLabel('Request body (Open Inference Protocol JSON)').fill(JSON.stringify(one));
    await expect(page.locator('#cmd-predict').textContent()).resolves.toContain(
      `--input '${JSON.stringify(one)}'`,
    );
  });

  it('charts requests, errors and latency per model version from /metrics', async () => {
    await open('#/live');
    const tick = async () => Number(await page.locator('section[data-tick]').getAttribute('data-tick'));
    const infer = (data: number[]) =>
      fetch(`${target.url}/v2/models/iris/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data }] }),
      });
    for (let round = 0; round < 2; round++) {
      const before = await tick();
      await Promise.all([
        ...Array.from({ length: 8 }, () => infer([6.7, 3.0, 5.2, 2.3])),
        infer([1, 2]), // refused: counted as an error
      ]);
      await expect.poll(tick, { timeout: 15_000 }).toBeGreaterThan(before + 1);
    }
    const v1 = page.locator('tr[data-series="iris@v1"]');
    await v1.waitFor();
    expect(Number(await v1.locator('td.requests').textContent())).toBeGreaterThanOrEqual(18);
    await expect(page.locator('.chart-box canvas').count()).resolves.toBe(3);
    await expect(page.locator('figure.chart figcaption').allTextContents()).resolves.toEqual([
      'Requests per second',
      'Errors per second (4xx and 5xx)',
      'Latency p99 (ms)',
    ]);
    await shot(page, 'live', true);
  });

  it('shows a rollout and pauses, resumes and aborts it through the page', async () => {
    const started = await target.call('PUT', '/models/iris/aliases/prod/rollout', {
      version: 2,
      steps: [
        { weight: 10, bakeSeconds: 600 },
        { weight: 50, bakeSeconds: 600 },
        { weight: 100, bakeSeconds: 0 },
      ],
      alarms: [],
    });
    expect(started.status).toBe(201);
    await open('#/models/iris');
    await page.getByRole('link', { name: /running v1 → v2 at 10%/ }).click();
    await page.waitForSelector('.weight');
    await expect(page.locator('.weight').textContent()).resolves.toBe('10% (step 1 of 3)');
    await expect(page.locator('table.steps tr[aria-current="step"]').textContent()).resolves.toContain('10%');
    await shot(page, 'rollout', true);
    const status = async () => (await target.call('GET', '/models/iris/aliases/prod/rollout')).body.status;
    for (const [action, after] of [
      ['Pause', 'paused'],
      ['Resume', 'running'],
      ['Abort', 'aborted'],
    ] as const) {
      await page.getByRole('button', { name: action, exact: true }).click();
      await page
        .getByRole('dialog')
        .getByRole('button', { name: `${action} the rollout` })
        .click();
      await page.getByText(`The rollout is ${after}.`).waitFor();
      expect(await status()).toBe(after);
    }
    await page.waitForSelector('.badge.rollout-aborted');
    expect((await target.call('GET', '/models/iris')).body.splits).toBeUndefined();
    // Ended: no weight of a split that is gone.
    await expect(page.locator('.weight').textContent()).resolves.toBe(
      "– (aborted: the split is no longer the rollout's)",
    );
    expect(problems.filter((p) => p.startsWith('page error'))).toEqual([]);
  });

  it('shows the 404 of a model or an alias that does not exist on the rollout page, offering no rollout', async () => {
    for (const [hash, code, message] of [
      ['#/models/nope/rollout/prod', 'MODEL_NOT_FOUND', "model 'nope' not found"],
      ['#/models/iris/rollout/nope', 'ALIAS_NOT_FOUND', "alias 'nope' of model 'iris' not found"],
    ] as const) {
      await open(hash);
      const alert = page.locator(`[role="alert"][data-code="${code}"]`);
      await alert.waitFor();
      await expect(alert.textContent(), hash).resolves.toContain(`HTTP 404`);
      await expect(alert.textContent(), hash).resolves.toContain(message);
      await expect(page.locator('main').textContent(), hash).resolves.not.toContain(
        'has never had a rollout',
      );
    }
  });

  /** Points `alias` of iris at v1, then moves it `moves` times between v2 and v1. */
  const moveMany = async (alias: string, moves: number) => {
    for (let i = 0; i <= moves; i++) {
      const moved = await target.call('PUT', `/models/iris/aliases/${alias}`, {
        version: i % 2 ? 2 : 1,
        reason: `move ${i}`,
      });
      expect(moved.status, JSON.stringify(moved.body)).toBe(200);
    }
  };

  it("reads an alias's older history on demand beyond its newest 100 entries", async () => {
    await moveMany('long', 110); // 111 entries
    try {
      await open('#/models/iris');
      const entries = page.locator('ol.timeline[data-alias="long"] li');
      await entries.first().waitFor();
      await expect(entries.count()).resolves.toBe(100);
      const section = page.locator('section.timeline-section', { has: page.locator('[data-alias="long"]') });
      await expect(section.getByRole('status').textContent()).resolves.toBe(
        'Showing the newest 100 entries.',
      );
      await page.getByRole('button', { name: 'Show older entries of long' }).click();
      await expect.poll(() => entries.count(), { timeout: 15_000 }).toBe(111);
      await expect(entries.nth(100).textContent()).resolves.toContain('“move 10”');
      await expect(entries.last().textContent()).resolves.toMatch(/created at v1.*“move 0”/);
      await expect(section.getByRole('status').textContent()).resolves.toBe('All 111 entries shown.');
      await expect(page.getByRole('button', { name: 'Show older entries of long' }).count()).resolves.toBe(0);
    } finally {
      await target.call('DELETE', '/models/iris/aliases/long');
    }
  });

  it("shows a rollout's whole history since it started, past the first page", async () => {
    await moveMany('wave', 0);
    try {
      const started = await target.call('PUT', '/models/iris/aliases/wave/rollout', {
        version: 2,
        steps: [
          { weight: 10, bakeSeconds: 600 },
          { weight: 100, bakeSeconds: 0 },
        ],
        alarms: [],
      });
      expect(started.status, JSON.stringify(started.body)).toBe(201);
      expect((await target.call('POST', '/models/iris/aliases/wave/rollout/abort')).status).toBe(200);
      await moveMany('wave', 109); // and 110 more moves
      await open('#/models/iris/rollout/wave');
      const entries = page.locator('ol.timeline li');
      await entries.first().waitFor();
      await expect(entries.count()).resolves.toBe(112); // the rollout's split, its end, 110 moves
      await expect(entries.last().textContent()).resolves.toMatch(/v1.*canary v2 @ 10%/);
      await expect(page.locator('[data-history="truncated"]').count()).resolves.toBe(0);
    } finally {
      await target.call('DELETE', '/models/iris/aliases/wave');
    }
  });

  /** A model and an alias of the longest names, whose v2 has the longest description and long tags. */
  const LONG = { model: 'q'.repeat(64), alias: 'z'.repeat(64) };
  let long: Promise<void> | undefined;
  const registerLong = () => {
    long ??= (async () => {
      const bytes = buildIrisModel();
      for (const extra of [
        {},
        {
          description: `A description of few break points ${'x'.repeat(LIMITS.maxDescriptionLength)}`.slice(
            0,
            LIMITS.maxDescriptionLength,
          ),
          tags: { ['t'.repeat(100)]: 'v'.repeat(250) },
        },
      ]) {
        const up = await target.call('POST', `/models/${LONG.model}/uploads`, { sizeBytes: bytes.length });
        expect(up.status, JSON.stringify(up.body)).toBe(201);
        expect((await fetch(up.body.url, { method: 'PUT', body: bytes })).ok).toBe(true);
        const v = await target.call('POST', `/models/${LONG.model}/versions`, {
          uploadId: up.body.uploadId,
          ...extra,
        });
        expect(v.status, JSON.stringify(v.body)).toBeLessThan(300);
      }
      await expect
        .poll(async () => (await target.call('GET', `/models/${LONG.model}/versions/2`)).body.status)
        .toBe('READY');
      for (const [alias, version] of [
        ['prod', 1],
        [LONG.alias, 2],
      ] as const) {
        const moved = await target.call('PUT', `/models/${LONG.model}/aliases/${alias}`, { version });
        expect(moved.status, JSON.stringify(moved.body)).toBe(200);
      }
    })();
    return long;
  };
  /** The horizontal extent of the elements `selector` finds, and the page's width and the viewport's. */
  const extent = (selector: string) =>
    page.evaluate(`(() => {
      const boxes = [...document.querySelectorAll(${JSON.stringify(selector)})].map((e) => e.getBoundingClientRect());
      return {
        count: boxes.length,
        left: Math.min(...boxes.map((b) => b.left)),
        right: Math.max(...boxes.map((b) => b.right)),
        page: document.documentElement.scrollWidth,
        viewport: window.innerWidth,
      };
    })()`) as Promise<{ count: number; left: number; right: number; page: number; viewport: number }>;

  it("keeps every version's actions in view beside a 1024-character description", async () => {
    await registerLong();
    await open(`#/models/${LONG.model}`);
    await page.waitForSelector('tr[data-version="2"]');
    const actions = await extent('table.versions .row-actions button, table.versions .row-actions a');
    expect(actions.count).toBe(4); // Promote and Try of v1 and v2 (both aliased: no Archive)
    expect(actions.left).toBeGreaterThanOrEqual(0);
    expect(actions.right).toBeLessThanOrEqual(actions.viewport);
    expect(actions.page).toBeLessThanOrEqual(actions.viewport);
    // The description and tags wrap within a bounded column, the whole text kept in the page.
    const text = await extent('tr[data-version="2"] td:has(.free-text)');
    expect(text.right - text.left).toBeLessThan(2 * 400);
    await expect(page.locator('tr[data-version="2"]').textContent()).resolves.toContain('x'.repeat(900));
  });

  it('keeps the pages within the window with names of the longest length', async () => {
    await registerLong();
    try {
      await open('');
      await page.waitForSelector(`tr[data-model="${LONG.model}"]`);
      const models = await extent('table.models th, table.models td');
      expect(models.page).toBeLessThanOrEqual(models.viewport);
      expect(models.right).toBeLessThanOrEqual(models.viewport);

      await page.setViewportSize({ width: 800, height: 900 });
      await open(`#/models/${LONG.model}`);
      await page.waitForSelector('tr[data-version="2"]');
      const rollBack = await extent('table.aliases-table button');
      expect(rollBack.count).toBe(2);
      expect(rollBack.right).toBeLessThanOrEqual(rollBack.viewport);
      expect(rollBack.page).toBeLessThanOrEqual(rollBack.viewport);
      // The versions table scrolls within its box, its actions in view.
      const actions = await extent('table.versions .row-actions button');
      expect(actions.right).toBeLessThanOrEqual(actions.viewport);

      // A phone's width: the rollout page of an alias without a rollout (the command line naming it), Try it (the
      // alias among the options of the selector).
      await page.setViewportSize({ width: 420, height: 900 });
      await open(`#/models/${LONG.model}/rollout/${LONG.alias}`);
      await page.getByText('has never had a rollout').waitFor();
      const rollout = await extent('main p code');
      expect(rollout.count).toBe(1);
      expect(rollout.right).toBeLessThanOrEqual(rollout.viewport);
      expect(rollout.page).toBeLessThanOrEqual(rollout.viewport);
      await open(`#/models/${LONG.model}/try?ref=${LONG.alias}`);
      await page.locator('fieldset[data-input="features"]').waitFor();
      const select = await extent('#try-ref');
      expect(select.right).toBeLessThanOrEqual(select.viewport);
      expect(select.page).toBeLessThanOrEqual(select.viewport);
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
    }
  });

  it('aborts only the rollout the page shows: another one started meanwhile is refused (409), explained, and kept', async () => {
    const steps = [{ weight: 10, bakeSeconds: 600 }, { weight: 100 }];
    const shown = await target.call('PUT', '/models/iris/aliases/prod/rollout', { version: 2, steps });
    expect(shown.status, JSON.stringify(shown.body)).toBe(201);
    await open('#/models/iris/rollout/prod');
    await page.waitForSelector('.badge.rollout-running');
    await page.getByRole('button', { name: 'Abort', exact: true }).click();
    await expect(page.getByRole('dialog').textContent()).resolves.toContain(
      'It acts on this rollout only (v1 → v2',
    );
    // Another client aborts it and starts another (v1 → v2 again: v3 was archived above) while the dialog is open.
    expect((await target.call('POST', '/models/iris/aliases/prod/rollout/abort')).status).toBe(200);
    const other = await target.call('PUT', '/models/iris/aliases/prod/rollout', { version: 2, steps });
    expect(other.status, JSON.stringify(other.body)).toBe(201);
    expect(other.body.id).not.toBe(shown.body.id);
    await page.getByRole('dialog').getByRole('button', { name: 'Abort the rollout' }).click();
    const alert = page.locator('[role="alert"][data-code="ROLLOUT_NOT_ACTIVE"]');
    await alert.waitFor();
    const text = await alert.textContent();
    expect(text).toContain('HTTP 409');
    expect(text).toContain(`rollout ${shown.body.id} is not the rollout of alias 'prod'`);
    expect(text).toContain('This page was out of date');
    expect(text).toContain(`id: ${shown.body.id}`);
    const now = await target.call('GET', '/models/iris/aliases/prod/rollout');
    expect(now.body).toMatchObject({ id: other.body.id, status: 'running', revision: 1 });
    await page.getByRole('button', { name: 'Reload the rollout' }).click();
    await page.waitForSelector('.badge.rollout-running');
    expect((await target.call('POST', '/models/iris/aliases/prod/rollout/abort')).status).toBe(200);
  });
});
