/**
 * The qembed console: a shell (navigation, connection banner, API-key prompt) around five pages,
 * chosen by the URL's hash (#/collections/NAME …), so that every page has an address and the
 * service serves one static file.
 */
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, apiKey, connection, watchConnection } from './api';
import { useConnection } from './hooks';
import { CollectionPage } from './pages/collection';
import { Collections } from './pages/collections';
import { EncodePage } from './pages/encode';
import { ModelsPage } from './pages/models';
import { Overview } from './pages/overview';
import { SearchPage } from './pages/search';

const PAGES = [
  { path: 'overview', title: 'Overview' },
  { path: 'collections', title: 'Collections' },
  { path: 'search', title: 'Search' },
  { path: 'encode', title: 'Encode' },
  { path: 'models', title: 'Models & jobs' },
] as const;

interface Route {
  page: string;
  rest: string[];
  params: URLSearchParams;
}

function currentRoute(): Route {
  const [path = '', query = ''] = location.hash.replace(/^#\/?/, '').split('?');
  const [page = 'overview', ...rest] = path.split('/').map(decodeURIComponent);
  return { page: page || 'overview', rest, params: new URLSearchParams(query) };
}

function useRoute(): Route {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const onHash = () => setRoute(currentRoute());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  return route;
}

function KeyPrompt() {
  const conn = useConnection();
  const [key, setKey] = useState('');
  const refused = conn.unauthorized?.refused ?? false;
  return (
    <section class="key-prompt" aria-labelledby="key-h">
      <h1 id="key-h">API key</h1>
      <p>This service needs an API key (QEMBED_API_KEY). It is kept in this tab only and sent with every call.</p>
      {refused && (
        <div class="error" role="alert" data-testid="key-refused">
          <code class="code">QEMBED_UNAUTHORIZED</code> The key was refused: {conn.unauthorized?.message}
        </div>
      )}
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          apiKey.set(key.trim());
          connection.unauthorized = null;
          try {
            await api('GET', '/collections');
            connection.generation++;
          } catch {
            // api() marks a refused key; other errors show on the pages
          }
          connection.notify();
        }}
      >
        <label>
          Key
          <input name="api_key" type="password" autocomplete="off" required value={key} onInput={(e) => setKey(e.currentTarget.value)} />
        </label>{' '}
        <button type="submit" class="primary">
          Use this key
        </button>
      </form>
    </section>
  );
}

function Page({ route }: { route: Route }) {
  switch (route.page) {
    case 'collections':
      return route.rest[0] ? <CollectionPage key={route.rest[0]} name={route.rest[0]} /> : <Collections />;
    case 'search':
      return <SearchPage initial={route.params.get('collection')} />;
    case 'encode':
      return <EncodePage />;
    case 'models':
      return <ModelsPage />;
    case 'overview':
      return <Overview />;
    default:
      return (
        <>
          <h1>Not found</h1>
          <p>
            There is no page “{route.page}”. <a href="#/overview">Overview</a>
          </p>
        </>
      );
  }
}

function App() {
  const route = useRoute();
  const conn = useConnection();
  useEffect(watchConnection, []);
  // Ask once at start whether the API wants a key (GET /health is open, GET /collections is not).
  useEffect(() => {
    void api('GET', '/collections').catch(() => undefined);
  }, []);
  useEffect(() => {
    const title = PAGES.find((p) => p.path === route.page)?.title ?? 'qembed';
    document.title = `${title} · qembed console`;
  }, [route.page]);
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <header>
        <span class="brand">qembed</span>
        <nav aria-label="pages">
          <ul>
            {PAGES.map((p) => (
              <li key={p.path}>
                <a href={`#/${p.path}`} aria-current={route.page === p.path ? 'page' : undefined}>
                  {p.title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        {apiKey.get() && (
          <button
            type="button"
            class="link"
            onClick={() => {
              apiKey.clear();
              connection.unauthorized = { refused: false, message: '' };
              connection.notify();
            }}
          >
            Forget key
          </button>
        )}
      </header>
      {!conn.reachable && (
        <div class="banner" role="status" data-testid="offline">
          The service does not answer. Reconnecting…
        </div>
      )}
      <main id="main" tabIndex={-1}>
        {conn.unauthorized ? <KeyPrompt /> : <Page route={route} />}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
