/*
 * sched_route: which addresses a destination's route may use (SPEC 2 and
 * 4, "Loops are stopped"). Applies to MX hosts and address literals, never
 * to the smarthost (explicit configuration).
 *
 *   - Mail loops: an address that is this relay itself (a listener's
 *     address and port; a 0.0.0.0 or :: listener is every local address,
 *     from getifaddrs, and all of 127.0.0.0/8 and ::1) marks its MX
 *     preference as our own. Hosts at that preference or above are
 *     dropped, as a relay listed among a domain's MX hosts must only try
 *     the better ones; when nothing better is left, the destination
 *     bounces 5.4.6 "mail for DOMAIN loops back to myself". Without this,
 *     one message to such a domain went round the relay thousands of
 *     times.
 *   - blocked_destinations: addresses inside it are dropped (IPv4-mapped
 *     IPv6 addresses are checked as IPv4); when none is left, the
 *     destination bounces 5.4.4. Otherwise any sender could make the
 *     relay open connections to loopback, link-local or multicast
 *     addresses.
 * Each dropped address is logged (event=route_blocked, event=route_loop).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "dns/dns_mx.h"
#include "log/log.h"
#include "sched/sched_int.h"

static void self_add(struct sched_self *self, int family, const void *addr, int prefix,
                     uint16_t port)
{
	struct sched_self_net *e;

	self->v = xrealloc(self->v, (self->n + 1) * sizeof(*self->v));
	e = &self->v[self->n++];
	memset(e, 0, sizeof(*e));
	e->net.family = family;
	memcpy(e->net.addr, addr, family == AF_INET ? 4 : 16);
	e->net.prefix = prefix;
	e->port = port;
}

/* Every address of the machine of one family (AF_INET or AF_INET6), at
 * port: what a wildcard listener answers on. */
static void self_add_local(struct sched_self *self, const struct ifaddrs *ifs, int family,
                           uint16_t port)
{
	static const unsigned char loop4[4] = {127, 0, 0, 0}, loop6[16] = {[15] = 1};
	const struct ifaddrs *i;

	if (family == AF_INET)
		self_add(self, AF_INET, loop4, 8, port);
	else
		self_add(self, AF_INET6, loop6, 128, port);
	for (i = ifs; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != family)
			continue;
		if (family == AF_INET)
			self_add(self, AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 32,
			         port);
		else
			self_add(self, AF_INET6, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr,
			         128, port);
	}
}

static void self_add_listener(struct sched_self *self, const struct ifaddrs *ifs,
                              const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		uint16_t port = ntohs(in->sin_port);
		if (in->sin_addr.s_addr == htonl(INADDR_ANY))
			self_add_local(self, ifs, AF_INET, port);
		else
			self_add(self, AF_INET, &in->sin_addr, 32, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		uint16_t port = ntohs(in6->sin6_port);
		if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) {
			/* dual stack: :: takes IPv4 connections too */
			self_add_local(self, ifs, AF_INET6, port);
			self_add_local(self, ifs, AF_INET, port);
		} else {
			self_add(self, AF_INET6, &in6->sin6_addr, 128, port);
		}
	}
}

void sched_self_load(struct sched_self *self, const struct conf *c)
{
	struct ifaddrs *ifs = NULL;
	size_t i;

	sched_self_free(self);
	if (getifaddrs(&ifs) < 0) {
		log_warn("event=getifaddrs_error error=%s", log_q(strerror(errno)));
		ifs = NULL;
	}
	for (i = 0; i < c->n_listeners; i++)
		self_add_listener(self, ifs, (const struct sockaddr *)&c->listeners[i].address.ss);
	if (ifs)
		freeifaddrs(ifs);
}

void sched_self_free(struct sched_self *self)
{
	free(self->v);
	self->v = NULL;
	self->n = 0;
}

/* a as a socket address, for conf_net_contains(). */
static struct sockaddr_storage sockaddr_of(const struct dns_addr *a)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)a->family;
	if (a->family == AF_INET)
		memcpy(&((struct sockaddr_in *)&ss)->sin_addr, a->addr, 4);
	else
		memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, a->addr, 16);
	return ss;
}

static int is_self(const struct sched_self *self, const struct dns_addr *a, uint16_t port)
{
	struct sockaddr_storage ss = sockaddr_of(a);
	size_t i;

	for (i = 0; i < self->n; i++)
		if (self->v[i].port == port &&
		    conf_net_contains(&self->v[i].net, (const struct sockaddr *)&ss))
			return 1;
	return 0;
}

static int is_blocked(const struct conf_net *nets, size_t n, const struct dns_addr *a)
{
	struct sockaddr_storage ss = sockaddr_of(a);
	size_t i;

	for (i = 0; i < n; i++)
		if (conf_net_contains(&nets[i], (const struct sockaddr *)&ss))
			return 1;
	return 0;
}

static void log_dropped(const char *event, const char *dest, const struct dns_route_host *h,
                        const struct dns_addr *a, uint16_t port)
{
	char text[DNS_ADDR_STRLEN];

	log_info("dest=%s event=%s host=%s addr=%s port=%u", dest, event, log_q(h->name),
	         dns_addr_str(a, text), (unsigned)port);
}

/* The best (lowest) preference of a host that is this relay, or -1. */
static long self_pref(const struct sched_self *self, const char *dest, const struct dns_route *r,
                      uint16_t port)
{
	long best = -1;
	size_t i, j;

	for (i = 0; i < r->n_hosts; i++)
		for (j = 0; j < r->hosts[i].n_addrs; j++) {
			const struct dns_addr *a = &r->hosts[i].addrs[j];
			if (!is_self(self, a, port))
				continue;
			log_dropped("route_loop", dest, &r->hosts[i], a, port);
			if (best < 0 || r->hosts[i].pref < (unsigned long)best)
				best = (long)r->hosts[i].pref;
		}
	return best;
}

/* Drops the blocked addresses of h (the others keep their order); the
 * first one dropped goes to *first when that is still empty. */
static void drop_blocked(const struct conf_net *nets, size_t n_nets, const char *dest,
                         struct dns_route_host *h, uint16_t port, char *first, size_t cap)
{
	size_t j, kept = 0;

	for (j = 0; j < h->n_addrs; j++) {
		if (!is_blocked(nets, n_nets, &h->addrs[j])) {
			h->addrs[kept++] = h->addrs[j];
			continue;
		}
		log_dropped("route_blocked", dest, h, &h->addrs[j], port);
		if (!*first) {
			char text[DNS_ADDR_STRLEN];
			snprintf(first, cap, "%s[%s]", h->name, dns_addr_str(&h->addrs[j], text));
		}
	}
	h->n_addrs = kept;
}

enum sched_screen sched_route_screen(struct dns_route *r, const char *dest, uint16_t port,
                                     const struct conf_net *nets, size_t n_nets,
                                     const struct sched_self *self, char *why, size_t cap)
{
	long own = self_pref(self, dest, r, port);
	size_t i, left = 0;

	*why = '\0';
	for (i = 0; i < r->n_hosts; i++) {
		struct dns_route_host *h = &r->hosts[i];
		if (own >= 0 && h->pref >= (unsigned long)own) {
			h->n_addrs = 0; /* no better than this relay: not a next hop */
			continue;
		}
		drop_blocked(nets, n_nets, dest, h, port, why, cap);
		left += h->n_addrs;
	}
	if (left > 0) {
		*why = '\0';
		return SCHED_SCREEN_OK;
	}
	/* nothing better than ourselves: a loop, whatever else was blocked */
	return own >= 0 ? SCHED_SCREEN_LOOP : SCHED_SCREEN_BLOCKED;
}
