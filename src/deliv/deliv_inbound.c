/*
 * deliv_inbound: what arrives at a VERP return path. The SMTP session
 * collects the message (at most DELIV_REPORT_MAX bytes kept), then on a
 * worker: read it (deliv_report, PURE), find each named message's VERP
 * record (account, recipients), keep the reported recipients that were
 * recipients of that message, and add the suppressions in one
 * transaction; then on the loop: the events, the reputation guard, the
 * log lines, and the session's 250.
 *
 * Matching: a reported address counts only when it was a recipient of
 * the message (any case), so an address quoted in some bounce text is
 * never taken for a failure, and whoever can write to a return path (the
 * message's own recipients) can speak only of that message's recipients.
 * Complaint reports often hide the recipient: when none of the reported
 * addresses matches and the message had exactly one recipient, the
 * report is about that one. The guard counts a hard bounce or complaint
 * only when it added the address to the list, so a report sent again
 * does not count again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliv/deliv_int.h"
#include "deliv/deliv_report.h"
#include "log/log.h"
#include "store/store.h"
#include "work/work.h"

#define INBOUND_IDS_MAX 16 /* VERP recipients of one message that are looked at */

/* What the worker decided, applied on the loop. */
struct action {
	enum event_type type; /* EVENT_BOUNCED, EVENT_COMPLAINED */
	char account[COUNTER_ACCOUNT_MAX + 1];
	char id[ID_LEN + 1];
	char rcpt[DELIV_ADDR_MAX];
	char status[DELIV_STATUS_MAX];    /* bounced: "5.1.1" */
	char detail[DELIV_DIAG_MAX + 64]; /* bounced: the reply; complained: the feedback type */
	int supp;                         /* index into supp[], or -1 */
	enum deliv_outcome outcome;       /* counted when the add was new */
};

struct deliv_inbound {
	struct deliv *d;
	char session[ID_LEN + 1];
	char ids[INBOUND_IDS_MAX][ID_LEN + 1];
	size_t n_ids;
	struct buf msg;
	uint64_t size;
	struct deliv_report *rep;
	struct action *acts;
	size_t n_acts;
	struct deliv_supp *supp;
	char (*reasons)[SUPP_REASON_MAX + 1];
	size_t n_supp;
	size_t unmatched; /* reported recipients that matched nothing */
	void (*done)(void *arg, const char *summary);
	void *arg;
};

struct deliv_inbound *deliv_inbound_new(struct deliv *d, const char *session)
{
	struct deliv_inbound *in = xcalloc(1, sizeof(*in));

	in->d = d;
	snprintf(in->session, sizeof(in->session), "%s", session);
	buf_init(&in->msg);
	return in;
}

void deliv_inbound_rcpt(struct deliv_inbound *in, const char id[ID_LEN + 1])
{
	for (size_t i = 0; i < in->n_ids; i++)
		if (strcmp(in->ids[i], id) == 0)
			return;
	if (in->n_ids < INBOUND_IDS_MAX)
		snprintf(in->ids[in->n_ids++], ID_LEN + 1, "%s", id);
}

void deliv_inbound_write(struct deliv_inbound *in, const char *p, size_t n)
{
	size_t room = in->msg.len < DELIV_REPORT_MAX ? DELIV_REPORT_MAX - in->msg.len : 0;

	buf_append(&in->msg, p, n < room ? n : room);
	in->size += n;
}

uint64_t deliv_inbound_size(const struct deliv_inbound *in)
{
	return in->size;
}

void deliv_inbound_free(struct deliv_inbound *in)
{
	if (!in)
		return;
	buf_free(&in->msg);
	free(in->rep);
	free(in->acts);
	free(in->supp);
	free(in->reasons);
	free(in);
}

/* ---- matching (worker) ---- */

/* The line of rcpts (one a line) that is addr, in any case, into out. */
static int find_rcpt(const char *rcpts, const char *addr, char *out, size_t cap)
{
	size_t n = strlen(addr);

	for (const char *p = rcpts; *p;) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (n && len == n && ascii_ncasecmp(p, addr, n) == 0) {
			snprintf(out, cap, "%.*s", (int)len, p);
			return 1;
		}
		p = e ? e + 1 : p + len;
	}
	return 0;
}

static int single_rcpt(const char *rcpts, char *out, size_t cap)
{
	if (!*rcpts || strchr(rcpts, '\n'))
		return 0;
	snprintf(out, cap, "%s", rcpts);
	return 1;
}

static struct action *action_new(struct deliv_inbound *in)
{
	struct action *a;

	in->acts = xrealloc(in->acts, (in->n_acts + 1) * sizeof(*in->acts));
	a = &in->acts[in->n_acts++];
	memset(a, 0, sizeof(*a));
	a->supp = -1;
	return a;
}

/* A suppression add for action a with reason. */
static void want_supp(struct deliv_inbound *in, struct action *a, const char *reason)
{
	size_t i = in->n_supp++;

	in->supp = xrealloc(in->supp, in->n_supp * sizeof(*in->supp));
	in->reasons = xrealloc(in->reasons, in->n_supp * sizeof(*in->reasons));
	snprintf(in->reasons[i], sizeof(in->reasons[i]), "%s", reason);
	a->supp = (int)i;
}

/* One reported recipient, matched as rcpt of message id of account. */
static void decide(struct deliv_inbound *in, const struct deliv_report_rcpt *r, const char *id,
                   const char *account, const char *rcpt)
{
	struct action *a;
	char reason[SUPP_REASON_MAX + 1];

	if (r->what != DELIV_RCPT_FAILED && r->what != DELIV_RCPT_COMPLAINED)
		return; /* delayed, delivered: nothing to do */
	a = action_new(in);
	snprintf(a->account, sizeof(a->account), "%s", account);
	snprintf(a->id, sizeof(a->id), "%s", id);
	snprintf(a->rcpt, sizeof(a->rcpt), "%s", rcpt);
	if (r->what == DELIV_RCPT_COMPLAINED) {
		a->type = EVENT_COMPLAINED;
		snprintf(a->detail, sizeof(a->detail), "%s", in->rep->feedback_type);
		snprintf(reason, sizeof(reason), "complaint (%s)", in->rep->feedback_type);
		a->outcome = DELIV_OUT_COMPLAINED;
		want_supp(in, a, reason);
		return;
	}
	a->type = EVENT_BOUNCED;
	snprintf(a->status, sizeof(a->status), "%s", r->status);
	snprintf(a->detail, sizeof(a->detail), "%s", r->diag[0] ? r->diag : r->status);
	if (deliv_status_hard(r->status)) {
		snprintf(reason, sizeof(reason), "hard bounce: %.*s", SUPP_REASON_MAX - 13,
		         r->diag[0] ? r->diag : r->status);
		a->outcome = DELIV_OUT_LATE_HARD;
		want_supp(in, a, reason);
	}
}

/* The report's recipients against message id's record. */
static void match_message(struct deliv_inbound *in, const char *id, const char *account,
                          const char *rcpts)
{
	char rcpt[DELIV_ADDR_MAX];
	size_t matched = 0;

	for (size_t i = 0; i < in->rep->n; i++) {
		const struct deliv_report_rcpt *r = &in->rep->rcpts[i];
		if (find_rcpt(rcpts, r->addr, rcpt, sizeof(rcpt)) ||
		    (r->alt[0] && find_rcpt(rcpts, r->alt, rcpt, sizeof(rcpt)))) {
			decide(in, r, id, account, rcpt);
			matched++;
		}
	}
	/* a report that hides its recipient, about a message with one */
	if (!matched && (in->rep->kind == DELIV_REPORT_ARF || in->rep->n == 1) &&
	    single_rcpt(rcpts, rcpt, sizeof(rcpt))) {
		struct deliv_report_rcpt one;
		memset(&one, 0, sizeof(one));
		if (in->rep->n)
			one = in->rep->rcpts[0];
		else
			one.what = DELIV_RCPT_COMPLAINED;
		decide(in, &one, id, account, rcpt);
		matched++;
	}
	in->unmatched += in->rep->n > matched ? in->rep->n - matched : 0;
}

/* ---- the job ---- */

static void match_all(struct deliv_inbound *in)
{
	char account[COUNTER_ACCOUNT_MAX + 1], *rcpts = NULL, *err = NULL;

	for (size_t i = 0; i < in->n_ids; i++) {
		int rc = store_verp_get(in->d->deps.store, in->ids[i], account, &rcpts, &err);
		if (rc < 0) {
			log_warn("session=%s event=report_error about=%s error=%s", in->session,
			         in->ids[i], log_q(err));
			free(err);
			err = NULL;
		} else if (rc == 0) {
			log_info("session=%s event=report_unmatched about=%s reason=no_record",
			         in->session, in->ids[i]);
		} else {
			match_message(in, in->ids[i], account, rcpts);
		}
		free(rcpts);
		rcpts = NULL;
	}
}

/* On a worker: read, match, add the suppressions. */
static void inbound_run(void *arg)
{
	struct deliv_inbound *in = arg;

	in->rep = xcalloc(1, sizeof(*in->rep));
	deliv_report_parse(in->msg.data ? in->msg.data : "", in->msg.len, in->rep);
	if (in->rep->kind != DELIV_REPORT_NONE)
		match_all(in);
	for (size_t i = 0; i < in->n_acts; i++) {
		struct action *a = &in->acts[i];
		if (a->supp < 0)
			continue;
		in->supp[a->supp].account = a->account;
		in->supp[a->supp].addr = a->rcpt;
		in->supp[a->supp].reason = in->reasons[a->supp];
		in->supp[a->supp].id = a->id;
	}
	if (in->n_supp)
		deliv_supp_add(in->d, in->supp, in->n_supp);
}

/* On the loop: events, the guard, the log, the session's reply. */
static void inbound_done(void *arg)
{
	struct deliv_inbound *in = arg;
	char summary[160];

	for (size_t i = 0; i < in->n_acts; i++) {
		const struct action *a = &in->acts[i];
		int complaint = a->type == EVENT_COMPLAINED;
		deliv_event(in->d, &(struct events_event){.type = a->type,
		                                          .account = a->account,
		                                          .message_id = a->id,
		                                          .recipient = a->rcpt,
		                                          .status = a->status[0] ? a->status : NULL,
		                                          .reply = complaint ? NULL : a->detail,
		                                          .reason = complaint ? a->detail : NULL});
		if (a->supp >= 0 && in->supp[a->supp].added == 1)
			deliv_outcome(in->d, a->account, a->outcome);
	}
	deliv_supp_added(in->d, in->supp, in->n_supp);
	snprintf(summary, sizeof(summary), "kind=%s reported=%zu acted=%zu unmatched=%zu size=%llu",
	         deliv_report_kind_name(in->rep->kind), in->rep->n, in->n_acts, in->unmatched,
	         (unsigned long long)in->size);
	log_info("session=%s event=report %s", in->session, summary);
	in->done(in->arg, summary);
	deliv_inbound_free(in);
}

void deliv_inbound_finish(struct deliv_inbound *in, void (*done)(void *arg, const char *summary),
                          void *arg)
{
	in->done = done;
	in->arg = arg;
	work_submit(in->d->deps.work, inbound_run, inbound_done, in);
}
