// Templates: the account's list (GET /v1/templates), a new one (POST), and
// a template's page: edit (PUT), delete (DELETE), and preview with sample
// variables (POST /v1/templates/{name}/preview). The HTML preview is drawn
// in a sandboxed frame: no script runs, and the page's Content-Security-
// Policy (which the frame inherits) keeps it from loading anything.
import { useState } from 'preact/hooks';
import { api, apiAll } from '../api.js';
import { fmtTime } from '../fmt.js';
import { ErrorBox, Field, html, Loading, PageHead, Table, useAsync, useConfirm } from '../ui.js';

const tLink = (name) => `#/templates/${encodeURIComponent(name)}`;

// A template error names the part (field) and where (line, column).
function problem(e) {
  const b = (e && e.body && e.body.error) || {};
  const where = b.line ? ` (line ${b.line}, column ${b.column})` : '';
  return `${e.message}${where}`;
}

function Parts({ t, set }) {
  return html`
    <${Field} label="Subject" id="t-subject"><input id="t-subject" required maxlength="998" value=${t.subject} onInput=${set('subject')} /><//>
    <${Field} label="Text part" id="t-text" hint="Mustache: {{name}}, {{#list}}…{{/list}}"><textarea id="t-text" rows="8" value=${t.text} onInput=${set('text')} /><//>
    <${Field} label="HTML part" id="t-html" hint="Variables are HTML-escaped; {{{raw}}} is not."><textarea id="t-html" rows="8" value=${t.html} onInput=${set('html')} /><//>`;
}

const body = (t) => ({ subject: t.subject, text: t.text || null, html: t.html || null });

function NewForm() {
  const [t, setT] = useState({ name: '', subject: '', text: '', html: '' });
  const [error, setError] = useState(null);
  const set = (k) => (e) => setT({ ...t, [k]: e.currentTarget.value });
  const submit = async (e) => {
    e.preventDefault();
    try {
      await api('/v1/templates', { scoped: false, method: 'POST', body: { name: t.name.trim(), ...body(t) } });
      location.hash = tLink(t.name.trim());
    } catch (err) {
      setError(err);
    }
  };
  return html`<details class="new"><summary>New template</summary>
    <form onSubmit=${submit} aria-label="New template">
      <${Field} label="Name" id="t-name" hint="Letters, digits, '.', '_' and '-'."><input id="t-name" required maxlength="64" pattern="[A-Za-z0-9][A-Za-z0-9._-]*" value=${t.name} onInput=${set('name')} /><//>
      <${Parts} t=${t} set=${set} />
      <button type="submit" class="primary">Create</button>
      ${error && html`<p class="error" role="alert">Not created: ${problem(error)}</p>`}
    </form></details>`;
}

export function Templates() {
  const st = useAsync(() => apiAll('/v1/templates', 'templates', { scoped: false }), []);
  return html`<${PageHead} title="Templates" />
    <${ErrorBox} error=${st.error} what="Templates" />
    ${!st.data && !st.error ? html`<${Loading} />` : st.data && html`
      <${Table} id="template-list" caption="Templates" rows=${st.data.items} rowKey=${(t) => t.name}
        empty="No template yet."
        columns=${[
          { label: 'Name', render: (t) => html`<a class="mono" href=${tLink(t.name)}>${t.name}</a>` },
          { label: 'Subject', render: (t) => t.subject },
          { label: 'Changed', render: (t) => fmtTime(t.updated_at) },
        ]} />`}
    <${NewForm} />`;
}

function Preview({ name }) {
  const [vars, setVars] = useState('{\n  "name": "Ada"\n}');
  const [out, setOut] = useState(null);
  const [error, setError] = useState('');
  const run = async (e) => {
    e.preventDefault();
    let variables;
    try {
      variables = vars.trim() ? JSON.parse(vars) : {};
    } catch (err) {
      setError(`The variables are not JSON: ${err.message}`);
      return;
    }
    setError('');
    try {
      setOut(await api(`/v1/templates/${encodeURIComponent(name)}/preview`, { scoped: false, method: 'POST', body: { variables } }));
    } catch (err) {
      setError(problem(err));
    }
  };
  return html`<section aria-labelledby="h-preview"><h2 id="h-preview">Preview</h2>
    <form onSubmit=${run}>
      <${Field} label="Sample variables (JSON)" id="p-vars"><textarea id="p-vars" rows="5" class="mono" value=${vars} onInput=${(e) => setVars(e.currentTarget.value)} /><//>
      <button type="submit" class="primary">Preview</button>
    </form>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${out && html`<div class="preview" id="preview">
      <dl class="facts"><div><dt>Subject</dt><dd id="preview-subject">${out.subject}</dd></div></dl>
      ${(out.warnings || []).length > 0 && html`<ul class="warnings" aria-label="Warnings">${out.warnings.map((w) => html`<li>${w.part}: ${w.kind === 'missing' ? 'no value for' : 'partials are not supported:'} <code>${w.name}</code></li>`)}</ul>`}
      ${out.text !== null && html`<h3>Text</h3><pre id="preview-text">${out.text}</pre>`}
      ${out.html !== null && html`<h3>HTML</h3>
        <iframe title="The HTML part, rendered" sandbox="" srcdoc=${out.html} class="html-preview"></iframe>
        <details><summary>HTML source</summary><pre>${out.html}</pre></details>`}
    </div>`}
  </section>`;
}

export function Template({ id: name }) {
  const [t, setT] = useState(null);
  const [note, setNote] = useState(null);
  const [dialog, confirm] = useConfirm();
  const st = useAsync(async () => {
    const doc = await api(`/v1/templates/${encodeURIComponent(name)}`, { scoped: false });
    setT({ subject: doc.subject || '', text: doc.text || '', html: doc.html || '' });
    return doc;
  }, [name]);
  const set = (k) => (e) => setT({ ...t, [k]: e.currentTarget.value });
  const save = async (e) => {
    e.preventDefault();
    try {
      await api(`/v1/templates/${encodeURIComponent(name)}`, { scoped: false, method: 'PUT', body: body(t) });
      setNote({ ok: true, text: 'Saved.' });
    } catch (err) {
      setNote({ ok: false, text: `Not saved: ${problem(err)}` });
    }
  };
  const del = async () => {
    if (!await confirm({ title: `Delete template ${name}?`, text: 'Messages that name it will be refused.', confirm: 'Delete', danger: true })) return;
    try {
      await api(`/v1/templates/${encodeURIComponent(name)}`, { scoped: false, method: 'DELETE' });
      location.hash = '#/templates';
    } catch (err) {
      setNote({ ok: false, text: err.message });
    }
  };
  if (st.error) return html`<${PageHead} title=${`Template ${name}`} /><${ErrorBox} error=${st.error} /><p><a href="#/templates">Templates</a></p>`;
  if (!t) return html`<${PageHead} title=${`Template ${name}`} /><${Loading} />`;
  return html`<${PageHead} title=${`Template ${name}`} />
    <p><a href="#/templates">← Templates</a></p>
    <form onSubmit=${save} aria-label="Edit the template">
      <${Parts} t=${t} set=${set} />
      <div class="actions"><button type="submit" class="primary">Save</button>
        <button type="button" class="danger" onClick=${del}>Delete</button></div>
      <p role="status" class=${note ? (note.ok ? 'ok note' : 'error note') : 'sr-only'}>${note ? note.text : ''}</p>
    </form>
    <${Preview} name=${name} />
    ${dialog}`;
}
