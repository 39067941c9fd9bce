/*
 * api_send_build: one API message's bytes, on a worker, once the policy
 * (pause, quota) has let it through (api_send.c plans it, commits it).
 *
 * build_one(): the spool file opened (the queue ID), the HTML tracked
 * (each link and the pixel signed for its one recipient), the MIME
 * message built (send_build), its size checked against max_message_size,
 * then what accept adds (send_fields: List-Unsubscribe, the DKIM
 * signatures) and the size checked again with them, then written to the
 * spool file (send_write). A message too large is refused (422
 * message_too_large when that is all that refused), a spool or signing failure fails it (queue
 * error); neither is ever half-written into the queue.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_send.h"
#include "conf/conf.h"
#include "dkim/dkim.h"
#include "log/log.h"
#include "spool/spool.h"
#include "track/track.h"
#include "unsub/unsub.h"

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

/* A message refused before its commit: its spool file (if any) dropped,
 * its recipients refused with why. */
void send_msg_refuse(struct send_job *j, struct send_msg *m, const char *why,
                     enum send_refusal kind)
{
	if (m->sm)
		spool_msg_abort(m->sm);
	m->sm = NULL;
	m->state = -2;
	for (size_t i = 0; i < m->n_rcpts; i++) {
		struct send_result *r = &j->res[m->idx[i]];
		r->msg = NULL;
		r->why = kind;
		snprintf(r->reason, sizeof(r->reason), "%s", why);
	}
}

/* -1 (m refused) when size bytes are above the limit (SMTP: 552 5.3.4). */
static int size_check(struct send_job *j, struct send_msg *m, uint64_t size)
{
	char why[160];

	if (size <= j->max_size)
		return 0;
	snprintf(why, sizeof(why), "message too large: %llu bytes, above max_message_size (%llu)",
	         (unsigned long long)size, (unsigned long long)j->max_size);
	send_msg_refuse(j, m, why, REFUSED_SIZE);
	return -1;
}

/* The fields and the bytes into m's spool file; -1 when the spool or
 * signing fails (m->state -1) or the message is too large (refused). */
static int send_write(struct send_job *j, struct send_msg *m, const struct buf *bytes)
{
	struct buf front;
	int rc;

	buf_init(&front);
	send_fields(j, m, bytes, &front);
	if (size_check(j, m, front.len + bytes->len) < 0) {
		buf_free(&front);
		return -1;
	}
	/* keys but no signature (libopendkim failed): not sent unsigned, as
	 * SMTP answers 451 for it; the recipients are refused (queue error).
	 * Flushed here, on the worker: the commit on the loop then writes
	 * nothing (a batch would cost the loop a write per message). */
	rc = m->dkim == DKIM_FAILED ||
	     (front.len && spool_msg_write(m->sm, front.data, front.len) < 0) ||
	     spool_msg_write(m->sm, bytes->data, bytes->len) < 0 || spool_msg_flush(m->sm) < 0;
	buf_free(&front);
	if (rc) {
		m->state = -1;
		return -1;
	}
	m->size = spool_msg_size(m->sm);
	return 0;
}

static int any_utf8(const struct mime_addr *a, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (mime_addr_utf8(&a[i]))
			return 1;
	return 0;
}

/*
 * Workers create their spool files one at a time. The kernel serializes
 * creations in tmp/ anyway (the directory's lock), but a worker that
 * waits for it there spins on a CPU: on ext4 without a journal a creation
 * scans the inode bitmap past every inode freed in the last minutes, and
 * perf showed two workers of a batch spinning 15 % of the relay's CPU.
 * Waiting here sleeps.
 */
static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;

/* m's spool file opened, its ID taken; -1 (m failed) when the spool fails. */
static int msg_open(struct send_job *j, struct send_msg *m)
{
	char *err = NULL;

	pthread_mutex_lock(&create_lock);
	m->sm = spool_msg_new(http_req_deps(j->r)->spool, &err);
	pthread_mutex_unlock(&create_lock);
	if (!m->sm) {
		log_err("http=%s event=spool_error error=%s", http_req_id(j->r), log_q(err));
		free(err);
		m->state = -1;
		return -1;
	}
	snprintf(m->id, sizeof(m->id), "%s", spool_msg_id(m->sm));
	return 0;
}

/* One planned message, on the worker once its quota is reserved: opened,
 * built, checked against max_message_size (before signing, and again
 * with the signatures), signed and written. On failure its recipients are
 * refused. */
static void build_one(struct send_job *j, struct send_msg *m)
{
	const struct send_req *q = &j->q;
	struct send_content tc = m->c;
	struct buf b;
	char *html;

	if (msg_open(j, m) < 0)
		return;
	if ((html = tracked_html(j, m->c.html, m->id, m->addrs[0])))
		tc.html = html;
	buf_init(&b);
	send_build(j, &tc, m->to, m->n_to, q->n_batch ? NULL : q->cc, q->n_batch ? 0 : q->n_cc,
	           m->id, &b);
	free(html);
	m->smtputf8 = mime_addr_utf8(&q->from) ||
	              (q->has_reply_to && mime_addr_utf8(&q->reply_to)) ||
	              any_utf8(m->to, m->n_to) || (!q->n_batch && any_utf8(q->cc, q->n_cc)) ||
	              (!q->n_batch && any_utf8(q->bcc, q->n_bcc));
	if (size_check(j, m, b.len) == 0 && send_write(j, m, &b) < 0 && m->dkim == DKIM_FAILED)
		for (size_t i = 0; i < m->n_rcpts; i++)
			snprintf(j->res[m->idx[i]].reason, sizeof(j->res[0].reason),
			         "DKIM signing failed (the log says why)");
	buf_free(&b);
}

/* The request's plan for its Idempotency-Key claim (malloc'd JSON):
 * {"messages": [{"to", "id"} for each recipient of a written message,
 * {"to", "reason"} for the others]}. */
static char *plan_text(const struct send_job *j)
{
	json_t *list = json_array(), *plan;
	char *text;

	for (size_t i = 0; i < j->n_res; i++) {
		const struct send_result *r = &j->res[i];
		json_array_append_new(list,
		                      r->msg && r->msg->state == 0
		                          ? json_pack("{s:s,s:s}", "to", r->to, "id", r->msg->id)
		                          : json_pack("{s:s,s:s}", "to", r->to, "reason",
		                                      r->reason[0] ? r->reason : "queue error"));
	}
	plan = json_pack("{s:o}", "messages", list);
	text = json_dumps(plan, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(plan);
	return text;
}

/* With an Idempotency-Key: the plan recorded before any commit; if it
 * cannot be, nothing is committed (a crash could not be resolved). */
static void plan_record(struct send_job *j)
{
	size_t i, n = 0;
	char *text;

	for (i = 0; i < j->n_msgs; i++)
		n += j->msgs[i].state == 0;
	if (!j->idem.claimed || !n)
		return;
	text = plan_text(j);
	if (!text || send_idem_plan(j->r, &j->idem, text) < 0)
		for (i = 0; i < j->n_msgs; i++)
			if (j->msgs[i].state == 0)
				j->msgs[i].state = -1; /* queue error; job_free drops its file */
	free(text);
}

void send_build_range(struct send_job *j, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (j->msgs[i].state == 0)
			build_one(j, &j->msgs[i]);
}

/* On a worker: every message the policy let through, built and written,
 * then the plan recorded. */
void send_build_all(void *arg)
{
	struct send_job *j = arg;

	send_build_range(j, 0, j->n_msgs);
	plan_record(j);
}
