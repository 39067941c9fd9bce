/*
 * smtpd: inbound SMTP. Listeners, per-address limits, sessions. The
 * protocol parsing lives in the PURE files smtp_parse.c and smtp_data.c;
 * this module does the I/O and the policy (smtpd_session.h lists the
 * files of a session).
 */
#ifndef POSTHORN_SMTPD_H
#define POSTHORN_SMTPD_H

struct ssl_ctx_st; /* OpenSSL's SSL_CTX, opaque here */

struct event_base;
struct conf;
struct dkim_signer;
struct envelope;
struct unsub;
struct deliv;
struct spool;
struct store;
struct work_pool;
struct smtpd;

/* What a running smtpd uses. The struct is the caller's and must outlive
 * the smtpd; only base and conf are needed to bind, the rest may be filled
 * in after smtpd_new() (so ports can be bound before dropping privileges
 * and opening the data directory). */
/* A message the spool made durable, borrowed for the call: its envelope
 * as committed (env->id set; the scheduler indexes it without reading the
 * file back) and its decoded Subject (NULL when the message has none). */
struct smtpd_queued {
	const struct envelope *env;
	const char *subject;
};

struct smtpd_deps {
	struct event_base *base;
	const struct conf *conf;
	struct spool *spool;
	struct store *store;
	struct work_pool *work;
	struct ssl_ctx_st *tls; /* NULL when [tls] is not configured */
	/* Added at accept, before the commit (smtpd_sign.c); NULL: none. */
	struct dkim_signer *dkim; /* DKIM signatures, in deps->work */
	struct unsub *unsub;      /* List-Unsubscribe for accounts that want it */
	/* Quotas, pauses, VERP recipients and reports (deliv.h); NULL: none. */
	struct deliv *deliv;
	/* Called on the loop thread once for each message the spool made
	 * durable (struct smtpd_queued): before the 250 is queued, and even
	 * when the client has gone meanwhile and will never see it. */
	void (*queued)(void *arg, const struct smtpd_queued *q);
	void *queued_arg;
};

/* Binds every listener. NULL with a malloc'd *err if one cannot bind. */
struct smtpd *smtpd_new(struct smtpd_deps *deps, char **err);

/* Stops accepting; idle sessions get 421 and close, busy ones finish their
 * transaction first. drained() runs once no session is left. */
void smtpd_drain(struct smtpd *sd, void (*drained)(void *arg), void *arg);

/* At exit, before the spool closes: messages still being received (the
 * drain timed out on them) are dropped; they never got their 250. */
void smtpd_abort_receiving(struct smtpd *sd);

/* Closes everything at once (after drain, or at exit). */
void smtpd_free(struct smtpd *sd);

/* Swap the TLS context for new sessions (SIGHUP). */
void smtpd_set_tls(struct smtpd *sd, struct ssl_ctx_st *tls);

#endif
