/*
 * smtpc_policy: failure classification for outbound delivery. PURE: libc
 * and util only. Every rule is a row in one of three tables below (replies,
 * other failures, missing extensions), so the whole policy can be read and
 * reviewed in one place; the functions only look rows up and format the
 * diagnostic. Contract in smtpc_policy.h.
 */
#include "smtpc/smtpc_policy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* name for logs; the command for "(in reply to X command)"; what the
 * client was doing, for "timed out while X" */
static const struct {
	const char *name;
	const char *command;
	const char *doing;
} stages[SMTPC_STAGE__COUNT] = {
    [SMTPC_STAGE_DNS] = {"dns", NULL, "looking up the destination"},
    [SMTPC_STAGE_CONNECT] = {"connect", NULL, "connecting"},
    [SMTPC_STAGE_GREETING] = {"greeting", NULL, "receiving the initial server greeting"},
    [SMTPC_STAGE_EHLO] = {"ehlo", "EHLO", "performing the EHLO handshake"},
    [SMTPC_STAGE_HELO] = {"helo", "HELO", "performing the HELO handshake"},
    [SMTPC_STAGE_STARTTLS] = {"starttls", "STARTTLS", "sending STARTTLS"},
    [SMTPC_STAGE_TLS] = {"tls", NULL, "performing the TLS handshake"},
    [SMTPC_STAGE_AUTH] = {"auth", "AUTH", "authenticating"},
    [SMTPC_STAGE_MAIL] = {"mail", "MAIL FROM", "sending MAIL FROM"},
    [SMTPC_STAGE_RCPT] = {"rcpt", "RCPT TO", "sending RCPT TO"},
    [SMTPC_STAGE_DATA] = {"data", "DATA", "sending DATA command"},
    [SMTPC_STAGE_BDAT] = {"bdat", "BDAT", "sending message content"},
    /* the message may have been taken before the connection broke
     * (RFC 1047): say so, as Postfix does */
    [SMTPC_STAGE_DOT] = {"dot", "end of DATA",
                         "sending end of data -- message may be sent more than once"},
    [SMTPC_STAGE_RSET] = {"rset", "RSET", "sending RSET"},
    [SMTPC_STAGE_QUEUE] = {"queue", NULL, "waiting in the queue"},
};

const char *smtpc_stage_name(enum smtpc_stage s)
{
	return (unsigned)s < SMTPC_STAGE__COUNT ? stages[s].name : "unknown";
}

const char *smtpc_action_name(enum smtpc_action a)
{
	static const char *const names[] = {"sent", "deferred", "bounced"};
	return (unsigned)a < ARRAY_LEN(names) ? names[a] : "unknown";
}

const char *smtpc_scope_name(enum smtpc_scope s)
{
	static const char *const names[] = {"rcpt", "message", "session", "destination"};
	return (unsigned)s < ARRAY_LEN(names) ? names[s] : "unknown";
}

void smtpc_verdict_clear(struct smtpc_verdict *v)
{
	free(v->diag);
	free(v->reply);
	memset(v, 0, sizeof(*v));
}

static void verdict_set(struct smtpc_verdict *v, enum smtpc_action action, enum smtpc_scope scope,
                        enum smtpc_dest_signal dest, const char *status)
{
	memset(v, 0, sizeof(*v));
	v->action = action;
	v->scope = scope;
	v->dest = dest;
	snprintf(v->status, sizeof(v->status), "%s", status);
}

/* ---------- diagnostics ---------- */

static void peer_append(struct buf *b, const struct smtpc_peer *peer)
{
	buf_puts(b, peer->host ? peer->host : "unknown");
	if (peer->addr)
		buf_printf(b, "[%s]", peer->addr);
}

/* The reply's lines joined by spaces, at most SMTPC_DIAG_TEXT_MAX octets. */
static void reply_text_append(struct buf *b, const char *text)
{
	size_t n = strlen(text), i, start = b->len;

	if (n > SMTPC_DIAG_TEXT_MAX)
		n = SMTPC_DIAG_TEXT_MAX;
	buf_append(b, text, n);
	for (i = start; i < b->len; i++)
		if (b->data[i] == '\n')
			b->data[i] = ' ';
	if (n < strlen(text))
		buf_puts(b, "...");
}

static void diag_reply_buf(struct buf *b, const struct smtpc_peer *peer, enum smtpc_stage stage,
                           const struct smtpc_reply *r)
{
	const char *cmd = (unsigned)stage < SMTPC_STAGE__COUNT ? stages[stage].command : NULL;

	buf_puts(b, "host ");
	peer_append(b, peer);
	if (stage == SMTPC_STAGE_GREETING && r->code / 100 != 2)
		buf_puts(b, " refused to talk to me: ");
	else
		buf_puts(b, " said: ");
	buf_printf(b, "%d", r->code);
	if (r->enhanced[0])
		buf_printf(b, " %s", r->enhanced);
	if (r->text && r->text[0]) {
		buf_puts(b, " ");
		reply_text_append(b, r->text);
	}
	if (cmd)
		buf_printf(b, " (in reply to %s command)", cmd);
}

char *smtpc_diag_reply(const struct smtpc_peer *peer, enum smtpc_stage stage,
                       const struct smtpc_reply *r)
{
	struct buf b;

	buf_init(&b);
	diag_reply_buf(&b, peer, stage, r);
	return b.data;
}

/* Expands %P (the peer), %N (":PORT" when the port is known) and %W (what
 * the client was doing at stage). */
static void diag_format(struct buf *b, const char *fmt, const struct smtpc_peer *peer,
                        enum smtpc_stage stage)
{
	for (; *fmt; fmt++) {
		if (fmt[0] == '%' && fmt[1] == 'P') {
			peer_append(b, peer);
			fmt++;
		} else if (fmt[0] == '%' && fmt[1] == 'N') {
			if (peer && peer->port)
				buf_printf(b, ":%u", (unsigned)peer->port);
			fmt++;
		} else if (fmt[0] == '%' && fmt[1] == 'W') {
			buf_puts(b, (unsigned)stage < SMTPC_STAGE__COUNT ? stages[stage].doing
			                                                 : "talking");
			fmt++;
		} else {
			buf_append(b, fmt, 1);
		}
	}
}

/* ---------- replies ---------- */

void smtpc_status_of_reply(int code, const char *enhanced, char *out)
{
	if (enhanced && enhanced[0])
		snprintf(out, SMTPC_ENHANCED_MAX, "%s", enhanced);
	else
		snprintf(out, SMTPC_ENHANCED_MAX, "%d.0.0", (code / 100) % 10);
}

/*
 * What each stage may answer, by reply class. A class not listed for a
 * stage is a protocol error. Overrides applied after the lookup: 421 ends
 * the session at any stage; 552 to RCPT is temporary.
 */
static const struct reply_rule {
	enum smtpc_stage stage;
	int klass;
	enum smtpc_action action;
	enum smtpc_scope scope;
	enum smtpc_dest_signal dest;
	int plain_ok;
} reply_rules[] = {
    /* a refused greeting: RFC 5321 3.1 and 5.1 say try the next MX */
    {SMTPC_STAGE_GREETING, 2, SMTPC_ACT_OK, SMTPC_SCOPE_SESSION, SMTPC_DEST_NONE, 0},
    {SMTPC_STAGE_GREETING, 4, SMTPC_ACT_DEFER, SMTPC_SCOPE_SESSION, SMTPC_DEST_BACKOFF, 0},
    {SMTPC_STAGE_GREETING, 5, SMTPC_ACT_BOUNCE, SMTPC_SCOPE_SESSION, SMTPC_DEST_NONE, 0},
    /* a broken handshake is the host's problem, never the message's */
    {SMTPC_STAGE_EHLO, 2, SMTPC_ACT_OK, SMTPC_SCOPE_SESSION, SMTPC_DEST_NONE, 0},
    {SMTPC_STAGE_EHLO, 4, SMTPC_ACT_DEFER, SMTPC_SCOPE_SESSION, SMTPC_DEST_DEFERRAL, 0},
    {SMTPC_STAGE_EHLO, 5, SMTPC_ACT_DEFER, SMTPC_SCOPE_SESSION, SMTPC_DEST_NONE, 0},
    {SMTPC_STAGE_HELO, 2, SMTPC_ACT_OK, SMTPC_SCOPE_SESSION, SMTPC_DEST_NONE, 0},
    {SMTPC_STAGE_HELO, 4, SMTPC_ACT_DEFER, SMTPC_SCOPE_SESSION, SMTPC_DEST_DEFERRAL, 0},
    {SMTPC_STAGE_HELO, 5, SMTPC_ACT_DEFER, SMTPC_SCOPE_SESSION, SMTPC_DEST_NONE, 0},
    {SMTPC_STAGE_STARTTLS, 2, SMTPC_ACT_OK, SMTPC_SCOPE_SESSION, SMTPC_DEST_NONE, 0},
    {SMTPC_STAGE_STARTTLS, 4, SMTPC_ACT_DEFER, SMTPC_SCOPE_SESSION, SMTPC_DEST_DEFERRAL, 1},
    {SMTPC_STAGE_STARTTLS, 5, SMTPC_ACT_DEFER, SMTPC_SCOPE_SESSION, SMTPC_DEST_NONE, 1},
    /* our smarthost credentials failing must not bounce the sender's mail */
    {SMTPC_STAGE_AUTH, 2, SMTPC_ACT_OK, SMTPC_SCOPE_SESSION, SMTPC_DEST_NONE, 0},
    {SMTPC_STAGE_AUTH, 3, SMTPC_ACT_OK, SMTPC_SCOPE_SESSION, SMTPC_DEST_NONE, 0},
    {SMTPC_STAGE_AUTH, 4, SMTPC_ACT_DEFER, SMTPC_SCOPE_SESSION, SMTPC_DEST_DEFERRAL, 0},
    {SMTPC_STAGE_AUTH, 5, SMTPC_ACT_DEFER, SMTPC_SCOPE_SESSION, SMTPC_DEST_NONE, 0},
    {SMTPC_STAGE_MAIL, 2, SMTPC_ACT_OK, SMTPC_SCOPE_MESSAGE, SMTPC_DEST_NONE, 0},
    {SMTPC_STAGE_MAIL, 4, SMTPC_ACT_DEFER, SMTPC_SCOPE_MESSAGE, SMTPC_DEST_DEFERRAL, 0},
    {SMTPC_STAGE_MAIL, 5, SMTPC_ACT_BOUNCE, SMTPC_SCOPE_MESSAGE, SMTPC_DEST_NONE, 0},
    {SMTPC_STAGE_RCPT, 2, SMTPC_ACT_OK, SMTPC_SCOPE_RCPT, SMTPC_DEST_NONE, 0},
    {SMTPC_STAGE_RCPT, 4, SMTPC_ACT_DEFER, SMTPC_SCOPE_RCPT, SMTPC_DEST_DEFERRAL, 0},
    {SMTPC_STAGE_RCPT, 5, SMTPC_ACT_BOUNCE, SMTPC_SCOPE_RCPT, SMTPC_DEST_NONE, 0},
    {SMTPC_STAGE_DATA, 3, SMTPC_ACT_OK, SMTPC_SCOPE_MESSAGE, SMTPC_DEST_NONE, 0},
    {SMTPC_STAGE_DATA, 4, SMTPC_ACT_DEFER, SMTPC_SCOPE_MESSAGE, SMTPC_DEST_DEFERRAL, 0},
    {SMTPC_STAGE_DATA, 5, SMTPC_ACT_BOUNCE, SMTPC_SCOPE_MESSAGE, SMTPC_DEST_NONE, 0},
    {SMTPC_STAGE_BDAT, 2, SMTPC_ACT_OK, SMTPC_SCOPE_MESSAGE, SMTPC_DEST_NONE, 0},
    {SMTPC_STAGE_BDAT, 4, SMTPC_ACT_DEFER, SMTPC_SCOPE_MESSAGE, SMTPC_DEST_DEFERRAL, 0},
    {SMTPC_STAGE_BDAT, 5, SMTPC_ACT_BOUNCE, SMTPC_SCOPE_MESSAGE, SMTPC_DEST_NONE, 0},
    {SMTPC_STAGE_DOT, 2, SMTPC_ACT_OK, SMTPC_SCOPE_MESSAGE, SMTPC_DEST_GOOD, 0},
    {SMTPC_STAGE_DOT, 4, SMTPC_ACT_DEFER, SMTPC_SCOPE_MESSAGE, SMTPC_DEST_DEFERRAL, 0},
    {SMTPC_STAGE_DOT, 5, SMTPC_ACT_BOUNCE, SMTPC_SCOPE_MESSAGE, SMTPC_DEST_NONE, 0},
    /* RSET failing leaves the connection in an unknown state: drop it */
    {SMTPC_STAGE_RSET, 2, SMTPC_ACT_OK, SMTPC_SCOPE_SESSION, SMTPC_DEST_NONE, 0},
    {SMTPC_STAGE_RSET, 4, SMTPC_ACT_DEFER, SMTPC_SCOPE_SESSION, SMTPC_DEST_DEFERRAL, 0},
    {SMTPC_STAGE_RSET, 5, SMTPC_ACT_DEFER, SMTPC_SCOPE_SESSION, SMTPC_DEST_NONE, 0},
};

static const struct reply_rule *reply_rule_find(enum smtpc_stage stage, int klass)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(reply_rules); i++)
		if (reply_rules[i].stage == stage && reply_rules[i].klass == klass)
			return &reply_rules[i];
	return NULL;
}

/*
 * Statuses (after the class digit) that say the address itself is bad:
 * bad mailbox, bad domain, bad syntax, moved, null MX, disabled. Policy
 * (X.7.x), content (X.6.x) or size (X.3.x) rejections are not: the same
 * address may take another message.
 */
static const char *const hard_details[] = {".1.1", ".1.2", ".1.3", ".1.6", ".1.10", ".2.1"};

static int reply_is_hard(enum smtpc_stage stage, const struct smtpc_reply *r)
{
	size_t i;

	/* without an enhanced code a 550 may as well be a policy block */
	if (stage != SMTPC_STAGE_RCPT && stage != SMTPC_STAGE_DOT)
		return 0;
	if (r->code / 100 != 5 || !r->enhanced[0])
		return 0;
	for (i = 0; i < ARRAY_LEN(hard_details); i++)
		if (strcmp(r->enhanced + 1, hard_details[i]) == 0)
			return 1;
	return 0;
}

static void judge_unexpected(const struct smtpc_peer *peer, enum smtpc_stage stage,
                             const struct smtpc_reply *r, struct smtpc_verdict *v)
{
	struct buf b;

	verdict_set(v, SMTPC_ACT_DEFER, SMTPC_SCOPE_SESSION, SMTPC_DEST_NONE, "4.5.0");
	buf_init(&b);
	buf_puts(&b, "protocol error: ");
	diag_reply_buf(&b, peer, stage, r);
	v->diag = b.data;
}

/* "550 5.1.1 text" with the lines joined by spaces: the reply as a DSN's
 * Diagnostic-Code (smtp;) carries it. */
static char *reply_line(const struct smtpc_reply *r)
{
	char *s = xasprintf("%d%s%s %s", r->code, r->enhanced[0] ? " " : "", r->enhanced,
	                    r->text ? r->text : "");
	char *p;

	for (p = s; *p; p++)
		if (*p == '\n')
			*p = ' ';
	if (strlen(s) > SMTPC_DIAG_TEXT_MAX)
		s[SMTPC_DIAG_TEXT_MAX] = '\0';
	return s;
}

void smtpc_judge_reply(const struct smtpc_peer *peer, enum smtpc_stage stage,
                       const struct smtpc_reply *r, struct smtpc_verdict *v)
{
	const struct reply_rule *rule = reply_rule_find(stage, r->code / 100);

	if (!rule) {
		judge_unexpected(peer, stage, r, v);
		return;
	}
	verdict_set(v, rule->action, rule->scope, rule->dest, "");
	v->plain_ok = rule->plain_ok;
	/* 421: the server is closing the channel, whatever was asked */
	if (r->code == 421) {
		v->action = SMTPC_ACT_DEFER;
		v->scope = SMTPC_SCOPE_SESSION;
		v->dest = SMTPC_DEST_BACKOFF;
		v->plain_ok = 0;
	}
	/* RFC 5321 4.5.3.1.10: 552 to RCPT is "too many recipients" */
	if (stage == SMTPC_STAGE_RCPT && r->code == 552) {
		v->action = SMTPC_ACT_DEFER;
		v->dest = SMTPC_DEST_DEFERRAL;
	}
	smtpc_status_of_reply(r->code, r->enhanced, v->status);
	/* a deferral reports a temporary status, even for 552's 5.x.x */
	if (v->action == SMTPC_ACT_DEFER)
		v->status[0] = '4';
	v->hard = v->action == SMTPC_ACT_BOUNCE && reply_is_hard(stage, r);
	v->diag = smtpc_diag_reply(peer, stage, r);
	v->reply = reply_line(r);
}

/* ---------- failures other than replies ---------- */

/*
 * One row per failure. The diagnostic is the format with %P and %W
 * expanded, then ": detail" when the caller gave one (or the default).
 */
static const struct fail_rule {
	const char *name;
	enum smtpc_action action;
	enum smtpc_scope scope;
	enum smtpc_dest_signal dest;
	int hard;
	int plain_ok;
	const char *status;
	const char *format;
	const char *default_detail;
} fail_rules[SMTPC_FAIL__COUNT] = {
    /* connection trouble may be the destination shedding load: back off */
    [SMTPC_FAIL_CONNECT] = {"connect", SMTPC_ACT_DEFER, SMTPC_SCOPE_SESSION, SMTPC_DEST_BACKOFF, 0,
                            0, "4.4.1", "connect to %P%N", "connection failed"},
    [SMTPC_FAIL_TIMEOUT] = {"timeout", SMTPC_ACT_DEFER, SMTPC_SCOPE_SESSION, SMTPC_DEST_BACKOFF, 0,
                            0, "4.4.2", "conversation with %P timed out while %W", NULL},
    [SMTPC_FAIL_LOST] = {"lost", SMTPC_ACT_DEFER, SMTPC_SCOPE_SESSION, SMTPC_DEST_BACKOFF, 0, 0,
                         "4.4.2", "lost connection with %P while %W", NULL},
    /* a TLS problem says nothing about load; the host may do plaintext */
    [SMTPC_FAIL_TLS] = {"tls", SMTPC_ACT_DEFER, SMTPC_SCOPE_SESSION, SMTPC_DEST_NONE, 0, 1, "4.7.5",
                        "TLS failure with %P while %W", NULL},
    [SMTPC_FAIL_TLS_REQUIRED] = {"tls_required", SMTPC_ACT_DEFER, SMTPC_SCOPE_SESSION,
                                 SMTPC_DEST_NONE, 0, 0, "4.7.4",
                                 "TLS required but not offered by %P", NULL},
    /* never retried in plain text: the policy asked for a verified peer */
    [SMTPC_FAIL_TLS_VERIFY] = {"tls_verify", SMTPC_ACT_DEFER, SMTPC_SCOPE_SESSION, SMTPC_DEST_NONE,
                               0, 0, "4.7.5", "TLS certificate of %P not verified", NULL},
    [SMTPC_FAIL_PROTOCOL] = {"protocol", SMTPC_ACT_DEFER, SMTPC_SCOPE_SESSION, SMTPC_DEST_NONE, 0,
                             0, "4.5.0", "protocol error with %P while %W", NULL},
    [SMTPC_FAIL_DNS_TEMP] = {"dns_temp", SMTPC_ACT_DEFER, SMTPC_SCOPE_DEST, SMTPC_DEST_NONE, 0, 0,
                             "4.4.3", "temporary DNS failure looking up %P", NULL},
    [SMTPC_FAIL_DNS_NXDOMAIN] = {"dns_nxdomain", SMTPC_ACT_BOUNCE, SMTPC_SCOPE_DEST,
                                 SMTPC_DEST_NONE, 1, 0, "5.1.2",
                                 "Host or domain name not found: %P", NULL},
    [SMTPC_FAIL_DNS_NOHOST] = {"dns_nohost", SMTPC_ACT_BOUNCE, SMTPC_SCOPE_DEST, SMTPC_DEST_NONE, 0,
                               0, "5.4.4", "no mail host for %P has an address", NULL},
    [SMTPC_FAIL_NULL_MX] = {"null_mx", SMTPC_ACT_BOUNCE, SMTPC_SCOPE_DEST, SMTPC_DEST_NONE, 1, 0,
                            "5.1.10", "domain %P does not accept mail (null MX)", NULL},
    /* configuration, not the recipient's fault: never a bounce */
    [SMTPC_FAIL_SMARTHOST_DNS] = {"smarthost_dns", SMTPC_ACT_DEFER, SMTPC_SCOPE_DEST,
                                  SMTPC_DEST_NONE, 0, 0, "4.4.3", "cannot resolve smarthost %P",
                                  NULL},
    [SMTPC_FAIL_EXPIRED] = {"expired", SMTPC_ACT_BOUNCE, SMTPC_SCOPE_RCPT, SMTPC_DEST_NONE, 0, 0,
                            "5.4.7", "delivery time expired", NULL},
    /* routing, not the mailbox: the suppression list leaves these alone */
    [SMTPC_FAIL_LOOP] = {"loop", SMTPC_ACT_BOUNCE, SMTPC_SCOPE_DEST, SMTPC_DEST_NONE, 0, 0, "5.4.6",
                         "mail for %P loops back to myself", NULL},
    [SMTPC_FAIL_BLOCKED] = {"blocked", SMTPC_ACT_BOUNCE, SMTPC_SCOPE_DEST, SMTPC_DEST_NONE, 0, 0,
                            "5.4.4",
                            "no mail host for %P may be used: its addresses are in "
                            "blocked_destinations",
                            NULL},
    /* the detail names the policy: "MX host ... does not match the MTA-STS
     * policy of ...", "DANE: the TLSA lookup ... failed" */
    [SMTPC_FAIL_TLS_POLICY] = {"tls_policy", SMTPC_ACT_DEFER, SMTPC_SCOPE_SESSION, SMTPC_DEST_NONE,
                               0, 0, "4.7.5", "%P not used", NULL},
    /* RFC 8689 4.2.1: try the next host; when none is left, bounce */
    [SMTPC_FAIL_REQUIRETLS_TLS] = {"requiretls_tls", SMTPC_ACT_BOUNCE, SMTPC_SCOPE_SESSION,
                                   SMTPC_DEST_NONE, 0, 0, "5.7.10",
                                   "REQUIRETLS: no verified TLS session with %P", NULL},
    [SMTPC_FAIL_REQUIRETLS_EXT] = {"requiretls_ext", SMTPC_ACT_BOUNCE, SMTPC_SCOPE_SESSION,
                                   SMTPC_DEST_NONE, 0, 0, "5.7.30",
                                   "REQUIRETLS required but not offered by %P", NULL},
};

const char *smtpc_failure_name(enum smtpc_failure f)
{
	return (unsigned)f < SMTPC_FAIL__COUNT ? fail_rules[f].name : "unknown";
}

void smtpc_judge_failure(const struct smtpc_peer *peer, enum smtpc_stage stage,
                         enum smtpc_failure f, const char *detail, struct smtpc_verdict *v)
{
	const struct fail_rule *rule;
	struct buf b;

	if ((unsigned)f >= SMTPC_FAIL__COUNT)
		f = SMTPC_FAIL_PROTOCOL;
	rule = &fail_rules[f];
	verdict_set(v, rule->action, rule->scope, rule->dest, rule->status);
	v->hard = rule->hard;
	v->plain_ok = rule->plain_ok;
	/* no answer at all from the host is 4.4.1; a broken conversation 4.4.2 */
	if (f == SMTPC_FAIL_TIMEOUT &&
	    (stage == SMTPC_STAGE_CONNECT || stage == SMTPC_STAGE_GREETING))
		snprintf(v->status, sizeof(v->status), "4.4.1");
	buf_init(&b);
	diag_format(&b, rule->format, peer, stage);
	if (!detail)
		detail = rule->default_detail;
	if (detail && detail[0])
		buf_printf(&b, ": %s", detail);
	v->diag = b.data;
}

int smtpc_judge_tls(const struct smtpc_peer *peer, const struct smtpc_caps *caps, int tls_required,
                    int tls_active, struct smtpc_verdict *v)
{
	if (!tls_required || tls_active || caps->starttls)
		return 0;
	smtpc_judge_failure(peer, SMTPC_STAGE_EHLO, SMTPC_FAIL_TLS_REQUIRED, NULL, v);
	return -1;
}

/* ---------- what the message needs ---------- */

/* Extensions we will not work around: no downgrade, no MIME conversion. */
static const struct need_rule {
	size_t need_off; /* int field of smtpc_msg_needs */
	size_t cap_off;  /* int field of smtpc_caps that satisfies it */
	const char *status;
	const char *format;
} need_rules[] = {
    {offsetof(struct smtpc_msg_needs, smtputf8), offsetof(struct smtpc_caps, smtputf8), "5.6.7",
     "SMTPUTF8 required but not offered by %P"},
    {offsetof(struct smtpc_msg_needs, eightbit), offsetof(struct smtpc_caps, eightbitmime), "5.6.3",
     "8BITMIME required but not offered by %P"},
};

static int field(const void *base, size_t off)
{
	return *(const int *)((const char *)base + off);
}

static void need_fail(const char *status, struct smtpc_verdict *v, struct buf *b)
{
	verdict_set(v, SMTPC_ACT_BOUNCE, SMTPC_SCOPE_MESSAGE, SMTPC_DEST_NONE, status);
	v->diag = b->data;
}

/* RFC 8689 4.2.1 and 5: the two ways REQUIRETLS fails, as bounces. */
static int judge_requiretls(const struct smtpc_peer *peer, const struct smtpc_caps *caps,
                            int tls_verified, struct smtpc_verdict *v)
{
	enum smtpc_failure f = !tls_verified       ? SMTPC_FAIL_REQUIRETLS_TLS
	                       : !caps->requiretls ? SMTPC_FAIL_REQUIRETLS_EXT
	                                           : SMTPC_FAIL__COUNT;

	if (f == SMTPC_FAIL__COUNT)
		return 0;
	smtpc_judge_failure(peer, SMTPC_STAGE_MAIL, f, NULL, v);
	v->scope = SMTPC_SCOPE_MESSAGE; /* this message; the session goes on */
	return -1;
}

int smtpc_judge_message(const struct smtpc_peer *peer, const struct smtpc_caps *caps,
                        const struct smtpc_msg_needs *m, int tls_verified, struct smtpc_verdict *v)
{
	struct buf b;
	size_t i;

	if (m->requiretls && judge_requiretls(peer, caps, tls_verified, v) < 0)
		return -1;
	for (i = 0; i < ARRAY_LEN(need_rules); i++) {
		const struct need_rule *n = &need_rules[i];

		if (!field(m, n->need_off) || field(caps, n->cap_off))
			continue;
		buf_init(&b);
		diag_format(&b, n->format, peer, SMTPC_STAGE_MAIL);
		need_fail(n->status, v, &b);
		return -1;
	}
	if (caps->size && caps->size_max > 0 && m->size > caps->size_max) {
		buf_init(&b);
		buf_printf(&b, "message size %" PRIu64 " exceeds size limit %" PRIu64 " of ",
		           m->size, caps->size_max);
		peer_append(&b, peer);
		need_fail("5.3.4", v, &b);
		return -1;
	}
	return 0;
}
