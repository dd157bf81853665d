/**
 * The maas console: a single page over the maas HTTP API, routed by the URL's fragment
 * (`#/models`, `#/models/{name}`, `#/models/{name}/try`, `#/models/{name}/rollout/{alias}`, `#/live`).
 */
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { type ConsoleConfig, getConfig } from './api';
import { ErrorBox, Loading, useAsync } from './components';
import { LivePage } from './pages/live';
import { ModelPage } from './pages/model';
import { ModelsPage } from './pages/models';
import { RolloutPage } from './pages/rollout';
import { TryPage } from './pages/try';
import { href, parseRoute, type Route } from './routes';

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

function Page(props: { route: Route; config: ConsoleConfig }) {
  const { route, config } = props;
  switch (route.page) {
    case 'models':
      return <ModelsPage />;
    case 'model':
      return <ModelPage name={route.name} />;
    case 'try':
      return <TryPage name={route.name} ref_={route.ref} config={config} />;
    case 'rollout':
      return <RolloutPage name={route.name} alias={route.alias} />;
    case 'live':
      return <LivePage config={config} />;
    default:
      return (
        <section>
          <h1 tabIndex={-1}>Page not found</h1>
          <p>
            Nothing lives at <code>{route.hash || '/'}</code>. <a href={href.models()}>Back to the models</a>.
          </p>
        </section>
      );
  }
}

const AUTH: Record<ConsoleConfig['auth'], string> = {
  none: 'local, unsigned',
  sigv4: 'SigV4-signed',
  bearer: 'bearer token',
};

function App() {
  const route = useRoute();
  const config = useAsync(getConfig, []);
  const main = useRef<HTMLElement>(null);
  // A new page moves the focus to its heading, so keyboard and screen reader users start there.
  useEffect(() => {
    const h1 = main.current?.querySelector('h1');
    if (h1 && document.activeElement !== h1 && route.page !== 'models') (h1 as HTMLElement).focus();
    document.title = `${h1?.textContent ?? 'maas'} · maas console`;
  }, [route, config.data]);
  const section = route.page === 'live' ? 'live' : 'models';
  return (
    <>
      <button type="button" class="skip" onClick={() => main.current?.focus()}>
        Skip to content
      </button>
      <header class="top">
        <a class="brand" href={href.models()}>
          maas console
        </a>
        <nav aria-label="Sections">
          <a href={href.models()} aria-current={section === 'models' ? 'page' : undefined}>
            Models
          </a>
          <a href={href.live()} aria-current={section === 'live' ? 'page' : undefined}>
            Live
          </a>
        </nav>
        {config.data ? (
          <p class="endpoint" title="The API this console shows">
            <span class="visually-hidden">API: </span>
            <code>{config.data.endpoint}</code> <span class="muted">({AUTH[config.data.auth]})</span>
          </p>
        ) : null}
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        {config.error ? (
          <ErrorBox error={config.error} title="The console's configuration could not be read" />
        ) : config.data ? (
          <Page route={route} config={config.data} />
        ) : (
          <Loading what="the console" />
        )}
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root) {
  root.textContent = '';
  render(<App />, root);
}
