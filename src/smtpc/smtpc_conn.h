/*
 * smtpc_conn: one outbound SMTP connection to one destination. It walks
 * the route (MX hosts in order, each host's addresses in order) until a
 * server greets it and takes EHLO (and STARTTLS, and AUTH for a
 * smarthost); then it is READY and carries messages, one transaction at a
 * time, for as long as its owner keeps giving it work.
 *
 * The owner (the scheduler) hears about it through three callbacks, each
 * run from the event loop, never from inside an smtpc_* call:
 *   ready(c)       idle and usable: give it a job (smtpc_conn_send) or
 *                  smtpc_conn_quit() it
 *   failed(c, v)   it never became READY: every address was tried; v is the
 *                  last verdict. The connection is freed after the callback.
 *   closed(c)      it went away after having been READY (lost, 421, timeout);
 *                  a job in progress got its done() first. Freed after the
 *                  callback.
 * A job's result comes through its own done() callback, per recipient.
 */
#ifndef POSTHORN_SMTPC_CONN_H
#define POSTHORN_SMTPC_CONN_H

#include <stddef.h>
#include <stdint.h>

struct ssl_ctx_st; /* OpenSSL's SSL_CTX, opaque here */

#include "conf/conf.h"
#include "dns/dns_mx.h"
#include "smtpc/smtpc_policy.h"
#include "tls/tls_policy.h"

struct event_base;
struct smtpc_conn;

struct smtpc_target {
	const char *dest;        /* destination name, for logs */
	struct dns_route *route; /* taken over by the connection (dns_route_dup'd) */
	uint16_t port;
	struct ssl_ctx_st *tls; /* client context; NULL: never STARTTLS */
	int tls_required;       /* no STARTTLS or a failed handshake: next host */
	/* The certificate must match this name or IP address (NULL: the host
	 * being connected to, as the route names it) ... */
	const char *verify_host;
	/* ... and chain to a trusted anchor, or the session ends before any
	 * command (and AUTH) is sent: next address, never plain text. */
	int verify_required;
	const char *helo; /* our name for EHLO */
	const char *auth; /* "user:password" (smarthost), sent only over TLS */
	/* The destination's TLS policies for this route (MTA-STS, DANE, the
	 * message's REQUIRETLS): pol->hosts[i] says what route host i must
	 * give (tls_policy.h). Referenced by the connection; NULL: none. A
	 * host the policy refuses is skipped (4.7.5); a REQUIRETLS host that
	 * cannot give a verified TLS session fails with 5.7.10, one that does
	 * not offer REQUIRETLS after TLS with 5.7.30 (bounces, RFC 8689). */
	struct tls_dest_pol *pol;
	/* Source addresses: each attempt binds to the pool's next address of
	 * the right family, from *pool_turn on (advanced), and says EHLO with
	 * its name; an address that cannot be bound is skipped (logged).
	 * NULL: the system picks. The pool must outlive the connection. */
	const struct conf_pool *pool;
	unsigned *pool_turn;
};

struct smtpc_cbs {
	void (*ready)(void *arg, struct smtpc_conn *c);
	void (*failed)(void *arg, struct smtpc_conn *c, const struct smtpc_verdict *v);
	void (*closed)(void *arg, struct smtpc_conn *c);
};

struct smtpc_conn *smtpc_conn_new(struct event_base *base, const struct smtpc_target *t,
                                  const struct smtpc_cbs *cbs, void *arg);

struct smtpc_job_rcpt {
	const char *addr;
	const char *orcpt; /* "rfc822;addr" or NULL */
	unsigned notify;   /* DSN_NOTIFY_* bits, 0 = not given */
};

struct smtpc_job {
	const char *id; /* queue ID, for logs */
	const char *mail_from;
	int eightbit, smtputf8;
	int requiretls; /* RFC 8689: MAIL FROM ... REQUIRETLS (the connection's
	                   policy must have asked for it: see smtpc_target.pol) */
	int ret;        /* DSN_RET_* */
	const char *envid;
	const struct smtpc_job_rcpt *rcpts;
	size_t n_rcpts;
	int fd; /* message content: fd, offset, length (not closed by smtpc) */
	uint64_t offset, len;
};

/* v[i] is recipient i's verdict (action OK = delivered); v and its strings
 * are valid during the callback only. The job's strings may be freed once
 * done() runs. After done(), the connection calls ready() or closed(). */
typedef void (*smtpc_done_fn)(void *arg, const struct smtpc_verdict *v, size_t n);
void smtpc_conn_send(struct smtpc_conn *c, const struct smtpc_job *job, smtpc_done_fn done,
                     void *arg);

/* Say QUIT (if READY) and close. No callback follows: the owner forgets c
 * at once. Not for a connection with a job in progress. */
void smtpc_conn_quit(struct smtpc_conn *c);

/* The same, then gone(arg) once the session is over after QUIT: the
 * peer answered QUIT or closed (or QUIT_TIMEOUT_S passed, or the link
 * failed), and the socket is closed. Always called, from a deferred event
 * (at exit from smtpc_conn_free_all()). */
void smtpc_conn_quit_then(struct smtpc_conn *c, void (*gone)(void *arg), void *arg);

/* At exit, after the event loop has stopped: frees every connection still
 * alive (those saying QUIT, those abandoned by a drain timeout). No
 * callback runs but the gone() of smtpc_conn_quit_then(). */
void smtpc_conn_free_all(void);

/* The host and address now connected to, and the TLS version or "none". */
const char *smtpc_conn_host(const struct smtpc_conn *c);
const char *smtpc_conn_addr(const struct smtpc_conn *c);
uint16_t smtpc_conn_port(const struct smtpc_conn *c);
const char *smtpc_conn_tls(const struct smtpc_conn *c);
/* 1 if TLS is active and the peer's certificate was verified. */
int smtpc_conn_verified(const struct smtpc_conn *c);
/* The policy the current host is held to: "none", "mta-sts", "dane",
 * "requiretls" (tls_pol_name). */
const char *smtpc_conn_policy(const struct smtpc_conn *c);
/* The pool address the connection was bound to, or NULL. */
const char *smtpc_conn_src(const struct smtpc_conn *c);
/* 1 if the server offered DSN (it then reports success itself). */
int smtpc_conn_has_dsn(const struct smtpc_conn *c);
/* Messages sent over this connection so far. */
unsigned smtpc_conn_count(const struct smtpc_conn *c);

#endif
