/*
 * dsn_build.c: the NOTIFY policy and the text of a delivery status
 * notification (RFC 3464 multipart/report, RFC 6533 for SMTPUTF8 mail).
 *
 * PURE-ish: libc and util only, no spool or event loop; the one I/O is
 * pread() of the original message, in CHUNK-sized pieces, so a report on
 * a 50 MB message costs 64 KB of memory. The report is emitted through a
 * callback in order: the headers and the two small parts (held in memory:
 * they grow with the listed recipients, not with the message), then the
 * original straight from the file, then the closing boundary.
 *
 * Promises: CRLF lines of at most 998 octets in everything generated here
 * (the original is copied as it was accepted); no control bytes or, outside
 * SMTPUTF8 mail, 8-bit bytes from diagnostics or addresses; a boundary that
 * occurs in none of the parts, original included.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "dsn/dsn.h"
#include "dsn/dsn_headers.h"
#include "dsn/dsn_parse.h"
#include "util/util.h"

#define LINE_SOFT      78    /* RFC 5322 2.1.1: SHOULD */
#define LINE_HARD      998   /* RFC 5322 2.1.1: MUST, without the CRLF */
#define CHUNK          65536 /* bytes of the original read at a time */
#define BOUNDARY_TRIES 8
#define BOUNDARY_RAND  16 /* random bytes in a boundary: 128 bits */
#define BOUNDARY_MAX   64
#define DATE_MAX       64

/* ---- policy ---- */

int dsn_notify_wants(unsigned notify, enum dsn_action action)
{
	if (notify & DSN_NOTIFY_NEVER)
		return 0;
	switch (action) {
	case DSN_ACT_FAILED:
		return notify == 0 || (notify & DSN_NOTIFY_FAILURE);
	case DSN_ACT_DELAYED:
		return (notify & DSN_NOTIFY_DELAY) != 0;
	case DSN_ACT_DELIVERED:
	case DSN_ACT_RELAYED:
	case DSN_ACT_EXPANDED:
		/* RFC 3461 5.2.2, 5.2.7: relayed and expanded answer SUCCESS */
		return (notify & DSN_NOTIFY_SUCCESS) != 0;
	}
	return 0;
}

/* Reports go to the envelope sender; "" (or none) is the null sender, used
 * by reports themselves, so refusing it is what stops bounce loops. */
static int null_sender(const struct envelope *e)
{
	return !e->mail_from || !e->mail_from[0];
}

int dsn_should_report(const struct envelope *orig, size_t i, enum dsn_action action)
{
	if (!orig || i >= orig->n_rcpts || null_sender(orig))
		return 0;
	return dsn_notify_wants(orig->rcpts[i].notify, action);
}

int dsn_delay_wanted(const struct envelope *orig, size_t i)
{
	if (!dsn_should_report(orig, i, DSN_ACT_DELAYED))
		return 0;
	return orig->rcpts[i].state != RCPT_DELIVERED && orig->rcpts[i].state != RCPT_BOUNCED;
}

static enum dsn_kind action_kind(enum dsn_action action)
{
	if (action == DSN_ACT_FAILED)
		return DSN_KIND_FAILURE;
	return action == DSN_ACT_DELAYED ? DSN_KIND_DELAY : DSN_KIND_SUCCESS;
}

enum dsn_kind dsn_report_kind(const struct envelope *orig, const struct dsn_rcpt *rcpts, size_t n)
{
	enum dsn_kind kind = DSN_KIND_NONE, k;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!dsn_should_report(orig, rcpts[i].index, rcpts[i].action))
			continue;
		k = action_kind(rcpts[i].action);
		if (k > kind)
			kind = k;
	}
	return kind;
}

const char *dsn_action_name(enum dsn_action action)
{
	static const char *const names[] = {"?",         "failed",  "delayed",
	                                    "delivered", "relayed", "expanded"};

	return (unsigned)action < ARRAY_LEN(names) ? names[action] : "?";
}

const char *dsn_kind_name(enum dsn_kind kind)
{
	static const char *const names[] = {"none", "success", "delay", "failure"};

	return (unsigned)kind < ARRAY_LEN(names) ? names[kind] : "?";
}

/* ---- status codes ---- */

int dsn_status_valid(const char *s)
{
	size_t n = s ? dsn_status_len(s) : 0;

	return n > 0 && s[n] == '\0';
}

/* Length of a leading diagnostic-type ("smtp;", "X-Posthorn;"), with its
 * ';', or 0. It starts with a letter so that a reply code never looks
 * like one. */
static size_t diag_type_len(const char *d)
{
	size_t n;

	if (!((d[0] >= 'a' && d[0] <= 'z') || (d[0] >= 'A' && d[0] <= 'Z')))
		return 0;
	n = strspn(d, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
	return d[n] == ';' ? n + 1 : 0;
}

/* The diagnostic without its type and leading spaces. */
static const char *diag_text(const char *d)
{
	d += diag_type_len(d);
	return d + strspn(d, " \t");
}

void dsn_status(enum dsn_action action, const char *status, const char *diagnostic,
                char out[DSN_STATUS_MAX])
{
	char c;

	if (dsn_status_valid(status)) {
		snprintf(out, DSN_STATUS_MAX, "%s", status);
		return;
	}
	if (diagnostic && dsn_status_of_reply(diag_text(diagnostic), out))
		return;
	c = action == DSN_ACT_FAILED ? '5' : action == DSN_ACT_DELAYED ? '4' : '2';
	snprintf(out, DSN_STATUS_MAX, "%c.0.0", c);
}

/* ---- text hygiene ---- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if none:
 * no overlong forms, surrogates or code points past U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t len, i;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		len = 2, cp = s[0] & 0x1Fu;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
		len = 3, cp = s[0] & 0x0Fu;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		len = 4, cp = s[0] & 0x07u;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3Fu);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
		return 0;
	return len;
}

static int has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/*
 * Appends s made safe for a header or a text line: control bytes (the CR
 * and LF of a multi-line reply among them) become spaces, 8-bit bytes
 * become '?' unless utf8 and part of valid UTF-8. Remote servers write
 * the diagnostics: nothing they send may break the report's structure.
 */
static void clean_append(struct buf *b, const char *s, int utf8)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), k;

	while (n > 0) {
		if (*p >= 0x80) {
			k = utf8 ? utf8_seq(p, n) : 0;
			if (k)
				buf_append(b, p, k);
			else
				buf_puts(b, "?");
			k = k ? k : 1;
		} else {
			k = 1;
			buf_append(b, (*p < 0x20 || *p == 0x7F) ? " " : (const char *)p, 1);
		}
		p += k, n -= k;
	}
}

/* clean_append() into a fresh malloc'd string. */
static char *clean_dup(const char *s, int utf8)
{
	struct buf b;

	buf_init(&b);
	clean_append(&b, s, utf8);
	return b.data;
}

/* ---- folding ---- */

/* Bytes of w that fit in room, cut back so a UTF-8 sequence stays whole;
 * at least 1, so a line always makes progress. */
static size_t fit_bytes(const char *w, size_t wl, size_t room)
{
	size_t take = wl < room ? wl : room;

	while (take > 1 && take < wl && ((unsigned char)w[take] & 0xC0) == 0x80)
		take--;
	return take ? take : 1;
}

struct fold {
	struct buf *out;
	const char *cont; /* starts each continuation line */
	size_t line;      /* bytes on the current line */
	int empty;        /* no word on the current line yet */
};

static void fold_break(struct fold *f)
{
	buf_puts(f->out, "\r\n");
	buf_puts(f->out, f->cont);
	f->line = strlen(f->cont);
	f->empty = 1;
}

static void fold_word(struct fold *f, const char *w, size_t wl)
{
	size_t take;

	if (!f->empty && f->line + 1 + wl > LINE_SOFT)
		fold_break(f);
	if (!f->empty)
		buf_puts(f->out, " "), f->line++;
	/* A word longer than a line: split it, as nothing else can keep the
	 * 998-octet limit (unfolding then shows a space inside it). */
	while (f->line + wl > LINE_HARD) {
		take = fit_bytes(w, wl, LINE_HARD - f->line);
		buf_append(f->out, w, take);
		w += take, wl -= take;
		fold_break(f);
	}
	buf_append(f->out, w, wl);
	f->line += wl;
	f->empty = 0;
}

/*
 * Appends head, then text's words separated by single spaces, breaking
 * lines before LINE_SOFT where a space allows and always before LINE_HARD;
 * continuation lines start with cont (" " for a header field: folding
 * whitespace, so unfolding gives the text back). Ends with CRLF.
 */
static void fold_append(struct buf *out, const char *head, const char *text, const char *cont)
{
	struct fold f = {out, cont, strlen(head), 1};
	const char *p = text;
	size_t wl;

	buf_puts(out, head);
	for (;;) {
		p += strspn(p, " \t");
		if (!*p)
			break;
		wl = strcspn(p, " \t");
		fold_word(&f, p, wl);
		p += wl;
	}
	buf_puts(out, "\r\n");
}

/* A header field "Name: value" with value cleaned and folded. */
static void field(struct buf *out, const char *name, const char *value, int utf8)
{
	char *head = xasprintf("%s: ", name);
	char *v = clean_dup(value, utf8);

	fold_append(out, head, v, " ");
	free(v);
	free(head);
}

static void field_date(struct buf *out, const char *name, int64_t t)
{
	char d[DATE_MAX];

	rfc5322_date(d, sizeof(d), t);
	buf_printf(out, "%s: %s\r\n", name, d);
}

/* ---- the plan: what this report says ---- */

struct plan {
	enum dsn_kind kind;
	const struct dsn_rcpt **listed; /* in the caller's order */
	size_t n_listed;
	int global;      /* SMTPUTF8 original: RFC 6533 types, UTF-8 kept */
	int eight;       /* some part may hold 8-bit bytes */
	int full;        /* the whole original comes back, not its headers */
	int too_large;   /* RET=FULL, but above DSN_FULL_MAX: headers only */
	int hdrs_cut;    /* the headers stop at DSN_HEADERS_MAX */
	int has_orig;    /* a third part at all */
	uint64_t extent; /* bytes of the original in the third part */
	int64_t now;
	char boundary[BOUNDARY_MAX];
};

static int plan_check(const struct dsn_report *r, char **err)
{
	size_t i;

	if (!r->orig || !r->hostname || !r->hostname[0])
		return *err = xstrdup("dsn: no original envelope or no hostname"), -1;
	for (i = 0; i < r->n_rcpts; i++) {
		if (r->rcpts[i].index >= r->orig->n_rcpts)
			return *err = xasprintf("dsn: recipient index %zu out of range (%zu)",
			                        r->rcpts[i].index, r->orig->n_rcpts),
			       -1;
		if (r->rcpts[i].action < DSN_ACT_FAILED || r->rcpts[i].action > DSN_ACT_EXPANDED)
			return *err = xasprintf("dsn: bad action %d", (int)r->rcpts[i].action), -1;
	}
	return 0;
}

static int plan_make(const struct dsn_report *r, struct plan *p, char **err)
{
	const struct envelope *o = r->orig;
	size_t i;

	memset(p, 0, sizeof(*p));
	if (plan_check(r, err) < 0)
		return -1;
	p->kind = dsn_report_kind(o, r->rcpts, r->n_rcpts);
	if (p->kind == DSN_KIND_NONE)
		return 0;
	p->listed = xcalloc(r->n_rcpts, sizeof(*p->listed));
	for (i = 0; i < r->n_rcpts; i++)
		if (dsn_should_report(o, r->rcpts[i].index, r->rcpts[i].action))
			p->listed[p->n_listed++] = &r->rcpts[i];
	p->global = o->smtputf8 != 0;
	p->eight = p->global || o->body == BODY_8BITMIME;
	/* RFC 3461 4.3: RET=FULL is for failures; other notices carry headers.
	 * RFC 8689 5: a REQUIRETLS message's report is as if RET=HDRS. */
	p->full = p->kind == DSN_KIND_FAILURE && o->ret == DSN_RET_FULL && !o->requiretls;
	p->has_orig = r->body.fd >= 0;
	if (p->full && p->has_orig && r->body.len > DSN_FULL_MAX) {
		p->full = 0;
		p->too_large = 1;
	}
	p->now = r->now ? r->now : clock_now_s();
	return 0;
}

/* ---- part 1: the human explanation ---- */

static const char *section_intro(enum dsn_action a)
{
	switch (a) {
	case DSN_ACT_FAILED:
		return "Your message could not be delivered to the recipients below. This is a "
		       "permanent error: the mail system has given up on them.";
	case DSN_ACT_DELAYED:
		return "Your message could not be delivered yet to the recipients below. The mail "
		       "system keeps trying; you do not need to send it again.";
	case DSN_ACT_DELIVERED:
		return "Your message was delivered to the recipients below.";
	case DSN_ACT_RELAYED:
		return "Your message was passed on to the recipients below through a mail system "
		       "that does not send delivery notifications; you will hear no more of it.";
	case DSN_ACT_EXPANDED:
		return "Your message was delivered to the recipients below, which are lists or "
		       "aliases that pass it on to further recipients.";
	}
	return "";
}

/* A paragraph of our own words (with the configured hostname in one),
 * wrapped at LINE_SOFT. */
static void paragraph(struct buf *t, const char *s)
{
	char *c = clean_dup(s, 0);

	fold_append(t, "", c, "");
	free(c);
}

/* "<addr>: host mx said: 550 ..." wrapped, continuation indented. */
static void text_rcpt(struct buf *t, const struct dsn_report *r, const struct plan *p,
                      const struct dsn_rcpt *d)
{
	struct buf line;
	char *head, *clean;

	buf_init(&line);
	buf_puts(&line, "<");
	clean_append(&line, r->orig->rcpts[d->index].addr, p->global);
	buf_puts(&line, ">: ");
	head = xstrdup(line.data);
	buf_reset(&line);
	if (d->remote_mta)
		buf_printf(&line, "host %s said: ", d->remote_mta);
	buf_puts(&line, d->diagnostic ? diag_text(d->diagnostic) : dsn_action_name(d->action));
	clean = clean_dup(line.data, p->global);
	fold_append(t, head, clean, "    ");
	free(clean);
	free(head);
	buf_free(&line);
}

static void text_until(struct buf *t, const struct plan *p)
{
	int64_t until = 0;
	char d[DATE_MAX], *s;
	size_t i;

	for (i = 0; i < p->n_listed; i++)
		if (p->listed[i]->action == DSN_ACT_DELAYED && p->listed[i]->retry_until > until)
			until = p->listed[i]->retry_until;
	if (!until)
		return;
	rfc5322_date(d, sizeof(d), until);
	s = xasprintf("It will give up after %s.", d);
	paragraph(t, s);
	free(s);
}

static void text_section(struct buf *t, const struct dsn_report *r, const struct plan *p,
                         enum dsn_action a)
{
	size_t i, n = 0;

	for (i = 0; i < p->n_listed; i++)
		n += p->listed[i]->action == a;
	if (!n)
		return;
	paragraph(t, section_intro(a));
	if (a == DSN_ACT_DELAYED)
		text_until(t, p);
	buf_puts(t, "\r\n");
	for (i = 0; i < p->n_listed; i++)
		if (p->listed[i]->action == a)
			text_rcpt(t, r, p, p->listed[i]);
	buf_puts(t, "\r\n");
}

/* Why less than asked for comes back: the reader must not take a cut
 * original for the whole of it. */
static void text_bounds(struct buf *t, const struct dsn_report *r, const struct plan *p)
{
	char *s;

	if (p->too_large) {
		s = xasprintf("It was too large to return in full (%llu bytes; reports return at "
		              "most %u), so only its headers are attached.",
		              (unsigned long long)r->body.len, (unsigned)DSN_FULL_MAX);
		paragraph(t, s);
		free(s);
	}
	if (p->hdrs_cut) {
		s = xasprintf("Its headers are longer than %u bytes: only the first %llu bytes of "
		              "them are attached.",
		              (unsigned)DSN_HEADERS_MAX, (unsigned long long)p->extent);
		paragraph(t, s);
		free(s);
	}
}

static void text_part(struct buf *t, const struct dsn_report *r, const struct plan *p)
{
	char d[DATE_MAX], *s;
	int a;

	s = xasprintf("This is the mail system at host %s.", r->hostname);
	paragraph(t, s);
	free(s);
	buf_puts(t, "\r\n");
	for (a = DSN_ACT_FAILED; a <= DSN_ACT_EXPANDED; a++)
		text_section(t, r, p, (enum dsn_action)a);
	rfc5322_date(d, sizeof(d), r->orig->created);
	s = xasprintf("The message was received on %s and queued as %s.%s", d, r->orig->id,
	              !p->has_orig ? ""
	              : p->full    ? " It is attached below."
	                           : " Its headers are attached below.");
	paragraph(t, s);
	free(s);
	text_bounds(t, r, p);
}

/* ---- part 2: message/delivery-status ---- */

static void status_message(struct buf *s, const struct dsn_report *r)
{
	const struct envelope *o = r->orig;
	char *v = xasprintf("dns; %s", r->hostname);

	field(s, "Reporting-MTA", v, 0);
	free(v);
	/* RFC 3464 2.4: an extension field lets the sender quote our queue ID */
	field(s, "X-Posthorn-Queue-ID", o->id, 0);
	if (o->envid)
		field(s, "Original-Envelope-Id", o->envid, 0);
	field_date(s, "Arrival-Date", o->created);
}

/* Original-Recipient comes from ORCPT as stored: "type;address", decoded. */
static void status_orcpt(struct buf *s, const char *orcpt, int utf8)
{
	char *v;

	if (strchr(orcpt, ';')) {
		field(s, "Original-Recipient", orcpt, utf8);
		return;
	}
	v = xasprintf("rfc822;%s", orcpt);
	field(s, "Original-Recipient", v, utf8);
	free(v);
}

/* "type; text" for Diagnostic-Code: kept when the caller gave a type, smtp
 * for a bare SMTP reply, X-Posthorn for our own words (RFC 3464 2.3.6). */
static char *diag_code(const char *d)
{
	if (diag_type_len(d))
		return xasprintf("%.*s %s", (int)diag_type_len(d), d, diag_text(d));
	return xasprintf("%s; %s", dsn_reply_class(d) ? "smtp" : "X-Posthorn",
	                 d + strspn(d, " \t"));
}

static void status_rcpt(struct buf *s, const struct dsn_report *r, const struct plan *p,
                        const struct dsn_rcpt *d)
{
	const struct rcpt *rc = &r->orig->rcpts[d->index];
	char st[DSN_STATUS_MAX], *v;

	buf_puts(s, "\r\n");
	if (rc->orcpt)
		status_orcpt(s, rc->orcpt, p->global);
	/* RFC 6533 3: utf-8 type for a UTF-8 address */
	v = xasprintf("%s; %s", p->global && has_8bit(rc->addr) ? "utf-8" : "rfc822", rc->addr);
	field(s, "Final-Recipient", v, p->global);
	free(v);
	buf_printf(s, "Action: %s\r\n", dsn_action_name(d->action));
	dsn_status(d->action, d->status, d->diagnostic, st);
	buf_printf(s, "Status: %s\r\n", st);
	if (d->remote_mta) {
		v = xasprintf("dns; %s", d->remote_mta);
		field(s, "Remote-MTA", v, 0);
		free(v);
	}
	if (d->diagnostic && *diag_text(d->diagnostic)) {
		v = diag_code(d->diagnostic);
		field(s, "Diagnostic-Code", v, p->global);
		free(v);
	}
	if (d->last_attempt)
		field_date(s, "Last-Attempt-Date", d->last_attempt);
	if (d->action == DSN_ACT_DELAYED && d->retry_until)
		field_date(s, "Will-Retry-Until", d->retry_until);
}

static void status_part(struct buf *s, const struct dsn_report *r, const struct plan *p)
{
	size_t i;

	status_message(s, r);
	for (i = 0; i < p->n_listed; i++)
		status_rcpt(s, r, p, p->listed[i]);
}

/* ---- the original ---- */

/* pread() exactly n bytes at off; -1 with *err on an error or early EOF. */
static int read_at(int fd, char *p, size_t n, uint64_t off, char **err)
{
	ssize_t got;

	while (n > 0) {
		got = pread(fd, p, n, (off_t)off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return *err = xasprintf("dsn: reading the original: %s", strerror(errno)),
			       -1;
		if (got == 0)
			return *err = xstrdup("dsn: the original is shorter than its length"), -1;
		p += got, n -= (size_t)got, off += (uint64_t)got;
	}
	return 0;
}

/* A consumer of the original's bytes: 0 go on, 1 stop early, -1 error. */
typedef int (*chunk_fn)(void *ctx, const char *p, size_t n);

/* Feeds bytes [0, len) of the original to fn, CHUNK at a time. */
static int orig_read(const struct dsn_original *o, uint64_t len, chunk_fn fn, void *ctx, char **err)
{
	char *chunk = xmalloc(CHUNK);
	uint64_t pos = 0;
	size_t n;
	int rc = 0;

	while (pos < len && rc == 0) {
		n = len - pos < CHUNK ? (size_t)(len - pos) : CHUNK;
		if (read_at(o->fd, chunk, n, o->offset + pos, err) < 0) {
			rc = -1;
			break;
		}
		rc = fn(ctx, chunk, n);
		pos += n;
	}
	free(chunk);
	if (rc < 0 && !*err)
		*err = xstrdup("dsn: writing the report failed");
	return rc < 0 ? -1 : 0;
}

static int hdr_chunk(void *ctx, const char *p, size_t n)
{
	return dsn_hscan_feed(ctx, p, n);
}

/* How much of the original the third part holds: all of it, or its header
 * section including the line ending of the last field, read only as far
 * as it goes (dsn_headers.h) and never past DSN_HEADERS_MAX. */
static int orig_extent(const struct dsn_report *r, struct plan *p, char **err)
{
	struct dsn_hscan h;

	p->extent = r->body.len;
	if (!p->has_orig || p->full)
		return 0;
	dsn_hscan_init(&h, DSN_HEADERS_MAX);
	if (orig_read(&r->body, r->body.len, hdr_chunk, &h, err) < 0)
		return -1;
	p->extent = dsn_hscan_end(&h);
	p->hdrs_cut = h.cut;
	return 0;
}

/* ---- the boundary ---- */

static void random_default(void *p, size_t n)
{
	static _Atomic uint64_t counter;
	unsigned char *c = p;
	ssize_t got;
	uint64_t x;

	while (n > 0) {
		got = getrandom(c, n, 0);
		if (got <= 0)
			break;
		c += got, n -= (size_t)got;
	}
	/* No entropy: still distinct per call; the content check stays the
	 * guarantee either way. */
	for (x = clock_mono_ms() ^ (counter++ * 0x9E3779B97F4A7C15u); n > 0; n--, x >>= 8)
		*c++ = (unsigned char)x;
}

static void boundary_new(const struct dsn_report *r, char out[BOUNDARY_MAX])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[BOUNDARY_RAND];
	size_t i, o;

	(r->random ? r->random : random_default)(raw, sizeof(raw));
	/* "=_" cannot occur in quoted-printable or base64 text */
	o = (size_t)snprintf(out, BOUNDARY_MAX, "=_Posthorn_");
	for (i = 0; i < sizeof(raw); i++) {
		out[o++] = hex[raw[i] >> 4];
		out[o++] = hex[raw[i] & 15];
	}
	out[o] = '\0';
}

/* Looks for a needle across chunk edges: keeps the last strlen-1 bytes. */
struct needle_scan {
	const char *needle;
	size_t nlen;
	char tail[BOUNDARY_MAX];
	size_t tlen;
	int found;
};

static int needle_chunk(void *ctx, const char *p, size_t n)
{
	struct needle_scan *s = ctx;
	char edge[2 * BOUNDARY_MAX];
	size_t take = n < s->nlen - 1 ? n : s->nlen - 1, keep;

	memcpy(edge, s->tail, s->tlen);
	memcpy(edge + s->tlen, p, take);
	if (memmem(edge, s->tlen + take, s->needle, s->nlen) || memmem(p, n, s->needle, s->nlen)) {
		s->found = 1;
		return 1;
	}
	/* the new tail: the last nlen-1 bytes of edge-then-chunk */
	if (n >= s->nlen - 1) {
		memcpy(s->tail, p + n - (s->nlen - 1), s->nlen - 1);
		s->tlen = s->nlen - 1;
		return 0;
	}
	keep = s->tlen + n > s->nlen - 1 ? s->nlen - 1 : s->tlen + n;
	memmove(s->tail, edge + s->tlen + take - keep, keep);
	s->tlen = keep;
	return 0;
}

/* 1 if the boundary occurs in none of the parts; -1 on a read error. */
static int boundary_free(const char *b, const struct buf *text, const struct buf *status,
                         const struct dsn_report *r, const struct plan *p, char **err)
{
	struct needle_scan s = {b, strlen(b), "", 0, 0};

	if (strstr(text->data, b) || strstr(status->data, b))
		return 0;
	if (!p->has_orig)
		return 1;
	if (orig_read(&r->body, p->extent, needle_chunk, &s, err) < 0)
		return -1;
	return !s.found;
}

static int boundary_pick(const struct dsn_report *r, struct plan *p, const struct buf *text,
                         const struct buf *status, char **err)
{
	int tries, ok;

	for (tries = 0; tries < BOUNDARY_TRIES; tries++) {
		boundary_new(r, p->boundary);
		ok = boundary_free(p->boundary, text, status, r, p, err);
		if (ok != 0)
			return ok < 0 ? -1 : 0;
	}
	*err = xstrdup("dsn: no MIME boundary free of the content");
	return -1;
}

/* ---- assembly ---- */

static const char *subject_of(enum dsn_kind kind)
{
	if (kind == DSN_KIND_FAILURE)
		return "Undelivered Mail Returned to Sender";
	if (kind == DSN_KIND_DELAY)
		return "Delayed Mail (still being retried)";
	return "Successful Mail Delivery Report";
}

static void head_fields(struct buf *h, const struct dsn_report *r, const struct plan *p)
{
	char id[ID_LEN + 1], *v;

	v = xasprintf("\"Mail Delivery System\" <MAILER-DAEMON@%s>", r->hostname);
	field(h, "From", v, 0);
	free(v);
	v = xasprintf("<%s>", r->orig->mail_from);
	field(h, "To", v, p->global);
	free(v);
	buf_printf(h, "Subject: %s\r\n", subject_of(p->kind));
	field_date(h, "Date", p->now);
	id_new(id);
	v = xasprintf("<%s.dsn@%s>", id, r->hostname);
	field(h, "Message-ID", v, 0);
	free(v);
	/* RFC 3834: automatic responders do not answer this */
	buf_puts(h, "Auto-Submitted: auto-replied\r\n");
	buf_puts(h, "MIME-Version: 1.0\r\n");
	/* RFC 6522: report-type names the second part's subtype */
	buf_printf(h,
	           "Content-Type: multipart/report; report-type=%sdelivery-status;\r\n"
	           "\tboundary=\"%s\"\r\n",
	           p->global ? "global-" : "", p->boundary);
	if (p->eight)
		buf_puts(h, "Content-Transfer-Encoding: 8bit\r\n");
	buf_puts(h, "\r\nThis is a MIME-encapsulated message.\r\n");
}

static void part_head(struct buf *h, const struct plan *p, const char *desc, const char *type,
                      int eight)
{
	buf_printf(h, "\r\n--%s\r\nContent-Description: %s\r\nContent-Type: %s\r\n", p->boundary,
	           desc, type);
	if (eight)
		buf_puts(h, "Content-Transfer-Encoding: 8bit\r\n");
	buf_puts(h, "\r\n");
}

static void orig_head(struct buf *h, const struct plan *p)
{
	const char *type, *desc;

	if (p->full) {
		type = p->global ? "message/global" : "message/rfc822";
		desc = "Undelivered Message";
	} else {
		type = p->global ? "message/global-headers" : "text/rfc822-headers";
		desc =
		    p->kind == DSN_KIND_FAILURE ? "Undelivered Message Headers" : "Message Headers";
	}
	part_head(h, p, desc, type, p->eight);
}

/* Everything before the original's bytes. */
static void assemble_head(struct buf *h, const struct dsn_report *r, const struct plan *p,
                          const struct buf *text, const struct buf *status)
{
	head_fields(h, r, p);
	part_head(h, p, "Notification",
	          p->global ? "text/plain; charset=utf-8" : "text/plain; charset=us-ascii",
	          p->global);
	buf_append(h, text->data, text->len);
	part_head(h, p, "Delivery report",
	          p->global ? "message/global-delivery-status" : "message/delivery-status",
	          p->global);
	buf_append(h, status->data, status->len);
	if (p->has_orig)
		orig_head(h, p);
}

struct sink {
	dsn_write_fn write;
	void *ctx;
};

static int sink_chunk(void *ctx, const char *p, size_t n)
{
	struct sink *s = ctx;

	return s->write(s->ctx, p, n) < 0 ? -1 : 0;
}

static int emit(const struct dsn_report *r, const struct plan *p, const struct buf *head,
                struct sink *s, char **err)
{
	char *tail;
	int rc;

	if (s->write(s->ctx, head->data, head->len) < 0)
		return *err = xstrdup("dsn: writing the report failed"), -1;
	if (p->has_orig && orig_read(&r->body, p->extent, sink_chunk, s, err) < 0)
		return -1;
	/* the CRLF before "--" belongs to the delimiter (RFC 2046 5.1.1) */
	tail = xasprintf("\r\n--%s--\r\n", p->boundary);
	rc = s->write(s->ctx, tail, strlen(tail));
	free(tail);
	if (rc < 0)
		return *err = xstrdup("dsn: writing the report failed"), -1;
	return 0;
}

static int build_planned(const struct dsn_report *r, struct plan *p, struct sink *s, char **err)
{
	struct buf text, status, head;
	int rc = -1;

	buf_init(&text), buf_init(&status), buf_init(&head);
	if (orig_extent(r, p, err) < 0)
		goto out;
	text_part(&text, r, p);
	status_part(&status, r, p);
	if (boundary_pick(r, p, &text, &status, err) < 0)
		goto out;
	assemble_head(&head, r, p, &text, &status);
	rc = emit(r, p, &head, s, err) < 0 ? -1 : 1;
out:
	buf_free(&text), buf_free(&status), buf_free(&head);
	return rc;
}

int dsn_build(const struct dsn_report *r, dsn_write_fn write, void *ctx, char **err)
{
	struct sink s = {write, ctx};
	struct plan p;
	int rc;

	*err = NULL;
	if (plan_make(r, &p, err) < 0)
		return -1;
	if (p.kind == DSN_KIND_NONE)
		return 0;
	rc = build_planned(r, &p, &s, err);
	free(p.listed);
	return rc;
}
