/** Models: every model with its latest version, aliases (and their splits) and last update; search by name. */
import { useState } from 'preact/hooks';
import { listModels } from '../api';
import { ErrorBox, Loading, useAsync } from '../components';
import { ago, split, time } from '../format';
import { href } from '../routes';

export function ModelsPage() {
  const models = useAsync(listModels, []);
  const [query, setQuery] = useState('');
  const q = query.trim().toLowerCase();
  const shown = (models.data ?? []).filter((m) => m.name.toLowerCase().includes(q));
  return (
    <section aria-labelledby="models-title">
      <div class="page-head">
        <h1 id="models-title" tabIndex={-1}>
          Models
        </h1>
        <button type="button" class="secondary" onClick={models.reload} disabled={models.loading}>
          Refresh
        </button>
      </div>
      <div class="search">
        <label for="model-search">Search by name</label>
        <input
          id="model-search"
          type="search"
          value={query}
          placeholder="e.g. iris"
          autoComplete="off"
          onInput={(e) => setQuery((e.target as HTMLInputElement).value)}
        />
      </div>
      {models.error ? <ErrorBox error={models.error} title="The models could not be listed" /> : null}
      {!models.data && !models.error ? <Loading what="the models" /> : null}
      {models.data ? (
        <>
          <p class="muted" role="status" aria-live="polite">
            {q
              ? `${shown.length} of ${models.data.length} models match “${query.trim()}”`
              : `${models.data.length} model${models.data.length === 1 ? '' : 's'}`}
          </p>
          {shown.length ? (
            <table class="models">
              <caption class="visually-hidden">Registered models</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Latest version</th>
                  <th scope="col">Aliases</th>
                  <th scope="col">Updated</th>
                </tr>
              </thead>
              <tbody>
                {shown.map((m) => (
                  <tr key={m.name} data-model={m.name}>
                    <th scope="row">
                      <a href={href.model(m.name)}>{m.name}</a>
                      {m.description ? <div class="muted small">{m.description}</div> : null}
                    </th>
                    <td>v{m.latestVersion}</td>
                    <td>
                      {Object.keys(m.aliases).length === 0 ? <span class="muted">none</span> : null}
                      <ul class="aliases">
                        {Object.entries(m.aliases)
                          .sort(([a], [b]) => a.localeCompare(b))
                          .map(([alias, version]) => (
                            <li key={alias}>
                              <span class="alias">{alias}</span> → v{version}
                              {m.splits?.[alias] ? (
                                <span class="split"> ({split(m.splits[alias])})</span>
                              ) : null}
                            </li>
                          ))}
                      </ul>
                    </td>
                    <td class="nowrap">
                      <time dateTime={m.updatedAt} title={time(m.updatedAt)}>
                        {ago(m.updatedAt)}
                      </time>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : models.data.length ? (
            <p>No model name contains “{query.trim()}”.</p>
          ) : (
            <p>
              No model is registered yet: <code>maas register model.onnx --name my-model</code>.
            </p>
          )}
        </>
      ) : null}
    </section>
  );
}
