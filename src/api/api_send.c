/*
 * api_send: POST /v1/messages (SPEC 6, docs/api.md "Sending").
 *
 * On a worker (send_run): the body is parsed (400 naming the field), the
 * key's account must own the From domain (as an authenticated SMTP
 * session must; 403), suppressed recipients are refused with the entry's
 * reason, the template (if any) is rendered per message, and each message
 * is built (send_build: the bytes) and written to a spool file
 * (send_write). Hooks that sign or count a message go between the two.
 *
 * On the loop (send_commit): every file is committed to the spool; the
 * answer waits for the last done() (SPEC 6: only once every message is
 * durable). Then each queued message is indexed for delivery and its
 * accepted events emitted through deps->queued, exactly as an SMTP message
 * after its commit, and the answer lists every recipient: queued with the
 * message's ID, or refused with a reason. 200 when any is queued, else
 * 422 (503 when only the spool failed).
 *
 * A batch (recipients[]) is one message per recipient; its files are
 * committed together and the spool's committer makes them durable in the
 * same group commits, so the answer comes after one or two fsync rounds.
 * A message whose commit fails is answered refused ("queue error"),
 * never silently dropped; a crash before the answer leaves the
 * committed messages queued and the client, with no answer, retries with
 * its Idempotency-Key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_send.h"
#include "conf/conf.h"
#include "deliv/deliv.h"
#include "dkim/dkim.h"
#include "events/events.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "smtpd/smtp_parse.h"
#include "spool/spool.h"
#include "store/store.h"
#include "track/track.h"
#include "unsub/unsub.h"
#include "work/work.h"

struct send_job;

struct send_msg {
	struct send_job *job;
	struct spool_msg *sm; /* written, not yet committed */
	char id[ID_LEN + 1];
	char *subject;
	struct rcpt *rcpts;
	const char **addrs;
	size_t n_rcpts;
	uint64_t size;
	int64_t created; /* unix seconds, as committed (the envelope handed on) */
	int smtputf8;
	int state;    /* 0 pending, 1 queued, -1 failed, -2 refused (quota, pause) */
	int reserved; /* its recipients are reserved against the account's quota */
	/* What the worker's signing did, logged on the loop at the commit. */
	enum dkim_result dkim;
	int unsub_missing; /* unsubscribe asked, no List-Unsubscribe made */
	char dkim_domain[256];
};

struct send_result {
	const char *to;
	struct send_msg *msg; /* NULL: refused */
	char reason[SUPP_REASON_MAX + 64];
	int suppressed;
	int quota; /* refused for the account's quota */
};

struct send_job {
	struct http_req *r;
	struct api_answer ans; /* made on the worker when the request is refused whole */
	char account[COUNTER_ACCOUNT_MAX + 1];
	json_t *body;
	struct send_req q;
	struct send_result *res;
	size_t n_res;
	struct send_msg *msgs;
	size_t n_msgs, pending;
	struct send_idem idem;
	int tracking;        /* track.opens or track.clicks: one message per recipient */
	int per_rcpt;        /* tracking or unsubscribe: links name one recipient */
	int64_t quota_reset; /* unix seconds: when the quota that refused resets */
	json_t *warnings;    /* the renderings' warnings (NULL: none), for the answer */
	int warnings_truncated;
	unsigned char track_key[TRACK_KEY_LEN];
};

/* The parts one message is built from (given or rendered). */
struct send_content {
	const char *subject, *text, *html;
};

/* ---- building and writing (the worker) ---- */

static void received(const struct send_job *j, const char *id, struct buf *out)
{
	char date[64];

	rfc5322_date(date, sizeof(date), clock_now_s());
	buf_printf(out, "Received: by %s (Posthorn) with HTTP id %s;\r\n\t%s\r\n",
	           http_req_conf(j->r)->hostname, id, date);
}

/* The bytes of one message: to/cc are its header recipients. */
static void send_build(const struct send_job *j, const struct send_content *c,
                       const struct mime_addr *to, size_t n_to, const struct mime_addr *cc,
                       size_t n_cc, const char *id, struct buf *out)
{
	char mid[ID_LEN + 300];
	const struct send_req *q = &j->q;

	snprintf(mid, sizeof(mid), "<%s@%s>", id, http_req_conf(j->r)->hostname);
	received(j, id, out);
	mime_build(&(struct mime_msg){.from = &q->from,
	                              .to = to,
	                              .n_to = n_to,
	                              .cc = cc,
	                              .n_cc = n_cc,
	                              .reply_to = q->has_reply_to ? &q->reply_to : NULL,
	                              .subject = c->subject,
	                              .text = c->text,
	                              .html = c->html,
	                              .headers = q->headers,
	                              .n_headers = q->n_headers,
	                              .parts = q->parts,
	                              .n_parts = q->n_parts,
	                              .message_id = mid,
	                              .date = clock_now_s(),
	                              .seed = id},
	           out);
}

/* ---- tracking: the html of one recipient's message, rewritten ---- */

struct track_ctx {
	const struct send_job *j;
	const char *id, *rcpt;
};

static char *track_link(void *arg, const char *url)
{
	const struct track_ctx *t = arg;

	return api_track_url(http_req_conf(t->j->r), t->j->track_key,
	                     &(struct track_ref){'c', t->j->account, t->id, t->rcpt, url});
}

/* The tracked html (malloc'd) of message id for rcpt, or NULL: untracked. */
static char *tracked_html(const struct send_job *j, const char *html, const char *id,
                          const char *rcpt)
{
	struct track_ctx t = {j, id, rcpt};
	char *pixel = NULL;
	struct buf out;

	if (!j->tracking || !html)
		return NULL;
	if (j->q.track_opens)
		pixel = api_track_url(http_req_conf(j->r), j->track_key,
		                      &(struct track_ref){'o', j->account, id, rcpt, NULL});
	buf_init(&out);
	buf_reserve(&out, strlen(html) + 1);
	track_html(html, strlen(html), j->q.track_clicks ? track_link : NULL, &t, pixel, &out);
	free(pixel);
	return out.data;
}

/* The bytes into m's spool file; -1 (logged) when the spool fails. */
/*
 * What accept adds before the bytes are written, as for SMTP mail: the
 * List-Unsubscribe fields (unsubscribe: true; one recipient per message),
 * then the DKIM signatures of every active key of the From domain, over
 * the message with those fields. The fields go first in the header
 * section, the signatures before them.
 */
static void send_fields(const struct send_job *j, struct send_msg *m, const struct buf *msg,
                        struct buf *front)
{
	const struct http_deps *d = http_req_deps(j->r);
	struct dkim_msg *dm;
	struct buf sig;

	if (j->q.unsubscribe && (!d->unsub || m->n_rcpts != 1 ||
	                         unsub_fields(d->unsub, j->account, m->addrs[0], front) < 0))
		m->unsub_missing = 1;
	m->dkim = DKIM_NO_KEY;
	if (!d->dkim || !(dm = dkim_msg_new(d->dkim, m->id)))
		return;
	buf_init(&sig);
	dkim_msg_write(dm, front->data, front->len);
	dkim_msg_write(dm, msg->data, msg->len);
	m->dkim = dkim_msg_finish(dm, &sig);
	snprintf(m->dkim_domain, sizeof(m->dkim_domain), "%s", dkim_msg_domain(dm));
	dkim_msg_free(dm);
	if (m->dkim == DKIM_SIGNED) {
		buf_append(&sig, front->data, front->len);
		buf_free(front);
		*front = sig;
	} else {
		buf_free(&sig);
	}
}

static int send_write(const struct send_job *j, struct send_msg *m, const struct buf *bytes)
{
	struct buf front;
	int rc;

	buf_init(&front);
	send_fields(j, m, bytes, &front);
	/* keys but no signature (libopendkim failed): not sent unsigned, as
	 * SMTP answers 451 for it; the recipients are refused (queue error) */
	rc = m->dkim == DKIM_FAILED ||
	     (front.len && spool_msg_write(m->sm, front.data, front.len) < 0) ||
	     spool_msg_write(m->sm, bytes->data, bytes->len) < 0;
	buf_free(&front);
	if (rc)
		return -1;
	m->size = spool_msg_size(m->sm);
	return 0;
}

/* On the loop, once committed: what signing did, as smtpd logs it. */
static void log_fields(const struct send_job *j, const struct send_msg *m)
{
	const struct http_deps *d = http_req_deps(j->r);

	if (m->unsub_missing)
		log_warn("http=%s queue=%s event=list_unsubscribe result=none to=<%s>",
		         http_req_id(j->r), m->id, log_q(m->addrs[0]));
	if (!d->dkim || (m->dkim != DKIM_SIGNED && dkim_signer_key_count(d->dkim) == 0))
		return; /* no key at all: nothing to say per message, as for SMTP */
	if (m->dkim == DKIM_SIGNED)
		log_info("http=%s queue=%s event=dkim result=signed domain=%s", http_req_id(j->r),
		         m->id, log_q(m->dkim_domain));
	else
		log_info("http=%s queue=%s event=dkim result=unsigned reason=%s domain=%s",
		         http_req_id(j->r), m->id, dkim_result_name(m->dkim),
		         *m->dkim_domain ? log_q(m->dkim_domain) : "-");
}

static int any_utf8(const struct mime_addr *a, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (mime_addr_utf8(&a[i]))
			return 1;
	return 0;
}

/* A new message for the results res[idx[0..n)]; its spool file opened. */
static struct send_msg *msg_new(struct send_job *j, const size_t *idx, size_t n)
{
	struct send_msg *m = &j->msgs[j->n_msgs];
	char *err = NULL;
	size_t i;

	m->job = j;
	m->sm = spool_msg_new(http_req_deps(j->r)->spool, &err);
	if (!m->sm) {
		log_err("http=%s event=spool_error error=%s", http_req_id(j->r), log_q(err));
		free(err);
		return NULL;
	}
	snprintf(m->id, sizeof(m->id), "%s", spool_msg_id(m->sm));
	m->rcpts = xcalloc(n, sizeof(*m->rcpts));
	m->addrs = xcalloc(n, sizeof(*m->addrs));
	for (i = 0; i < n; i++) {
		m->rcpts[i].addr = (char *)j->res[idx[i]].to;
		m->addrs[i] = j->res[idx[i]].to;
		j->res[idx[i]].msg = m;
	}
	m->n_rcpts = n;
	j->n_msgs++;
	return m;
}

/* One message: opened, built, written; on failure its recipients are refused. */
static void queue_one(struct send_job *j, const struct send_content *c, const size_t *idx, size_t n,
                      const struct mime_addr *to, size_t n_to)
{
	const struct send_req *q = &j->q;
	struct send_msg *m = msg_new(j, idx, n);
	struct buf b;
	size_t i;

	if (!m) {
		for (i = 0; i < n; i++)
			snprintf(j->res[idx[i]].reason, sizeof(j->res[0].reason), "queue error");
		return;
	}
	struct send_content tc = *c;
	char *html = tracked_html(j, c->html, m->id, m->addrs[0]);

	if (html)
		tc.html = html;
	buf_init(&b);
	send_build(j, &tc, to, n_to, q->n_batch ? NULL : q->cc, q->n_batch ? 0 : q->n_cc, m->id,
	           &b);
	free(html);
	m->subject = xstrdup(c->subject ? c->subject : "");
	m->smtputf8 = mime_addr_utf8(&q->from) ||
	              (q->has_reply_to && mime_addr_utf8(&q->reply_to)) || any_utf8(to, n_to) ||
	              (!q->n_batch && any_utf8(q->cc, q->n_cc)) ||
	              (!q->n_batch && any_utf8(q->bcc, q->n_bcc));
	if (send_write(j, m, &b) < 0)
		m->state = -1;
	for (i = 0; m->dkim == DKIM_FAILED && i < n; i++)
		snprintf(j->res[idx[i]].reason, sizeof(j->res[0].reason),
		         "DKIM signing failed (the log says why)");
	buf_free(&b);
}

/* ---- recipients, suppressions, templates (the worker) ---- */

static void results_init(struct send_job *j)
{
	const struct send_req *q = &j->q;
	size_t i, n = 0;

	j->n_res = q->n_batch ? q->n_batch : q->n_to + q->n_cc + q->n_bcc;
	j->res = xcalloc(j->n_res, sizeof(*j->res));
	j->msgs = xcalloc(j->n_res, sizeof(*j->msgs));
	for (i = 0; i < q->n_batch; i++)
		j->res[n++].to = q->batch[i].to.addr;
	for (i = 0; i < q->n_to; i++)
		j->res[n++].to = q->to[i].addr;
	for (i = 0; i < q->n_cc; i++)
		j->res[n++].to = q->cc[i].addr;
	for (i = 0; i < q->n_bcc; i++)
		j->res[n++].to = q->bcc[i].addr;
}

/* Suppressed recipients refused with the entry's reason; -1 on a database error. */
static int suppressions(struct send_job *j, struct store *st)
{
	const char **addrs = xcalloc(j->n_res, sizeof(*addrs));
	unsigned char *found = xcalloc(j->n_res, 1);
	struct store_supp *s = xcalloc(j->n_res, sizeof(*s));
	char *err = NULL;
	size_t i;
	int rc;

	for (i = 0; i < j->n_res; i++)
		addrs[i] = j->res[i].to;
	rc = store_supp_check_many(st, j->account, addrs, j->n_res, found, s, &err);
	for (i = 0; rc > 0 && i < j->n_res; i++)
		if (found[i]) {
			j->res[i].suppressed = 1;
			snprintf(j->res[i].reason, sizeof(j->res[i].reason), "suppressed: %s",
			         s[i].reason);
		}
	if (rc < 0)
		api_answer_store_error(j->r, &j->ans, err);
	free(err);
	free(addrs);
	free(found);
	free(s);
	return rc < 0 ? -1 : 0;
}

/* Renders t with vars into out and c; 0, or -1 with why. */
/* A rendering's warnings into the answer's "warnings" (SPEC 6: a missing
 * variable renders empty and is reported), each naming its recipient in a
 * batch; at most SEND_MAX_WARNINGS in all. */
#define SEND_MAX_WARNINGS 100

static void note_warnings(struct send_job *j, const struct api_rendered *out, const char *to)
{
	json_t *list = api_warnings_json(out), *w;
	size_t i;

	if (!j->warnings)
		j->warnings = json_array();
	j->warnings_truncated |= out->warnings_truncated;
	json_array_foreach(list, i, w)
	{
		if (json_array_size(j->warnings) >= SEND_MAX_WARNINGS) {
			j->warnings_truncated = 1;
			break;
		}
		if (to)
			json_object_set_new(w, "to", json_string(to));
		json_array_append(j->warnings, w);
	}
	json_decref(list);
}

static int render(struct send_job *j, const struct api_template *t, const json_t *vars,
                  const char *to, struct api_rendered *out, struct send_content *c, char *why,
                  size_t cap)
{
	if (api_template_render(t, vars, out) < 0) {
		snprintf(why, cap, "template %s: %s", api_part_name(out->failed), out->err.message);
		return -1;
	}
	c->subject = out->out[API_PART_SUBJECT].data;
	if (out->n_warnings || out->warnings_truncated)
		note_warnings(j, out, to);
	c->text = out->has[API_PART_TEXT] ? out->out[API_PART_TEXT].data : NULL;
	c->html = out->has[API_PART_HTML] ? out->out[API_PART_HTML].data : NULL;
	return 0;
}

/* One message per recipient of the batch that is not refused. */
static void queue_batch(struct send_job *j, const struct api_template *t)
{
	const struct send_req *q = &j->q;
	struct send_content c = {q->subject, q->text, q->html};
	struct api_rendered out;
	size_t i;

	for (i = 0; i < q->n_batch; i++) {
		json_t *vars = q->vars ? json_copy(q->vars) : json_object();
		if (j->res[i].suppressed)
			goto next;
		if (q->batch[i].vars)
			json_object_update(vars, q->batch[i].vars);
		if (t && render(j, t, vars, j->res[i].to, &out, &c, j->res[i].reason,
		                sizeof(j->res[i].reason)) < 0) {
			api_rendered_free(&out);
			goto next;
		}
		queue_one(j, &c, &i, 1, &q->batch[i].to, 1);
		if (t)
			api_rendered_free(&out);
	next:
		json_decref(vars);
	}
}

/* The one message of a request without recipients[]. */
static void queue_single(struct send_job *j, const struct api_template *t)
{
	const struct send_req *q = &j->q;
	struct send_content c = {q->subject, q->text, q->html};
	struct api_rendered out;
	size_t *idx = xcalloc(j->n_res, sizeof(*idx)), i, n = 0;
	char why[sizeof(j->res[0].reason)];

	for (i = 0; i < j->n_res; i++)
		if (!j->res[i].suppressed)
			idx[n++] = i;
	if (n && t && render(j, t, q->vars, NULL, &out, &c, why, sizeof(why)) < 0) {
		struct http_problem p = {400, "invalid_field", "template", ""};
		snprintf(p.message, sizeof(p.message), "%.200s", why);
		api_answer_problem(&j->ans, &p, NULL);
	} else if (n && j->per_rcpt) { /* each recipient its own links */
		for (i = 0; i < n; i++)
			queue_one(j, &c, &idx[i], 1, q->to, q->n_to);
	} else if (n) {
		queue_one(j, &c, idx, n, q->to, q->n_to);
	}
	if (n && t)
		api_rendered_free(&out);
	free(idx);
}

/* The template of the request (NULL: none); -1 with the answer made. */
static int template_get(struct send_job *j, struct api_template **t)
{
	char *err = NULL;
	int rc;

	*t = NULL;
	if (!j->q.tmpl)
		return 0;
	rc = api_tmpl_get(http_req_deps(j->r)->templates, j->account, j->q.tmpl, t, &err);
	if (rc == API_TMPL_NOT_FOUND || rc == API_TMPL_BROKEN) {
		struct http_problem p = {400, "invalid_field", "template", ""};
		snprintf(p.message, sizeof(p.message), "template: %s",
		         rc == API_TMPL_NOT_FOUND ? "no template of that name" : err);
		api_answer_problem(&j->ans, &p, NULL);
	} else if (rc < 0) {
		api_answer_store_error(j->r, &j->ans, err);
	}
	free(err);
	return rc;
}

/* The From domain must be the account's; -1 with the answer made. */
static int sender_owned(struct send_job *j, struct store *st)
{
	const char *dom = smtp_address_domain(j->q.from.addr);
	int rc = store_user_owns_domain(st, j->account, dom);

	if (rc == 1)
		return 0;
	if (rc < 0) {
		api_answer_store_error(j->r, &j->ans, "sender domain check failed");
		return -1;
	}
	struct http_problem p = {403, "sender_not_owned", "from", ""};
	snprintf(p.message, sizeof(p.message), "from: account %s may not send from %s", j->account,
	         dom);
	api_answer_problem(&j->ans, &p, NULL);
	return -1;
}

static void send_run(void *arg)
{
	struct send_job *j = arg;
	struct store *st = http_req_deps(j->r)->store;
	struct api_template *t = NULL;
	struct http_problem p = {0};
	size_t len;
	const char *body = http_req_body(j->r, &len);

	if (!(j->body = http_json_body(body, len, &p)) || send_req_parse(j->body, &j->q, &p) < 0) {
		api_answer_problem(&j->ans, &p, NULL);
		return;
	}
	if (send_idem_begin(j->r, j->account, &j->idem, &j->ans) < 0)
		return;
	j->tracking = j->q.track_opens || j->q.track_clicks;
	j->per_rcpt = j->tracking || j->q.unsubscribe;
	if (j->tracking && api_track_key(http_req_conf(j->r), j->track_key) < 0) {
		api_answer_error(&j->ans, 500, "internal_error", "the tracking key cannot be read");
		send_idem_end(j->r, &j->idem, &j->ans);
		return;
	}
	results_init(j);
	if (sender_owned(j, st) == 0 && suppressions(j, st) == 0 && template_get(j, &t) == 0) {
		if (j->q.n_batch)
			queue_batch(j, t);
		else
			queue_single(j, t);
	}
	if (t)
		api_template_unref(t);
	if (j->ans.body) /* refused whole: nothing is queued */
		send_idem_end(j->r, &j->idem, &j->ans);
}

/* ---- commit and answer (the loop) ---- */

static void job_free(struct send_job *j)
{
	size_t i;

	for (i = 0; i < j->n_msgs; i++) {
		if (j->msgs[i].sm)
			spool_msg_abort(j->msgs[i].sm);
		free(j->msgs[i].subject);
		free(j->msgs[i].rcpts);
		free(j->msgs[i].addrs);
	}
	free(j->msgs);
	free(j->res);
	send_req_free(&j->q);
	json_decref(j->body);
	json_decref(j->warnings);
	free(j->ans.body);
	free(j);
}

static void envelope_of(const struct send_job *j, const struct send_msg *m, struct envelope *e)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->id, m->id, sizeof(e->id));
	e->mail_from = (char *)j->q.from.addr;
	e->account = (char *)j->account;
	e->client_ip = "";
	e->helo = "";
	e->created = m->created;
	e->size = m->size;
	e->body = m->smtputf8 ? BODY_8BITMIME : BODY_7BIT;
	e->smtputf8 = m->smtputf8;
	e->rcpts = m->rcpts;
	e->n_rcpts = m->n_rcpts;
}

static void notify(struct send_job *j)
{
	const struct http_deps *d = http_req_deps(j->r);
	struct envelope env;
	size_t i;

	for (i = 0; i < j->n_msgs && d->queued; i++) {
		const struct send_msg *m = &j->msgs[i];
		if (m->state != 1)
			continue;
		log_info("http=%s queue=%s event=queued from=<%s> rcpts=%zu size=%llu account=%s "
		         "via=http",
		         http_req_id(j->r), m->id, log_q(j->q.from.addr), m->n_rcpts,
		         (unsigned long long)m->size, log_q(j->account));
		envelope_of(j, m, &env);
		d->queued(d->queued_arg, &env,
		          &(struct events_message){.id = m->id,
		                                   .account = j->account,
		                                   .from = j->q.from.addr,
		                                   .subject = m->subject,
		                                   .tags = j->q.tags,
		                                   .n_tags = j->q.n_tags,
		                                   .metadata = j->q.metadata,
		                                   .rcpts = m->addrs,
		                                   .n_rcpts = m->n_rcpts});
	}
	for (i = 0; i < j->n_res && d->events; i++)
		if (j->res[i].suppressed)
			events_emit(d->events,
			            &(struct events_event){.type = EVENT_SUPPRESSED,
			                                   .account = j->account,
			                                   .recipient = j->res[i].to,
			                                   .reason = j->res[i].reason + 12});
}

static json_t *result_json(const struct send_result *r)
{
	int ok = r->msg && r->msg->state == 1;
	json_t *o = json_pack("{s:s,s:s}", "to", r->to, "status", ok ? "queued" : "refused");

	json_object_set_new(o, "id", r->msg && ok ? json_string(r->msg->id) : json_null());
	if (!ok)
		json_object_set_new(o, "reason",
		                    json_string(r->reason[0] ? r->reason : "queue error"));
	return o;
}

static void answer(struct send_job *j)
{
	json_t *list = json_array(), *body;
	size_t i, queued = 0, failed = 0, quota = 0;

	for (i = 0; i < j->n_res; i++) {
		queued += j->res[i].msg && j->res[i].msg->state == 1;
		failed += (j->res[i].msg && j->res[i].msg->state != 1) ||
		          strcmp(j->res[i].reason, "queue error") == 0;
		quota += j->res[i].quota;
		json_array_append_new(list, result_json(&j->res[i]));
	}
	body = json_pack("{s:o}", "messages", list);
	if (j->warnings) {
		json_object_set(body, "warnings", j->warnings);
		if (j->warnings_truncated)
			json_object_set_new(body, "warnings_truncated", json_true());
	}
	if (!queued && quota == j->n_res) { /* SPEC 6: only the quota refused */
		json_object_set_new(body, "error",
		                    json_pack("{s:s,s:s}", "code", "over_quota", "message",
		                              "the account's quota is used up: see Retry-After"));
		api_answer_json(&j->ans, 429, body);
		return;
	}
	if (!queued)
		json_object_set_new(
		    body, "error",
		    json_pack("{s:s,s:s}", "code", failed ? "queue_error" : "nothing_queued",
		              "message",
		              failed ? "the spool could not take the messages"
		                     : "every recipient was refused: see messages[].reason"));
	api_answer_json(&j->ans, queued ? 200 : failed ? 503 : 422, body);
}

static void send_reply(struct send_job *j)
{
	char after[32];

	if (j->idem.replayed)
		http_add_header(j->r, "Idempotent-Replayed", "true");
	if (j->quota_reset) {
		int64_t now = clock_now_s();
		snprintf(after, sizeof(after), "%lld",
		         (long long)(j->quota_reset > now ? j->quota_reset - now : 1));
		http_add_header(j->r, "Retry-After", after);
	}
	api_answer_send(j->r, &j->ans);
	job_free(j);
}

static void idem_save(void *arg)
{
	struct send_job *j = arg;

	send_idem_end(j->r, &j->idem, &j->ans);
}

static void idem_saved(void *arg)
{
	send_reply(arg);
}

/* Every commit has reported: events, the answer (recorded first when the
 * request has an Idempotency-Key: the store is the worker's). */
static void finish(struct send_job *j)
{
	notify(j);
	answer(j);
	if (j->idem.claimed)
		work_submit(http_req_deps(j->r)->work, idem_save, idem_saved, j);
	else
		send_reply(j);
}

static void on_commit(void *arg, int ok, const char *id)
{
	struct send_msg *m = arg;
	struct send_job *j = m->job;
	struct deliv *d = http_req_deps(j->r)->deliv;

	m->state = ok ? 1 : -1;
	if (ok)
		metrics_add_l(M_MESSAGES_ACCEPTED, MS_HTTP, m->n_rcpts);
	if (m->reserved && ok)
		deliv_quota_commit(d, j->account, m->n_rcpts);
	else if (m->reserved)
		deliv_quota_release(d, j->account, m->n_rcpts);
	if (!ok)
		log_warn("http=%s queue=%s event=queue_failed", http_req_id(j->r), id);
	else
		log_fields(j, m);
	if (--j->pending == 0)
		finish(j);
}

/* A written message the account may not send now: out of the spool, its
 * recipients refused with the reply's text (without its codes). */
static void policy_refuse(struct send_job *j, struct send_msg *m, const char *why, int quota)
{
	if (strncmp(why, "450 4.7.1 ", 10) == 0)
		why += 10;
	spool_msg_abort(m->sm);
	m->sm = NULL;
	m->state = -2;
	for (size_t i = 0; i < j->n_res; i++)
		if (j->res[i].msg == m) {
			j->res[i].msg = NULL;
			j->res[i].quota = quota;
			snprintf(j->res[i].reason, sizeof(j->res[i].reason), "%s", why);
		}
}

/* On the loop, before the commits, as an SMTP session at MAIL and RCPT: a
 * paused account sends nothing; each message reserves its recipients
 * against the quotas shared with SMTP (all of a message's or none). */
static void send_policy(struct send_job *j)
{
	struct deliv *d = http_req_deps(j->r)->deliv;
	char why[256];
	int paused;

	if (!d)
		return;
	paused = deliv_paused(d, j->account, why, sizeof(why));
	for (size_t i = 0; i < j->n_msgs; i++) {
		struct send_msg *m = &j->msgs[i];
		int64_t reset = 0;

		if (m->state < 0)
			continue;
		if (paused) {
			policy_refuse(j, m, why, 0);
		} else if (deliv_quota_reserve(d, j->account, m->n_rcpts, why, sizeof(why),
		                               &reset) < 0) {
			policy_refuse(j, m, why, 1);
			j->quota_reset = reset;
		} else {
			m->reserved = 1;
		}
	}
}

/* Every written message to the spool's committer; the answer waits for all. */
static void send_commit(void *arg)
{
	struct send_job *j = arg;
	struct envelope env;
	size_t i;

	if (j->ans.body) { /* refused whole, found wrong, or answered before */
		send_reply(j);
		return;
	}
	send_policy(j);
	j->pending = 1; /* held until every commit is submitted */
	for (i = 0; i < j->n_msgs; i++) {
		struct send_msg *m = &j->msgs[i];
		if (m->state < 0)
			continue;
		m->created = clock_now_s();
		envelope_of(j, m, &env);
		j->pending++;
		spool_msg_commit(m->sm, &env, on_commit, m);
		m->sm = NULL; /* the spool owns it now */
	}
	if (--j->pending == 0)
		finish(j);
}

void api_h_send(struct http_req *r)
{
	struct send_job *j = xcalloc(1, sizeof(*j));

	j->r = r;
	snprintf(j->account, sizeof(j->account), "%s", http_req_auth(r)->account);
	http_req_defer(r, send_run, send_commit, j);
}
