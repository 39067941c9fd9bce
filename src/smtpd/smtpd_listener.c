/*
 * smtpd_listener: the listening sockets and the connection caps
 * (max_connections per listener, max_connections_per_ip per client
 * address). A connection over a cap gets a 421 written straight to the
 * socket and is closed; it never becomes a session.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/log.h"
#include "smtpd/smtpd_int.h"
#include "util/util.h"

struct ip_count {
	unsigned char key[17]; /* family byte + address */
	uint64_t n;
	struct ip_count *next;
};

static void ip_key(const struct sockaddr *sa, unsigned char key[17])
{
	memset(key, 0, 17);
	if (sa->sa_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		key[0] = 6;
		memcpy(key + 1, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	}
}

static size_t ip_hash(const unsigned char key[17], size_t buckets)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	int i;

	for (i = 0; i < 17; i++)
		h = (h ^ key[i]) * 1099511628211ULL;
	return (size_t)(h % buckets);
}

/* The count slot for sa, created at 0 when create is set. */
static struct ip_count *ip_slot(struct listener *l, const struct sockaddr *sa, int create)
{
	unsigned char key[17];
	struct ip_count **pp, *c;

	ip_key(sa, key);
	pp = &l->ip_table[ip_hash(key, l->ip_buckets)];
	for (c = *pp; c; c = c->next)
		if (memcmp(c->key, key, 17) == 0)
			return c;
	if (!create)
		return NULL;
	c = xcalloc(1, sizeof(*c));
	memcpy(c->key, key, 17);
	c->next = *pp;
	*pp = c;
	return c;
}

static void ip_release(struct listener *l, const struct sockaddr *sa)
{
	unsigned char key[17];
	struct ip_count **pp, *c;

	ip_key(sa, key);
	for (pp = &l->ip_table[ip_hash(key, l->ip_buckets)]; (c = *pp); pp = &c->next) {
		if (memcmp(c->key, key, 17) != 0)
			continue;
		if (--c->n == 0) {
			*pp = c->next;
			free(c);
		}
		return;
	}
}

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

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
	struct listener *l = arg;
	char ip[INET6_ADDRSTRLEN] = "?";
	struct ip_count *c;

	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
	if (l->sd->draining) {
		refuse(fd, l, "service shutting down", ip);
		return;
	}
	if (l->n_conns >= l->cfg->max_connections) {
		refuse(fd, l, "too many connections", ip);
		return;
	}
	c = ip_slot(l, sa, 1);
	if (c->n >= l->cfg->max_connections_per_ip) {
		if (c->n == 0)
			ip_release(l, sa);
		refuse(fd, l, "too many connections from your address", ip);
		return;
	}
	c->n++;
	l->n_conns++;
	session_start(l, fd, sa, (socklen_t)len);
}

void smtpd_session_gone(struct listener *l, const struct sockaddr *sa)
{
	struct smtpd *sd = l->sd;

	l->n_conns--;
	ip_release(l, sa);
	if (sd->draining && sd->n_sessions == 0 && sd->drained)
		event_active(sd->ev_drained, EV_TIMEOUT, 0);
}

static void on_accept_error(struct evconnlistener *evl, void *arg)
{
	struct listener *l = arg;
	int e = EVUTIL_SOCKET_ERROR();

	/* EMFILE and friends: keep running; the listener retries on the next
	 * readiness. Log so the operator raises the fd limit. */
	log_warn("listener=%s event=accept_error error=%s", l->cfg->name,
	         log_q(evutil_socket_error_to_string(e)));
}

static int listener_bind(struct smtpd *sd, struct listener *l, char **err)
{
	const struct conf_addr *a = &l->cfg->address;

	l->ip_buckets = 1024;
	l->ip_table = xcalloc(l->ip_buckets, sizeof(*l->ip_table));
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
	sd->ev_drained = event_new(deps->base, -1, 0, on_drained, sd);
	sd->n_listeners = deps->conf->n_listeners;
	sd->listeners = xcalloc(sd->n_listeners, sizeof(*sd->listeners));
	for (i = 0; i < sd->n_listeners; i++) {
		sd->listeners[i].sd = sd;
		sd->listeners[i].cfg = &deps->conf->listeners[i];
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

static void ip_table_free(struct listener *l)
{
	size_t i;
	struct ip_count *c, *next;

	for (i = 0; l->ip_table && i < l->ip_buckets; i++)
		for (c = l->ip_table[i]; c; c = next) {
			next = c->next;
			free(c);
		}
	free(l->ip_table);
}

void smtpd_free(struct smtpd *sd)
{
	size_t i;

	if (!sd)
		return;
	sd->drained = NULL;
	listeners_close(sd);
	session_destroy_all(sd);
	for (i = 0; i < sd->n_listeners; i++)
		ip_table_free(&sd->listeners[i]);
	free(sd->listeners);
	event_free(sd->ev_drained);
	free(sd);
}

void smtpd_abort_receiving(struct smtpd *sd)
{
	if (sd)
		session_abort_receiving_all(sd);
}
