// End-to-end tests of the dashboard in Debian's headless Chromium, driven
// by playwright-core (pinned in package-lock.json; no browser download:
// executablePath is /usr/bin/chromium). tests/e2e/test_dashboard.py starts
// a real `posthorn serve` with fake MX peers, sends mail, then runs
//
//   node dashboard.mjs CONFIG.json
//
// CONFIG: {base, out, keys: {shop, other, admin, bad}, mail: {...}} (see
// the pytest file). Every case runs in its own tab (its own sessionStorage,
// so its own login) and records ok / skip / error in OUT/results.json;
// pytest turns each into a test. Every request the browser makes is
// recorded: none may leave the HTTP listener's origin. Screenshots of each
// page at 360 and 1280 px go to OUT/screenshots/.
//
// When a case needs more mail while the page is open, it writes
// "@@ask mail" on stdout and reads the answer line from stdin.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const BASE = cfg.base;
const ORIGIN = new URL(BASE).origin;
const SHOTS = join(cfg.out, 'screenshots');
const WAIT = 15000;
mkdirSync(SHOTS, { recursive: true });

const results = {};
const requests = [];
const shots = [];
const consoleErrors = [];

// ---- the pytest side: questions on stdout, answers on stdin -------------------
const lines = createInterface({ input: process.stdin });
const answers = [];
let waiting = null;
lines.on('line', (l) => { if (waiting) { const w = waiting; waiting = null; w(l); } else answers.push(l); });
function ask(what) {
  process.stdout.write(`@@ask ${what}\n`);
  if (answers.length) return Promise.resolve(answers.shift());
  return new Promise((resolve) => { waiting = resolve; });
}

// ---- helpers ---------------------------------------------------------------------
function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function api(path, key, opts = {}) {
  const res = await fetch(new URL(path, BASE), {
    method: opts.method || 'GET',
    headers: { Authorization: `Bearer ${key}`, ...(opts.body ? { 'Content-Type': 'application/json' } : {}) },
    body: opts.body ? JSON.stringify(opts.body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text };
}

let context;

async function newPage({ width = 1280, dark = false } = {}) {
  const page = await context.newPage();
  await page.setViewportSize({ width, height: 900 });
  await page.emulateMedia({ colorScheme: dark ? 'dark' : 'light' });
  page.setDefaultTimeout(WAIT);
  page.on('request', (r) => requests.push(r.url()));
  // Answers of 4xx are part of the cases (a wrong key, another account's
  // message); anything else on the console (a CSP refusal) is an error.
  page.on('console', (m) => {
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(m.text()))
      consoleErrors.push(`${page.url()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`${page.url()}: ${e.message}`));
  return page;
}

async function login(page, key) {
  await page.goto(`${BASE}/`);
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('nav[aria-label="Pages"]').waitFor();
}

// Goes to a page of the dashboard and waits until its title is there and
// nothing is loading.
async function open(page, hash, title) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.locator('#page-title', { hasText: title }).waitFor();
  await page.waitForFunction(() => ![...document.querySelectorAll('main p[role="status"]')]
    .some((p) => p.textContent.endsWith('…')));
}

// No part of the page is wider than the viewport (no sideways scrolling).
async function noSideScroll(page, where) {
  const m = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth, w: innerWidth }));
  check(m.sw <= m.w, `${where}: the page is ${m.sw} px wide in a ${m.w} px viewport (sideways scrolling)`);
}

async function shoot(page, name) {
  const file = join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  shots.push(file);
}

async function axe(page, where) {
  // Not a <script> tag: the page's CSP refuses inline scripts, as it should.
  await page.evaluate(AXE);
  const r = await page.evaluate(async () => {
    const out = await window.axe.run(document, { resultTypes: ['violations'] });
    return out.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  const bad = r.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(bad.length === 0, `${where}: axe: ${JSON.stringify(bad)}`);
  return r.length;
}

async function run(name, fn) {
  const t0 = Date.now();
  try {
    const details = await fn();
    results[name] = { ok: true, details: details || null, ms: Date.now() - t0 };
  } catch (e) {
    results[name] = { ok: false, error: `${e.message}`.slice(0, 4000), ms: Date.now() - t0 };
  }
  process.stderr.write(`dashboard: ${name}: ${results[name].ok ? 'ok' : `FAILED: ${results[name].error}`} (${results[name].ms} ms)\n`);
}

const dd = (page, sel) => page.locator(sel).getAttribute('data-value').then(Number);

// ---- the cases ----------------------------------------------------------------------

async function caseLoginInvalid() {
  const page = await newPage();
  await page.goto(`${BASE}/`);
  // By keyboard: focus the field, type, press Enter.
  await page.getByLabel('API key').focus();
  await page.keyboard.type(cfg.keys.bad);
  await page.keyboard.press('Enter');
  const msg = page.getByRole('alert');
  await msg.waitFor();
  const text = await msg.textContent();
  check(/invalid/i.test(text), `the message for a wrong key says "${text}", not that it is invalid`);
  check(await page.locator('nav[aria-label="Pages"]').count() === 0, 'a wrong key shows the pages');
  check(await page.evaluate(() => sessionStorage.length) === 0, 'a wrong key was kept in sessionStorage');
  await axe(page, 'login');
  await shoot(page, 'login-error-1280');
  await page.setViewportSize({ width: 360, height: 800 });
  await noSideScroll(page, 'login at 360 px');
  await shoot(page, 'login-error-360');
  await page.close();
  return { message: text };
}

async function caseLoginLogout() {
  const page = await newPage();
  await login(page, cfg.keys.shop);
  check(await page.evaluate(() => sessionStorage.getItem('posthorn.key')) === cfg.keys.shop, 'the key is not in sessionStorage');
  const who = await page.locator('.who .account').textContent();
  check(who.includes('shop'), `the header names account "${who}"`);
  check(await page.getByRole('link', { name: 'Queue' }).count() === 0, "an account's key sees the Queue page");
  check(await page.getByRole('link', { name: 'Nodes' }).count() === 0, "an account's key sees the Nodes page");
  // A reload keeps the session (sessionStorage). Keyboard: the first Tab
  // reaches the skip link, Enter moves to the page's title.
  await page.reload();
  await page.locator('nav[aria-label="Pages"]').waitFor();
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement.textContent) === 'Skip to content', 'the first Tab is not the skip link');
  // Then the brand, then the pages: Enter on Messages opens it.
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement.textContent) === 'Overview', 'Tab does not reach the navigation');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.locator('#page-title', { hasText: 'Messages' }).waitFor();
  check(await page.evaluate(() => document.activeElement.id) === 'page-title', 'the new page does not take the focus to its title');
  // The skip link moves the focus to the title.
  await page.reload();
  await page.locator('nav[aria-label="Pages"]').waitFor();
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  check(await page.evaluate(() => document.activeElement.id) === 'page-title', 'the skip link does not move to the page title');
  // Logging out ends the session.
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByLabel('API key').waitFor();
  check(await page.evaluate(() => sessionStorage.getItem('posthorn.key')) === null, 'logging out left the key in sessionStorage');
  await page.close();
}

async function statsTotals(key) {
  const st = await api('/v1/stats?group=hour', key);
  check(st.status === 200, `GET /v1/stats: ${st.status} ${st.text}`);
  const sum = (k) => st.json.stats.reduce((n, r) => n + (r[k] || 0), 0);
  return { accepted: sum('accepted'), delivered: sum('delivered'), bounced: sum('bounced') };
}

const domCounts = async (page) => ({
  accepted: await dd(page, '[data-count="accepted"]'),
  delivered: await dd(page, '[data-count="delivered"]'),
  bounced: await dd(page, '[data-count="bounced"]'),
});
const same = (x, y) => JSON.stringify(x) === JSON.stringify(y);

// The overview's counts equal /v1/stats, read just before and just after
// the page (an event written in between: the page is read again).
async function countsMatch(page) {
  let seen = [];
  for (let i = 0; i < 5; i++) {
    const before = await statsTotals(cfg.keys.shop);
    await page.reload();
    await page.locator('#counts').waitFor();
    const got = await domCounts(page);
    const after = await statsTotals(cfg.keys.shop);
    if (same(before, after) && same(got, before)) return got;
    seen = [before, got, after];
    await page.waitForTimeout(500);
  }
  throw new Error(`the overview shows ${JSON.stringify(seen[1])}, /v1/stats ${JSON.stringify(seen[0])}`);
}

// The counts equal /v1/stats; the chart has the test's mail; a message
// sent while the page is open shows up without a reload.
async function caseOverview() {
  const page = await newPage();
  await login(page, cfg.keys.shop);
  const want = await countsMatch(page);
  check(want.accepted >= 3, `the test's mail is not in /v1/stats: ${JSON.stringify(want)}`);
  const dt = await page.locator('#counts dt').allTextContents();
  check(dt.includes('Delivered') && dt.includes('Bounced'), `the counts are labelled ${dt}`);
  const shown = await page.locator('[data-count="accepted"]').textContent();
  check(shown === new Intl.NumberFormat('en-US').format(want.accepted), `Accepted reads "${shown}"`);
  // The chart: a canvas, and its numbers (the table beside it) add up.
  check(await page.locator('.chart canvas').count() >= 1, 'no chart canvas');
  const box = await page.locator('.chart canvas').first().boundingBox();
  check(box && box.width > 300 && box.height > 100, `the chart is ${JSON.stringify(box)}`);
  const cells = await page.locator('.chart-data tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].slice(1).map((c) => Number(c.textContent.replace(/\D/g, '')))));
  const col = (i) => cells.reduce((n, r) => n + r[i], 0);
  check(col(0) === want.accepted && col(1) === want.delivered && col(3) === want.bounced,
    `the chart's points add up to ${[col(0), col(1), col(3)]}, not ${JSON.stringify(want)}`);
  const bounce = await dd(page, '#rate-bounce strong');
  check(Math.abs(bounce - want.bounced / want.accepted) < 1e-9, `bounce rate ${bounce}, not bounced / accepted`);
  check(/2\s?%/.test(await page.locator('#rate-bounce').textContent()), 'the bounce rate does not show the 2 % threshold');
  check(/0\.1\s?%/.test(await page.locator('#rate-complaint').textContent()), 'the complaint rate does not show the 0.1 % threshold');
  const domains = await page.locator('#top-domains tbody tr td:first-child').allTextContents();
  for (const d of cfg.mail.domains) check(domains.includes(d), `top domains ${domains} lack ${d}`);
  // The queue (GET /metrics): the message deferred for ever is in it.
  const queued = Number(await page.locator('#queue-figures dd').first().getAttribute('data-value'));
  check(queued >= 1, `the overview shows ${queued} queued messages`);
  check(!/none/.test(await page.locator('#queue-figures dd').nth(2).textContent()), 'no oldest queued message shown');
  const recent = await page.locator('#recent-events tbody tr').count();
  check(recent >= 3, `${recent} recent events`);
  // Refreshes itself: one more message, no reload.
  const answer = await ask('mail');
  check(answer.startsWith('ok'), `pytest: ${answer}`);
  await page.waitForFunction((n) => Number(document.querySelector('[data-count="accepted"]').dataset.value) === n,
    want.accepted + 1, { timeout: 40000 });
  await page.close();
  return { stats: want, domains };
}

// Delivered and Bounced: the test's mail, equal to /v1/stats.
async function caseOverviewDelivered() {
  const page = await newPage();
  await login(page, cfg.keys.shop);
  const got = await countsMatch(page);
  check(got.delivered >= 1 && got.bounced >= 1, `the overview shows ${JSON.stringify(got)}`);
  await page.close();
  return got;
}

// Search by recipient, open the message: its recipients and its events.
async function caseMessagePage() {
  const page = await newPage();
  await login(page, cfg.keys.shop);
  await open(page, '#/messages', 'Messages');
  await page.getByLabel('Recipient').fill(cfg.mail.shop_rcpt);
  await page.getByRole('button', { name: 'Search' }).click();
  const link = page.locator('#message-list a', { hasText: cfg.mail.shop_id });
  await link.waitFor();
  // The latest messages stay listed until the search's answer replaces
  // them (a slow server, e.g. under ASan): wait for it, then check it.
  await page.waitForFunction(() => document.querySelectorAll('#message-list tbody tr').length === 1,
    null, { timeout: 15000 }).catch(() => {});
  check(await page.locator('#message-list tbody tr').count() === 1, 'the search by recipient lists other messages');
  await link.click();
  await page.locator('#page-title', { hasText: cfg.mail.shop_id }).waitFor();
  await page.locator('section.recipient').first().waitFor();
  const heads = await page.locator('section.recipient h3').allTextContents();
  for (const r of cfg.mail.shop_rcpts) check(heads.some((h) => h.includes(r)), `the message page lacks recipient ${r}: ${heads}`);
  check(await page.locator('section.recipient h3 .badge').count() === cfg.mail.shop_rcpts.length, 'a recipient has no state');
  const events = await page.locator('#message-events tbody tr td[data-label="Event"]').allTextContents();
  check(events.filter((e) => e === 'accepted').length === cfg.mail.shop_rcpts.length, `events ${events}`);
  await page.close();
  return { events };
}

// The message's page shows each recipient's attempts with the remote replies.
async function caseMessageAttempts() {
  const page = await newPage();
  await login(page, cfg.keys.shop);
  await open(page, `#/messages/${cfg.mail.shop_id}`, cfg.mail.shop_id);
  await page.locator('section.recipient td[data-label="Remote reply"]').first().waitFor();
  const replies = await page.locator('section.recipient td[data-label="Remote reply"]').allTextContents();
  check(replies.some((r) => r.includes('250')), `no 250 reply among ${JSON.stringify(replies)}`);
  check(replies.some((r) => r.includes('550')), `no 550 reply among ${JSON.stringify(replies)}`);
  const states = await page.locator('section.recipient h3 .badge').allTextContents();
  check(states.includes('delivered') && states.includes('bounced'), `states ${states}`);
  const events = await page.locator('#message-events tbody tr td[data-label="Event"]').allTextContents();
  check(events.includes('delivered') && events.includes('bounced'), `events ${events}`);
  await page.close();
  return { replies, states };
}

// Account "other" sees none of account "shop"'s messages, in the list or by ID.
async function caseIsolation() {
  const direct = await api(`/v1/messages/${cfg.mail.shop_id}`, cfg.keys.other);
  check(direct.status === 404, `GET /v1/messages/ID with another account's key: ${direct.status}`);
  const page = await newPage();
  await login(page, cfg.keys.other);
  await open(page, `#/messages?recipient=${encodeURIComponent(cfg.mail.shop_rcpt)}`, 'Messages');
  await page.locator('main .empty, #message-list').first().waitFor();
  const list = await page.locator('main').textContent();
  check(!list.includes(cfg.mail.shop_id), "another account's message is listed");
  check(list.includes('No message matches'), 'the search does not say that nothing matches');
  await page.evaluate((id) => { location.hash = `#/messages/${id}`; }, cfg.mail.shop_id);
  const alert = page.getByRole('alert');
  await alert.waitFor();
  check(/No message/.test(await alert.textContent()), `opening the ID says "${await alert.textContent()}"`);
  check(!(await page.locator('main').textContent()).includes(cfg.mail.shop_rcpt), "another account's recipient is shown");
  // Its own message is there.
  await open(page, '#/messages', 'Messages');
  await page.locator('#message-list').waitFor();
  check((await page.locator('#message-list').textContent()).includes(cfg.mail.other_id), 'the account does not see its own message');
  await page.close();
}

// The admin key sees every account's messages and picks an account.
async function caseAdmin() {
  const page = await newPage();
  await login(page, cfg.keys.admin);
  check(await page.getByRole('link', { name: 'Queue' }).count() === 1, 'an admin key has no Queue page');
  const picker = page.getByLabel('Account');
  await picker.waitFor();
  await page.waitForFunction(() => document.querySelectorAll('#account-scope option').length >= 3);
  const options = await page.locator('#account-scope option').allTextContents();
  check(options.includes('shop') && options.includes('other'), `the account picker offers ${options}`);
  await open(page, '#/messages', 'Messages');
  await page.locator('#message-list').waitFor();
  const all = await page.locator('#message-list').textContent();
  check(all.includes(cfg.mail.shop_id) && all.includes(cfg.mail.other_id), "the admin key does not see both accounts' messages");
  await picker.selectOption('other');
  await page.waitForFunction((id) => !document.querySelector('#message-list')?.textContent.includes(id), cfg.mail.shop_id);
  check((await page.locator('#message-list').textContent()).includes(cfg.mail.other_id), 'picking "other" hides its messages');
  // Suppressions are the key's own account's: the page says so.
  await open(page, '#/suppressions', 'Suppressions');
  check((await page.getByRole('note').textContent()).includes("the key's own account"), 'no note that the picker does not apply');
  await page.close();
}

async function caseSuppression() {
  const addr = cfg.mail.suppressed;
  const add = await api('/v1/suppressions', cfg.keys.shop, { method: 'POST', body: { address: addr, reason: 'test: to be removed' } });
  if (add.status === 404) throw new Error('POST /v1/suppressions is missing on this server');
  check(add.status === 201 || add.status === 200, `POST /v1/suppressions: ${add.status} ${add.text}`);
  const page = await newPage();
  await login(page, cfg.keys.shop);
  await open(page, '#/suppressions', 'Suppressions');
  await page.getByLabel('Address contains').fill(addr.split('@')[0]);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  const row = page.locator('#suppression-list tr', { hasText: addr });
  await row.waitFor();
  check((await row.textContent()).includes('test: to be removed'), 'the reason is not shown');
  await page.getByRole('button', { name: `Remove ${addr}` }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  check((await dialog.textContent()).includes(addr), 'the confirmation does not name the address');
  await dialog.getByRole('button', { name: 'Remove' }).click();
  await page.getByRole('status').filter({ hasText: 'removed' }).waitFor();
  await page.waitForFunction((a) => !document.querySelector('main').textContent.includes(`${a}test:`) &&
    ![...document.querySelectorAll('#suppression-list td')].some((td) => td.textContent === a), addr);
  const after = await api(`/v1/suppressions/${encodeURIComponent(addr)}`, cfg.keys.shop);
  check(after.status === 404, `after removal GET /v1/suppressions/ADDR: ${after.status}`);
  await page.close();
}

async function caseQueueRetry() {
  const q = await api('/v1/queue', cfg.keys.admin);
  check(q.status === 200, `GET /v1/queue: ${q.status} ${q.text}`);
  const page = await newPage();
  await login(page, cfg.keys.admin);
  await open(page, '#/queue', 'Queue');
  const group = page.locator('section.qgroup', { hasText: cfg.mail.deferred_domain });
  await group.waitFor();
  check((await group.textContent()).includes('451'), 'the group does not show the last reply');
  await page.getByRole('button', { name: `Retry ${cfg.mail.deferred_id}` }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  await dialog.getByRole('button', { name: 'Retry' }).click();
  await page.getByRole('status').filter({ hasText: 'retry requested' }).waitFor();
  const answer = await ask(`retried ${cfg.mail.deferred_id}`);
  check(answer.startsWith('ok'), `pytest: ${answer}`);
  await page.close();
}

// Nodes (admin): this one server's heartbeat row, as GET /v1/cluster/nodes has it.
async function caseNodes() {
  const n = await api('/v1/cluster/nodes', cfg.keys.admin);
  check(n.status === 200, `GET /v1/cluster/nodes: ${n.status} ${n.text}`);
  const me = JSON.parse(n.text).nodes[0];
  check(me && me.state === 'up', `the server's own node is not up: ${n.text}`);
  const page = await newPage();
  await login(page, cfg.keys.admin);
  await open(page, '#/nodes', 'Nodes');
  const row = page.locator('#node-list tbody tr', { hasText: me.id });
  await row.waitFor();
  check((await row.locator('td[data-label="State"]').textContent()) === 'up', 'the node is not shown up');
  check(me.id_clash === false && (await row.locator('td[data-label="Host"]').textContent()) === me.hostname, 'the host is not shown (or a clash is)');
  check((await row.locator('td[data-label="PostgreSQL"]').textContent()) === (me.postgres_ms === null ? '—' : `${me.postgres_ms.toFixed(2)} ms`), 'the PostgreSQL round trip is not shown');
  check(me.tag_lost === false && (await row.locator('td[data-label="Tag"]').textContent()) === me.tag, `the queue-ID tag is not shown as held: ${n.text}`);
  check(await page.getByRole('alert').count() === 0, 'an alert is shown for a healthy node');
  await page.close();
  return { node: me.id };
}

async function caseTemplatePreview() {
  const name = 'welcome';
  const made = await api('/v1/templates', cfg.keys.shop, { method: 'POST', body: { name, subject: 'Hello {{name}}', text: 'Hi {{name}}, welcome.', html: '<p>Hi <b>{{name}}</b></p>' } });
  if (made.status === 404) throw new Error('POST /v1/templates is missing on this server');
  check(made.status === 201, `POST /v1/templates: ${made.status} ${made.text}`);
  const page = await newPage();
  await login(page, cfg.keys.shop);
  await open(page, '#/templates', 'Templates');
  await page.locator('#template-list a', { hasText: name }).click();
  await page.locator('#page-title', { hasText: `Template ${name}` }).waitFor();
  check(await page.getByLabel('Subject').inputValue() === 'Hello {{name}}', 'the subject is not in the editor');
  await page.getByLabel('Sample variables (JSON)').fill('{"name": "Grace <3"}');
  await page.getByRole('button', { name: 'Preview' }).click();
  await page.locator('#preview-subject', { hasText: 'Hello Grace <3' }).waitFor();
  check((await page.locator('#preview-text').textContent()) === 'Hi Grace <3, welcome.', 'the text part preview');
  const frame = page.frameLocator('iframe.html-preview');
  check((await frame.locator('b').textContent()) === 'Grace <3', 'the HTML preview');
  await page.getByLabel('Subject').fill('Welcome, {{name}}');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('status').filter({ hasText: 'Saved' }).waitFor();
  const stored = await api(`/v1/templates/${name}`, cfg.keys.shop);
  check(stored.json && stored.json.subject === 'Welcome, {{name}}', `stored subject ${stored.text}`);
  await page.close();
}

async function caseDkim() {
  const page = await newPage();
  await login(page, cfg.keys.shop);
  await open(page, '#/dkim', 'DKIM');
  const dom = page.locator('section.dkim-domain', { hasText: cfg.mail.dkim_domain });
  await dom.waitFor();
  const rec = await dom.locator('pre.record').first().textContent();
  check(rec.startsWith('v=DKIM1; k=rsa; p=MII'), `the record shown is ${rec.slice(0, 40)}`);
  check((await dom.textContent()).includes(`${cfg.mail.dkim_selector}._domainkey.${cfg.mail.dkim_domain}`), 'the record name is not shown');
  check(await page.locator('section.dkim-domain', { hasText: cfg.mail.dkim_other_domain }).count() === 0,
    "an account's key sees another account's domain");
  // Times in the browser's locale (Intl), the same instant as the API's.
  const doc = await api('/v1/dkim', cfg.keys.shop);
  const createdAt = doc.json.domains[0].keys[0].created_at;
  const shown = await dom.locator('dt:text-is("Created") + dd').first().textContent();
  const want = await page.evaluate((t) => new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' })
    .format(new Date(t)), createdAt);
  check(shown === want, `created reads "${shown}", the browser's locale gives "${want}"`);
  await page.close();
}

// A webhook whose endpoint refuses connections: its recent failures.
async function caseWebhooks() {
  const id = cfg.mail.webhook_id;
  if (!id) throw new Error('no webhook was made (POST /v1/webhooks is missing on this server?)');
  let doc;
  for (let i = 0; i < 100; i++) {
    doc = await api(`/v1/webhooks/${id}`, cfg.keys.shop);
    if (doc.json && (doc.json.recent_failures || []).length) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  check((doc.json.recent_failures || []).length > 0, `the webhook has no failure yet: ${doc.text}`);
  const page = await newPage();
  await login(page, cfg.keys.shop);
  await open(page, '#/webhooks', 'Webhooks');
  const hook = page.locator('section.hook', { hasText: cfg.mail.webhook_url });
  await hook.waitFor();
  check((await hook.textContent()).includes('failing'), 'the webhook is not shown as failing');
  const rows = await hook.locator('tbody tr').count();
  check(rows >= 1, 'no recent failure listed');
  check((await hook.locator('td[data-label="HTTP status"]').first().textContent()) === 'no answer', 'a refused connection is not "no answer"');
  await page.close();
  return { failures: rows };
}

// Every page at 360 and 1280 px, light at 1280 and dark at 360: no
// sideways scrolling, no serious or critical axe violation, a screenshot.
const PAGES = [
  ['overview', '#/overview', 'Overview', 'shop'],
  ['messages', `#/messages?recipient=${encodeURIComponent('x')}`, 'Messages', 'shop'],
  ['message', null, null, 'shop'],
  ['queue', '#/queue', 'Queue', 'admin'],
  ['nodes', '#/nodes', 'Nodes', 'admin'],
  ['suppressions', '#/suppressions', 'Suppressions', 'shop'],
  ['templates', '#/templates', 'Templates', 'shop'],
  ['template', '#/templates/welcome', 'Template welcome', 'shop'],
  ['webhooks', '#/webhooks', 'Webhooks', 'shop'],
  ['dkim', '#/dkim', 'DKIM', 'shop'],
];

async function casePages() {
  const seen = {};
  const failed = [];
  for (const [width, dark] of [[1280, false], [360, true]]) {
    const pages = {};
    for (const who of ['shop', 'admin']) {
      pages[who] = await newPage({ width, dark });
      await login(pages[who], cfg.keys[who]);
    }
    for (const [name, hashIn, title, who] of PAGES) {
      const page = pages[who];
      const where = `${name} at ${width} px${dark ? ' (dark)' : ''}`;
      try {
        await open(page, hashIn || `#/messages/${cfg.mail.shop_id}`, title || /^Message(?!s)/);
        await page.waitForTimeout(300); // the chart sizes itself to its box
        await noSideScroll(page, where);
        // Nothing squeezed into a narrow column (a caption one letter wide).
        const narrow = await page.evaluate(() => [...document.querySelectorAll('main caption, main h2, main h3, main td')]
          .filter((e) => e.textContent.trim().length > 12 && e.getBoundingClientRect().width < 100)
          .map((e) => e.textContent.trim().slice(0, 30)));
        check(narrow.length === 0, `${where}: squeezed: ${narrow.slice(0, 5)}`);
        const minor = await axe(page, where);
        if (dark) {
          const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
          const [r, g, b] = bg.match(/\d+/g).map(Number);
          check(r + g + b < 150, `${where}: the dark scheme's background is ${bg}`);
        }
        seen[`${name}-${width}`] = { minor_axe: minor };
      } catch (e) {
        failed.push(`${where}: ${e.message.split('\n')[0]}`);
      }
      await shoot(page, `${name}-${width}${dark ? '-dark' : ''}`);
    }
    for (const p of Object.values(pages)) await p.close();
  }
  check(failed.length === 0, failed.join('\n'));
  return seen;
}

// ---- main -----------------------------------------------------------------------------------
const profile = mkdtempSync(join(tmpdir(), 'posthorn-chromium-'));
const t0 = Date.now();
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    locale: 'en-US',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  await run('login_invalid', caseLoginInvalid);
  await run('login_logout', caseLoginLogout);
  await run('overview', caseOverview);
  await run('overview_delivered', caseOverviewDelivered);
  await run('message_page', caseMessagePage);
  await run('message_attempts', caseMessageAttempts);
  await run('isolation', caseIsolation);
  await run('admin', caseAdmin);
  await run('suppression_remove', caseSuppression);
  await run('queue_retry', caseQueueRetry);
  await run('nodes', caseNodes);
  await run('template_preview', caseTemplatePreview);
  await run('dkim', caseDkim);
  await run('webhooks', caseWebhooks);
  await run('pages', casePages);
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
}
const foreign = requests.filter((u) => !u.startsWith(`${ORIGIN}/`) && !/^(data|blob|about):/.test(u));
results.same_origin = foreign.length === 0 && requests.length > 0
  ? { ok: true, details: { requests: requests.length } }
  : { ok: false, error: requests.length ? `requests outside ${ORIGIN}: ${foreign.slice(0, 10).join(', ')}` : 'no request was recorded' };
results.no_script_errors = consoleErrors.length === 0 ? { ok: true }
  : { ok: false, error: consoleErrors.slice(0, 10).join('\n') };
writeFileSync(join(cfg.out, 'results.json'), JSON.stringify({ results, screenshots: shots, requests: requests.length, ms: Date.now() - t0 }, null, 1));
process.stdout.write('@@done\n');
process.exit(0);
