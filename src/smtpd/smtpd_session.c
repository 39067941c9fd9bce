/*
 * smtpd_session: one inbound SMTP session. Bytes come in through a
 * bufferevent (plain, STARTTLS filter, or implicit TLS); lines go to the
 * PURE parser, commands dispatch from a table, replies are queued in the
 * output buffer and leave when control returns to the loop (so pipelined
 * groups are answered in one write).
 *
 * Whenever the session waits for something slow (a password check or a
 * sender-domain check in the work pool, the spool commit), it enters
 * S_WAIT and reads no further input; the callback resumes it. The 250
 * after DATA/BDAT LAST is written only from on_committed(), i.e. after
 * the spool reported the message durable.
 *
 * Lifetime: a session is freed only from session_free_later()'s deferred
 * event, never inside one of its own callbacks, and never while a work job
 * or a commit still holds it (s->pending).
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"
#include "smtpd/smtp_data.h"
#include "smtpd/smtp_parse.h"
#include "smtpd/smtpd_int.h"
#include "spool/spool.h"
#include "store/store.h"
#include "tls/tls.h"
#include "util/util.h"
#include "work/work.h"

#define INPUT_HIGH_WATER      (256 * 1024) /* stop reading while this much waits */
#define OUTPUT_HIGH_WATER     (256 * 1024)
#define DATA_CHUNK            (64 * 1024)
#define AUTH_MAX_FAILURES     3
#define AUTH_FAIL_DELAY_S     2
#define MAX_CMDS_BEFORE_YIELD 200
#define CLOSE_LINGER_MS                                                                            \
	10000 /* the last reply gets this long to leave */ /* fairness: other sessions get a turn  \
	                                                    */

enum state {
	S_CMD,        /* reading command lines */
	S_AUTH_PLAIN, /* waiting for the PLAIN response line */
	S_AUTH_USER,  /* LOGIN: waiting for the user name */
	S_AUTH_PASS,  /* LOGIN: waiting for the password */
	S_DATA,       /* reading DATA content */
	S_BDAT,       /* reading a BDAT chunk */
	S_WAIT,       /* a work job or commit is running; input waits */
	S_CLOSING,    /* last reply is being flushed, then free */
	S__COUNT
};
/* S__COUNT names a session that has not entered its first state yet. */
static const char *state_names[S__COUNT + 1] = {
    "cmd", "auth-plain", "auth-user", "auth-pass", "data", "bdat", "wait", "closing", "new"};

struct txn {
	char *mail_from;
	struct smtp_mail_args mail; /* pointers into mail_from_line */
	char *mail_line;
	struct rcpt *rcpts;
	size_t n_rcpts, cap_rcpts;
	struct spool_msg *msg;
	struct smtp_data dec;
	int data_started;
	int too_big;
	int headers_added;
	uint64_t bdat_left;
	int bdat_last;
	int bdat_failed; /* a BDAT chunk failed: the rest of this message is discarded */
	int held_cr;     /* a header-line-start CR kept back (see data_output) */
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
	enum state state;
	enum state resume_state;
	char *helo;
	int esmtp;
	int tls_active;
	char *account; /* authenticated account, or NULL */
	int auth_failures;
	char *auth_user; /* LOGIN: user name between the two steps */
	int in_overlong;
	int pending;  /* work jobs / commits holding this session */
	int dead;     /* the connection is gone; free when pending hits 0 */
	int draining; /* close after the current transaction */
	int freeing;
	struct txn txn;
	struct event *ev_free, *ev_timer, *ev_resume;
	struct event *ev_flush;     /* closing: waits for the last reply to leave */
	struct event *ev_data;      /* data_timeout: the whole DATA/BDAT phase, so a
	                               client trickling bytes cannot hold a slot */
	struct event *ev_handshake; /* libevent's bufferevent timeouts do not
	                               cover the TLS handshake: our own deadline */
	int handshaking;
	uint64_t closing_since_ms;
	uint64_t n_msgs, n_rcpts, n_cmds;
	const char *close_reason;
};

static void process_input(struct session *s);
static void handshake_begin(struct session *s);
static void session_free_later(struct session *s);
static void set_state(struct session *s, enum state st);
static void on_flush_check(evutil_socket_t fd, short what, void *arg);
static void on_data_timeout(evutil_socket_t fd, short what, void *arg);
static void reply_and_close(struct session *s, const char *reason, const char *text);
static void session_kill(struct session *s, const char *reason);

/* ---------- replies ---------- */

static void reply(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(struct session *s, const char *fmt, ...)
{
	struct evbuffer *out;
	va_list ap;

	if (s->dead || s->state == S_CLOSING)
		return; /* after the last reply, nothing more */
	out = bufferevent_get_output(s->bev);
	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

/* A refusal: the reply, and a log line saying why. */
static void refuse(struct session *s, const char *cmd, const char *text)
{
	reply(s, "%s", text);
	log_info("session=%s event=reject cmd=%s reply=%s", s->id, cmd, log_q(text));
}

/* Bytes not yet handed to the kernel: ours, and under STARTTLS those the
 * TLS filter already passed to the plain bufferevent beneath it. */
static size_t unsent(struct session *s)
{
	struct bufferevent *under = bufferevent_get_underlying(s->bev);
	size_t n = evbuffer_get_length(bufferevent_get_output(s->bev));

	if (under)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

/* Free once the last reply has really left; poll briefly while the layer
 * beneath the TLS filter still holds it (the write timeout bounds it). */
static void close_when_sent(struct session *s)
{
	struct timeval tv = {0, 5000};

	if (s->dead || unsent(s) == 0) {
		session_free_later(s);
		return;
	}
	if (!s->closing_since_ms)
		s->closing_since_ms = clock_mono_ms();
	if (clock_mono_ms() - s->closing_since_ms > CLOSE_LINGER_MS) {
		session_kill(s, s->close_reason); /* the peer is not taking it */
		return;
	}
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		evtimer_add(s->ev_flush, &tv);
}

static void on_data_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	if (s->state != S_DATA && s->state != S_BDAT && s->state != S_CMD)
		return; /* committing, or already closing */
	log_info("session=%s event=timeout state=%s what=data_timeout", s->id,
	         state_names[s->state]);
	bufferevent_disable(s->bev, EV_READ);
	reply_and_close(s, "data_timeout", "421 4.4.2 Data timeout exceeded, closing connection");
}

static void on_flush_check(evutil_socket_t fd, short what, void *arg)
{
	close_when_sent(arg);
}

/* Send the reply, then close once it has left. */
static void reply_and_close(struct session *s, const char *reason, const char *text)
{
	if (text)
		reply(s, "%s", text);
	s->close_reason = reason;
	set_state(s, S_CLOSING);
	close_when_sent(s);
}

/* ---------- state ---------- */

static void set_state(struct session *s, enum state st)
{
	struct timeval tv = {0, 0};
	const struct conf_listener *cfg = s->l->cfg;

	if (s->state == st)
		return;
	log_debug("session=%s event=state from=%s to=%s", s->id, state_names[s->state],
	          state_names[st]);
	s->state = st;
	if (s->dead)
		return;
	/* DATA and BDAT run under data_timeout, the rest under timeout. */
	tv.tv_sec = (time_t)((st == S_DATA || st == S_BDAT) ? cfg->data_timeout : cfg->timeout);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

static void txn_reset(struct session *s)
{
	struct txn *t = &s->txn;
	size_t i;

	if (s->ev_data)
		evtimer_del(s->ev_data);
	if (t->msg)
		spool_msg_abort(t->msg);
	for (i = 0; i < t->n_rcpts; i++) {
		free(t->rcpts[i].addr);
		free(t->rcpts[i].orcpt);
	}
	free(t->rcpts);
	free(t->mail_line);
	memset(t, 0, sizeof(*t));
}

/* ---------- lifetime ---------- */

static void on_free(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	if (s->pending) {
		s->dead = 1; /* the job's callback frees it */
		return;
	}
	log_info("session=%s event=disconnect ip=%s reason=%s msgs=%llu rcpts=%llu cmds=%llu",
	         s->id, s->ip, s->close_reason ? s->close_reason : "close",
	         (unsigned long long)s->n_msgs, (unsigned long long)s->n_rcpts,
	         (unsigned long long)s->n_cmds);
	txn_reset(s);
	TAILQ_REMOVE(&s->sd->sessions, s, entry);
	s->sd->n_sessions--;
	if (s->bev)
		bufferevent_free(s->bev); /* frees the SSL too (BEV_OPT_CLOSE_ON_FREE) */
	event_free(s->ev_free);
	event_free(s->ev_timer);
	event_free(s->ev_resume);
	event_free(s->ev_handshake);
	event_free(s->ev_flush);
	event_free(s->ev_data);
	smtpd_session_gone(s->l, (struct sockaddr *)&s->sa);
	free(s->helo);
	free(s->account);
	free(s->auth_user);
	free(s);
}

static void session_free_later(struct session *s)
{
	if (s->freeing)
		return;
	s->freeing = 1;
	if (s->bev)
		bufferevent_disable(s->bev, EV_READ);
	event_active(s->ev_free, EV_TIMEOUT, 0);
}

/* Connection lost or must go now: stop I/O, free when safe. */
static void session_kill(struct session *s, const char *reason)
{
	if (!s->close_reason)
		s->close_reason = reason;
	s->dead = 1;
	if (s->bev)
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	session_free_later(s);
}

/* Hold/release around work jobs and commits. */
static void hold(struct session *s)
{
	s->pending++;
}

/* Returns 1 if the session is gone and must not be touched further. */
static int release(struct session *s)
{
	s->pending--;
	if (s->dead && s->pending == 0) {
		s->freeing = 0;
		session_free_later(s);
		return 1;
	}
	return s->dead;
}

/* Resume reading after a wait, from the loop (not from inside the
 * callback that ended the wait, which may be deep in another stack). */
static void resume(struct session *s, enum state st)
{
	if (s->state == S_CLOSING)
		return; /* timed out or drained while waiting */
	set_state(s, st);
	if (s->draining && st == S_CMD && !s->txn.mail_line) {
		reply_and_close(s, "shutdown",
		                "421 4.3.2 Service shutting down, closing connection");
		return;
	}
	event_active(s->ev_resume, EV_TIMEOUT, 0);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	if (!s->dead && s->state != S_WAIT && s->state != S_CLOSING) {
		bufferevent_enable(s->bev, EV_READ);
		process_input(s);
	}
}

/* ---------- EHLO / HELO ---------- */

static int auth_allowed(const struct session *s)
{
	const struct conf_listener *cfg = s->l->cfg;

	if (cfg->auth == CONF_AUTH_OFF)
		return 0;
	return s->tls_active || (cfg->tls == CONF_TLS_NONE && s->trusted);
}

static int starttls_offered(const struct session *s)
{
	return !s->tls_active && s->sd->deps->tls && s->l->cfg->tls == CONF_TLS_STARTTLS;
}

static void cmd_helo(struct session *s, char *arg, int esmtp)
{
	const struct conf *c = s->sd->deps->conf;

	arg = str_trim(arg);
	if (!*arg || strchr(arg, ' ')) {
		refuse(s, esmtp ? "EHLO" : "HELO", "501 5.5.4 Syntax: EHLO hostname");
		return;
	}
	txn_reset(s);
	free(s->helo);
	s->helo = xstrdup(arg);
	s->esmtp = esmtp;
	if (!esmtp) {
		reply(s, "250 %s", c->hostname);
		return;
	}
	reply(s, "250-%s", c->hostname);
	reply(s, "250-PIPELINING");
	reply(s, "250-SIZE %llu", (unsigned long long)s->l->cfg->max_message_size);
	reply(s, "250-8BITMIME");
	reply(s, "250-SMTPUTF8");
	reply(s, "250-ENHANCEDSTATUSCODES");
	reply(s, "250-CHUNKING");
	if (starttls_offered(s))
		reply(s, "250-STARTTLS");
	if (auth_allowed(s) && !s->account)
		reply(s, "250-AUTH PLAIN LOGIN");
	reply(s, "250 DSN");
}

static void cmd_ehlo_fn(struct session *s, char *arg)
{
	cmd_helo(s, arg, 1);
}

static void cmd_helo_fn(struct session *s, char *arg)
{
	cmd_helo(s, arg, 0);
}

/* ---------- STARTTLS ---------- */

static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

static void cmd_starttls(struct session *s, char *arg)
{
	struct bufferevent *tls_bev;
	SSL *ssl;

	if (!starttls_offered(s)) {
		refuse(s, "STARTTLS",
		       s->tls_active ? "503 5.5.1 TLS already active"
		                     : "502 5.5.1 STARTTLS not available");
		return;
	}
	if (*arg) {
		refuse(s, "STARTTLS", "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	ssl = tls_server_ssl_new(s->sd->deps->tls);
	if (!ssl) {
		reply(s, "454 4.7.0 TLS not available due to temporary reason");
		return;
	}
	reply(s, "220 2.0.0 Ready to start TLS");
	/* Anything the client pipelined after STARTTLS was sent in clear text
	 * and must not be obeyed after the handshake (CVE-2011-0411 class). */
	evbuffer_drain(bufferevent_get_input(s->bev),
	               evbuffer_get_length(bufferevent_get_input(s->bev)));
	tls_bev = bufferevent_openssl_filter_new(s->sd->deps->base, s->bev, ssl,
	                                         BUFFEREVENT_SSL_ACCEPTING,
	                                         BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!tls_bev) {
		SSL_free(ssl);
		session_kill(s, "tls_setup_failed");
		return;
	}
	s->bev = tls_bev;
	s->ssl = ssl;
	/* RFC 3207 4.2: forget everything learned before TLS. */
	txn_reset(s);
	free(s->helo);
	s->helo = NULL;
	s->esmtp = 0;
	bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, INPUT_HIGH_WATER);
	set_state(s, S_WAIT); /* until the handshake completes */
	s->resume_state = S_CMD;
	handshake_begin(s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	{
		struct timeval tv = {(time_t)s->l->cfg->timeout, 0};
		bufferevent_set_timeouts(s->bev, &tv, &tv);
	}
}

static void on_handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	log_info("session=%s event=tls_timeout ip=%s", s->id, s->ip);
	session_kill(s, "tls_timeout");
}

static void handshake_begin(struct session *s)
{
	struct timeval tv = {(time_t)s->l->cfg->timeout, 0};

	s->handshaking = 1;
	evtimer_add(s->ev_handshake, &tv);
}

static void tls_established(struct session *s)
{
	s->handshaking = 0;
	evtimer_del(s->ev_handshake);
	s->tls_active = 1;
	log_info("session=%s event=tls version=%s cipher=%s", s->id, tls_version(s->ssl),
	         tls_cipher(s->ssl));
	if (s->state == S_WAIT)
		resume(s, s->resume_state);
}

/* ---------- AUTH ---------- */

struct auth_job {
	struct session *s;
	struct store *store;
	char user[256];
	char pass[256];
	int result;
};

static void auth_job_run(void *arg)
{
	struct auth_job *j = arg;

	j->result = store_user_verify(j->store, j->user, j->pass);
}

static void on_auth_fail_delay(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	if (release(s))
		return;
	reply_and_close(s, "auth_failures", "421 4.7.0 Too many authentication failures");
}

/* A failed AUTH: 535, and after AUTH_MAX_FAILURES a delay, then 421 and
 * close. Returns 1 when the session is now waiting for that delay. */
static int auth_failed(struct session *s, const char *user)
{
	s->auth_failures++;
	log_info("session=%s event=auth result=fail user=%s failures=%d", s->id, log_q(user),
	         s->auth_failures);
	reply(s, "535 5.7.8 Authentication credentials invalid");
	if (s->auth_failures >= AUTH_MAX_FAILURES) {
		/* Slow down a guesser, then hang up. */
		struct timeval tv = {AUTH_FAIL_DELAY_S, 0};
		hold(s);
		set_state(s, S_WAIT);
		bufferevent_disable(s->bev, EV_READ);
		evtimer_add(s->ev_timer, &tv);
		return 1;
	}
	return 0;
}

static void auth_job_done(void *arg)
{
	struct auth_job *j = arg;
	struct session *s = j->s;

	memset(j->pass, 0, sizeof(j->pass));
	if (release(s)) {
		free(j);
		return;
	}
	if (j->result == 1) {
		s->account = xstrdup(j->user);
		log_info("session=%s event=auth result=ok user=%s", s->id, log_q(j->user));
		reply(s, "235 2.7.0 Authentication successful");
	} else if (j->result < 0) {
		log_err("session=%s event=auth result=error user=%s", s->id, log_q(j->user));
		reply(s, "454 4.7.0 Temporary authentication failure");
	} else if (auth_failed(s, j->user)) {
		free(j);
		return;
	}
	free(j);
	resume(s, S_CMD);
}

static void auth_check(struct session *s, const char *user, const char *pass)
{
	struct auth_job *j;

	if (strlen(user) >= sizeof(j->user) || strlen(pass) >= sizeof(j->pass)) {
		set_state(s, S_CMD);
		auth_failed(s, "(too long)");
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->s = s;
	j->store = s->sd->deps->store;
	strcpy(j->user, user);
	strcpy(j->pass, pass);
	hold(s);
	set_state(s, S_WAIT);
	work_submit(s->sd->deps->work, auth_job_run, auth_job_done, j);
}

static void auth_plain_response(struct session *s, const char *b64)
{
	char out[600];
	const char *user, *pass;

	if (sasl_plain_decode(b64, out, sizeof(out), &user, &pass) < 0) {
		refuse(s, "AUTH", "501 5.5.2 Cannot decode AUTH PLAIN response");
		set_state(s, S_CMD);
		return;
	}
	auth_check(s, user, pass);
	memset(out, 0, sizeof(out));
}

/* LOGIN sends user and password as plain base64 strings. */
static int b64_line(const char *in, char *out, size_t cap)
{
	long n = base64_decode(in, strlen(in), (unsigned char *)out, cap - 1);

	if (n < 0 || memchr(out, '\0', (size_t)n))
		return -1;
	out[n] = '\0';
	return 0;
}

static void auth_login_step(struct session *s, const char *line)
{
	char val[300];

	if (b64_line(line, val, sizeof(val)) < 0) {
		refuse(s, "AUTH", "501 5.5.2 Cannot decode AUTH LOGIN response");
		free(s->auth_user);
		s->auth_user = NULL;
		set_state(s, S_CMD);
		return;
	}
	if (s->state == S_AUTH_USER) {
		s->auth_user = xstrdup(val);
		reply(s, "334 UGFzc3dvcmQ6"); /* "Password:" */
		set_state(s, S_AUTH_PASS);
		return;
	}
	auth_check(s, s->auth_user, val);
	memset(val, 0, sizeof(val));
	free(s->auth_user);
	s->auth_user = NULL;
}

static void auth_continue(struct session *s, char *line)
{
	if (strcmp(line, "*") == 0) {
		refuse(s, "AUTH", "501 5.7.0 Authentication cancelled");
		free(s->auth_user);
		s->auth_user = NULL;
		set_state(s, S_CMD);
		return;
	}
	if (s->state == S_AUTH_PLAIN)
		auth_plain_response(s, line);
	else
		auth_login_step(s, line);
}

static void cmd_auth(struct session *s, char *arg)
{
	char *mech = arg, *initial = strchr(arg, ' ');

	if (initial)
		*initial++ = '\0';
	if (!auth_allowed(s)) {
		refuse(
		    s, "AUTH",
		    s->l->cfg->auth == CONF_AUTH_OFF
		        ? "502 5.5.1 AUTH not available"
		        : "538 5.7.11 Encryption required for requested authentication mechanism");
		return;
	}
	if (s->account) {
		refuse(s, "AUTH", "503 5.5.1 Already authenticated");
		return;
	}
	if (s->txn.mail_line) {
		refuse(s, "AUTH", "503 5.5.1 AUTH not allowed during a mail transaction");
		return;
	}
	if (ascii_casecmp(mech, "PLAIN") == 0) {
		if (initial && strcmp(initial, "=") != 0) {
			auth_plain_response(s, initial);
			return;
		}
		reply(s, "334 ");
		set_state(s, S_AUTH_PLAIN);
	} else if (ascii_casecmp(mech, "LOGIN") == 0) {
		set_state(s, S_AUTH_USER);
		if (initial) {
			auth_login_step(s, initial);
			return;
		}
		reply(s, "334 VXNlcm5hbWU6"); /* "Username:" */
	} else {
		refuse(s, "AUTH", "504 5.5.4 Unrecognized authentication type");
	}
}

/* ---------- MAIL ---------- */

static int disk_nearly_full(struct session *s)
{
	static uint64_t checked_at;
	static int full;
	const struct conf *c = s->sd->deps->conf;
	uint64_t now = clock_mono_ms();
	struct statvfs v;

	/* statvfs is cheap, but once a second is plenty. */
	if (checked_at && now - checked_at < 1000)
		return full;
	checked_at = now;
	if (statvfs(c->data_dir, &v) == 0)
		full = (uint64_t)v.f_bavail * v.f_frsize < c->min_free_space;
	return full;
}

static const char *arg_err_reply(enum smtp_arg_err e, int is_mail)
{
	switch (e) {
	case SMTP_ARG_SYNTAX:
		return is_mail ? "501 5.1.7 Bad sender address syntax"
		               : "501 5.1.3 Bad recipient address syntax";
	case SMTP_ARG_BAD_ADDRESS:
		return is_mail ? "501 5.1.7 Bad sender address" : "501 5.1.3 Bad recipient address";
	case SMTP_ARG_UNKNOWN_PARAM:
		return "555 5.5.4 Unsupported option";
	case SMTP_ARG_BAD_PARAM:
		return "501 5.5.4 Invalid parameter value";
	case SMTP_ARG_NEEDS_UTF8:
		return "553 5.6.7 Non-ASCII address requires SMTPUTF8";
	default:
		return "501 5.5.4 Syntax error";
	}
}

static void mail_accept(struct session *s)
{
	reply(s, "250 2.1.0 Ok");
}

struct domain_job {
	struct session *s;
	struct store *store;
	char *account;
	char *domain;
	int result;
};

static void domain_job_run(void *arg)
{
	struct domain_job *j = arg;

	j->result = store_user_owns_domain(j->store, j->account, j->domain);
}

static void domain_job_done(void *arg)
{
	struct domain_job *j = arg;
	struct session *s = j->s;

	if (!release(s)) {
		if (j->result == 1) {
			mail_accept(s);
		} else {
			const char *text =
			    j->result < 0
			        ? "451 4.3.0 Temporary failure checking the sender"
			        : "553 5.7.1 Sender address not owned by the authenticated account";
			log_info("session=%s event=reject cmd=MAIL from=%s account=%s reply=%s",
			         s->id, log_q(s->txn.mail.addr), log_q(s->account), log_q(text));
			reply(s, "%s", text);
			txn_reset(s);
		}
		resume(s, S_CMD);
	}
	free(j->account);
	free(j->domain);
	free(j);
}

static void cmd_mail(struct session *s, char *arg)
{
	const struct conf_listener *cfg = s->l->cfg;
	struct txn *t = &s->txn;
	enum smtp_arg_err e;
	char *line;

	if (t->mail_line) {
		refuse(s, "MAIL", "503 5.5.1 Nested MAIL command");
		return;
	}
	if (cfg->auth == CONF_AUTH_REQUIRED && !s->account) {
		refuse(s, "MAIL", "530 5.7.0 Authentication required");
		return;
	}
	if (disk_nearly_full(s)) {
		refuse(s, "MAIL", "452 4.3.1 Insufficient system storage, try again later");
		return;
	}
	line = xstrdup(arg);
	e = smtp_parse_mail(line, &t->mail);
	if (e != SMTP_ARG_OK) {
		free(line);
		memset(&t->mail, 0, sizeof(t->mail));
		refuse(s, "MAIL", arg_err_reply(e, 1));
		return;
	}
	if (t->mail.has_size && t->mail.size > cfg->max_message_size) {
		free(line);
		memset(&t->mail, 0, sizeof(t->mail));
		refuse(s, "MAIL", "552 5.3.4 Message size exceeds fixed maximum message size");
		return;
	}
	t->mail_line = line;
	if (s->account && *t->mail.addr) {
		/* Sender binding: ask the store off the loop thread. */
		struct domain_job *j = xcalloc(1, sizeof(*j));
		j->s = s;
		j->store = s->sd->deps->store;
		j->account = xstrdup(s->account);
		j->domain = xstrdup(smtp_address_domain(t->mail.addr));
		hold(s);
		set_state(s, S_WAIT);
		work_submit(s->sd->deps->work, domain_job_run, domain_job_done, j);
		return;
	}
	mail_accept(s);
}

/* ---------- RCPT ---------- */

static int relay_allowed(const struct session *s)
{
	return s->account != NULL || s->trusted;
}

static void cmd_rcpt(struct session *s, char *arg)
{
	struct txn *t = &s->txn;
	struct smtp_rcpt_args ra;
	enum smtp_arg_err e;
	struct rcpt *r;

	if (!t->mail_line) {
		refuse(s, "RCPT", "503 5.5.1 Need MAIL command");
		return;
	}
	e = smtp_parse_rcpt(arg, t->mail.smtputf8, &ra);
	if (e != SMTP_ARG_OK) {
		refuse(s, "RCPT", arg_err_reply(e, 0));
		return;
	}
	if (s->l->cfg->auth == CONF_AUTH_REQUIRED && !s->account) {
		refuse(s, "RCPT", "530 5.7.0 Authentication required");
		return;
	}
	if (!relay_allowed(s)) {
		log_info("session=%s event=reject cmd=RCPT ip=%s to=%s reply=%s", s->id, s->ip,
		         log_q(ra.addr), log_q("554 5.7.1 Relay access denied"));
		reply(s, "554 5.7.1 Relay access denied");
		return;
	}
	if (t->n_rcpts >= s->l->cfg->max_recipients) {
		refuse(s, "RCPT", "452 4.5.3 Too many recipients");
		return;
	}
	if (t->n_rcpts == t->cap_rcpts) {
		t->cap_rcpts = t->cap_rcpts ? t->cap_rcpts * 2 : 4;
		t->rcpts = xrealloc(t->rcpts, t->cap_rcpts * sizeof(*t->rcpts));
	}
	r = &t->rcpts[t->n_rcpts++];
	memset(r, 0, sizeof(*r));
	r->addr = xstrdup(ra.addr);
	r->orcpt = ra.orcpt ? xstrdup(ra.orcpt) : NULL;
	r->notify = ra.notify;
	reply(s, "250 2.1.5 Ok");
}

/* ---------- DATA / BDAT ---------- */

static const char *with_protocol(const struct session *s)
{
	static const char *names[8] = {"SMTP", "ESMTP",  "SMTP", "ESMTPS",
	                               "SMTP", "ESMTPA", "SMTP", "ESMTPSA"};
	return names[(s->esmtp ? 1 : 0) | (s->tls_active ? 2 : 0) | (s->account ? 4 : 0)];
}

/* Opens the spool file and writes the Received header. */
static int data_begin(struct session *s, enum smtp_data_mode mode)
{
	const struct conf *c = s->sd->deps->conf;
	struct txn *t = &s->txn;
	char date[64], *err = NULL;
	struct buf b;

	t->msg = spool_msg_new(s->sd->deps->spool, &err);
	if (!t->msg) {
		log_err("session=%s event=spool_error error=%s", s->id, log_q(err));
		free(err);
		return -1;
	}
	smtp_data_init(&t->dec, mode);
	t->data_started = 1;
	{
		struct timeval tv = {(time_t)s->l->cfg->data_timeout, 0};
		evtimer_add(s->ev_data, &tv);
	}
	rfc5322_date(date, sizeof(date), (int64_t)(clock_now_ms() / 1000));
	buf_init(&b);
	buf_printf(&b, "Received: from %s (%s [%s])\r\n\tby %s (Posthorn) with %s id %s",
	           s->helo ? s->helo : "unknown", s->ip, s->ip, c->hostname, with_protocol(s),
	           spool_msg_id(t->msg));
	if (t->n_rcpts == 1)
		buf_printf(&b, "\r\n\tfor <%s>", t->rcpts[0].addr);
	buf_printf(&b, "; %s\r\n", date);
	spool_msg_write(t->msg, b.data, b.len);
	buf_free(&b);
	return 0;
}

/* The Message-ID and Date lines the message lacks. */
static void missing_headers(struct session *s, struct buf *b)
{
	const struct conf *c = s->sd->deps->conf;
	struct txn *t = &s->txn;
	char date[64];

	if (!t->dec.has_date) {
		rfc5322_date(date, sizeof(date), (int64_t)(clock_now_ms() / 1000));
		buf_printf(b, "Date: %s\r\n", date);
	}
	if (!t->dec.has_message_id)
		buf_printf(b, "Message-ID: <%s@%s>\r\n", spool_msg_id(t->msg), c->hostname);
}

static void store_chunk(struct session *s, const char *p, size_t n)
{
	struct txn *t = &s->txn;

	if (t->too_big || t->bdat_failed)
		return;
	/* + the Received header already written: compare what the client sent */
	if (t->dec.out_bytes > s->l->cfg->max_message_size) {
		t->too_big = 1;
		return;
	}
	spool_msg_write(t->msg, p, n);
}

/* Write decoded output, adding the missing headers where the header block
 * ends (the decoder tells the offset). A CR at the start of a header line
 * may be the first half of the empty line that ends the headers, and the
 * missing headers go before it: so such a CR at the very end of a chunk
 * is held back until the next chunk shows what follows it. */
static void data_output(struct session *s, const char *out, size_t n)
{
	static char joined[DATA_CHUNK + 1];
	struct txn *t = &s->txn;
	uint64_t start = t->dec.out_bytes - n;

	if (t->held_cr) {
		joined[0] = '\r';
		memcpy(joined + 1, out, n);
		out = joined;
		n++;
		start--;
		t->held_cr = 0;
	}
	if (n > 0 && !t->headers_added && smtp_data_cr_pending(&t->dec)) {
		n--;
		t->held_cr = 1;
	}
	if (!t->headers_added && t->dec.headers_end >= 0 && (uint64_t)t->dec.headers_end >= start &&
	    (uint64_t)t->dec.headers_end <= start + n) {
		size_t split = (size_t)((uint64_t)t->dec.headers_end - start);
		struct buf b;

		buf_init(&b);
		missing_headers(s, &b);
		store_chunk(s, out, split);
		store_chunk(s, b.data, b.len);
		store_chunk(s, out + split, n - split);
		buf_free(&b);
		t->headers_added = 1;
		return;
	}
	store_chunk(s, out, n);
}

static void notify_queued(struct session *s, const char *id)
{
	const struct smtpd_deps *d = s->sd->deps;
	const char **addrs;
	size_t i;

	if (!d->queued)
		return;
	addrs = xcalloc(s->txn.n_rcpts + 1, sizeof(*addrs));
	for (i = 0; i < s->txn.n_rcpts; i++)
		addrs[i] = s->txn.rcpts[i].addr;
	d->queued(d->queued_arg, id, s->account ? s->account : "default", addrs, s->txn.n_rcpts);
	free(addrs);
}

static void on_committed(void *arg, int ok, const char *id)
{
	struct session *s = arg;

	/* Durable is durable, even if the client has gone meanwhile: the
	 * message must reach the scheduler. (s is freed only from a deferred
	 * event, so it is still valid here.) */
	if (ok)
		notify_queued(s, id);
	if (release(s))
		return;
	if (ok) {
		s->n_msgs++;
		reply(s, "250 2.0.0 Ok: queued as %s", id);
	} else {
		reply(s, "451 4.3.0 Error: queue file write error, try again later");
	}
	txn_reset(s);
	resume(s, S_CMD);
}

/* The message is complete: check it, commit it, answer after commit. */
static void data_finish(struct session *s)
{
	struct txn *t = &s->txn;
	struct envelope env;
	const char *why = NULL;
	size_t i;

	if (t->too_big)
		why = "552 5.3.4 Message size exceeds fixed maximum message size";
	else if (t->dec.bad_eol)
		why = "550 5.6.11 Bare CR or LF in message content, only CRLF line endings are "
		      "allowed";
	else if (t->bdat_failed)
		why = "554 5.5.0 Message discarded after an earlier BDAT failure";
	if (why) {
		refuse(s, t->dec.mode == SMTP_DATA_DOT ? "DATA" : "BDAT", why);
		txn_reset(s);
		set_state(s, S_CMD);
		return;
	}
	if (t->held_cr) {
		store_chunk(s, "\r", 1);
		t->held_cr = 0;
	}
	if (!t->headers_added) {
		struct buf b;
		buf_init(&b);
		if (!t->dec.at_line_start)
			buf_puts(&b, "\r\n");
		missing_headers(s, &b);
		spool_msg_write(t->msg, b.data, b.len);
		buf_free(&b);
	}
	memset(&env, 0, sizeof(env));
	env.mail_from = t->mail.addr;
	env.account = s->account ? s->account : "default";
	env.client_ip = s->ip;
	env.helo = s->helo ? s->helo : "";
	env.created = (int64_t)(clock_now_ms() / 1000);
	env.size = spool_msg_size(t->msg);
	env.body = t->mail.body == 2 ? BODY_8BITMIME : BODY_7BIT;
	env.smtputf8 = t->mail.smtputf8;
	env.ret = t->mail.ret == 1 ? DSN_RET_FULL : t->mail.ret == 2 ? DSN_RET_HDRS : DSN_RET_UNSET;
	env.envid = t->mail.envid;
	env.rcpts = t->rcpts;
	env.n_rcpts = t->n_rcpts;
	log_info("queue=%s session=%s event=queued from=<%s> size=%llu rcpts=%zu account=%s",
	         spool_msg_id(t->msg), s->id, log_q(env.mail_from), (unsigned long long)env.size,
	         env.n_rcpts, log_q(env.account));
	for (i = 0; i < t->n_rcpts; i++)
		s->n_rcpts++;
	hold(s);
	set_state(s, S_WAIT);
	spool_msg_commit(t->msg, &env, on_committed, s);
	t->msg = NULL; /* the spool owns it now */
}

static int data_precheck(struct session *s, const char *cmd)
{
	if (!s->txn.mail_line) {
		refuse(s, cmd, "503 5.5.1 Need MAIL command");
		return -1;
	}
	if (s->txn.n_rcpts == 0) {
		refuse(s, cmd, "554 5.5.1 No valid recipients");
		return -1;
	}
	return 0;
}

static void cmd_data(struct session *s, char *arg)
{
	if (s->txn.data_started) {
		refuse(s, "DATA", "503 5.5.1 DATA not allowed after BDAT");
		return;
	}
	if (*arg) {
		refuse(s, "DATA", "501 5.5.4 Syntax: DATA");
		return;
	}
	if (data_precheck(s, "DATA") < 0)
		return;
	if (data_begin(s, SMTP_DATA_DOT) < 0) {
		reply(s, "451 4.3.0 Error: queue file write error, try again later");
		return;
	}
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
	set_state(s, S_DATA);
}

static void cmd_bdat(struct session *s, char *arg)
{
	struct txn *t = &s->txn;
	uint64_t size;
	int last;

	if (smtp_parse_bdat(arg, &size, &last) < 0) {
		/* The chunk length is unknown: the stream cannot be resynchronised. */
		reply_and_close(s, "bdat_syntax",
		                "501 5.5.4 Syntax: BDAT size [LAST], closing connection");
		return;
	}
	t->bdat_left = size;
	t->bdat_last = last;
	if (!t->data_started && data_precheck(s, "BDAT") < 0) {
		/* the chunk is swallowed; only a real transaction is tainted */
		t->bdat_failed = t->mail_line != NULL;
	} else if (!t->data_started && data_begin(s, SMTP_DATA_RAW) < 0) {
		reply(s, "451 4.3.0 Error: queue file write error, try again later");
		t->bdat_failed = 1;
	}
	set_state(s, S_BDAT);
}

/* A refused BDAT still carries its chunk: read and drop it, so that its
 * bytes are never taken for commands. A size we cannot read ends the
 * session (the stream cannot be resynchronised). */
static void bdat_swallow(struct session *s, const char *arg)
{
	uint64_t size;
	int last;

	if (smtp_parse_bdat(arg, &size, &last) < 0) {
		reply_and_close(s, "bdat_syntax",
		                "501 5.5.4 Syntax: BDAT size [LAST], closing connection");
		return;
	}
	s->txn.bdat_left = size;
	s->txn.bdat_last = 0;
	set_state(s, S_BDAT);
}

static void bdat_chunk_done(struct session *s)
{
	struct txn *t = &s->txn;

	if (!t->data_started) {
		/* refused chunk: its reply was queued when BDAT was read */
		set_state(s, S_CMD);
		return;
	}
	if (t->bdat_last) {
		smtp_data_end(&t->dec); /* a CR at the very end is bare too */
		data_finish(s);
		return;
	}
	if (t->too_big) {
		refuse(s, "BDAT", "552 5.3.4 Message size exceeds fixed maximum message size");
		txn_reset(s);
	} else {
		reply(s, "250 2.0.0 %llu octets received", (unsigned long long)t->dec.out_bytes);
	}
	set_state(s, S_CMD);
}

/* Feed up to one chunk of input to the decoder. Returns 1 if input was
 * consumed and processing may go on. */
static int data_input(struct session *s, struct evbuffer *in)
{
	static char out[DATA_CHUNK];
	struct txn *t = &s->txn;
	size_t avail = evbuffer_get_length(in), n, used, out_len;
	const char *p;

	n = avail < DATA_CHUNK ? avail : DATA_CHUNK;
	if (s->state == S_BDAT && n > t->bdat_left)
		n = (size_t)t->bdat_left;
	if (n == 0 && !(s->state == S_BDAT && t->bdat_left == 0))
		return 0;
	p = n ? (const char *)evbuffer_pullup(in, (ev_ssize_t)n) : "";
	if (t->data_started) {
		used = smtp_data_feed(&t->dec, p, n, out, &out_len);
		data_output(s, out, out_len);
	} else {
		used = n; /* a refused BDAT chunk is read and dropped */
	}
	evbuffer_drain(in, used);
	if (s->state == S_DATA) {
		if (t->dec.done)
			data_finish(s);
		return 1;
	}
	t->bdat_left -= used;
	if (t->bdat_left == 0)
		bdat_chunk_done(s);
	return 1;
}

/* ---------- the rest ---------- */

static void cmd_rset(struct session *s, char *arg)
{
	txn_reset(s);
	reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(struct session *s, char *arg)
{
	reply(s, "250 2.0.0 Ok");
}

static void cmd_quit(struct session *s, char *arg)
{
	reply_and_close(s, "quit", "221 2.0.0 Bye");
}

static void cmd_vrfy(struct session *s, char *arg)
{
	reply(s, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_expn(struct session *s, char *arg)
{
	refuse(s, "EXPN", "502 5.5.1 EXPN not supported");
}

static void cmd_help(struct session *s, char *arg)
{
	reply(s, "214 2.0.0 See RFC 5321");
}

enum {
	F_NEEDS_HELO = 1, /* only after EHLO/HELO */
	F_NEEDS_EHLO = 2, /* an ESMTP extension: only after EHLO */
	F_TLS_FIRST = 4,  /* refused before STARTTLS on a starttls+auth=required listener */
};

struct cmd_def {
	enum smtp_verb verb;
	const char *name;
	unsigned flags;
	void (*fn)(struct session *s, char *arg);
};

static const struct cmd_def cmd_table[] = {
    {SMTP_VERB_EHLO, "EHLO", 0, cmd_ehlo_fn},
    {SMTP_VERB_HELO, "HELO", 0, cmd_helo_fn},
    {SMTP_VERB_STARTTLS, "STARTTLS", F_NEEDS_EHLO, cmd_starttls},
    {SMTP_VERB_AUTH, "AUTH", F_NEEDS_EHLO, cmd_auth},
    {SMTP_VERB_MAIL, "MAIL", F_NEEDS_HELO | F_TLS_FIRST, cmd_mail},
    {SMTP_VERB_RCPT, "RCPT", F_NEEDS_HELO | F_TLS_FIRST, cmd_rcpt},
    {SMTP_VERB_DATA, "DATA", F_NEEDS_HELO | F_TLS_FIRST, cmd_data},
    {SMTP_VERB_BDAT, "BDAT", F_NEEDS_EHLO | F_TLS_FIRST, cmd_bdat},
    {SMTP_VERB_RSET, "RSET", 0, cmd_rset},
    {SMTP_VERB_NOOP, "NOOP", 0, cmd_noop},
    {SMTP_VERB_QUIT, "QUIT", 0, cmd_quit},
    {SMTP_VERB_VRFY, "VRFY", 0, cmd_vrfy},
    {SMTP_VERB_EXPN, "EXPN", 0, cmd_expn},
    {SMTP_VERB_HELP, "HELP", 0, cmd_help},
};

static const struct cmd_def *cmd_find(enum smtp_verb v)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(cmd_table); i++)
		if (cmd_table[i].verb == v)
			return &cmd_table[i];
	return NULL;
}

/* Flags check; returns the refusal text or NULL. */
static const char *cmd_refusal(const struct session *s, const struct cmd_def *d)
{
	const struct conf_listener *cfg = s->l->cfg;

	if ((d->flags & F_NEEDS_EHLO) && !s->esmtp)
		return s->helo ? "502 5.5.1 Command requires EHLO" : "503 5.5.1 Send EHLO first";
	if ((d->flags & F_NEEDS_HELO) && !s->helo)
		return "503 5.5.1 Send HELO/EHLO first";
	if ((d->flags & F_TLS_FIRST) && cfg->tls == CONF_TLS_STARTTLS &&
	    cfg->auth == CONF_AUTH_REQUIRED && !s->tls_active)
		return "530 5.7.0 Must issue a STARTTLS command first";
	return NULL;
}

static void dispatch(struct session *s, char *line, size_t len)
{
	struct smtp_cmd cmd;
	const struct cmd_def *d;
	const char *why;

	s->n_cmds++;
	if (smtp_parse_cmd(line, len, &cmd) < 0) {
		refuse(s, "?", "500 5.5.2 Syntax error, command unrecognized");
		return;
	}
	d = cmd_find(cmd.verb);
	if (!d) {
		refuse(s, "?", "502 5.5.2 Error: command not recognized");
		return;
	}
	if ((why = cmd_refusal(s, d))) {
		refuse(s, d->name, why);
		if (d->verb == SMTP_VERB_BDAT)
			bdat_swallow(s, cmd.arg);
		return;
	}
	d->fn(s, cmd.arg);
}

/* One command-state line (or an AUTH continuation). Returns 0 if no
 * complete line is buffered yet. */
static int line_input(struct session *s, struct evbuffer *in)
{
	size_t avail = evbuffer_get_length(in), want, line_len, consumed;
	enum smtp_scan r;
	char *p, line[SMTP_LINE_MAX + 1];

	if (avail == 0)
		return 0;
	/* Scan at most a line's worth; a longer line is found to be too long. */
	want = avail < SMTP_LINE_MAX * 2 ? avail : SMTP_LINE_MAX * 2;
	p = (char *)evbuffer_pullup(in, (ev_ssize_t)want);
	r = smtp_scan_line(p, want, SMTP_LINE_MAX, &s->in_overlong, &line_len, &consumed);
	if (r == SMTP_SCAN_NEED) {
		/* while skipping an overlong line the scanner may drop bytes */
		evbuffer_drain(in, consumed);
		return consumed > 0;
	}
	if (r == SMTP_SCAN_TOO_LONG) {
		evbuffer_drain(in, consumed);
		refuse(s, "?", "500 5.5.2 Line too long");
		return consumed > 0;
	}
	memcpy(line, p, line_len);
	line[line_len] = '\0';
	evbuffer_drain(in, consumed);
	if (s->state == S_CMD)
		dispatch(s, line, line_len);
	else
		auth_continue(s, line);
	memset(line, 0, sizeof(line)); /* may hold credentials */
	return 1;
}

static void process_input(struct session *s)
{
	struct evbuffer *in;
	int budget = MAX_CMDS_BEFORE_YIELD, progress = 1;

	if (s->dead || !s->bev)
		return;
	in = bufferevent_get_input(s->bev);
	while (progress && budget-- > 0) {
		switch (s->state) {
		case S_DATA:
		case S_BDAT:
			progress = data_input(s, in);
			break;
		case S_CMD:
		case S_AUTH_PLAIN:
		case S_AUTH_USER:
		case S_AUTH_PASS:
			progress = line_input(s, in);
			break;
		default:
			progress = 0;
		}
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) > OUTPUT_HIGH_WATER) {
			/* The client is not reading its replies: wait for it. */
			bufferevent_disable(s->bev, EV_READ);
			return;
		}
		if (s->draining && s->state == S_CMD && !s->txn.mail_line && !s->dead) {
			/* back to idle (RSET, a refusal) during a drain: time to go */
			reply_and_close(s, "shutdown",
			                "421 4.3.2 Service shutting down, closing connection");
			return;
		}
	}
	if (progress && !s->dead && s->state != S_WAIT && s->state != S_CLOSING)
		event_active(s->ev_resume, EV_TIMEOUT, 0); /* more to do: yield, then go on */
}

/* ---------- bufferevent callbacks ---------- */

static void on_read(struct bufferevent *bev, void *arg)
{
	process_input(arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	if (s->state == S_CLOSING) {
		close_when_sent(s);
		return;
	}
	/* The output drained below the mark: reading may resume. */
	if (!s->dead && s->state != S_WAIT) {
		bufferevent_enable(s->bev, EV_READ);
		process_input(s);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		tls_established(s);
		return;
	}
	/* A write timeout means the client stopped reading: no reply can
	 * reach it, so it goes now (libevent has stopped the write side). */
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_WRITING)) {
		session_kill(s, s->close_reason ? s->close_reason : "timeout");
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) && s->state == S_CLOSING)
		return; /* a read timeout racing the close: the last reply is on its way */
	if (what & BEV_EVENT_TIMEOUT) {
		log_info("session=%s event=timeout state=%s", s->id, state_names[s->state]);
		bufferevent_disable(s->bev, EV_READ);
		reply_and_close(s, "timeout", "421 4.4.2 Timeout exceeded, closing connection");
		/* If the peer is not reading either, the write timeout kills it. */
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		if (e) {
			char text[200];
			ERR_error_string_n(e, text, sizeof(text));
			log_info("session=%s event=tls_error error=%s", s->id, log_q(text));
		}
		session_kill(s, "error");
		return;
	}
	if (what & BEV_EVENT_EOF)
		session_kill(s, s->state == S_DATA || s->state == S_BDAT ? "eof_in_data" : "eof");
}

/* ---------- start / drain ---------- */

static void format_ip(const struct sockaddr *sa, char *ip, size_t n)
{
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, (socklen_t)n);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip,
		          (socklen_t)n);
	else
		snprintf(ip, n, "unknown");
}

static struct bufferevent *session_bev(struct session *s, int fd)
{
	struct event_base *base = s->sd->deps->base;
	int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;

	if (s->l->cfg->tls != CONF_TLS_IMPLICIT)
		return bufferevent_socket_new(base, fd, opts);
	if (!s->sd->deps->tls || !(s->ssl = tls_server_ssl_new(s->sd->deps->tls)))
		return NULL;
	return bufferevent_openssl_socket_new(base, fd, s->ssl, BUFFEREVENT_SSL_ACCEPTING, opts);
}

void session_start(struct listener *l, int fd, const struct sockaddr *sa, socklen_t len)
{
	struct session *s = xcalloc(1, sizeof(*s));
	struct smtpd *sd = l->sd;

	s->l = l;
	s->sd = sd;
	id_new(s->id);
	memcpy(&s->sa, sa, len);
	format_ip(sa, s->ip, sizeof(s->ip));
	s->trusted = conf_is_trusted(sd->deps->conf, sa);
	s->ev_free = event_new(sd->deps->base, -1, 0, on_free, s);
	s->ev_timer = evtimer_new(sd->deps->base, on_auth_fail_delay, s);
	s->ev_resume = event_new(sd->deps->base, -1, 0, on_resume, s);
	s->ev_handshake = evtimer_new(sd->deps->base, on_handshake_timeout, s);
	s->ev_flush = evtimer_new(sd->deps->base, on_flush_check, s);
	s->ev_data = evtimer_new(sd->deps->base, on_data_timeout, s);
	TAILQ_INSERT_TAIL(&sd->sessions, s, entry);
	sd->n_sessions++;
	s->state = S__COUNT; /* so set_state below always applies the timeouts */
	log_info("session=%s event=connect listener=%s ip=%s trusted=%d", s->id, l->cfg->name,
	         s->ip, s->trusted);
	{
		/* replies are small and must not wait for the client's delayed ACK */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	s->bev = session_bev(s, fd);
	if (!s->bev) {
		evutil_closesocket(fd);
		session_kill(s, "setup_failed");
		return;
	}
	bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, INPUT_HIGH_WATER);
	set_state(s, S_CMD);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	reply(s, "220 %s ESMTP", sd->deps->conf->hostname);
	if (l->cfg->tls == CONF_TLS_IMPLICIT) {
		s->tls_active = 0; /* becomes 1 at BEV_EVENT_CONNECTED */
		set_state(s, S_WAIT);
		s->resume_state = S_CMD;
		handshake_begin(s);
	}
}

static void session_drain_one(struct session *s)
{
	s->draining = 1;
	if (s->handshaking) {
		session_kill(s, "shutdown");
		return;
	}
	if (s->state == S_CMD && !s->txn.mail_line && !s->dead)
		reply_and_close(s, "shutdown",
		                "421 4.3.2 Service shutting down, closing connection");
}

void session_drain_all(struct smtpd *sd)
{
	struct session *s, *next;

	for (s = TAILQ_FIRST(&sd->sessions); s; s = next) {
		next = TAILQ_NEXT(s, entry);
		session_drain_one(s);
	}
}

void session_abort_receiving_all(struct smtpd *sd)
{
	struct session *s;

	TAILQ_FOREACH(s, &sd->sessions, entry)
	{
		if (s->txn.msg) {
			spool_msg_abort(s->txn.msg);
			s->txn.msg = NULL;
		}
	}
}

void session_destroy_all(struct smtpd *sd)
{
	struct session *s;

	/* At exit: work jobs and commits have finished (the pool and the spool
	 * were drained first), so nothing still holds a session. */
	while ((s = TAILQ_FIRST(&sd->sessions))) {
		s->pending = 0;
		s->close_reason = s->close_reason ? s->close_reason : "shutdown";
		on_free(-1, 0, s);
	}
}
