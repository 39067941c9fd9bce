// Overview: accepted / delivered / deferred / bounced over the last hour,
// day or week (GET /v1/stats), the rates mailbox providers watch, the top
// destination domains, the queue (GET /metrics) and the latest events.
// Refreshes itself every REFRESH_MS while the tab is visible.
import { useMemo, useState } from 'preact/hooks';
import { api, metrics } from '../api.js';
import { Chart, SERIES } from '../chart.js';
import { fmtDay, fmtDuration, fmtHour, fmtNum, fmtPct, fmtTime } from '../fmt.js';
import { Badge, ErrorBox, html, Loading, PageHead, Table, Updated, useAsync } from '../ui.js';

export const REFRESH_MS = 10000;

const RANGES = {
  hour: { label: 'Last hour', secs: 3600, group: 'hour', step: 3600 },
  day: { label: 'Last 24 hours', secs: 86400, group: 'hour', step: 3600 },
  week: { label: 'Last 7 days', secs: 7 * 86400, group: 'day', step: 86400 },
};

// What mailbox providers ask of bulk senders (Gmail, Yahoo).
const PROVIDER = { bounce: 0.02, complaint: 0.001 };
const COUNTS = ['accepted', 'delivered', 'deferred', 'bounced', 'suppressed', 'complained'];

const iso = (secs) => new Date(secs * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

// Unix seconds of a row's bucket: "hour" (RFC 3339) or "day" (YYYY-MM-DD, UTC).
function bucketOf(row) {
  if (row.hour) return Math.floor(Date.parse(row.hour) / 1000);
  if (row.day) return Math.floor(Date.parse(`${row.day}T00:00:00Z`) / 1000);
  return NaN;
}

// One point per bucket from the range's start to now, zeros where the
// counters have no row.
export function series(rows, range, now) {
  const first = Math.floor((now - range.secs) / range.step) * range.step;
  const xs = [];
  for (let t = first; t <= now; t += range.step) xs.push(t);
  const at = new Map(rows.map((r) => [bucketOf(r), r]));
  const ys = Object.fromEntries(SERIES.map((s) => [s.key, xs.map((t) => (at.get(t) || {})[s.key] || 0)]));
  return { xs, ys };
}

export function totals(rows) {
  const t = Object.fromEntries(COUNTS.map((k) => [k, 0]));
  for (const r of rows) for (const k of COUNTS) t[k] += r[k] || 0;
  return t;
}

// As GET /v1/stats computes its rates: delivery and bounce over accepted,
// complaints over delivered (null when there is nothing to divide).
export function rates(t) {
  return {
    delivery: t.accepted ? t.delivered / t.accepted : null,
    bounce: t.accepted ? t.bounced / t.accepted : null,
    complaint: t.delivered ? t.complained / t.delivered : null,
  };
}

async function load(rangeName) {
  const range = RANGES[rangeName];
  const now = Math.floor(Date.now() / 1000);
  const q = { from: iso(now - range.secs), to: iso(now + 1) };
  const [stats, domains, m, events] = await Promise.all([
    api('/v1/stats', { query: { ...q, group: range.group } }),
    api('/v1/stats', { query: { ...q, group: 'domain' } }),
    metrics().catch((e) => ({ error: e })),
    api('/v1/events', { query: { since: q.from, limit: 10, order: 'desc' } }).catch((e) => ({ error: e })),
  ]);
  return { range, now, stats: stats.stats || [], domains: domains.stats || [], metrics: m, events };
}

function Range({ value, onChange }) {
  return html`<fieldset class="segmented"><legend>Period</legend>
    ${Object.entries(RANGES).map(([k, r]) => html`<label class=${value === k ? 'on' : ''}>
      <input type="radio" name="range" value=${k} checked=${value === k}
        onChange=${() => onChange(k)} />${r.label}</label>`)}
  </fieldset>`;
}

function Counts({ t }) {
  return html`<dl class="counts" id="counts">
    ${[['accepted', 'Accepted'], ['delivered', 'Delivered'], ['deferred', 'Deferred'], ['bounced', 'Bounced']].map(([k, label]) => html`
      <div class=${`count c-${k}`}><dt>${label}</dt><dd data-count=${k} data-value=${t[k]}>${fmtNum(t[k])}</dd></div>`)}
  </dl>`;
}

function Rate({ label, value, limit, guard, id, none }) {
  let verdict = html`<span class="muted">${none}</span>`;
  if (value !== null && limit !== undefined)
    verdict = value < limit
      ? html`<span class="ok">under ${fmtPct(limit)}</span>`
      : html`<span class="bad">at or above ${fmtPct(limit)}</span>`;
  else if (value !== null) verdict = null;
  return html`<div class="rate" id=${id}>
    <dt>${label}</dt>
    <dd><strong data-value=${value === null ? '' : value}>${fmtPct(value)}</strong>
      ${verdict && html` ${verdict}`}
      ${limit !== undefined && html`<small class="muted">Mailbox providers watch for ${fmtPct(limit)}.</small>`}
      ${guard !== undefined && guard !== null && html`<small class="muted">The reputation guard pauses the account at ${fmtPct(guard)}.</small>`}
    </dd></div>`;
}

// The account's reputation-guard thresholds, when the server tells them
// (GET /v1/account "reputation": {"max_bounce_rate", "max_complaint_rate"}, ratios).
function guardOf(account) {
  const r = (account && account.reputation) || {};
  return { bounce: r.max_bounce_rate, complaint: r.max_complaint_rate };
}

function Rates({ t, account }) {
  const r = rates(t);
  const g = guardOf(account);
  return html`<dl class="rates">
    <${Rate} id="rate-delivery" label="Delivery rate" value=${r.delivery} none="no mail accepted" />
    <${Rate} id="rate-bounce" label="Bounce rate" value=${r.bounce} limit=${PROVIDER.bounce} guard=${g.bounce} none="no mail accepted" />
    <${Rate} id="rate-complaint" label="Complaint rate" value=${r.complaint} limit=${PROVIDER.complaint} guard=${g.complaint} none="nothing delivered" />
  </dl>`;
}

function Domains({ rows }) {
  const top = [...rows].sort((a, b) => (b.accepted || 0) - (a.accepted || 0) || String(a.domain).localeCompare(b.domain)).slice(0, 10);
  const rate = (r, k) => rates({ accepted: r.accepted || 0, delivered: r.delivered || 0, bounced: r.bounced || 0, complained: r.complained || 0 })[k];
  return html`<${Table} id="top-domains" caption="Top destination domains" rows=${top} rowKey=${(r) => r.domain}
    empty="No mail to any domain in this period."
    columns=${[
      { label: 'Domain', render: (r) => html`<span class="mono">${r.domain}</span>` },
      { label: 'Accepted', num: true, render: (r) => fmtNum(r.accepted || 0) },
      { label: 'Delivered', num: true, render: (r) => fmtNum(r.delivered || 0) },
      { label: 'Deferred', num: true, render: (r) => fmtNum(r.deferred || 0) },
      { label: 'Bounced', num: true, render: (r) => fmtNum(r.bounced || 0) },
      { label: 'Delivery rate', num: true, render: (r) => fmtPct(rate(r, 'delivery')) },
      { label: 'Bounce rate', num: true, render: (r) => fmtPct(rate(r, 'bounce')) },
    ]} />`;
}

const sample = (m, name, labels = {}) => {
  const s = (m[name] || []).find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s ? s.value : null;
};

function QueueBox({ m }) {
  if (m.error) return html`<${ErrorBox} error=${m.error} what="Queue figures (GET /metrics)" />`;
  const messages = sample(m, 'posthorn_queue_messages');
  const deferred = sample(m, 'posthorn_queue_recipients', { state: 'deferred' });
  const oldest = sample(m, 'posthorn_queue_oldest_message_age_seconds');
  return html`<dl class="counts queue" id="queue-figures">
    <div class="count"><dt>Queued messages</dt><dd data-value=${messages}>${fmtNum(messages)}</dd></div>
    <div class="count"><dt>Deferred recipients</dt><dd data-value=${deferred}>${fmtNum(deferred)}</dd></div>
    <div class="count"><dt>Oldest queued message</dt><dd data-value=${oldest}>${messages ? fmtDuration(oldest) : 'none queued'}</dd></div>
  </dl>`;
}

function Recent({ events }) {
  if (events.error) return html`<${ErrorBox} error=${events.error} what="Events" />`;
  const rows = events.events || [];
  return html`<${Table} id="recent-events" caption="Latest events" rows=${rows} rowKey=${(e) => e.id}
    empty="No events in this period."
    columns=${[
      { label: 'Time', render: (e) => fmtTime(e.time) },
      { label: 'Event', render: (e) => html`<${Badge} value=${e.type} />` },
      { label: 'Recipient', render: (e) => html`<span class="mono">${e.recipient || '—'}</span>` },
      { label: 'Message', render: (e) => (e.message_id ? html`<a class="mono" href=${`#/messages/${encodeURIComponent(e.message_id)}`}>${e.message_id}</a>` : '—') },
    ]} />`;
}

function DataTable({ xs, ys, daily }) {
  return html`<details class="chart-data"><summary>The chart's numbers as a table</summary>
    <${Table} rows=${xs.map((t, i) => ({ t, i }))} rowKey=${(r) => r.t} columns=${[
      { label: daily ? 'Day' : 'Hour', render: (r) => (daily ? fmtDay : fmtHour)(new Date(r.t * 1000)) },
      ...SERIES.map((s) => ({ label: s.label, num: true, render: (r) => fmtNum(ys[s.key][r.i]) })),
    ]} /></details>`;
}

export function Overview({ account, scope }) {
  const [rangeName, setRange] = useState('day');
  const st = useAsync(() => load(rangeName), [rangeName, scope], { poll: REFRESH_MS });
  const d = st.data;
  const view = useMemo(() => (d ? { ...series(d.stats, d.range, d.now), t: totals(d.stats) } : null), [d]);
  const daily = d && d.range.group === 'day';
  return html`<${PageHead} title="Overview"><${Range} value=${rangeName} onChange=${setRange} /><//>
    <${ErrorBox} error=${st.error} what="Statistics" />
    ${!d && !st.error && html`<${Loading} />`}
    ${d && html`
      <section aria-labelledby="h-mail"><h2 id="h-mail">Mail, ${d.range.label.toLowerCase()}</h2>
        <${Counts} t=${view.t} />
        ${rangeName === 'hour' && html`<p class="muted">The server counts per hour: these are the hours that overlap the last 60 minutes.</p>`}
        <${Chart} xs=${view.xs} ys=${view.ys} daily=${daily}
          label=${`Accepted, delivered, deferred and bounced per ${daily ? 'day' : 'hour'}, ${d.range.label.toLowerCase()}`} />
        <${DataTable} xs=${view.xs} ys=${view.ys} daily=${daily} />
      </section>
      <section aria-labelledby="h-rates"><h2 id="h-rates">Rates</h2><${Rates} t=${view.t} account=${account} /></section>
      <section aria-labelledby="h-queue"><h2 id="h-queue">Queue (the whole server)</h2><${QueueBox} m=${d.metrics} /></section>
      <section aria-labelledby="h-domains"><h2 id="h-domains">Destinations</h2><${Domains} rows=${d.domains} /></section>
      <section aria-labelledby="h-events"><h2 id="h-events">Recent events</h2><${Recent} events=${d.events} /></section>
      <${Updated} at=${st.at} />`}`;
}
