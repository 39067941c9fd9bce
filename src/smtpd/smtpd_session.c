/*
 * smtpd_session: one inbound SMTP session. Bytes come in through a
 * bufferevent (plain, STARTTLS filter, or implicit TLS); lines go to the
 * PURE parser, commands dispatch from a table, replies are queued in the
 * output buffer and leave when control returns to the loop (so pipelined
 * groups are answered in one write). This file owns the connection:
 * lifetime, I/O, STARTTLS, the command table and the small commands; MAIL
 * and RCPT, AUTH and DATA/BDAT live beside it (see smtpd_session.h).
 *
 * Whenever the session waits for something slow (a password check or a
 * sender-domain check in the work pool, the spool commit, the pause after
 * repeated AUTH failures), it holds itself, enters S_WAIT and reads no
 * further input; the callback releases and resumes it. The 250 after
 * DATA/BDAT LAST is written only after the spool reported the message
 * durable.
 *
 * Lifetime (enum life). Only session_hold(), session_release() and
 * session_kill() change it:
 *
 *   OPEN      --hold-->     HELD       a job, commit or timer will call back
 *   HELD      --release-->  OPEN       the callback runs on a live session
 *   OPEN      --kill-->     FREEING    ev_free is made active
 *   HELD      --kill-->     HELD_GONE  the connection is gone, I/O stops
 *   HELD_GONE --release-->  FREEING    the callback returns at once
 *   kill in HELD_GONE or FREEING changes nothing.
 *
 * At most one thing holds a session at a time: it reads nothing while it
 * waits. A session is freed only by on_free(), the deferred ev_free event,
 * so never inside one of its own callbacks (and by session_destroy_all()
 * at exit, when nothing holds it). A graceful close is a kill too, once
 * the last reply has left.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log/log.h"
#include "metrics/metrics.h"
#include "smtpd/smtpd_session.h"
#include "spool/spool.h"
#include "tls/tls.h"

#define INPUT_HIGH_WATER      (256 * 1024) /* stop reading while this much waits */
#define OUTPUT_HIGH_WATER     (256 * 1024)
#define MAX_CMDS_BEFORE_YIELD 200   /* fairness: other sessions get a turn */
#define CLOSE_LINGER_MS       10000 /* the last reply gets this long to leave */

/* S__COUNT names a session that has not entered its first state yet. */
static const char *const state_names[S__COUNT + 1] = {
    "cmd", "auth-plain", "auth-user", "auth-pass", "data", "bdat", "wait", "tls", "closing", "new"};
static const char *const life_names[L_FREEING + 1] = {"open", "held", "held-gone", "freeing"};

static void process_input(struct session *s);
static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

static int gone(const struct session *s)
{
	return s->life == L_HELD_GONE || s->life == L_FREEING;
}

/* 1 while the session may read input (not waiting, not closing). */
static int reading(const struct session *s)
{
	return !gone(s) && s->state != S_WAIT && s->state != S_TLS && s->state != S_CLOSING;
}

/* ---------- replies ---------- */

void session_replyf(struct session *s, const char *fmt, ...)
{
	struct evbuffer *out;
	va_list ap;

	if (gone(s) || s->state == S_CLOSING)
		return; /* after the last reply, nothing more */
	out = bufferevent_get_output(s->bev);
	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

void session_reply(struct session *s, enum smtpd_reply r)
{
	session_replyf(s, "%s", smtpd_reply_text(r));
}

void session_error(struct session *s)
{
	s->n_errors++;
}

void session_refuse_line(struct session *s, const char *cmd, const char *line)
{
	session_replyf(s, "%s", line);
	session_error(s);
	log_info("session=%s event=reject cmd=%s reply=%s", s->id, cmd, log_q(line));
}

void session_refuse(struct session *s, const char *cmd, enum smtpd_reply r)
{
	session_refuse_line(s, cmd, smtpd_reply_text(r));
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

/* Go once the last reply has really left; poll briefly while the layer
 * beneath the TLS filter still holds it (the write timeout bounds it). */
static void close_when_sent(struct session *s)
{
	struct timeval tv = {0, 5000};

	if (gone(s) || unsent(s) == 0) {
		session_kill(s, s->close_reason);
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

static void on_flush_check(evutil_socket_t fd, short what, void *arg)
{
	close_when_sent(arg);
}

void session_reply_close(struct session *s, const char *reason, enum smtpd_reply r)
{
	session_reply(s, r);
	s->close_reason = reason;
	session_set_state(s, S_CLOSING);
	close_when_sent(s);
}

/* ---------- state ---------- */

const char *session_state_name(enum state st)
{
	return state_names[st];
}

/* A session that has shown nothing yet: no trusted network, no AUTH, no
 * MAIL. Stress mode shortens its idle timeout. */
static int shown_nothing(const struct session *s)
{
	return !s->trusted && !s->account && !s->sent_mail;
}

static int stress_applies(const struct session *s)
{
	return s->l->stressed && shown_nothing(s);
}

/* The idle timeout between commands, in seconds. */
static uint64_t idle_timeout(const struct session *s)
{
	uint64_t t = s->l->cfg->timeout;

	return stress_applies(s) && t > SMTPD_STRESS_TIMEOUT_S ? SMTPD_STRESS_TIMEOUT_S : t;
}

void session_timeouts_update(struct session *s)
{
	struct timeval tv = {0, 0};

	if (gone(s) || !s->bev)
		return;
	/* DATA and BDAT run under data_timeout, the rest under timeout. */
	tv.tv_sec = (time_t)(s->state == S_DATA || s->state == S_BDAT ? s->l->cfg->data_timeout
	                                                              : idle_timeout(s));
	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

void session_set_state(struct session *s, enum state st)
{
	if (s->state == st)
		return;
	log_debug("session=%s event=state from=%s to=%s", s->id, state_names[s->state],
	          state_names[st]);
	s->state = st;
	session_timeouts_update(s);
}

void session_stress_began(struct listener *l)
{
	struct session *s;

	TAILQ_FOREACH(s, &l->sd->sessions, entry)
	{
		if (s->l == l && shown_nothing(s) && s->state != S_CLOSING)
			session_timeouts_update(s);
	}
}

void session_txn_reset(struct session *s)
{
	struct txn *t = &s->txn;
	size_t i;

	if (s->ev_data)
		evtimer_del(s->ev_data);
	smtpd_mail_txn_end(s);
	if (t->msg)
		spool_msg_abort(t->msg);
	smtpd_sign_free(t->sign);
	for (i = 0; i < t->n_rcpts; i++) {
		free(t->rcpts[i].addr);
		free(t->rcpts[i].orcpt);
	}
	free(t->rcpts);
	free(t->mail_line);
	memset(t, 0, sizeof(*t));
}

/* ---------- lifetime ---------- */

static void life_set(struct session *s, enum life to)
{
	log_debug("session=%s event=life from=%s to=%s", s->id, life_names[s->life],
	          life_names[to]);
	s->life = to;
	if (to == L_FREEING)
		event_active(s->ev_free, EV_TIMEOUT, 0);
}

static void session_free(struct session *s)
{
	log_info("session=%s event=disconnect ip=%s helo=%s reason=%s msgs=%llu rcpts=%llu "
	         "cmds=%llu",
	         s->id, s->ip, log_q(s->helo), s->close_reason ? s->close_reason : "close",
	         (unsigned long long)s->n_msgs, (unsigned long long)s->n_rcpts,
	         (unsigned long long)s->n_cmds);
	session_txn_reset(s);
	TAILQ_REMOVE(&s->sd->sessions, s, entry);
	s->sd->n_sessions--;
	if (s->bev)
		bufferevent_free(s->bev); /* frees the SSL too (BEV_OPT_CLOSE_ON_FREE) */
	event_free(s->ev_free);
	event_free(s->ev_auth_delay);
	event_free(s->ev_resume);
	event_free(s->ev_handshake);
	event_free(s->ev_flush);
	event_free(s->ev_data);
	smtpd_session_gone(s->l, s->trusted, &s->addr_key);
	free(s->helo);
	free(s->account);
	free(s->auth_user);
	free(s);
}

static void on_free(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	assert(s->life == L_FREEING);
	session_free(s);
}

void session_hold(struct session *s)
{
	assert(s->life == L_OPEN); /* one wait at a time */
	life_set(s, L_HELD);
}

int session_release(struct session *s)
{
	assert(s->life == L_HELD || s->life == L_HELD_GONE);
	life_set(s, s->life == L_HELD ? L_OPEN : L_FREEING);
	return gone(s);
}

void session_kill(struct session *s, const char *reason)
{
	if (!s->close_reason)
		s->close_reason = reason;
	if (gone(s))
		return;
	if (s->bev)
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	life_set(s, s->life == L_HELD ? L_HELD_GONE : L_FREEING);
}

/* ---------- waiting ---------- */

/* Resume reading after a wait, from the loop (not from inside the
 * callback that ended the wait, which may be deep in another stack). */
void session_resume(struct session *s, enum state st)
{
	if (s->state == S_CLOSING)
		return; /* timed out or drained while waiting */
	session_set_state(s, st);
	if (s->sd->draining && st == S_CMD && !s->txn.mail_line) {
		session_reply_close(s, "shutdown", R_SHUTDOWN);
		return;
	}
	event_active(s->ev_resume, EV_TIMEOUT, 0);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	if (reading(s)) {
		bufferevent_enable(s->bev, EV_READ);
		process_input(s);
	}
}

/* ---------- STARTTLS ---------- */

static int starttls_offered(const struct session *s)
{
	return !s->tls_active && s->sd->deps->tls && s->l->cfg->tls == CONF_TLS_STARTTLS;
}

/* The handshake runs in S_TLS under its own deadline. */
static void handshake_begin(struct session *s)
{
	struct timeval tv = {(time_t)idle_timeout(s), 0};

	session_set_state(s, S_TLS);
	evtimer_add(s->ev_handshake, &tv);
}

static void on_handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	log_info("session=%s event=tls_timeout ip=%s", s->id, s->ip);
	metrics_inc_l2(M_TLS_HANDSHAKES, MD_INBOUND, MRES_FAILED);
	session_kill(s, "tls_timeout");
}

static void tls_established(struct session *s)
{
	evtimer_del(s->ev_handshake);
	s->tls_active = 1;
	metrics_inc_l2(M_TLS_HANDSHAKES, MD_INBOUND, MRES_OK);
	log_info("session=%s event=tls version=%s cipher=%s", s->id, tls_version(s->ssl),
	         tls_cipher(s->ssl));
	if (s->state == S_TLS)
		session_resume(s, S_CMD);
}

/* Puts the TLS filter on the connection; RFC 3207 4.2: everything learned
 * before TLS is forgotten. */
static void tls_switch(struct session *s, struct bufferevent *tls_bev, SSL *ssl)
{
	s->bev = tls_bev;
	s->ssl = ssl;
	session_txn_reset(s);
	free(s->helo);
	s->helo = NULL;
	s->esmtp = 0;
	bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, INPUT_HIGH_WATER);
	handshake_begin(s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static void cmd_starttls(struct session *s, char *arg)
{
	struct bufferevent *tls_bev;
	SSL *ssl;

	if (!starttls_offered(s)) {
		session_refuse(s, "STARTTLS", s->tls_active ? R_TLS_ACTIVE : R_STARTTLS_NA);
		return;
	}
	if (*arg) {
		session_refuse(s, "STARTTLS", R_STARTTLS_SYNTAX);
		return;
	}
	if (!(ssl = tls_server_ssl_new(s->sd->deps->tls))) {
		session_reply(s, R_TLS_TEMP);
		return;
	}
	session_reply(s, R_TLS_GO);
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
	tls_switch(s, tls_bev, ssl);
}

/* ---------- EHLO / HELO and the small commands ---------- */

static void ehlo_keywords(struct session *s)
{
	session_replyf(s, "250-%s", s->sd->deps->conf->hostname);
	session_replyf(s, "250-PIPELINING");
	session_replyf(s, "250-SIZE %llu", (unsigned long long)s->l->cfg->max_message_size);
	session_replyf(s, "250-8BITMIME");
	session_replyf(s, "250-SMTPUTF8");
	session_replyf(s, "250-ENHANCEDSTATUSCODES");
	session_replyf(s, "250-CHUNKING");
	if (starttls_offered(s))
		session_replyf(s, "250-STARTTLS");
	if (s->tls_active) /* RFC 8689 3: only once TLS is active */
		session_replyf(s, "250-REQUIRETLS");
	if (smtpd_auth_allowed(s) && !s->account)
		session_replyf(s, "250-AUTH PLAIN LOGIN");
	session_replyf(s, "250 DSN");
}

static void cmd_helo(struct session *s, char *arg, int esmtp)
{
	arg = str_trim(arg);
	if (!*arg || strchr(arg, ' ')) {
		session_refuse(s, esmtp ? "EHLO" : "HELO", R_HELO_SYNTAX);
		return;
	}
	session_txn_reset(s);
	free(s->helo);
	s->helo = xstrdup(arg);
	s->esmtp = esmtp;
	if (esmtp)
		ehlo_keywords(s);
	else
		session_replyf(s, "250 %s", s->sd->deps->conf->hostname);
}

static void cmd_ehlo(struct session *s, char *arg)
{
	cmd_helo(s, arg, 1);
}

static void cmd_helo_only(struct session *s, char *arg)
{
	cmd_helo(s, arg, 0);
}

static void cmd_rset(struct session *s, char *arg)
{
	session_txn_reset(s);
	session_reply(s, R_OK);
}

static void cmd_noop(struct session *s, char *arg)
{
	session_reply(s, R_OK);
}

static void cmd_quit(struct session *s, char *arg)
{
	session_reply_close(s, "quit", R_BYE);
}

static void cmd_vrfy(struct session *s, char *arg)
{
	session_reply(s, R_VRFY);
}

static void cmd_expn(struct session *s, char *arg)
{
	session_refuse(s, "EXPN", R_EXPN);
}

static void cmd_help(struct session *s, char *arg)
{
	session_reply(s, R_HELP);
}

/* ---------- the command table ---------- */

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
    {SMTP_VERB_EHLO, "EHLO", 0, cmd_ehlo},
    {SMTP_VERB_HELO, "HELO", 0, cmd_helo_only},
    {SMTP_VERB_STARTTLS, "STARTTLS", F_NEEDS_EHLO, cmd_starttls},
    {SMTP_VERB_AUTH, "AUTH", F_NEEDS_EHLO, smtpd_cmd_auth},
    {SMTP_VERB_MAIL, "MAIL", F_NEEDS_HELO | F_TLS_FIRST, smtpd_cmd_mail},
    {SMTP_VERB_RCPT, "RCPT", F_NEEDS_HELO | F_TLS_FIRST, smtpd_cmd_rcpt},
    {SMTP_VERB_DATA, "DATA", F_NEEDS_HELO | F_TLS_FIRST, smtpd_cmd_data},
    {SMTP_VERB_BDAT, "BDAT", F_NEEDS_EHLO | F_TLS_FIRST, smtpd_cmd_bdat},
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

/* The flags check: 1 (and the refusal in *why) if d may not run now. */
static int cmd_refused(const struct session *s, const struct cmd_def *d, enum smtpd_reply *why)
{
	const struct conf_listener *cfg = s->l->cfg;

	if ((d->flags & F_NEEDS_EHLO) && !s->esmtp)
		*why = s->helo ? R_NEEDS_EHLO : R_EHLO_FIRST;
	else if ((d->flags & F_NEEDS_HELO) && !s->helo)
		*why = R_HELO_FIRST;
	else if ((d->flags & F_TLS_FIRST) && cfg->tls == CONF_TLS_STARTTLS &&
	         cfg->auth == CONF_AUTH_REQUIRED && !s->tls_active)
		*why = R_STARTTLS_FIRST;
	else
		return 0;
	return 1;
}

static void dispatch(struct session *s, char *line, size_t len)
{
	struct smtp_cmd cmd;
	const struct cmd_def *d;
	enum smtpd_reply why;

	s->n_cmds++;
	if (smtp_parse_cmd(line, len, &cmd) < 0) {
		session_refuse(s, "?", R_SYNTAX);
		return;
	}
	d = cmd_find(cmd.verb);
	if (!d) {
		session_refuse(s, "?", R_UNKNOWN_CMD);
		return;
	}
	if (cmd_refused(s, d, &why)) {
		session_refuse(s, d->name, why);
		if (d->verb == SMTP_VERB_BDAT)
			smtpd_bdat_swallow(s, cmd.arg);
		return;
	}
	d->fn(s, cmd.arg);
}

/* ---------- input ---------- */

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
		session_refuse(s, "?", R_LINE_TOO_LONG);
		return consumed > 0;
	}
	memcpy(line, p, line_len);
	line[line_len] = '\0';
	evbuffer_drain(in, consumed);
	if (s->state == S_CMD)
		dispatch(s, line, line_len);
	else
		smtpd_auth_continue(s, line);
	explicit_bzero(line, sizeof(line)); /* may hold credentials */
	return 1;
}

/* One step of input in the current state; 1 if it made progress. */
static int input_step(struct session *s, struct evbuffer *in)
{
	switch (s->state) {
	case S_DATA:
	case S_BDAT:
		return smtpd_data_input(s, in);
	case S_CMD:
	case S_AUTH_PLAIN:
	case S_AUTH_USER:
	case S_AUTH_PASS:
		return line_input(s, in);
	default:
		return 0;
	}
}

/* max_errors: a session that made that many rejected commands is told so
 * and closed, once it is back between commands. 1 when it is closing. */
static int error_limit(struct session *s)
{
	uint64_t max = s->l->cfg->max_errors;

	if (s->n_errors < max || s->state != S_CMD || gone(s))
		return 0;
	log_info("session=%s event=error_limit ip=%s errors=%u limit=%llu", s->id, s->ip,
	         s->n_errors, (unsigned long long)max);
	session_reply_close(s, "error_limit", R_TOO_MANY_ERRORS);
	return 1;
}

static void process_input(struct session *s)
{
	struct evbuffer *in;
	int budget = MAX_CMDS_BEFORE_YIELD, progress = 1;

	if (gone(s) || !s->bev || error_limit(s))
		return;
	in = bufferevent_get_input(s->bev);
	while (progress && budget-- > 0) {
		progress = input_step(s, in);
		if (error_limit(s))
			return;
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) > OUTPUT_HIGH_WATER) {
			/* The client is not reading its replies: wait for it. */
			bufferevent_disable(s->bev, EV_READ);
			return;
		}
		if (s->sd->draining && s->state == S_CMD && !s->txn.mail_line && !gone(s)) {
			/* back to idle (RSET, a refusal) during a drain: time to go */
			session_reply_close(s, "shutdown", R_SHUTDOWN);
			return;
		}
	}
	if (progress && reading(s))
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
	if (reading(s)) {
		bufferevent_enable(s->bev, EV_READ);
		process_input(s);
	}
}

static void log_tls_error(struct session *s, struct bufferevent *bev)
{
	unsigned long e = bufferevent_get_openssl_error(bev);
	char text[200];

	if (!e)
		return;
	ERR_error_string_n(e, text, sizeof(text));
	log_info("session=%s event=tls_error error=%s", s->id, log_q(text));
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
	} else if ((what & BEV_EVENT_TIMEOUT) && s->state == S_CLOSING) {
		/* a read timeout racing the close: the last reply is on its way */
	} else if (what & BEV_EVENT_TIMEOUT) {
		log_info("session=%s event=timeout state=%s", s->id, state_names[s->state]);
		bufferevent_disable(s->bev, EV_READ);
		/* If the peer is not reading either, the write timeout kills it. */
		session_reply_close(s, "timeout", R_TIMEOUT);
	} else if (what & BEV_EVENT_ERROR) {
		if (s->state == S_TLS)
			metrics_inc_l2(M_TLS_HANDSHAKES, MD_INBOUND, MRES_FAILED);
		log_tls_error(s, bev);
		session_kill(s, "error");
	} else if (what & BEV_EVENT_EOF) {
		session_kill(s, s->state == S_DATA || s->state == S_BDAT ? "eof_in_data" : "eof");
	}
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

static struct session *session_new(struct listener *l, const struct client *c)
{
	struct session *s = xcalloc(1, sizeof(*s));
	struct event_base *base = l->sd->deps->base;

	s->l = l;
	s->sd = l->sd;
	id_new(s->id);
	memcpy(&s->sa, c->sa, c->len);
	format_ip(c->sa, s->ip, sizeof(s->ip));
	s->trusted = c->trusted;
	s->addr_key = c->key;
	s->life = L_OPEN;
	s->state = S__COUNT; /* so the first set_state always applies the timeouts */
	s->ev_free = event_new(base, -1, 0, on_free, s);
	s->ev_auth_delay = evtimer_new(base, smtpd_auth_on_delay, s);
	s->ev_resume = event_new(base, -1, 0, on_resume, s);
	s->ev_handshake = evtimer_new(base, on_handshake_timeout, s);
	s->ev_flush = evtimer_new(base, on_flush_check, s);
	s->ev_data = evtimer_new(base, smtpd_data_on_timeout, s);
	TAILQ_INSERT_TAIL(&s->sd->sessions, s, entry);
	s->sd->n_sessions++;
	return s;
}

void session_start(struct listener *l, int fd, const struct client *c)
{
	struct session *s = session_new(l, c);
	int one = 1;

	log_info("session=%s event=connect listener=%s ip=%s trusted=%d", s->id, l->cfg->name,
	         s->ip, s->trusted);
	metrics_inc_l(M_SMTP_SESSIONS, MD_INBOUND);
	/* replies are small and must not wait for the client's delayed ACK */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->bev = session_bev(s, fd);
	if (!s->bev) {
		evutil_closesocket(fd);
		session_kill(s, "setup_failed");
		return;
	}
	bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, INPUT_HIGH_WATER);
	session_set_state(s, S_CMD);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	session_replyf(s, "220 %s ESMTP", s->sd->deps->conf->hostname);
	if (l->cfg->tls == CONF_TLS_IMPLICIT)
		handshake_begin(s); /* tls_active becomes 1 at BEV_EVENT_CONNECTED */
}

static void session_drain_one(struct session *s)
{
	if (s->state == S_TLS) {
		session_kill(s, "shutdown");
		return;
	}
	if (s->state == S_CMD && !s->txn.mail_line && !gone(s))
		session_reply_close(s, "shutdown", R_SHUTDOWN);
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
		s->close_reason = s->close_reason ? s->close_reason : "shutdown";
		session_free(s);
	}
}
