/*
 * api_send: POST /v1/messages (SPEC 6, docs/api.md "Sending").
 *
 * On a worker (send_run): below [server] min_free_space the request is
 * refused whole (503, Retry-After); the body is parsed (400 naming the
 * field), the key's account must own the From domain (as an authenticated
 * SMTP session must; 403), suppressed recipients are refused with the
 * entry's reason, the template (if any) is rendered per message, and the
 * messages are planned (their recipients and content), not yet built.
 *
 * On the loop (send_reserve): the policy, as an SMTP session's at MAIL
 * and RCPT: a paused account sends nothing, each message reserves its
 * recipients against the quota. A batch's messages are built only after
 * that, so what the quota refuses is never built nor signed: on a worker
 * (api_send_build.c) what passed is built, checked against
 * max_message_size, signed and written to spool files. A single message
 * (or one per recipient when tracked) is built on the first worker,
 * before the policy, which saves the request a second hop through the
 * work pool; what the policy refuses is dropped from the spool unsent.
 *
 * On the loop (send_commit): every file is committed to the spool (the
 * reservations of the messages that failed released); the answer waits
 * for the last done() (SPEC 6: only once every message is durable). Then
 * each queued message is indexed for delivery and its accepted events
 * emitted through deps->queued, exactly as an SMTP message after its
 * commit, and the answer lists every recipient: queued with the message's
 * ID, or refused with a reason. 200 when any is queued, else 429 (only
 * the quota refused), 503 (the spool failed) or 422 (message_too_large
 * when only the size refused).
 *
 * A batch (recipients[]) is one message per recipient, built in slices
 * on workers (in one job when an Idempotency-Key's plan must be recorded
 * before any commit); each slice is committed as soon as it is written
 * (the spool's group commits of the first slices overlap the building of
 * the next), and the answer waits for the last commit.
 * A message whose commit fails is answered refused ("queue error"),
 * never silently dropped; a crash before the answer leaves the
 * committed messages queued and the client, with no answer, retries with
 * its Idempotency-Key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "api/api_send.h"
#include "cluster/cluster.h"
#include "conf/conf.h"
#include "deliv/deliv.h"
#include "dkim/dkim.h"
#include "events/events.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "smtpd/smtp_parse.h"
#include "spool/spool.h"
#include "store/store.h"
#include "work/work.h"

/* On the loop, once committed: what signing did, as smtpd logs it. */
static void log_fields(const struct send_job *j, const struct send_msg *m)
{
	const struct http_deps *d = http_req_deps(j->r);

	if (m->unsub_missing)
		log_warn("queue=%s event=list_unsubscribe result=none to=<%s>", m->id,
		         log_q(m->addrs[0]));
	if (!d->dkim || (m->dkim != DKIM_SIGNED && dkim_signer_key_count(d->dkim) == 0))
		return; /* no key at all: nothing to say per message, as for SMTP */
	if (m->dkim == DKIM_SIGNED)
		log_info("queue=%s event=dkim result=signed domain=%s", m->id,
		         log_q(m->dkim_domain));
	else
		log_info("queue=%s event=dkim result=unsigned reason=%s domain=%s", m->id,
		         dkim_result_name(m->dkim), *m->dkim_domain ? log_q(m->dkim_domain) : "-");
}

/* A message planned for the results res[idx[0..n)], To: to[0..n_to),
 * built from c (borrowed: the request's, or a rendering the job keeps). */
static struct send_msg *msg_plan(struct send_job *j, const size_t *idx, size_t n,
                                 const struct mime_addr *to, size_t n_to,
                                 const struct send_content *c)
{
	struct send_msg *m = &j->msgs[j->n_msgs++];
	size_t i;

	m->job = j;
	m->rcpts = xcalloc(n, sizeof(*m->rcpts));
	m->addrs = xcalloc(n, sizeof(*m->addrs));
	m->idx = xcalloc(n, sizeof(*m->idx));
	for (i = 0; i < n; i++) {
		m->rcpts[i].addr = (char *)j->res[idx[i]].to;
		m->addrs[i] = j->res[idx[i]].to;
		m->idx[i] = idx[i];
		j->res[idx[i]].msg = m;
	}
	m->n_rcpts = n;
	m->to = to;
	m->n_to = n_to;
	m->c = *c;
	m->subject = xstrdup(c->subject ? c->subject : "");
	for (i = 0; i < API_PARTS; i++)
		buf_init(&m->rendered[i]);
	return m;
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

/* A rendering's parts, kept by m (the rendering's buffers moved). */
static void keep_rendering(struct send_msg *m, struct api_rendered *out)
{
	for (size_t k = 0; k < API_PARTS; k++) {
		buf_free(&m->rendered[k]); /* msg_plan's empty buffer */
		m->rendered[k] = out->out[k];
		buf_init(&out->out[k]);
	}
}

/* One message per recipient of the batch that is not refused, each
 * rendered with its variables (built later, once its quota is reserved). */
static void plan_batch(struct send_job *j, const struct api_template *t)
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
		struct send_msg *m = msg_plan(j, &i, 1, &q->batch[i].to, 1, &c);
		if (t) {
			keep_rendering(m, &out);
			api_rendered_free(&out);
		}
	next:
		json_decref(vars);
	}
}

/* The one message of a request without recipients[] (one per recipient
 * when each needs its own links). */
static void plan_single(struct send_job *j, const struct api_template *t)
{
	const struct send_req *q = &j->q;
	struct send_content c = {q->subject, q->text, q->html};
	size_t *idx = xcalloc(j->n_res, sizeof(*idx)), i, n = 0;
	char why[sizeof(j->res[0].reason)];

	for (i = 0; i < j->n_res; i++)
		if (!j->res[i].suppressed)
			idx[n++] = i;
	if (n && t) {
		j->single = xcalloc(1, sizeof(*j->single));
		if (render(j, t, q->vars, NULL, j->single, &c, why, sizeof(why)) < 0) {
			struct http_problem p = {400, "invalid_field", "template", ""};
			snprintf(p.message, sizeof(p.message), "%.200s", why);
			api_answer_problem(&j->ans, &p, NULL);
			n = 0;
		}
	}
	if (n && j->per_rcpt) {
		for (i = 0; i < n; i++)
			msg_plan(j, &idx[i], 1, q->to, q->n_to, &c);
	} else if (n) {
		msg_plan(j, idx, n, q->to, q->n_to, &c);
	}
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

/* Below [server] min_free_space the request is refused whole, as SMTP
 * answers MAIL 452 4.3.1: 503 with Retry-After, nothing spooled. */
#define SEND_DISK_RETRY 60 /* seconds */

static int disk_low(struct send_job *j)
{
	const struct conf *c = http_req_conf(j->r);
	struct statvfs v;
	uint64_t avail;

	if (statvfs(c->data_dir, &v) < 0)
		return 0; /* the spool's own error answers */
	avail = (uint64_t)v.f_bavail * v.f_frsize;
	if (avail >= c->min_free_space)
		return 0;
	log_warn("http=%s event=disk_low free=%llu min_free_space=%llu", http_req_id(j->r),
	         (unsigned long long)avail, (unsigned long long)c->min_free_space);
	api_answer_error(&j->ans, 503, "insufficient_storage",
	                 "the server's disk has %llu bytes free, below [server] min_free_space "
	                 "(%llu): retry later",
	                 (unsigned long long)avail, (unsigned long long)c->min_free_space);
	j->retry_at = clock_now_s() + SEND_DISK_RETRY;
	return 1;
}

/* While another node holds this node's queue-ID tag, or another process
 * runs with its ID, its IDs could be the other's (cluster_tag_lost,
 * cluster_id_clash): refused whole, as SMTP answers MAIL 451 4.3.0. */
static int tag_lost(struct send_job *j)
{
	if (cluster_id_clash())
		api_answer_error(&j->ans, 503, "node_id_clash",
		                 "another process runs with this node's ID: retry later or through "
		                 "another node");
	else if (cluster_tag_lost())
		api_answer_error(&j->ans, 503, "node_tag_lost",
		                 "this node's queue-ID tag is held by another node: retry later or "
		                 "through another node");
	else
		return 0;
	j->retry_at = clock_now_s() + 5; /* a heartbeat may get the tag back */
	return 1;
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
	if (disk_low(j) || tag_lost(j) || send_idem_begin(j->r, j->account, &j->idem, &j->ans) < 0)
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
			plan_batch(j, t);
		else
			plan_single(j, t);
	}
	if (t)
		api_template_unref(t);
	if (j->ans.body) { /* refused whole: nothing is queued */
		send_idem_end(j->r, &j->idem, &j->ans);
	} else if (!j->q.n_batch) { /* one message: built now, no second hop */
		send_build_all(j);
		j->built = 1;
	}
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
		free(j->msgs[i].idx);
		for (size_t k = 0; k < API_PARTS; k++)
			buf_free(&j->msgs[i].rendered[k]);
	}
	if (j->single)
		api_rendered_free(j->single);
	free(j->single);
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

/* The error object of an answer where nothing is queued. */
static void nothing_queued(struct send_job *j, json_t *body, size_t failed, size_t quota,
                           size_t large)
{
	int status = failed ? 503 : 422;
	const char *code = failed ? "queue_error" : "nothing_queued";
	const char *msg = failed ? "the spool could not take the messages"
	                         : "every recipient was refused: see messages[].reason";

	if (quota == j->n_res) { /* SPEC 6: only the quota refused */
		status = 429;
		code = "over_quota";
		msg = "the account's quota is used up: see Retry-After";
	} else if (large == j->n_res) { /* still 422 (SPEC 6); 413 is max_request_size's */
		code = "message_too_large";
		msg = "the message is larger than max_message_size: see messages[].reason";
	}
	json_object_set_new(body, "error", json_pack("{s:s,s:s}", "code", code, "message", msg));
	api_answer_json(&j->ans, status, body);
}

static void answer(struct send_job *j)
{
	json_t *list = json_array(), *body;
	size_t i, queued = 0, failed = 0, quota = 0, large = 0;

	for (i = 0; i < j->n_res; i++) {
		queued += j->res[i].msg && j->res[i].msg->state == 1;
		failed += (j->res[i].msg && j->res[i].msg->state != 1) ||
		          strcmp(j->res[i].reason, "queue error") == 0;
		quota += j->res[i].why == REFUSED_QUOTA;
		large += j->res[i].why == REFUSED_SIZE;
		json_array_append_new(list, result_json(&j->res[i]));
	}
	body = json_pack("{s:o}", "messages", list);
	if (j->warnings) {
		json_object_set(body, "warnings", j->warnings);
		if (j->warnings_truncated)
			json_object_set_new(body, "warnings_truncated", json_true());
	}
	if (queued)
		api_answer_json(&j->ans, 200, body);
	else
		nothing_queued(j, body, failed, quota, large);
}

static void send_reply(struct send_job *j)
{
	char after[32];

	if (j->idem.replayed)
		http_add_header(j->r, "Idempotent-Replayed", "true");
	if (j->retry_at) {
		int64_t now = clock_now_s();
		snprintf(after, sizeof(after), "%lld",
		         (long long)(j->retry_at > now ? j->retry_at - now : 1));
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

/* The answer is recorded: only now are the messages handed to delivery
 * (notify), so that after a crash a message of a claim without an answer
 * is still in the spool (api_send_idem.c). */
static void idem_saved(void *arg)
{
	struct send_job *j = arg;

	notify(j);
	send_reply(j);
}

/* Every commit has reported: events, the answer (recorded first when the
 * request has an Idempotency-Key: the store is the worker's). */
static void finish(struct send_job *j)
{
	answer(j);
	if (j->idem.claimed) {
		work_submit(http_req_deps(j->r)->work, idem_save, idem_saved, j);
		return;
	}
	notify(j);
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

/* A 450 reply's text, without its codes, as a recipient's reason. */
static const char *reason_of(const char *reply)
{
	return strncmp(reply, "450 4.7.1 ", 10) == 0 ? reply + 10 : reply;
}

/* On the loop, before anything is built, as an SMTP session at MAIL and
 * RCPT: a paused account sends nothing; each message reserves its
 * recipients against the quotas shared with SMTP (all of a message's or
 * none; asked of Redis in a cluster, docs/cluster.md), so a batch over
 * quota is refused without being built or signed. after_policy() runs once
 * every reservation is answered. */
static void after_policy(struct send_job *j);

static void on_policy(void *arg, uint64_t granted, const char *why, int64_t reset)
{
	struct send_msg *m = arg;
	struct send_job *j = m->job;

	if (granted == m->n_rcpts) {
		m->reserved = 1;
	} else {
		send_msg_refuse(j, m, reason_of(why), REFUSED_QUOTA);
		j->retry_at = reset;
	}
	if (--j->pending == 0)
		after_policy(j);
}

static void send_policy(struct send_job *j)
{
	struct deliv *d = http_req_deps(j->r)->deliv;
	char why[256];
	int paused;

	j->pending = 1; /* held until every reservation is asked */
	paused = d && deliv_paused(d, j->account, why, sizeof(why));
	for (size_t i = 0; d && i < j->n_msgs; i++) {
		struct send_msg *m = &j->msgs[i];

		if (m->state != 0)
			continue; /* built already and refused (size) or failed */
		if (paused) {
			send_msg_refuse(j, m, reason_of(why), REFUSED_OTHER);
			continue;
		}
		j->pending++;
		deliv_quota_reserve_async(d, j->account, m->n_rcpts, 1, on_policy, m);
	}
	if (--j->pending == 0)
		after_policy(j);
}

/* On the loop, once built: a written message to the spool's committer
 * (j->pending counts it), or the reservation of one that failed or was
 * refused released. */
static void commit_one(struct send_job *j, struct send_msg *m)
{
	struct deliv *d = http_req_deps(j->r)->deliv;
	struct envelope env;

	if (m->state < 0) {
		if (m->reserved)
			deliv_quota_release(d, j->account, m->n_rcpts);
		m->reserved = 0;
		return;
	}
	m->created = clock_now_s();
	envelope_of(j, m, &env);
	j->pending++;
	spool_msg_commit(m->sm, &env, on_commit, m);
	m->sm = NULL; /* the spool owns it now */
}

/* Every message at once; the answer waits for all. */
static void send_commit(void *arg)
{
	struct send_job *j = arg;

	j->pending = 1; /* held until every commit is submitted */
	for (size_t i = 0; i < j->n_msgs; i++)
		commit_one(j, &j->msgs[i]);
	if (--j->pending == 0)
		finish(j);
}

/*
 * A batch without an Idempotency-Key (whose plan must be recorded before
 * any commit) is built in slices of SEND_SLICE messages, at most
 * SEND_SLICES_BUSY of them on workers at once (the pool keeps threads for
 * other requests), and each slice is committed as soon as it is written:
 * the group commits of the first slices overlap the building of the
 * next. The answer still waits for every commit (j->pending is held until
 * the last slice is in).
 */
#define SEND_SLICE       64
#define SEND_SLICES_BUSY 2

struct send_slice {
	struct send_job *j;
	size_t from, to;
};

static void slice_build(void *arg)
{
	struct send_slice *s = arg;

	send_build_range(s->j, s->from, s->to);
}

static void slices_start(struct send_job *j);

static void slice_built(void *arg)
{
	struct send_slice *s = arg;
	struct send_job *j = s->j;

	for (size_t i = s->from; i < s->to; i++)
		commit_one(j, &j->msgs[i]);
	free(s);
	j->building--;
	if (--j->slices_left > 0) {
		slices_start(j); /* j may be gone after it */
		return;
	}
	if (--j->pending == 0) /* send_slices()'s hold */
		finish(j);
}

/* Slices to workers, up to SEND_SLICES_BUSY at once. j->pending is held
 * meanwhile: a pool without threads runs each slice (and its commits) at
 * once, inside the loop. */
static void slices_start(struct send_job *j)
{
	j->pending++;
	while (j->building < SEND_SLICES_BUSY && j->next_build < j->n_msgs) {
		struct send_slice *s = xcalloc(1, sizeof(*s));

		s->j = j;
		s->from = j->next_build;
		s->to = j->n_msgs - s->from > SEND_SLICE ? s->from + SEND_SLICE : j->n_msgs;
		j->next_build = s->to;
		j->building++;
		work_submit(http_req_deps(j->r)->work, slice_build, slice_built, s);
	}
	if (--j->pending == 0)
		finish(j);
}

static void send_slices(struct send_job *j)
{
	j->pending = 1; /* held until the last slice is committed */
	j->next_build = 0;
	j->slices_left = (j->n_msgs + SEND_SLICE - 1) / SEND_SLICE;
	slices_start(j);
}

/* On the loop, once the request is planned: the policy, then (a batch)
 * the building and signing of what it let through on a worker. */
static void send_reserve(void *arg)
{
	struct send_job *j = arg;

	if (j->ans.body) { /* refused whole, found wrong, or answered before */
		send_reply(j);
		return;
	}
	send_policy(j);
}

/* Then (a batch) the building and signing of what it let through, on
 * workers: in one job when its Idempotency-Key plan must be recorded
 * first, else in slices. */
static void after_policy(struct send_job *j)
{
	size_t i;

	for (i = 0; i < j->n_msgs && j->msgs[i].state != 0; i++)
		;
	if (j->built || i == j->n_msgs)
		send_commit(j);   /* built already, or nothing to build */
	else if (j->idem.claimed) /* its plan is recorded before any commit */
		work_submit(http_req_deps(j->r)->work, send_build_all, send_commit, j);
	else
		send_slices(j);
}

/* The largest message an SMTP listener takes (its SIZE): API mail may be
 * as large as mail any listener accepts; 25m without listeners. */
static uint64_t max_message_size(const struct conf *c)
{
	uint64_t max = 0;

	for (size_t i = 0; i < c->n_listeners; i++)
		if (c->listeners[i].max_message_size > max)
			max = c->listeners[i].max_message_size;
	return max ? max : SEND_DEFAULT_MAX_SIZE;
}

void api_h_send(struct http_req *r)
{
	struct send_job *j = xcalloc(1, sizeof(*j));

	j->r = r;
	snprintf(j->account, sizeof(j->account), "%s", http_req_auth(r)->account);
	j->max_size = max_message_size(http_req_conf(r));
	http_req_defer(r, send_run, send_reserve, j);
}
