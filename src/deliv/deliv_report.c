/*
 * deliv_report: complaint reports, delivery status notifications and
 * plain-text bounces, read into one shape. PURE (libc + util). Contract
 * in deliv_report.h.
 */
#include "deliv/deliv_report.h"

#include <stdio.h>
#include <string.h>

#include "deliv/deliv_mime.h"
#include "dsn/dsn_parse.h"
#include "util/util.h"

#define PART_MAX (256u * 1024) /* decoded bytes of one part, at most */

const char *deliv_report_kind_name(enum deliv_report_kind k)
{
	static const char *const names[] = {"none", "dsn", "text", "arf"};

	return (unsigned)k < ARRAY_LEN(names) ? names[k] : "?";
}

/* Copies s into d (cap bytes), cut. */
static void cpy(char *d, size_t cap, const char *s)
{
	size_t n = strnlen(s, cap - 1);

	memcpy(d, s, n);
	d[n] = '\0';
}

static struct deliv_report_rcpt *rcpt_new(struct deliv_report *r)
{
	struct deliv_report_rcpt *x;

	if (r->n == DELIV_REPORT_RCPTS)
		return NULL;
	x = &r->rcpts[r->n++];
	memset(x, 0, sizeof(*x));
	return x;
}

/* The first part of one of types, decoded into b. 1 found. */
static int find_decoded(const struct deliv_mime *top, const char *const *types, struct buf *b)
{
	struct deliv_mime part;

	if (!deliv_mime_find(top, types, &part))
		return 0;
	deliv_mime_decode(&part, b, PART_MAX);
	return 1;
}

/* ---- ARF ---- */

static int add_complained(void *arg, const char *addr)
{
	struct deliv_report *r = arg;
	struct deliv_report_rcpt *x = rcpt_new(r);

	if (!x)
		return 1;
	cpy(x->addr, sizeof(x->addr), addr);
	x->what = DELIV_RCPT_COMPLAINED;
	return 0;
}

/* The fields of the feedback-report part; 1 if it named a recipient. */
static int arf_fields(const struct buf *b, struct deliv_report *r, int removal)
{
	struct dsn_field f;
	char v[DELIV_MIME_VALUE_MAX + 1];
	size_t pos = 0, before;

	while (pos < b->len) {
		before = pos;
		if (!dsn_field_next(b->data, b->len, &pos, &f)) {
			if (pos == before)
				break; /* a line that is no field: the block ends */
			continue;
		}
		dsn_field_value(&f, v, sizeof(v));
		if (!removal && dsn_field_is(&f, "Feedback-Type")) {
			cpy(r->feedback_type, sizeof(r->feedback_type), v);
			ascii_lower(r->feedback_type);
		} else if (dsn_field_is(&f, removal ? "Removal-Recipient" : "Original-Rcpt-To")) {
			deliv_addr_scan(v, strlen(v), add_complained, r);
		}
	}
	return r->n > 0;
}

/* The To and Cc addresses of the returned original. */
static void arf_original(const struct deliv_mime *top, struct deliv_report *r)
{
	static const char *const types[] = {"message/rfc822", "text/rfc822-headers", NULL};
	static const char *const fields[] = {"To", "Cc"};
	char v[DELIV_MIME_VALUE_MAX + 1];
	struct deliv_mime orig;
	struct buf b;

	buf_init(&b);
	if (find_decoded(top, types, &b)) {
		deliv_mime_split(b.data, b.len, &orig);
		for (size_t i = 0; i < ARRAY_LEN(fields); i++)
			if (deliv_mime_header(&orig, fields[i], v, sizeof(v)))
				deliv_addr_scan(v, strlen(v), add_complained, r);
	}
	buf_free(&b);
}

static int not_a_complaint(const char *type)
{
	return strcmp(type, "not-spam") == 0 || strcmp(type, "auth-failure") == 0;
}

/* 1 when the message is a feedback report (r filled, maybe as NONE). */
static int read_arf(const struct deliv_mime *top, struct deliv_report *r)
{
	static const char *const types[] = {"message/feedback-report", NULL};
	struct buf b;

	buf_init(&b);
	if (!find_decoded(top, types, &b)) {
		buf_free(&b);
		return 0;
	}
	if (!arf_fields(&b, r, 0) && !arf_fields(&b, r, 1))
		arf_original(top, r);
	buf_free(&b);
	if (!r->feedback_type[0])
		snprintf(r->feedback_type, sizeof(r->feedback_type), "abuse");
	r->kind = not_a_complaint(r->feedback_type) ? DELIV_REPORT_NONE : DELIV_REPORT_ARF;
	if (r->kind == DELIV_REPORT_NONE)
		r->n = 0;
	return 1;
}

/* ---- DSN ---- */

static enum deliv_report_what what_of(const char *action, const char *status)
{
	if (strcmp(action, "failed") == 0)
		return DELIV_RCPT_FAILED;
	if (strcmp(action, "delayed") == 0)
		return DELIV_RCPT_TEMPORARY;
	if (action[0])
		return DELIV_RCPT_OTHER;
	/* no Action (a malformed group): the status decides */
	return status[0] == '5' ? DELIV_RCPT_FAILED : DELIV_RCPT_TEMPORARY;
}

static void dsn_entry(const struct dsn_parsed_rcpt *p, struct deliv_report *r)
{
	struct deliv_report_rcpt *x = rcpt_new(r);

	if (!x)
		return;
	cpy(x->addr, sizeof(x->addr), p->final_rcpt[0] ? p->final_rcpt : p->original_rcpt);
	if (p->final_rcpt[0] && ascii_casecmp(p->final_rcpt, p->original_rcpt) != 0)
		cpy(x->alt, sizeof(x->alt), p->original_rcpt);
	cpy(x->diag, sizeof(x->diag), p->diag);
	if (p->status[0])
		cpy(x->status, sizeof(x->status), p->status);
	else if (!dsn_status_of_reply(p->diag, x->status))
		snprintf(x->status, sizeof(x->status), "%s",
		         strcmp(p->action, "failed") == 0 ? "5.0.0" : "4.0.0");
	x->what = what_of(p->action, x->status);
}

static int read_dsn(const struct deliv_mime *top, struct deliv_report *r)
{
	static const char *const types[] = {"message/delivery-status",
	                                    "message/global-delivery-status", NULL};
	struct dsn_parsed_rcpt got[DELIV_REPORT_RCPTS];
	size_t n;
	struct buf b;

	buf_init(&b);
	if (!find_decoded(top, types, &b)) {
		buf_free(&b);
		return 0;
	}
	n = dsn_parse_status(b.data, b.len, got, DELIV_REPORT_RCPTS);
	buf_free(&b);
	for (size_t i = 0; i < n && i < DELIV_REPORT_RCPTS; i++)
		dsn_entry(&got[i], r);
	r->kind = r->n ? DELIV_REPORT_DSN : DELIV_REPORT_NONE;
	return r->n > 0;
}

/* ---- text ---- */

/* Heuristics read only what presents itself as a bounce: a Subject with
 * one of these words, or a From of MAILER-DAEMON or postmaster. An
 * out-of-office reply (which may name addresses near numbers) is not. */
static int looks_like_bounce(const struct deliv_mime *top)
{
	static const char *const words[] = {"deliver", "failure",  "failed",       "returned",
	                                    "bounce",  "rejected", "undeliverable"};
	static const char *const senders[] = {"mailer-daemon", "postmaster"};
	char v[DELIV_MIME_VALUE_MAX + 1];

	if (deliv_mime_header(top, "Subject", v, sizeof(v))) {
		ascii_lower(v);
		for (size_t i = 0; i < ARRAY_LEN(words); i++)
			if (strstr(v, words[i]))
				return 1;
	}
	if (deliv_mime_header(top, "From", v, sizeof(v))) {
		ascii_lower(v);
		for (size_t i = 0; i < ARRAY_LEN(senders); i++)
			if (strstr(v, senders[i]))
				return 1;
	}
	return 0;
}

static void read_text(const struct deliv_mime *top, struct deliv_report *r)
{
	static const char *const types[] = {"text/plain", NULL};
	struct deliv_btext_hit hits[DELIV_REPORT_RCPTS];
	struct buf b;
	size_t n;

	if (!looks_like_bounce(top))
		return;
	buf_init(&b);
	n = find_decoded(top, types, &b) ? deliv_btext_scan(b.data, b.len, hits, ARRAY_LEN(hits))
	                                 : 0;
	buf_free(&b);
	for (size_t i = 0; i < n; i++) {
		struct deliv_report_rcpt *x = rcpt_new(r);
		if (!x)
			break;
		cpy(x->addr, sizeof(x->addr), hits[i].addr);
		cpy(x->status, sizeof(x->status), hits[i].status);
		cpy(x->diag, sizeof(x->diag), hits[i].diag);
		x->what = hits[i].status[0] == '5' ? DELIV_RCPT_FAILED : DELIV_RCPT_TEMPORARY;
	}
	r->kind = r->n ? DELIV_REPORT_TEXT : DELIV_REPORT_NONE;
}

void deliv_report_parse(const char *p, size_t n, struct deliv_report *out)
{
	struct deliv_mime top;

	memset(out, 0, sizeof(*out));
	deliv_mime_split(p, n < DELIV_REPORT_MAX ? n : DELIV_REPORT_MAX, &top);
	if (read_arf(&top, out) || read_dsn(&top, out))
		return;
	read_text(&top, out);
}
