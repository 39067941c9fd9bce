/*
 * smtpd_auth: AUTH PLAIN and LOGIN (RFC 4954, RFC 4616). The responses are
 * decoded by the PURE sasl_*_decode() in smtp_parse.c; the password check
 * (argon2id in the store) runs off the loop in the AUTH queue: a pool of
 * its own (half the CPUs, 1 to 8 threads), never the work pool that moves
 * mail, so a flood of guesses cannot delay sender checks or delivery-state
 * writes. The queue has two bounded lanes, and smtpd_auth_guard decides
 * per client address (IPv6: /64) which lane a check waits in and how many
 * may be in flight: over a bound, 454 4.7.0 and a log line, and the
 * client may try again.
 *
 * Zero-length responses (RFC 4954 4): an empty line is a valid response
 * that decodes to nothing, and "=" as the AUTH command's initial response
 * means a present but empty one. An empty LOGIN user name or password is
 * then simply wrong credentials (535); an empty PLAIN message cannot be
 * decoded (501).
 *
 * A failed check answers 535 and is logged with the client address and
 * the listener for fail2ban. After AUTH_MAX_FAILURES the session waits
 * AUTH_FAIL_DELAY_S (holding itself, reading nothing), then says 421 and
 * closes. Credentials never reach a log line and are wiped after use.
 */
#include <event2/bufferevent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>

#include "log/log.h"
#include "smtpd/smtpd_session.h"
#include "store/store.h"
#include "work/work.h"

#define AUTH_MAX_FAILURES 3
#define AUTH_FAIL_DELAY_S 2
#define AUTH_FIELD_MAX    256 /* user name and password, with the NUL */
/* Checks that may wait in each lane of the AUTH queue (clean, suspect):
 * at about 0.1 s a check, a full clean lane is a few seconds of work. */
#define AUTH_LANE_CLEAN_MAX   32
#define AUTH_LANE_SUSPECT_MAX 32
#define AUTH_GUARD_MAX        50000 /* addresses remembered (about 3 MB) */

struct auth_job {
	struct session *s;
	struct store *store;
	struct smtpd_auth_ticket ticket;
	char user[AUTH_FIELD_MAX];
	char pass[AUTH_FIELD_MAX];
	int result;
};

void smtpd_auth_init(struct smtpd *sd)
{
	smtpd_auth_guard_init(&sd->auth_guard, AUTH_GUARD_MAX);
}

void smtpd_auth_free(struct smtpd *sd)
{
	if (sd->auth_pool)
		work_pool_free(sd->auth_pool);
	sd->auth_pool = NULL;
	smtpd_auth_guard_fini(&sd->auth_guard);
}

/* The AUTH queue, made at the first check. */
static struct work_pool *auth_pool(struct smtpd *sd)
{
	static const size_t lanes[2] = {AUTH_LANE_CLEAN_MAX, AUTH_LANE_SUSPECT_MAX};
	int cpus = get_nprocs(), threads = cpus >= 4 ? cpus / 2 : 1;

	if (!sd->auth_pool)
		sd->auth_pool =
		    work_pool_new_lanes(sd->deps->base, threads > 8 ? 8 : threads, 2, lanes);
	return sd->auth_pool;
}

int smtpd_auth_allowed(const struct session *s)
{
	const struct conf_listener *cfg = s->l->cfg;

	if (cfg->auth == CONF_AUTH_OFF)
		return 0;
	return s->tls_active || (cfg->tls == CONF_TLS_NONE && s->trusted);
}

static void auth_job_run(void *arg)
{
	struct auth_job *j = arg;

	j->result = store_user_verify(j->store, j->user, j->pass);
}

void smtpd_auth_on_delay(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	if (session_release(s))
		return;
	session_reply_close(s, "auth_failures", R_AUTH_TOO_MANY);
}

/* log_q() leaves a plain token bare; this line always quotes the user. */
static const char *quoted_user(const char *user, char *buf, size_t cap)
{
	const char *q = log_q(user);

	if (*q == '"')
		return q;
	snprintf(buf, cap, "\"%s\"", q);
	return buf;
}

/* A failed AUTH: 535, and after AUTH_MAX_FAILURES a delay, then 421 and
 * close. Returns 1 when the session is now waiting for that delay. */
static int auth_failed(struct session *s, const char *user)
{
	struct timeval tv = {AUTH_FAIL_DELAY_S, 0};
	char ubuf[AUTH_FIELD_MAX + 3];

	s->auth_failures++;
	session_error(s);
	/* The form a fail2ban filter matches: keep it stable. */
	log_info("session=%s event=auth result=fail client=%s listener=%s user=%s failures=%d",
	         s->id, s->ip, log_q(s->l->cfg->name), quoted_user(user, ubuf, sizeof(ubuf)),
	         s->auth_failures);
	session_reply(s, R_AUTH_INVALID);
	if (s->auth_failures < AUTH_MAX_FAILURES)
		return 0;
	/* Slow down a guesser, then hang up. */
	session_hold(s);
	session_set_state(s, S_WAIT);
	bufferevent_disable(s->bev, EV_READ);
	evtimer_add(s->ev_auth_delay, &tv);
	return 1;
}

static void auth_job_done(void *arg)
{
	struct auth_job *j = arg;
	struct session *s = j->s;
	int waiting = 0;

	explicit_bzero(j->pass, sizeof(j->pass));
	smtpd_auth_guard_end(&s->sd->auth_guard, &j->ticket, j->result == 0, j->result == 1,
	                     clock_mono_ms());
	if (session_release(s)) {
		free(j);
		return;
	}
	if (j->result == 1) {
		s->account = xstrdup(j->user);
		log_info("session=%s event=auth result=ok user=%s", s->id, log_q(j->user));
		session_reply(s, R_AUTH_OK);
	} else if (j->result < 0) {
		log_err("session=%s event=auth result=error user=%s", s->id, log_q(j->user));
		session_reply(s, R_AUTH_TEMP);
	} else {
		waiting = auth_failed(s, j->user);
	}
	free(j);
	if (!waiting)
		session_resume(s, S_CMD);
}

/* Into the AUTH queue, if the guard and the lane let it: 0, or -1 after
 * the 454 (the client may try again; this is no failed AUTH). */
static int auth_enqueue(struct session *s, struct auth_job *j)
{
	struct smtpd *sd = s->sd;
	uint64_t now = clock_mono_ms();
	enum smtpd_auth_lane lane = smtpd_auth_guard_begin(&sd->auth_guard, &s->addr_key,
	                                                   s->auth_failures > 0, now, &j->ticket);
	const char *why = "address_busy";

	if (lane != SMTPD_AUTH_BUSY) {
		if (work_try_submit(auth_pool(sd), lane, auth_job_run, auth_job_done, j) == 0)
			return 0;
		smtpd_auth_guard_end(&sd->auth_guard, &j->ticket, 0, 0, now);
		why = lane == SMTPD_AUTH_CLEAN ? "queue_full" : "suspect_queue_full";
	}
	log_info("session=%s event=auth result=busy client=%s listener=%s reason=%s", s->id, s->ip,
	         log_q(s->l->cfg->name), why);
	session_reply(s, R_AUTH_TEMP);
	return -1;
}

static void auth_check(struct session *s, const char *user, const char *pass)
{
	struct auth_job *j;

	if (strlen(user) >= sizeof(j->user) || strlen(pass) >= sizeof(j->pass)) {
		session_set_state(s, S_CMD);
		auth_failed(s, "(too long)");
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->s = s;
	j->store = s->sd->deps->store;
	strcpy(j->user, user);
	strcpy(j->pass, pass);
	if (auth_enqueue(s, j) < 0) {
		explicit_bzero(j->pass, sizeof(j->pass));
		free(j);
		session_set_state(s, S_CMD);
		return;
	}
	session_hold(s);
	session_set_state(s, S_WAIT);
}

static void auth_plain_response(struct session *s, const char *b64)
{
	char out[600];
	const char *user, *pass;

	if (sasl_plain_decode(b64, out, sizeof(out), &user, &pass) < 0) {
		session_refuse(s, "AUTH", R_AUTH_PLAIN_BAD);
		session_set_state(s, S_CMD);
	} else {
		auth_check(s, user, pass);
	}
	explicit_bzero(out, sizeof(out));
}

static void auth_abandon(struct session *s, enum smtpd_reply why)
{
	session_refuse(s, "AUTH", why);
	free(s->auth_user);
	s->auth_user = NULL;
	session_set_state(s, S_CMD);
}

/* LOGIN sends the user name, then the password, each as one base64
 * string (either may be empty: see the top of the file). */
static void auth_login_step(struct session *s, const char *b64)
{
	char val[300];

	if (sasl_login_decode(b64, val, sizeof(val)) < 0) {
		auth_abandon(s, R_AUTH_LOGIN_BAD);
		return;
	}
	if (s->state == S_AUTH_USER) {
		s->auth_user = xstrdup(val);
		session_reply(s, R_AUTH_PASS);
		session_set_state(s, S_AUTH_PASS);
		return;
	}
	auth_check(s, s->auth_user, val);
	explicit_bzero(val, sizeof(val));
	free(s->auth_user);
	s->auth_user = NULL;
}

void smtpd_auth_continue(struct session *s, char *line)
{
	if (strcmp(line, "*") == 0)
		auth_abandon(s, R_AUTH_CANCELLED);
	else if (s->state == S_AUTH_PLAIN)
		auth_plain_response(s, line);
	else
		auth_login_step(s, line);
}

/* 1 if AUTH is refused now, with the reply in *why. */
static int auth_refused(const struct session *s, enum smtpd_reply *why)
{
	if (!smtpd_auth_allowed(s))
		*why = s->l->cfg->auth == CONF_AUTH_OFF ? R_AUTH_NA : R_AUTH_NEEDS_TLS;
	else if (s->account)
		*why = R_AUTH_ALREADY;
	else if (s->txn.mail_line)
		*why = R_AUTH_IN_TXN;
	else
		return 0;
	return 1;
}

void smtpd_cmd_auth(struct session *s, char *arg)
{
	char *mech = arg, *initial = strchr(arg, ' ');
	enum smtpd_reply why;

	if (initial)
		*initial++ = '\0';
	if (auth_refused(s, &why)) {
		session_refuse(s, "AUTH", why);
		return;
	}
	if (initial && strcmp(initial, "=") == 0)
		initial[0] = '\0'; /* RFC 4954 4: a zero-length initial response */
	if (ascii_casecmp(mech, "PLAIN") == 0) {
		if (initial) {
			auth_plain_response(s, initial);
			return;
		}
		session_reply(s, R_AUTH_PLAIN_GO);
		session_set_state(s, S_AUTH_PLAIN);
	} else if (ascii_casecmp(mech, "LOGIN") == 0) {
		session_set_state(s, S_AUTH_USER);
		if (initial) {
			auth_login_step(s, initial);
			return;
		}
		session_reply(s, R_AUTH_USER);
	} else {
		session_refuse(s, "AUTH", R_AUTH_MECH);
	}
}
