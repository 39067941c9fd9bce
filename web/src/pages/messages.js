// Messages: search by recipient, message ID or tag (GET /v1/messages), and
// one message's page: every recipient with its attempts and the remote
// replies (GET /v1/messages/{id}), and its events (GET /v1/events?message=).
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { fmtNum, fmtTime } from '../fmt.js';
import { Badge, ErrorBox, Field, html, Loading, PageHead, Table, useAsync } from '../ui.js';

const PAGE = 50;
const msgLink = (id) => `#/messages/${encodeURIComponent(id)}`;

function SearchForm({ query }) {
  const [f, setF] = useState({
    recipient: query.get('recipient') || '', id: '', tag: query.get('tag') || '',
  });
  const set = (k) => (e) => setF({ ...f, [k]: e.currentTarget.value });
  const submit = (e) => {
    e.preventDefault();
    if (f.id.trim()) { location.hash = msgLink(f.id.trim()); return; }
    const q = new URLSearchParams();
    if (f.recipient.trim()) q.set('recipient', f.recipient.trim());
    if (f.tag.trim()) q.set('tag', f.tag.trim());
    location.hash = `#/messages${q.toString() ? `?${q}` : ''}`;
  };
  return html`<form class="search" role="search" aria-label="Search messages" onSubmit=${submit}>
    <${Field} label="Recipient" id="q-recipient"><input id="q-recipient" type="email" value=${f.recipient} onInput=${set('recipient')} autocomplete="off" /><//>
    <${Field} label="Message ID" id="q-id"><input id="q-id" value=${f.id} onInput=${set('id')} autocomplete="off" spellcheck="false" /><//>
    <${Field} label="Tag" id="q-tag"><input id="q-tag" value=${f.tag} onInput=${set('tag')} autocomplete="off" /><//>
    <button type="submit" class="primary">Search</button>
  </form>`;
}

export function Messages({ query, account }) {
  const [pages, setPages] = useState([]);
  const filter = { recipient: query.get('recipient') || undefined, tag: query.get('tag') || undefined };
  const st = useAsync(async () => {
    const doc = await api('/v1/messages', { query: { ...filter, limit: PAGE, order: 'desc' } });
    setPages([]);
    return doc;
  }, [query.toString()]);
  const more = async () => {
    const last = pages.length ? pages[pages.length - 1] : st.data;
    const doc = await api('/v1/messages', { query: { ...filter, limit: PAGE, order: 'desc', after: last.next } });
    setPages([...pages, doc]);
  };
  const all = st.data ? [st.data, ...pages] : [];
  const rows = all.flatMap((d) => d.messages || []);
  const next = all.length ? all[all.length - 1].next : null;
  const what = [filter.recipient && `to ${filter.recipient}`, filter.tag && `tagged ${filter.tag}`].filter(Boolean).join(', ');
  return html`<${PageHead} title="Messages" />
    <${SearchForm} query=${query} />
    <${ErrorBox} error=${st.error} what="Search" />
    ${st.loading && !st.data ? html`<${Loading} />` : st.data && html`
      <${Table} id="message-list" caption=${what ? `Messages ${what}` : 'Latest messages'} rows=${rows} rowKey=${(m) => m.id}
        empty="No message matches."
        columns=${[
          { label: 'Message', render: (m) => html`<a class="mono" href=${msgLink(m.id)}>${m.id}</a>` },
          { label: 'Accepted', render: (m) => fmtTime(m.created_at) },
          ...(account.admin ? [{ label: 'Account', render: (m) => m.account || '—' }] : []),
          { label: 'From', render: (m) => html`<span class="mono">${m.from || '—'}</span>` },
          { label: 'Subject', render: (m) => m.subject || '—' },
          { label: 'Tags', render: (m) => (m.tags || []).join(', ') || '—' },
        ]} />
      ${next && html`<p><button type="button" onClick=${more}>More messages</button></p>`}`}`;
}

function Attempts({ r }) {
  const attempts = r.attempts || [];
  return html`<section class="recipient" aria-label=${`Recipient ${r.to}`}>
    <h3><span class="mono">${r.to}</span> <${Badge} value=${r.state} /></h3>
    <${Table} rows=${attempts} caption=${`Delivery attempts to ${r.to}`}
      empty=${r.state === 'suppressed' ? 'Suppressed: no attempt was made.' : 'No delivery attempt yet.'}
      columns=${[
        { label: 'Time', render: (a) => fmtTime(a.time) },
        { label: 'Result', render: (a) => (a.result ? html`<${Badge} value=${a.result} />` : '—') },
        { label: 'MX', render: (a) => html`<span class="mono">${a.mx || '—'}</span>` },
        { label: 'Remote reply', render: (a) => html`<span class="mono reply">${a.reply || '—'}</span>` },
      ]} />
  </section>`;
}

function detailText(d) {
  if (!d || typeof d !== 'object') return '';
  return Object.entries(d).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join('; ');
}

export function Message({ id }) {
  const st = useAsync(() => Promise.all([
    api(`/v1/messages/${encodeURIComponent(id)}`, { scoped: false }),
    api('/v1/events', { query: { message: id, limit: 1000 }, scoped: false }).catch((e) => ({ error: e })),
  ]), [id]);
  if (st.error) {
    const gone = st.error.status === 404;
    return html`<${PageHead} title="Message" />
      <p class="error" role="alert">${gone ? `No message ${id} in this account.` : st.error.message}</p>
      <p><a href="#/messages">Search messages</a></p>`;
  }
  if (!st.data) return html`<${PageHead} title="Message" /><${Loading} />`;
  const [m, ev] = st.data;
  const rcpts = m.recipients || [];
  return html`<${PageHead} title=${`Message ${m.id}`} />
    <p><a href="#/messages">← Messages</a></p>
    <dl class="facts">
      <div><dt>Accepted</dt><dd>${fmtTime(m.created_at)}</dd></div>
      ${m.account && html`<div><dt>Account</dt><dd>${m.account}</dd></div>`}
      <div><dt>From</dt><dd class="mono">${m.from || '—'}</dd></div>
      <div><dt>Subject</dt><dd>${m.subject || '—'}</dd></div>
      <div><dt>Tags</dt><dd>${(m.tags || []).join(', ') || '—'}</dd></div>
      <div><dt>Recipients</dt><dd>${fmtNum(rcpts.length)}</dd></div>
    </dl>
    <section aria-labelledby="h-rcpts"><h2 id="h-rcpts">Recipients and attempts</h2>
      ${rcpts.map((r) => html`<${Attempts} r=${r} key=${r.to} />`)}
    </section>
    <section aria-labelledby="h-events"><h2 id="h-events">Events</h2>
      ${ev.error ? html`<${ErrorBox} error=${ev.error} what="Events" />` : html`
      <${Table} id="message-events" rows=${ev.events || []} rowKey=${(e) => e.id} empty="No events yet."
        columns=${[
          { label: 'Time', render: (e) => fmtTime(e.time) },
          { label: 'Event', render: (e) => html`<${Badge} value=${e.type} />` },
          { label: 'Recipient', render: (e) => html`<span class="mono">${e.recipient || '—'}</span>` },
          { label: 'Detail', render: (e) => html`<span class="mono reply">${detailText(e.detail) || '—'}</span>` },
        ]} />`}
    </section>`;
}
