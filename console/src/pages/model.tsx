/**
 * Model: its aliases (splits, rollouts), its versions (status, artifact, signature, lineage, evaluation), each
 * alias's history as a timeline, and the actions promote (conditional on the alias's version shown), rollback and
 * archive, each confirmed first.
 */
import { useState } from 'preact/hooks';
import type { TransformSpec } from '../../../functions/domain/derive';
import { rollbackTarget } from '../../../functions/domain/registry-plans';
import {
  ApiError,
  aliasHistoryAndMove,
  aliasHistoryPage,
  archiveVersion,
  getModel,
  getRollout,
  type HistoryEntry,
  listVersions,
  type Model,
  type ModelVersion,
  moveAlias,
  type Rollout,
  rollbackAlias,
} from '../api';
import {
  ConfirmDialog,
  ErrorBox,
  Loading,
  type Notice,
  NoticeView,
  StatusBadge,
  useAsync,
} from '../components';
import { ago, bytes, num, split, tensorType, time } from '../format';
import { href } from '../routes';

/** Everything the page shows, read together. */
interface ModelView {
  readonly model: Model;
  readonly versions: readonly ModelVersion[];
  readonly history: Readonly<Record<string, readonly HistoryEntry[]>>;
  /** Each alias's token of its history's next page, when there are older entries than those in `history`. */
  readonly older: Readonly<Record<string, string | undefined>>;
  /** Each alias's latest move (undefined: none within the API's reach), the one a rollback undoes. */
  readonly moves: Readonly<Record<string, HistoryEntry | undefined>>;
  readonly rollouts: Readonly<Record<string, Rollout | undefined>>;
}

async function loadModel(name: string): Promise<ModelView> {
  const [model, versions] = await Promise.all([getModel(name), listVersions(name)]);
  const aliases = Object.keys(model.aliases).sort();
  const [histories, rollouts] = await Promise.all([
    Promise.all(aliases.map((a) => aliasHistoryAndMove(name, a))),
    Promise.all(aliases.map((a) => getRollout(name, a))),
  ]);
  return {
    model,
    versions,
    history: Object.fromEntries(aliases.map((a, i) => [a, histories[i]?.history ?? []])),
    older: Object.fromEntries(aliases.map((a, i) => [a, histories[i]?.nextToken])),
    moves: Object.fromEntries(aliases.map((a, i) => [a, histories[i]?.latestMove])),
    rollouts: Object.fromEntries(aliases.map((a, i) => [a, rollouts[i]])),
  };
}

/** The dialog open, if any. */
type Dialog =
  | { kind: 'promote'; version: number }
  /**
   * `from`: the version the page shows the alias at, and `revision`, the alias's revision its newest history
   * entry shows (absent on entries older than revisions in history): the rollback's preconditions.
   */
  | { kind: 'rollback'; alias: string; from: number; revision?: number; target: number | null }
  | { kind: 'archive'; version: number };

const transformText = (t: TransformSpec): string => {
  if ('quantize' in t) {
    const opts = [t.reduceRange ? 'reduceRange' : '', t.perChannel ? 'perChannel' : ''].filter(Boolean);
    return `quantize ${t.quantize}${opts.length ? ` (${opts.join(', ')})` : ''}`;
  }
  if ('optimize' in t) return `optimize ${t.optimize}`;
  return `preprocess ${Object.keys(t.preprocess).join(', ')}`;
};

function Lineage(props: { v: ModelVersion }) {
  const { v } = props;
  if (v.derivedFrom === undefined) return <span class="muted">registered</span>;
  const e = v.evaluation;
  return (
    <div class="lineage">
      <div>
        from v{v.derivedFrom}
        {v.transforms?.length ? `: ${v.transforms.map(transformText).join(' → ')}` : ''}
      </div>
      {e ? (
        <div class={e.passed ? 'gate-pass' : 'gate-fail'}>
          gate {e.passed ? 'passed' : 'failed'}: agreement {num(e.argmaxAgreement)} (min{' '}
          {num(e.thresholds.minAgreement)}) on {e.rows} {e.source} rows
        </div>
      ) : (
        <div class="muted">gate pending</div>
      )}
    </div>
  );
}

function Signature(props: { v: ModelVersion }) {
  const s = props.v.signature;
  if (!s.inputs.length && !s.outputs.length) return <span class="muted">–</span>;
  return (
    <span class="signature">
      {s.inputs.map((t) => `${t.name}:${tensorType(t)}`).join(', ')} →{' '}
      {s.outputs.map((t) => `${t.name}:${tensorType(t)}`).join(', ')}
    </span>
  );
}

function historyLine(e: HistoryEntry): string {
  if (e.version === null) return `removed (was v${e.previousVersion})`;
  if (e.previousVersion === null) return `created at v${e.version}`;
  if (e.previousVersion === e.version) return `v${e.version}, split changed`;
  return `v${e.previousVersion} → v${e.version}`;
}

/** Entries read after a first page, and the token of the page after them. */
interface OlderEntries {
  /** The first page they follow: a new first page (the model read again) starts over. */
  readonly after: readonly HistoryEntry[];
  readonly entries: readonly HistoryEntry[];
  readonly nextToken?: string;
}

/** The moves of one alias, newest first: the first page, and older pages on demand. */
function Timeline(props: {
  model: string;
  alias: string;
  entries: readonly HistoryEntry[];
  nextToken: string | undefined;
}) {
  const [read, setRead] = useState<OlderEntries | undefined>();
  const [reading, setReading] = useState(false);
  const [error, setError] = useState<unknown>();
  const older = read?.after === props.entries ? read : undefined;
  const entries = older ? [...props.entries, ...older.entries] : props.entries;
  const nextToken = older ? older.nextToken : props.nextToken;
  const showOlder = async () => {
    if (!nextToken) return;
    setReading(true);
    setError(undefined);
    try {
      const page = await aliasHistoryPage(props.model, props.alias, nextToken);
      setRead({
        after: props.entries,
        entries: [...(older?.entries ?? []), ...page.items],
        ...(page.nextToken ? { nextToken: page.nextToken } : {}),
      });
    } catch (e) {
      setError(e);
    } finally {
      setReading(false);
    }
  };
  return (
    <section class="timeline-section" aria-labelledby={`history-${props.alias}`}>
      <h3 id={`history-${props.alias}`}>
        <span class="alias">{props.alias}</span> history
      </h3>
      {entries.length === 0 ? <p class="muted">No moves recorded.</p> : null}
      <ol class="timeline" data-alias={props.alias}>
        {entries.map((e, i) => (
          <li key={`${e.at}-${i}`}>
            <time dateTime={e.at} title={ago(e.at)}>
              {time(e.at)}
            </time>
            <span class="move">{historyLine(e)}</span>
            {e.routing ? <span class="split">{split(e.routing) || 'no split'}</span> : null}
            <span class="who">by {e.actor}</span>
            {e.reason ? <span class="reason">“{e.reason}”</span> : null}
          </li>
        ))}
      </ol>
      {nextToken ? (
        <p class="history-more">
          <span class="muted" role="status">
            Showing the newest {entries.length} entries.
          </span>{' '}
          <button
            type="button"
            class="secondary small"
            disabled={reading}
            aria-label={`Show older entries of ${props.alias}`}
            onClick={() => void showOlder()}
          >
            Show older
          </button>
        </p>
      ) : older ? (
        <p class="muted" role="status">
          All {entries.length} entries shown.
        </p>
      ) : null}
      {error ? <ErrorBox error={error} title="Older entries could not be read" /> : null}
    </section>
  );
}

export function ModelPage(props: { name: string }) {
  const view = useAsync(() => loadModel(props.name), [props.name]);
  const [dialog, setDialog] = useState<Dialog | undefined>();
  const [notice, setNotice] = useState<Notice | undefined>();
  const [busy, setBusy] = useState(false);
  const [alias, setAlias] = useState('prod');
  const [reason, setReason] = useState('');

  const data = view.data;
  /** Runs an action, then shows what it did and reads the model again. */
  const act = async <T,>(
    what: () => Promise<T>,
    ok: string | ((result: T) => string),
    explain?: (e: unknown) => Notice['explain'],
  ) => {
    setDialog(undefined);
    setBusy(true);
    try {
      const result = await what();
      setNotice({ ok: typeof ok === 'string' ? ok : ok(result) });
    } catch (error) {
      setNotice({ error, explain: explain?.(error) });
    } finally {
      setBusy(false);
      view.reload();
    }
  };

  if (!data) {
    return (
      <section>
        <h1 tabIndex={-1}>{props.name}</h1>
        {view.error ? <ErrorBox error={view.error} title={`Model ${props.name} could not be read`} /> : null}
        {!view.error ? <Loading what={`model ${props.name}`} /> : null}
        <p>
          <a href={href.models()}>Back to the models</a>
        </p>
      </section>
    );
  }

  const { model, versions, history, older, moves, rollouts } = data;
  const aliases = Object.entries(model.aliases).sort(([a], [b]) => a.localeCompare(b));
  const aliasedVersions = new Set<number>([
    ...Object.values(model.aliases),
    ...Object.values(model.splits ?? {}).flatMap((r) => [
      ...(r.canary ? [r.canary.version] : []),
      ...(r.shadow ? [r.shadow.version] : []),
    ]),
  ]);

  const promote = (version: number) => {
    setAlias(model.aliases.prod !== undefined || aliases.length === 0 ? 'prod' : (aliases[0]?.[0] ?? 'prod'));
    setReason('');
    setDialog({ kind: 'promote', version });
  };

  return (
    <section aria-labelledby="model-title">
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href={href.models()}>Models</a> / <span aria-current="page">{model.name}</span>
      </nav>
      <div class="page-head">
        <h1 id="model-title" tabIndex={-1}>
          {model.name}
        </h1>
        <a class="button" href={href.try(model.name)}>
          Try it
        </a>
        <button type="button" class="secondary" onClick={view.reload} disabled={view.loading}>
          Refresh
        </button>
      </div>
      {model.description ? <p>{model.description}</p> : null}
      <p class="muted">
        Created {time(model.createdAt)}, updated {time(model.updatedAt)}, latest version v
        {model.latestVersion}.
      </p>
      {view.error ? <ErrorBox error={view.error} title="The model could not be read again" /> : null}
      <div aria-live="polite">
        {busy ? <p role="status">Working…</p> : null}
        <NoticeView notice={notice} onDismiss={() => setNotice(undefined)} />
      </div>

      <h2>Aliases</h2>
      {aliases.length === 0 ? <p class="muted">No alias: promote a READY version to create one.</p> : null}
      {aliases.length ? (
        <table class="aliases-table">
          <thead>
            <tr>
              <th scope="col">Alias</th>
              <th scope="col">Version</th>
              <th scope="col">Traffic split</th>
              <th scope="col">Rollout</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {aliases.map(([a, v]) => {
              const r = rollouts[a];
              // The move a rollback undoes: the newest that moved the alias (split changes are none), as the API finds it.
              const target = rollbackTarget(moves[a]);
              return (
                <tr key={a} data-alias={a}>
                  <th scope="row">
                    <span class="alias">{a}</span>
                  </th>
                  <td class="alias-version">v{v}</td>
                  <td>{split(model.splits?.[a]) || <span class="muted">none</span>}</td>
                  <td>
                    {r ? (
                      <a href={href.rollout(model.name, a)}>
                        {r.status} v{r.fromVersion} → v{r.version}
                        {r.status === 'running' || r.status === 'paused' ? ` at ${r.weight ?? '?'}%` : ''}
                      </a>
                    ) : (
                      <span class="muted">none</span>
                    )}
                  </td>
                  <td>
                    <button
                      type="button"
                      class="secondary"
                      disabled={busy}
                      aria-label={`Roll back ${a}`}
                      onClick={() => {
                        const revision = history[a]?.[0]?.revision;
                        setDialog({
                          kind: 'rollback',
                          alias: a,
                          from: v,
                          ...(revision !== undefined ? { revision } : {}),
                          target: target ?? null,
                        });
                      }}
                    >
                      Roll back
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : null}

      <h2>Versions</h2>
      {versions.length === 0 ? (
        <p class="muted" data-empty="versions">
          No version: every version of this model was deleted. Register one to serve it again.
        </p>
      ) : null}
      <div class="table-scroll">
        <table class="versions">
          <thead>
            <tr>
              <th scope="col">Version</th>
              <th scope="col">Status</th>
              <th scope="col">SHA-256</th>
              <th scope="col">Size</th>
              <th scope="col">Signature</th>
              <th scope="col">Description</th>
              <th scope="col">Tags</th>
              <th scope="col">Lineage</th>
              <th scope="col">Created</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {versions.map((v) => {
              const onAliases = aliases.filter(([, av]) => av === v.version).map(([a]) => a);
              return (
                <tr key={v.version} data-version={v.version}>
                  <th scope="row">
                    v{v.version}
                    {onAliases.map((a) => (
                      <span key={a} class="alias chip">
                        {a}
                      </span>
                    ))}
                  </th>
                  <td>
                    <StatusBadge status={v.status} />
                    {v.failureReason ? <div class="small">{v.failureReason}</div> : null}
                  </td>
                  <td>
                    <code title={v.sha256}>{v.sha256 ? v.sha256.slice(0, 12) : '–'}</code>
                  </td>
                  <td class="nowrap">{bytes(v.sizeBytes)}</td>
                  <td>
                    <Signature v={v} />
                    {v.labels?.length ? <div class="small muted">labels: {v.labels.join(', ')}</div> : null}
                    {v.postprocess ? (
                      <div class="small muted">postprocess: {JSON.stringify(v.postprocess)}</div>
                    ) : null}
                  </td>
                  <td>
                    {v.description ? (
                      <div class="free-text clamp" title={v.description}>
                        {v.description}
                      </div>
                    ) : (
                      <span class="muted">–</span>
                    )}
                  </td>
                  <td>
                    {v.tags && Object.keys(v.tags).length ? (
                      <ul class="tags free-text">
                        {Object.entries(v.tags).map(([k, val]) => (
                          <li key={k} class="clamp" title={`${k}=${val}`}>
                            {k}={val}
                          </li>
                        ))}
                      </ul>
                    ) : (
                      <span class="muted">–</span>
                    )}
                  </td>
                  <td>
                    <Lineage v={v} />
                  </td>
                  <td>
                    <time dateTime={v.createdAt}>{time(v.createdAt)}</time>
                    {v.createdBy ? <div class="small muted">by {v.createdBy}</div> : null}
                  </td>
                  <td class="row-actions">
                    {v.status === 'READY' ? (
                      <>
                        <button
                          type="button"
                          disabled={busy}
                          aria-label={`Promote version ${v.version}`}
                          onClick={() => promote(v.version)}
                        >
                          Promote…
                        </button>
                        <a class="button secondary" href={href.try(model.name, String(v.version))}>
                          Try
                        </a>
                        {!aliasedVersions.has(v.version) ? (
                          <button
                            type="button"
                            class="secondary"
                            disabled={busy}
                            aria-label={`Archive version ${v.version}`}
                            onClick={() => setDialog({ kind: 'archive', version: v.version })}
                          >
                            Archive
                          </button>
                        ) : null}
                      </>
                    ) : null}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>

      <h2>Alias history</h2>
      {aliases.length === 0 ? <p class="muted">No alias yet.</p> : null}
      {aliases.map(([a]) => (
        <Timeline key={a} model={model.name} alias={a} entries={history[a] ?? []} nextToken={older[a]} />
      ))}

      {dialog?.kind === 'promote' ? (
        <PromoteDialog
          model={model}
          version={dialog.version}
          alias={alias}
          reason={reason}
          setAlias={setAlias}
          setReason={setReason}
          onCancel={() => setDialog(undefined)}
          onConfirm={() => {
            const a = alias.trim();
            const expected = model.aliases[a] ?? 0;
            void act(
              () => moveAlias(model.name, a, dialog.version, expected, reason.trim() || undefined),
              `${a} now points at v${dialog.version}.`,
              (e) => staleExplanation(e, a, expected, `the promotion to v${dialog.version}`, view.reload),
            );
          }}
        />
      ) : null}
      {dialog?.kind === 'rollback' ? (
        <ConfirmDialog
          title={`Roll back ${dialog.alias}?`}
          confirmLabel={`Roll back ${dialog.alias}`}
          danger
          onCancel={() => setDialog(undefined)}
          onConfirm={() =>
            void act(
              () =>
                rollbackAlias(model.name, dialog.alias, { version: dialog.from, revision: dialog.revision }),
              (moved) => `${dialog.alias} was rolled back to v${moved.version}.`,
              (e) =>
                staleExplanation(
                  e,
                  dialog.alias,
                  dialog.from,
                  dialog.target !== null ? `the rollback to v${dialog.target}` : 'the rollback',
                  view.reload,
                  dialog.revision,
                ),
            )
          }
        >
          <p>
            <span class="alias">{dialog.alias}</span> points at v{dialog.from}.{' '}
            {dialog.target !== null
              ? `Its last move came from v${dialog.target}: rolling back points it at v${dialog.target} again.`
              : 'Its last move created it (or its history shows no move): there is nothing to roll back to, and the API will say so.'}
          </p>
          <p class="muted small">
            The rollback only happens if <span class="alias">{dialog.alias}</span> still points at v
            {dialog.from} when it arrives: if it was moved since, nothing changes.
          </p>
        </ConfirmDialog>
      ) : null}
      {dialog?.kind === 'archive' ? (
        <ConfirmDialog
          title={`Archive v${dialog.version}?`}
          confirmLabel={`Archive v${dialog.version}`}
          danger
          onCancel={() => setDialog(undefined)}
          onConfirm={() =>
            void act(() => archiveVersion(model.name, dialog.version), `v${dialog.version} is archived.`)
          }
        >
          <p>
            An archived version can no longer be aliased or served by an alias. Its number and artifact stay;
            the status cannot be set back to READY.
          </p>
        </ConfirmDialog>
      ) : null}
    </section>
  );
}

/**
 * What a refused promotion or rollback (`action`, e.g. `the promotion to v3`) means: a 412 when the alias moved
 * after the page read it (for a rollback sent with the alias's `revision`, also when it moved away and back).
 */
function staleExplanation(
  error: unknown,
  alias: string,
  expected: number,
  action: string,
  reload: () => void,
  revision?: number,
) {
  if (!(error instanceof ApiError) || error.status !== 412) return undefined;
  return (
    <div class="explain" data-explain="stale">
      <p>
        <strong>This page was out of date.</strong> It showed <span class="alias">{alias}</span>{' '}
        {expected === 0 ? 'as not existing' : `at v${expected}`}, and {action} was sent on the condition that
        it still {expected === 0 ? 'did not exist' : `pointed there`}
        {revision !== undefined ? ' and had not changed since' : ''} (<code>expectedVersion: {expected}</code>
        {revision !== undefined ? (
          <>
            , <code>expectedRevision: {revision}</code>
          </>
        ) : null}
        ). Someone or something moved it since, so nothing was changed.
      </p>
      <p>Reload to see where it points now, then decide again.</p>
      <button type="button" onClick={reload}>
        Reload the model
      </button>
    </div>
  );
}

function PromoteDialog(props: {
  model: Model;
  version: number;
  alias: string;
  reason: string;
  setAlias(a: string): void;
  setReason(r: string): void;
  onCancel(): void;
  onConfirm(): void;
}) {
  const a = props.alias.trim();
  const current = props.model.aliases[a];
  return (
    <ConfirmDialog
      title={`Promote v${props.version}?`}
      confirmLabel={`Point ${a || 'the alias'} at v${props.version}`}
      onCancel={props.onCancel}
      onConfirm={props.onConfirm}
    >
      <div class="field">
        <label for="promote-alias">Alias</label>
        <input
          id="promote-alias"
          list="promote-aliases"
          value={props.alias}
          required
          pattern="[a-z0-9][a-z0-9_.\-]{0,63}"
          autoComplete="off"
          onInput={(e) => props.setAlias((e.target as HTMLInputElement).value)}
        />
        <datalist id="promote-aliases">
          {Object.keys(props.model.aliases).map((x) => (
            <option key={x} value={x} />
          ))}
        </datalist>
      </div>
      <div class="field">
        <label for="promote-reason">Reason (kept in the alias history)</label>
        <input
          id="promote-reason"
          value={props.reason}
          autoComplete="off"
          onInput={(e) => props.setReason((e.target as HTMLInputElement).value)}
        />
      </div>
      <p class="promote-summary">
        {current === undefined
          ? `${a || 'The alias'} does not exist yet: it is created at v${props.version}, only if nobody creates it first.`
          : current === props.version
            ? `${a} already points at v${props.version}.`
            : `${a} points at v${current} on this page. It moves to v${props.version} only if it still points at v${current}.`}
      </p>
    </ConfirmDialog>
  );
}
