// Webhooks: the account's endpoints (GET /v1/webhooks) with their recent
// failures (GET /v1/webhooks/{id}).
import { api } from '../api.js';
import { fmtNum, fmtTime } from '../fmt.js';
import { Badge, ErrorBox, html, Loading, PageHead, Table, useAsync } from '../ui.js';

async function load() {
  const doc = await api('/v1/webhooks');
  const hooks = doc.webhooks || [];
  // The list may leave the failures out: each webhook's own page has them.
  return Promise.all(hooks.map(async (w) => {
    if (w.failures || w.recent_failures) return w;
    try {
      return { ...w, ...(await api(`/v1/webhooks/${encodeURIComponent(w.id)}`)) };
    } catch {
      return w;
    }
  }));
}

function failuresOf(w) {
  return w.recent_failures || w.failures || [];
}

export function Webhooks() {
  const st = useAsync(load, [], { poll: 30000 });
  return html`<${PageHead} title="Webhooks" />
    <p class="muted">Events are POSTed to these URLs, signed with each webhook's secret (X-Posthorn-Signature), and retried with backoff.</p>
    <${ErrorBox} error=${st.error} what="Webhooks" />
    ${!st.data && !st.error ? html`<${Loading} />` : st.data && (st.data.length === 0
      ? html`<p class="muted empty">No webhook. Create one with POST /v1/webhooks.</p>`
      : st.data.map((w) => {
        const f = failuresOf(w);
        return html`<section class="hook" aria-label=${`Webhook ${w.url}`} key=${w.id}>
          <h2 class="mono">${w.url}</h2>
          <dl class="facts">
            <div><dt>Events</dt><dd>${(w.events || w.types || []).join(', ') || 'all'}</dd></div>
            <div><dt>State</dt><dd><${Badge} value=${w.state || (w.enabled === false ? 'disabled' : 'enabled')} /></dd></div>
            <div><dt>Created</dt><dd>${fmtTime(w.created_at)}</dd></div>
            <div><dt>Recent failures</dt><dd>${fmtNum(f.length)}</dd></div>
          </dl>
          <${Table} rows=${f} caption=${`Recent failures of ${w.url}`} empty="No recent failure."
            columns=${[
              { label: 'Time', render: (x) => fmtTime(x.time || x.at) },
              { label: 'Status', render: (x) => String(x.status ?? '—') },
              { label: 'Error', render: (x) => html`<span class="mono reply">${x.error || x.message || x.reply || '—'}</span>` },
            ]} />
        </section>`;
      }))}`;
}
