// DKIM: each sender domain's keys (GET /v1/dkim): selector, algorithm,
// state, and the DNS record to publish, with a copy button.
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { fmtTime } from '../fmt.js';
import { Badge, ErrorBox, html, Loading, PageHead, useAsync } from '../ui.js';

function Copy({ text, label }) {
  const [done, setDone] = useState('');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone('Copied.');
    } catch {
      setDone('Select the text and copy it.');
    }
  };
  return html`<button type="button" onClick=${copy} aria-label=${label}>Copy</button> <span role="status" class="muted">${done}</span>`;
}

function Key({ domain, k }) {
  return html`<article class="dkim-key" aria-label=${`Selector ${k.selector}`}>
    <h3><span class="mono">${k.selector}</span> <${Badge} value=${k.state} /> <small class="muted">${k.algorithm}</small></h3>
    <dl class="facts">
      <div><dt>Created</dt><dd>${fmtTime(k.created_at)}</dd></div>
      ${k.activated_at && html`<div><dt>Signing since</dt><dd>${fmtTime(k.activated_at)}</dd></div>`}
      ${k.retired_at && html`<div><dt>Retired</dt><dd>${fmtTime(k.retired_at)}</dd></div>`}
      ${k.keep_record_until && html`<div><dt>Keep the record until</dt><dd>${fmtTime(k.keep_record_until)}</dd></div>`}
      <div><dt>Name</dt><dd class="mono">${k.name}</dd></div>
    </dl>
    ${k.record ? html`
      <p class="label" id=${`rec-${domain}-${k.selector}`}>TXT record to publish</p>
      <pre class="record" aria-labelledby=${`rec-${domain}-${k.selector}`}>${k.record}</pre>
      <${Copy} text=${k.record} label=${`Copy the record of ${k.selector}`} />
      <details><summary>Zone-file line</summary><pre class="record">${k.zone}</pre></details>`
    : html`<p class="error">No record: ${k.error || 'the key file cannot be read'}.</p>`}
  </article>`;
}

export function Dkim() {
  const st = useAsync(() => api('/v1/dkim', { scoped: false }), []);
  const domains = st.data ? st.data.domains || [] : [];
  return html`<${PageHead} title="DKIM" />
    <p class="muted">Keys are made with <code>posthorn dkim keygen DOMAIN</code> and rotated with <code>posthorn dkim rotate DOMAIN</code>; <code>posthorn dkim check DOMAIN</code> compares each record with DNS.</p>
    <${ErrorBox} error=${st.error} what="DKIM keys" />
    ${!st.data && !st.error ? html`<${Loading} />` : st.data && (domains.length === 0
      ? html`<p class="muted empty">No DKIM key for the domains this key may see.</p>`
      : domains.map((d) => html`<section class="dkim-domain" aria-labelledby=${`d-${d.domain}`} key=${d.domain}>
          <h2 id=${`d-${d.domain}`} class="mono">${d.domain}</h2>
          ${d.keys.map((k) => html`<${Key} domain=${d.domain} k=${k} key=${k.selector} />`)}
        </section>`))}`;
}
