/**
 * Try it: a form made from the version's inputs (a row of numbers per line for a `[-1, k]` input, JSON
 * otherwise, or the whole request as JSON) that calls `/infer` and shows the outputs with the version's labels
 * and post-processing, beside the equivalent `curl` and `maas predict` commands.
 */
import { useEffect, useMemo, useState } from 'preact/hooks';
import {
  type ConsoleConfig,
  getModel,
  getVersion,
  type InferAnswer,
  infer,
  listVersions,
  type ModelMetadata,
  type ModelVersion,
  modelMetadata,
  path,
  type Tensor,
} from '../api';
import { Command, ErrorBox, Loading, useAsync } from '../components';
import { num, shellQuote, tensorType } from '../format';
import { href } from '../routes';
import { flatten, isNumeric, nest, rowWidth } from '../tensors';

type InputSpec = ModelMetadata['inputs'][number];

/** What the page needs to build the form: the model's refs and the chosen one's metadata and version. */
async function loadTarget(name: string, ref: string | undefined) {
  const [model, versions] = await Promise.all([getModel(name), listVersions(name)]);
  const ready = versions.filter((v) => v.status === 'READY');
  const chosen =
    ref ?? (model.aliases.prod !== undefined ? 'prod' : ready[0] ? String(ready[0].version) : undefined);
  if (chosen === undefined) return { model, ready, ref: undefined, meta: undefined, version: undefined };
  const number = /^\d+$/.test(chosen) ? Number(chosen) : model.aliases[chosen];
  const [meta, version] = await Promise.all([
    modelMetadata(name, chosen),
    number !== undefined ? getVersion(name, number) : Promise.resolve(undefined),
  ]);
  return { model, ready, ref: chosen, meta, version };
}

/**
 * The labels of the version that answered: those of `shown` (the version the chosen ref points at) when it is that
 * one, else read (a canary's answer comes from another version, labelled otherwise); none when they cannot be read.
 */
async function labelsOf(
  name: string,
  answer: InferAnswer,
  shown: ModelVersion | undefined,
): Promise<readonly string[] | undefined> {
  const answered = Number(answer.model_version);
  if (shown && shown.version === answered) return shown.labels;
  if (!Number.isSafeInteger(answered) || answered < 1) return undefined;
  return getVersion(name, answered).then(
    (v) => v.labels,
    () => undefined,
  );
}

/** The request body from the form's cells (per grid input) or JSON texts; throws with what to fix. */
function buildRequest(
  inputs: readonly InputSpec[],
  cells: Readonly<Record<string, string[][]>>,
  texts: Readonly<Record<string, string>>,
): { inputs: Tensor[] } {
  return {
    inputs: inputs.map((spec) => {
      const width = isNumeric(spec.datatype) ? rowWidth(spec.shape) : undefined;
      if (width !== undefined) {
        const rows = cells[spec.name] ?? [];
        const data = rows.flatMap((row, r) =>
          row.map((cell, c) => {
            const t = cell.trim();
            if (t === '') throw new Error(`${spec.name}: row ${r + 1}, column ${c + 1} is empty`);
            const v = Number(t);
            if (!Number.isFinite(v))
              throw new Error(`${spec.name}: row ${r + 1}, column ${c + 1} is not a number`);
            return v;
          }),
        );
        return { name: spec.name, datatype: spec.datatype, shape: [rows.length, width], data };
      }
      let value: unknown;
      try {
        value = JSON.parse(texts[spec.name] ?? '');
      } catch {
        throw new Error(`${spec.name}: the data is not JSON (nested rows, e.g. [[1, 2], [3, 4]])`);
      }
      const { shape, data } = flatten(value);
      return { name: spec.name, datatype: spec.datatype, shape, data };
    }),
  };
}

/** The `curl` command of a request. */
export function curlCommand(config: ConsoleConfig, url: string, body: unknown): string {
  const lines = [`curl -s ${shellQuote(`${config.endpoint}${url}`)}`];
  if (config.auth === 'sigv4') {
    lines.push(`--aws-sigv4 ${shellQuote(`aws:amz:${config.region ?? '$AWS_REGION'}:execute-api`)}`);
    lines.push('--user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"');
    // With temporary credentials only: curl would sign an empty header that it then does not send. Two
    // expansions, one word each: zsh does not split the words of one expansion (`-H` and the header) as bash does.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion.
    lines.push('${AWS_SESSION_TOKEN:+-H} ${AWS_SESSION_TOKEN:+"x-amz-security-token: $AWS_SESSION_TOKEN"}');
  } else if (config.auth === 'bearer') {
    lines.push('-H "authorization: Bearer $MAAS_TOKEN"');
  }
  lines.push("-H 'content-type: application/json'");
  lines.push(`-d ${shellQuote(JSON.stringify(body))}`);
  return lines.join(' \\\n  ');
}

/**
 * The `maas predict` command of a request: rows for a one-input request that says nothing else (no `id`,
 * `parameters`, `outputs`), else the whole request, which `maas predict` sends as it is.
 */
export function predictCommand(config: ConsoleConfig, model: string, ref: string, body: unknown) {
  const request = body !== null && typeof body === 'object' ? (body as { inputs?: unknown }) : undefined;
  const inputs = request?.inputs;
  const only =
    Array.isArray(inputs) && inputs.length === 1 ? (inputs[0] as Partial<Tensor> | null) : undefined;
  const rows =
    request !== undefined &&
    Object.keys(request).every((k) => k === 'inputs') &&
    only !== undefined &&
    only !== null &&
    Array.isArray(only.data) &&
    Array.isArray(only.shape) &&
    // Rows only when the flat data fills the shape (dimensions of 1 or more: nesting is bounded by the data).
    only.shape.every((d) => Number.isSafeInteger(d) && d >= 1) &&
    only.shape.reduce((n, d) => n * d, 1) === only.data.length &&
    Object.keys(only).every((k) => ['name', 'datatype', 'shape', 'data'].includes(k))
      ? nest(only.data, only.shape)
      : undefined;
  const input = rows ?? body;
  const globals = [`--endpoint ${shellQuote(config.endpoint)}`];
  if (config.auth === 'bearer') globals.push('--token "$MAAS_TOKEN"');
  if (config.auth === 'sigv4' && config.region) globals.push(`--region ${config.region}`);
  return `npx maas ${globals.join(' ')} predict ${shellQuote(`${model}@${ref}`)} --input ${shellQuote(JSON.stringify(input))}`;
}

/**
 * The rows of a 2-D output as a table, its columns named by the labels (of the version that answered) when there are
 * as many.
 */
function OutputTable(props: { tensor: Tensor; labels?: readonly string[] | undefined }) {
  const t = props.tensor;
  const width = t.shape.length === 2 ? (t.shape[1] as number) : undefined;
  const rows = t.shape[0] ?? 1;
  if (width === undefined || t.shape.length !== 2) {
    return (
      <pre class="output-data">
        <code>{JSON.stringify(nest(t.data, t.shape))}</code>
      </pre>
    );
  }
  const labels = props.labels && props.labels.length === width ? props.labels : undefined;
  return (
    <table class="output">
      <thead>
        <tr>
          <th scope="col">Row</th>
          {Array.from({ length: width }, (_, c) => (
            <th key={c} scope="col">
              {labels ? labels[c] : c}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {Array.from({ length: rows }, (_, r) => (
          <tr key={r}>
            <th scope="row">{r + 1}</th>
            {Array.from({ length: width }, (_, c) => (
              <td key={c}>{num(t.data[r * width + c])}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Answer(props: { answer: InferAnswer; labels?: readonly string[] | undefined }) {
  const { answer } = props;
  const label = answer.outputs.find((o) => o.name === 'label' && o.datatype === 'BYTES');
  const argmax = answer.outputs.find((o) => o.name === 'argmax');
  const decision = label ?? argmax;
  return (
    <section class="answer" aria-labelledby="answer-title">
      <h2 id="answer-title">Answer</h2>
      <p class="muted">
        {answer.model_name} v{answer.model_version}
        {answer.id ? ` · inference id ${answer.id}` : ''}
      </p>
      {decision ? (
        <ol class="prediction" aria-label="Prediction per row">
          {decision.data.map((d, i) => (
            <li key={i} data-row={i}>
              <span class="muted">row {i + 1}:</span> <strong class="predicted">{String(d)}</strong>
              {label && argmax ? <span class="muted"> (class {String(argmax.data[i])})</span> : null}
            </li>
          ))}
        </ol>
      ) : null}
      {answer.outputs.map((o) => (
        <div key={o.name} class="output-block" data-output={o.name}>
          <h3>
            {o.name} <span class="muted small">{tensorType(o)}</span>
          </h3>
          <OutputTable tensor={o} labels={props.labels} />
        </div>
      ))}
    </section>
  );
}

export function TryPage(props: { name: string; ref_?: string | undefined; config: ConsoleConfig }) {
  const target = useAsync(() => loadTarget(props.name, props.ref_), [props.name, props.ref_]);
  const meta = target.data?.meta;
  const [cells, setCells] = useState<Record<string, string[][]>>({});
  const [texts, setTexts] = useState<Record<string, string>>({});
  const [asJson, setAsJson] = useState(false);
  const [jsonText, setJsonText] = useState('');
  const [formError, setFormError] = useState<string | undefined>();
  /** The last answer, with the labels of the version that gave it, or the last failure. */
  const [result, setResult] = useState<
    { answer?: InferAnswer; labels?: readonly string[] | undefined; error?: unknown } | undefined
  >();
  const [sending, setSending] = useState(false);

  // A new target starts the form anew: one empty row per grid input, `[[]]`-style JSON for the others.
  useEffect(() => {
    if (!meta) return;
    const c: Record<string, string[][]> = {};
    const t: Record<string, string> = {};
    for (const spec of meta.inputs) {
      const w = isNumeric(spec.datatype) ? rowWidth(spec.shape) : undefined;
      if (w !== undefined) c[spec.name] = [Array.from({ length: w }, () => '')];
      else t[spec.name] = '';
    }
    setCells(c);
    setTexts(t);
    setAsJson(false);
    setResult(undefined);
    setFormError(undefined);
  }, [meta]);

  const built = useMemo(() => {
    if (!meta) return undefined;
    try {
      // Any JSON: the commands below send it as it is, and the API judges it.
      return { body: asJson ? (JSON.parse(jsonText) as unknown) : buildRequest(meta.inputs, cells, texts) };
    } catch (e) {
      return { error: (e as Error).message };
    }
  }, [meta, cells, texts, asJson, jsonText]);

  if (!target.data) {
    return (
      <section>
        <h1 tabIndex={-1}>Try {props.name}</h1>
        {target.error ? <ErrorBox error={target.error} title={`${props.name} could not be read`} /> : null}
        {!target.error ? <Loading what={`model ${props.name}`} /> : null}
        <p>
          <a href={href.model(props.name)}>Back to {props.name}</a>
        </p>
      </section>
    );
  }
  const { model, ready, ref, version } = target.data;
  const refs = [
    ...Object.keys(model.aliases)
      .sort()
      .map((a) => ({ value: a, text: `${a} (v${model.aliases[a]})` })),
    ...ready.map((v) => ({ value: String(v.version), text: `version ${v.version}` })),
  ];
  const inferPath = ref ? path('modelInfer', { name: model.name, ref }) : '';

  const send = async (e: Event) => {
    e.preventDefault();
    if (!meta || !ref) return;
    let body: unknown;
    try {
      body = asJson ? JSON.parse(jsonText) : buildRequest(meta.inputs, cells, texts);
    } catch (err) {
      setFormError(asJson ? `The request is not JSON: ${(err as Error).message}` : (err as Error).message);
      return;
    }
    setFormError(undefined);
    setSending(true);
    try {
      const answer = await infer(model.name, ref, body);
      setResult({ answer, labels: await labelsOf(model.name, answer, version) });
    } catch (error) {
      setResult({ error });
    } finally {
      setSending(false);
    }
  };

  const setCell = (input: string, r: number, c: number, value: string) =>
    setCells((all) => ({
      ...all,
      [input]: (all[input] ?? []).map((row, i) => (i === r ? row.map((x, j) => (j === c ? value : x)) : row)),
    }));

  return (
    <section aria-labelledby="try-title">
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href={href.models()}>Models</a> / <a href={href.model(model.name)}>{model.name}</a> /{' '}
        <span aria-current="page">Try it</span>
      </nav>
      <h1 id="try-title" tabIndex={-1}>
        Try {model.name}
      </h1>
      {!ref ? <p>{model.name} has no READY version to try.</p> : null}
      {ref ? (
        <div class="field inline">
          <label for="try-ref">Alias or version</label>
          <select
            id="try-ref"
            value={ref}
            onChange={(e) => {
              location.hash = href.try(model.name, (e.target as HTMLSelectElement).value);
            }}
          >
            {refs.map((r) => (
              <option key={r.value} value={r.value}>
                {r.text}
              </option>
            ))}
          </select>
          {version ? (
            <span class="muted">
              v{version.version}
              {version.labels?.length ? ` · labels ${version.labels.join(', ')}` : ''}
              {version.postprocess ? ` · postprocess ${JSON.stringify(version.postprocess)}` : ''}
            </span>
          ) : null}
        </div>
      ) : null}
      {target.error ? <ErrorBox error={target.error} title="The model could not be read again" /> : null}
      {meta && ref ? (
        <div class="try-grid">
          <form class="try-form" onSubmit={send} aria-labelledby="request-title" noValidate>
            <h2 id="request-title">Request</h2>
            <div class="field checkbox">
              <input
                id="try-json"
                type="checkbox"
                checked={asJson}
                onChange={(e) => {
                  const on = (e.target as HTMLInputElement).checked;
                  if (on) setJsonText(JSON.stringify(built?.body ?? { inputs: [] }, null, 2));
                  setAsJson(on);
                }}
              />
              <label for="try-json">Edit the whole request as JSON</label>
            </div>
            {asJson ? (
              <div class="field">
                <label for="try-request">Request body (Open Inference Protocol JSON)</label>
                <textarea
                  id="try-request"
                  rows={12}
                  spellcheck={false}
                  value={jsonText}
                  onInput={(e) => setJsonText((e.target as HTMLTextAreaElement).value)}
                />
              </div>
            ) : (
              meta.inputs.map((spec) => {
                const width = isNumeric(spec.datatype) ? rowWidth(spec.shape) : undefined;
                const rows = cells[spec.name] ?? [];
                const pre = spec.parameters?.preprocess;
                if (width === undefined) {
                  return (
                    <div key={spec.name} class="field">
                      <label for={`in-${spec.name}`}>
                        {spec.name} <span class="muted">{tensorType(spec)}, as nested JSON rows</span>
                      </label>
                      <textarea
                        id={`in-${spec.name}`}
                        rows={4}
                        spellcheck={false}
                        value={texts[spec.name] ?? ''}
                        onInput={(e) =>
                          setTexts((t) => ({ ...t, [spec.name]: (e.target as HTMLTextAreaElement).value }))
                        }
                      />
                    </div>
                  );
                }
                return (
                  <fieldset key={spec.name} class="input-grid" data-input={spec.name}>
                    <legend>
                      {spec.name} <span class="muted">{tensorType(spec)}</span>
                    </legend>
                    {pre?.length ? (
                      <p class="small muted">pre-processed by the version: {JSON.stringify(pre)}</p>
                    ) : null}
                    {rows.map((row, r) => (
                      <div class="row" key={r}>
                        <span class="row-label" aria-hidden="true">
                          {r + 1}
                        </span>
                        {row.map((v, c) => (
                          <input
                            key={c}
                            type="text"
                            inputMode="decimal"
                            class="cell"
                            aria-label={`${spec.name} row ${r + 1} value ${c + 1}`}
                            value={v}
                            onInput={(e) => setCell(spec.name, r, c, (e.target as HTMLInputElement).value)}
                          />
                        ))}
                        {rows.length > 1 ? (
                          <button
                            type="button"
                            class="secondary small"
                            aria-label={`Remove ${spec.name} row ${r + 1}`}
                            onClick={() =>
                              setCells((all) => ({
                                ...all,
                                [spec.name]: (all[spec.name] ?? []).filter((_, i) => i !== r),
                              }))
                            }
                          >
                            ✕
                          </button>
                        ) : null}
                      </div>
                    ))}
                    <button
                      type="button"
                      class="secondary small"
                      onClick={() =>
                        setCells((all) => ({
                          ...all,
                          [spec.name]: [...(all[spec.name] ?? []), Array.from({ length: width }, () => '')],
                        }))
                      }
                    >
                      Add a row
                    </button>
                  </fieldset>
                );
              })
            )}
            {formError ? (
              <p class="form-error" role="alert">
                {formError}
              </p>
            ) : null}
            <button type="submit" class="primary" disabled={sending}>
              {sending ? 'Running…' : 'Run inference'}
            </button>
          </form>
          <aside class="commands" aria-label="The same request from a shell">
            {built?.body ? (
              <>
                <Command id="cmd-curl" label="curl" text={curlCommand(props.config, inferPath, built.body)} />
                <Command
                  id="cmd-predict"
                  label="maas predict"
                  text={predictCommand(props.config, model.name, ref, built.body)}
                />
              </>
            ) : (
              <p class="muted">Fill in the form to see the equivalent commands ({built?.error}).</p>
            )}
          </aside>
        </div>
      ) : null}
      <div aria-live="polite">
        {result?.error ? <ErrorBox error={result.error} title="The inference failed" /> : null}
        {result?.answer ? <Answer answer={result.answer} labels={result.labels} /> : null}
      </div>
    </section>
  );
}
