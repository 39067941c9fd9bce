// Nodes (admin keys): the cluster's nodes from their heartbeats
// (GET /v1/cluster/nodes; docs/cluster.md "Cluster status"): state, host,
// version, queue, last heartbeat, the PostgreSQL and Redis round trips, and
// the queue-ID tag (a node whose tag another node took refuses new mail),
// and a node ID written by two live processes (a copied data directory).
import { api } from '../api.js';
import { fmtDuration, fmtNum, fmtTime } from '../fmt.js';
import { Badge, ErrorBox, html, Loading, PageHead, Table, Updated, useAsync } from '../ui.js';

const ms = (v) => (v === null || v === undefined ? '—' : `${v.toFixed(2)} ms`);

// The node's queue-ID tag; lost: held by another node, named.
function tagCell(n) {
  if (!n.tag_lost) return html`<span class="mono">${n.tag}</span>`;
  return html`<span class="mono">${n.tag}</span> <${Badge} value="lost" /> <span class="mono" title="the node holding this tag">${n.tag_holder}</span>`;
}

export function Nodes() {
  const st = useAsync(() => api('/v1/cluster/nodes', { scoped: false }), [], { poll: 5000 });
  const nodes = st.data ? st.data.nodes || [] : [];
  const stale = st.data ? st.data.stale || 0 : 0;
  const lost = st.data ? st.data.tag_lost || 0 : 0;
  const clash = st.data ? st.data.id_clash || 0 : 0;
  return html`<${PageHead} title="Nodes" />
    <${ErrorBox} error=${st.error} what="Nodes" />
    ${!st.data && !st.error && html`<${Loading} />`}
    ${st.data && html`<p>${fmtNum(nodes.length)} node${nodes.length === 1 ? '' : 's'}; each writes a heartbeat every 5 seconds.</p>
      ${stale > 0 && html`<p class="error" role="alert">${fmtNum(stale)} node${stale === 1 ? ' is' : 's are'} stale: no heartbeat for 15 seconds or more.</p>`}
      ${lost > 0 && html`<p class="error" role="alert">${fmtNum(lost)} node${lost === 1 ? ' has' : 's have'} lost its queue-ID tag to another node and refuse${lost === 1 ? 's' : ''} new mail until the tag is free again (docs/cluster.md).</p>`}
      ${clash > 0 && html`<p class="error" role="alert">${fmtNum(clash)} node ID${clash === 1 ? ' is' : 's are'} used by two live processes (a copied data directory) and refuse${clash === 1 ? 's' : ''} new mail until one of them stops (docs/cluster.md).</p>`}
      <${Table} id="node-list" caption="Nodes" rows=${nodes} rowKey=${(n) => n.id} empty="No node has written a heartbeat yet." columns=${[
        { label: 'Node', render: (n) => html`<span class="mono">${n.id}</span>` },
        { label: 'State', render: (n) => html`<${Badge} value=${n.state} />` },
        { label: 'Host', render: (n) => html`<span class="mono">${n.hostname}</span>${n.id_clash ? html` <${Badge} value="clash" /> <span class="mono" title="the other process writing this node's row">${n.clash_host}</span>` : ''}` },
        { label: 'Version', render: (n) => n.version },
        { label: 'Messages', num: true, render: (n) => fmtNum(n.messages) },
        { label: 'Recipients', num: true, render: (n) => fmtNum(n.recipients) },
        { label: 'Last heartbeat', render: (n) => html`<span title=${fmtTime(n.heartbeat)}>${fmtDuration(n.heartbeat_age)} ago</span>` },
        { label: 'PostgreSQL', num: true, render: (n) => ms(n.postgres_ms) },
        { label: 'Redis', num: true, render: (n) => ms(n.redis_ms) },
        { label: 'Tag', render: tagCell },
      ]} />
      <${Updated} at=${st.at} />`}`;
}
