/*
 * smtpc_policy: what an outcome of outbound delivery means. PURE (libc
 * and util only), one table per kind of outcome, in the spirit of Postfix's
 * smtp_trouble.c: the session reports what happened (a reply at some
 * stage, a connection or TLS failure, a DNS answer, a missing extension)
 * and gets back a verdict: what happens to which recipients, whether to try
 * the next MX host, how the destination's throttle should react, the DSN
 * status and a human-readable diagnostic for logs and DSNs.
 *
 * The rules, in short (each row is in smtpc_policy.c):
 *   - 2xx where expected: go on; after end of data the message is sent.
 *   - RCPT 4xx: defer that recipient; RCPT 5xx: bounce it, except 552,
 *     which RFC 5321 4.5.3.1.10 says to read as 452 (temporary).
 *   - MAIL, DATA, BDAT or end of data 4xx/5xx: defer/bounce every recipient
 *     of the message still open (accepted ones after RCPT).
 *   - 421 at any stage, greeting 4xx/5xx, EHLO/HELO/STARTTLS/AUTH/RSET
 *     failure, connection failure, timeout, lost connection, TLS failure,
 *     protocol error: this host is done (SMTPC_SCOPE_SESSION). Try the next
 *     MX address; when none is left, apply the action to the recipients
 *     still open, with the last host's reason. That action is DEFER, except
 *     after a 5xx greeting from the last host (BOUNCE, as Postfix does).
 *   - 421, greeting 4xx and connection trouble ask the destination to back
 *     off at once; any other 4xx counts toward a run of deferrals (the
 *     scheduler's sched_policy turns a run into a backoff).
 *   - Enhanced status codes give the DSN status and refine hard bounces
 *     (a bad mailbox or domain, which the suppression list takes) from
 *     policy or content rejections (which it does not).
 */
#ifndef POSTHORN_SMTPC_POLICY_H
#define POSTHORN_SMTPC_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "smtpc/smtpc_reply.h"

/* Where in the conversation an outcome happened. */
enum smtpc_stage {
	SMTPC_STAGE_DNS,      /* route lookup, before any connection */
	SMTPC_STAGE_CONNECT,  /* TCP connect */
	SMTPC_STAGE_GREETING, /* waiting for the 220 */
	SMTPC_STAGE_EHLO,
	SMTPC_STAGE_HELO,
	SMTPC_STAGE_STARTTLS, /* the STARTTLS command */
	SMTPC_STAGE_TLS,      /* the TLS handshake */
	SMTPC_STAGE_AUTH,     /* smarthost AUTH (334 continues, 235 done) */
	SMTPC_STAGE_MAIL,
	SMTPC_STAGE_RCPT,
	SMTPC_STAGE_DATA, /* the DATA command (354 expected) */
	SMTPC_STAGE_BDAT, /* a BDAT chunk that is not the last */
	SMTPC_STAGE_DOT,  /* end of data: "." or the last BDAT */
	SMTPC_STAGE_RSET,
	SMTPC_STAGE_QUEUE, /* in the queue, between attempts (expiry) */
	SMTPC_STAGE__COUNT
};

/* What happens to the recipients in the verdict's scope. */
enum smtpc_action {
	SMTPC_ACT_OK,     /* the step succeeded; at end of data: delivered */
	SMTPC_ACT_DEFER,  /* temporary: retry on the schedule */
	SMTPC_ACT_BOUNCE, /* permanent: a DSN to the sender now */
};

/* Which recipients the action applies to. */
enum smtpc_scope {
	SMTPC_SCOPE_RCPT,    /* the recipient this RCPT reply (or expiry) is about */
	SMTPC_SCOPE_MESSAGE, /* every recipient of the current message still open;
	                        the session goes on (RSET) with the next message */
	SMTPC_SCOPE_SESSION, /* this host is done: close, try the next MX address
	                        with the recipients still open; when no address is
	                        left, apply the action to them */
	SMTPC_SCOPE_DEST,    /* every recipient routed to this destination in this
	                        attempt: there is no host to try (DNS) */
};

/* How the destination's throttle (sched_policy) should react. */
enum smtpc_dest_signal {
	SMTPC_DEST_NONE,
	SMTPC_DEST_GOOD,     /* a message was delivered: the destination accepts */
	SMTPC_DEST_DEFERRAL, /* a 4xx: one more in a run of deferrals */
	SMTPC_DEST_BACKOFF,  /* 421 or connection trouble: slow down now */
};

struct smtpc_verdict {
	enum smtpc_action action;
	enum smtpc_scope scope;
	enum smtpc_dest_signal dest;
	int hard;                        /* a bounce of the address itself (bad mailbox or
	                                    domain): the suppression list may take it */
	int plain_ok;                    /* a TLS-only failure: under opportunistic TLS,
	                                    reconnect to the same address without STARTTLS
	                                    instead; under required TLS the verdict stands */
	int tls_policy;                  /* the destination's TLS policy (MTA-STS, DANE)
	                                    refused the host: a message whose sender waived
	                                    policies (TLS-Required: No) may go anyway */
	char status[SMTPC_ENHANCED_MAX]; /* RFC 3463 status for DSN and logs */
	char *diag;                      /* diagnostic text (owned; smtpc_verdict_clear) */
	char *reply;                     /* the server's reply as one line, "550 5.1.1 text",
	                                    when the outcome was a reply; else NULL (owned) */
};

/* Free v->diag and zero v. Safe on a zeroed verdict and twice. */
void smtpc_verdict_clear(struct smtpc_verdict *v);

/* The host spoken to: name (or destination domain for DNS outcomes) and
 * its numeric address, which may be NULL (not connected yet, DNS). */
struct smtpc_peer {
	const char *host;
	const char *addr;
	uint16_t port; /* 0: unknown (not shown) */
};

/*
 * Judge a reply r received at stage. v is overwritten (not cleared
 * first). A reply that is not what the stage can answer (250 to DATA,
 * 354 to RCPT, anything at DNS/CONNECT/TLS/QUEUE) is a protocol error:
 * SESSION, DEFER, status 4.5.0.
 * v->diag: "host mx.example.com[192.0.2.1] said: 550 5.1.1 no such user
 * (in reply to RCPT TO command)"; at the greeting "host ... refused to talk
 * to me: 554 ...". The reply's lines are joined by spaces and cut at
 * SMTPC_DIAG_TEXT_MAX octets.
 */
#define SMTPC_DIAG_TEXT_MAX 1024
void smtpc_judge_reply(const struct smtpc_peer *peer, enum smtpc_stage stage,
                       const struct smtpc_reply *r, struct smtpc_verdict *v);

/* Outcomes that are not a reply. */
enum smtpc_failure {
	SMTPC_FAIL_CONNECT,        /* connect refused or unreachable: 4.4.1 */
	SMTPC_FAIL_TIMEOUT,        /* at CONNECT or GREETING 4.4.1, later 4.4.2 */
	SMTPC_FAIL_LOST,           /* the server closed the connection: 4.4.2 */
	SMTPC_FAIL_TLS,            /* handshake or certificate failure: 4.7.5 */
	SMTPC_FAIL_TLS_REQUIRED,   /* policy needs TLS, STARTTLS not offered: 4.7.4 */
	SMTPC_FAIL_TLS_VERIFY,     /* policy needs a verified certificate: 4.7.5 */
	SMTPC_FAIL_PROTOCOL,       /* malformed reply (smtpc_rparser error): 4.5.0 */
	SMTPC_FAIL_DNS_TEMP,       /* DNS temporary failure: 4.4.3 */
	SMTPC_FAIL_DNS_NXDOMAIN,   /* the domain does not exist: 5.1.2 */
	SMTPC_FAIL_DNS_NOHOST,     /* no MX host and no address at all: 5.4.4 */
	SMTPC_FAIL_NULL_MX,        /* RFC 7505 null MX: 5.1.10 */
	SMTPC_FAIL_SMARTHOST_DNS,  /* the smarthost's name does not resolve: defer 4.4.3 */
	SMTPC_FAIL_EXPIRED,        /* past queue_lifetime: bounce 5.4.7 */
	SMTPC_FAIL_LOOP,           /* the best MX host is this relay itself: 5.4.6 */
	SMTPC_FAIL_BLOCKED,        /* every address is in blocked_destinations: 5.4.4 */
	SMTPC_FAIL_TLS_POLICY,     /* the domain's TLS policy refuses this host: 4.7.5 */
	SMTPC_FAIL_REQUIRETLS_TLS, /* REQUIRETLS, no verified TLS session: bounce 5.7.10 */
	SMTPC_FAIL_REQUIRETLS_EXT, /* REQUIRETLS not offered after TLS: bounce 5.7.30 */
	SMTPC_FAIL__COUNT
};

/* RFC 3464 status of a delay notice for a recipient still queued; the
 * final bounce at expiry carries SMTPC_FAIL_EXPIRED's 5.4.7. */
#define SMTPC_STATUS_DELAYED "4.4.7"

/*
 * Judge a failure f at stage. detail is the cause in words for the
 * diagnostic ("Connection refused", the TLS library's error, the parser's
 * error, the DNS error; for EXPIRED the last deferral reason), or NULL.
 * For DNS outcomes peer->host is the destination domain. v is overwritten.
 */
void smtpc_judge_failure(const struct smtpc_peer *peer, enum smtpc_stage stage,
                         enum smtpc_failure f, const char *detail, struct smtpc_verdict *v);

/*
 * After EHLO on a connection that is not yet encrypted: when TLS is
 * required and the server does not offer STARTTLS, fill v with the
 * TLS_REQUIRED verdict (SESSION, DEFER 4.7.4, "TLS required but not
 * offered by HOST") and return -1; otherwise return 0 and leave v alone.
 */
int smtpc_judge_tls(const struct smtpc_peer *peer, const struct smtpc_caps *caps, int tls_required,
                    int tls_active, struct smtpc_verdict *v);

/* What a message needs from the server. */
struct smtpc_msg_needs {
	uint64_t size;  /* octets to be sent */
	int eightbit;   /* BODY=8BITMIME */
	int smtputf8;   /* SMTPUTF8 envelope */
	int requiretls; /* RFC 8689 REQUIRETLS */
};

/*
 * Before MAIL FROM: can this server take this message? We do not convert
 * content, so a missing extension is permanent for the message:
 * SMTPUTF8 → 5.6.7, 8BITMIME → 5.6.3, size above a non-zero SIZE → 5.3.4;
 * REQUIRETLS (RFC 8689 4.2.1) over a session that is not TLS with a
 * verified certificate → 5.7.10, without the extension → 5.7.30. Returns 0
 * when it can, else -1 with v filled (MESSAGE, BOUNCE; the session goes on
 * with its other messages).
 */
int smtpc_judge_message(const struct smtpc_peer *peer, const struct smtpc_caps *caps,
                        const struct smtpc_msg_needs *m, int tls_verified, struct smtpc_verdict *v);

/*
 * The RFC 3463 status for a reply: its enhanced code when it has one,
 * else derived from the class (2.0.0, 4.0.0, 5.0.0). out has
 * SMTPC_ENHANCED_MAX bytes.
 */
void smtpc_status_of_reply(int code, const char *enhanced, char *out);

/*
 * The diagnostic for a reply alone (see smtpc_judge_reply); returns an
 * allocated string the caller frees.
 */
char *smtpc_diag_reply(const struct smtpc_peer *peer, enum smtpc_stage stage,
                       const struct smtpc_reply *r);

/* Names for log lines: "rcpt", "deferred", "session", ... */
const char *smtpc_stage_name(enum smtpc_stage s);
const char *smtpc_action_name(enum smtpc_action a); /* "sent", "deferred", "bounced" */
const char *smtpc_scope_name(enum smtpc_scope s);
const char *smtpc_failure_name(enum smtpc_failure f);

#endif
