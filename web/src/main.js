// The Posthorn dashboard: log in with an API key, then the pages of
// docs/dashboard.md, routed by the URL's fragment (#/messages/ID), so that
// the server serves one page at / and the back button works.
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, onUnauthorized, session, setScope } from './api.js';
import { html, Loading } from './ui.js';
import { Overview } from './pages/overview.js';
import { Messages, Message } from './pages/messages.js';
import { Queue } from './pages/queue.js';
import { Nodes } from './pages/nodes.js';
import { Suppressions } from './pages/suppressions.js';
import { Templates, Template } from './pages/templates.js';
import { Webhooks } from './pages/webhooks.js';
import { Dkim } from './pages/dkim.js';

const PAGES = [
  { path: 'overview', label: 'Overview', view: Overview },
  { path: 'messages', label: 'Messages', view: Messages, detail: Message },
  { path: 'queue', label: 'Queue', view: Queue, admin: true },
  { path: 'nodes', label: 'Nodes', view: Nodes, admin: true },
  { path: 'suppressions', label: 'Suppressions', view: Suppressions, ownAccount: true },
  { path: 'templates', label: 'Templates', view: Templates, detail: Template, ownAccount: true },
  { path: 'webhooks', label: 'Webhooks', view: Webhooks },
  { path: 'dkim', label: 'DKIM', view: Dkim },
];

// "#/messages/ID?recipient=x" -> {page: 'messages', id: 'ID', query}
export function parseHash(hash) {
  const [path, qs] = hash.replace(/^#\/?/, '').split('?');
  const [page, ...rest] = path.split('/');
  return {
    page: page || 'overview',
    id: rest.length ? decodeURIComponent(rest.join('/')) : null,
    query: new URLSearchParams(qs || ''),
  };
}

function useRoute() {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseHash(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

function Login({ onLogin, notice }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState(notice || '');
  const [busy, setBusy] = useState(false);
  useEffect(() => { document.title = 'Log in · Posthorn'; }, []);
  const submit = async (e) => {
    e.preventDefault();
    const k = key.trim();
    if (!k) { setError('Enter an API key.'); return; }
    setBusy(true);
    try {
      const account = await api('/v1/account', { key: k, scoped: false });
      session.set(k);
      onLogin(account);
    } catch (err) {
      setError(err.status === 401 ? 'That API key is invalid: check it and try again.'
        : `Cannot log in: ${err.message}`);
      setBusy(false);
    }
  };
  return html`<main class="login" id="main">
    <h1><img src="/assets/icon.svg" alt="" width="32" height="32" /> Posthorn</h1>
    <form onSubmit=${submit} aria-describedby=${error ? 'login-error' : undefined}>
      <label for="api-key">API key</label>
      <input id="api-key" name="key" type="password" autocomplete="off" spellcheck="false"
        required value=${key} onInput=${(e) => setKey(e.currentTarget.value)}
        aria-invalid=${error ? 'true' : 'false'} />
      <button type="submit" class="primary" disabled=${busy}>${busy ? 'Checking…' : 'Log in'}</button>
      ${error && html`<p class="error" role="alert" id="login-error">${error}</p>`}
    </form>
    <p class="muted">A key comes from <code>posthorn apikey create ACCOUNT</code> on the server
      (<code>--admin</code> for one that sees every account and the queue). It is kept in this tab
      only, until you log out or close it.</p>
  </main>`;
}

// Admin keys: the accounts to choose from are those that have keys.
function AccountPicker({ account, scope, onScope }) {
  const [accounts, setAccounts] = useState([account.account]);
  useEffect(() => {
    api('/v1/apikeys', { scoped: false }).then((doc) => {
      const names = new Set([account.account, ...(doc.apikeys || []).map((k) => k.account)]);
      setAccounts([...names].sort());
    }).catch(() => {});
  }, [account.account]);
  return html`<div class="picker">
    <label for="account-scope">Account</label>
    <select id="account-scope" value=${scope} onChange=${(e) => onScope(e.currentTarget.value)}>
      <option value="">All accounts</option>
      ${accounts.map((a) => html`<option value=${a}>${a}</option>`)}
    </select></div>`;
}

function Shell({ account, onLogout }) {
  const route = useRoute();
  const [scope, setScopeState] = useState('');
  const pages = PAGES.filter((p) => !p.admin || account.admin);
  const page = PAGES.find((p) => p.path === route.page);
  const changeScope = (a) => { setScope(a); setScopeState(a); };
  // A new page (not the first): move the focus to its title, as a screen
  // reader expects after a link.
  const first = useRef(true);
  useEffect(() => {
    if (first.current) { first.current = false; return; }
    const t = document.getElementById('page-title');
    if (t && document.activeElement && document.activeElement.tagName !== 'INPUT') t.focus({ preventScroll: true });
  }, [route.page, route.id]);
  let body;
  if (!page) body = html`<h1 id="page-title" tabindex="-1">Not found</h1><p>No page called “${route.page}”. <a href="#/overview">Overview</a></p>`;
  else if (page.admin && !account.admin) body = html`<h1 id="page-title" tabindex="-1">${page.label}</h1><p class="error" role="alert">This page needs an admin key.</p>`;
  else {
    const View = route.id && page.detail ? page.detail : page.view;
    // These routes act for the key's own account only (no ?account=).
    const own = page.ownAccount && scope && scope !== account.account
      ? html`<p class="note warn-note" role="note">This page shows the key's own account, ${account.account}: the account picker does not apply to ${page.label.toLowerCase()}.</p>`
      : null;
    body = html`${own}<${View} key=${`${scope}|${route.id || ''}`} id=${route.id} query=${route.query}
      account=${account} scope=${scope} />`;
  }
  const skip = (e) => { e.preventDefault(); document.getElementById('page-title')?.focus(); };
  return html`<a class="skip" href="#main" onClick=${skip}>Skip to content</a>
    <header class="top">
      <a class="brand" href="#/overview"><img src="/assets/icon.svg" alt="" width="24" height="24" />Posthorn</a>
      <nav aria-label="Pages"><ul>${pages.map((p) => html`<li><a href=${`#/${p.path}`}
        aria-current=${p === page ? 'page' : undefined}>${p.label}</a></li>`)}</ul></nav>
      <div class="who">
        <span class="account" title="The key's account">${account.account}${account.admin && html` <span class="badge admin">admin</span>`}</span>
        ${account.admin && html`<${AccountPicker} account=${account} scope=${scope} onScope=${changeScope} />`}
        <button type="button" onClick=${onLogout}>Log out</button>
      </div>
    </header>
    <main id="main">${body}</main>`;
}

function App() {
  const [account, setAccount] = useState(null);
  const [booting, setBooting] = useState(Boolean(session.key));
  const [notice, setNotice] = useState('');
  const logout = (why) => {
    session.clear();
    setScope('');
    setAccount(null);
    setNotice(why || '');
  };
  useEffect(() => {
    onUnauthorized(() => logout('The API key stopped working (revoked?): log in again.'));
    if (!session.key) return;
    api('/v1/account', { scoped: false })
      .then(setAccount)
      .catch((e) => logout(e.status === 401 ? 'That API key is invalid: log in again.' : e.message))
      .finally(() => setBooting(false));
  }, []);
  if (booting) return html`<main id="main"><${Loading} what="Checking the key" /></main>`;
  if (!account) return html`<${Login} key=${notice} notice=${notice} onLogin=${(a) => { setNotice(''); setAccount(a); }} />`;
  return html`<${Shell} account=${account} onLogout=${() => logout('')} />`;
}

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
