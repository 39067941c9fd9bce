/*
 * Unit tests for smtpc/smtpc_policy (PURE): every classification row for
 * replies (per stage and class, 421 and the RCPT 552 rule, enhanced codes
 * and hard bounces), every failure row, the TLS and message-needs checks,
 * DSN statuses and the diagnostic texts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpc/smtpc_policy.h"
#include "util/util.h"

static const struct smtpc_peer mx = {"mx.example.com", "127.0.0.11", 0};
static const struct smtpc_peer mx25 = {"mx.example.com", "127.0.0.11", 25};
static const struct smtpc_peer domain = {.host = "example.com"};

static struct smtpc_reply reply(int code, const char *enh, const char *text)
{
	struct smtpc_reply r;

	memset(&r, 0, sizeof(r));
	r.code = code;
	snprintf(r.enhanced, sizeof(r.enhanced), "%s", enh);
	r.text = (char *)text;
	r.n_lines = 1;
	return r;
}

/* ---------- replies: one row per case ---------- */

enum { A_OK = SMTPC_ACT_OK, A_DEF = SMTPC_ACT_DEFER, A_BNC = SMTPC_ACT_BOUNCE };
enum { S_RCPT = SMTPC_SCOPE_RCPT, S_MSG = SMTPC_SCOPE_MESSAGE, S_SES = SMTPC_SCOPE_SESSION };
enum {
	D_NONE = SMTPC_DEST_NONE,
	D_GOOD = SMTPC_DEST_GOOD,
	D_DEFR = SMTPC_DEST_DEFERRAL,
	D_BACK = SMTPC_DEST_BACKOFF
};

static const struct reply_case {
	enum smtpc_stage stage;
	int code;
	const char *enh;
	int action, scope, dest;
	const char *status;
	int hard, plain_ok;
} reply_cases[] = {
    /* greeting: a refusal means "next host"; bounce only from the last */
    {SMTPC_STAGE_GREETING, 220, "", A_OK, S_SES, D_NONE, "2.0.0", 0, 0},
    {SMTPC_STAGE_GREETING, 421, "4.3.2", A_DEF, S_SES, D_BACK, "4.3.2", 0, 0},
    {SMTPC_STAGE_GREETING, 450, "", A_DEF, S_SES, D_BACK, "4.0.0", 0, 0},
    {SMTPC_STAGE_GREETING, 554, "5.7.1", A_BNC, S_SES, D_NONE, "5.7.1", 0, 0},
    {SMTPC_STAGE_GREETING, 554, "", A_BNC, S_SES, D_NONE, "5.0.0", 0, 0},
    {SMTPC_STAGE_GREETING, 354, "", A_DEF, S_SES, D_NONE, "4.5.0", 0, 0},
    /* EHLO/HELO failures: the host's problem, defer and move on */
    {SMTPC_STAGE_EHLO, 250, "", A_OK, S_SES, D_NONE, "2.0.0", 0, 0},
    {SMTPC_STAGE_EHLO, 451, "", A_DEF, S_SES, D_DEFR, "4.0.0", 0, 0},
    {SMTPC_STAGE_EHLO, 502, "5.5.1", A_DEF, S_SES, D_NONE, "4.5.1", 0, 0},
    {SMTPC_STAGE_EHLO, 421, "", A_DEF, S_SES, D_BACK, "4.0.0", 0, 0},
    {SMTPC_STAGE_HELO, 250, "", A_OK, S_SES, D_NONE, "2.0.0", 0, 0},
    {SMTPC_STAGE_HELO, 450, "", A_DEF, S_SES, D_DEFR, "4.0.0", 0, 0},
    {SMTPC_STAGE_HELO, 550, "", A_DEF, S_SES, D_NONE, "4.0.0", 0, 0},
    /* STARTTLS refused: opportunistic TLS may go on in plaintext */
    {SMTPC_STAGE_STARTTLS, 220, "2.0.0", A_OK, S_SES, D_NONE, "2.0.0", 0, 0},
    {SMTPC_STAGE_STARTTLS, 454, "4.7.0", A_DEF, S_SES, D_DEFR, "4.7.0", 0, 1},
    {SMTPC_STAGE_STARTTLS, 554, "", A_DEF, S_SES, D_NONE, "4.0.0", 0, 1},
    {SMTPC_STAGE_STARTTLS, 421, "", A_DEF, S_SES, D_BACK, "4.0.0", 0, 0},
    /* smarthost AUTH: never bounce mail for our own credentials */
    {SMTPC_STAGE_AUTH, 235, "2.7.0", A_OK, S_SES, D_NONE, "2.7.0", 0, 0},
    {SMTPC_STAGE_AUTH, 334, "", A_OK, S_SES, D_NONE, "3.0.0", 0, 0},
    {SMTPC_STAGE_AUTH, 454, "4.7.0", A_DEF, S_SES, D_DEFR, "4.7.0", 0, 0},
    {SMTPC_STAGE_AUTH, 535, "5.7.8", A_DEF, S_SES, D_NONE, "4.7.8", 0, 0},
    /* MAIL FROM: the whole message */
    {SMTPC_STAGE_MAIL, 250, "2.1.0", A_OK, S_MSG, D_NONE, "2.1.0", 0, 0},
    {SMTPC_STAGE_MAIL, 451, "4.3.0", A_DEF, S_MSG, D_DEFR, "4.3.0", 0, 0},
    {SMTPC_STAGE_MAIL, 550, "5.7.1", A_BNC, S_MSG, D_NONE, "5.7.1", 0, 0},
    {SMTPC_STAGE_MAIL, 552, "5.3.4", A_BNC, S_MSG, D_NONE, "5.3.4", 0, 0},
    {SMTPC_STAGE_MAIL, 553, "", A_BNC, S_MSG, D_NONE, "5.0.0", 0, 0},
    {SMTPC_STAGE_MAIL, 421, "4.7.0", A_DEF, S_SES, D_BACK, "4.7.0", 0, 0},
    {SMTPC_STAGE_MAIL, 354, "", A_DEF, S_SES, D_NONE, "4.5.0", 0, 0},
    /* RCPT TO: that recipient */
    {SMTPC_STAGE_RCPT, 250, "2.1.5", A_OK, S_RCPT, D_NONE, "2.1.5", 0, 0},
    {SMTPC_STAGE_RCPT, 251, "", A_OK, S_RCPT, D_NONE, "2.0.0", 0, 0},
    {SMTPC_STAGE_RCPT, 450, "4.2.1", A_DEF, S_RCPT, D_DEFR, "4.2.1", 0, 0},
    {SMTPC_STAGE_RCPT, 451, "", A_DEF, S_RCPT, D_DEFR, "4.0.0", 0, 0},
    {SMTPC_STAGE_RCPT, 452, "4.5.3", A_DEF, S_RCPT, D_DEFR, "4.5.3", 0, 0},
    {SMTPC_STAGE_RCPT, 550, "5.1.1", A_BNC, S_RCPT, D_NONE, "5.1.1", 1, 0},
    {SMTPC_STAGE_RCPT, 550, "5.1.2", A_BNC, S_RCPT, D_NONE, "5.1.2", 1, 0},
    {SMTPC_STAGE_RCPT, 553, "5.1.3", A_BNC, S_RCPT, D_NONE, "5.1.3", 1, 0},
    {SMTPC_STAGE_RCPT, 551, "5.1.6", A_BNC, S_RCPT, D_NONE, "5.1.6", 1, 0},
    {SMTPC_STAGE_RCPT, 556, "5.1.10", A_BNC, S_RCPT, D_NONE, "5.1.10", 1, 0},
    {SMTPC_STAGE_RCPT, 550, "5.2.1", A_BNC, S_RCPT, D_NONE, "5.2.1", 1, 0},
    /* policy, content, unknown reason: a bounce, not a bad address */
    {SMTPC_STAGE_RCPT, 550, "5.7.1", A_BNC, S_RCPT, D_NONE, "5.7.1", 0, 0},
    {SMTPC_STAGE_RCPT, 554, "5.7.26", A_BNC, S_RCPT, D_NONE, "5.7.26", 0, 0},
    {SMTPC_STAGE_RCPT, 550, "5.1.11", A_BNC, S_RCPT, D_NONE, "5.1.11", 0, 0},
    {SMTPC_STAGE_RCPT, 550, "", A_BNC, S_RCPT, D_NONE, "5.0.0", 0, 0},
    {SMTPC_STAGE_RCPT, 553, "", A_BNC, S_RCPT, D_NONE, "5.0.0", 0, 0},
    /* RFC 5321 4.5.3.1.10: 552 to RCPT reads as 452 */
    {SMTPC_STAGE_RCPT, 552, "5.2.2", A_DEF, S_RCPT, D_DEFR, "4.2.2", 0, 0},
    {SMTPC_STAGE_RCPT, 552, "5.3.4", A_DEF, S_RCPT, D_DEFR, "4.3.4", 0, 0},
    {SMTPC_STAGE_RCPT, 552, "", A_DEF, S_RCPT, D_DEFR, "4.0.0", 0, 0},
    {SMTPC_STAGE_RCPT, 421, "", A_DEF, S_SES, D_BACK, "4.0.0", 0, 0},
    {SMTPC_STAGE_RCPT, 354, "", A_DEF, S_SES, D_NONE, "4.5.0", 0, 0},
    /* DATA: 354 expected; failures are the message's */
    {SMTPC_STAGE_DATA, 354, "", A_OK, S_MSG, D_NONE, "3.0.0", 0, 0},
    {SMTPC_STAGE_DATA, 451, "4.3.0", A_DEF, S_MSG, D_DEFR, "4.3.0", 0, 0},
    {SMTPC_STAGE_DATA, 554, "5.5.1", A_BNC, S_MSG, D_NONE, "5.5.1", 0, 0},
    {SMTPC_STAGE_DATA, 250, "", A_DEF, S_SES, D_NONE, "4.5.0", 0, 0},
    {SMTPC_STAGE_DATA, 421, "", A_DEF, S_SES, D_BACK, "4.0.0", 0, 0},
    {SMTPC_STAGE_BDAT, 250, "2.0.0", A_OK, S_MSG, D_NONE, "2.0.0", 0, 0},
    {SMTPC_STAGE_BDAT, 451, "", A_DEF, S_MSG, D_DEFR, "4.0.0", 0, 0},
    {SMTPC_STAGE_BDAT, 552, "5.3.4", A_BNC, S_MSG, D_NONE, "5.3.4", 0, 0},
    {SMTPC_STAGE_BDAT, 354, "", A_DEF, S_SES, D_NONE, "4.5.0", 0, 0},
    /* end of data: delivered, deferred or bounced, all accepted rcpts */
    {SMTPC_STAGE_DOT, 250, "2.0.0", A_OK, S_MSG, D_GOOD, "2.0.0", 0, 0},
    {SMTPC_STAGE_DOT, 251, "", A_OK, S_MSG, D_GOOD, "2.0.0", 0, 0},
    {SMTPC_STAGE_DOT, 451, "4.7.1", A_DEF, S_MSG, D_DEFR, "4.7.1", 0, 0},
    {SMTPC_STAGE_DOT, 552, "5.3.4", A_BNC, S_MSG, D_NONE, "5.3.4", 0, 0},
    {SMTPC_STAGE_DOT, 550, "5.1.1", A_BNC, S_MSG, D_NONE, "5.1.1", 1, 0},
    {SMTPC_STAGE_DOT, 554, "5.7.1", A_BNC, S_MSG, D_NONE, "5.7.1", 0, 0},
    {SMTPC_STAGE_DOT, 550, "5.6.11", A_BNC, S_MSG, D_NONE, "5.6.11", 0, 0},
    {SMTPC_STAGE_DOT, 421, "4.4.2", A_DEF, S_SES, D_BACK, "4.4.2", 0, 0},
    {SMTPC_STAGE_DOT, 354, "", A_DEF, S_SES, D_NONE, "4.5.0", 0, 0},
    {SMTPC_STAGE_RSET, 250, "", A_OK, S_SES, D_NONE, "2.0.0", 0, 0},
    {SMTPC_STAGE_RSET, 451, "", A_DEF, S_SES, D_DEFR, "4.0.0", 0, 0},
    {SMTPC_STAGE_RSET, 500, "", A_DEF, S_SES, D_NONE, "4.0.0", 0, 0},
    {SMTPC_STAGE_RSET, 421, "", A_DEF, S_SES, D_BACK, "4.0.0", 0, 0},
    /* stages with no reply at all */
    {SMTPC_STAGE_DNS, 250, "", A_DEF, S_SES, D_NONE, "4.5.0", 0, 0},
    {SMTPC_STAGE_CONNECT, 220, "", A_DEF, S_SES, D_NONE, "4.5.0", 0, 0},
    {SMTPC_STAGE_TLS, 220, "", A_DEF, S_SES, D_NONE, "4.5.0", 0, 0},
    {SMTPC_STAGE_QUEUE, 550, "", A_DEF, S_SES, D_NONE, "4.5.0", 0, 0},
    {SMTPC_STAGE__COUNT, 250, "", A_DEF, S_SES, D_NONE, "4.5.0", 0, 0},
};

static void test_reply_rows(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(reply_cases); i++) {
		const struct reply_case *c = &reply_cases[i];
		struct smtpc_reply r = reply(c->code, c->enh, "text");
		struct smtpc_verdict v;

		smtpc_judge_reply(&mx, c->stage, &r, &v);
		if ((int)v.action != c->action || (int)v.scope != c->scope ||
		    (int)v.dest != c->dest || strcmp(v.status, c->status) != 0 ||
		    v.hard != c->hard || v.plain_ok != c->plain_ok)
			fail_msg("row %zu (%s %d %s): got %s/%s/%d/%s hard=%d plain=%d", i,
			         smtpc_stage_name(c->stage), c->code, c->enh,
			         smtpc_action_name(v.action), smtpc_scope_name(v.scope), v.dest,
			         v.status, v.hard, v.plain_ok);
		assert_non_null(v.diag);
		smtpc_verdict_clear(&v);
		assert_null(v.diag);
	}
}

/* Every reply class at every stage gets a verdict with a status whose
 * class agrees with the action. */
static void test_reply_every_class(void **state)
{
	int stage, code;

	(void)state;
	for (stage = 0; stage <= SMTPC_STAGE__COUNT; stage++) {
		for (code = 200; code < 600; code += 7) {
			struct smtpc_reply r = reply(code, "", "");
			struct smtpc_verdict v;

			smtpc_judge_reply(&mx, (enum smtpc_stage)stage, &r, &v);
			if (v.action == SMTPC_ACT_DEFER)
				assert_int_equal(v.status[0], '4');
			if (v.action == SMTPC_ACT_BOUNCE)
				assert_int_equal(v.status[0], '5');
			if (v.action == SMTPC_ACT_OK)
				assert_true(code / 100 == 2 || code / 100 == 3);
			if (v.dest == SMTPC_DEST_GOOD)
				assert_int_equal(stage, SMTPC_STAGE_DOT);
			if (v.plain_ok)
				assert_int_equal(stage, SMTPC_STAGE_STARTTLS);
			smtpc_verdict_clear(&v);
		}
	}
}

/* ---------- diagnostics ---------- */

static void diag_is(const struct smtpc_peer *peer, enum smtpc_stage stage, int code,
                    const char *enh, const char *text, const char *want)
{
	struct smtpc_reply r = reply(code, enh, text);
	struct smtpc_verdict v;
	char *d = smtpc_diag_reply(peer, stage, &r);

	assert_string_equal(d, want);
	free(d);
	/* the verdict carries the same text unless it is a protocol error */
	smtpc_judge_reply(peer, stage, &r, &v);
	if (strcmp(v.status, "4.5.0") != 0)
		assert_string_equal(v.diag, want);
	smtpc_verdict_clear(&v);
}

static void test_diag_reply(void **state)
{
	(void)state;
	diag_is(&mx, SMTPC_STAGE_RCPT, 550, "5.1.1", "no such user",
	        "host mx.example.com[127.0.0.11] said: 550 5.1.1 no such user "
	        "(in reply to RCPT TO command)");
	diag_is(&mx, SMTPC_STAGE_MAIL, 451, "", "try later",
	        "host mx.example.com[127.0.0.11] said: 451 try later "
	        "(in reply to MAIL FROM command)");
	diag_is(&mx, SMTPC_STAGE_DOT, 550, "5.7.1", "line one\nline two",
	        "host mx.example.com[127.0.0.11] said: 550 5.7.1 line one line two "
	        "(in reply to end of DATA command)");
	diag_is(&mx, SMTPC_STAGE_DATA, 554, "", "",
	        "host mx.example.com[127.0.0.11] said: 554 (in reply to DATA command)");
	diag_is(&domain, SMTPC_STAGE_EHLO, 502, "5.5.1", "no",
	        "host example.com said: 502 5.5.1 no (in reply to EHLO command)");
	diag_is(&mx, SMTPC_STAGE_GREETING, 554, "5.7.1", "go away",
	        "host mx.example.com[127.0.0.11] refused to talk to me: 554 5.7.1 go away");
	diag_is(&mx, SMTPC_STAGE_GREETING, 421, "", "busy",
	        "host mx.example.com[127.0.0.11] refused to talk to me: 421 busy");
	diag_is(&mx, SMTPC_STAGE_GREETING, 220, "", "mx ESMTP",
	        "host mx.example.com[127.0.0.11] said: 220 mx ESMTP");
	diag_is(&mx, SMTPC_STAGE_STARTTLS, 454, "4.7.0", "TLS not available",
	        "host mx.example.com[127.0.0.11] said: 454 4.7.0 TLS not available "
	        "(in reply to STARTTLS command)");
}

static void test_diag_protocol_and_long(void **state)
{
	struct smtpc_reply r = reply(250, "", "ok");
	struct smtpc_verdict v;
	char *text, *d;

	(void)state;
	smtpc_judge_reply(&mx, SMTPC_STAGE_DATA, &r, &v);
	assert_string_equal(v.diag, "protocol error: host mx.example.com[127.0.0.11] said: "
	                            "250 ok (in reply to DATA command)");
	smtpc_verdict_clear(&v);
	/* a long text is cut, and says so */
	text = xmalloc(SMTPC_DIAG_TEXT_MAX * 3);
	memset(text, 'y', SMTPC_DIAG_TEXT_MAX * 3 - 1);
	text[SMTPC_DIAG_TEXT_MAX * 3 - 1] = '\0';
	r = reply(550, "", text);
	d = smtpc_diag_reply(&mx, SMTPC_STAGE_RCPT, &r);
	assert_non_null(strstr(d, "yyy... (in reply to RCPT TO command)"));
	assert_true(strlen(d) < SMTPC_DIAG_TEXT_MAX + 100);
	free(d);
	/* exactly at the limit: not cut */
	text[SMTPC_DIAG_TEXT_MAX] = '\0';
	d = smtpc_diag_reply(&mx, SMTPC_STAGE_RCPT, &r);
	assert_null(strstr(d, "..."));
	free(d);
	free(text);
	/* a NULL text (zeroed reply) is fine */
	r = reply(550, "", NULL);
	d = smtpc_diag_reply(&mx, SMTPC_STAGE_RCPT, &r);
	assert_string_equal(d, "host mx.example.com[127.0.0.11] said: 550 "
	                       "(in reply to RCPT TO command)");
	free(d);
}

/* ---------- failures other than replies ---------- */

enum { S_DEST = SMTPC_SCOPE_DEST };

static const struct fail_case {
	enum smtpc_failure f;
	enum smtpc_stage stage;
	const struct smtpc_peer *peer;
	const char *detail;
	int action, scope, dest;
	const char *status;
	int hard, plain_ok;
	const char *diag;
} fail_cases[] = {
    {SMTPC_FAIL_CONNECT, SMTPC_STAGE_CONNECT, &mx, "Connection refused", A_DEF, S_SES, D_BACK,
     "4.4.1", 0, 0, "connect to mx.example.com[127.0.0.11]: Connection refused"},
    {SMTPC_FAIL_CONNECT, SMTPC_STAGE_CONNECT, &mx, NULL, A_DEF, S_SES, D_BACK, "4.4.1", 0, 0,
     "connect to mx.example.com[127.0.0.11]: connection failed"},
    /* a connection failure names the port when it is known */
    {SMTPC_FAIL_CONNECT, SMTPC_STAGE_CONNECT, &mx25, "Connection refused", A_DEF, S_SES, D_BACK,
     "4.4.1", 0, 0, "connect to mx.example.com[127.0.0.11]:25: Connection refused"},
    {SMTPC_FAIL_TIMEOUT, SMTPC_STAGE_RCPT, &mx25, NULL, A_DEF, S_SES, D_BACK, "4.4.2", 0, 0,
     "conversation with mx.example.com[127.0.0.11] timed out while sending RCPT TO"},
    {SMTPC_FAIL_TIMEOUT, SMTPC_STAGE_CONNECT, &mx, NULL, A_DEF, S_SES, D_BACK, "4.4.1", 0, 0,
     "conversation with mx.example.com[127.0.0.11] timed out while connecting"},
    {SMTPC_FAIL_TIMEOUT, SMTPC_STAGE_GREETING, &mx, NULL, A_DEF, S_SES, D_BACK, "4.4.1", 0, 0,
     "conversation with mx.example.com[127.0.0.11] timed out while receiving the initial "
     "server greeting"},
    {SMTPC_FAIL_TIMEOUT, SMTPC_STAGE_RCPT, &mx, NULL, A_DEF, S_SES, D_BACK, "4.4.2", 0, 0,
     "conversation with mx.example.com[127.0.0.11] timed out while sending RCPT TO"},
    {SMTPC_FAIL_LOST, SMTPC_STAGE_DOT, &mx, NULL, A_DEF, S_SES, D_BACK, "4.4.2", 0, 0,
     "lost connection with mx.example.com[127.0.0.11] while sending end of data -- "
     "message may be sent more than once"},
    {SMTPC_FAIL_LOST, SMTPC_STAGE_MAIL, &mx, "", A_DEF, S_SES, D_BACK, "4.4.2", 0, 0,
     "lost connection with mx.example.com[127.0.0.11] while sending MAIL FROM"},
    {SMTPC_FAIL_TLS, SMTPC_STAGE_TLS, &mx, "certificate verify failed", A_DEF, S_SES, D_NONE,
     "4.7.5", 0, 1,
     "TLS failure with mx.example.com[127.0.0.11] while performing the TLS handshake: "
     "certificate verify failed"},
    {SMTPC_FAIL_TLS_REQUIRED, SMTPC_STAGE_EHLO, &mx, NULL, A_DEF, S_SES, D_NONE, "4.7.4", 0, 0,
     "TLS required but not offered by mx.example.com[127.0.0.11]"},
    {SMTPC_FAIL_TLS_VERIFY, SMTPC_STAGE_TLS, &mx, "certificate has expired", A_DEF, S_SES, D_NONE,
     "4.7.5", 0, 0,
     "TLS certificate of mx.example.com[127.0.0.11] not verified: certificate has expired"},
    {SMTPC_FAIL_SMARTHOST_DNS, SMTPC_STAGE_DNS, &domain, "Domain name not found", A_DEF, S_DEST,
     D_NONE, "4.4.3", 0, 0, "cannot resolve smarthost example.com: Domain name not found"},
    {SMTPC_FAIL_PROTOCOL, SMTPC_STAGE_EHLO, &mx, "reply line too long", A_DEF, S_SES, D_NONE,
     "4.5.0", 0, 0,
     "protocol error with mx.example.com[127.0.0.11] while performing the EHLO handshake: "
     "reply line too long"},
    {SMTPC_FAIL_DNS_TEMP, SMTPC_STAGE_DNS, &domain, "timeout", A_DEF, S_DEST, D_NONE, "4.4.3", 0, 0,
     "temporary DNS failure looking up example.com: timeout"},
    {SMTPC_FAIL_DNS_NXDOMAIN, SMTPC_STAGE_DNS, &domain, NULL, A_BNC, S_DEST, D_NONE, "5.1.2", 1, 0,
     "Host or domain name not found: example.com"},
    {SMTPC_FAIL_DNS_NOHOST, SMTPC_STAGE_DNS, &domain, NULL, A_BNC, S_DEST, D_NONE, "5.4.4", 0, 0,
     "no mail host for example.com has an address"},
    {SMTPC_FAIL_NULL_MX, SMTPC_STAGE_DNS, &domain, NULL, A_BNC, S_DEST, D_NONE, "5.1.10", 1, 0,
     "domain example.com does not accept mail (null MX)"},
    {SMTPC_FAIL_EXPIRED, SMTPC_STAGE_QUEUE, &domain,
     "host mx.example.com[127.0.0.11] said: 451 later (in reply to RCPT TO command)", A_BNC, S_RCPT,
     D_NONE, "5.4.7", 0, 0,
     "delivery time expired: host mx.example.com[127.0.0.11] said: 451 later "
     "(in reply to RCPT TO command)"},
    {SMTPC_FAIL_EXPIRED, SMTPC_STAGE_QUEUE, &domain, NULL, A_BNC, S_RCPT, D_NONE, "5.4.7", 0, 0,
     "delivery time expired"},
    {SMTPC_FAIL_LOOP, SMTPC_STAGE_DNS, &domain, NULL, A_BNC, S_DEST, D_NONE, "5.4.6", 0, 0,
     "mail for example.com loops back to myself"},
    {SMTPC_FAIL_BLOCKED, SMTPC_STAGE_DNS, &domain, "mx.example.com[127.0.0.1]", A_BNC, S_DEST,
     D_NONE, "5.4.4", 0, 0,
     "no mail host for example.com may be used: its addresses are in blocked_destinations: "
     "mx.example.com[127.0.0.1]"},
    /* out of range reads as a protocol error, never a crash */
    {SMTPC_FAIL__COUNT, SMTPC_STAGE__COUNT, &mx, NULL, A_DEF, S_SES, D_NONE, "4.5.0", 0, 0,
     "protocol error with mx.example.com[127.0.0.11] while talking"},
};

static void test_failure_rows(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(fail_cases); i++) {
		const struct fail_case *c = &fail_cases[i];
		struct smtpc_verdict v;

		smtpc_judge_failure(c->peer, c->stage, c->f, c->detail, &v);
		if ((int)v.action != c->action || (int)v.scope != c->scope ||
		    (int)v.dest != c->dest || strcmp(v.status, c->status) != 0 ||
		    v.hard != c->hard || v.plain_ok != c->plain_ok)
			fail_msg("row %zu (%s): got %s/%s/%d/%s hard=%d plain=%d", i,
			         smtpc_failure_name(c->f), smtpc_action_name(v.action),
			         smtpc_scope_name(v.scope), v.dest, v.status, v.hard, v.plain_ok);
		assert_string_equal(v.diag, c->diag);
		smtpc_verdict_clear(&v);
	}
}

/* Every failure has a row: a name and a status of the right class. */
static void test_failure_complete(void **state)
{
	int f;

	(void)state;
	for (f = 0; f < SMTPC_FAIL__COUNT; f++) {
		struct smtpc_verdict v;

		assert_string_not_equal(smtpc_failure_name((enum smtpc_failure)f), "unknown");
		smtpc_judge_failure(&mx, SMTPC_STAGE_RCPT, (enum smtpc_failure)f, NULL, &v);
		assert_int_equal(v.status[0], v.action == SMTPC_ACT_BOUNCE ? '5' : '4');
		assert_true(v.action != SMTPC_ACT_OK);
		assert_non_null(v.diag);
		smtpc_verdict_clear(&v);
	}
}

/* ---------- TLS policy and message needs ---------- */

static void test_judge_tls(void **state)
{
	struct smtpc_caps caps;
	struct smtpc_verdict v;

	(void)state;
	memset(&caps, 0, sizeof(caps));
	memset(&v, 0x5a, sizeof(v));
	assert_int_equal(smtpc_judge_tls(&mx, &caps, 0, 0, &v), 0);
	assert_int_equal(smtpc_judge_tls(&mx, &caps, 1, 1, &v), 0);
	caps.starttls = 1;
	assert_int_equal(smtpc_judge_tls(&mx, &caps, 1, 0, &v), 0);
	assert_int_equal(v.hard, 0x5a5a5a5a); /* untouched */
	caps.starttls = 0;
	assert_int_equal(smtpc_judge_tls(&mx, &caps, 1, 0, &v), -1);
	assert_int_equal(v.action, SMTPC_ACT_DEFER);
	assert_int_equal(v.scope, SMTPC_SCOPE_SESSION);
	assert_string_equal(v.status, "4.7.4");
	assert_string_equal(v.diag, "TLS required but not offered by mx.example.com[127.0.0.11]");
	smtpc_verdict_clear(&v);
}

static void need_fails(const struct smtpc_caps *caps, const struct smtpc_msg_needs *m,
                       int tls_active, const char *status, const char *diag)
{
	struct smtpc_verdict v;

	assert_int_equal(smtpc_judge_message(&mx, caps, m, tls_active, &v), -1);
	assert_int_equal(v.action, SMTPC_ACT_BOUNCE);
	assert_int_equal(v.scope, SMTPC_SCOPE_MESSAGE);
	assert_int_equal(v.dest, SMTPC_DEST_NONE);
	assert_false(v.hard);
	assert_string_equal(v.status, status);
	assert_string_equal(v.diag, diag);
	smtpc_verdict_clear(&v);
}

static void need_ok(const struct smtpc_caps *caps, const struct smtpc_msg_needs *m, int tls_active)
{
	struct smtpc_verdict v;

	memset(&v, 0, sizeof(v));
	assert_int_equal(smtpc_judge_message(&mx, caps, m, tls_active, &v), 0);
	assert_null(v.diag);
}

static void test_judge_message(void **state)
{
	struct smtpc_caps caps;
	struct smtpc_msg_needs m;

	(void)state;
	memset(&caps, 0, sizeof(caps));
	memset(&m, 0, sizeof(m));
	m.size = 1000;
	need_ok(&caps, &m, 0); /* plain 7-bit mail goes anywhere */
	m.smtputf8 = 1;
	need_fails(&caps, &m, 0, "5.6.7",
	           "SMTPUTF8 required but not offered by mx.example.com[127.0.0.11]");
	caps.smtputf8 = 1;
	need_ok(&caps, &m, 0);
	m.eightbit = 1;
	need_fails(&caps, &m, 0, "5.6.3",
	           "8BITMIME required but not offered by mx.example.com[127.0.0.11]");
	caps.eightbitmime = 1;
	need_ok(&caps, &m, 0);
	/* SIZE: only a stated, non-zero limit counts, and only when exceeded */
	caps.size = 1;
	need_ok(&caps, &m, 0);
	caps.size_max = 1000;
	need_ok(&caps, &m, 0);
	caps.size_max = 999;
	need_fails(&caps, &m, 0, "5.3.4",
	           "message size 1000 exceeds size limit 999 of mx.example.com[127.0.0.11]");
	caps.size = 0; /* a limit without the keyword is not a limit */
	need_ok(&caps, &m, 0);
	/* REQUIRETLS (RFC 8689 4.2.1): a verified TLS session (else 5.7.10),
	 * then the extension after TLS (else 5.7.30) */
	m.requiretls = 1;
	need_fails(&caps, &m, 0, "5.7.10",
	           "REQUIRETLS: no verified TLS session with mx.example.com[127.0.0.11]");
	need_fails(&caps, &m, 1, "5.7.30",
	           "REQUIRETLS required but not offered by mx.example.com[127.0.0.11]");
	caps.requiretls = 1;
	need_fails(&caps, &m, 0, "5.7.10",
	           "REQUIRETLS: no verified TLS session with mx.example.com[127.0.0.11]");
	need_ok(&caps, &m, 1);
	/* several missing: REQUIRETLS first, then SMTPUTF8 */
	memset(&caps, 0, sizeof(caps));
	need_fails(&caps, &m, 0, "5.7.10",
	           "REQUIRETLS: no verified TLS session with mx.example.com[127.0.0.11]");
	caps.requiretls = 1;
	need_fails(&caps, &m, 1, "5.6.7",
	           "SMTPUTF8 required but not offered by mx.example.com[127.0.0.11]");
}

/* ---------- statuses and names ---------- */

static void test_status_of_reply(void **state)
{
	char s[SMTPC_ENHANCED_MAX];

	(void)state;
	smtpc_status_of_reply(250, "", s);
	assert_string_equal(s, "2.0.0");
	smtpc_status_of_reply(451, NULL, s);
	assert_string_equal(s, "4.0.0");
	smtpc_status_of_reply(554, "", s);
	assert_string_equal(s, "5.0.0");
	smtpc_status_of_reply(550, "5.1.1", s);
	assert_string_equal(s, "5.1.1");
	smtpc_status_of_reply(554, "5.123.123", s);
	assert_string_equal(s, "5.123.123");
	assert_string_equal(SMTPC_STATUS_DELAYED, "4.4.7");
}

static void test_names(void **state)
{
	int i, j;

	(void)state;
	for (i = 0; i < SMTPC_STAGE__COUNT; i++) {
		assert_non_null(smtpc_stage_name((enum smtpc_stage)i));
		for (j = 0; j < i; j++)
			assert_string_not_equal(smtpc_stage_name((enum smtpc_stage)i),
			                        smtpc_stage_name((enum smtpc_stage)j));
	}
	assert_string_equal(smtpc_stage_name(SMTPC_STAGE__COUNT), "unknown");
	assert_string_equal(smtpc_action_name(SMTPC_ACT_OK), "sent");
	assert_string_equal(smtpc_action_name(SMTPC_ACT_DEFER), "deferred");
	assert_string_equal(smtpc_action_name(SMTPC_ACT_BOUNCE), "bounced");
	assert_string_equal(smtpc_action_name((enum smtpc_action)9), "unknown");
	assert_string_equal(smtpc_scope_name(SMTPC_SCOPE_DEST), "destination");
	assert_string_equal(smtpc_scope_name((enum smtpc_scope)9), "unknown");
	assert_string_equal(smtpc_failure_name(SMTPC_FAIL__COUNT), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reply_rows),      cmocka_unit_test(test_reply_every_class),
	    cmocka_unit_test(test_diag_reply),      cmocka_unit_test(test_diag_protocol_and_long),
	    cmocka_unit_test(test_failure_rows),    cmocka_unit_test(test_failure_complete),
	    cmocka_unit_test(test_judge_tls),       cmocka_unit_test(test_judge_message),
	    cmocka_unit_test(test_status_of_reply), cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
