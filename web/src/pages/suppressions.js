// Suppressions: the account's list (GET /v1/suppressions, searched with
// ?address=), adding an address (POST) and removing one (DELETE), after a
// confirmation.
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { fmtNum, fmtTime } from '../fmt.js';
import { ErrorBox, Field, html, Loading, PageHead, Table, useAsync, useConfirm } from '../ui.js';

const PAGE = 100;

function AddForm({ onAdded }) {
  const [address, setAddress] = useState('');
  const [reason, setReason] = useState('');
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const body = { address: address.trim() };
      if (reason.trim()) body.reason = reason.trim();
      const entry = await api('/v1/suppressions', { scoped: false, method: 'POST', body });
      setAddress('');
      setReason('');
      onAdded(entry);
    } catch (err) {
      setError(err);
    }
  };
  return html`<form class="inline" onSubmit=${submit} aria-labelledby="h-add">
    <h2 id="h-add">Add an address</h2>
    <${Field} label="Address" id="s-address"><input id="s-address" type="email" required value=${address} onInput=${(e) => setAddress(e.currentTarget.value)} autocomplete="off" /><//>
    <${Field} label="Reason (optional)" id="s-reason"><input id="s-reason" value=${reason} maxlength="512" onInput=${(e) => setReason(e.currentTarget.value)} /><//>
    <button type="submit" class="primary">Suppress</button>
    <${ErrorBox} error=${error} what="Not added" />
  </form>`;
}

export function Suppressions() {
  const [search, setSearch] = useState('');
  const [q, setQ] = useState('');
  const [extra, setExtra] = useState([]);
  const [note, setNote] = useState(null);
  const [dialog, confirm] = useConfirm();
  const st = useAsync(async () => {
    setExtra([]);
    return api('/v1/suppressions', { scoped: false, query: { address: q || undefined, limit: PAGE } });
  }, [q]);
  const pages = st.data ? [st.data, ...extra] : [];
  const rows = pages.flatMap((d) => d.suppressions || []);
  const next = pages.length ? pages[pages.length - 1].next : null;
  const more = async () => setExtra([...extra, await api('/v1/suppressions', { scoped: false, query: { address: q || undefined, limit: PAGE, after: next } })]);
  const remove = async (s) => {
    if (!await confirm({ title: `Remove ${s.address}?`, text: `Mail to ${s.address} will be sent again. It was suppressed for: ${s.reason}.`, confirm: 'Remove', danger: true })) return;
    try {
      await api(`/v1/suppressions/${encodeURIComponent(s.address)}`, { scoped: false, method: 'DELETE' });
      setNote({ ok: true, text: `${s.address} removed from the list.` });
      st.reload();
    } catch (e) {
      setNote({ ok: false, text: `${s.address}: ${e.message}` });
    }
  };
  return html`<${PageHead} title="Suppressions" />
    <p class="muted">Mail to these addresses is refused with the reason shown. Hard bounces, complaints and unsubscribes are added by themselves.</p>
    <p role="status" class=${note ? (note.ok ? 'ok note' : 'error note') : 'sr-only'}>${note ? note.text : ''}</p>
    <form class="search" role="search" aria-label="Search the suppression list" onSubmit=${(e) => { e.preventDefault(); setQ(search.trim()); }}>
      <${Field} label="Address contains" id="s-search"><input id="s-search" type="search" value=${search} onInput=${(e) => setSearch(e.currentTarget.value)} /><//>
      <button type="submit">Search</button>
    </form>
    <${ErrorBox} error=${st.error} what="Suppressions" />
    ${!st.data && !st.error ? html`<${Loading} />` : st.data && html`
      <${Table} id="suppression-list" caption=${q ? `Addresses containing “${q}”` : `Suppressed addresses (${fmtNum(rows.length)}${next ? '+' : ''})`}
        rows=${rows} rowKey=${(s) => s.address} empty=${q ? 'No suppressed address matches.' : 'No address is suppressed.'}
        columns=${[
          { label: 'Address', render: (s) => html`<span class="mono">${s.address}</span>` },
          { label: 'Reason', render: (s) => html`<span class="reply">${s.reason}</span>` },
          { label: 'Since', render: (s) => fmtTime(s.created_at) },
          { label: 'Actions', render: (s) => html`<button type="button" class="danger" onClick=${() => remove(s)} aria-label=${`Remove ${s.address}`}>Remove</button>` },
        ]} />
      ${next && html`<p><button type="button" onClick=${more}>More</button></p>`}`}
    <${AddForm} onAdded=${(s) => { setNote({ ok: true, text: `${s.address} is suppressed.` }); st.reload(); }} />
    ${dialog}`;
}
