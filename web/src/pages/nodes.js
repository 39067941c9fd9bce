// Nodes (admin keys): the cluster's nodes from their heartbeats
// (GET /v1/cluster/nodes; docs/cluster.md "Cluster status"): state, host,
// version, queue, last heartbeat and the PostgreSQL and Redis round trips.
import { api } from '../api.js';
import { fmtDuration, fmtNum, fmtTime } from '../fmt.js';
import { Badge, ErrorBox, html, Loading, PageHead, Table, Updated, useAsync } from '../ui.js';

const ms = (v) => (v === null || v === undefined ? '—' : `${v.toFixed(2)} ms`);

export function Nodes() {
  const st = useAsync(() => api('/v1/cluster/nodes', { scoped: false }), [], { poll: 5000 });
  const nodes = st.data ? st.data.nodes || [] : [];
  const stale = st.data ? st.data.stale || 0 : 0;
  return html`<${PageHead} title="Nodes" />
    <${ErrorBox} error=${st.error} what="Nodes" />
    ${!st.data && !st.error && html`<${Loading} />`}
    ${st.data && html`<p>${fmtNum(nodes.length)} node${nodes.length === 1 ? '' : 's'}; each writes a heartbeat every 5 seconds.</p>
      ${stale > 0 && html`<p class="error" role="alert">${fmtNum(stale)} node${stale === 1 ? ' is' : 's are'} stale: no heartbeat for 15 seconds or more.</p>`}
      <${Table} id="node-list" caption="Nodes" rows=${nodes} rowKey=${(n) => n.id} empty="No node has written a heartbeat yet." columns=${[
        { label: 'Node', render: (n) => html`<span class="mono">${n.id}</span>` },
        { label: 'State', render: (n) => html`<${Badge} value=${n.state} />` },
        { label: 'Host', render: (n) => html`<span class="mono">${n.hostname}</span>` },
        { label: 'Version', render: (n) => n.version },
        { label: 'Messages', num: true, render: (n) => fmtNum(n.messages) },
        { label: 'Recipients', num: true, render: (n) => fmtNum(n.recipients) },
        { label: 'Last heartbeat', render: (n) => html`<span title=${fmtTime(n.heartbeat)}>${fmtDuration(n.heartbeat_age)} ago</span>` },
        { label: 'PostgreSQL', num: true, render: (n) => ms(n.postgres_ms) },
        { label: 'Redis', num: true, render: (n) => ms(n.redis_ms) },
      ]} />
      <${Updated} at=${st.at} />`}`;
}
