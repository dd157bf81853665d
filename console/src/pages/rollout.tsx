/**
 * Rollout: an alias's current or last staged rollout — its steps, current weight, shadow comparisons and the
 * alias's history since it started — with pause, resume and abort, each confirmed first.
 */
import { useState } from 'preact/hooks';
import { aliasNotFound } from '../../../functions/domain/registry-plans';
import { ApiError, aliasHistory, getModel, getRollout, type Rollout, rolloutAction } from '../api';
import { ConfirmDialog, ErrorBox, Loading, type Notice, NoticeView, useAsync } from '../components';
import { ago, num, split, time } from '../format';
import { href } from '../routes';

type Action = 'pause' | 'resume' | 'abort';

const ACTIONS: Record<Action, { label: string; what: string; danger: boolean }> = {
  pause: {
    label: 'Pause',
    what: 'holds the current weight: no further step until it is resumed',
    danger: false,
  },
  resume: { label: 'Resume', what: 'goes on with the current step’s remaining bake time', danger: false },
  abort: {
    label: 'Abort',
    what: 'clears the split: all traffic goes back to the stable version, and the rollout ends',
    danger: true,
  },
};

const seconds = (s: number): string =>
  s === 0 ? 'no bake' : s % 3600 === 0 ? `${s / 3600} h` : s % 60 === 0 ? `${s / 60} min` : `${s} s`;

/**
 * The rollout, and the alias's history back to its start (at most `HISTORY_PAGES` pages of it). Without a rollout
 * (the API says so of any model and alias, even ones that do not exist), the model is read: an unknown model is its
 * 404 `MODEL_NOT_FOUND`, an alias it does not have the 404 `ALIAS_NOT_FOUND` the API answers for one.
 */
async function load(name: string, alias: string) {
  const rollout = await getRollout(name, alias);
  if (!rollout) {
    const model = await getModel(name);
    if (model.aliases[alias] === undefined) {
      const e = aliasNotFound(name, alias);
      throw new ApiError(e.status, e.code, e.message);
    }
    return { rollout, history: undefined };
  }
  return { rollout, history: await aliasHistory(name, alias, rollout.startedAt) };
}

function Steps(props: { r: Rollout }) {
  const { r } = props;
  const active = r.status === 'running' || r.status === 'paused';
  return (
    <table class="steps">
      <caption>Steps</caption>
      <thead>
        <tr>
          <th scope="col">Step</th>
          <th scope="col">Canary weight</th>
          <th scope="col">Bake</th>
          <th scope="col">State</th>
        </tr>
      </thead>
      <tbody>
        {r.steps.map((s, i) => {
          const state =
            r.status === 'completed' || i < r.step
              ? 'done'
              : i === r.step
                ? r.status
                : active
                  ? 'pending'
                  : 'not reached';
          return (
            <tr key={i} aria-current={active && i === r.step ? 'step' : undefined} class={`step-${state}`}>
              <th scope="row">{i + 1}</th>
              <td>{s.weight}%</td>
              <td>{seconds(s.bakeSeconds)}</td>
              <td>{state}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

export function RolloutPage(props: { name: string; alias: string }) {
  const data = useAsync(() => load(props.name, props.alias), [props.name, props.alias]);
  /** The action asked, and the rollout the page showed when it was: the only one it acts on. */
  const [dialog, setDialog] = useState<{ action: Action; rollout: Rollout } | undefined>();
  const [notice, setNotice] = useState<Notice | undefined>();
  const [busy, setBusy] = useState(false);
  const { name, alias } = props;

  const run = async (action: Action, shown: Rollout) => {
    setDialog(undefined);
    setBusy(true);
    try {
      const r = await rolloutAction(name, alias, action, shown.id);
      setNotice({ ok: `The rollout is ${r.status}.` });
    } catch (error) {
      setNotice({ error, explain: staleExplanation(error, action, shown, data.reload) });
    } finally {
      setBusy(false);
      data.reload();
    }
  };

  const r = data.data?.rollout;
  const d = r?.divergence;
  const history = data.data?.history;
  const since = r ? (history?.entries ?? []).filter((e) => e.at >= r.startedAt) : [];
  return (
    <section aria-labelledby="rollout-title">
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href={href.models()}>Models</a> / <a href={href.model(name)}>{name}</a> /{' '}
        <span aria-current="page">Rollout on {alias}</span>
      </nav>
      <div class="page-head">
        <h1 id="rollout-title" tabIndex={-1}>
          Rollout of {name} on <span class="alias">{alias}</span>
        </h1>
        <button type="button" class="secondary" onClick={data.reload} disabled={data.loading}>
          Refresh
        </button>
      </div>
      {data.error ? <ErrorBox error={data.error} title="The rollout could not be read" /> : null}
      {!data.data && !data.error ? <Loading what="the rollout" /> : null}
      <div aria-live="polite">
        {busy ? <p role="status">Working…</p> : null}
        <NoticeView notice={notice} onDismiss={() => setNotice(undefined)} />
      </div>
      {data.data && !r ? (
        <p>
          <span class="alias">{alias}</span> has never had a rollout. Start one with{' '}
          <code>
            maas rollout {name} &lt;version&gt; --alias {alias} --steps 10:5m,50:10m,100
          </code>
          .
        </p>
      ) : null}
      {r ? (
        <>
          <dl class="facts">
            <dt>Status</dt>
            <dd>
              <span class={`badge rollout-${r.status}`}>{r.status}</span>
              {r.endedReason ? ` (${r.endedReason})` : ''}
            </dd>
            <dt>Versions</dt>
            <dd>
              v{r.fromVersion} → v{r.version}
            </dd>
            <dt>Current weight</dt>
            <dd class="weight">
              {r.status === 'running' || r.status === 'paused'
                ? `${r.weight ?? '–'}% (step ${Math.min(r.step + 1, r.steps.length)} of ${r.steps.length})`
                : `– (${r.status}: the split is no longer the rollout's)`}
            </dd>
            {r.nextStepAt ? (
              <>
                <dt>Next step</dt>
                <dd>
                  {time(r.nextStepAt)} ({ago(r.nextStepAt)})
                </dd>
              </>
            ) : null}
            <dt>Alarms</dt>
            <dd>{r.alarms.length ? r.alarms.join(', ') : 'none'}</dd>
            {r.maxDivergence ? (
              <>
                <dt>Divergence bounds</dt>
                <dd>{JSON.stringify(r.maxDivergence)}</dd>
              </>
            ) : null}
            {d && d.requests > 0 ? (
              <>
                <dt>Shadow comparisons</dt>
                <dd>
                  {d.requests} requests, {d.rows} rows, agreement{' '}
                  {d.rows ? num(d.agreeingRows / d.rows) : '–'}, {d.shadowErrors} errors, {d.overMaxAbs} over
                  maxAbs, {d.overKl} over KL
                </dd>
              </>
            ) : null}
            <dt>Started</dt>
            <dd>
              {time(r.startedAt)} by {r.actor}
            </dd>
            {r.pausedAt ? (
              <>
                <dt>Paused</dt>
                <dd>{time(r.pausedAt)}</dd>
              </>
            ) : null}
            {r.endedAt ? (
              <>
                <dt>Ended</dt>
                <dd>{time(r.endedAt)}</dd>
              </>
            ) : null}
          </dl>
          <div class="actions">
            {r.status === 'running' ? (
              <button
                type="button"
                disabled={busy}
                onClick={() => setDialog({ action: 'pause', rollout: r })}
              >
                Pause
              </button>
            ) : null}
            {r.status === 'paused' ? (
              <button
                type="button"
                disabled={busy}
                onClick={() => setDialog({ action: 'resume', rollout: r })}
              >
                Resume
              </button>
            ) : null}
            {r.status === 'running' || r.status === 'paused' ? (
              <button
                type="button"
                class="danger"
                disabled={busy}
                onClick={() => setDialog({ action: 'abort', rollout: r })}
              >
                Abort
              </button>
            ) : null}
          </div>
          <Steps r={r} />
          <h2>History since it started</h2>
          {history && !history.complete ? (
            <p class="muted" role="status" data-history="truncated">
              Only the newest {history.entries.length} entries of the alias's history are read: older ones
              since the rollout started are not shown.
            </p>
          ) : null}
          <ol class="timeline">
            {since.map((e, i) => (
              <li key={`${e.at}-${i}`}>
                <time dateTime={e.at}>{time(e.at)}</time>
                <span class="move">
                  {e.previousVersion === e.version
                    ? `v${e.version}`
                    : `v${e.previousVersion} → v${e.version}`}
                </span>
                <span class="split">{split(e.routing) || 'no split'}</span>
                <span class="who">by {e.actor}</span>
                {e.reason ? <span class="reason">“{e.reason}”</span> : null}
              </li>
            ))}
          </ol>
        </>
      ) : null}
      {dialog ? (
        <ConfirmDialog
          title={`${ACTIONS[dialog.action].label} the rollout?`}
          confirmLabel={`${ACTIONS[dialog.action].label} the rollout`}
          danger={ACTIONS[dialog.action].danger}
          onCancel={() => setDialog(undefined)}
          onConfirm={() => void run(dialog.action, dialog.rollout)}
        >
          <p>
            {ACTIONS[dialog.action].label} {ACTIONS[dialog.action].what}.
          </p>
          <p class="muted small">
            It acts on this rollout only (v{dialog.rollout.fromVersion} → v{dialog.rollout.version}, started{' '}
            {time(dialog.rollout.startedAt)}): if another has taken its place, nothing changes.
          </p>
        </ConfirmDialog>
      ) : null}
    </section>
  );
}

/**
 * What a refused action means: a 409 `ROLLOUT_NOT_ACTIVE` when the rollout changed or ended after the page read it
 * (another one may have started in its place).
 */
function staleExplanation(error: unknown, action: Action, shown: Rollout, reload: () => void) {
  if (!(error instanceof ApiError) || error.code !== 'ROLLOUT_NOT_ACTIVE') return undefined;
  return (
    <div class="explain" data-explain="stale">
      <p>
        <strong>This page was out of date.</strong> It showed the rollout of v{shown.fromVersion} → v
        {shown.version} {shown.status}, and the request to {action} it was sent for that rollout only (
        <code>id: {shown.id}</code>). It has changed or ended since, or another rollout took its place, so
        nothing was changed.
      </p>
      <p>Reload to see the alias's rollout now, then decide again.</p>
      <button type="button" onClick={reload}>
        Reload the rollout
      </button>
    </div>
  );
}
