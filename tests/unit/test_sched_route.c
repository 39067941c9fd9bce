/*
 * test_sched_route: which addresses a destination's route may use. Routes
 * made by hand are screened against blocked networks and this relay's own
 * listening addresses: blocked addresses go (IPv4-mapped IPv6 checked as
 * IPv4), a host that is this relay cuts its preference and the worse ones,
 * and nothing left means BLOCKED or LOOP. Also the default list (SPEC 2)
 * and what a wildcard listener counts as local.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "conf_fixture.h"
#include "dns/dns_mx.h"
#include "sched/sched_int.h"
#include "util/util.h"

static char tmpdir[] = "/tmp/posthorn-test-route-XXXXXX";

/* A route of hosts "pref name addr addr ...;" e.g. "10 mx1 127.0.0.1;20 mx2 ::1". */
static struct dns_route *route(const char *spec)
{
	struct dns_route *r = xcalloc(1, sizeof(*r));
	char *copy = xstrdup(spec), *host, *save = NULL;

	r->status = DNS_OK;
	r->hosts = xcalloc(DNS_MAX_HOSTS, sizeof(*r->hosts));
	for (host = strtok_r(copy, ";", &save); host; host = strtok_r(NULL, ";", &save)) {
		struct dns_route_host *h = &r->hosts[r->n_hosts++];
		char *tok, *save2 = NULL;
		h->pref = (unsigned)strtoul(strtok_r(host, " ", &save2), NULL, 10);
		h->name = xstrdup(strtok_r(NULL, " ", &save2));
		h->addrs = xcalloc(DNS_MAX_ADDRS, sizeof(*h->addrs));
		while ((tok = strtok_r(NULL, " ", &save2))) {
			struct dns_addr *a = &h->addrs[h->n_addrs++];
			a->family = strchr(tok, ':') ? AF_INET6 : AF_INET;
			assert_int_equal(inet_pton(a->family, tok, a->addr), 1);
		}
	}
	free(copy);
	return r;
}

/* What is left of r: "mx1 127.0.0.2;mx2" (hosts with no address too). */
static char *left(const struct dns_route *r)
{
	struct buf b;
	char text[DNS_ADDR_STRLEN];
	size_t i, j;

	buf_init(&b);
	buf_puts(&b, "");
	for (i = 0; i < r->n_hosts; i++) {
		buf_printf(&b, "%s%s", i ? ";" : "", r->hosts[i].name);
		for (j = 0; j < r->hosts[i].n_addrs; j++)
			buf_printf(&b, " %s", dns_addr_str(&r->hosts[i].addrs[j], text));
	}
	return b.data;
}

static struct conf_net net(const char *cidr)
{
	struct conf_net n;
	char addr[64];
	const char *slash = strchr(cidr, '/');

	memset(&n, 0, sizeof(n));
	snprintf(addr, sizeof(addr), "%.*s", (int)(slash - cidr), cidr);
	n.family = strchr(addr, ':') ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(n.family, addr, n.addr), 1);
	n.prefix = atoi(slash + 1);
	return n;
}

struct screened {
	enum sched_screen v;
	char why[200];
	char *left;
};

static struct screened screen(const char *spec, const char *const *blocked, size_t n_blocked,
                              const struct sched_self *self)
{
	struct conf_net nets[8];
	struct dns_route *r = route(spec);
	struct screened out;
	size_t i;

	for (i = 0; i < n_blocked; i++)
		nets[i] = net(blocked[i]);
	out.v =
	    sched_route_screen(r, "dest.test", 25, nets, n_blocked, self, out.why, sizeof(out.why));
	out.left = left(r);
	dns_route_free(r);
	return out;
}

static const struct sched_self nobody = {NULL, 0};
static const char *const dflt[] = {"127.0.0.0/8",    "::1/128",   "::/128",      "0.0.0.0/8",
                                   "169.254.0.0/16", "fe80::/10", "224.0.0.0/4", "ff00::/8"};

static void test_blocked(void **state)
{
	static const struct {
		const char *route, *v, *left, *why;
	} t[] = {
	    {"10 mx 192.0.2.1", "ok", "mx 192.0.2.1", ""},
	    {"10 mx 127.0.0.1", "blocked", "mx", "mx[127.0.0.1]"},
	    {"10 mx 127.0.0.9 ::1 192.0.2.5", "ok", "mx 192.0.2.5", ""},
	    {"10 mx ::ffff:127.0.0.1", "blocked", "mx", "mx[::ffff:127.0.0.1]"},
	    {"10 mx ::ffff:192.0.2.7", "ok", "mx ::ffff:192.0.2.7", ""},
	    {"10 mx 169.254.169.254;20 mx2 fe80::1", "blocked", "mx;mx2", "mx[169.254.169.254]"},
	    {"10 mx 0.0.0.0 ::;20 mx2 239.1.2.3 ff02::1", "blocked", "mx;mx2", "mx[0.0.0.0]"},
	    {"10 mx1 127.0.0.1;20 mx2 2001:db8::1", "ok", "mx1;mx2 2001:db8::1", ""},
	    /* RFC 1918 is not in the default */
	    {"10 mx 10.1.2.3 192.168.1.1 172.16.0.1", "ok", "mx 10.1.2.3 192.168.1.1 172.16.0.1",
	     ""},
	};
	static const char *const names[] = {"ok", "blocked", "loop"};
	struct screened s;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		s = screen(t[i].route, dflt, ARRAY_LEN(dflt), &nobody);
		if (strcmp(names[s.v], t[i].v) || strcmp(s.left, t[i].left) ||
		    strcmp(s.why, t[i].why))
			fail_msg("row %zu: %s [%s] why [%s]", i, names[s.v], s.left, s.why);
		free(s.left);
	}
	/* an empty list blocks nothing */
	s = screen("10 mx 127.0.0.1", NULL, 0, &nobody);
	assert_int_equal(s.v, SCHED_SCREEN_OK);
	free(s.left);
}

static void test_loop(void **state)
{
	struct sched_self_net v[2];
	struct sched_self self = {v, 2};
	static const struct {
		const char *route, *left;
		enum sched_screen v;
	} t[] = {
	    /* the best MX is this relay */
	    {"10 me 198.51.100.7", "me", SCHED_SCREEN_LOOP},
	    {"0 me ::ffff:198.51.100.7", "me", SCHED_SCREEN_LOOP},
	    /* a backup MX: only the better ones are next hops */
	    {"10 other 192.0.2.1;20 me 198.51.100.7;30 worse 192.0.2.2", "other 192.0.2.1;me;worse",
	     SCHED_SCREEN_OK},
	    /* as good as this relay is not better */
	    {"10 me 198.51.100.7;10 peer 192.0.2.3", "me;peer", SCHED_SCREEN_LOOP},
	    /* a host with another address on this relay's network */
	    {"10 mx 2001:db8::9", "mx", SCHED_SCREEN_LOOP},
	    /* better hosts all blocked: still a loop */
	    {"5 lo 127.0.0.1;10 me 198.51.100.7", "lo;me", SCHED_SCREEN_LOOP},
	};
	struct screened s;
	size_t i;

	(void)state;
	memset(v, 0, sizeof(v));
	v[0].net = net("198.51.100.7/32");
	v[0].port = 25;
	v[1].net = net("2001:db8::/64");
	v[1].port = 25;
	for (i = 0; i < ARRAY_LEN(t); i++) {
		s = screen(t[i].route, dflt, ARRAY_LEN(dflt), &self);
		if (s.v != t[i].v || strcmp(s.left, t[i].left))
			fail_msg("row %zu: %d [%s]", i, s.v, s.left);
		free(s.left);
	}
	/* another port is another server */
	v[0].port = v[1].port = 2525;
	s = screen("10 me 198.51.100.7", dflt, ARRAY_LEN(dflt), &self);
	assert_int_equal(s.v, SCHED_SCREEN_OK);
	free(s.left);
}

static struct conf *conf_with(const char *text)
{
	char *path = xasprintf("%s/c%d.conf", tmpdir, rand());
	char *all = xasprintf("[server]\ndata_dir = %s\n%s", tmpdir, text);
	struct conf *c = conf_from_text(path, all);

	free(all);
	free(path);
	return c;
}

/* The default is SPEC 2's list, exactly. */
static void test_default_list(void **state)
{
	struct conf *c = conf_with("");
	size_t i;

	(void)state;
	assert_int_equal(c->n_blocked_destinations, ARRAY_LEN(dflt));
	for (i = 0; i < ARRAY_LEN(dflt); i++) {
		struct conf_net want = net(dflt[i]);
		assert_int_equal(c->blocked_destinations[i].family, want.family);
		assert_int_equal(c->blocked_destinations[i].prefix, want.prefix);
		assert_memory_equal(c->blocked_destinations[i].addr, want.addr, 16);
	}
	conf_free(c);
	c = conf_with("[relay]\nblocked_destinations =\n");
	assert_int_equal(c->n_blocked_destinations, 0);
	conf_free(c);
}

static int self_has(const struct sched_self *self, const char *cidr, uint16_t port)
{
	struct conf_net n = net(cidr);
	size_t i;

	for (i = 0; i < self->n; i++)
		if (self->v[i].port == port && self->v[i].net.family == n.family &&
		    self->v[i].net.prefix == n.prefix && !memcmp(self->v[i].net.addr, n.addr, 16))
			return 1;
	return 0;
}

static void test_self_from_listeners(void **state)
{
	struct sched_self self = {NULL, 0};
	struct conf *c;

	(void)state;
	c = conf_with("[listener.a]\naddress = 127.0.0.1:2525\n[listener.b]\n"
	              "address = [::1]:587\n");
	sched_self_load(&self, c);
	assert_int_equal(self.n, 2);
	assert_true(self_has(&self, "127.0.0.1/32", 2525));
	assert_true(self_has(&self, "::1/128", 587));
	conf_free(c);
	/* a wildcard: every local address, loopback whole */
	c = conf_with("[listener.a]\naddress = 0.0.0.0:25\n");
	sched_self_load(&self, c);
	assert_true(self_has(&self, "127.0.0.0/8", 25));
	assert_true(self_has(&self, "127.0.0.1/32", 25)); /* lo, from getifaddrs */
	assert_false(self_has(&self, "::1/128", 25));
	conf_free(c);
	/* :: takes IPv4 too (dual stack) */
	c = conf_with("[listener.a]\naddress = [::]:25\n");
	sched_self_load(&self, c);
	assert_true(self_has(&self, "::1/128", 25));
	assert_true(self_has(&self, "127.0.0.0/8", 25));
	conf_free(c);
	sched_self_free(&self);
	assert_int_equal(self.n, 0);
}

static int group_setup(void **state)
{
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	int rc = system(cmd);

	free(cmd);
	return rc == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_blocked),
	    cmocka_unit_test(test_loop),
	    cmocka_unit_test(test_default_list),
	    cmocka_unit_test(test_self_from_listeners),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
