/*
 * smtpd_listener: the listening sockets and the connection caps. A
 * client from trusted_networks counts against max_trusted_connections
 * only; any other against max_connections and max_connections_per_ip (per
 * address key: IPv6 by /64, see smtpd_limits.h). A connection over a cap
 * gets a 421 written straight to the socket and is closed; it never
 * becomes a session. The untrusted count drives stress mode.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/log.h"
#include "smtpd/smtpd_int.h"
#include "smtpd/smtpd_supp.h"
#include "util/util.h"

#define ACCEPT_PAUSE_MS 100 /* out of descriptors: accepting waits this long */

static void refuse(int fd, const struct listener *l, const char *why, const char *ip)
{
	char line[256];
	int n = snprintf(line, sizeof(line), "421 4.7.0 %s Error: %s, try again later\r\n",
	                 l->sd->deps->conf->hostname, why);

	/* Best effort on a fresh non-blocking socket: the reply fits the
	 * socket buffer; if not, the client just sees the close. */
	if (write(fd, line, (size_t)n) < 0) {
	}
	log_info("listener=%s event=refuse_connection ip=%s reason=%s", l->cfg->name, ip,
	         log_q(why));
	close(fd);
}

/* Stress mode (SPEC §3): logged when it begins and ends. When it begins,
 * the sessions that have shown nothing yet get the short idle timeout, as
 * do those that start meanwhile. When it ends, nothing is re-armed: the
 * sessions it caught are timed out anyway (re-arming them would let the
 * last idle ones of a flood escape with a fresh full timeout), and one
 * that sends MAIL gets the normal timeout back. */
static void stress_update(struct listener *l)
{
	int next = smtpd_stress_next(l->stressed, l->n_untrusted, l->cfg->max_connections);

	if (next == l->stressed || l->sd->draining)
		return;
	l->stressed = next;
	log_info("listener=%s event=%s connections=%llu max=%llu trusted=%llu timeout=%llu",
	         l->cfg->name, next ? "stress_begin" : "stress_end",
	         (unsigned long long)l->n_untrusted, (unsigned long long)l->cfg->max_connections,
	         (unsigned long long)l->n_trusted,
	         (unsigned long long)(next && l->cfg->timeout > SMTPD_STRESS_TIMEOUT_S
	                                  ? SMTPD_STRESS_TIMEOUT_S
	                                  : l->cfg->timeout));
	if (next)
		session_stress_began(l);
}

/* Why this client may not connect now, or NULL. Trusted clients have a
 * cap of their own and no per-address cap; the others share
 * max_connections and max_connections_per_ip. */
static const char *over_cap(const struct listener *l, const struct client *c)
{
	const struct conf_listener *cfg = l->cfg;

	if (l->sd->draining)
		return "service shutting down";
	if (c->trusted)
		return l->n_trusted >= cfg->max_trusted_connections ? "too many connections" : NULL;
	if (l->n_untrusted >= cfg->max_connections)
		return "too many connections";
	if (smtpd_addr_count(&l->per_addr, &c->key) >= cfg->max_connections_per_ip)
		return "too many connections from your address";
	return NULL;
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
	struct listener *l = arg;
	char ip[INET6_ADDRSTRLEN] = "?";
	struct client c = {sa, (socklen_t)len, conf_is_trusted(l->sd->deps->conf, sa), {{0}}};
	const char *why;

	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
	smtpd_addr_key(sa, &c.key);
	if (l->accept_errors) {
		log_info("listener=%s event=accept_resumed errors=%llu", l->cfg->name,
		         (unsigned long long)l->accept_errors);
		l->accept_errors = 0;
	}
	if ((why = over_cap(l, &c))) {
		refuse(fd, l, why, ip);
		return;
	}
	if (c.trusted) {
		l->n_trusted++;
	} else {
		l->n_untrusted++;
		smtpd_addr_count_inc(&l->per_addr, &c.key);
		stress_update(l);
	}
	session_start(l, fd, &c);
}

void smtpd_session_gone(struct listener *l, int trusted, const struct smtpd_addr_key *key)
{
	struct smtpd *sd = l->sd;

	if (trusted) {
		l->n_trusted--;
	} else {
		l->n_untrusted--;
		smtpd_addr_count_dec(&l->per_addr, key);
		stress_update(l);
	}
	if (sd->draining && sd->n_sessions == 0 && sd->drained)
		event_active(sd->ev_drained, EV_TIMEOUT, 0);
}

static void on_accept_again(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	if (l->evl)
		evconnlistener_enable(l->evl);
}

/* Out of descriptors (EMFILE, ENFILE) or memory: the connection stays in
 * the backlog and the socket readable, so trying again at once would
 * spin. Accepting pauses for ACCEPT_PAUSE_MS; the first error of a run is
 * logged (the operator raises the limit), and the run's count once
 * accepting works again. */
static void on_accept_error(struct evconnlistener *evl, void *arg)
{
	struct listener *l = arg;
	int e = EVUTIL_SOCKET_ERROR();
	struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};

	evconnlistener_disable(evl);
	evtimer_add(l->ev_accept_again, &tv);
	if (l->accept_errors++ == 0)
		log_warn("listener=%s event=accept_error error=%s connections=%llu trusted=%llu",
		         l->cfg->name, log_q(evutil_socket_error_to_string(e)),
		         (unsigned long long)l->n_untrusted, (unsigned long long)l->n_trusted);
}

static int listener_bind(struct smtpd *sd, struct listener *l, char **err)
{
	const struct conf_addr *a = &l->cfg->address;

	l->ev_accept_again = evtimer_new(sd->deps->base, on_accept_again, l);
	l->evl = evconnlistener_new_bind(sd->deps->base, on_accept, l,
	                                 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
	                                     LEV_OPT_CLOSE_ON_EXEC,
	                                 511, (const struct sockaddr *)&a->ss, (int)a->len);
	if (!l->evl) {
		*err = xasprintf("listener %s: cannot listen on %s: %s", l->cfg->name, a->text,
		                 strerror(errno));
		return -1;
	}
	evconnlistener_set_error_cb(l->evl, on_accept_error);
	log_info("listener=%s event=listen address=%s tls=%s", l->cfg->name, a->text,
	         l->cfg->tls == CONF_TLS_NONE       ? "none"
	         : l->cfg->tls == CONF_TLS_STARTTLS ? "starttls"
	                                            : "implicit");
	return 0;
}

static void on_drained(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd *sd = arg;

	if (sd->drained)
		sd->drained(sd->drained_arg);
}

struct smtpd *smtpd_new(struct smtpd_deps *deps, char **err)
{
	struct smtpd *sd = xcalloc(1, sizeof(*sd));
	size_t i;

	sd->deps = deps;
	TAILQ_INIT(&sd->sessions);
	smtpd_auth_init(sd);
	sd->ev_drained = event_new(deps->base, -1, 0, on_drained, sd);
	sd->n_listeners = deps->conf->n_listeners;
	sd->listeners = xcalloc(sd->n_listeners, sizeof(*sd->listeners));
	for (i = 0; i < sd->n_listeners; i++) {
		sd->listeners[i].sd = sd;
		sd->listeners[i].cfg = &deps->conf->listeners[i];
		smtpd_addr_counts_init(&sd->listeners[i].per_addr);
	}
	for (i = 0; i < sd->n_listeners; i++) {
		if (listener_bind(sd, &sd->listeners[i], err) < 0) {
			smtpd_free(sd);
			return NULL;
		}
	}
	return sd;
}

static void listeners_close(struct smtpd *sd)
{
	size_t i;

	for (i = 0; i < sd->n_listeners; i++) {
		if (sd->listeners[i].evl)
			evconnlistener_free(sd->listeners[i].evl);
		sd->listeners[i].evl = NULL;
	}
}

void smtpd_drain(struct smtpd *sd, void (*drained)(void *arg), void *arg)
{
	sd->draining = 1;
	sd->drained = drained;
	sd->drained_arg = arg;
	listeners_close(sd);
	session_drain_all(sd);
	if (sd->n_sessions == 0)
		event_active(sd->ev_drained, EV_TIMEOUT, 0);
}

void smtpd_set_tls(struct smtpd *sd, SSL_CTX *tls)
{
	sd->deps->tls = tls;
}

void smtpd_free(struct smtpd *sd)
{
	size_t i;

	if (!sd)
		return;
	sd->drained = NULL;
	listeners_close(sd);
	smtpd_auth_free(sd);       /* its done() callbacks still find their sessions */
	smtpd_supp_free(sd->supp); /* so do these (checks never started: failed) */
	session_destroy_all(sd);
	for (i = 0; i < sd->n_listeners; i++) {
		smtpd_addr_counts_fini(&sd->listeners[i].per_addr);
		if (sd->listeners[i].ev_accept_again)
			event_free(sd->listeners[i].ev_accept_again);
	}
	free(sd->listeners);
	event_free(sd->ev_drained);
	free(sd);
}

void smtpd_abort_receiving(struct smtpd *sd)
{
	if (sd)
		session_abort_receiving_all(sd);
}
