// Shared pieces of the pages: htm bound to preact, data loading hooks,
// tables that turn into cards on narrow screens, the confirmation dialog.
import { h } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';

export const html = htm.bind(h);

// Runs load() now, again when deps change, and every `poll` ms while the
// page is visible (quietly: what is shown stays until the new answer).
export function useAsync(load, deps, { poll = 0 } = {}) {
  const [state, setState] = useState({ loading: true, error: null, data: null, at: null });
  const gen = useRef(0);
  const run = useCallback(async (quiet) => {
    const g = ++gen.current;
    if (!quiet) setState((s) => ({ ...s, loading: true, error: null }));
    try {
      const data = await load();
      if (g === gen.current) setState({ loading: false, error: null, data, at: new Date() });
    } catch (error) {
      if (g === gen.current) setState((s) => ({ ...s, loading: false, error }));
    }
  }, deps);
  useEffect(() => {
    run(false);
    if (!poll) return undefined;
    const t = setInterval(() => { if (document.visibilityState === 'visible') run(true); }, poll);
    return () => { clearInterval(t); gen.current++; };
  }, [run]);
  return { ...state, reload: () => run(true) };
}

export function Loading({ what = 'Loading' }) {
  return html`<p class="muted" role="status">${what}…</p>`;
}

// An API error, in words.
export function errorText(e) {
  if (!e) return '';
  if (e.status === 403) return 'This needs an admin key.';
  return e.message || String(e);
}

export function ErrorBox({ error, what }) {
  if (!error) return null;
  return html`<p class="error" role="alert">${what ? `${what}: ` : ''}${errorText(error)}</p>`;
}

export function Badge({ value }) {
  const v = String(value || 'unknown');
  return html`<span class=${`badge s-${v.replace(/[^a-z_-]/gi, '')}`}>${v}</span>`;
}

// columns: [{key, label, render(row) -> node, num: right-aligned}]
export function Table({ caption, columns, rows, empty = 'Nothing to show.', rowKey, id }) {
  if (!rows || rows.length === 0) return html`<p class="muted empty">${empty}</p>`;
  return html`<div class="table-wrap"><table class="cards" id=${id}>
    ${caption && html`<caption>${caption}</caption>`}
    <thead><tr>${columns.map((c) => html`<th scope="col" class=${c.num ? 'num' : ''}>${c.label}</th>`)}</tr></thead>
    <tbody>${rows.map((r, i) => html`<tr key=${rowKey ? rowKey(r) : i}>
      ${columns.map((c) => html`<td data-label=${c.label} class=${c.num ? 'num' : ''}>${c.render ? c.render(r) : r[c.key]}</td>`)}
    </tr>`)}</tbody></table></div>`;
}

// const [dialog, confirm] = useConfirm(); ... if (await confirm({...})) ...
export function useConfirm() {
  const [ask, setAsk] = useState(null);
  const ref = useRef(null);
  useEffect(() => {
    const d = ref.current;
    if (ask && d && !d.open) d.showModal();
  }, [ask]);
  const close = (answer) => {
    if (ref.current && ref.current.open) ref.current.close();
    if (ask) ask.resolve(answer);
    setAsk(null);
  };
  const dialog = ask && html`<dialog ref=${ref} class="confirm" aria-labelledby="confirm-title"
      aria-describedby="confirm-text" onCancel=${(e) => { e.preventDefault(); close(false); }}>
    <h2 id="confirm-title">${ask.title}</h2>
    <p id="confirm-text">${ask.text}</p>
    <div class="actions">
      <button type="button" onClick=${() => close(false)}>Cancel</button>
      <button type="button" class=${ask.danger ? 'danger' : 'primary'} onClick=${() => close(true)}>${ask.confirm}</button>
    </div></dialog>`;
  const confirm = (opts) => new Promise((resolve) => setAsk({ ...opts, resolve }));
  return [dialog, confirm];
}

// A labelled field: <Field label="Recipient" id="q-rcpt">input</Field>
export function Field({ label, id, hint, children }) {
  return html`<div class="field"><label for=${id}>${label}</label>${children}
    ${hint && html`<small class="muted">${hint}</small>`}</div>`;
}

export function PageHead({ title, children }) {
  useEffect(() => { document.title = `${title} · Posthorn`; }, [title]);
  return html`<div class="page-head"><h1 tabindex="-1" id="page-title">${title}</h1>${children}</div>`;
}

export function Updated({ at }) {
  if (!at) return null;
  return html`<p class="muted updated">Updated ${at.toLocaleTimeString()}</p>`;
}
