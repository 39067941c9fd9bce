/*
 * test_dsn: delivery status notifications. The NOTIFY policy and status
 * codes as tables; reports built by dsn_build() for one and several
 * recipients, failure / delay / success, RET=FULL and HDRS, with and
 * without ENVID and ORCPT, SMTPUTF8 originals, long and hostile
 * diagnostics, originals that straddle the read chunks, a forced boundary
 * collision; every report read back by tests/e2e_support/parse_dsn.py
 * (Python's email package, an independent parser) and its JSON checked.
 * Last, dsn_queue() end to end on a real spool and event loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>

#include "dsn/dsn.h"
#include "dsn/dsn_headers.h"
#include "spool/spool.h"
#include "spool_fixture.h"
#include "util/util.h"

#define HOST "mx.posthorn.test"
#define T0   1700000000 /* Tue, 14 Nov 2023 22:13:20 +0000 */

static char tmpdir[] = "/tmp/posthorn-test-dsn-XXXXXX";
static int file_no;
static const char *script;

static const char orig_msg[] = "From: Alice <alice@example.com>\r\n"
                               "To: bob@example.net\r\n"
                               "Subject: Hello there\r\n"
                               "Message-ID: <orig-1@example.com>\r\n"
                               "\r\n"
                               "Body line one\r\n"
                               "SECRET-BODY-MARKER\r\n";

/* ---- fixtures ---- */

struct fx {
	struct rcpt rc[4];
	struct envelope env;
	struct dsn_rcpt d[4];
	struct dsn_report rep;
	int fd;
};

static void fx_init(struct fx *f, const char *from, size_t n_rcpts)
{
	static char *addrs[] = {"bob@example.net", "carol@example.org", "dave@example.net",
	                        "erin@example.com"};
	size_t i;

	memset(f, 0, sizeof(*f));
	for (i = 0; i < n_rcpts; i++) {
		f->rc[i].addr = addrs[i];
		f->d[i].index = i;
		f->d[i].action = DSN_ACT_FAILED;
		f->d[i].status = "5.1.1";
		f->d[i].diagnostic = "smtp; 550 5.1.1 <x@example.net>: no such user";
		f->d[i].remote_mta = "mx1.example.net";
		f->d[i].last_attempt = T0 + 60;
	}
	id_new(f->env.id);
	f->env.mail_from = (char *)from;
	f->env.account = "default";
	f->env.created = T0;
	f->env.rcpts = f->rc;
	f->env.n_rcpts = n_rcpts;
	f->fd = -1;
	f->rep = (struct dsn_report){&f->env, HOST, f->d, n_rcpts, {-1, 0, 0}, T0 + 120, NULL};
}

static char *tmp_path(const char *what)
{
	return xasprintf("%s/%s-%d", tmpdir, what, ++file_no);
}

/* Stores text after 100 bytes of filler, as the spool keeps a header in
 * front of the message: the offset must be honoured. */
static void fx_original(struct fx *f, const char *text, size_t len)
{
	char *path = tmp_path("orig");
	char filler[100];
	FILE *fp = fopen(path, "wb");

	memset(filler, 'Z', sizeof(filler));
	assert_non_null(fp);
	assert_int_equal(fwrite(filler, 1, sizeof(filler), fp), sizeof(filler));
	assert_int_equal(fwrite(text, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
	f->fd = open(path, O_RDONLY);
	assert_true(f->fd >= 0);
	f->rep.body = (struct dsn_original){f->fd, sizeof(filler), len};
	free(path);
}

static void fx_done(struct fx *f)
{
	if (f->fd >= 0)
		close(f->fd);
}

static int file_write(void *ctx, const void *p, size_t n)
{
	return fwrite(p, 1, n, ctx) == n ? 0 : -1;
}

struct built {
	int rc;
	char *path;
	char *text; /* the whole report */
	size_t len;
	char *err;
};

static char *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	struct buf b;
	char chunk[65536];
	size_t n;

	assert_non_null(fp);
	buf_init(&b);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		buf_append(&b, chunk, n);
	fclose(fp);
	*len = b.len;
	return b.data;
}

static struct built build(struct fx *f)
{
	struct built b = {0};
	FILE *fp;

	b.path = tmp_path("report");
	fp = fopen(b.path, "wb");
	assert_non_null(fp);
	b.rc = dsn_build(&f->rep, file_write, fp, &b.err);
	assert_int_equal(fclose(fp), 0);
	b.text = slurp(b.path, &b.len);
	return b;
}

static void built_free(struct built *b)
{
	free(b->path);
	free(b->text);
	free(b->err);
}

/* ---- reading reports back through parse_dsn.py ---- */

static json_t *parse_report(const char *path)
{
	char *cmd = xasprintf("/usr/bin/python3 '%s' '%s'", script, path);
	FILE *p = popen(cmd, "r");
	json_error_t jerr;
	json_t *j;
	struct buf out;
	char chunk[4096];
	size_t n;

	assert_non_null(p);
	buf_init(&out);
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		buf_append(&out, chunk, n);
	assert_int_equal(pclose(p), 0);
	j = json_loads(out.data, 0, &jerr);
	if (!j)
		fail_msg("parse_dsn.py output: %s\n%s", jerr.text, out.data);
	buf_free(&out);
	free(cmd);
	return j;
}

static const char *jstr(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	assert_non_null(v); /* the key exists, even when its value is null */
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_t *jrcpt(json_t *j, size_t i)
{
	json_t *r = json_array_get(json_object_get(j, "recipients"), i);

	assert_non_null(r);
	return r;
}

static const char *jhdr(json_t *j, const char *name)
{
	return jstr(json_object_get(j, "headers"), name);
}

/* Whether text holds want once line breaks and indents are read as single
 * spaces (the human part is wrapped at 78 columns). */
static int text_has(const char *text, const char *want)
{
	struct buf b;
	const char *p;
	int found;

	buf_init(&b);
	for (p = text; *p; p++) {
		if (strchr(" \t\r\n", *p)) {
			if (b.len && b.data[b.len - 1] != ' ')
				buf_puts(&b, " ");
			continue;
		}
		buf_append(&b, p, 1);
	}
	found = strstr(b.data, want) != NULL;
	buf_free(&b);
	return found;
}

static void assert_str(const char *got, const char *want)
{
	if (!want) {
		if (got)
			fail_msg("expected null, got \"%s\"", got);
		return;
	}
	if (!got)
		fail_msg("expected \"%s\", got null", want);
	assert_string_equal(got, want);
}

/* What every report must be: a clean multipart/report of CRLF lines of at
 * most 998 octets that Python parses without a complaint. */
static json_t *parse_checked(const struct built *b)
{
	json_t *j;

	assert_int_equal(b->rc, 1);
	j = parse_report(b->path);
	assert_str(jstr(j, "content_type"), "multipart/report");
	assert_int_equal(json_array_size(json_object_get(j, "defects")), 0);
	assert_true(json_integer_value(json_object_get(j, "max_line")) <= 998);
	assert_int_equal(json_integer_value(json_object_get(j, "bare_lf")), 0);
	assert_str(jhdr(j, "Auto-Submitted"), "auto-replied");
	assert_str(jhdr(j, "MIME-Version"), "1.0");
	assert_str(jhdr(j, "From"), "Mail Delivery System <MAILER-DAEMON@" HOST ">");
	assert_str(jstr(j, "reporting_mta"), "dns; " HOST);
	assert_str(jstr(j, "arrival_date"), "Tue, 14 Nov 2023 22:13:20 +0000");
	return j;
}

/* ---- policy ---- */

static void test_notify_table(void **state)
{
	static const struct {
		unsigned notify;
		enum dsn_action a;
		int want;
	} t[] = {
	    {0, DSN_ACT_FAILED, 1},
	    {0, DSN_ACT_DELAYED, 0},
	    {0, DSN_ACT_DELIVERED, 0},
	    {0, DSN_ACT_RELAYED, 0},
	    {DSN_NOTIFY_NEVER, DSN_ACT_FAILED, 0},
	    {DSN_NOTIFY_NEVER, DSN_ACT_DELAYED, 0},
	    {DSN_NOTIFY_NEVER, DSN_ACT_DELIVERED, 0},
	    {DSN_NOTIFY_FAILURE, DSN_ACT_FAILED, 1},
	    {DSN_NOTIFY_FAILURE, DSN_ACT_DELAYED, 0},
	    {DSN_NOTIFY_FAILURE, DSN_ACT_DELIVERED, 0},
	    {DSN_NOTIFY_DELAY, DSN_ACT_FAILED, 0},
	    {DSN_NOTIFY_DELAY, DSN_ACT_DELAYED, 1},
	    {DSN_NOTIFY_SUCCESS, DSN_ACT_FAILED, 0},
	    {DSN_NOTIFY_SUCCESS, DSN_ACT_DELIVERED, 1},
	    {DSN_NOTIFY_SUCCESS, DSN_ACT_RELAYED, 1},
	    {DSN_NOTIFY_SUCCESS, DSN_ACT_EXPANDED, 1},
	    {DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE, DSN_ACT_FAILED, 1},
	    {DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE, DSN_ACT_DELAYED, 0},
	    {DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY, DSN_ACT_DELAYED, 1},
	    {DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY, DSN_ACT_DELIVERED, 1},
	    /* NEVER with others is refused at RCPT; if it got here, NEVER wins */
	    {DSN_NOTIFY_NEVER | DSN_NOTIFY_FAILURE, DSN_ACT_FAILED, 0},
	};
	size_t i;

	for (i = 0; i < ARRAY_LEN(t); i++)
		if (dsn_notify_wants(t[i].notify, t[i].a) != t[i].want)
			fail_msg("row %zu: notify=%u action=%s", i, t[i].notify,
			         dsn_action_name(t[i].a));
}

static void test_should_report(void **state)
{
	struct fx f;

	fx_init(&f, "alice@example.com", 2);
	f.rc[1].notify = DSN_NOTIFY_NEVER;
	assert_int_equal(dsn_should_report(&f.env, 0, DSN_ACT_FAILED), 1);
	assert_int_equal(dsn_should_report(&f.env, 1, DSN_ACT_FAILED), 0);
	assert_int_equal(dsn_should_report(&f.env, 2, DSN_ACT_FAILED), 0); /* bad index */
	/* the null sender never gets a report, whatever NOTIFY says; the
	 * reports themselves have it, so a report on a report cannot occur */
	f.rc[0].notify = DSN_NOTIFY_FAILURE | DSN_NOTIFY_SUCCESS;
	f.env.mail_from = "";
	assert_int_equal(dsn_should_report(&f.env, 0, DSN_ACT_FAILED), 0);
	assert_int_equal(dsn_should_report(&f.env, 0, DSN_ACT_DELIVERED), 0);
	f.env.mail_from = NULL;
	assert_int_equal(dsn_should_report(&f.env, 0, DSN_ACT_FAILED), 0);
}

static void test_report_kind(void **state)
{
	struct fx f;

	fx_init(&f, "alice@example.com", 3);
	f.rc[0].notify = DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY;
	f.rc[1].notify = DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY;
	f.rc[2].notify = DSN_NOTIFY_NEVER;
	f.d[0].action = DSN_ACT_DELIVERED;
	f.d[1].action = DSN_ACT_DELAYED;
	/* rcpt 2 failed but asked for nothing: it does not make a failure */
	assert_int_equal(dsn_report_kind(&f.env, f.d, 3), DSN_KIND_DELAY);
	assert_int_equal(dsn_report_kind(&f.env, f.d, 1), DSN_KIND_SUCCESS);
	assert_int_equal(dsn_report_kind(&f.env, f.d + 2, 1), DSN_KIND_NONE);
	f.rc[2].notify = 0;
	assert_int_equal(dsn_report_kind(&f.env, f.d, 3), DSN_KIND_FAILURE);
	f.env.mail_from = "";
	assert_int_equal(dsn_report_kind(&f.env, f.d, 3), DSN_KIND_NONE);
	assert_string_equal(dsn_kind_name(DSN_KIND_FAILURE), "failure");
	assert_string_equal(dsn_action_name(DSN_ACT_EXPANDED), "expanded");
}

static void test_delay_wanted(void **state)
{
	static const struct {
		unsigned notify;
		enum rcpt_state st;
		int want;
	} t[] = {
	    {DSN_NOTIFY_DELAY, RCPT_DEFERRED, 1},
	    {DSN_NOTIFY_DELAY, RCPT_PENDING, 1},
	    {DSN_NOTIFY_DELAY, RCPT_DELIVERED, 0},
	    {DSN_NOTIFY_DELAY, RCPT_BOUNCED, 0},
	    {0, RCPT_DEFERRED, 0}, /* default: failures only */
	    {DSN_NOTIFY_FAILURE, RCPT_DEFERRED, 0},
	    {DSN_NOTIFY_NEVER, RCPT_DEFERRED, 0},
	    {DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY, RCPT_DEFERRED, 1},
	};
	struct fx f;
	size_t i;

	fx_init(&f, "alice@example.com", 1);
	for (i = 0; i < ARRAY_LEN(t); i++) {
		f.rc[0].notify = t[i].notify;
		f.rc[0].state = t[i].st;
		if (dsn_delay_wanted(&f.env, 0) != t[i].want)
			fail_msg("row %zu", i);
	}
	f.rc[0].notify = DSN_NOTIFY_DELAY;
	f.rc[0].state = RCPT_DEFERRED;
	assert_int_equal(dsn_delay_wanted(&f.env, 1), 0); /* bad index */
	f.env.mail_from = "";
	assert_int_equal(dsn_delay_wanted(&f.env, 0), 0);
}

static void test_status_table(void **state)
{
	static const struct {
		enum dsn_action a;
		const char *status, *diag, *want;
	} t[] = {
	    {DSN_ACT_FAILED, "5.1.1", NULL, "5.1.1"},
	    {DSN_ACT_FAILED, "4.4.7", NULL, "4.4.7"}, /* expired: kept as given */
	    {DSN_ACT_FAILED, "5.123.456", NULL, "5.123.456"},
	    {DSN_ACT_FAILED, NULL, "smtp; 550 5.7.1 relay denied", "5.7.1"},
	    {DSN_ACT_FAILED, NULL, "550 5.2.2 mailbox full", "5.2.2"},
	    {DSN_ACT_FAILED, NULL, "550-5.1.1 first line", "5.1.1"},
	    {DSN_ACT_FAILED, NULL, "550 4.2.2 class mismatch", "5.0.0"},
	    {DSN_ACT_FAILED, NULL, "554 no enhanced code", "5.0.0"},
	    {DSN_ACT_FAILED, NULL, "552", "5.0.0"},
	    {DSN_ACT_DELAYED, NULL, "smtp; 421 4.7.0 try later", "4.7.0"},
	    {DSN_ACT_DELAYED, NULL, "451 busy", "4.0.0"},
	    {DSN_ACT_DELAYED, NULL, "connection refused", "4.0.0"},
	    {DSN_ACT_FAILED, NULL, "X-Posthorn; no MX", "5.0.0"},
	    {DSN_ACT_FAILED, NULL, NULL, "5.0.0"},
	    {DSN_ACT_DELIVERED, NULL, "250 2.0.0 ok", "2.0.0"},
	    {DSN_ACT_DELIVERED, NULL, "250 2.6.0 queued", "2.6.0"},
	    {DSN_ACT_RELAYED, NULL, NULL, "2.0.0"},
	    {DSN_ACT_FAILED, "5.1", "550 5.1.2 bad", "5.1.2"}, /* malformed status */
	    {DSN_ACT_FAILED, "6.1.1", NULL, "5.0.0"},
	    {DSN_ACT_FAILED, "5.1.1x", NULL, "5.0.0"},
	    {DSN_ACT_FAILED, "5.1234.1", NULL, "5.0.0"},
	    {DSN_ACT_FAILED, NULL, "550 5.1.1x odd", "5.0.0"},
	};
	char out[DSN_STATUS_MAX];
	size_t i;

	for (i = 0; i < ARRAY_LEN(t); i++) {
		dsn_status(t[i].a, t[i].status, t[i].diag, out);
		if (strcmp(out, t[i].want) != 0)
			fail_msg("row %zu: got %s want %s", i, out, t[i].want);
	}
	assert_true(dsn_status_valid("2.0.0"));
	assert_false(dsn_status_valid(""));
	assert_false(dsn_status_valid(NULL));
	assert_false(dsn_status_valid("3.0.0"));
}

/* ---- reports ---- */

static void test_failure_one_rcpt_headers(void **state)
{
	struct fx f;
	struct built b;
	json_t *j, *r;

	fx_init(&f, "alice@example.com", 1);
	fx_original(&f, orig_msg, strlen(orig_msg));
	b = build(&f);
	j = parse_checked(&b);
	assert_str(jstr(j, "report_type"), "delivery-status");
	assert_str(jstr(j, "status_type"), "message/delivery-status");
	assert_str(jhdr(j, "To"), "alice@example.com");
	assert_str(jhdr(j, "Subject"), "Undelivered Mail Returned to Sender");
	assert_str(jhdr(j, "Date"), "Tue, 14 Nov 2023 22:15:20 +0000");
	assert_non_null(strstr(jhdr(j, "Message-ID"), ".dsn@" HOST ">"));
	assert_str(jstr(j, "original_envelope_id"), NULL);
	assert_str(jstr(j, "queue_id"), f.env.id);
	assert_int_equal(json_array_size(json_object_get(j, "recipients")), 1);
	r = jrcpt(j, 0);
	assert_str(jstr(r, "final_recipient"), "rfc822; bob@example.net");
	assert_str(jstr(r, "original_recipient"), NULL);
	assert_str(jstr(r, "action"), "failed");
	assert_str(jstr(r, "status"), "5.1.1");
	assert_str(jstr(r, "diagnostic_code"), "smtp; 550 5.1.1 <x@example.net>: no such user");
	assert_str(jstr(r, "remote_mta"), "dns; mx1.example.net");
	assert_str(jstr(r, "last_attempt_date"), "Tue, 14 Nov 2023 22:14:20 +0000");
	assert_str(jstr(r, "will_retry_until"), NULL);
	/* no RET: the headers come back, not the body */
	assert_str(jstr(j, "returned"), "headers");
	assert_str(jstr(j, "returned_type"), "text/rfc822-headers");
	assert_false(json_is_true(json_object_get(j, "returned_has_body")));
	assert_str(jstr(json_object_get(j, "returned_headers"), "Subject"), "Hello there");
	assert_str(jstr(json_object_get(j, "returned_headers"), "Message-ID"),
	           "<orig-1@example.com>");
	assert_null(strstr(b.text, "SECRET-BODY-MARKER"));
	assert_true(text_has(jstr(j, "text"), "<bob@example.net>: host mx1.example.net said: "
	                                      "550 5.1.1 <x@example.net>: no such user"));
	json_decref(j);
	built_free(&b);
	fx_done(&f);
}

static void test_failure_ret_full(void **state)
{
	struct fx f;
	struct built b;
	json_t *j;

	fx_init(&f, "alice@example.com", 1);
	f.env.ret = DSN_RET_FULL;
	fx_original(&f, orig_msg, strlen(orig_msg));
	b = build(&f);
	j = parse_checked(&b);
	assert_str(jstr(j, "returned"), "full");
	assert_str(jstr(j, "returned_type"), "message/rfc822");
	assert_true(json_is_true(json_object_get(j, "returned_has_body")));
	assert_str(jstr(json_object_get(j, "returned_headers"), "Subject"), "Hello there");
	/* the original, byte for byte, inside the report */
	assert_non_null(memmem(b.text, b.len, orig_msg, strlen(orig_msg)));
	json_decref(j);
	built_free(&b);

	/* RET=HDRS says the same as no RET */
	f.env.ret = DSN_RET_HDRS;
	b = build(&f);
	j = parse_checked(&b);
	assert_str(jstr(j, "returned"), "headers");
	assert_null(strstr(b.text, "SECRET-BODY-MARKER"));
	json_decref(j);
	built_free(&b);
	fx_done(&f);
}

static void test_several_rcpts(void **state)
{
	struct fx f;
	struct built b;
	json_t *j;

	fx_init(&f, "alice@example.com", 4);
	f.rc[1].notify = DSN_NOTIFY_NEVER; /* failed, asked for nothing */
	f.rc[2].notify = DSN_NOTIFY_SUCCESS;
	f.d[2].action = DSN_ACT_DELIVERED;
	f.d[2].status = NULL;
	f.d[2].diagnostic = "smtp; 250 2.0.0 Ok: queued as 4F2";
	f.rc[3].notify = DSN_NOTIFY_FAILURE; /* delayed, did not ask */
	f.d[3].action = DSN_ACT_DELAYED;
	f.d[0].diagnostic = "550 5.1.1 unknown user"; /* a bare reply: smtp; added */
	f.d[0].remote_mta = NULL;
	fx_original(&f, orig_msg, strlen(orig_msg));
	b = build(&f);
	j = parse_checked(&b);
	assert_str(jhdr(j, "Subject"), "Undelivered Mail Returned to Sender");
	assert_int_equal(json_array_size(json_object_get(j, "recipients")), 2);
	assert_str(jstr(jrcpt(j, 0), "final_recipient"), "rfc822; bob@example.net");
	assert_str(jstr(jrcpt(j, 0), "diagnostic_code"), "smtp; 550 5.1.1 unknown user");
	assert_str(jstr(jrcpt(j, 0), "remote_mta"), NULL);
	assert_str(jstr(jrcpt(j, 1), "final_recipient"), "rfc822; dave@example.net");
	assert_str(jstr(jrcpt(j, 1), "action"), "delivered");
	assert_str(jstr(jrcpt(j, 1), "status"), "2.0.0");
	assert_null(strstr(b.text, "carol@example.org"));
	assert_null(strstr(b.text, "erin@example.com"));
	assert_true(text_has(jstr(j, "text"), "could not be delivered"));
	assert_true(text_has(jstr(j, "text"), "was delivered"));
	assert_true(text_has(jstr(j, "text"),
	                     "<dave@example.net>: host mx1.example.net said: 250 2.0.0 Ok: "
	                     "queued as 4F2"));
	json_decref(j);
	built_free(&b);
	fx_done(&f);
}

static void test_delay_notice(void **state)
{
	struct fx f;
	struct built b;
	json_t *j, *r;

	fx_init(&f, "alice@example.com", 2);
	f.env.ret = DSN_RET_FULL; /* a delay notice still returns headers only */
	f.rc[0].notify = DSN_NOTIFY_DELAY | DSN_NOTIFY_FAILURE;
	f.d[0].action = DSN_ACT_DELAYED;
	f.d[0].status = "4.4.1";
	f.d[0].diagnostic = "X-Posthorn; connect to mx1.example.net[192.0.2.1]:25: Connection "
	                    "refused";
	f.d[0].retry_until = T0 + 5 * 86400;
	f.rc[1].notify = 0; /* delayed too, but the default does not ask */
	f.d[1].action = DSN_ACT_DELAYED;
	fx_original(&f, orig_msg, strlen(orig_msg));
	b = build(&f);
	j = parse_checked(&b);
	assert_str(jhdr(j, "Subject"), "Delayed Mail (still being retried)");
	assert_int_equal(json_array_size(json_object_get(j, "recipients")), 1);
	r = jrcpt(j, 0);
	assert_str(jstr(r, "action"), "delayed");
	assert_str(jstr(r, "status"), "4.4.1");
	assert_str(jstr(r, "will_retry_until"), "Sun, 19 Nov 2023 22:13:20 +0000");
	assert_str(jstr(r, "diagnostic_code"), f.d[0].diagnostic);
	assert_str(jstr(j, "returned"), "headers");
	assert_str(jstr(json_object_get(j, "returned_headers"), "Subject"), "Hello there");
	assert_true(text_has(jstr(j, "text"), "give up after Sun, 19 Nov 2023 22:13:20 +0000"));
	json_decref(j);
	built_free(&b);
	fx_done(&f);
}

static void test_success_notice(void **state)
{
	struct fx f;
	struct built b;
	json_t *j;

	fx_init(&f, "alice@example.com", 2);
	f.rc[0].notify = DSN_NOTIFY_SUCCESS;
	f.d[0].action = DSN_ACT_DELIVERED;
	f.d[0].status = "2.0.0";
	f.d[0].diagnostic = "smtp; 250 2.0.0 Ok";
	f.rc[1].notify = DSN_NOTIFY_SUCCESS;
	f.d[1].action = DSN_ACT_RELAYED;
	f.d[1].status = NULL;
	f.d[1].diagnostic = NULL;
	f.d[1].last_attempt = 0;
	fx_original(&f, orig_msg, strlen(orig_msg));
	b = build(&f);
	j = parse_checked(&b);
	assert_str(jhdr(j, "Subject"), "Successful Mail Delivery Report");
	assert_str(jstr(jrcpt(j, 0), "action"), "delivered");
	assert_str(jstr(jrcpt(j, 1), "action"), "relayed");
	assert_str(jstr(jrcpt(j, 1), "status"), "2.0.0");
	assert_str(jstr(jrcpt(j, 1), "diagnostic_code"), NULL);
	assert_str(jstr(jrcpt(j, 1), "last_attempt_date"), NULL);
	assert_str(jstr(j, "returned"), "headers");
	json_decref(j);
	built_free(&b);

	/* a success nobody asked for makes no report at all */
	f.rc[0].notify = f.rc[1].notify = 0;
	b = build(&f);
	assert_int_equal(b.rc, 0);
	assert_int_equal(b.len, 0);
	built_free(&b);
	fx_done(&f);
}

static void test_envid_orcpt(void **state)
{
	struct fx f;
	struct built b;
	json_t *j;

	fx_init(&f, "alice@example.com", 2);
	f.env.envid = "QQ314159";
	f.rc[0].orcpt = "rfc822;Bob@Example.NET";
	fx_original(&f, orig_msg, strlen(orig_msg));
	b = build(&f);
	j = parse_checked(&b);
	assert_str(jstr(j, "original_envelope_id"), "QQ314159");
	assert_str(jstr(jrcpt(j, 0), "original_recipient"), "rfc822;Bob@Example.NET");
	assert_str(jstr(jrcpt(j, 0), "final_recipient"), "rfc822; bob@example.net");
	assert_str(jstr(jrcpt(j, 1), "original_recipient"), NULL);
	json_decref(j);
	built_free(&b);
	fx_done(&f);
}

static const char utf8_msg[] = "From: J\xc3\xbcrgen <j\xc3\xbcrgen@example.de>\r\n"
                               "To: \xe7\x94\xa8\xe6\x88\xb7@example.cn\r\n"
                               "Subject: Gr\xc3\xbc\xc3\x9f\x65\r\n"
                               "\r\n"
                               "Hallo \xe2\x82\xac\r\n";

static void test_smtputf8(void **state)
{
	struct fx f;
	struct built b;
	json_t *j, *r;

	fx_init(&f, "j\xc3\xbcrgen@example.de", 2);
	f.env.smtputf8 = 1;
	f.env.body = BODY_8BITMIME;
	f.rc[0].addr = "\xe7\x94\xa8\xe6\x88\xb7@example.cn";
	f.rc[0].orcpt = "utf-8;\xe7\x94\xa8\xe6\x88\xb7@example.cn";
	f.d[0].diagnostic = "smtp; 550 5.1.1 \xe7\x94\xa8\xe6\x88\xb7 unknown \xff";
	fx_original(&f, utf8_msg, strlen(utf8_msg));
	b = build(&f);
	j = parse_checked(&b);
	assert_str(jstr(j, "report_type"), "global-delivery-status");
	assert_str(jstr(j, "status_type"), "message/global-delivery-status");
	assert_str(jhdr(j, "To"), "j\xc3\xbcrgen@example.de");
	r = jrcpt(j, 0);
	assert_str(jstr(r, "final_recipient"), "utf-8; \xe7\x94\xa8\xe6\x88\xb7@example.cn");
	assert_str(jstr(r, "original_recipient"), "utf-8;\xe7\x94\xa8\xe6\x88\xb7@example.cn");
	/* UTF-8 kept, the invalid byte replaced */
	assert_str(jstr(r, "diagnostic_code"),
	           "smtp; 550 5.1.1 \xe7\x94\xa8\xe6\x88\xb7 unknown ?");
	assert_str(jstr(jrcpt(j, 1), "final_recipient"), "rfc822; carol@example.org");
	assert_str(jstr(j, "returned"), "headers");
	assert_str(jstr(j, "returned_type"), "message/global-headers");
	assert_str(jstr(json_object_get(j, "returned_headers"), "Subject"),
	           "Gr\xc3\xbc\xc3\x9f\x65");
	assert_non_null(strstr(b.text, "charset=utf-8"));
	json_decref(j);
	built_free(&b);

	f.env.ret = DSN_RET_FULL;
	b = build(&f);
	j = parse_checked(&b);
	assert_str(jstr(j, "returned"), "full");
	assert_str(jstr(j, "returned_type"), "message/global");
	assert_true(json_is_true(json_object_get(j, "returned_has_body")));
	assert_non_null(memmem(b.text, b.len, utf8_msg, strlen(utf8_msg)));
	json_decref(j);
	built_free(&b);
	fx_done(&f);
}

/* Outside SMTPUTF8, 8-bit and control bytes from a remote server never
 * reach the report; a multi-line reply becomes one field. */
static void test_hostile_diagnostic(void **state)
{
	struct fx f;
	struct built b;
	json_t *j;

	fx_init(&f, "alice@example.com", 1);
	f.d[0].diagnostic = "550-5.1.1 first\r\n550 5.1.1 caf\xc3\xa9\x01 second";
	f.d[0].remote_mta = "mx\r\nInjected: yes";
	b = build(&f);
	j = parse_checked(&b);
	assert_str(jstr(jrcpt(j, 0), "diagnostic_code"),
	           "smtp; 550-5.1.1 first 550 5.1.1 caf?? second");
	assert_str(jstr(jrcpt(j, 0), "remote_mta"), "dns; mx Injected: yes");
	assert_null(strstr(b.text, "\r\nInjected"));
	/* no original: a two-part report */
	assert_int_equal(json_array_size(json_object_get(j, "parts")), 2);
	assert_str(jstr(j, "returned"), NULL);
	json_decref(j);
	built_free(&b);
	fx_done(&f);
}

static void check_lines(const struct built *b)
{
	const char *p = b->text, *end = b->text + b->len, *nl;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		assert_non_null(nl);
		assert_true(nl > p && nl[-1] == '\r');
		assert_true(nl - 1 - p <= 998);
		p = nl + 1;
	}
}

static void test_long_diagnostic(void **state)
{
	struct fx f;
	struct built b;
	struct buf d, w;
	json_t *j;
	int i;

	fx_init(&f, "alice@example.com", 2);
	buf_init(&d), buf_init(&w);
	buf_puts(&d, "smtp; 550 5.7.1");
	for (i = 0; i < 400; i++)
		buf_printf(&d, " word%d", i);
	f.d[0].diagnostic = d.data;
	buf_puts(&w, "smtp; 550 5.7.1 ");
	for (i = 0; i < 2500; i++)
		buf_puts(&w, "x");
	f.d[1].diagnostic = w.data;
	b = build(&f);
	j = parse_checked(&b);
	check_lines(&b);
	/* folded at spaces: unfolding gives the text back */
	assert_str(jstr(jrcpt(j, 0), "diagnostic_code"), d.data);
	/* one 2500-octet word has to be split; nothing is lost */
	assert_true(strlen(jstr(jrcpt(j, 1), "diagnostic_code")) >= w.len);
	assert_int_equal(strlen(jstr(jrcpt(j, 1), "status")), 5);
	json_decref(j);
	built_free(&b);
	buf_free(&d), buf_free(&w);
	fx_done(&f);
}

static void test_null_sender_and_never(void **state)
{
	struct fx f;
	struct built b;

	fx_init(&f, "", 2);
	b = build(&f);
	assert_int_equal(b.rc, 0);
	assert_int_equal(b.len, 0);
	assert_null(b.err);
	built_free(&b);

	fx_init(&f, "alice@example.com", 2);
	f.rc[0].notify = f.rc[1].notify = DSN_NOTIFY_NEVER;
	b = build(&f);
	assert_int_equal(b.rc, 0);
	assert_int_equal(b.len, 0);
	built_free(&b);
}

static void test_errors(void **state)
{
	struct fx f;
	struct built b;

	fx_init(&f, "alice@example.com", 1);
	f.d[0].index = 5;
	b = build(&f);
	assert_int_equal(b.rc, -1);
	assert_non_null(strstr(b.err, "out of range"));
	built_free(&b);

	/* the original is shorter than the spool said */
	fx_init(&f, "alice@example.com", 1);
	fx_original(&f, orig_msg, strlen(orig_msg));
	f.env.ret = DSN_RET_FULL;
	f.rep.body.len += 10;
	b = build(&f);
	assert_int_equal(b.rc, -1);
	assert_non_null(strstr(b.err, "shorter"));
	built_free(&b);
	fx_done(&f);
}

static int failing_write(void *ctx, const void *p, size_t n)
{
	return -1;
}

static void test_write_error(void **state)
{
	struct fx f;
	char *err = NULL;

	fx_init(&f, "alice@example.com", 1);
	fx_original(&f, orig_msg, strlen(orig_msg));
	assert_int_equal(dsn_build(&f.rep, failing_write, NULL, &err), -1);
	assert_non_null(err);
	free(err);
	fx_done(&f);
}

/* ---- originals larger than a read chunk ---- */

/* Appends lines "prefix aaa..." of 80 octets, the last one shorter, so
 * that m ends at offset end, without its CRLF. */
static void pad_lines(struct buf *m, const char *prefix, size_t end)
{
	while (m->len + 100 < end) {
		buf_puts(m, prefix);
		while (m->len % 80 != 78)
			buf_puts(m, "a");
		buf_puts(m, "\r\n");
	}
	buf_puts(m, prefix);
	while (m->len < end)
		buf_puts(m, "a");
}

/* A message whose blank line after the header straddles the 64 KiB read
 * chunk, with a body past it: only the header may come back. */
static void test_header_end_across_chunks(void **state)
{
	struct fx f;
	struct built b;
	struct buf m;
	json_t *j;
	int shift;

	for (shift = -3; shift <= 1; shift++) {
		fx_init(&f, "alice@example.com", 1);
		buf_init(&m);
		buf_puts(&m, "Subject: big\r\n");
		pad_lines(&m, "X-Pad: ", (size_t)(65536 + shift - 2));
		/* "\r\n\r\n" starts at 65536 + shift - 2: the edge falls in it */
		buf_puts(&m, "\r\n\r\nSECRET-BODY-MARKER\r\n");
		fx_original(&f, m.data, m.len);
		b = build(&f);
		j = parse_checked(&b);
		assert_str(jstr(j, "returned"), "headers");
		assert_null(strstr(b.text, "SECRET-BODY-MARKER"));
		assert_str(jstr(json_object_get(j, "returned_headers"), "Subject"), "big");
		json_decref(j);
		built_free(&b);
		buf_free(&m);
		fx_done(&f);
	}
}

/* A RET=FULL original comes back whole up to DSN_FULL_MAX bytes; one byte
 * more and only its headers do, and the report says why. */
static void test_full_up_to_the_limit(void **state)
{
	static const uint64_t sizes[] = {DSN_FULL_MAX, DSN_FULL_MAX + 1, 3u << 20};
	struct fx f;
	struct built b;
	struct buf m;
	json_t *j;
	size_t k;
	int i;

	for (k = 0; k < ARRAY_LEN(sizes); k++) {
		fx_init(&f, "alice@example.com", 1);
		f.env.ret = DSN_RET_FULL;
		buf_init(&m);
		buf_puts(&m, "Subject: large\r\n\r\n");
		for (i = 0; m.len < sizes[k]; i++)
			buf_printf(&m, "line %d of a large message, to cross many read chunks\r\n",
			           i);
		m.len = (size_t)sizes[k]; /* exactly: the last line may be cut */
		fx_original(&f, m.data, m.len);
		b = build(&f);
		j = parse_checked(&b);
		if (sizes[k] <= DSN_FULL_MAX) {
			assert_str(jstr(j, "returned"), "full");
			assert_non_null(memmem(b.text, b.len, m.data, m.len));
			assert_null(strstr(b.text, "too large"));
		} else {
			assert_str(jstr(j, "returned"), "headers");
			assert_str(jstr(json_object_get(j, "returned_headers"), "Subject"),
			           "large");
			assert_null(strstr(b.text, "line 0 of a large message"));
			assert_non_null(strstr(b.text, "too large to return in full"));
			assert_true(b.len < 16 * 1024); /* bounded, whatever the original */
		}
		json_decref(j);
		built_free(&b);
		buf_free(&m);
		fx_done(&f);
	}
}

/* RET=HDRS (or none) returns the headers only, even when no empty line
 * ends them: the first line that is not a header field does. */
static void test_hdrs_without_empty_line(void **state)
{
	static const struct {
		const char *msg, *want;
	} t[] = {
	    {"Subject: no gap\r\nFrom: <a@b>\r\nSECRET body line\r\nmore\r\n",
	     "Subject: no gap\r\nFrom: <a@b>\r\n"},
	    {"Subject: only headers\r\nX-A: b\r\n", "Subject: only headers\r\nX-A: b\r\n"},
	    {"Subject: last\r\nX-Tail: no line end", "Subject: last\r\nX-Tail: no line end"},
	    {"Subject: folded\r\n continued\r\n\tagain\r\nSECRET: x\r\n\r\nbody",
	     "Subject: folded\r\n continued\r\n\tagain\r\nSECRET: x\r\n"},
	    {"Subject: x\r\nFrom  : obsolete blank\r\n<SECRET html>\r\n",
	     "Subject: x\r\nFrom  : obsolete blank\r\n"},
	};
	struct fx f;
	struct built b;
	json_t *j;
	size_t i;

	for (i = 0; i < ARRAY_LEN(t); i++) {
		fx_init(&f, "alice@example.com", 1);
		f.env.ret = i % 2 ? DSN_RET_HDRS : DSN_RET_UNSET;
		fx_original(&f, t[i].msg, strlen(t[i].msg));
		b = build(&f);
		j = parse_checked(&b);
		assert_str(jstr(j, "returned"), "headers");
		if (!memmem(b.text, b.len, t[i].want, strlen(t[i].want)))
			fail_msg("row %zu: headers not returned", i);
		if (strstr(t[i].want, "SECRET") == NULL && strstr(b.text, "SECRET"))
			fail_msg("row %zu: more than the headers returned", i);
		json_decref(j);
		built_free(&b);
		fx_done(&f);
	}
}

/* A header section longer than DSN_HEADERS_MAX: cut at a line end before
 * the limit, and the report says so. */
static void test_headers_cut(void **state)
{
	struct fx f;
	struct built b;
	struct buf m;
	json_t *j;
	int i;

	fx_init(&f, "alice@example.com", 1);
	f.env.ret = DSN_RET_FULL;
	buf_init(&m);
	buf_puts(&m, "Subject: many fields\r\n");
	for (i = 0; m.len < 3 * DSN_HEADERS_MAX; i++)
		buf_printf(&m, "X-Filler-%d: a field to make the header section long\r\n", i);
	buf_puts(&m, "\r\nbody\r\n");
	fx_original(&f, m.data, m.len);
	b = build(&f);
	j = parse_checked(&b);
	assert_str(jstr(j, "returned"), "headers");
	assert_non_null(strstr(b.text, "X-Filler-0: a field"));
	assert_null(strstr(b.text, "X-Filler-4000:"));
	assert_non_null(strstr(b.text, "only the first"));
	assert_true(b.len < DSN_HEADERS_MAX + 8 * 1024);
	json_decref(j);
	built_free(&b);
	buf_free(&m);
	fx_done(&f);
}

/* ---- dsn_headers: the scanner alone ---- */

/* The section's end for msg, fed whole, and fed in every two-piece split
 * and byte by byte: all must agree. */
static uint64_t hscan(const char *msg, size_t len, uint64_t max, int *cut)
{
	struct dsn_hscan h;
	uint64_t whole, end;
	size_t split, i;

	dsn_hscan_init(&h, max);
	dsn_hscan_feed(&h, msg, len);
	whole = dsn_hscan_end(&h);
	*cut = h.cut;
	for (split = 0; split <= len; split++) {
		dsn_hscan_init(&h, max);
		if (!dsn_hscan_feed(&h, msg, split))
			dsn_hscan_feed(&h, msg + split, len - split);
		if ((end = dsn_hscan_end(&h)) != whole || h.cut != *cut)
			fail_msg("split %zu of \"%s\": %llu, whole: %llu", split, msg,
			         (unsigned long long)end, (unsigned long long)whole);
	}
	dsn_hscan_init(&h, max);
	for (i = 0; i < len && !dsn_hscan_feed(&h, msg + i, 1); i++)
		;
	assert_int_equal(dsn_hscan_end(&h), whole);
	return whole;
}

static void test_hscan_table(void **state)
{
	static const struct {
		const char *msg;
		uint64_t max, want;
		int cut;
	} t[] = {
	    {"", 100, 0, 0},
	    {"\r\nbody", 100, 0, 0},         /* no headers at all */
	    {"A: 1\r\n\r\nbody", 100, 6, 0}, /* CRLF CRLF */
	    {"A: 1\n\nbody", 100, 5, 0},     /* bare LF */
	    {"A: 1\r\nB: 2\r\nbody\r\n", 100, 12, 0},
	    {"A: 1\r\n cont\r\n\r\n", 100, 13, 0},
	    {" A: 1\r\n\r\n", 100, 0, 0},              /* a continuation first */
	    {"A: 1\r\n\rX: 2\r\n", 100, 6, 0},         /* a bare CR */
	    {"A : 1\r\nB\t: 2\r\n\r\n", 100, 14, 0},   /* blanks before ':' */
	    {"A 1\r\n", 100, 0, 0},                    /* a blank, no ':' */
	    {"A: 1\r\nB: 2", 100, 10, 0},              /* last field without CRLF */
	    {"A: 1\r\nB", 100, 6, 0},                  /* a name alone: no field */
	    {"A\xC3\xA9: 1\r\n", 100, 0, 0},           /* 8-bit in a name */
	    {"Subject: \xC3\xA9\r\n\r\n", 100, 13, 0}, /* 8-bit in a value */
	    {"A: 1\r\nB: 2\r\nC: 3\r\n", 12, 12, 1},   /* the limit, at a line end */
	    {"A: 1\r\nB: 2\r\nC: 3\r\n", 11, 6, 1},
	    {"A: 1\r\nB: 22222222222", 10, 6, 1}, /* a last line past it */
	    {"AAAAAAAAAAAAAAAAAAAA", 10, 0, 1},   /* a name past it */
	};
	size_t i;
	int cut;

	for (i = 0; i < ARRAY_LEN(t); i++) {
		uint64_t end = hscan(t[i].msg, strlen(t[i].msg), t[i].max, &cut);
		if (end != t[i].want || cut != t[i].cut)
			fail_msg("row %zu: end %llu cut %d, want %llu cut %d", i,
			         (unsigned long long)end, cut, (unsigned long long)t[i].want,
			         t[i].cut);
	}
}

/* Random bytes in random pieces: the answer never depends on the pieces,
 * never passes the limit, and always ends at a line end or the end. */
static void test_hscan_random(void **state)
{
	static const char alphabet[] = "ab:: \t\r\n\r\nX-\xff";
	char msg[300];
	unsigned seed = 7;
	int round, cut;
	size_t len, i;
	uint64_t end;

	for (round = 0; round < 2000; round++) {
		seed = seed * 1103515245u + 12345u;
		len = (seed >> 8) % sizeof(msg);
		for (i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			msg[i] = alphabet[(seed >> 8) % (sizeof(alphabet) - 1)];
		}
		/* hscan() takes a C string for its messages: no NUL inside */
		msg[len] = '\0';
		end = hscan(msg, len, 150, &cut);
		assert_true(end <= len && end <= 150);
		assert_true(end == 0 || end == len || msg[end - 1] == '\n');
	}
}

/* ---- the boundary ---- */

static unsigned char rand_seq[2];
static int rand_calls;

/* The first call gives rand_seq[0] bytes, later ones rand_seq[1]. */
static void scripted_random(void *p, size_t n)
{
	memset(p, rand_seq[rand_calls ? 1 : 0], n);
	rand_calls++;
}

static char *boundary_of(const struct built *b)
{
	const char *s = strstr(b->text, "boundary=\"");
	const char *e;

	assert_non_null(s);
	s += strlen("boundary=\"");
	e = strchr(s, '"');
	assert_non_null(e);
	return xstrndup(s, (size_t)(e - s));
}

static void test_boundary_collision(void **state)
{
	struct fx f;
	struct built b;
	struct buf m;
	char *first, *used;
	json_t *j;

	/* learn the boundary that 0xAA bytes make */
	fx_init(&f, "alice@example.com", 1);
	f.rep.random = scripted_random;
	rand_seq[0] = rand_seq[1] = 0xAA;
	rand_calls = 0;
	b = build(&f);
	first = boundary_of(&b);
	built_free(&b);

	/* an original that holds it, straddling the 64 KiB read chunk */
	buf_init(&m);
	buf_puts(&m, "Subject: trap\r\n\r\n");
	pad_lines(&m, "", 65536 - 10);
	buf_printf(&m, "\r\n--%s\r\nmore\r\n", first);
	f.env.ret = DSN_RET_FULL;
	fx_original(&f, m.data, m.len);
	rand_seq[1] = 0xBB;
	rand_calls = 0;
	b = build(&f);
	j = parse_checked(&b);
	used = boundary_of(&b);
	assert_true(rand_calls >= 2);
	assert_string_not_equal(used, first);
	assert_str(jstr(j, "returned"), "full");
	assert_non_null(memmem(b.text, b.len, m.data, m.len));
	json_decref(j);
	built_free(&b);
	free(used);

	/* a random source that always collides: an error, not a broken report */
	rand_seq[1] = 0xAA;
	rand_calls = 0;
	b = build(&f);
	assert_int_equal(b.rc, -1);
	assert_non_null(strstr(b.err, "boundary"));
	built_free(&b);
	free(first);
	buf_free(&m);
	fx_done(&f);
}

/* ---- dsn_queue on a real spool ---- */

static struct event_base *base;

static void run_until(struct wait *w)
{
	while (!w->done)
		assert_true(event_base_loop(base, EVLOOP_ONCE) >= 0);
}

/* Commits orig_msg for f's envelope; f->env.id becomes its queue ID. */
static void commit_original(struct spool *sp, struct fx *f)
{
	struct wait w = {0};
	char *err = NULL;
	struct spool_msg *m = spool_msg_new(sp, &err);

	assert_non_null(m);
	assert_int_equal(spool_msg_write(m, orig_msg, strlen(orig_msg)), 0);
	spool_msg_commit(m, &f->env, on_done, &w);
	run_until(&w);
	assert_true(w.ok);
	memcpy(f->env.id, w.id, sizeof(w.id));
}

/* Reads a queued message's content into a file for parse_dsn.py. */
static char *body_to_file(struct spool *sp, const char *id)
{
	char *err = NULL, *path = tmp_path("queued"), *chunk = xmalloc(1 << 16);
	uint64_t off, len;
	int fd;
	FILE *fp = fopen(path, "wb");
	ssize_t got;

	assert_non_null(fp);
	assert_int_equal(spool_open_body(sp, id, &fd, &off, &len, &err), 0);
	while (len > 0) {
		got = pread(fd, chunk, len < (1 << 16) ? len : (1 << 16), (off_t)off);
		assert_true(got > 0);
		assert_int_equal(fwrite(chunk, 1, (size_t)got, fp), (size_t)got);
		off += (uint64_t)got, len -= (uint64_t)got;
	}
	close(fd);
	fclose(fp);
	free(chunk);
	return path;
}

static void check_report_envelope(struct spool *sp, const char *id)
{
	struct envelope *e = NULL;
	char *err = NULL;

	assert_int_equal(spool_load(sp, id, &e, &err), 0);
	assert_string_equal(e->mail_from, "");
	assert_string_equal(e->account, "acct-7");
	assert_int_equal(e->n_rcpts, 1);
	assert_string_equal(e->rcpts[0].addr, "alice@example.com");
	assert_int_equal(e->rcpts[0].notify, DSN_NOTIFY_NEVER);
	assert_int_equal(e->rcpts[0].state, RCPT_PENDING);
	assert_int_equal(e->ret, DSN_RET_UNSET);
	assert_null(e->envid);
	envelope_free(e);
}

static void test_queue_end_to_end(void **state)
{
	char *dir = tmp_path("data"), *err = NULL, *path;
	struct spool *sp;
	struct wait w = {0};
	struct built b = {0};
	struct fx f;
	json_t *j;

	sp = spool_open(dir, base, &err);
	if (!sp)
		fail_msg("spool_open: %s", err);
	fx_init(&f, "alice@example.com", 2);
	f.env.account = "acct-7";
	f.env.envid = "ENV-42";
	f.rc[1].notify = DSN_NOTIFY_NEVER;
	commit_original(sp, &f);
	assert_int_equal(dsn_queue(sp, HOST, &f.env, f.d, 2, on_done, &w, &err), 1);
	assert_int_equal(w.done, 0); /* never from inside the call */
	run_until(&w);
	assert_true(w.ok);
	assert_string_not_equal(w.id, f.env.id);
	check_report_envelope(sp, w.id);
	path = body_to_file(sp, w.id);
	b.rc = 1, b.path = path;
	b.text = slurp(path, &b.len);
	j = parse_checked(&b);
	assert_str(jstr(j, "queue_id"), f.env.id);
	assert_str(jstr(j, "original_envelope_id"), "ENV-42");
	assert_int_equal(json_array_size(json_object_get(j, "recipients")), 1);
	assert_str(jstr(j, "returned"), "headers");
	assert_str(jstr(json_object_get(j, "returned_headers"), "Subject"), "Hello there");
	json_decref(j);
	built_free(&b);

	/* nothing to say: no message, no done() */
	memset(&w, 0, sizeof(w));
	f.env.mail_from = "";
	assert_int_equal(dsn_queue(sp, HOST, &f.env, f.d, 2, on_done, &w, &err), 0);
	f.env.mail_from = "alice@example.com";
	f.d[0].index = 9;
	assert_int_equal(dsn_queue(sp, HOST, &f.env, f.d, 2, on_done, &w, &err), -1);
	assert_non_null(err);
	free(err);
	assert_int_equal(w.done, 0);
	spool_close(sp);
	free(dir);
}

/* The original already gone: the sender still hears of the failure. */
static void test_queue_without_original(void **state)
{
	char *dir = tmp_path("data"), *err = NULL;
	struct spool *sp = spool_open(dir, NULL, &err); /* synchronous commits */
	struct wait w = {0};
	struct built b = {0};
	struct fx f;
	json_t *j;

	assert_non_null(sp);
	fx_init(&f, "alice@example.com", 1);
	f.env.account = "acct-7";
	assert_int_equal(dsn_queue(sp, HOST, &f.env, f.d, 1, on_done, &w, &err), 1);
	assert_int_equal(w.done, 1);
	assert_true(w.ok);
	check_report_envelope(sp, w.id);
	b.rc = 1;
	b.path = body_to_file(sp, w.id);
	b.text = slurp(b.path, &b.len);
	j = parse_checked(&b);
	assert_int_equal(json_array_size(json_object_get(j, "parts")), 2);
	assert_str(jstr(jrcpt(j, 0), "action"), "failed");
	json_decref(j);
	built_free(&b);
	spool_close(sp);
	free(dir);
}

/* ---- setup ---- */

static int group_setup(void **state)
{
	static char path[4096];
	const char *slash;

	if (!mkdtemp(tmpdir))
		return -1;
	/* run from the repository root (make) or from anywhere via __FILE__ */
	script = "tests/e2e_support/parse_dsn.py";
	if (access(script, R_OK) != 0 && (slash = strrchr(__FILE__, '/'))) {
		snprintf(path, sizeof(path), "%.*s/../e2e_support/parse_dsn.py",
		         (int)(slash - __FILE__), __FILE__);
		script = path;
	}
	evthread_use_pthreads();
	base = event_base_new();
	return access(script, R_OK) == 0 && base ? 0 : -1;
}

static int group_teardown(void **state)
{
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	int rc = system(cmd);

	free(cmd);
	event_base_free(base);
	return rc == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_notify_table),
	    cmocka_unit_test(test_should_report),
	    cmocka_unit_test(test_report_kind),
	    cmocka_unit_test(test_delay_wanted),
	    cmocka_unit_test(test_status_table),
	    cmocka_unit_test(test_failure_one_rcpt_headers),
	    cmocka_unit_test(test_failure_ret_full),
	    cmocka_unit_test(test_several_rcpts),
	    cmocka_unit_test(test_delay_notice),
	    cmocka_unit_test(test_success_notice),
	    cmocka_unit_test(test_envid_orcpt),
	    cmocka_unit_test(test_smtputf8),
	    cmocka_unit_test(test_hostile_diagnostic),
	    cmocka_unit_test(test_long_diagnostic),
	    cmocka_unit_test(test_null_sender_and_never),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_write_error),
	    cmocka_unit_test(test_header_end_across_chunks),
	    cmocka_unit_test(test_full_up_to_the_limit),
	    cmocka_unit_test(test_hdrs_without_empty_line),
	    cmocka_unit_test(test_headers_cut),
	    cmocka_unit_test(test_hscan_table),
	    cmocka_unit_test(test_hscan_random),
	    cmocka_unit_test(test_boundary_collision),
	    cmocka_unit_test(test_queue_end_to_end),
	    cmocka_unit_test(test_queue_without_original),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
