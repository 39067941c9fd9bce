/*
 * smtpd_data: DATA and BDAT, from the command to the 250 after commit.
 *
 * The content goes through the PURE smtp_data decoder in pieces of at most
 * SMTPD_DATA_CHUNK bytes and is streamed into a spool file that begins
 * with our Received header. Where the decoder reports the end of the
 * header section, the Date and Message-ID lines the message lacks are put
 * in (at its end if it has no body). The whole DATA/BDAT phase runs under
 * data_timeout.
 *
 * Messages that get fields in front (DKIM signatures, List-Unsubscribe)
 * go through smtpd_sign.c between the end of data and the commit.
 *
 * Refusals come at the end, once the content has been read: too big, a
 * bare CR or LF (SMTP smuggling guard), an earlier failed BDAT chunk, or
 * more Received fields than [relay] max_hops (a mail loop: 554 5.4.6, so
 * the relay that sent it bounces it, and nothing here sends backscatter).
 * Otherwise the message is committed, and the 250 is written only from
 * on_committed(), when the spool reported it durable (the session holds
 * itself meanwhile and reads nothing).
 *
 * A BDAT refused before its chunk still has its chunk read and dropped,
 * so the chunk's bytes are never taken for commands.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliv/deliv.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "smtpd/smtp_subject.h"
#include "smtpd/smtpd_session.h"
#include "spool/spool.h"

static const char *with_protocol(const struct session *s)
{
	static const char *const names[8] = {"SMTP", "ESMTP",  "SMTP", "ESMTPS",
	                                     "SMTP", "ESMTPA", "SMTP", "ESMTPSA"};
	return names[(s->esmtp ? 1 : 0) | (s->tls_active ? 2 : 0) | (s->account ? 4 : 0)];
}

/*
 * The FROM clause (RFC 5321 4.4): the HELO name and the client's address
 * literal. A HELO that is not a valid domain or address literal never
 * reaches the header: the literal stands in for it, and a comment says the
 * client gave an invalid one. With received_header = hide_client there is
 * no FROM clause at all (the operator's privacy choice; the field still
 * counts as a hop).
 */
static void received_from(const struct session *s, struct buf *b)
{
	char lit[INET6_ADDRSTRLEN + 8];

	if (s->l->cfg->received_header == CONF_RECEIVED_HIDE_CLIENT)
		return;
	snprintf(lit, sizeof(lit), "[%s%s]", s->sa.ss_family == AF_INET6 ? "IPv6:" : "", s->ip);
	if (s->helo && smtp_helo_valid(s->helo))
		buf_printf(b, "from %s (%s)\r\n\t", s->helo, lit);
	else
		buf_printf(b, "from %s (%s helo=[invalid])\r\n\t", lit, lit);
}

static void received_header(struct session *s, struct buf *b)
{
	const struct txn *t = &s->txn;
	char date[64];

	rfc5322_date(date, sizeof(date), clock_now_s());
	buf_puts(b, "Received: ");
	received_from(s, b);
	buf_printf(b, "by %s (Posthorn) with %s id %s", s->sd->deps->conf->hostname,
	           with_protocol(s), spool_msg_id(t->msg));
	if (t->n_rcpts == 1)
		buf_printf(b, "\r\n\tfor <%s>", t->rcpts[0].addr);
	buf_printf(b, "; %s\r\n", date);
}

/* Opens the spool file and writes the Received header. */
static int data_begin(struct session *s, enum smtp_data_mode mode)
{
	struct timeval tv = {(time_t)s->l->cfg->data_timeout, 0};
	struct txn *t = &s->txn;
	char *err = NULL;
	struct buf b;

	if (!t->inbound && !(t->msg = spool_msg_new(s->sd->deps->spool, &err))) {
		log_err("session=%s event=spool_error error=%s", s->id, log_q(err));
		free(err);
		return -1;
	}
	smtp_data_init(&t->dec, mode);
	t->data_started = 1;
	evtimer_add(s->ev_data, &tv);
	if (t->inbound)
		return 0;    /* a report to VERP addresses: read, never queued */
	smtpd_sign_begin(s); /* before the first byte: it may reserve a front */
	buf_init(&b);
	received_header(s, &b);
	spool_msg_write(t->msg, b.data, b.len);
	buf_free(&b);
	return 0;
}

/* The Date and Message-ID lines the message lacks. */
static void missing_headers(struct session *s, struct buf *b)
{
	smtp_data_missing_headers(&s->txn.dec, clock_now_s(), spool_msg_id(s->txn.msg),
	                          s->sd->deps->conf->hostname, b);
}

static void store_chunk(struct session *s, const char *p, size_t n)
{
	struct txn *t = &s->txn;

	if (t->too_big || t->bdat_failed)
		return;
	/* + the Received header already written: compare what the client sent */
	if (smtp_data_size(&t->dec) > s->l->cfg->max_message_size) {
		t->too_big = 1;
		return;
	}
	if (t->inbound)
		deliv_inbound_write(t->inbound, p, n);
	else
		spool_msg_write(t->msg, p, n);
}

/* Store one call's decoder output; if the header section ends in it, the
 * missing headers go in there: before the split, the headers, the rest. */
static void data_output(struct session *s, const char *out, size_t n)
{
	size_t at;
	struct buf b;

	if (s->txn.inbound) {
		store_chunk(s, out, n);
		return;
	}
	if (!smtp_data_headers_split(&s->txn.dec, n, &at)) {
		if (s->txn.dec.in_headers)
			smtpd_sign_keep(s, out, n, 0);
		store_chunk(s, out, n);
		return;
	}
	smtpd_sign_keep(s, out, at, 1);
	buf_init(&b);
	missing_headers(s, &b);
	store_chunk(s, out, at);
	store_chunk(s, b.data, b.len);
	store_chunk(s, out + at, n - at);
	buf_free(&b);
}

/* The committed envelope of message id, the recipients rcpts[first ..
 * first + n) of the transaction that is still here (its arrival time may
 * be a second later than the file's: nothing but the scheduler's clock
 * reads it, and a restart reads the file's). The Subject's encoded words
 * are decoded here, on the loop: a bounded pass over at most
 * SMTP_DATA_SUBJECT_MAX bytes, the cost of a copy. */
static void notify_queued(struct session *s, const char *id, size_t first, size_t n, uint64_t size)
{
	const struct smtpd_deps *d = s->sd->deps;
	char raw[SMTP_DATA_SUBJECT_MAX + 1], subject[SMTP_DATA_SUBJECT_MAX + 1];
	struct envelope env;

	if (!d->queued)
		return;
	smtpd_data_envelope(s, &env);
	memcpy(env.id, id, sizeof(env.id));
	env.rcpts = s->txn.rcpts + first;
	env.n_rcpts = n;
	env.size = size;
	smtp_data_subject(&s->txn.dec, raw, sizeof(raw));
	smtp_subject_decode(raw, strlen(raw), subject, sizeof(subject));
	d->queued(d->queued_arg,
	          &(struct smtpd_queued){.env = &env,
	                                 .subject = s->txn.dec.has_subject ? subject : NULL});
}

/* The line that finds a message by its Message-ID: logged once the
 * spool said it is durable, never before. */
static void log_queued(const struct session *s, const char *id, size_t n_rcpts, uint64_t size)
{
	const struct txn *t = &s->txn;

	log_info("session=%s queue=%s event=queued from=<%s> rcpts=%zu size=%llu message_id=%s "
	         "account=%s",
	         s->id, id, log_q(t->mail.addr), n_rcpts, (unsigned long long)size,
	         log_q(t->message_id), log_q(s->account ? s->account : "default"));
}

void smtpd_data_announce(struct session *s, const char *id, size_t first, size_t n, uint64_t size)
{
	log_queued(s, id, n, size);
	metrics_add_l(M_MESSAGES_ACCEPTED, MS_SMTP, n);
	notify_queued(s, id, first, n, size);
	smtpd_mail_committed(s); /* the quota's reservation, once (the first part) */
}

void smtpd_data_failed(struct session *s, enum smtpd_reply r)
{
	session_reply(s, r);
	session_txn_reset(s);
	session_resume(s, S_CMD);
}

void smtpd_data_accepted(struct session *s, const char *id, size_t n_msgs)
{
	s->n_msgs += n_msgs;
	s->n_errors = 0; /* max_errors counts since the last accepted message */
	if (n_msgs > 1)
		session_replyf(s, "250 2.0.0 Ok: queued as %s (%zu messages, one per recipient)",
		               id, n_msgs);
	else
		session_replyf(s, "250 2.0.0 Ok: queued as %s", id);
	session_txn_reset(s);
	session_resume(s, S_CMD);
}

static void on_committed(void *arg, int ok, const char *id)
{
	struct session *s = arg;

	/* Durable is durable, even if the client has gone meanwhile: the
	 * message must reach the scheduler. (The session holds itself until
	 * session_release() below, so it and its transaction are still valid
	 * here.) */
	if (ok)
		smtpd_data_announce(s, id, 0, s->txn.n_rcpts, s->txn.size);
	else
		log_warn("session=%s queue=%s event=queue_failed", s->id, id);
	if (session_release(s))
		return;
	if (ok)
		smtpd_data_accepted(s, id, 1);
	else
		smtpd_data_failed(s, R_QUEUE_ERROR);
}

void smtpd_data_envelope(struct session *s, struct envelope *env)
{
	struct txn *t = &s->txn;

	memset(env, 0, sizeof(*env));
	env->mail_from = t->mail.addr;
	env->account = s->account ? s->account : "default";
	env->client_ip = s->ip;
	env->helo = s->helo ? s->helo : "";
	env->created = clock_now_s();
	env->size = t->msg ? spool_msg_size(t->msg) : 0; /* a split sets its own */
	env->body = t->mail.body == 2 ? BODY_8BITMIME : BODY_7BIT;
	env->smtputf8 = t->mail.smtputf8;
	env->ret = t->mail.ret == 1   ? DSN_RET_FULL
	           : t->mail.ret == 2 ? DSN_RET_HDRS
	                              : DSN_RET_UNSET;
	env->envid = t->mail.envid;
	env->requiretls = t->mail.requiretls;
	env->rcpts = t->rcpts;
	env->n_rcpts = t->n_rcpts;
}

static const char *data_cmd(const struct session *s)
{
	return s->txn.dec.mode == SMTP_DATA_DOT ? "DATA" : "BDAT";
}

/* The content is read; 1 (and the reply in *why) if it is refused. */
static int data_refused(const struct txn *t, enum smtpd_reply *why)
{
	if (t->too_big)
		*why = R_TOO_BIG;
	else if (t->dec.bad_eol)
		*why = R_BARE_EOL;
	else if (t->bdat_failed)
		*why = R_BDAT_TAINTED;
	else
		return 0;
	return 1;
}

/* Mail loops (SPEC §4): the Received fields of the content and ours,
 * against max_hops. 1 (after the refusal) when there are too many. */
static int too_many_hops(struct session *s)
{
	const struct txn *t = &s->txn;
	uint64_t hops = (uint64_t)t->dec.n_received + 1, max = s->sd->deps->conf->max_hops;
	char line[128];

	if (hops <= max)
		return 0;
	snprintf(line, sizeof(line), "554 5.4.6 Too many hops (%llu Received headers, limit %llu)",
	         (unsigned long long)hops, (unsigned long long)max);
	session_refuse_line(s, data_cmd(s), line);
	return 1;
}

/* The checks once the content is read; 1 (after the refusal) if refused. */
static int content_refused(struct session *s)
{
	enum smtpd_reply why;

	if (!data_refused(&s->txn, &why))
		return too_many_hops(s);
	session_refuse(s, data_cmd(s), why);
	return 1;
}

void smtpd_data_commit(struct session *s)
{
	struct txn *t = &s->txn;
	struct envelope env;

	smtpd_data_envelope(s, &env);
	t->size = env.size;
	spool_msg_commit(t->msg, &env, on_committed, s);
	t->msg = NULL; /* the spool owns it now */
}

/* The message is complete: check it, commit it, answer after commit. */
static void data_finish(struct session *s)
{
	struct txn *t = &s->txn;

	/* a CR the decoder still held (BDAT content ending in it) */
	data_output(s, s->sd->data_out, smtp_data_end(&t->dec, s->sd->data_out));
	if (content_refused(s)) {
		session_txn_reset(s);
		session_set_state(s, S_CMD);
		return;
	}
	if (t->inbound) {
		smtpd_mail_report(s);
		return;
	}
	if (t->dec.headers_end < 0) { /* no empty line: the headers go at the end */
		struct buf b;
		buf_init(&b);
		missing_headers(s, &b);
		spool_msg_write(t->msg, b.data, b.len);
		buf_free(&b);
	}
	if (t->dec.has_message_id)
		smtp_data_message_id(&t->dec, t->message_id, sizeof(t->message_id));
	else
		snprintf(t->message_id, sizeof(t->message_id), "<%s@%s>", spool_msg_id(t->msg),
		         s->sd->deps->conf->hostname);
	s->n_rcpts += t->n_rcpts;
	session_hold(s);
	session_set_state(s, S_WAIT);
	/* fields to put in front (a signature, List-Unsubscribe): a job adds
	 * them, then commits; otherwise the commit is now */
	if (!smtpd_sign_run(s))
		smtpd_data_commit(s);
}

static int data_precheck(struct session *s, const char *cmd)
{
	if (!s->txn.mail_line) {
		session_refuse(s, cmd, R_NEED_MAIL);
		return -1;
	}
	if (s->txn.n_rcpts == 0) {
		session_refuse(s, cmd, R_NO_RCPTS);
		return -1;
	}
	return 0;
}

void smtpd_cmd_data(struct session *s, char *arg)
{
	if (s->txn.data_started) {
		session_refuse(s, "DATA", R_DATA_AFTER_BDAT);
		return;
	}
	if (*arg) {
		session_refuse(s, "DATA", R_DATA_SYNTAX);
		return;
	}
	if (data_precheck(s, "DATA") < 0)
		return;
	if (data_begin(s, SMTP_DATA_DOT) < 0) {
		session_reply(s, R_QUEUE_ERROR);
		return;
	}
	session_reply(s, R_DATA_GO);
	session_set_state(s, S_DATA);
}

void smtpd_cmd_bdat(struct session *s, char *arg)
{
	struct txn *t = &s->txn;
	uint64_t size;
	int last;

	if (smtp_parse_bdat(arg, &size, &last) < 0) {
		/* The chunk length is unknown: the stream cannot be resynchronised. */
		session_reply_close(s, "bdat_syntax", R_BDAT_SYNTAX);
		return;
	}
	t->bdat_left = size;
	t->bdat_last = last;
	if (!t->data_started && data_precheck(s, "BDAT") < 0) {
		/* the chunk is swallowed; only a real transaction is tainted */
		t->bdat_failed = t->mail_line != NULL;
	} else if (!t->data_started && data_begin(s, SMTP_DATA_RAW) < 0) {
		session_reply(s, R_QUEUE_ERROR);
		t->bdat_failed = 1;
	}
	session_set_state(s, S_BDAT);
}

void smtpd_bdat_swallow(struct session *s, const char *arg)
{
	uint64_t size;
	int last;

	if (smtp_parse_bdat(arg, &size, &last) < 0) {
		session_reply_close(s, "bdat_syntax", R_BDAT_SYNTAX);
		return;
	}
	s->txn.bdat_left = size;
	s->txn.bdat_last = 0;
	session_set_state(s, S_BDAT);
}

static void bdat_chunk_done(struct session *s)
{
	struct txn *t = &s->txn;

	if (!t->data_started) {
		/* refused chunk: its reply was queued when BDAT was read */
		session_set_state(s, S_CMD);
		return;
	}
	if (t->bdat_last) {
		data_finish(s);
		return;
	}
	if (t->too_big) {
		session_refuse(s, "BDAT", R_TOO_BIG);
		session_txn_reset(s);
	} else {
		session_replyf(s, "250 2.0.0 %llu octets received",
		               (unsigned long long)smtp_data_size(&t->dec));
	}
	session_set_state(s, S_CMD);
}

int smtpd_data_input(struct session *s, struct evbuffer *in)
{
	struct txn *t = &s->txn;
	size_t avail = evbuffer_get_length(in), n, used, out_len;
	const char *p;

	n = avail < SMTPD_DATA_CHUNK ? avail : SMTPD_DATA_CHUNK;
	if (s->state == S_BDAT && n > t->bdat_left)
		n = (size_t)t->bdat_left;
	if (n == 0 && !(s->state == S_BDAT && t->bdat_left == 0))
		return 0;
	p = n ? (const char *)evbuffer_pullup(in, (ev_ssize_t)n) : "";
	if (t->data_started) {
		used = smtp_data_feed(&t->dec, p, n, s->sd->data_out, &out_len);
		data_output(s, s->sd->data_out, out_len);
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

void smtpd_data_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	if (s->state != S_DATA && s->state != S_BDAT && s->state != S_CMD)
		return; /* committing, or already closing */
	log_info("session=%s event=timeout state=%s what=data_timeout", s->id,
	         session_state_name(s->state));
	bufferevent_disable(s->bev, EV_READ);
	session_reply_close(s, "data_timeout", R_DATA_TIMEOUT);
}
