/*
 * smtpc_int.h: what the files of src/smtpc/ share and nobody else sees.
 *
 *   smtpc_conn.c   the connection's life: walking the route, replies,
 *                  transactions, failures, the public API
 *   smtpc_hello.c  from the connect to READY: the source address (pools),
 *                  EHLO, STARTTLS under the host's TLS policy (MTA-STS,
 *                  DANE, REQUIRETLS), session outcomes for TLS-RPT, AUTH
 */
#ifndef POSTHORN_SMTPC_INT_H
#define POSTHORN_SMTPC_INT_H

#include <openssl/ssl.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "smtpc/smtpc_conn.h"
#include "smtpc/smtpc_reply.h"

struct bufferevent;
struct event;

enum cstate {
	C_CONNECTING,
	C_GREETING,
	C_EHLO,
	C_HELO,
	C_STARTTLS,
	C_TLS,
	C_AUTH,
	C_READY,
	C_TXN,  /* MAIL and RCPT replies */
	C_DATA, /* waiting for 354 */
	C_BODY, /* streaming the content */
	C_DOT,  /* waiting for the final reply */
	C_RSET,
	C_QUIT,
	C_DEAD,
	C__COUNT
};

struct smtpc_conn {
	LIST_ENTRY(smtpc_conn) all;
	struct event_base *base;
	struct smtpc_target t;
	struct dns_route *route;
	char id[ID_LEN + 1]; /* conn=: this connection's own ID in the log */
	char *dest, *helo, *auth;
	const char *helo_now; /* the EHLO name of this attempt (a pool's, or helo) */
	struct smtpc_cbs cbs;
	void *arg;
	struct bufferevent *bev;
	int fd; /* the socket under bev (owned by it), -1: none */
	SSL *ssl;
	enum cstate state;
	struct smtpc_rparser rp;
	struct smtpc_caps caps;
	int tls_active;
	int verified; /* TLS is active and the certificate checked out */
	int no_tls;   /* retrying this address in plain text after a TLS failure */
	size_t host_i, addr_i, tries;
	char host[256], addr[DNS_ADDR_STRLEN];
	char src[DNS_ADDR_STRLEN]; /* the pool address bound to, or "" */
	struct smtpc_peer peer;
	struct smtpc_verdict last; /* last session-level failure, for failed() */
	unsigned n_sent;
	struct event *ev_free, *ev_refused;
	int freeing, ever_ready;
	int quitting;            /* the owner let go (smtpc_conn_quit): no more callbacks */
	void (*gone)(void *arg); /* after QUIT: the socket is closed */
	void *gone_arg;
	/* the current job */
	struct smtpc_job job;
	smtpc_done_fn done;
	void *done_arg;
	struct smtpc_verdict *v;
	int *accepted;
	size_t n_accepted;
	size_t reply_i; /* replies of the transaction received: 0 = MAIL, i = RCPT i-1 */
	size_t sent_i;  /* commands of the transaction sent */
	int mail_ok;
	uint64_t body_done;
	int body_bol; /* at the beginning of a line (dot-stuffing) */
};

/* ---- smtpc_conn.c ---- */
void smtpc_set_state(struct smtpc_conn *c, enum cstate st);
void smtpc_send_line(struct smtpc_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* This address is done with verdict v (taken over): next address, or the
 * job and the owner hear of it. */
void smtpc_session_failed(struct smtpc_conn *c, struct smtpc_verdict *v);
void smtpc_fail_with(struct smtpc_conn *c, enum smtpc_failure f, const char *detail);
/* The bufferevent callbacks, for a new (TLS) bufferevent. */
void smtpc_setcb(struct smtpc_conn *c);

/* ---- smtpc_hello.c ---- */
/* The TLS policy of the host being tried (NULL: none). */
const struct tls_host_pol *smtpc_host_pol(const struct smtpc_conn *c);
/* 1 if this host must not be reached without TLS. */
int smtpc_tls_required(const struct smtpc_conn *c);
/* Before the first address of a host: 1 if its policy refuses it (the
 * verdict is kept in c->last and the outcome reported); go to the next. */
int smtpc_host_refused(struct smtpc_conn *c);
/* A connected socket for ss: bound to the pool's next usable source
 * address (c->src, c->helo_now set), or the system's choice without a
 * pool. -1 with errno-like text in *why when none can be made. */
int smtpc_socket(struct smtpc_conn *c, const struct sockaddr *ss, const char **why);
void smtpc_send_ehlo(struct smtpc_conn *c);
/* After a good EHLO/HELO: STARTTLS, the policy checks, AUTH, READY. */
void smtpc_after_hello(struct smtpc_conn *c);
void smtpc_start_tls(struct smtpc_conn *c);
void smtpc_tls_established(struct smtpc_conn *c);
/* The handshake failed (text: OpenSSL's reason). */
void smtpc_tls_failed(struct smtpc_conn *c, const char *text);
void smtpc_become_ready(struct smtpc_conn *c);

#endif
