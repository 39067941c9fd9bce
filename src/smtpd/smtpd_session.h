/*
 * The inbound session, shared by the files that serve it:
 *   smtpd_session.c  lifetime, I/O, STARTTLS, the command table, EHLO
 *   smtpd_mail.c     MAIL and RCPT (sender binding, relay, limits)
 *   smtpd_auth.c     AUTH PLAIN / LOGIN, checked in the work pool
 *   smtpd_data.c     DATA and BDAT into the spool, the 250 after commit
 *   smtpd_sign.c     DKIM signatures and List-Unsubscribe, added before commit
 * Internal to src/smtpd; the public interface is smtpd.h.
 */
#ifndef POSTHORN_SMTPD_SESSION_H
#define POSTHORN_SMTPD_SESSION_H

#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdint.h>

#include "smtpd/smtp_data.h"
#include "smtpd/smtp_parse.h"
#include "smtpd/smtpd_int.h"
#include "smtpd/smtpd_reply.h"
#include "util/util.h"

struct bufferevent;
struct evbuffer;
struct envelope;
struct spool_msg;
struct smtpd_sign;
struct rcpt;
struct rcpt_batch;
struct deliv_inbound;

/* What the session reads next (protocol state; set_state() logs it). */
enum state {
	S_CMD,        /* reading command lines */
	S_AUTH_PLAIN, /* waiting for the PLAIN response line */
	S_AUTH_USER,  /* LOGIN: waiting for the user name */
	S_AUTH_PASS,  /* LOGIN: waiting for the password */
	S_DATA,       /* reading DATA content */
	S_BDAT,       /* reading a BDAT chunk */
	S_WAIT,       /* a work job, commit or delay holds it; input waits */
	S_TLS,        /* a TLS handshake runs (own deadline); input waits */
	S_CLOSING,    /* last reply is being flushed, then the session goes */
	S__COUNT
};

/* Whether the session may be freed (see the transitions at the top of
 * smtpd_session.c; only session_hold/release/kill change it). */
enum life {
	L_OPEN,      /* connection up, nothing holds the session */
	L_HELD,      /* a work job, commit or timer will call back */
	L_HELD_GONE, /* held, and the connection is gone: release() frees */
	L_FREEING,   /* ev_free is active: freed on the next loop turn */
};

/* One mail transaction: MAIL to the end of DATA/BDAT, or RSET. */
struct txn {
	struct smtp_mail_args mail; /* pointers into mail_line */
	char *mail_line;
	struct rcpt *rcpts;
	size_t n_rcpts, cap_rcpts;
	struct spool_msg *msg;
	struct smtp_data dec;
	int data_started;
	int too_big;
	uint64_t bdat_left;
	int bdat_last;
	int bdat_failed;         /* a BDAT chunk failed: the rest of this message is discarded */
	struct smtpd_sign *sign; /* fields to add at the end of data (smtpd_sign.c), or NULL */
	/* for the queued line, once the content is complete: */
	uint64_t size;
	char message_id[SMTP_DATA_MSGID_MAX + 1]; /* the content's, or the one added */
	/* smtpd_mail.c: deliverability (released by smtpd_mail_txn_end) */
	struct rcpt_batch *batch;      /* RCPTs waiting for the suppression check */
	uint64_t quota_reserved;       /* recipients reserved against the account's quota */
	struct deliv_inbound *inbound; /* a report to VERP addresses: not queued */
};

struct session {
	TAILQ_ENTRY(session) entry;
	char id[ID_LEN + 1];
	struct listener *l;
	struct smtpd *sd;
	struct bufferevent *bev;
	SSL *ssl;
	struct sockaddr_storage sa;
	char ip[INET6_ADDRSTRLEN];
	int trusted;
	struct smtpd_addr_key addr_key; /* what the per-address limits count */
	enum state state;
	enum life life;
	char *helo;
	int esmtp;
	int tls_active;
	char *account;     /* authenticated account, or NULL */
	int sent_mail;     /* a MAIL was accepted: the stress timeout no longer applies */
	unsigned n_errors; /* rejected commands since the last queued message */
	int auth_failures;
	char *auth_user; /* LOGIN: user name between the two steps */
	int in_overlong;
	struct txn txn;
	struct event *ev_free, *ev_resume;
	struct event *ev_auth_delay; /* AUTH: the pause before the 421 */
	struct event *ev_flush;      /* closing: waits for the last reply to leave */
	struct event *ev_data;       /* data_timeout: the whole DATA/BDAT phase, so a
	                                client trickling bytes cannot hold a slot */
	struct event *ev_handshake;  /* libevent's bufferevent timeouts do not
	                                cover the TLS handshake: our own deadline */
	uint64_t closing_since_ms;
	uint64_t n_msgs, n_rcpts, n_cmds;
	const char *close_reason;
};

/* ---- smtpd_session.c ---- */

/* Queue a reply (nothing once the session is closing or gone). */
void session_reply(struct session *s, enum smtpd_reply r);
void session_replyf(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A refusal: the reply, and a log line saying why. */
void session_refuse(struct session *s, const char *cmd, enum smtpd_reply r);
/* The same with a reply that carries values (the whole line, no CRLF). */
void session_refuse_line(struct session *s, const char *cmd, const char *line);
/* Count a rejected command against max_errors (session_refuse() does). */
void session_error(struct session *s);
/* Send the reply, then close once it has left. */
void session_reply_close(struct session *s, const char *reason, enum smtpd_reply r);
void session_set_state(struct session *s, enum state st);
/* The idle timeout may have changed (stress mode, MAIL sent): apply it. */
void session_timeouts_update(struct session *s);
const char *session_state_name(enum state st);
/* Resume reading in state st after a wait, from the loop. */
void session_resume(struct session *s, enum state st);
void session_txn_reset(struct session *s);

/* Lifetime. hold() before starting anything that calls back (work job,
 * commit, timer); release() first thing in that callback: 1 means the
 * session is gone, return without touching it. kill(): the connection is
 * lost or must go now; the session is freed when nothing holds it. */
void session_hold(struct session *s);
int session_release(struct session *s);
void session_kill(struct session *s, const char *reason);

/* ---- smtpd_mail.c ---- */

void smtpd_cmd_mail(struct session *s, char *arg);
void smtpd_cmd_rcpt(struct session *s, char *arg);
/* The transaction ends (session_txn_reset): reservations released, a
 * batch or a report not finished dropped. */
void smtpd_mail_txn_end(struct session *s);
/* The message was committed: its reserved recipients count. */
void smtpd_mail_committed(struct session *s);
/* A report's content (txn.inbound) is complete: it is read and applied,
 * then 250 (the session waits meanwhile). */
void smtpd_mail_report(struct session *s);

/* ---- smtpd_auth.c ---- */

/* 1 if AUTH may be offered and used in this session now. */
int smtpd_auth_allowed(const struct session *s);
void smtpd_cmd_auth(struct session *s, char *arg);
/* A line read in S_AUTH_PLAIN / S_AUTH_USER / S_AUTH_PASS. */
void smtpd_auth_continue(struct session *s, char *line);
/* ev_auth_delay's callback. */
void smtpd_auth_on_delay(evutil_socket_t fd, short what, void *arg);

/* ---- smtpd_data.c ---- */

void smtpd_cmd_data(struct session *s, char *arg);
void smtpd_cmd_bdat(struct session *s, char *arg);
/* A BDAT refused before its chunk: read and drop the chunk. */
void smtpd_bdat_swallow(struct session *s, const char *arg);
/* Feed up to one chunk of input in S_DATA / S_BDAT. 1 if input was
 * consumed and processing may go on. */
int smtpd_data_input(struct session *s, struct evbuffer *in);
/* ev_data's callback. */
void smtpd_data_on_timeout(evutil_socket_t fd, short what, void *arg);
/* The end of a transaction, for smtpd_sign.c. The session is held (by the
 * end of data) for commit, and was released for the other two. */
void smtpd_data_envelope(struct session *s, struct envelope *env);
void smtpd_data_commit(struct session *s); /* t->msg, answered after */
/* Logs the queued line of message id and hands it to the scheduler: the
 * recipients rcpts[first .. first + n) of the transaction, size bytes. */
void smtpd_data_announce(struct session *s, const char *id, size_t first, size_t n, uint64_t size);
void smtpd_data_accepted(struct session *s, const char *id, size_t n_msgs); /* 250 */
void smtpd_data_failed(struct session *s, enum smtpd_reply r);

/* ---- smtpd_sign.c ---- */

/* At the start of data, once the spool file is open: when the message may
 * get fields (the server has DKIM keys, or the account wants
 * List-Unsubscribe), t->sign is set and the spool front reserved. */
void smtpd_sign_begin(struct session *s);
/* Header bytes of the content as they are stored (the From domain is
 * looked for in them); last: the section ends here. */
void smtpd_sign_keep(struct session *s, const char *p, size_t n, int last);
/* At the end of data, the session held: 1 when a work job now adds the
 * fields and then commits (or fails the transaction); 0 when there is
 * nothing to add (logged), and the caller commits. */
int smtpd_sign_run(struct session *s);
void smtpd_sign_free(struct smtpd_sign *g);

#endif
