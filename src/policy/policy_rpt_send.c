/*
 * policy_rpt_send: sending the TLS-RPT reports of the periods that ended,
 * one round at a time (policy_rpt.c has the whole story). A round walks
 * its periods one after the other, so at most one report and its
 * messages are in memory at once:
 *
 *   due (work) -> per period: _smtp._tls TXT -> build (work: counts,
 *   report, gzip, delivery states, mail files) -> send to each address
 *   due -> record each outcome (work) -> period done (work) -> next
 *
 * At exit the round stops where it is: what was not recorded as sent is
 * sent by the next start (a mailto: commit that completes while the
 * spool closes is still recorded, synchronously).
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "dkim/dkim.h"
#include "dns/dns.h"
#include "log/log.h"
#include "policy/https.h"
#include "policy/policy_int.h"
#include "spool/spool.h"
#include "store/store.h"
#include "util/util.h"
#include "work/work.h"

#define RPT_GRACE_S      2           /* the tally of a period is written by then */
#define RPT_DUE_MAX      16          /* periods taken by one round */
#define RPT_MAX_ATTEMPTS 5           /* tries of one address before it is given up */
#define RPT_POST_MAX     (64 * 1024) /* bytes of a collector's answer read */
#define RPT_POST_TIMEOUT 30000
#define RPT_KEEP_S       (30 * 86400) /* counts kept after their period (tls status) */

/* One address of the current period. */
struct send {
	struct round *rd;
	size_t i; /* in rd->rec.rua */
	const char *state;
	int attempts;
	int64_t at;
	int due; /* to be tried in this round */
	int ok;  /* its outcome */
	struct spool_msg *msg;
	uint64_t https_id;
};

struct round {
	struct rpt *r;
	struct store_tlsrpt_row *due; /* the periods of the round */
	size_t n_due, k;
	struct tlsrpt_record rec;
	struct rpt_report rep;
	struct send sends[TLSRPT_RUA_MAX];
	int pending; /* sends and records in flight */
	uint64_t txt_id;
	char *err;
};

static void period_begin(struct round *rd);
static void period_next(struct round *rd);

static struct store *store_of(const struct round *rd)
{
	return rd->r->p->deps.store;
}

static const struct store_tlsrpt_row *period(const struct round *rd)
{
	return &rd->due[rd->k];
}

static void period_clear(struct round *rd)
{
	for (size_t i = 0; i < TLSRPT_RUA_MAX; i++) {
		if (rd->sends[i].msg)
			spool_msg_abort(rd->sends[i].msg);
		if (rd->sends[i].https_id)
			https_cancel(rd->r->p->https, rd->sends[i].https_id);
	}
	memset(rd->sends, 0, sizeof(rd->sends));
	rpt_report_clear(&rd->rep);
	free(rd->err);
	rd->err = NULL;
}

static void round_end(struct round *rd)
{
	period_clear(rd);
	store_tlsrpt_free(rd->due, rd->n_due);
	rd->r->round = NULL;
	free(rd);
}

/* ---------- the round ---------- */

static void due_run(void *arg)
{
	struct round *rd = arg;
	char *err = NULL;

	if (store_tlsrpt_due(store_of(rd), clock_now_s() - RPT_GRACE_S, RPT_DUE_MAX, &rd->due,
	                     &rd->n_due, &err) < 0) {
		log_warn("event=tlsrpt_error error=%s", log_q(err));
		free(err);
	}
}

static void due_done(void *arg)
{
	struct round *rd = arg;

	if (rd->r->stopped || rd->n_due == 0) {
		round_end(rd);
		return;
	}
	period_begin(rd);
}

void rpt_round_start(struct rpt *r)
{
	struct round *rd;

	if (r->round || r->stopped)
		return;
	rd = xcalloc(1, sizeof(*rd));
	rd->r = r;
	r->round = rd;
	work_submit(r->p->deps.work, due_run, due_done, rd);
}

void rpt_round_free(struct rpt *r)
{
	if (!r->round)
		return;
	if (r->round->txt_id)
		dns_cancel(r->p->deps.dns, r->round->txt_id);
	round_end(r->round);
}

/* ---------- the end of a period ---------- */

static void done_run(void *arg)
{
	struct round *rd = arg;
	const struct store_tlsrpt_row *pr = period(rd);
	char *err = NULL;

	if (store_tlsrpt_done(store_of(rd), pr->domain, pr->start, clock_now_s(),
	                      clock_now_s() - RPT_KEEP_S, &err) < 0) {
		log_warn("event=tlsrpt_error domain=%s error=%s", pr->domain, log_q(err));
		free(err);
	}
}

static void done_done(void *arg)
{
	period_next(arg);
}

static void period_next(struct round *rd)
{
	period_clear(rd);
	if (rd->r->stopped || ++rd->k >= rd->n_due) {
		round_end(rd);
		return;
	}
	period_begin(rd);
}

/* Every address is served or given up: the period is done. */
static void period_after(struct round *rd)
{
	int final = 1;

	if (rd->r->stopped)
		return; /* rpt_free() ends the round */
	for (size_t i = 0; i < rd->rec.n_rua; i++)
		final &= strcmp(rd->sends[i].state, "pending") != 0;
	if (final) {
		log_info("event=tlsrpt_done domain=%s start=%lld", period(rd)->domain,
		         (long long)period(rd)->start);
		work_submit(rd->r->p->deps.work, done_run, done_done, rd);
		return;
	}
	period_next(rd);
}

/* ---------- recording an outcome ---------- */

static void mark_run(void *arg)
{
	struct send *s = arg;
	const struct store_tlsrpt_row *pr = period(s->rd);
	char *err = NULL;

	if (store_tlsrpt_sent_set(store_of(s->rd), pr->domain, pr->start, s->rd->rec.rua[s->i].uri,
	                          s->state, clock_now_s(), &err) < 0) {
		log_warn("event=tlsrpt_error domain=%s error=%s", pr->domain, log_q(err));
		free(err);
	}
}

static void mark_done(void *arg)
{
	struct send *s = arg;

	if (--s->rd->pending == 0)
		period_after(s->rd);
}

static void record(struct send *s, int ok, const char *why)
{
	struct round *rd = s->rd;

	s->state = ok ? "sent" : s->attempts + 1 >= RPT_MAX_ATTEMPTS ? "failed" : "pending";
	log_info("event=tlsrpt_%s domain=%s rua=%s report=%s attempt=%d%s%s",
	         ok ? "sent" : "not_sent", period(rd)->domain, log_q(rd->rec.rua[s->i].uri),
	         log_q(rd->rep.report_id), s->attempts + 1, why ? " reason=" : "",
	         why ? log_q(why) : "");
	if (rd->r->stopped) { /* the spool is closing: the pool is gone */
		mark_run(s);
		return;
	}
	work_submit(rd->r->p->deps.work, mark_run, mark_done, s);
}

/* ---------- sending ---------- */

static void on_committed(void *arg, int ok, const char *id)
{
	struct send *s = arg;
	struct policy *p = s->rd->r->p;

	if (ok && p->deps.queued)
		p->deps.queued(p->deps.queued_arg, id);
	record(s, ok, ok ? NULL : "spool commit failed");
}

static void send_mail(struct send *s)
{
	struct envelope env;
	struct rcpt rc;

	memset(&rc, 0, sizeof(rc));
	rc.addr = s->rd->rec.rua[s->i].addr;
	rc.notify = DSN_NOTIFY_NEVER;
	memset(&env, 0, sizeof(env));
	env.mail_from = ""; /* no bounce can come back about a report */
	env.account = "default";
	env.created = clock_now_s();
	env.rcpts = &rc;
	env.n_rcpts = 1;
	spool_msg_commit(s->msg, &env, on_committed, s);
	s->msg = NULL; /* the spool owns it */
}

static void on_posted(void *arg, const struct https_result *res)
{
	struct send *s = arg;
	char why[160];

	s->https_id = 0;
	if (res->ok && res->status >= 200 && res->status < 300) {
		record(s, 1, NULL);
		return;
	}
	if (res->ok)
		snprintf(why, sizeof(why), "HTTP status %ld", res->status);
	else
		snprintf(why, sizeof(why), "%s", res->error ? res->error : "failed");
	record(s, 0, why);
}

static void send_post(struct send *s)
{
	struct https_req req;

	memset(&req, 0, sizeof(req));
	req.url = s->rd->rec.rua[s->i].uri;
	req.content_type = "application/tlsrpt+gzip";
	req.body = s->rd->rep.gz;
	req.body_len = s->rd->rep.gz_len;
	req.max_bytes = RPT_POST_MAX;
	req.timeout_ms = RPT_POST_TIMEOUT;
	s->https_id = https_start(s->rd->r->p->https, &req, on_posted, s);
}

/* ---------- building ---------- */

/* Whether address i is to be tried now: not served, not given up, and its
 * last attempt long enough ago (a delay doubling from a minute, or from
 * the period's length when that is shorter). */
static int send_due(const struct round *rd, const struct send *s)
{
	int64_t base = rpt_interval(rd->r) < 60 ? rpt_interval(rd->r) : 60;

	if (strcmp(s->state, "pending") != 0 || s->attempts >= RPT_MAX_ATTEMPTS)
		return 0;
	return s->attempts == 0 || clock_now_s() >= s->at + (base << (s->attempts - 1));
}

/* The DKIM-Signature fields of a report mail, into sig, when its From
 * domain (the hostname) has a key (docs/tls.md); none without one. A
 * failure sends the report unsigned, with a log line. */
static void sign_mail(struct round *rd, const char *mail, size_t len, struct buf *sig)
{
	struct dkim_msg *m;
	enum dkim_result res;

	if (!rd->r->p->deps.dkim || !dkim_signer_key_count(rd->r->p->deps.dkim))
		return;
	m = dkim_msg_new(rd->r->p->deps.dkim, NULL);
	dkim_msg_write(m, mail, len);
	res = dkim_msg_finish(m, sig);
	if (res != DKIM_SIGNED) {
		if (res != DKIM_NO_KEY)
			log_warn("event=tlsrpt_unsigned domain=%s result=%s", period(rd)->domain,
			         dkim_result_name(res));
		sig->len = 0;
	}
	dkim_msg_free(m);
}

/* The mail of address i, signed when it can be, written into a new spool
 * file (blocking). */
static void build_mail(struct round *rd, struct send *s)
{
	const struct tlsrpt_rua *u = &rd->rec.rua[s->i];
	size_t len;
	char *mail = rpt_report_mail(rd->r->p->conf->hostname, period(rd)->domain, u->addr,
	                             &rd->rep, clock_now_s(), &len);
	char *err = NULL;
	struct buf sig;

	buf_init(&sig);
	sign_mail(rd, mail, len, &sig);
	if (!(s->msg = spool_msg_new(rd->r->p->deps.spool, &err)) ||
	    (sig.len && spool_msg_write(s->msg, sig.data, sig.len) < 0) ||
	    spool_msg_write(s->msg, mail, len) < 0) {
		log_warn("event=tlsrpt_error domain=%s error=%s", period(rd)->domain,
		         log_q(err ? err : "cannot write the report message"));
		if (s->msg)
			spool_msg_abort(s->msg);
		s->msg = NULL;
		s->due = 0;
	}
	buf_free(&sig);
	free(err);
	free(mail);
}

static void build_sends(struct round *rd)
{
	const struct store_tlsrpt_row *pr = period(rd);

	for (size_t i = 0; i < rd->rec.n_rua; i++) {
		struct send *s = &rd->sends[i];
		char *err = NULL;

		*s = (struct send){.rd = rd, .i = i, .state = "pending"};
		if (store_tlsrpt_sent_get(store_of(rd), pr->domain, pr->start, rd->rec.rua[i].uri,
		                          &s->state, &s->attempts, &s->at, &err) < 0) {
			free(err);
			continue; /* not due: tried again at the next round */
		}
		s->due = send_due(rd, s);
		if (s->due && rd->rec.rua[i].kind == TLSRPT_RUA_MAILTO)
			build_mail(rd, s);
	}
}

static void build_run(void *arg)
{
	struct round *rd = arg;
	const struct store_tlsrpt_row *pr = period(rd);
	struct store_tlsrpt_row *rows = NULL;
	size_t n = 0;

	if (store_tlsrpt_rows(store_of(rd), pr->domain, pr->start, &rows, &n, &rd->err) < 0 ||
	    rpt_report_build(rd->r->p->conf->hostname, rows, n, &rd->rep, &rd->err) < 0) {
		store_tlsrpt_free(rows, n);
		return;
	}
	store_tlsrpt_free(rows, n);
	build_sends(rd);
}

static void build_done(void *arg)
{
	struct round *rd = arg;

	if (rd->r->stopped) {
		period_clear(rd); /* nothing sent: the next start does it */
		return;
	}
	if (rd->err) {
		log_warn("event=tlsrpt_error domain=%s error=%s", period(rd)->domain,
		         log_q(rd->err));
		period_next(rd);
		return;
	}
	rd->pending = 1; /* held while the sends start: one may finish at once */
	for (size_t i = 0; i < rd->rec.n_rua; i++) {
		struct send *s = &rd->sends[i];
		if (!s->due)
			continue;
		rd->pending++;
		if (rd->rec.rua[i].kind == TLSRPT_RUA_MAILTO)
			send_mail(s);
		else
			send_post(s);
	}
	if (--rd->pending == 0)
		period_after(rd);
}

/* ---------- a period ---------- */

static void on_txt(void *arg, const struct dns_txt *t)
{
	struct round *rd = arg;
	const char *domain = period(rd)->domain;

	rd->txt_id = 0;
	if (t->status == DNS_TEMPFAIL) {
		period_next(rd); /* the next round asks again */
		return;
	}
	if (t->status != DNS_OK ||
	    !tlsrpt_txt_pick((const char *const *)t->records, t->n, &rd->rec)) {
		log_info("event=tlsrpt_no_record domain=%s action=drop_report", domain);
		memset(&rd->rec, 0, sizeof(rd->rec));
		work_submit(rd->r->p->deps.work, done_run, done_done, rd);
		return;
	}
	work_submit(rd->r->p->deps.work, build_run, build_done, rd);
}

static void period_begin(struct round *rd)
{
	char *name = xasprintf("_smtp._tls.%s", period(rd)->domain);

	rd->txt_id = dns_query_txt(rd->r->p->deps.dns, name, on_txt, rd);
	free(name);
	if (!rd->txt_id)
		round_end(rd);
}
