// Webhooks: the account's endpoints (GET /v1/webhooks) with their recent
// failures (GET /v1/webhooks/{id}).
import { api } from '../api.js';
import { fmtNum, fmtTime } from '../fmt.js';
import { Badge, ErrorBox, html, Loading, PageHead, Table, useAsync } from '../ui.js';

async function load() {
  const doc = await api('/v1/webhooks');
  // The list leaves the failures out: each webhook's own answer has them.
  return Promise.all((doc.webhooks || []).map(async (w) => {
    try {
      return await api(`/v1/webhooks/${encodeURIComponent(w.id)}`, { scoped: false });
    } catch {
      return w;
    }
  }));
}

// {last_event_id, failures, failing_since, next_attempt_at}
function Health({ s }) {
  if (!s || !s.failures) return html`<${Badge} value="ok" />`;
  return html`<${Badge} value="failing" /> ${fmtNum(s.failures)} in a row since ${fmtTime(s.failing_since)}${s.next_attempt_at ? `; next try ${fmtTime(s.next_attempt_at)}` : ''}`;
}

export function Webhooks() {
  const st = useAsync(load, [], { poll: 30000 });
  return html`<${PageHead} title="Webhooks" />
    <p class="muted">Events are POSTed to these URLs, signed with each webhook's secret (X-Posthorn-Signature), and retried with backoff.</p>
    <${ErrorBox} error=${st.error} what="Webhooks" />
    ${!st.data && !st.error ? html`<${Loading} />` : st.data && (st.data.length === 0
      ? html`<p class="muted empty">No webhook. Make one with POST /v1/webhooks (docs/api.md).</p>`
      : st.data.map((w) => {
        const f = w.recent_failures || [];
        return html`<section class="hook" aria-label=${`Webhook ${w.url}`} key=${w.id}>
          <h2 class="mono">${w.url}</h2>
          <dl class="facts">
            ${w.account && html`<div><dt>Account</dt><dd>${w.account}</dd></div>`}
            ${w.description && html`<div><dt>Description</dt><dd>${w.description}</dd></div>`}
            <div><dt>Events</dt><dd>${(w.types || []).join(', ') || 'all'}</dd></div>
            <div><dt>State</dt><dd><${Health} s=${w.state} /></dd></div>
            <div><dt>Created</dt><dd>${fmtTime(w.created_at)}</dd></div>
            <div><dt>Last event sent</dt><dd>${w.state && w.state.last_event_id ? `#${w.state.last_event_id}` : '—'}</dd></div>
          </dl>
          <${Table} rows=${f} caption=${`Recent failures of ${w.url}`} empty="No recent failure."
            columns=${[
              { label: 'Time', render: (x) => fmtTime(x.time) },
              { label: 'HTTP status', render: (x) => (x.status ? String(x.status) : 'no answer') },
              { label: 'Error', render: (x) => html`<span class="mono reply">${x.error || '—'}</span>` },
              { label: 'Events', render: (x) => `#${x.first_event}–#${x.last_event}${x.dropped ? ' (given up)' : ''}` },
            ]} />
        </section>`;
      }))}`;
}
