// Queue (admin keys): the mail waiting on the server, deferred mail
// grouped by destination domain and last remote reply (GET /v1/queue), and
// per message retry, hold, release or delete, each after a confirmation
// (POST /v1/queue/{id}/retry|hold|release, DELETE /v1/queue/{id}).
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { domainOf, fmtNum, fmtTime } from '../fmt.js';
import { Badge, ErrorBox, html, Loading, PageHead, Table, Updated, useAsync, useConfirm } from '../ui.js';

const ACTIONS = {
  retry: { label: 'Retry', verb: 'Retry', text: 'is tried again now (a manual retry is not counted as an attempt).', done: 'retry requested' },
  hold: { label: 'Hold', verb: 'Hold', text: 'is held: no delivery until it is released.', done: 'held' },
  release: { label: 'Release', verb: 'Release', text: 'is released and delivered on its schedule.', done: 'released' },
  delete: { label: 'Delete', verb: 'Delete', text: 'is deleted from the queue without a bounce. This cannot be undone.', done: 'deleted', danger: true },
};

// [{domain, reply, items: [{msg, rcpts}]}], the largest groups first.
export function groups(queue) {
  const by = new Map();
  for (const msg of queue) {
    for (const r of msg.recipients || []) {
      if (r.state === 'delivered' || r.state === 'bounced') continue;
      const reply = r.last_reply || '';
      const key = `${domainOf(r.to)}\n${reply}`;
      if (!by.has(key)) by.set(key, { domain: domainOf(r.to), reply, msgs: new Map() });
      const g = by.get(key);
      if (!g.msgs.has(msg.id)) g.msgs.set(msg.id, { msg, rcpts: [] });
      g.msgs.get(msg.id).rcpts.push(r);
    }
  }
  return [...by.values()].map((g) => ({ ...g, items: [...g.msgs.values()] }))
    .sort((a, b) => b.items.length - a.items.length || a.domain.localeCompare(b.domain));
}

function Group({ g, act, i }) {
  const n = g.items.reduce((s, it) => s + it.rcpts.length, 0);
  return html`<section class="qgroup" aria-labelledby=${`qg-${i}`}>
    <h3 id=${`qg-${i}`}><span class="mono">${g.domain || '(no domain)'}</span>
      <small class="muted">${fmtNum(n)} recipient${n === 1 ? '' : 's'} in ${fmtNum(g.items.length)} message${g.items.length === 1 ? '' : 's'}</small></h3>
    <p class="mono reply">${g.reply ? `Last reply: ${g.reply}` : 'Not tried yet'}</p>
    <${Table} rows=${g.items} rowKey=${(it) => it.msg.id} columns=${[
      { label: 'Message', render: (it) => html`<a class="mono" href=${`#/messages/${encodeURIComponent(it.msg.id)}`}>${it.msg.id}</a>` },
      { label: 'Account', render: (it) => it.msg.account || '—' },
      { label: 'From', render: (it) => html`<span class="mono">${it.msg.from || '—'}</span>` },
      { label: 'Recipients', render: (it) => it.rcpts.map((r) => html`<span class="rcpt"><span class="mono">${r.to}</span> <${Badge} value=${r.state} /></span>`) },
      { label: 'Attempts', num: true, render: (it) => fmtNum(Math.max(...it.rcpts.map((r) => r.attempts || 0))) },
      { label: 'Next attempt', render: (it) => fmtTime(it.rcpts.map((r) => r.next_attempt).filter(Boolean).sort()[0]) },
      { label: 'Actions', render: (it) => {
        const held = it.rcpts.every((r) => r.state === 'held');
        return html`<div class="row-actions">
          ${['retry', held ? 'release' : 'hold', 'delete'].map((a) => html`<button type="button"
            class=${ACTIONS[a].danger ? 'danger' : ''} onClick=${() => act(a, it.msg)}
            aria-label=${`${ACTIONS[a].label} ${it.msg.id}`}>${ACTIONS[a].label}</button>`)}
        </div>`;
      } },
    ]} />
  </section>`;
}

export function Queue() {
  const st = useAsync(() => api('/v1/queue', { query: { limit: 1000 } }), [], { poll: 15000 });
  const [dialog, confirm] = useConfirm();
  const [note, setNote] = useState(null);
  const act = async (a, msg) => {
    const A = ACTIONS[a];
    const ok = await confirm({ title: `${A.verb} message ${msg.id}?`, text: `Message ${msg.id} from ${msg.from || '<>'} ${A.text}`, confirm: A.verb, danger: A.danger });
    if (!ok) return;
    try {
      const path = `/v1/queue/${encodeURIComponent(msg.id)}`;
      await api(a === 'delete' ? path : `${path}/${a}`, { method: a === 'delete' ? 'DELETE' : 'POST', scoped: false });
      setNote({ ok: true, text: `Message ${msg.id}: ${A.done}.` });
      st.reload();
    } catch (e) {
      setNote({ ok: false, text: `Message ${msg.id}: ${e.message}` });
    }
  };
  const queue = st.data ? (st.data.queue || st.data.messages || []) : [];
  const gs = groups(queue);
  const missing = st.error && st.error.status === 404;
  return html`<${PageHead} title="Queue" />
    <p role="status" class=${note ? (note.ok ? 'ok note' : 'error note') : 'sr-only'}>${note ? note.text : ''}</p>
    ${missing ? html`<p class="error" role="alert">This server has no queue routes (GET /v1/queue).</p>`
    : html`<${ErrorBox} error=${st.error} what="Queue" />`}
    ${!st.data && !st.error && html`<${Loading} />`}
    ${st.data && html`<p>${fmtNum(queue.length)} message${queue.length === 1 ? '' : 's'} in the queue, in ${fmtNum(gs.length)} group${gs.length === 1 ? '' : 's'} by destination and last reply.</p>
      ${gs.length === 0 ? html`<p class="muted empty">The queue is empty.</p>` : gs.map((g, i) => html`<${Group} g=${g} act=${act} i=${i} key=${`${g.domain}\n${g.reply}`} />`)}
      <${Updated} at=${st.at} />`}
    ${dialog}`;
}
