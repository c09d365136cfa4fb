// The console's entry: a hash router over four pages, shown only while logged in.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { html } from './html.js';
import { onSessionChange, session } from './api.js';
import { Header } from './components.js';
import { LoginPage } from './pages/login.js';
import { HomePage } from './pages/home.js';
import { SpacePage } from './pages/space.js';
import { AppPage } from './pages/app.js';

function useHash() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function page(hash) {
  const [, kind, guid] = hash.match(/^#\/(spaces|apps)\/([^/?#]+)/) ?? [];
  if (kind === 'spaces') return html`<${SpacePage} guid=${decodeURIComponent(guid)} />`;
  if (kind === 'apps') return html`<${AppPage} guid=${decodeURIComponent(guid)} />`;
  return html`<${HomePage} />`;
}

function Console() {
  const [current, setCurrent] = useState(session());
  useEffect(() => onSessionChange(setCurrent), []);
  const hash = useHash();
  return html`<${Header} key=${current?.username ?? ''} />
    <main>${current ? page(hash) : html`<${LoginPage} />`}</main>`;
}

render(html`<${Console} />`, document.getElementById('root'));
